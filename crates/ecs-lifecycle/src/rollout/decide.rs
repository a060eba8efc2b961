//! The AMI rollout's decision: from what one look at a group and its cluster
//! shows, the one next step. Pure (no I/O, the clock is an argument), so every
//! failure and resume case is a table test.
//!
//! The rollout keeps no state of its own beyond one marker tag. What it has done
//! is read back from AWS every time:
//! - the *intent* is a launch template version this tool created, recognised by
//!   its description ([`version_description`]): it names the AMI and the version
//!   it was copied from, so a crash between creating it and starting the
//!   refresh is resumed by finding it;
//! - the *progress* is the group's instance refreshes (Auto Scaling keeps their
//!   history): the newest one whose desired version is ours is the rollout;
//! - a rollback is a refresh that ended `RollbackSuccessful` (Auto Scaling's own
//!   rollback) or a later refresh back to the version the rollout started from
//!   (a *restore*), and blocks the same AMI until an operator forces it;
//! - the only memo is when the cluster became unsteady (a tag on the group),
//!   since that cannot be observed after the fact.

use serde::Serialize;

use crate::model::{InstanceStatus, LifecycleState, Refresh, RefreshStatus};

/// Prefix of the launch template versions this tool creates.
pub const VERSION_MARK: &str = "ecs-lifecycle ami-rollout:";

/// The tag on a group that remembers since when (epoch ms) its cluster has been
/// unsteady during a rollout.
pub const UNSTEADY_TAG: &str = "ecs-lifecycle:rollout-unsteady-since";

/// The description of a version made for `ami` from version `from`.
pub fn version_description(ami: &str, from: i64) -> String {
    format!("{VERSION_MARK} {ami} from version {from}")
}

/// `(ami, from)` if the description marks a version as ours.
pub fn parse_version_description(description: &str) -> Option<(String, i64)> {
    let rest = description.strip_prefix(VERSION_MARK)?.trim();
    let (ami, from) = rest.split_once(" from version ")?;
    let from = from.trim().parse().ok()?;
    is_ami_id(ami).then(|| (ami.to_owned(), from))
}

/// `ami-` followed by 8 or 17 hex digits.
pub fn is_ami_id(s: &str) -> bool {
    s.strip_prefix("ami-").is_some_and(|hex| {
        (hex.len() == 8 || hex.len() == 17) && hex.chars().all(|c| c.is_ascii_hexdigit())
    })
}

/// The AMI id in a parameter value: AWS's ECS-optimized `recommended` JSON (its
/// `image_id`) or a plain AMI id.
pub fn ami_from_parameter(value: &str) -> Result<String, String> {
    let value = value.trim();
    if is_ami_id(value) {
        return Ok(value.to_owned());
    }
    let json: serde_json::Value = serde_json::from_str(value)
        .map_err(|_| format!("is neither an AMI id nor JSON: {:.80}", value))?;
    match json.get("image_id").and_then(|v| v.as_str()) {
        Some(id) if is_ami_id(id) => Ok(id.to_owned()),
        Some(id) => Err(format!("has image_id {id:?}, which is not an AMI id")),
        None => Err("is JSON without an image_id".into()),
    }
}

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
}

impl Member {
    fn leaving(&self) -> bool {
        self.lifecycle_state.is_leaving()
    }

    fn on(&self, ami: &str) -> bool {
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
    /// failed or cancelled (a launch hook abandoned them): `(instance or
    /// description, status message)`.
    pub refused_launches: Vec<String>,
    pub unsteady_since_ms: Option<u64>,
}

/// Services of the cluster that are not steady (running != desired, or more
/// than one deployment), as `name (running/desired, n deployments)`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ClusterView {
    pub unsteady_services: Vec<String>,
}

/// What the invocation was asked to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Intent {
    /// Roll to the target AMI (a Parameter Store change or a manual start).
    /// `force` retries an AMI that was rolled back.
    Start { force: bool },
    /// Carry on with what is under way (the schedule); starts nothing new,
    /// except a rollout whose launch template version was already made.
    Watch,
    /// Report only.
    Status,
    /// Roll back now (manual).
    Rollback { reason: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub stability_timeout_ms: u64,
    pub registration_timeout_ms: u64,
}

