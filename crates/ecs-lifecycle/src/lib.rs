//! The shared domain of the ecs-lifecycle functions: input events, configuration,
//! ECS / Auto Scaling state and the decisions taken on it, and the AWS adapters.

pub mod aws;
pub mod config;
pub mod continuation;
pub mod diagnosis;
pub mod dispatch;
pub mod drain;
pub mod drainer;
pub mod error;
pub mod event;
pub mod handoff;
pub mod lambda;
pub mod launch;
pub mod lookup;
pub mod model;
pub mod pacing;
pub mod ports;
pub mod roller;
pub mod rollout;
pub mod time;
pub mod verifier;

pub use error::{Error, Result};
