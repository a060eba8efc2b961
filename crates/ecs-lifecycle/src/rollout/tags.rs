//! What the rollout writes on AWS resources to find its way back: the
//! description of the launch template versions it makes, and its marker tags
//! on the group (their keys, their values, and which of them a step writes).
//!
//! What cannot be observed after the fact is kept in tags on the group:
//! since when the cluster has been unsteady ([`UNSTEADY_TAG`]), which
//! services were already unsteady when the rollout started ([`BASELINE_TAG`]),
//! which AMI was rolled back, when ([`REFUSED_AMI_TAG`]: the refresh history
//! ages out, the tag does not), and which refresh's outcome was reported
//! ([`REPORTED_TAG`]).

use serde::Serialize;

use crate::rollout::ami::is_ami_id;
use crate::rollout::step::{Intent, Step};
use crate::rollout::view::{ClusterView, GroupView};
use crate::time::{parse_rfc3339, rfc3339_secs};

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
        Refusal {
            ami: ami.to_owned(),
            at: rfc3339_secs(at_ms),
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
        if !is_ami_id(ami) || parse_rfc3339(at).is_none() {
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
pub(super) fn digest(name: &str) -> String {
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

    pub(super) fn remove(key: &'static str) -> Self {
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
    after.extend(unsteady_change(view, step));
    let (b, a) = baseline_changes(view, cluster, step);
    before.extend(b);
    after.extend(a);
    let (b, a) = refusal_changes(view, intent, step, target, newer_than_refused, now_ms);
    before.extend(b);
    after.extend(a);
    (before, after)
}

/// Since when the cluster has been unsteady: only while waiting.
fn unsteady_change(view: &GroupView, step: &Step) -> Option<TagChange> {
    let unsteady = match step {
        Step::Wait { unsteady_since, .. } => *unsteady_since,
        _ => None,
    };
    (unsteady != view.unsteady_since_ms).then(|| match unsteady {
        Some(ms) => TagChange::set(UNSTEADY_TAG, ms.to_string()),
        None => TagChange::remove(UNSTEADY_TAG),
    })
}

/// The baseline: taken as the refresh starts (before), shrunk as its
/// services recover, removed when the rollout is settled (after).
fn baseline_changes(
    view: &GroupView,
    cluster: &ClusterView,
    step: &Step,
) -> (Option<TagChange>, Option<TagChange>) {
    match step {
        Step::StartRefresh { .. } => {
            // (decide refuses a start whose baseline does not fit.)
            let b = Baseline::of(&cluster.unsteady()).unwrap_or_default();
            let before = if b.is_empty() {
                view.baseline
                    .is_some()
                    .then(|| TagChange::remove(BASELINE_TAG))
            } else {
                (view.baseline.as_ref() != Some(&b))
                    .then(|| TagChange::set(BASELINE_TAG, b.value()))
            };
            (before, None)
        }
        Step::Wait { .. } => {
            let after = view.baseline.as_ref().and_then(|b| {
                let left = b.still_unsteady(&cluster.unsteady());
                if left.is_empty() {
                    Some(TagChange::remove(BASELINE_TAG))
                } else {
                    (left != *b).then(|| TagChange::set(BASELINE_TAG, left.value()))
                }
            });
            (None, after)
        }
        s if s.is_settled() && view.baseline.is_some() => {
            (None, Some(TagChange::remove(BASELINE_TAG)))
        }
        _ => (None, None),
    }
}

/// The refusal of a rolled-back AMI: lifted before a rollout that `force` or
/// a newer AMI allows, recorded after a rollback or restore, or when the
/// rollout is seen to have ended badly.
fn refusal_changes(
    view: &GroupView,
    intent: &Intent,
    step: &Step,
    target: &str,
    newer_than_refused: bool,
    now_ms: u64,
) -> (Option<TagChange>, Option<TagChange>) {
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
        (lift.then(|| TagChange::remove(REFUSED_AMI_TAG)), None)
    } else if matches!(step, Step::Rollback { .. } | Step::Restore { .. }) {
        (None, (!tag_names_target).then(refuse))
    } else if !tag_names_target
        && !view.refreshes.first().is_some_and(|r| r.status.is_active())
        && view.undone(target).is_some()
    {
        // Seen ended badly (Auto Scaling's own rollback, a failed restore, a
        // refused start): recorded before the refresh history ages out.
        (None, Some(refuse()))
    } else {
        (None, None)
    }
}

#[cfg(test)]
#[path = "tags_tests.rs"]
mod tests;