/// What a rollout in progress is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Our refresh is replacing instances.
    Rolling,
    /// Our refresh succeeded; waiting for the cluster to settle.
    Settling,
    /// Auto Scaling is rolling our refresh back.
    RollingBack,
    /// Our refresh back to the previous version is running.
    Restoring,
    /// Being cancelled.
    Cancelling,
    /// A refresh this tool did not start is running.
    Foreign,
}

/// How a rollout ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Succeeded,
    RolledBack {
        reason: String,
    },
    /// Failed with nothing to undo (no instance was replaced).
    Failed {
        reason: String,
    },
    /// Auto Scaling could not roll back: an operator must look.
    RollbackFailed {
        reason: String,
    },
}

/// The next step for one group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "step")]
pub enum Step {
    /// The group cannot be rolled.
    Unsupported { why: String },
    /// Every instance runs the target AMI.
    UpToDate,
    /// No rollout under way and this trigger starts none.
    Idle,
    /// Refused to start; `why` says what an operator can do.
    Blocked { why: String },
    /// Pin the group to the version its `$Latest`/`$Default` resolves to, so a
    /// new version does not reach new launches before the refresh does and the
    /// refresh can be rolled back.
    Pin { version: i64 },
    /// Copy the current version with the target AMI.
    CreateVersion { from: i64 },
    /// Start the refresh to our version.
    StartRefresh { version: i64 },
    /// Under way. `unsteady_since` is what the group's marker tag should say
    /// (every other step removes it).
    Wait {
        phase: Phase,
        unsteady_since: Option<u64>,
    },
    /// Roll back the running refresh (RollbackInstanceRefresh).
    Rollback { reason: String },
    /// The refresh ended but left instances on the new AMI: refresh back to
    /// the version the rollout started from.
    Restore { version: i64, reason: String },
    /// The rollout is over.
    Done { outcome: Outcome },
}

impl Step {
    /// Whether taking the step changes anything in AWS.
    pub fn changes_something(&self) -> bool {
        matches!(
            self,
            Step::Pin { .. }
                | Step::CreateVersion { .. }
                | Step::StartRefresh { .. }
                | Step::Rollback { .. }
                | Step::Restore { .. }
        )
    }

