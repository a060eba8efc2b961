//! The AMI rollout's decision: from what one look at a group and its cluster
//! shows, the one next step. Pure (no I/O, the clock is an argument), so every
//! failure and resume case is a table test.
//!
//! [`Stage`] reads where the group's rollout stands from its refreshes;
//! [`decide`] is then a table of `(stage, intent)` rows, each a short function
//! of `Look`. What the rollout remembers, and where, is in
//! [`crate::rollout::view`] and [`crate::rollout::tags`].

use crate::model::{Refresh, RefreshStatus};
use crate::rollout::judge::{Steadiness, ended_for_capacity, fault, steadiness};
use crate::rollout::step::{Intent, Limits, Outcome, Phase, Step};
use crate::rollout::tags::Baseline;
use crate::rollout::view::{ClusterView, GroupView, TemplateRef, replaced};
use crate::time::rfc3339_secs;

/// The operator CLI reads the refusal's tag key here.
pub use crate::rollout::tags::REFUSED_AMI_TAG;

/// Where a group's rollout to the target stands, as its refreshes show it:
/// the rows of [`decide`]'s table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage<'a> {
    /// A refresh runs that the rollout waits for without judging it: Auto
    /// Scaling rolls one back or cancels one, our restore runs, or a refresh
    /// this tool did not start.
    Busy(Phase),
    /// Our refresh to `ami` is replacing instances.
    Rolling { refresh: &'a Refresh, ami: &'a str },
    /// Nothing runs; the newest refresh is our rollout to the target, and it
    /// succeeded.
    Succeeded(&'a Refresh),
    /// Nothing runs; the newest refresh is our rollout to the target, and it
    /// ended otherwise (rolled back, failed, cancelled).
    Ended(&'a Refresh),
    /// Nothing runs; our rollout to the target was undone and the newest
    /// refresh, back to the version it started from (our restore), has ended.
    Restored {
        rollout: &'a Refresh,
        restore: &'a Refresh,
    },
    /// Nothing runs, and the newest refresh is none of the above.
    Quiet,
}

impl<'a> Stage<'a> {
    /// Where the group's rollout to `target` stands.
    pub fn of(view: &'a GroupView, target: &str) -> Stage<'a> {
        let Some(newest) = view.refreshes.first() else {
            return Stage::Quiet;
        };
        if newest.status.is_active() {
            return Stage::running(view, newest);
        }
        match &newest.ours {
            Some((ami, _)) if ami == target => {
                if newest.status == RefreshStatus::Successful {
                    Stage::Succeeded(newest)
                } else {
                    Stage::Ended(newest)
                }
            }
            Some(_) => Stage::Quiet,
            None => match view.undone(target) {
                Some(rollout) if newest.desired_version == view.restore_to() => Stage::Restored {
                    rollout,
                    restore: newest,
                },
                _ => Stage::Quiet,
            },
        }
    }

    /// The newest refresh `r` is running.
    fn running(view: &'a GroupView, r: &'a Refresh) -> Stage<'a> {
        match (&r.status, &r.ours) {
            (RefreshStatus::RollbackInProgress, _) => Stage::Busy(Phase::RollingBack),
            (RefreshStatus::Cancelling, _) => Stage::Busy(Phase::Cancelling),
            (_, Some((ami, _))) => Stage::Rolling { refresh: r, ami },
            // Not ours. A refresh back to where our last rollout started is
            // our restore.
            (_, None) if r.desired_version.is_some() && r.desired_version == view.restore_to() => {
                Stage::Busy(Phase::Restoring)
            }
            (_, None) => Stage::Busy(Phase::Foreign),
        }
    }
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
    let look = Look {
        view,
        cluster,
        target,
        limits,
        now_ms,
    };
    let step = match (Stage::of(view, target), intent) {
        (Stage::Busy(phase), _) => look.wait(phase),
        (Stage::Rolling { .. }, Intent::Rollback { reason }) => Step::Rollback {
            reason: format!("requested by an operator: {reason}"),
        },
        (Stage::Rolling { refresh, ami }, _) => look.rolling(refresh, ami),
        // A start goes on from any end of a rollout: refused or, forced,
        // started again.
        (_, Intent::Start { force }) => look.start(template, *force),
        (Stage::Succeeded(r), Intent::Watch | Intent::Status) => look.succeeded(r),
        (Stage::Ended(r), _) => look.ended(r),
        (Stage::Restored { rollout, restore }, Intent::Watch | Intent::Status) => {
            look.restored(rollout, restore)
        }
        (_, Intent::Rollback { .. }) => look.rollback(),
        (_, Intent::Watch) => look.watch(),
        (_, Intent::Status) => look.at_rest(),
    };
    // A rollout's refresh starts with its baseline: the services already
    // unsteady then. It must fit in its tag.
    if let Step::StartRefresh { .. } = step
        && let Err(why) = Baseline::of(&cluster.unsteady())
    {
        return Step::Blocked { why };
    }
    step
}

/// What one decision looks at: a group that can be rolled, its cluster, the
/// target AMI, the limits and the time.
#[derive(Debug, Clone, Copy)]
struct Look<'a> {
    view: &'a GroupView,
    cluster: &'a ClusterView,
    target: &'a str,
    limits: Limits,
    now_ms: u64,
}

