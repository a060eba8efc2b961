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
                "AMI {target} refused for group {} ({check} check): {detail}; nothing was changed",
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
    fn set(key: &'static str, value: String) -> Self {
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
}
