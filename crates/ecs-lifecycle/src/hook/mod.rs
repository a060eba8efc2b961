//! The lifecycle-hook runtime that terminate-drain and launch-verify share.
//!
//! An event is split into records ([`event`]); [`dispatch`] acknowledges test
//! notifications, checks continuations, hands the workflow its own events and
//! runs records concurrently; [`runtime`] holds each [`job`]: observe, decide,
//! act, complete exactly once, or hand off ([`handoff`], [`continuation`]) to a
//! new invocation before this one ends, while [`heartbeat`] keeps the action
//! alive; failures go through one error [`policy`]; [`pacing`] holds the hook's
//! clocks; [`lookup`] finds an instance's container instance; [`serve`] is the
//! Lambda entry point the binaries call.

pub mod coalesce;
pub mod continuation;
pub mod dispatch;
pub mod event;
pub mod handoff;
pub mod heartbeat;
pub mod job;
pub mod lookup;
pub mod pacing;
pub mod policy;
pub mod runtime;
pub mod serve;
pub mod step;

pub use job::{Accept, Job};
pub use runtime::{Handler, HookWorkflow};

#[cfg(test)]
#[path = "probe_tests.rs"]
mod probe_tests;

#[cfg(test)]
#[path = "continuation_golden_tests.rs"]
mod continuation_golden_tests;
