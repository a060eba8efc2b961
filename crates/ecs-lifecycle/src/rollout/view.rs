//! What one look at a group and its cluster shows ([`crate::rollout::observe`]
//! builds it), and what the decision reads from it.
//!
//! The rollout keeps no state of its own beyond its marker tags on the group
//! ([`crate::rollout::tags`]). What it has done is read back from AWS every
//! time:
//! - the *intent* is a launch template version this tool created, recognised by
//!   its description ([`crate::rollout::tags::version_description`]): it names
//!   the AMI and the version it was copied from, so a crash between creating it
//!   and starting the refresh is resumed by finding it;
//! - the *progress* is the group's instance refreshes (Auto Scaling keeps their
//!   history): the newest one whose desired version is ours is the rollout;
//! - a rollback is a refresh that ended `RollbackSuccessful` (Auto Scaling's own
//!   rollback) or a later refresh back to the version the rollout started from
//!   (a *restore*), and blocks the same AMI until an operator forces it.

use serde::Serialize;

use crate::model::{InstanceStatus, LifecycleState, Refresh, RefreshStatus};
use crate::rollout::judge::ended_for_capacity;
use crate::rollout::step::Intent;
use crate::rollout::tags::{Baseline, REFUSED_AMI_TAG, Refusal};

/// The group's launch template as the group references it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TemplateRef {
    pub id: String,
    /// As written on the group: a number, `$Latest` or `$Default`.
    pub version: String,
    /// What that resolves to now.
    pub number: i64,
    /// The AMI of that version.
    pub ami: Option<String>,
    /// `(ami, from)` when that version is one of ours.
    pub ours: Option<(String, i64)>,
    /// The instance type that version launches (and a copy of it will).
    pub instance_type: Option<String>,
}

impl TemplateRef {
    /// `$Latest` / `$Default` move with every new version: a rollout pins them.
    pub fn is_floating(&self) -> bool {
        self.version.starts_with('$')
    }

    /// The version a rollout starts from: the current one, except that a
    /// floating reference which already resolves to a version of ours (made by
    /// hand or by an older run) stands for the version that one was made from.
    pub fn rollout_source(&self) -> i64 {
        match &self.ours {
            Some((_, from)) if self.is_floating() => *from,
            _ => self.number,
        }
    }
}

/// A group member as the rollout sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    pub id: String,
    pub lifecycle_state: LifecycleState,
    pub ami: Option<String>,
    pub launched_ms: Option<u64>,
    /// The container instance's status and agent connection, if registered.
    pub ecs: Option<(InstanceStatus, bool)>,
    /// Auto Scaling's health status is Healthy.
    pub healthy: bool,
}

impl Member {
    pub(super) fn leaving(&self) -> bool {
        self.lifecycle_state.is_leaving()
    }

    pub(super) fn on(&self, ami: &str) -> bool {
        self.ami.as_deref() == Some(ami)
    }
}

/// One look at a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupView {
    pub name: String,
    pub desired_capacity: i32,
    /// `Err(why)` when the group cannot be rolled (launch configuration, mixed
    /// instances policy, missing template).
    pub template: Result<TemplateRef, String>,
    /// Our version for the target AMI copied from the current version, if made.
    pub prepared: Option<i64>,
    pub members: Vec<Member>,
    /// Newest first.
    pub refreshes: Vec<Refresh>,
    /// Launches since the newest refresh started that Auto Scaling reports as
    /// failed or cancelled (a launch hook abandoned them, EC2 had no capacity):
    /// `description: status message`.
    pub refused_launches: Vec<String>,
    pub unsteady_since_ms: Option<u64>,
    /// [`REFUSED_AMI_TAG`], read; `Err(why)` when its value is malformed.
    pub refused: Option<Result<Refusal, String>>,
    /// [`crate::rollout::tags::BASELINE_TAG`], read.
    pub baseline: Option<Baseline>,
    /// [`crate::rollout::tags::REPORTED_TAG`], read: the refresh whose outcome
    /// was reported.
    pub reported: Option<String>,
    /// The account that owns the group: its own AMIs may be rolled out.
    pub account_id: Option<String>,
}

