//! The shared domain of the ecs-lifecycle functions.
//!
//! - [`hook`]: the lifecycle-hook runtime both hook functions run on: events in,
//!   dispatch, the executor that holds an action (heartbeats, complete once,
//!   hand-off to a new invocation), pacing, and the Lambda entry point.
//! - [`drain`] (terminate-drain), [`launch`] (launch-verify), [`rollout`]
//!   (ami-rollout): one folder per workflow, each with its pure `decide`, its
//!   `observe`, and its `run`.
//! - [`model`] (plain domain data and typed states), [`ports`] (one narrow trait
//!   per AWS service, in domain types), [`aws`] (their SDK adapters), [`config`],
//!   [`error`], [`time`].

pub mod aws;
pub mod config;
pub mod drain;
pub mod error;
pub mod hook;
pub mod launch;
pub mod model;
pub mod ports;
pub mod report;
pub mod rollout;
#[cfg(any(test, feature = "test-util"))]
pub mod testing;
pub mod time;

pub use error::{Error, Result};
