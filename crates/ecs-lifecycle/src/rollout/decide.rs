//! The AMI rollout's decision: from what one look at a group and its cluster
//! shows, the one next step. Pure (no I/O, the clock is an argument), so every
//! failure and resume case is a table test.
//!
//! The rollout keeps no state of its own beyond its marker tags on the group.
//! What it has done is read back from AWS every time:
//! - the *intent* is a launch template version this tool created, recognised by
//!   its description ([`version_description`]): it names the AMI and the version
//!   it was copied from, so a crash between creating it and starting the
//!   refresh is resumed by finding it;
//! - the *progress* is the group's instance refreshes (Auto Scaling keeps their
//!   history): the newest one whose desired version is ours is the rollout;
//! - a rollback is a refresh that ended `RollbackSuccessful` (Auto Scaling's own
//!   rollback) or a later refresh back to the version the rollout started from
//!   (a *restore*), and blocks the same AMI until an operator forces it;
//! - what cannot be observed after the fact is kept in tags on the group:
//!   since when the cluster has been unsteady ([`UNSTEADY_TAG`]), which
//!   services were already unsteady when the rollout started
//!   ([`BASELINE_TAG`]), and which AMI was rolled back, when
//!   ([`REFUSED_AMI_TAG`]: the refresh history ages out, the tag does not).

use serde::Serialize;

use crate::model::{
    Image, InstanceStatus, InstanceTypeInfo, LifecycleState, Refresh, RefreshStatus,
};

/// Prefix of the launch template versions this tool creates.
pub const VERSION_MARK: &str = "ecs-lifecycle ami-rollout:";

/// The tag on a group that remembers since when (epoch ms) its cluster has been
/// unsteady during a rollout.
pub const UNSTEADY_TAG: &str = "ecs-lifecycle:rollout-unsteady-since";

/// The tag on a group that refuses an AMI that was rolled back, until a newer
/// AMI is rolled out or an operator starts it with `force`. Value:
/// `<ami-id> <RFC 3339 UTC time of the rollback>`, e.g.
/// `ami-0123456789abcdef0 2026-11-21T03:12:09Z` (other tools read it: keep the
/// key and the format).
pub const REFUSED_AMI_TAG: &str = "ecs-lifecycle:refused-ami";

/// The tag on a group that remembers the services that were already unsteady
/// when its rollout's refresh started (the baseline): space-separated names,
/// or `h:<fnv-1a hex>` digests of them when the names do not fit in a tag.
pub const BASELINE_TAG: &str = "ecs-lifecycle:rollout-baseline";

/// The tag on a group that names the newest refresh whose outcome has been
/// reported (metrics, notification), so that each watch after it says nothing
/// again.
pub const REPORTED_TAG: &str = "ecs-lifecycle:rollout-reported";

/// Auto Scaling's limit on a tag value.
const TAG_VALUE_MAX: usize = 256;

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

/// A refused AMI, as [`REFUSED_AMI_TAG`] records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    pub ami: String,
    /// When it was rolled back (RFC 3339, UTC).
    pub at: String,
}

impl Refusal {
    /// The refusal of `ami`, rolled back at `at_ms`.
    pub fn new(ami: &str, at_ms: u64) -> Refusal {
        let at = aws_smithy_types::DateTime::from_secs(i64::try_from(at_ms / 1000).unwrap_or(0))
            .fmt(aws_smithy_types::date_time::Format::DateTime)
            .unwrap_or_default();
        Refusal {
            ami: ami.to_owned(),
            at,
        }
    }

    /// The tag's value: `<ami-id> <RFC 3339 time>`.
    pub fn value(&self) -> String {
        format!("{} {}", self.ami, self.at)
    }

    /// Reads the tag's value; the error says what is wrong with it.
    pub fn parse(value: &str) -> Result<Refusal, String> {
        let bad = || {
            format!(
                "the group's tag {REFUSED_AMI_TAG} is {value:?}, not \"<ami-id> <RFC 3339 time>\": fix or delete it, or start with \"force\": true"
            )
        };
        let (ami, at) = value.trim().split_once(' ').ok_or_else(bad)?;
        let at = at.trim();
        if !is_ami_id(ami)
            || aws_smithy_types::DateTime::from_str(
                at,
                aws_smithy_types::date_time::Format::DateTime,
            )
            .is_err()
        {
            return Err(bad());
        }
        Ok(Refusal {
            ami: ami.to_owned(),
            at: at.to_owned(),
        })
    }
}

/// The services that were unsteady when a rollout's refresh started
/// ([`BASELINE_TAG`]): they do not count against the rollout.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Baseline {
    /// Service names, or `h:<digest>` of them.
    entries: Vec<String>,
}

/// FNV-1a (32 bits) of a service name, as a baseline entry.
fn digest(name: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in name.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("h:{h:08x}")
}

impl Baseline {
    /// The baseline of these services, in a tag value: their names if they fit,
    /// otherwise their digests; `Err` when even those do not fit.
    pub fn of(names: &[String]) -> Result<Baseline, String> {
        let mut names: Vec<String> = names.to_vec();
        names.sort();
        names.dedup();
        let fits = |entries: &[String]| entries.join(" ").len() <= TAG_VALUE_MAX;
        if fits(&names) {
            return Ok(Baseline { entries: names });
        }
        let digests: Vec<String> = names.iter().map(|n| digest(n)).collect();
        if fits(&digests) {
            return Ok(Baseline { entries: digests });
        }
        Err(format!(
            "{} services are unsteady before the rollout, more than its baseline ({BASELINE_TAG}) can remember; settle them first: {}",
            names.len(),
            names.join(", ")
        ))
    }

    pub fn parse(value: &str) -> Baseline {
        Baseline {
            entries: value.split_whitespace().map(str::to_owned).collect(),
        }
    }

    pub fn value(&self) -> String {
        self.entries.join(" ")
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.entries.iter().any(|e| e == name || *e == digest(name))
    }

