//! terminate-drain: before Auto Scaling terminates an instance, set its container
//! instance DRAINING, wait until its tasks have really stopped, then complete the
//! terminate lifecycle action once.
//!
//! [`decide`] is the pure decision, [`observe`] what one poll looks at, [`run`]
//! the workflow the hook runtime ([`crate::hook::runtime`]) carries out,
//! [`events`] the ECS, Spot and Health events it takes, [`signal`] what it does
//! with the early warnings, [`undo`] how an early drain that did not end in
//! termination is undone.

pub mod budget;
pub mod decide;
pub mod events;
pub mod observe;
pub mod run;
pub mod signal;
pub mod undo;

pub use run::{Act, Done, DrainMemo, Drainer, FUNCTION_NAME};
#[cfg(test)]
mod undo_tests;
