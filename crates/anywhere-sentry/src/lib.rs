//! anywhere-sentry: keeps ECS Anywhere containers running while the host is cut off from
//! the ECS control plane, and hands them back to ECS when the link returns.
//!
//! - [`decide`]: the pure state machine (probe results -> mode, mode + containers ->
//!   actions), table-tested.
//! - [`probe`]: DNS + TCP + verified TLS handshake with timeouts.
//! - [`docker`]: the bollard adapter that observes containers and carries out actions.
//! - [`state`]: the state file that survives restarts.
//! - [`daemon`]: the loop tying them together.

pub mod cli;
pub mod daemon;
pub mod decide;
pub mod docker;
pub mod logging;
pub mod probe;
pub mod state;
