//! What a workflow tells the runtime and what the runtime answers: the clocks of
//! a decision ([`Clocks`]), the next [`Step`], what follows a workflow's own act
//! ([`Flow`]), the [`Outcome`] of holding an action (and its JSON), and what the
//! runtime counted ([`Tally`]).

use serde::{Serialize, Serializer};

use crate::hook::pacing::HookTiming;
use crate::model::{ActionResult, InstanceId};

/// The clocks of a held action at one decision, in epoch milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clocks {
    pub now_ms: u64,
    /// When this function started the work (the first invocation's start).
    pub started_at_ms: u64,
    /// This Lambda invocation's deadline.
    pub invocation_deadline_ms: u64,
    /// When Auto Scaling's heartbeat clock last restarted (last heartbeat, or the action start).
    pub heartbeat_base_ms: u64,
    /// How often the heartbeater beats ([`NEVER_MS`] without a hook).
    pub heartbeat_every_ms: u64,
    /// The poll interval now: the configured one, stretched while AWS throttles.
    pub poll_ms: u64,
    /// Hops so far (0 for the original event).
    pub attempt: u32,
    /// Auto Scaling's clocks of the action; `None` when no hook holds the work.
    pub hook: Option<HookTiming>,
}

/// What the runtime does next, as a workflow decides it: the runtime's own moves,
/// or one act of the workflow's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step<A, D> {
    /// Sleep, then observe again.
    Wait { sleep_ms: u64 },
    /// Continue in a new invocation.
    HandOff,
    /// Complete the action with `result`; `detail` goes into the outcome.
    Complete { result: ActionResult, detail: D },
    /// End without completing the action (nothing to complete, or another
    /// invocation holds it); `detail` says why.
    Stop(D),
    /// One of the workflow's own acts.
    Act(A),
}

/// A step as JSON (the dry run's `decision.step`): the workflow's acts as they
/// serialize themselves (`"SetDraining"`), the runtime's moves by name.
impl<A: Serialize, D: Serialize> Serialize for Step<A, D> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        enum Wire<'a, A, D> {
            Wait {
                sleep_ms: u64,
            },
            HandOff,
            Complete {
                result: ActionResult,
                #[serde(flatten)]
                detail: &'a D,
            },
            Stop(&'a D),
            #[serde(untagged)]
            Act(&'a A),
        }
        let wire: Wire<'_, A, D> = match self {
            Step::Wait { sleep_ms } => Wire::Wait {
                sleep_ms: *sleep_ms,
            },
            Step::HandOff => Wire::HandOff,
            Step::Complete { result, detail } => Wire::Complete {
                result: *result,
                detail,
            },
            Step::Stop(d) => Wire::Stop(d),
            Step::Act(a) => Wire::Act(a),
        };
        wire.serialize(s)
    }
}

/// What follows one of the workflow's own acts.
#[derive(Debug)]
pub enum Flow<D> {
    /// Observe again at once.
    Observe,
    /// Sleep this long, then observe again.
    Sleep(u64),
    /// The work is over with this outcome (nothing to complete).
    Finish(D),
}

/// The result of holding one action.
#[derive(Debug)]
pub enum Outcome<A, D> {
    /// The action was completed by this invocation.
    Completed { instance_id: InstanceId, detail: D },
    /// Auto Scaling said the action is no longer active (completed elsewhere or expired).
    AlreadyCompleted {
        instance_id: InstanceId,
        detail: String,
    },
    /// Ended without completing.
    Stopped { instance_id: InstanceId, detail: D },
    /// The work goes on in a new invocation.
    HandedOff {
        instance_id: InstanceId,
        attempt: u32,
        topic_arn: String,
        message_id: String,
    },
    /// DRY_RUN: the decision was logged, nothing changed.
    DryRun {
        instance_id: InstanceId,
        decision: Step<A, D>,
    },
    /// Ended by one of the workflow's own acts.
    Finished(D),
}

/// The outcome as a record's JSON (`{"outcome": "completed", "instance_id": ..,
/// ...the workflow's detail}`; a finished outcome is the workflow's own).
impl<A: Serialize, D: Serialize> Serialize for Outcome<A, D> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Decision<'a, A, D> {
            step: &'a Step<A, D>,
        }
        #[derive(Serialize)]
        #[serde(tag = "outcome", rename_all = "snake_case")]
        enum Wire<'a, A, D> {
            Completed {
                instance_id: &'a str,
                #[serde(flatten)]
                detail: &'a D,
            },
            AlreadyCompleted {
                instance_id: &'a str,
                detail: &'a str,
            },
            Stopped {
                instance_id: &'a str,
                #[serde(flatten)]
                detail: &'a D,
            },
            HandedOff {
                instance_id: &'a str,
                attempt: u32,
                topic_arn: &'a str,
                message_id: &'a str,
            },
            DryRun {
                instance_id: &'a str,
                decision: Decision<'a, A, D>,
            },
        }
        let wire: Wire<'_, A, D> = match self {
            Outcome::Completed {
                instance_id,
                detail,
            } => Wire::Completed {
                instance_id,
                detail,
            },
            Outcome::AlreadyCompleted {
                instance_id,
                detail,
            } => Wire::AlreadyCompleted {
                instance_id,
                detail,
            },
            Outcome::Stopped {
                instance_id,
                detail,
            } => Wire::Stopped {
                instance_id,
                detail,
            },
            Outcome::HandedOff {
                instance_id,
                attempt,
                topic_arn,
                message_id,
            } => Wire::HandedOff {
                instance_id,
                attempt: *attempt,
                topic_arn,
                message_id,
            },
            Outcome::DryRun {
                instance_id,
                decision,
            } => Wire::DryRun {
                instance_id,
                decision: Decision { step: decision },
            },
            Outcome::Finished(d) => return d.serialize(s),
        };
        wire.serialize(s)
    }
}

/// What the runtime counted while it held one action in this invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// When the work started (the first invocation's start, for a continuation).
    pub started_at_ms: u64,
    /// When this invocation let go of the action.
    pub ended_at_ms: u64,
    /// When Auto Scaling started the action, when a hook holds the work.
    pub action_start_ms: Option<u64>,
    /// Heartbeats Auto Scaling accepted.
    pub heartbeats: u64,
    /// ECS calls answered with throttling (after the SDK's own retries).
    pub throttles: u64,
}
