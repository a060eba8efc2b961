//! launch-verify: a new instance must join its ECS cluster (ACTIVE, agent
//! connected); if it does not, diagnose it on the instance and, if asked, refuse it.
//!
//! [`decide`] is the pure decision, [`claim`] keeps one chain per action, [`observe`] what one poll looks at,
//! [`diagnosis`] reads the on-instance diagnostic's report, [`run`] the workflow
//! the hook runtime ([`crate::hook::runtime`]) carries out.

pub mod claim;
#[cfg(test)]
mod claim_runtime_tests;
pub mod decide;
pub mod diagnosis;
pub mod events;
pub mod observe;
pub mod run;

pub use run::{Act, Done, FUNCTION_NAME, Finished, LaunchMemo, Verifier};