    /// Whether the rollout still needs watching after this step.
    pub fn is_settled(&self) -> bool {
        matches!(
            self,
            Step::Unsupported { .. }
                | Step::UpToDate
                | Step::Idle
                | Step::Blocked { .. }
                | Step::Done { .. }
        )
    }
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

/// The next step for one group.
pub fn decide(
    view: &GroupView,
    cluster: &ClusterView,
    intent: &Intent,
    target: &str,
    limits: Limits,
    now_ms: u64,
) -> Step {
    let template = match &view.template {
        Ok(t) => t,
        Err(why) => return Step::Unsupported { why: why.clone() },
    };
    let newest = view.refreshes.first();
    let newest_ours = view
        .refreshes
        .iter()
        .position(|r| r.ours.as_ref().is_some_and(|(ami, _)| ami == target));

    // The version the newest rollout of ours started from: a refresh to it is
    // our restore.
    let restore_to = view
        .refreshes
        .iter()
        .find_map(|r| r.ours.as_ref().map(|(_, from)| *from));

    if let Some(r) = newest.filter(|r| r.status.is_active()) {
        return active(view, cluster, intent, r, restore_to, limits, now_ms);
    }

    // Nothing running. If the newest refresh is our rollout to the target, it
    // decides how that rollout ended (a start goes on below instead: it is
    // refused or, forced, starts again).
    if newest_ours == Some(0)
        && let Some(r) = newest
        && !matches!(intent, Intent::Start { .. })
        && let Some(step) = ended(view, cluster, intent, r, target, limits, now_ms)
    {
        return step;
    }

    let members: Vec<&Member> = view.members.iter().filter(|m| !m.leaving()).collect();
    let on_target = members.iter().filter(|m| m.on(target)).count();
    let all_on_target = on_target == members.len();
    // A rollout to the target that a later refresh undid, or that ended badly.
    let undone = newest_ours.and_then(|i| {
        let r = &view.refreshes[i];
        (i > 0 || r.status != RefreshStatus::Successful).then_some(r)
    });

    match intent {
        Intent::Rollback { .. } => match newest_ours.map(|i| &view.refreshes[i]) {
            Some(r) if undone.is_none() && on_target > 0 => Step::Restore {
                version: r.ours.as_ref().map_or(template.number, |(_, from)| *from),
                reason: format!("requested by an operator after refresh {}", r.id),
            },
            _ => Step::Blocked {
                why: format!("no rollout to {target} to roll back"),
            },
        },
        Intent::Watch | Intent::Status => {
            if let (Intent::Watch, Some(version), None) = (intent, view.prepared, newest_ours)
                && !all_on_target
            {
                // The version was made but the refresh never started (a crash
                // in between): carry on.
                return Step::StartRefresh { version };
            }
            match (undone, newest) {
                (Some(ours), Some(last)) if last.desired_version == restore_to => Step::Done {
                    outcome: Outcome::RolledBack {
                        reason: format!(
                            "refresh {} took the group back to version {} after refresh {}",
                            last.id,
                            restore_to.unwrap_or_default(),
                            ours.id
                        ),
                    },
                },
                _ if all_on_target && !members.is_empty() => Step::UpToDate,
                _ => Step::Idle,
            }
        }
        Intent::Start { force } => {
            if all_on_target {
                return Step::UpToDate;
            }
            if let (Some(r), false) = (undone, force) {
                return Step::Blocked {
                    why: format!(
                        "the rollout to {target} was rolled back (refresh {}, {}{}); start it with \"force\": true to try again",
                        r.id,
                        r.status,
                        r.status_reason
                            .as_deref()
                            .or(r.rollback_reason.as_deref())
                            .map(|s| format!(": {s}"))
                            .unwrap_or_default()
                    ),
                };
            }
            if template.is_floating() {
                Step::Pin {
                    version: template.rollout_source(),
                }
            } else if let Some(version) = view.prepared {
                Step::StartRefresh { version }
            } else {
                Step::CreateVersion {
                    from: template.number,
                }
            }
        }
    }
}

/// A refresh is running.
fn active(
    view: &GroupView,
    cluster: &ClusterView,
    intent: &Intent,
    r: &Refresh,
    restore_to: Option<i64>,
    limits: Limits,
    now_ms: u64,
) -> Step {
    let wait = |phase| Step::Wait {
        phase,
        unsteady_since: view.unsteady_since_ms,
    };
    match r.status {
        RefreshStatus::RollbackInProgress => return wait(Phase::RollingBack),
        RefreshStatus::Cancelling => return wait(Phase::Cancelling),
        _ => {}
    }
    let Some((ami, _)) = &r.ours else {
        // Not ours. A refresh back to where our last rollout started is our
        // restore.
        return if r.desired_version.is_some() && r.desired_version == restore_to {
            wait(Phase::Restoring)
        } else {
            wait(Phase::Foreign)
        };
    };
    if let Intent::Rollback { reason } = intent {
        return Step::Rollback {
            reason: format!("requested by an operator: {reason}"),
        };
    }
    if let Some(refused) = view.refused_launches.first() {
        return Step::Rollback {
            reason: format!("a new instance was refused at launch: {refused}"),
        };
    }
    let started = r.started_ms.unwrap_or(0);
    if let Some(orphan) = orphan(view, ami, started, limits, now_ms) {
        return Step::Rollback { reason: orphan };
    }
    debug_assert!(r.status.is_rolling());
    match stability(view, cluster, ami, limits, now_ms) {
        Ok(unsteady_since) => Step::Wait {
            phase: Phase::Rolling,
            unsteady_since,
        },
        Err(why) => Step::Rollback { reason: why },
    }
}

/// The newest refresh is our rollout to the target and it has ended. `None`
/// when it ended well and everything on it is settled (the caller goes on as if
/// there were no rollout: up to date, or start again for stragglers).
fn ended(
    view: &GroupView,
    cluster: &ClusterView,
    intent: &Intent,
    r: &Refresh,
    target: &str,
    limits: Limits,
    now_ms: u64,
) -> Option<Step> {
    let from = r.ours.as_ref().map_or(0, |(_, from)| *from);
    let why = |r: &Refresh| {
        r.status_reason
            .clone()
            .or_else(|| r.rollback_reason.clone())
            .unwrap_or_else(|| format!("refresh {} ended {}", r.id, r.status))
    };
    let on_target = view.members.iter().any(|m| !m.leaving() && m.on(target));
    match &r.status {
        RefreshStatus::Successful => {
            if matches!(intent, Intent::Rollback { .. }) {
                return None;
            }
            match stability(view, cluster, target, limits, now_ms) {
                Err(why) => Some(Step::Restore {
                    version: from,
                    reason: format!("the cluster stayed unsteady after the refresh: {why}"),
                }),
                Ok(Some(since)) => Some(Step::Wait {
                    phase: Phase::Settling,
                    unsteady_since: Some(since),
                }),
                // Steady. Done, unless instances were left on another AMI
                // (launched while it ran): then carry on as if there were no
                // rollout.
                Ok(None) if replaced(view, target).0 == replaced(view, target).1 => {
                    Some(Step::Done {
                        outcome: Outcome::Succeeded,
                    })
                }
                Ok(None) => None,
            }
        }
        RefreshStatus::RollbackSuccessful => Some(Step::Done {
            outcome: Outcome::RolledBack { reason: why(r) },
        }),
        RefreshStatus::RollbackFailed => Some(Step::Done {
            outcome: Outcome::RollbackFailed { reason: why(r) },
        }),
        RefreshStatus::Failed | RefreshStatus::Cancelled if on_target => Some(Step::Restore {
            version: from,
            reason: format!("refresh {} ended {}: {}", r.id, r.status, why(r)),
        }),
        _ => Some(Step::Done {
            outcome: Outcome::Failed { reason: why(r) },
        }),
    }
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
        let launched = m.launched_ms?;
        let joined = matches!(
            m.ecs,
            Some((InstanceStatus::Active | InstanceStatus::Draining, _))
        );
        (m.on(ami)
            && m.lifecycle_state == LifecycleState::InService
            && launched >= refresh_started_ms
            && now_ms.saturating_sub(launched) > limits.registration_timeout_ms
            && !joined)
            .then(|| {
                format!(
                    "{} is an orphan: InService for {} s but {} in the cluster",
                    m.id,
                    now_ms.saturating_sub(launched) / 1000,
                    match &m.ecs {
                        None => "not registered".to_owned(),
                        Some((status, _)) => format!("{status:?}"),
                    }
                )
            })
    })
}

