//! Judging a rollout under way: what counts against its AMI (a refused
//! launch, an orphan, an instance that never becomes healthy, a cluster that
//! does not stay steady) and what does not (EC2 capacity, services deploying
//! or unsteady for reasons of their own).

use crate::model::{InstanceStatus, LifecycleState, Refresh};
use crate::rollout::step::Limits;
use crate::rollout::view::{ClusterView, GroupView, Member};

/// What EC2 launches Auto Scaling retries by itself: no capacity for the
/// instance type in the zone (On-Demand or Spot), or an account limit. Their
/// error codes and wordings, as scaling activities and refresh reasons carry
/// them. Never the AMI's fault.
const CAPACITY_FAILURES: &[&str] = &[
    "InsufficientInstanceCapacity",
    "InsufficientCapacity",
    "InsufficientHostCapacity",
    "InsufficientReservedInstanceCapacity",
    "UnfulfillableCapacity",
    "VcpuLimitExceeded",
    "InstanceLimitExceeded",
    "MaxSpotInstanceCountExceeded",
    "There is no Spot capacity available",
    "We currently do not have sufficient",
    "You have requested more vCPU capacity than your current vCPU limit",
    "Your quota allows for",
];

/// A failed launch (or refresh) whose status message says EC2 had no capacity
/// or the account hit a limit.
pub fn is_capacity_failure(message: &str) -> bool {
    CAPACITY_FAILURES.iter().any(|m| message.contains(m))
}

/// The refresh ended for capacity, not because of its AMI.
pub(super) fn ended_for_capacity(r: &Refresh) -> bool {
    [&r.status_reason, &r.rollback_reason]
        .into_iter()
        .flatten()
        .any(|reason| is_capacity_failure(reason))
}

/// What the new instances of our refresh `r` to `ami` show against the AMI, if
/// anything: a launch refused for a reason other than capacity (a capacity
/// failure is Auto Scaling's to retry), an orphan, or an instance that never
/// became healthy. The reason to roll back.
pub(super) fn fault(
    view: &GroupView,
    r: &Refresh,
    ami: &str,
    limits: Limits,
    now_ms: u64,
) -> Option<String> {
    if let Some(refused) = view
        .refused_launches
        .iter()
        .find(|l| !is_capacity_failure(l))
    {
        return Some(format!("a new instance was refused at launch: {refused}"));
    }
    let started = r.started_ms.unwrap_or(0);
    orphan(view, ami, started, limits, now_ms)
        .or_else(|| never_healthy(view, ami, started, limits, now_ms))
}

/// How long an InService member on `ami`, launched by the refresh that started
/// at `refresh_started_ms`, has been up, once past the registration timeout.
fn overdue(
    m: &Member,
    ami: &str,
    refresh_started_ms: u64,
    limits: Limits,
    now_ms: u64,
) -> Option<u64> {
    let launched = m.launched_ms?;
    let up_ms = now_ms.saturating_sub(launched);
    (m.on(ami)
        && m.lifecycle_state == LifecycleState::InService
        && launched >= refresh_started_ms
        && up_ms > limits.registration_timeout_ms)
        .then_some(up_ms)
}

/// An InService instance on the new AMI that is still not ACTIVE in the cluster
/// after the registration timeout.
fn orphan(
    view: &GroupView,
    ami: &str,
    refresh_started_ms: u64,
    limits: Limits,
    now_ms: u64,
) -> Option<String> {
    view.members.iter().find_map(|m| {
        let up_ms = overdue(m, ami, refresh_started_ms, limits, now_ms)?;
        let joined = matches!(
            m.ecs,
            Some((InstanceStatus::Active | InstanceStatus::Draining, _))
        );
        (!joined).then(|| {
            format!(
                "{} is an orphan: InService for {} s but {} in the cluster",
                m.id,
                up_ms / 1000,
                match &m.ecs {
                    None => "not registered".to_owned(),
                    Some((status, _)) => format!("{status:?}"),
                }
            )
        })
    })
}

/// An InService instance on the new AMI, launched by the refresh, that Auto
/// Scaling still reports Unhealthy after the registration timeout: the AMI
/// boots but never becomes healthy.
fn never_healthy(
    view: &GroupView,
    ami: &str,
    refresh_started_ms: u64,
    limits: Limits,
    now_ms: u64,
) -> Option<String> {
    view.members.iter().find_map(|m| {
        let up_ms = overdue(m, ami, refresh_started_ms, limits, now_ms)?;
        (!m.healthy).then(|| {
            format!(
                "{} never became healthy: Auto Scaling reports it Unhealthy {} s after its launch",
                m.id,
                up_ms / 1000
            )
        })
    })
}

/// Which unsteady services count against the rollout of a group, and which do
/// not (and why).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Judgement {
    pub blamed: Vec<String>,
    pub excused: Vec<String>,
}

/// Judges the cluster for the rollout of a group to `ami`: a service counts
/// against it when it is not running its desired count, has tasks on the
/// group's instances, is not deploying (more than one deployment: a deployment
/// of its own, which a rollout never starts) and was steady when the rollout's
/// refresh started (its baseline). A new instance on the AMI whose agent is
/// disconnected counts too.
pub fn judge(view: &GroupView, cluster: &ClusterView, ami: &str) -> Judgement {
    let mut j = Judgement::default();
    for s in cluster.services.iter().filter(|s| !s.is_steady()) {
        let label = s.label();
        if s.deployments > 1 {
            j.excused
                .push(format!("{label}: deploying for reasons of its own"));
        } else if view.baseline.as_ref().is_some_and(|b| b.contains(&s.name)) {
            j.excused.push(format!(
                "{label}: already unsteady when the rollout started"
            ));
        } else if let Some(ids) = &s.instances
            && !ids
                .iter()
                .any(|id| view.members.iter().any(|m| m.id == *id))
        {
            j.excused
                .push(format!("{label}: no task on the group's instances"));
        } else {
            j.blamed.push(label);
        }
    }
    j.blamed
        .extend(view.members.iter().filter_map(|m| match &m.ecs {
            Some((InstanceStatus::Active, false)) if m.on(ami) => {
                Some(format!("{}: agent disconnected", m.id))
            }
            _ => None,
        }));
    j
}

/// How the cluster is doing for a rollout ([`judge`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Steadiness {
    /// No service counts against the rollout.
    Steady,
    /// Unsteady since then (now if it just became so), within the timeout.
    Unsteady { since_ms: u64 },
    /// Unsteady for longer than the timeout: why, as a rollback's reason.
    TimedOut { why: String },
}

/// Judges the cluster ([`judge`]) against the stability timeout.
pub(super) fn steadiness(
    view: &GroupView,
    cluster: &ClusterView,
    ami: &str,
    limits: Limits,
    now_ms: u64,
) -> Steadiness {
    let problems = judge(view, cluster, ami).blamed;
    if problems.is_empty() {
        return Steadiness::Steady;
    }
    let since_ms = view.unsteady_since_ms.unwrap_or(now_ms);
    let unsteady_ms = now_ms.saturating_sub(since_ms);
    if unsteady_ms > limits.stability_timeout_ms {
        Steadiness::TimedOut {
            why: format!(
                "unsteady for {} s: {}",
                unsteady_ms / 1000,
                problems.join("; ")
            ),
        }
    } else {
        Steadiness::Unsteady { since_ms }
    }
}

#[cfg(test)]
#[path = "judge_tests.rs"]
mod tests;