/// The version a refresh of ours was made from (where a restore goes back to).
fn source(r: &Refresh) -> i64 {
    r.ours.as_ref().map_or(0, |(_, from)| *from)
}

/// Why a refresh ended, in its own words if it has any.
fn why(r: &Refresh) -> String {
    r.status_reason
        .clone()
        .or_else(|| r.rollback_reason.clone())
        .unwrap_or_else(|| format!("refresh {} ended {}", r.id, r.status))
}

impl Look<'_> {
    /// Every staying instance runs the target.
    fn all_on_target(&self) -> bool {
        let (on, all) = replaced(self.view, self.target);
        on == all
    }

    /// Some staying instance runs the target.
    fn any_on_target(&self) -> bool {
        replaced(self.view, self.target).0 > 0
    }

    /// A new rollout waits while the maintenance window is closed.
    fn window_closed(&self) -> Option<Step> {
        self.limits.window_opens_ms.map(|ms| Step::OutsideWindow {
            opens: rfc3339_secs(ms),
        })
    }

    fn wait(&self, phase: Phase) -> Step {
        Step::Wait {
            phase,
            unsteady_since: self.view.unsteady_since_ms,
        }
    }

    /// Our refresh to `ami` runs: rolled back for what its new instances show
    /// against the AMI, or for a cluster unsteady too long; waited for
    /// otherwise.
    fn rolling(&self, r: &Refresh, ami: &str) -> Step {
        let Look {
            view,
            cluster,
            limits,
            now_ms,
            ..
        } = *self;
        if let Some(reason) = fault(view, r, ami, limits, now_ms) {
            return Step::Rollback { reason };
        }
        debug_assert!(r.status.is_rolling());
        let unsteady_since = match steadiness(view, cluster, ami, limits, now_ms) {
            Steadiness::Steady => None,
            Steadiness::Unsteady { since_ms } => Some(since_ms),
            Steadiness::TimedOut { why } => return Step::Rollback { reason: why },
        };
        Step::Wait {
            phase: Phase::Rolling,
            unsteady_since,
        }
    }

    /// Our rollout to the target succeeded: done once the cluster is steady,
    /// restored if it stays unsteady too long.
    fn succeeded(&self, r: &Refresh) -> Step {
        let Look {
            view,
            cluster,
            target,
            limits,
            now_ms,
        } = *self;
        match steadiness(view, cluster, target, limits, now_ms) {
            Steadiness::TimedOut { why } => Step::Restore {
                version: source(r),
                reason: format!("the cluster stayed unsteady after the refresh: {why}"),
            },
            Steadiness::Unsteady { since_ms } => Step::Wait {
                phase: Phase::Settling,
                unsteady_since: Some(since_ms),
            },
            Steadiness::Steady if self.all_on_target() => Step::Done {
                outcome: Outcome::Succeeded,
            },
            // Steady, but instances were left on another AMI (launched while
            // it ran): as if there were no rollout.
            Steadiness::Steady => self.at_rest(),
        }
    }

    /// Our rollout to the target ended otherwise than Successful: how it
    /// ended, or a restore of what it replaced.
    fn ended(&self, r: &Refresh) -> Step {
        match &r.status {
            RefreshStatus::RollbackSuccessful => Step::Done {
                outcome: Outcome::RolledBack { reason: why(r) },
            },
            RefreshStatus::RollbackFailed => Step::Done {
                outcome: Outcome::RollbackFailed { reason: why(r) },
            },
            // EC2 had no capacity: not the AMI's fault, nothing to restore; a
            // later start tries again.
            RefreshStatus::Failed | RefreshStatus::Cancelled if ended_for_capacity(r) => {
                Step::Done {
                    outcome: Outcome::Failed {
                        reason: format!(
                            "refresh {} ended {} for want of EC2 capacity ({}); not blamed on {}: the next start tries again",
                            r.id,
                            r.status,
                            why(r),
                            self.target
                        ),
                    },
                }
            }
            RefreshStatus::Failed | RefreshStatus::Cancelled if self.any_on_target() => {
                Step::Restore {
                    version: source(r),
                    reason: format!("refresh {} ended {}: {}", r.id, r.status, why(r)),
                }
            }
            _ => Step::Done {
                outcome: Outcome::Failed { reason: why(r) },
            },
        }
    }

    /// Our restore after the rollout to the target ended: rolled back if it
    /// took the group back, a failed restore otherwise.
    fn restored(&self, rollout: &Refresh, restore: &Refresh) -> Step {
        let took = restore.status == RefreshStatus::Successful;
        let reason = format!(
            "refresh {} {} the group back to version {} after refresh {}{}",
            restore.id,
            if took { "took" } else { "did not take" },
            self.view.restore_to().unwrap_or_default(),
            rollout.id,
            if took {
                String::new()
            } else {
                format!(
                    ": it ended {}{}; instances may still run {} and the group may launch it",
                    restore.status,
                    restore
                        .status_reason
                        .as_deref()
                        .map(|s| format!(" ({s})"))
                        .unwrap_or_default(),
                    self.target
                )
            }
        );
        Step::Done {
            outcome: if took {
                Outcome::RolledBack { reason }
            } else {
                Outcome::RestoreFailed { reason }
            },
        }
    }

    /// An operator asks for a rollback with no refresh running: a refresh
    /// back to where our rollout to the target started, if it left instances
    /// on the target and was not undone already (or its restore failed).
    fn rollback(&self) -> Step {
        let Some((_, r)) = self.view.newest_ours(self.target) else {
            return self.nothing_to_roll_back();
        };
        if !self.any_on_target() {
            return self.nothing_to_roll_back();
        }
        if self.view.undone(self.target).is_none() {
            return Step::Restore {
                version: source(r),
                reason: format!("requested by an operator after refresh {}", r.id),
            };
        }
        match self.view.failed_restore(self.target) {
            // The restore failed: an operator asks for it again.
            Some(f) => Step::Restore {
                version: source(r),
                reason: format!(
                    "requested by an operator: the restore after refresh {} again (refresh {} ended {})",
                    r.id, f.id, f.status
                ),
            },
            None => self.nothing_to_roll_back(),
        }
    }

    fn nothing_to_roll_back(&self) -> Step {
        Step::Blocked {
            why: format!("no rollout to {} to roll back", self.target),
        }
    }

    /// A start: from pinning a floating template, through our version, to
    /// the refresh; refused for an AMI that was rolled back unless forced.
    fn start(&self, template: &TemplateRef, force: bool) -> Step {
        if self.all_on_target() {
            return Step::UpToDate;
        }
        if !force {
            if let Some(r) = self.view.undone(self.target) {
                return Step::Blocked {
                    why: format!(
                        "the rollout to {} was rolled back (refresh {}, {}{}); start it with \"force\": true to try again",
                        self.target,
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
            if let Some(why) = self.view.refused_by_tag(self.target) {
                return Step::Blocked { why };
            }
        }
        if let Some(closed) = self.window_closed() {
            return closed;
        }
        if template.is_floating() {
            Step::Pin {
                version: template.rollout_source(),
            }
        } else if let Some(version) = self.view.prepared {
            Step::StartRefresh { version }
        } else {
            Step::CreateVersion {
                from: template.number,
            }
        }
    }

    /// A watch starts nothing new, except a rollout whose version was made
    /// but whose refresh never started (a crash in between): it carries on,
    /// unless the AMI was refused since (the refresh history that recorded it
    /// has aged out).
    fn watch(&self) -> Step {
        match (self.view.prepared, self.view.newest_ours(self.target)) {
            (Some(version), None) if !self.all_on_target() => {
                if let Some(why) = self.view.refused_by_tag(self.target) {
                    Step::Blocked { why }
                } else if let Some(closed) = self.window_closed() {
                    closed
                } else {
                    Step::StartRefresh { version }
                }
            }
            _ => self.at_rest(),
        }
    }

    /// Nothing under way: up to date, or idle.
    fn at_rest(&self) -> Step {
        let (on, all) = replaced(self.view, self.target);
        if on == all && all > 0 {
            Step::UpToDate
        } else {
            Step::Idle
        }
    }
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
