//! ami-rollout: replace every instance of the configured groups with the newest
//! ECS-optimized AMI through Auto Scaling instance refresh, new before old, and
//! roll back when the cluster does not stay steady. Not a lifecycle hook:
//! level-triggered by parameter changes, a schedule and manual invokes.
//!
//! [`trigger`] parses what started an invocation; [`observe`] builds the
//! [`view`] of a group and its cluster; [`decide`](mod@decide) is the pure decision over
//! one group, in the words of [`step`], judging a rollout under way with
//! [`judge`](mod@judge) and an AMI with [`ami`]; [`tags`] is what the rollout remembers
//! on the group; [`run`] acts (with `act` and `log`); [`window`] is the
//! maintenance window (`ROLLOUT_WINDOW`).

mod act;
pub mod ami;
pub mod decide;
#[cfg(test)]
mod fixtures;
pub mod judge;
mod log;
pub mod observe;
pub mod run;
pub mod step;
pub mod tags;
pub mod trigger;
pub mod view;
pub mod window;

pub use ami::{
    Check, ImageFacts, Rejection, ami_from_parameter, is_ami_id, newer_than_refused, vet,
};
pub use decide::{Stage, decide};
pub use judge::{Judgement, is_capacity_failure, judge};
pub use run::Roller;
pub use step::{Intent, Limits, Outcome, Phase, Step};
pub use tags::{
    BASELINE_TAG, Baseline, REFUSED_AMI_TAG, REPORTED_TAG, Refusal, TagChange, UNSTEADY_TAG,
    VERSION_MARK, parse_version_description, tag_changes, version_description,
};
pub use view::{ClusterView, GroupView, Member, ServiceView, TemplateRef, replaced, target_for};
