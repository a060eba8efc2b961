//! ami-rollout: replace every instance of the configured groups with the newest
//! ECS-optimized AMI through Auto Scaling instance refresh, new before old, and
//! roll back when the cluster does not stay steady. Not a lifecycle hook:
//! level-triggered by parameter changes, a schedule and manual invokes.
//!
//! [`trigger`] parses what started an invocation, [`decide`] is the pure decision
//! over one group, [`observe`] builds the view it decides on, [`run`] acts;
//! [`window`] is the maintenance window (`ROLLOUT_WINDOW`).

pub mod decide;
pub mod observe;
pub mod run;
pub mod trigger;
pub mod window;

pub use decide::{BASELINE_TAG, REFUSED_AMI_TAG, REPORTED_TAG, UNSTEADY_TAG};
pub use run::Roller;