    /// The entries of services still unsteady: one that recovered counts
    /// against the rollout from then on.
    pub fn still_unsteady(&self, unsteady: &[String]) -> Baseline {
        Baseline {
            entries: self
                .entries
                .iter()
                .filter(|e| unsteady.iter().any(|n| *n == **e || digest(n) == **e))
                .cloned()
                .collect(),
        }
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
    /// failed or cancelled (a launch hook abandoned them, EC2 had no capacity):
    /// `description: status message`.
    pub refused_launches: Vec<String>,
    pub unsteady_since_ms: Option<u64>,
    /// [`REFUSED_AMI_TAG`], read; `Err(why)` when its value is malformed.
    pub refused: Option<Result<Refusal, String>>,
    /// [`BASELINE_TAG`], read.
    pub baseline: Option<Baseline>,
    /// [`REPORTED_TAG`], read: the refresh whose outcome was reported.
    pub reported: Option<String>,
    /// The account that owns the group: its own AMIs may be rolled out.
    pub account_id: Option<String>,
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

    fn label(&self) -> String {
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
    /// `Some(when it opens)` while the maintenance window is closed: no new
    /// rollout starts.
    pub window_opens_ms: Option<u64>,
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
    /// The refresh back to the previous version ended Failed or Cancelled:
    /// instances may still run the refused AMI, and the group may launch it.
    /// An operator must look (`{"action": "rollback"}` tries the restore again).
    RestoreFailed {
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
    /// The AMI failed a check before anything was changed: `check` names it
    /// (`exists`, `state`, `owner`, `instance type`, `architecture`), `seen`
    /// the value found.
    Refused {
        check: String,
        seen: String,
        why: String,
    },
    /// A new rollout waits for the maintenance window (`ROLLOUT_WINDOW`),
    /// which opens at `opens` (RFC 3339).
    OutsideWindow { opens: String },
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
                | Step::Refused { .. }
                | Step::OutsideWindow { .. }
                | Step::Done { .. }
        )
    }

    /// The steps of a rollout to the target that change something: the AMI
    /// is checked before any of them ([`vet`]).
    pub fn starts_rollout(&self) -> bool {
        matches!(
            self,
            Step::Pin { .. } | Step::CreateVersion { .. } | Step::StartRefresh { .. }
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
fn ended_for_capacity(r: &Refresh) -> bool {
    [&r.status_reason, &r.rollback_reason]
        .into_iter()
        .flatten()
        .any(|reason| is_capacity_failure(reason))
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
    let step = next_step(view, cluster, intent, target, limits, now_ms);
    // A rollout's refresh starts with its baseline: the services already
    // unsteady then. It must fit in its tag.
    if let Step::StartRefresh { .. } = step
        && let Err(why) = Baseline::of(&cluster.unsteady())
    {
        return Step::Blocked { why };
    }
    step
}

fn next_step(
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
    let undone = undone(view, target);
    let failed_restore = failed_restore(view, target);
    let start_closed = || {
        limits
            .window_opens_ms
            .map(|ms| Step::OutsideWindow { opens: rfc3339(ms) })
    };

    match intent {
        Intent::Rollback { .. } => match newest_ours.map(|i| &view.refreshes[i]) {
            Some(r) if undone.is_none() && on_target > 0 => Step::Restore {
                version: r.ours.as_ref().map_or(template.number, |(_, from)| *from),
                reason: format!("requested by an operator after refresh {}", r.id),
            },
            // The restore failed: an operator asks for it again.
            Some(r) if on_target > 0 && failed_restore.is_some() => Step::Restore {
                version: r.ours.as_ref().map_or(template.number, |(_, from)| *from),
                reason: format!(
                    "requested by an operator: the restore after refresh {} again ({})",
                    r.id,
                    failed_restore
                        .map(|f| format!("refresh {} ended {}", f.id, f.status))
                        .unwrap_or_default()
                ),
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
                // in between): carry on, unless the AMI was refused since (the
                // refresh history that recorded it has aged out).
                if let Some(why) = refused_by_tag(view, target) {
                    return Step::Blocked { why };
                }
                if let Some(closed) = start_closed() {
                    return closed;
                }
                return Step::StartRefresh { version };
            }
            match (undone, newest) {
                (Some(ours), Some(last))
                    if last.ours.is_none() && last.desired_version == restore_to =>
                {
                    let reason = format!(
                        "refresh {} {} the group back to version {} after refresh {}{}",
                        last.id,
                        if last.status == RefreshStatus::Successful {
                            "took"
                        } else {
                            "did not take"
                        },
                        restore_to.unwrap_or_default(),
                        ours.id,
                        if last.status == RefreshStatus::Successful {
                            String::new()
                        } else {
                            format!(
                                ": it ended {}{}; instances may still run {target} and the group may launch it",
                                last.status,
                                last.status_reason
                                    .as_deref()
                                    .map(|s| format!(" ({s})"))
                                    .unwrap_or_default()
                            )
                        }
                    );
                    Step::Done {
                        outcome: if last.status == RefreshStatus::Successful {
                            Outcome::RolledBack { reason }
                        } else {
                            Outcome::RestoreFailed { reason }
                        },
                    }
                }
                _ if all_on_target && !members.is_empty() => Step::UpToDate,
                _ => Step::Idle,
            }
        }
        Intent::Start { force } => {
            if all_on_target {
                return Step::UpToDate;
            }
            if !force {
                if let Some(r) = undone {
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
                if let Some(why) = refused_by_tag(view, target) {
                    return Step::Blocked { why };
                }
            }
            if let Some(closed) = start_closed() {
                return closed;
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

/// The newest rollout of ours to the target, if a later refresh undid it or
/// it ended badly for a reason of its own (not for capacity). Only meaningful
/// when no refresh is running.
fn undone<'a>(view: &'a GroupView, target: &str) -> Option<&'a Refresh> {
    let i = view
        .refreshes
        .iter()
        .position(|r| r.ours.as_ref().is_some_and(|(ami, _)| ami == target))?;
    let r = &view.refreshes[i];
    (i > 0 || (r.status != RefreshStatus::Successful && !ended_for_capacity(r))).then_some(r)
}

/// The newest refresh, if it is a restore after our rollout to the target and
/// it ended without taking the group back.
fn failed_restore<'a>(view: &'a GroupView, target: &str) -> Option<&'a Refresh> {
    let ours = view
        .refreshes
        .iter()
        .position(|r| r.ours.as_ref().is_some_and(|(ami, _)| ami == target))?;
    let from = view.refreshes[ours].ours.as_ref().map(|(_, from)| *from);
    let last = view.refreshes.first()?;
    (ours > 0
        && last.ours.is_none()
        && last.desired_version == from
        && !last.status.is_active()
        && last.status != RefreshStatus::Successful)
        .then_some(last)
}

/// Why a start of the target is refused by [`REFUSED_AMI_TAG`], if it is.
fn refused_by_tag(view: &GroupView, target: &str) -> Option<String> {
    match view.refused.as_ref()? {
        Ok(r) if r.ami == target => Some(format!(
            "{target} was rolled back at {} (the group's tag {REFUSED_AMI_TAG}); start it with \"force\": true to try again, or publish a newer AMI",
            r.at
        )),
        Ok(_) => None,
        Err(why) => Some(why.clone()),
    }
}

fn rfc3339(ms: u64) -> String {
    Refusal::new("ami-00000000", ms).at
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
    // A launch EC2 could not make for capacity or a limit is Auto Scaling's to
    // retry; any other refused launch is the AMI's.
    if let Some(refused) = view
        .refused_launches
        .iter()
        .find(|l| !is_capacity_failure(l))
    {
        return Step::Rollback {
            reason: format!("a new instance was refused at launch: {refused}"),
        };
    }
    let started = r.started_ms.unwrap_or(0);
    if let Some(orphan) = orphan(view, ami, started, limits, now_ms) {
        return Step::Rollback { reason: orphan };
    }
    if let Some(sick) = never_healthy(view, ami, started, limits, now_ms) {
        return Step::Rollback { reason: sick };
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
        // EC2 had no capacity: not the AMI's fault, nothing to restore; a
        // later start tries again.
        RefreshStatus::Failed | RefreshStatus::Cancelled if ended_for_capacity(r) => {
            Some(Step::Done {
                outcome: Outcome::Failed {
                    reason: format!(
                        "refresh {} ended {} for want of EC2 capacity ({}); not blamed on {target}: the next start tries again",
                        r.id,
                        r.status,
                        why(r)
                    ),
                },
            })
        }
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
        let launched = m.launched_ms?;
        (m.on(ami)
            && !m.healthy
            && m.lifecycle_state == LifecycleState::InService
            && launched >= refresh_started_ms
            && now_ms.saturating_sub(launched) > limits.registration_timeout_ms)
            .then(|| {
                format!(
                    "{} never became healthy: Auto Scaling reports it Unhealthy {} s after its launch",
                    m.id,
                    now_ms.saturating_sub(launched) / 1000
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

/// Steady: no service counts against the rollout ([`judge`]). `Ok(None)`
/// steady, `Ok(Some(since))` unsteady since then (now if it just became so),
/// `Err(why)` unsteady for longer than the timeout.
fn stability(
    view: &GroupView,
    cluster: &ClusterView,
    ami: &str,
    limits: Limits,
    now_ms: u64,
) -> Result<Option<u64>, String> {
    let problems = judge(view, cluster, ami).blamed;
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

/// What the AMI of a rollout is checked against ([`vet`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageFacts {
    /// DescribeImages of the target (and of a refused AMI, if the group's tag
    /// names another one).
    pub images: Vec<Image>,
    /// DescribeInstanceTypes of the group's instance type.
    pub instance_types: Vec<InstanceTypeInfo>,
}

/// Checks the AMI before a rollout changes anything: it exists, is
/// `available`, is owned by Amazon, the group's account or an owner of
/// `ALLOWED_AMI_OWNERS`, and its architecture fits the group's instance type.
/// `Err` is the [`Step::Refused`] naming the AMI, the check and what was seen.
pub fn vet(
    view: &GroupView,
    target: &str,
    facts: &ImageFacts,
    allowed_owners: &[String],
) -> Result<(), Step> {
    let refuse = |check: &str, seen: String, detail: String| {
        Err(Step::Refused {
            check: check.to_owned(),
            why: format!(
                "AMI {target} refused for group {} ({check} check, seen {seen}): {detail}; nothing was changed",
                view.name
            ),
            seen,
        })
    };
    let Some(image) = facts.images.iter().find(|i| i.id == target) else {
        return refuse(
            "exists",
            "not found".into(),
            "DescribeImages does not know it (deregistered, or not shared with this account)"
                .into(),
        );
    };
    if !image.state.is_available() {
        return refuse(
            "state",
            image.state.to_string(),
            format!("its state is {}, not available", image.state),
        );
    }
    let owner = image.owner_id.as_deref().unwrap_or("unknown");
    let amazon = image.owner_alias.as_deref() == Some("amazon");
    let own = view.account_id.as_deref().is_some_and(|a| a == owner);
    if !(amazon || own || allowed_owners.iter().any(|o| o == owner)) {
        let seen = match image.owner_alias.as_deref() {
            Some(alias) => format!("{owner} ({alias})"),
            None => owner.to_owned(),
        };
        return refuse(
            "owner",
            seen.clone(),
            format!(
                "its owner is {seen}: neither Amazon, this account{} nor one of ALLOWED_AMI_OWNERS",
                view.account_id
                    .as_deref()
                    .map(|a| format!(" ({a})"))
                    .unwrap_or_default()
            ),
        );
    }
    let Ok(template) = &view.template else {
        return Ok(());
    };
    let Some(instance_type) = template.instance_type.as_deref() else {
        return refuse(
            "instance type",
            "none".into(),
            format!(
                "launch template {} version {} names no instance type to check its architecture against",
                template.id, template.number
            ),
        );
    };
    let Some(info) = facts
        .instance_types
        .iter()
        .find(|t| t.instance_type == instance_type)
    else {
        return refuse(
            "instance type",
            instance_type.to_owned(),
            format!(
                "DescribeInstanceTypes does not know the group's instance type {instance_type}"
            ),
        );
    };
    let arch = image.architecture.as_deref().unwrap_or("unknown");
    if !info.architectures.iter().any(|a| a == arch) {
        return refuse(
            "architecture",
            arch.to_owned(),
            format!(
                "its architecture is {arch}, but the group's instance type {instance_type} runs {}",
                info.architectures.join(", ")
            ),
        );
    }
    Ok(())
}

/// A change to one of the group's marker tags: set to `Some(value)` or
/// removed (`None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagChange {
    pub key: &'static str,
    pub value: Option<String>,
}

impl TagChange {
    pub fn set(key: &'static str, value: String) -> Self {
        TagChange {
            key,
            value: Some(value),
        }
    }

    fn remove(key: &'static str) -> Self {
        TagChange { key, value: None }
    }
}

/// The tag writes that go with taking `step`: `(before, after)` its own call.
/// Before: what the step relies on (a rollout's baseline; clearing a refusal
/// that `force` or a newer AMI lifts), so that a failed write changes nothing.
/// After: what records it (the refusal of a rolled-back AMI, the unsteady
/// marker, the shrinking baseline), so that a failed write never holds up a
/// rollback. `newer_than_refused` says, for a rollout starting while the tag
/// refuses another AMI, whether the target is newer (or the refused AMI gone).
pub fn tag_changes(
    view: &GroupView,
    cluster: &ClusterView,
    intent: &Intent,
    step: &Step,
    target: &str,
    newer_than_refused: bool,
    now_ms: u64,
) -> (Vec<TagChange>, Vec<TagChange>) {
    let (mut before, mut after) = (Vec::new(), Vec::new());

    // Since when the cluster has been unsteady: only while waiting.
    let unsteady = match step {
        Step::Wait { unsteady_since, .. } => *unsteady_since,
        _ => None,
    };
    if unsteady != view.unsteady_since_ms {
        after.push(match unsteady {
            Some(ms) => TagChange::set(UNSTEADY_TAG, ms.to_string()),
            None => TagChange::remove(UNSTEADY_TAG),
        });
    }

    // The baseline: taken as the refresh starts, shrunk as its services
    // recover, removed when the rollout is settled.
    match step {
        Step::StartRefresh { .. } => {
            // (decide refuses a start whose baseline does not fit.)
            let b = Baseline::of(&cluster.unsteady()).unwrap_or_default();
            if b.is_empty() {
                if view.baseline.is_some() {
                    before.push(TagChange::remove(BASELINE_TAG));
                }
            } else if view.baseline.as_ref() != Some(&b) {
                before.push(TagChange::set(BASELINE_TAG, b.value()));
            }
        }
        Step::Wait { .. } => {
            if let Some(b) = &view.baseline {
                let left = b.still_unsteady(&cluster.unsteady());
                if left.is_empty() {
                    after.push(TagChange::remove(BASELINE_TAG));
                } else if left != *b {
                    after.push(TagChange::set(BASELINE_TAG, left.value()));
                }
            }
        }
        s if s.is_settled() && view.baseline.is_some() => {
            after.push(TagChange::remove(BASELINE_TAG));
        }
        _ => {}
    }

    // The refusal of a rolled-back AMI.
    let tag_names_target = matches!(&view.refused, Some(Ok(r)) if r.ami == target);
    let refuse = || TagChange::set(REFUSED_AMI_TAG, Refusal::new(target, now_ms).value());
    if step.starts_rollout() {
        let forced = matches!(intent, Intent::Start { force: true });
        let lift = match &view.refused {
            None => false,
            Some(Ok(r)) if r.ami == target => forced,
            Some(Ok(_)) => newer_than_refused,
            Some(Err(_)) => forced,
        };
        if lift {
            before.push(TagChange::remove(REFUSED_AMI_TAG));
        }
    } else if matches!(step, Step::Rollback { .. } | Step::Restore { .. }) {
        if !tag_names_target {
            after.push(refuse());
        }
    } else if !tag_names_target
        && !view.refreshes.first().is_some_and(|r| r.status.is_active())
        && undone(view, target).is_some()
    {
        // Seen ended badly (Auto Scaling's own rollback, a failed restore, a
        // refused start): recorded before the refresh history ages out.
        after.push(refuse());
    }
    (before, after)
}

/// Whether the target of a rollout that is about to start lifts the refusal
/// of another AMI: it was created after it, or the refused AMI is gone.
pub fn newer_than_refused(view: &GroupView, target: &str, facts: &ImageFacts) -> bool {
    let Some(Ok(refusal)) = &view.refused else {
        return false;
    };
    if refusal.ami == target {
        return false;
    }
    let created = |id: &str| {
        facts
            .images
            .iter()
            .find(|i| i.id == id)
            .map(|i| i.created_ms)
    };
    match (created(target), created(&refusal.ami)) {
        (_, None) => true,
        (Some(Some(t)), Some(Some(r))) => t > r,
        _ => false,
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

    const ACCOUNT: &str = "123456789012";
    const OLD: &str = "ami-0000000000000000a";
    const NEW: &str = "ami-0000000000000000b";
    const NOW: u64 = 10_000_000;
    const LIMITS: Limits = Limits {
        stability_timeout_ms: 600_000,
        registration_timeout_ms: 300_000,
        window_opens_ms: None,
    };

    fn member(id: &str, ami: &str) -> Member {
        Member {
            id: id.into(),
            lifecycle_state: "InService".into(),
            ami: Some(ami.into()),
            launched_ms: Some(1_000),
            ecs: Some((InstanceStatus::Active, true)),
            healthy: true,
        }
    }

    /// A service of the cluster not running its desired count, with tasks on
    /// these instances.
    fn unsteady(name: &str, running: i32, deployments: usize, on: &[&str]) -> ServiceView {
        ServiceView {
            name: name.into(),
            running,
            desired: 2,
            deployments,
            instances: Some(on.iter().map(|s| s.to_string()).collect()),
        }
    }

    fn cluster(services: Vec<ServiceView>) -> ClusterView {
        ClusterView { services }
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
                instance_type: Some("m5.large".into()),
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
            reported: None,
            refused: None,
            baseline: None,
            account_id: Some(ACCOUNT.into()),
        }
    }

    fn ours(status: RefreshStatus) -> Refresh {
        Refresh {
            id: "r-1".into(),
            status,
            status_reason: None,
            started_ms: Some(500),
            ended_ms: None,
            percentage: Some(33),
            instances_to_update: Some(2),
            desired_template: None,
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
        // (A service with two deployments counted before; now it is deploying
        // for reasons of its own: see below.)
        let cluster = cluster(vec![unsteady("web", 1, 1, &["i-0"])]);
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
        let cluster = cluster(vec![unsteady("web", 1, 1, &["i-1"])]);
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

    // ---------------------------------------------------------------- issue 12

    fn outcome_name(step: &Step) -> String {
        match step {
            Step::Done { outcome } => match outcome {
                Outcome::Succeeded => "succeeded",
                Outcome::RolledBack { .. } => "rolled_back",
                Outcome::Failed { .. } => "failed",
                Outcome::RollbackFailed { .. } => "rollback_failed",
                Outcome::RestoreFailed { .. } => "restore_failed",
            }
            .to_owned(),
            Step::Wait { phase, .. } => format!("wait {phase:?}"),
            Step::Restore { version, .. } => format!("restore {version}"),
            Step::StartRefresh { version } => format!("start {version}"),
            Step::Blocked { .. } => "blocked".to_owned(),
            Step::Idle => "idle".to_owned(),
            Step::UpToDate => "up_to_date".to_owned(),
            other => format!("{other:?}"),
        }
    }

    /// Every status of the rollout's own refresh (the newest), for a watch
    /// and a status look (the same) and a start, with one instance replaced
    /// and with none.
    #[test]
    fn every_refresh_status_of_the_rollout_refresh() {
        for (status, watch_some, watch_none, start_some) in [
            ("Pending", "wait Rolling", "wait Rolling", "wait Rolling"),
            ("InProgress", "wait Rolling", "wait Rolling", "wait Rolling"),
            ("Baking", "wait Rolling", "wait Rolling", "wait Rolling"),
            (
                "Cancelling",
                "wait Cancelling",
                "wait Cancelling",
                "wait Cancelling",
            ),
            (
                "RollbackInProgress",
                "wait RollingBack",
                "wait RollingBack",
                "wait RollingBack",
            ),
            // Succeeded but instances were left on the old AMI: a watch
            // starts nothing, a start replaces them.
            ("Successful", "idle", "idle", "start 5"),
            ("Failed", "restore 4", "failed", "blocked"),
            ("Cancelled", "restore 4", "failed", "blocked"),
            (
                "RollbackSuccessful",
                "rolled_back",
                "rolled_back",
                "blocked",
            ),
            (
                "RollbackFailed",
                "rollback_failed",
                "rollback_failed",
                "blocked",
            ),
            ("SomethingNew", "failed", "failed", "blocked"),
        ] {
            let s = RefreshStatus::parse(status);
            let mut some = group(&[NEW, OLD, OLD]);
            some.refreshes = vec![ours(s.clone())];
            some.prepared = (!s.is_active()).then_some(5);
            let mut none = group(&[OLD, OLD, OLD]);
            none.refreshes = vec![ours(s.clone())];
            assert_eq!(
                outcome_name(&run(&some, Intent::Watch)),
                watch_some,
                "{status}"
            );
            assert_eq!(
                outcome_name(&run(&some, Intent::Status)),
                watch_some,
                "{status}"
            );
            assert_eq!(
                outcome_name(&run(&none, Intent::Watch)),
                watch_none,
                "{status}"
            );
            assert_eq!(outcome_name(&run(&some, start())), start_some, "{status}");
        }
        // Succeeded with every instance replaced: done.
        let mut all = group(&[NEW, NEW, NEW]);
        all.refreshes = vec![ours(RefreshStatus::Successful)];
        assert_eq!(outcome_name(&run(&all, Intent::Watch)), "succeeded");
    }

    /// Every status of the restore (a refresh back to version 4 after our
    /// rollout failed): only a Successful restore is a rollback; any other end
    /// is restore_failed, which no start retries without force.
    #[test]
    fn every_refresh_status_of_the_restore_refresh() {
        for (status, watch) in [
            ("Pending", "wait Restoring"),
            ("InProgress", "wait Restoring"),
            ("Baking", "wait Restoring"),
            ("Cancelling", "wait Cancelling"),
            ("RollbackInProgress", "wait RollingBack"),
            ("Successful", "rolled_back"),
            ("Failed", "restore_failed"),
            ("Cancelled", "restore_failed"),
            ("RollbackSuccessful", "restore_failed"),
            ("RollbackFailed", "restore_failed"),
            ("SomethingNew", "restore_failed"),
        ] {
            let s = RefreshStatus::parse(status);
            let mut g = group(&[NEW, OLD, OLD]);
            g.refreshes = vec![
                Refresh {
                    status_reason: Some("instances failed to launch".into()),
                    ..restore(s.clone())
                },
                ours(RefreshStatus::Failed),
            ];
            g.prepared = (!s.is_active()).then_some(5);
            let step = run(&g, Intent::Watch);
            assert_eq!(outcome_name(&step), watch, "{status}");
            assert_eq!(run(&g, Intent::Status), step, "{status}");
            if s.is_active() {
                continue;
            }
            if watch == "restore_failed" {
                match &step {
                    Step::Done {
                        outcome: Outcome::RestoreFailed { reason },
                    } => {
                        assert!(
                            reason.contains("r-2") && reason.contains(status),
                            "{reason}"
                        );
                        assert!(reason.contains("instances failed to launch"), "{reason}");
                        assert!(reason.contains(NEW), "{reason}");
                    }
                    other => panic!("{other:?}"),
                }
                assert!(step.is_settled() && !step.changes_something());
                // An operator's rollback tries the restore again.
                match run(&g, Intent::Rollback { reason: "x".into() }) {
                    Step::Restore { version, reason } => {
                        assert_eq!(version, 4);
                        assert!(reason.contains("again"), "{reason}");
                    }
                    other => panic!("{status}: {other:?}"),
                }
            }
            // No start without force, whatever the restore did.
            assert_eq!(outcome_name(&run(&g, start())), "blocked", "{status}");
            assert_eq!(
                run(&g, Intent::Start { force: true }),
                Step::StartRefresh { version: 5 },
                "{status}"
            );
        }
    }

    #[test]
    fn a_refusal_outlives_the_refresh_history() {
        // The history has aged out; the group's tag still names the AMI, and
        // the version made for it is still in the template.
        let mut g = group(&[OLD, OLD, OLD]);
        g.prepared = Some(5);
        g.refused = Some(Ok(Refusal::new(NEW, NOW - 1_000)));
        for intent in [start(), Intent::Watch] {
            match run(&g, intent.clone()) {
                Step::Blocked { why } => {
                    assert!(
                        why.contains(REFUSED_AMI_TAG) && why.contains("force"),
                        "{why}"
                    );
                }
                other => panic!("{intent:?}: {other:?}"),
            }
        }
        assert_eq!(run(&g, Intent::Status), Step::Idle);
        assert_eq!(
            run(&g, Intent::Start { force: true }),
            Step::StartRefresh { version: 5 }
        );
        // Another AMI is not refused by it.
        g.prepared = None;
        let other = "ami-0000000000000000c";
        assert_eq!(
            decide(&g, &ClusterView::default(), &start(), other, LIMITS, NOW),
            Step::CreateVersion { from: 4 }
        );
        // A tag that cannot be read refuses every start but a forced one.
        g.refused = Some(Refusal::parse("garbage"));
        assert!(matches!(
            decide(&g, &ClusterView::default(), &start(), other, LIMITS, NOW),
            Step::Blocked { why } if why.contains("garbage") && why.contains(REFUSED_AMI_TAG)
        ));
        assert_eq!(
            run(&g, Intent::Start { force: true }),
            Step::CreateVersion { from: 4 }
        );
    }

    #[test]
    fn the_refusal_tag_value() {
        let r = Refusal::new(NEW, 1_795_226_529_123);
        assert_eq!(r.value(), format!("{NEW} 2026-11-21T02:02:09Z"));
        assert_eq!(Refusal::parse(&r.value()).unwrap(), r);
        for bad in [
            "",
            NEW,
            "ami-zz 2026-11-21T02:02:09Z",
            &format!("{NEW} yesterday"),
        ] {
            let why = Refusal::parse(bad).unwrap_err();
            assert!(
                why.contains(REFUSED_AMI_TAG) && why.contains("force"),
                "{why}"
            );
        }
    }

    fn changes(
        g: &GroupView,
        cluster: &ClusterView,
        intent: &Intent,
        step: &Step,
        newer: bool,
    ) -> (Vec<TagChange>, Vec<TagChange>) {
        tag_changes(g, cluster, intent, step, NEW, newer, NOW)
    }

    fn refused_now() -> TagChange {
        TagChange::set(REFUSED_AMI_TAG, Refusal::new(NEW, NOW).value())
    }

    #[test]
    fn a_rollback_is_recorded_on_the_group_and_lifted_by_force_or_a_newer_ami() {
        let c = ClusterView::default();
        let g = group(&[NEW, OLD, OLD]);
        // Rolling back or restoring records the refusal, after the call.
        for step in [
            Step::Rollback { reason: "x".into() },
            Step::Restore {
                version: 4,
                reason: "x".into(),
            },
        ] {
            assert_eq!(
                changes(&g, &c, &Intent::Watch, &step, false),
                (vec![], vec![refused_now()])
            );
        }
        // Seen ended badly (Auto Scaling's own rollback, a failed restore, a
        // start refused by the history): recorded too, once.
        let mut seen = group(&[OLD, OLD, OLD]);
        for history in [
            vec![ours(RefreshStatus::RollbackSuccessful)],
            vec![restore(RefreshStatus::Failed), ours(RefreshStatus::Failed)],
        ] {
            seen.refreshes = history;
            for intent in [Intent::Watch, start()] {
                let step = run(&seen, intent.clone());
                assert_eq!(
                    changes(&seen, &c, &intent, &step, false).1,
                    vec![refused_now()],
                    "{step:?}"
                );
            }
        }
        let mut recorded = seen.clone();
        recorded.refused = Some(Ok(Refusal::new(NEW, NOW - 1000)));
        let step = run(&recorded, Intent::Watch);
        assert_eq!(
            changes(&recorded, &c, &Intent::Watch, &step, false),
            (vec![], vec![])
        );
        // A success, or an end for want of capacity, refuses nothing.
        let mut fine = group(&[NEW, NEW, NEW]);
        fine.refreshes = vec![ours(RefreshStatus::Successful)];
        let step = run(&fine, Intent::Watch);
        assert_eq!(
            changes(&fine, &c, &Intent::Watch, &step, false),
            (vec![], vec![])
        );
        let mut capacity = group(&[OLD, OLD, OLD]);
        capacity.refreshes = vec![Refresh {
            status_reason: Some("InsufficientInstanceCapacity - no m5.large".into()),
            ..ours(RefreshStatus::Failed)
        }];
        let step = run(&capacity, Intent::Watch);
        assert_eq!(
            changes(&capacity, &c, &Intent::Watch, &step, false),
            (vec![], vec![])
        );

        // Lifted before the first change of a forced start ...
        let create = Step::CreateVersion { from: 4 };
        let force = Intent::Start { force: true };
        let lift = (vec![TagChange::remove(REFUSED_AMI_TAG)], vec![]);
        assert_eq!(changes(&recorded, &c, &force, &create, false), lift);
        // ... but not by an unforced one (it cannot start: blocked) ...
        assert_eq!(
            changes(&recorded, &c, &start(), &create, false),
            (vec![], vec![])
        );
        // ... and by a rollout of a newer AMI, not an older one.
        let mut other = group(&[OLD, OLD]);
        other.refused = Some(Ok(Refusal::new("ami-0000000000000000c", NOW - 1000)));
        assert_eq!(changes(&other, &c, &start(), &create, true), lift);
        assert_eq!(
            changes(&other, &c, &start(), &create, false),
            (vec![], vec![])
        );
        // A tag that cannot be read: force lifts it.
        other.refused = Some(Refusal::parse("garbage"));
        assert_eq!(changes(&other, &c, &force, &create, false), lift);
    }

    fn image(id: &str, created_ms: u64) -> Image {
        Image {
            id: id.into(),
            state: "available".into(),
            architecture: Some("x86_64".into()),
            owner_id: Some(ACCOUNT.into()),
            owner_alias: None,
            created_ms: Some(created_ms),
        }
    }

    #[test]
    fn a_newer_ami_is_one_created_after_the_refused_one_or_with_it_gone() {
        let refused = "ami-0000000000000000c";
        let mut g = group(&[OLD]);
        g.refused = Some(Ok(Refusal::new(refused, NOW)));
        let facts = |images: Vec<Image>| ImageFacts {
            images,
            instance_types: vec![],
        };
        assert!(newer_than_refused(
            &g,
            NEW,
            &facts(vec![image(NEW, 2_000), image(refused, 1_000)])
        ));
        assert!(!newer_than_refused(
            &g,
            NEW,
            &facts(vec![image(NEW, 1_000), image(refused, 2_000)])
        ));
        assert!(newer_than_refused(&g, NEW, &facts(vec![image(NEW, 1_000)])));
        assert!(!newer_than_refused(
            &g,
            refused,
            &facts(vec![image(refused, 1)])
        ));
        g.refused = None;
        assert!(!newer_than_refused(
            &g,
            NEW,
            &facts(vec![image(NEW, 2_000)])
        ));
    }

    fn x86() -> Vec<InstanceTypeInfo> {
        vec![InstanceTypeInfo {
            instance_type: "m5.large".into(),
            architectures: vec!["i386".into(), "x86_64".into()],
        }]
    }

    /// Every check of the AMI before a rollout changes anything, failing and
    /// passing; a refusal names the AMI, the check and the value seen.
    #[test]
    fn the_ami_is_checked_before_anything_changes() {
        let g = group(&[OLD, OLD]);
        let allowed = ["444455556666".to_owned()];
        let vet_with = |image: Option<Image>, types: Vec<InstanceTypeInfo>, g: &GroupView| {
            vet(
                g,
                NEW,
                &ImageFacts {
                    images: image.into_iter().collect(),
                    instance_types: types,
                },
                &allowed,
            )
        };
        let ok = image(NEW, 1);
        // Owned by the account itself, by Amazon, by an allowed owner.
        assert_eq!(vet_with(Some(ok.clone()), x86(), &g), Ok(()));
        let amazon = Image {
            owner_id: Some("591542846629".into()),
            owner_alias: Some("amazon".into()),
            ..ok.clone()
        };
        assert_eq!(vet_with(Some(amazon), x86(), &g), Ok(()));
        let partner = Image {
            owner_id: Some("444455556666".into()),
            ..ok.clone()
        };
        assert_eq!(vet_with(Some(partner), x86(), &g), Ok(()));

        let mut no_type = g.clone();
        if let Ok(t) = &mut no_type.template {
            t.instance_type = None;
        }
        let mut no_account = g.clone();
        no_account.account_id = None;
        for (image, types, view, check, seen) in [
            (None, x86(), &g, "exists", "not found"),
            (
                Some(Image {
                    state: "pending".into(),
                    ..ok.clone()
                }),
                x86(),
                &g,
                "state",
                "pending",
            ),
            (
                Some(Image {
                    state: "deregistered".into(),
                    ..ok.clone()
                }),
                x86(),
                &g,
                "state",
                "deregistered",
            ),
            (
                Some(Image {
                    owner_id: Some("999988887777".into()),
                    owner_alias: Some("aws-marketplace".into()),
                    ..ok.clone()
                }),
                x86(),
                &g,
                "owner",
                "999988887777 (aws-marketplace)",
            ),
            // Without the group's account known, its own images are not
            // taken for granted.
            (Some(ok.clone()), x86(), &no_account, "owner", ACCOUNT),
            (
                Some(Image {
                    architecture: Some("arm64".into()),
                    ..ok.clone()
                }),
                x86(),
                &g,
                "architecture",
                "arm64",
            ),
            (Some(ok.clone()), vec![], &g, "instance type", "m5.large"),
            (Some(ok.clone()), x86(), &no_type, "instance type", "none"),
        ] {
            match vet_with(image, types, view) {
                Err(Step::Refused {
                    check: c,
                    seen: s,
                    why,
                }) => {
                    assert_eq!((c.as_str(), s.as_str()), (check, seen));
                    assert!(why.contains(NEW) && why.contains(check), "{why}");
                    assert!(why.contains(seen), "{why}");
                    assert!(why.contains("nothing was changed"), "{why}");
                }
                other => panic!("{check}: {other:?}"),
            }
        }
        let refused = Step::Refused {
            check: "state".into(),
            seen: "pending".into(),
            why: String::new(),
        };
        assert!(refused.is_settled() && !refused.changes_something());
        // Checked: the steps that start changing things, never a rollback.
        for (step, checked) in [
            (Step::Pin { version: 4 }, true),
            (Step::CreateVersion { from: 4 }, true),
            (Step::StartRefresh { version: 5 }, true),
            (Step::Rollback { reason: "x".into() }, false),
            (
                Step::Restore {
                    version: 4,
                    reason: "x".into(),
                },
                false,
            ),
        ] {
            assert_eq!(step.starts_rollout(), checked, "{step:?}");
        }
    }

    #[test]
    fn only_services_the_rollout_can_have_disturbed_count_against_it() {
        let mut g = group(&[NEW, OLD, OLD]);
        g.refreshes = vec![ours(RefreshStatus::InProgress)];
        g.unsteady_since_ms = Some(NOW - 3_600_000);
        g.baseline = Some(Baseline::of(&["crashloop".to_owned()]).unwrap());
        let fargate = ServiceView {
            instances: Some(vec![]),
            ..unsteady("fargate-api", 0, 1, &[])
        };
        let elsewhere = unsteady("other-group", 1, 1, &["i-elsewhere"]);
        let excused = cluster(vec![
            unsteady("deploying", 1, 2, &["i-0"]),
            unsteady("crashloop", 0, 1, &["i-1"]),
            fargate,
            elsewhere,
        ]);
        let j = judge(&g, &excused, NEW);
        assert!(j.blamed.is_empty(), "{j:?}");
        assert_eq!(j.excused.len(), 4, "{j:?}");
        for why in [
            "deploying for reasons of its own",
            "already unsteady when the rollout started",
            "no task on the group's instances",
        ] {
            assert!(j.excused.iter().any(|e| e.contains(why)), "{why}: {j:?}");
        }
        // None of them rolls the rollout back, however long it lasts; the
        // marker goes (nothing counts).
        assert_eq!(
            decide(&g, &excused, &Intent::Watch, NEW, LIMITS, NOW),
            wait(Phase::Rolling)
        );
        // A service of the group's instances that became unsteady during
        // the rollout does; so does one whose tasks were not looked up.
        for blamed in [
            unsteady("web", 1, 1, &["i-0"]),
            ServiceView {
                instances: None,
                ..unsteady("web", 1, 1, &[])
            },
        ] {
            let mut services = excused.services.clone();
            services.push(blamed);
            match decide(&g, &cluster(services), &Intent::Watch, NEW, LIMITS, NOW) {
                Step::Rollback { reason } => {
                    assert!(reason.contains("web (1/2 running"), "{reason}");
                    assert!(!reason.contains("crashloop"), "{reason}");
                }
                other => panic!("{other:?}"),
            }
        }
        // A baseline of digests (the names did not fit) excuses the same.
        g.baseline = Some(Baseline::parse(&format!(
            "{} h:00000000",
            digest("crashloop")
        )));
        assert!(judge(&g, &excused, NEW).blamed.is_empty());
    }

    #[test]
    fn the_baseline_is_taken_as_the_refresh_starts_and_shrinks_as_services_recover() {
        let g = group(&[OLD, OLD]);
        let crash = cluster(vec![
            unsteady("crashloop", 0, 1, &["i-0"]),
            unsteady("api", 1, 1, &["i-1"]),
        ]);
        let start_refresh = Step::StartRefresh { version: 5 };
        let (before, after) = changes(&g, &crash, &start(), &start_refresh, false);
        assert_eq!(
            before,
            vec![TagChange::set(BASELINE_TAG, "api crashloop".into())]
        );
        assert!(after.is_empty());
        // Taken: the same again writes nothing; a steady cluster removes it.
        let mut taken = g.clone();
        taken.baseline = Some(Baseline::parse("api crashloop"));
        assert_eq!(
            changes(&taken, &crash, &start(), &start_refresh, false),
            (vec![], vec![])
        );
        assert_eq!(
            changes(
                &taken,
                &ClusterView::default(),
                &start(),
                &start_refresh,
                false
            )
            .0,
            vec![TagChange::remove(BASELINE_TAG)]
        );
        // While waiting, a service that recovered leaves it.
        let w = wait(Phase::Rolling);
        let api_only = cluster(vec![unsteady("api", 1, 1, &["i-1"])]);
        assert_eq!(
            changes(&taken, &api_only, &Intent::Watch, &w, false),
            (vec![], vec![TagChange::set(BASELINE_TAG, "api".into())])
        );
        assert_eq!(
            changes(&taken, &ClusterView::default(), &Intent::Watch, &w, false),
            (vec![], vec![TagChange::remove(BASELINE_TAG)])
        );
        // Over: removed.
        let done = Step::Done {
            outcome: Outcome::Succeeded,
        };
        assert_eq!(
            changes(&taken, &crash, &Intent::Watch, &done, false).1,
            vec![TagChange::remove(BASELINE_TAG)]
        );
        // The unsteady marker, as before: set while waiting, removed after.
        let marked = Step::Wait {
            phase: Phase::Rolling,
            unsteady_since: Some(NOW),
        };
        assert_eq!(
            changes(&g, &ClusterView::default(), &Intent::Watch, &marked, false).1,
            vec![TagChange::set(UNSTEADY_TAG, NOW.to_string())]
        );
        let mut was = g.clone();
        was.unsteady_since_ms = Some(NOW);
        assert_eq!(
            changes(&was, &ClusterView::default(), &Intent::Watch, &done, false).1,
            vec![TagChange::remove(UNSTEADY_TAG)]
        );
    }

    #[test]
    fn a_baseline_too_long_for_a_tag_is_digested_or_refused() {
        let names: Vec<String> = (0..12)
            .map(|i| format!("service-with-a-long-name-{i:02}"))
            .collect();
        let b = Baseline::of(&names).unwrap();
        assert!(b.value().len() <= 256, "{}", b.value());
        assert!(b.value().starts_with("h:"), "{}", b.value());
        assert!(names.iter().all(|n| b.contains(n)));
        assert!(!b.contains("another"));
        let many: Vec<String> = (0..30).map(|i| format!("s{i}")).collect();
        assert!(Baseline::of(&many).is_ok());
        let too_many: Vec<String> = (0..40)
            .map(|i| format!("service-{i:02}-of-a-big-cluster"))
            .collect();
        let why = Baseline::of(&too_many).unwrap_err();
        assert!(
            why.contains("40 services") && why.contains(BASELINE_TAG),
            "{why}"
        );
        // A start into such a cluster is refused, not started blind.
        let mut g = group(&[OLD, OLD]);
        g.prepared = Some(5);
        let crowded = cluster(too_many.iter().map(|n| unsteady(n, 0, 1, &[])).collect());
        assert!(matches!(
            decide(&g, &crowded, &start(), NEW, LIMITS, NOW),
            Step::Blocked { why } if why.contains("40 services")
        ));
    }

    #[test]
    fn capacity_failures_are_waited_out_not_blamed_on_the_ami() {
        for (message, capacity) in [
            (
                "Launching a new EC2 instance.  Status Reason: We currently do not have sufficient m5.large capacity in the Availability Zone you requested (us-east-1a). Our system will be working on provisioning additional capacity. Launching EC2 instance failed.",
                true,
            ),
            (
                "Launching a new EC2 instance: i-1: Could not launch On-Demand Instances. InsufficientInstanceCapacity - We currently do not have sufficient m5.large capacity.",
                true,
            ),
            (
                "Launching a new EC2 instance: i-1: Could not launch Spot Instances. InsufficientInstanceCapacity - There is no Spot capacity available that matches your request. Launching EC2 instance failed.",
                true,
            ),
            (
                "Launching a new EC2 instance: i-1: Could not launch On-Demand Instances. VcpuLimitExceeded - You have requested more vCPU capacity than your current vCPU limit of 32 allows.",
                true,
            ),
            (
                "Launching a new EC2 instance: i-1: Could not launch On-Demand Instances. InstanceLimitExceeded - Your quota allows for 0 more running instance(s).",
                true,
            ),
            (
                "Launching a new EC2 instance: i-9: Instance failed to complete user's Lifecycle Action: Lifecycle Action with token t was abandoned: Lifecycle Action Completed with ABANDON Result",
                false,
            ),
            (
                "Launching a new EC2 instance: i-1: The image id '[ami-1]' does not exist. Launching EC2 instance failed.",
                false,
            ),
        ] {
            assert_eq!(is_capacity_failure(message), capacity, "{message}");
        }
        let mut g = group(&[NEW, OLD, OLD]);
        g.refreshes = vec![ours(RefreshStatus::InProgress)];
        g.refused_launches = vec![
            "Launching a new EC2 instance: i-1: Could not launch On-Demand Instances. InsufficientInstanceCapacity - We currently do not have sufficient m5.large capacity.".into(),
        ];
        assert_eq!(run(&g, Intent::Watch), wait(Phase::Rolling));
        // Another refused launch among them still rolls back, naming it.
        g.refused_launches
            .push("i-9: Lifecycle Action Completed with ABANDON Result".into());
        match run(&g, Intent::Watch) {
            Step::Rollback { reason } => assert!(reason.contains("i-9"), "{reason}"),
            other => panic!("{other:?}"),
        }
        // A refresh that ended for capacity restores nothing and blocks no
        // later start.
        let mut ended = group(&[NEW, OLD, OLD]);
        ended.prepared = Some(5);
        ended.refreshes = vec![Refresh {
            status_reason: Some("VcpuLimitExceeded - You have requested more vCPU capacity".into()),
            ..ours(RefreshStatus::Failed)
        }];
        match run(&ended, Intent::Watch) {
            Step::Done {
                outcome: Outcome::Failed { reason },
            } => assert!(
                reason.contains("capacity") && reason.contains("next start"),
                "{reason}"
            ),
            other => panic!("{other:?}"),
        }
        assert_eq!(run(&ended, start()), Step::StartRefresh { version: 5 });
    }

    #[test]
    fn an_ami_that_boots_but_never_becomes_healthy_rolls_back() {
        let mut g = group(&[OLD, OLD]);
        g.refreshes = vec![ours(RefreshStatus::InProgress)];
        let mut sick = member("i-new", NEW);
        sick.healthy = false;
        sick.launched_ms = Some(NOW - 200_000);
        g.members.push(sick.clone());
        assert_eq!(run(&g, Intent::Watch), wait(Phase::Rolling));
        g.members.pop();
        sick.launched_ms = Some(NOW - 400_000);
        g.members.push(sick);
        match run(&g, Intent::Watch) {
            Step::Rollback { reason } => {
                assert!(reason.contains("i-new never became healthy"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        // An unhealthy instance on the old AMI is not the new AMI's.
        let mut g = group(&[OLD, OLD]);
        g.refreshes = vec![ours(RefreshStatus::InProgress)];
        g.members[0].healthy = false;
        assert_eq!(run(&g, Intent::Watch), wait(Phase::Rolling));
    }

    #[test]
    fn outside_the_window_nothing_new_starts_and_a_running_rollout_carries_on() {
        let closed = Limits {
            window_opens_ms: Some(1_795_226_400_000),
            ..LIMITS
        };
        let step = |g: &GroupView, intent: Intent| {
            let target = target_for(g, &intent, NEW).to_owned();
            decide(g, &ClusterView::default(), &intent, &target, closed, NOW)
        };
        let opens = Step::OutsideWindow {
            opens: "2026-11-21T02:00:00Z".into(),
        };
        let mut g = group(&[OLD, OLD]);
        assert_eq!(step(&g, start()), opens);
        assert_eq!(step(&g, Intent::Start { force: true }), opens);
        g.prepared = Some(5);
        assert_eq!(step(&g, Intent::Watch), opens);
        assert!(opens.is_settled() && !opens.changes_something());
        // Under way: watched, rolled back, restored as ever.
        g.members[0] = member("i-0", NEW);
        g.refreshes = vec![ours(RefreshStatus::InProgress)];
        assert_eq!(step(&g, Intent::Watch), wait(Phase::Rolling));
        assert!(matches!(
            step(&g, Intent::Rollback { reason: "x".into() }),
            Step::Rollback { .. }
        ));
        g.refreshes = vec![ours(RefreshStatus::Failed)];
        assert!(matches!(step(&g, Intent::Watch), Step::Restore { .. }));
        // Nothing to do is still nothing to do.
        let done = group(&[NEW, NEW]);
        assert_eq!(step(&done, start()), Step::UpToDate);
    }
}