/// Steady: every service runs its desired count on one deployment and every new
/// instance has its agent connected. `Ok(None)` steady, `Ok(Some(since))`
/// unsteady since then (now if it just became so), `Err(why)` unsteady for
/// longer than the timeout.
fn stability(
    view: &GroupView,
    cluster: &ClusterView,
    ami: &str,
    limits: Limits,
    now_ms: u64,
) -> Result<Option<u64>, String> {
    let mut problems = cluster.unsteady_services.clone();
    problems.extend(view.members.iter().filter_map(|m| match &m.ecs {
        Some((InstanceStatus::Active, false)) if m.on(ami) => {
            Some(format!("{}: agent disconnected", m.id))
        }
        _ => None,
    }));
    if problems.is_empty() {
        return Ok(None);
    }
    let since = view.unsteady_since_ms.unwrap_or(now_ms);
    let unsteady_ms = now_ms.saturating_sub(since);
    if unsteady_ms > limits.stability_timeout_ms {
        Err(format!(
            "unsteady for {} s: {}",
            unsteady_ms / 1000,
            problems.join("; ")
        ))
    } else {
        Ok(Some(since))
    }
}

/// `(on the AMI, all)` among the group's instances that are not leaving.
pub fn replaced(view: &GroupView, ami: &str) -> (usize, usize) {
    let members: Vec<&Member> = view.members.iter().filter(|m| !m.leaving()).collect();
    (members.iter().filter(|m| m.on(ami)).count(), members.len())
}