impl GroupView {
    /// The members that are not leaving the group.
    pub(super) fn staying(&self) -> impl Iterator<Item = &Member> {
        self.members.iter().filter(|m| !m.leaving())
    }

    /// The newest refresh of ours to `ami`, and its place in the history
    /// (0: the newest refresh).
    pub(super) fn newest_ours(&self, ami: &str) -> Option<(usize, &Refresh)> {
        self.refreshes
            .iter()
            .enumerate()
            .find(|(_, r)| r.ours.as_ref().is_some_and(|(a, _)| a == ami))
    }

    /// The version the newest rollout of ours (to any AMI) started from: a
    /// refresh to it is our restore.
    pub(super) fn restore_to(&self) -> Option<i64> {
        self.refreshes
            .iter()
            .find_map(|r| r.ours.as_ref().map(|(_, from)| *from))
    }

    /// The newest rollout of ours to the target, if a later refresh undid it or
    /// it ended badly for a reason of its own (not for capacity). Only
    /// meaningful when no refresh is running.
    pub(super) fn undone(&self, target: &str) -> Option<&Refresh> {
        let (i, r) = self.newest_ours(target)?;
        (i > 0 || (r.status != RefreshStatus::Successful && !ended_for_capacity(r))).then_some(r)
    }

    /// The newest refresh, if it is a restore after our rollout to the target
    /// and it ended without taking the group back.
    pub(super) fn failed_restore(&self, target: &str) -> Option<&Refresh> {
        let (ours, rollout) = self.newest_ours(target)?;
        let from = rollout.ours.as_ref().map(|(_, from)| *from);
        let last = self.refreshes.first()?;
        (ours > 0
            && last.ours.is_none()
            && last.desired_version == from
            && !last.status.is_active()
            && last.status != RefreshStatus::Successful)
            .then_some(last)
    }

    /// Why a start of the target is refused by [`REFUSED_AMI_TAG`], if it is.
    pub(super) fn refused_by_tag(&self, target: &str) -> Option<String> {
        match self.refused.as_ref()? {
            Ok(r) if r.ami == target => Some(format!(
                "{target} was rolled back at {} (the group's tag {REFUSED_AMI_TAG}); start it with \"force\": true to try again, or publish a newer AMI",
                r.at
            )),
            Ok(_) => None,
            Err(why) => Some(why.clone()),
        }
    }
}

/// `(on the AMI, all)` among the group's instances that are not leaving.
pub fn replaced(view: &GroupView, ami: &str) -> (usize, usize) {
    view.staying().fold((0, 0), |(on, all), m| {
        (on + usize::from(m.on(ami)), all + 1)
    })
}

/// The AMI a trigger rolls to: the explicit or parameter AMI for a start; for the
/// others, the AMI of the newest refresh of ours if there is one.
pub fn target_for<'a>(view: &'a GroupView, intent: &Intent, requested: &'a str) -> &'a str {
    if matches!(intent, Intent::Start { .. }) {
        return requested;
    }
    view.refreshes
        .iter()
        .find_map(|r| r.ours.as_ref().map(|(ami, _)| ami.as_str()))
        .unwrap_or(requested)
}

/// One service of the cluster, as steadiness judges it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceView {
    /// Its name (`cluster/name` when several clusters are watched).
    pub name: String,
    pub running: i32,
    pub desired: i32,
    pub deployments: usize,
    /// The EC2 instances its tasks are on (running, or stopped as long as ECS
    /// keeps them); `None` when not looked up.
    pub instances: Option<Vec<String>>,
}

impl ServiceView {
    /// Running what it should, on one deployment.
    pub fn is_steady(&self) -> bool {
        self.running == self.desired && self.deployments <= 1
    }

    pub(super) fn label(&self) -> String {
        format!(
            "{} ({}/{} running, {} deployments)",
            self.name, self.running, self.desired, self.deployments
        )
    }
}

/// The services of the cluster(s) the groups serve.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ClusterView {
    pub services: Vec<ServiceView>,
}

impl ClusterView {
    /// Services not steady now, by name: what a rollout's baseline records.
    pub fn unsteady(&self) -> Vec<String> {
        self.services
            .iter()
            .filter(|s| !s.is_steady())
            .map(|s| s.name.clone())
            .collect()
    }
}
