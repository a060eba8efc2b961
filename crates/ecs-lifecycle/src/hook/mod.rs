//! The lifecycle-hook runtime that terminate-drain and launch-verify share.
//!
//! An event is split into records ([`event`]); [`dispatch`] acknowledges test
//! notifications, checks continuations and runs records concurrently;
//! [`runtime`] holds each lifecycle action: observe, decide, act, heartbeat,
//! complete exactly once, or hand off ([`handoff`], [`continuation`]) to a new
//! invocation before this one ends; [`pacing`] computes the hook's clocks;
//! [`lookup`] finds an instance's container instance; [`serve`] is the Lambda
//! entry point the binaries call.

pub mod continuation;
pub mod dispatch;
pub mod event;
#[cfg(any(test, feature = "test-util"))]
pub mod fake;
pub mod handoff;
pub mod lookup;
pub mod pacing;
pub mod runtime;
pub mod serve;