/// Auto Scaling's MaxHealthyPercentage for `batch` instances at a time with
/// MinHealthyPercentage 100 (launch before terminate, full capacity kept).
pub fn max_healthy_percentage(batch: u32, desired: i32) -> i32 {
    let desired = u32::try_from(desired.max(1)).unwrap_or(1);
    let extra = (batch.saturating_mul(100) / desired).clamp(1, 100);
    100 + i32::try_from(extra).unwrap_or(100)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = "ami-0000000000000000a";
    const NEW: &str = "ami-0000000000000000b";
    const NOW: u64 = 10_000_000;
    const LIMITS: Limits = Limits {
        stability_timeout_ms: 600_000,
        registration_timeout_ms: 300_000,
    };

    fn member(id: &str, ami: &str) -> Member {
        Member {
            id: id.into(),
            lifecycle_state: "InService".into(),
            ami: Some(ami.into()),
            launched_ms: Some(1_000),
            ecs: Some((InstanceStatus::Active, true)),
        }
    }

    /// A group of three on version 4 (OLD), pinned.
    fn group(amis: &[&str]) -> GroupView {
        GroupView {
            name: "web".into(),
            desired_capacity: 3,
            template: Ok(TemplateRef {
                id: "lt-1".into(),
                version: "4".into(),
                number: 4,
                ami: Some(OLD.into()),
                ours: None,
            }),
            prepared: None,
            members: amis
                .iter()
                .enumerate()
                .map(|(i, ami)| member(&format!("i-{i}"), ami))
                .collect(),
            refreshes: vec![],
            refused_launches: vec![],
            unsteady_since_ms: None,
        }
    }

    fn ours(status: RefreshStatus) -> Refresh {
        Refresh {
            id: "r-1".into(),
            status,
            status_reason: None,
            started_ms: Some(500),
            percentage: Some(33),
            instances_to_update: Some(2),
            desired_version: Some(5),
            ours: Some((NEW.into(), 4)),
            rollback_reason: None,
        }
    }

    fn restore(status: RefreshStatus) -> Refresh {
        Refresh {
            id: "r-2".into(),
            desired_version: Some(4),
            ours: None,
            ..ours(status)
        }
    }

    fn run(view: &GroupView, intent: Intent) -> Step {
        let target = target_for(view, &intent, NEW).to_owned();
        decide(view, &ClusterView::default(), &intent, &target, LIMITS, NOW)
    }

    fn start() -> Intent {
        Intent::Start { force: false }
    }

    fn wait(phase: Phase) -> Step {
        Step::Wait {
            phase,
            unsteady_since: None,
        }
    }

    #[test]
    fn versions_of_ours_are_recognised_by_their_description() {
        let d = version_description(NEW, 4);
        assert_eq!(parse_version_description(&d), Some((NEW.to_owned(), 4)));
        assert_eq!(parse_version_description("made by terraform"), None);
        assert_eq!(
            parse_version_description("ecs-lifecycle ami-rollout: ami-zz from version 4"),
            None
        );
    }

    #[test]
    fn parameter_values() {
        assert_eq!(ami_from_parameter(NEW).unwrap(), NEW);
        let json = format!(
            r#"{{"schema_version":1,"image_name":"al2023-ami-ecs-hvm","image_id":"{NEW}","os":"Amazon Linux 2023"}}"#
        );
        assert_eq!(ami_from_parameter(&json).unwrap(), NEW);
        assert!(ami_from_parameter("{}").unwrap_err().contains("image_id"));
        assert!(
            ami_from_parameter("latest")
                .unwrap_err()
                .contains("neither")
        );
        assert!(
            ami_from_parameter(r#"{"image_id":"ami-nothex"}"#)
                .unwrap_err()
                .contains("not an AMI id")
        );
    }

    #[test]
    fn batch_size_becomes_max_healthy_percentage() {
        assert_eq!(max_healthy_percentage(1, 3), 133);
        assert_eq!(max_healthy_percentage(1, 200), 101);
        assert_eq!(max_healthy_percentage(2, 4), 150);
        assert_eq!(max_healthy_percentage(10, 4), 200);
        assert_eq!(max_healthy_percentage(1, 0), 200);
    }

    #[test]
    fn start_walks_pin_create_start() {
        let mut g = group(&[OLD, OLD, OLD]);
        if let Ok(t) = &mut g.template {
            t.version = "$Latest".into();
        }
        assert_eq!(run(&g, start()), Step::Pin { version: 4 });
        g = group(&[OLD, OLD, OLD]);
        assert_eq!(run(&g, start()), Step::CreateVersion { from: 4 });
        g.prepared = Some(5);
        assert_eq!(run(&g, start()), Step::StartRefresh { version: 5 });
    }

    #[test]
    fn floating_template_already_on_our_version_pins_its_source() {
        let mut g = group(&[OLD, OLD]);
        if let Ok(t) = &mut g.template {
            t.version = "$Latest".into();
            t.number = 5;
            t.ours = Some((NEW.into(), 4));
        }
        assert_eq!(run(&g, start()), Step::Pin { version: 4 });
    }

    #[test]
    fn nothing_to_do_when_every_instance_runs_the_target() {
        let mut g = group(&[NEW, NEW]);
        g.members.push(Member {
            lifecycle_state: "Terminating:Wait".into(),
            ..member("i-old", OLD)
        });
        assert_eq!(run(&g, start()), Step::UpToDate);
        assert_eq!(run(&g, Intent::Watch), Step::UpToDate);
        assert_eq!(run(&g, Intent::Status), Step::UpToDate);
    }

    #[test]
    fn watch_starts_nothing_new_but_resumes_a_prepared_version() {
        let mut g = group(&[OLD, OLD]);
        assert_eq!(run(&g, Intent::Watch), Step::Idle);
        // Crash between "new launch template version" and "start refresh".
        g.prepared = Some(5);
        assert_eq!(run(&g, Intent::Watch), Step::StartRefresh { version: 5 });
        assert_eq!(run(&g, Intent::Status), Step::Idle);
    }

    #[test]
    fn a_running_refresh_is_watched_and_never_started_twice() {
        let mut g = group(&[NEW, OLD, OLD]);
        g.prepared = Some(5);
        for status in [
            RefreshStatus::Pending,
            RefreshStatus::InProgress,
            RefreshStatus::Baking,
        ] {
            g.refreshes = vec![ours(status)];
            assert_eq!(run(&g, start()), wait(Phase::Rolling));
            assert_eq!(run(&g, Intent::Watch), wait(Phase::Rolling));
        }
        g.refreshes = vec![ours(RefreshStatus::RollbackInProgress)];
        assert_eq!(run(&g, start()), wait(Phase::RollingBack));
        g.refreshes = vec![ours(RefreshStatus::Cancelling)];
        assert_eq!(run(&g, Intent::Watch), wait(Phase::Cancelling));
    }

    #[test]
    fn a_refresh_that_is_not_ours_is_waited_for_not_rolled_back() {
        let mut g = group(&[OLD, OLD]);
        g.refreshes = vec![Refresh {
            ours: None,
            desired_version: Some(9),
            ..ours(RefreshStatus::InProgress)
        }];
        assert_eq!(run(&g, start()), wait(Phase::Foreign));
        assert_eq!(
            run(&g, Intent::Rollback { reason: "x".into() }),
            wait(Phase::Foreign)
        );
    }

    #[test]
    fn a_refused_launch_rolls_back() {
        let mut g = group(&[NEW, OLD, OLD]);
        g.refreshes = vec![ours(RefreshStatus::InProgress)];
        g.refused_launches = vec!["i-9: Lifecycle Action Completed with ABANDON Result".into()];
        match run(&g, Intent::Watch) {
            Step::Rollback { reason } => assert!(reason.contains("i-9"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_orphan_rolls_back_after_the_registration_timeout() {
        let mut g = group(&[OLD, OLD]);
        g.refreshes = vec![ours(RefreshStatus::InProgress)];
        let mut new = member("i-new", NEW);
        new.ecs = None;
        new.launched_ms = Some(NOW - 200_000);
        g.members.push(new.clone());
        assert_eq!(run(&g, Intent::Watch), wait(Phase::Rolling));
        g.members.pop();
        new.launched_ms = Some(NOW - 400_000);
        g.members.push(new.clone());
        match run(&g, Intent::Watch) {
            Step::Rollback { reason } => {
                assert!(reason.contains("i-new is an orphan"), "{reason}");
                assert!(reason.contains("not registered"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        // Still in Pending:Wait (launch-verify holds it): not yet an orphan.
        g.members.pop();
        new.lifecycle_state = "Pending:Wait".into();
        g.members.push(new);
        assert_eq!(run(&g, Intent::Watch), wait(Phase::Rolling));
    }

    #[test]
    fn unsteady_cluster_is_marked_then_rolled_back_past_the_timeout() {
        let mut g = group(&[NEW, OLD, OLD]);
        g.refreshes = vec![ours(RefreshStatus::InProgress)];
        let cluster = ClusterView {
            unsteady_services: vec!["web (1/2 running, 2 deployments)".into()],
        };
        let step = |g: &GroupView| decide(g, &cluster, &Intent::Watch, NEW, LIMITS, NOW);
        assert_eq!(
            step(&g),
            Step::Wait {
                phase: Phase::Rolling,
                unsteady_since: Some(NOW)
            }
        );
        g.unsteady_since_ms = Some(NOW - 60_000);
        assert_eq!(
            step(&g),
            Step::Wait {
                phase: Phase::Rolling,
                unsteady_since: Some(NOW - 60_000)
            }
        );
        g.unsteady_since_ms = Some(NOW - 700_000);
        match step(&g) {
            Step::Rollback { reason } => assert!(reason.contains("web (1/2"), "{reason}"),
            other => panic!("{other:?}"),
        }
        // Steady again: the marker goes.
        g.unsteady_since_ms = Some(NOW - 60_000);
        assert_eq!(run(&g, Intent::Watch), wait(Phase::Rolling));
    }

    #[test]
    fn a_new_instance_with_its_agent_disconnected_is_unsteady() {
        let mut g = group(&[OLD, OLD]);
        g.refreshes = vec![ours(RefreshStatus::InProgress)];
        let mut new = member("i-new", NEW);
        new.ecs = Some((InstanceStatus::Active, false));
        g.members.push(new);
        assert_eq!(
            run(&g, Intent::Watch),
            Step::Wait {
                phase: Phase::Rolling,
                unsteady_since: Some(NOW)
            }
        );
    }

    #[test]
    fn success_waits_for_a_steady_cluster_then_is_done() {
        let mut g = group(&[NEW, NEW, NEW]);
        g.refreshes = vec![ours(RefreshStatus::Successful)];
        assert_eq!(
            run(&g, Intent::Watch),
            Step::Done {
                outcome: Outcome::Succeeded
            }
        );
        let cluster = ClusterView {
            unsteady_services: vec!["web (1/2 running, 1 deployments)".into()],
        };
        assert_eq!(
            decide(&g, &cluster, &Intent::Watch, NEW, LIMITS, NOW),
            Step::Wait {
                phase: Phase::Settling,
                unsteady_since: Some(NOW)
            }
        );
        g.unsteady_since_ms = Some(NOW - 700_000);
        match decide(&g, &cluster, &Intent::Watch, NEW, LIMITS, NOW) {
            Step::Restore { version, reason } => {
                assert_eq!(version, 4);
                assert!(reason.contains("unsteady"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn failed_or_cancelled_refresh_restores_what_it_replaced() {
        for status in [RefreshStatus::Failed, RefreshStatus::Cancelled] {
            let mut g = group(&[NEW, OLD, OLD]);
            g.refreshes = vec![Refresh {
                status_reason: Some("health checks failed".into()),
                ..ours(status.clone())
            }];
            match run(&g, Intent::Watch) {
                Step::Restore { version, reason } => {
                    assert_eq!(version, 4);
                    assert!(reason.contains("health checks failed"), "{reason}");
                }
                other => panic!("{status:?}: {other:?}"),
            }
            // Nothing replaced: nothing to restore.
            let mut g = group(&[OLD, OLD, OLD]);
            g.refreshes = vec![ours(status.clone())];
            assert!(
                matches!(
                    run(&g, Intent::Watch),
                    Step::Done {
                        outcome: Outcome::Failed { .. }
                    }
                ),
                "{status:?}"
            );
        }
    }

    #[test]
    fn rollback_outcomes() {
        let mut g = group(&[OLD, OLD, OLD]);
        g.refreshes = vec![Refresh {
            rollback_reason: Some("orphan".into()),
            ..ours(RefreshStatus::RollbackSuccessful)
        }];
        assert_eq!(
            run(&g, Intent::Watch),
            Step::Done {
                outcome: Outcome::RolledBack {
                    reason: "orphan".into()
                }
            }
        );
        g.refreshes = vec![ours(RefreshStatus::RollbackFailed)];
        assert!(matches!(
            run(&g, Intent::Watch),
            Step::Done {
                outcome: Outcome::RollbackFailed { .. }
            }
        ));
        // A restore running, then done.
        g.refreshes = vec![
            restore(RefreshStatus::InProgress),
            ours(RefreshStatus::Failed),
        ];
        assert_eq!(run(&g, Intent::Watch), wait(Phase::Restoring));
        g.refreshes[0] = restore(RefreshStatus::Successful);
        assert!(matches!(
            run(&g, Intent::Watch),
            Step::Done {
                outcome: Outcome::RolledBack { .. }
            }
        ));
    }

    #[test]
    fn a_rolled_back_ami_needs_force_to_start_again() {
        let mut g = group(&[OLD, OLD, OLD]);
        g.prepared = Some(5);
        for history in [
            vec![ours(RefreshStatus::RollbackSuccessful)],
            vec![ours(RefreshStatus::Failed)],
            vec![
                restore(RefreshStatus::Successful),
                ours(RefreshStatus::Successful),
            ],
        ] {
            g.refreshes = history;
            match run(&g, start()) {
                Step::Blocked { why } => assert!(why.contains("force"), "{why}"),
                other => panic!("{other:?}"),
            }
            assert_eq!(
                run(&g, Intent::Start { force: true }),
                Step::StartRefresh { version: 5 }
            );
        }
    }

    #[test]
    fn manual_rollback() {
        let reason = || Intent::Rollback {
            reason: "bad latency".into(),
        };
        let mut g = group(&[NEW, OLD, OLD]);
        g.refreshes = vec![ours(RefreshStatus::InProgress)];
        assert!(matches!(run(&g, reason()), Step::Rollback { .. }));
        // After success: a refresh back to where it started.
        let mut g = group(&[NEW, NEW, NEW]);
        g.refreshes = vec![ours(RefreshStatus::Successful)];
        assert!(matches!(
            run(&g, reason()),
            Step::Restore { version: 4, .. }
        ));
        // Nothing of ours: refused.
        let g = group(&[OLD, OLD, OLD]);
        assert!(matches!(run(&g, reason()), Step::Blocked { .. }));
    }

    #[test]
    fn a_newer_ami_waits_for_the_running_rollout() {
        let newer = "ami-0000000000000000c";
        let mut g = group(&[NEW, OLD, OLD]);
        g.refreshes = vec![ours(RefreshStatus::InProgress)];
        let intent = start();
        let target = target_for(&g, &intent, newer).to_owned();
        assert_eq!(target, newer);
        assert_eq!(
            decide(&g, &ClusterView::default(), &intent, &target, LIMITS, NOW),
            wait(Phase::Rolling)
        );
        // Once it is over, the newer AMI starts.
        g.refreshes = vec![ours(RefreshStatus::Successful)];
        g.members = vec![member("i-0", NEW), member("i-1", NEW)];
        assert_eq!(
            decide(&g, &ClusterView::default(), &intent, &target, LIMITS, NOW),
            Step::CreateVersion { from: 4 }
        );
    }

    #[test]
    fn groups_that_cannot_be_rolled_say_why() {
        let mut g = group(&[OLD]);
        g.template = Err("uses a launch configuration".into());
        assert_eq!(
            run(&g, start()),
            Step::Unsupported {
                why: "uses a launch configuration".into()
            }
        );
    }
}
