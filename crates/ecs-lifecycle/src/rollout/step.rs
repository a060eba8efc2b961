//! The words of the decision: what an invocation was asked to do
//! ([`Intent`]), within which limits ([`Limits`]), and the one next step for
//! a group ([`Step`]) with how a rollout under way is doing ([`Phase`]) or
//! how it ended ([`Outcome`]).

use serde::Serialize;

use crate::rollout::ami::Check;

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
        check: Check,
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
    /// is checked before any of them ([`crate::rollout::ami::vet`]).
    pub fn starts_rollout(&self) -> bool {
        matches!(
            self,
            Step::Pin { .. } | Step::CreateVersion { .. } | Step::StartRefresh { .. }
        )
    }
}
