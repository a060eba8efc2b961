//! The executor of lifecycle-hook workflows: what terminate-drain and
//! launch-verify share, written once.
//!
//! A workflow ([`HookWorkflow`]) says which work it takes, what one observation
//! looks at, its pure decision, and how to carry out its own steps. The runtime
//! holds the lifecycle action around them: it observes, decides, logs the
//! decision, honours `DRY_RUN`, sends the heartbeats the decision asks for,
//! completes the action exactly once (Auto Scaling's "No active Lifecycle
//! Action" is final: the action is over, never retried), hands the work to a new
//! invocation before this one ends, and logs failures with one convention.

use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Serialize, Serializer};
use serde_json::Value;
use tracing::{Instrument, Span, error, info};

use crate::config::CommonConfig;
use crate::error::{Error, EventError};
use crate::hook::dispatch::{Job, Work, handle_event};
use crate::hook::handoff::hand_off;
use crate::hook::pacing::warn_if_too_short;
use crate::model::{ActionAck, ActionResult};
use crate::ports::{AutoScaling, Publisher};
use crate::time::{Clock, millis};

/// Time kept before the invocation deadline to hand off (default 10 s).
pub const DEFAULT_HANDOFF_MARGIN: Duration = Duration::from_secs(10);

/// What the runtime needs of every workflow to hold its actions: Auto Scaling
/// (heartbeats, completion), SNS (hand-off), and the margin kept before the
/// invocation deadline for the hand-off.
#[derive(Debug)]
pub struct Holder<A, P> {
    pub autoscaling: A,
    pub publisher: P,
    pub handoff_margin: Duration,
}

impl<A, P> Holder<A, P> {
    pub fn new(autoscaling: A, publisher: P) -> Self {
        Holder {
            autoscaling,
            publisher,
            handoff_margin: DEFAULT_HANDOFF_MARGIN,
        }
    }
}

/// The span of one held action, with the fields every line about it carries
/// (`cluster` and `container_instance` are recorded once found).
#[macro_export]
macro_rules! action_span {
    ($name:literal, $job:expr) => {
        tracing::info_span!(
            $name,
            asg = %$job.action.asg,
            hook = %$job.action.hook,
            instance_id = %$job.action.instance_id,
            attempt = $job.attempt,
            cluster = tracing::field::Empty,
            container_instance = tracing::field::Empty,
        )
    };
}

/// What a workflow makes of a unit of work.
#[derive(Debug)]
pub enum Accept<M> {
    /// Hold this action.
    Job(Box<Job<M>>),
    /// Acknowledged and dropped (the record's outcome, with the reason).
    Ignored(Value),
}

/// The clocks the runtime keeps for a held action, handed to `decide`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HookClocks {
    pub now_ms: u64,
    /// This Lambda invocation's deadline.
    pub invocation_deadline_ms: u64,
    /// When Auto Scaling's heartbeat clock last restarted (last heartbeat, or the action start).
    pub heartbeat_base_ms: u64,
    /// How often to heartbeat (a third of HeartbeatTimeout; effectively never without a hook).
    pub heartbeat_every_ms: u64,
    /// Hops so far (0 for the original event).
    pub attempt: u32,
}

/// A workflow's plan for one invocation, with the heartbeat cadence it implies.
#[derive(Debug, Clone)]
pub struct Prepared<P> {
    pub plan: P,
    pub heartbeat_every_ms: u64,
    /// Where the heartbeat clock starts when no earlier invocation heartbeated.
    pub heartbeat_base_ms: u64,
}

/// What the runtime does with a decision.
#[derive(Debug)]
pub enum Next<O, C, S> {
    /// Nothing to complete: end without completing or continuing.
    Stop(S),
    /// Complete the action with `result`; `detail` goes into the outcome.
    Complete { result: ActionResult, detail: C },
    /// Sleep, then observe again.
    Wait { sleep_ms: u64 },
    /// Continue in a new invocation.
    HandOff,
    /// One of the workflow's own steps.
    Own(O),
}

/// The [`Next`] of a workflow.
pub type NextOf<W> =
    Next<<W as HookWorkflow>::Own, <W as HookWorkflow>::Completed, <W as HookWorkflow>::Stopped>;

/// What follows one of the workflow's own steps.
#[derive(Debug)]
pub enum Flow<F> {
    /// Observe again at once.
    Observe,
    /// Sleep this long, then observe again.
    Sleep(u64),
    /// The work is over with this outcome.
    Finish(F),
}

/// The result of holding one action.
#[derive(Debug)]
pub enum Outcome<W: HookWorkflow> {
    /// The action was completed by this invocation.
    Completed {
        instance_id: String,
        detail: W::Completed,
    },
    /// Auto Scaling said the action is no longer active (completed elsewhere or expired).
    AlreadyCompleted { instance_id: String, detail: String },
    /// Nothing to complete.
    Stopped {
        instance_id: String,
        reason: W::Stopped,
    },
    /// The work goes on in a new invocation.
    HandedOff {
        instance_id: String,
        attempt: u32,
        topic_arn: String,
        message_id: String,
    },
    /// DRY_RUN: the decision was logged, nothing changed.
    DryRun {
        instance_id: String,
        decision: W::Decision,
    },
    /// Ended by one of the workflow's own steps.
    Finished(W::Finished),
}

/// The outcome as a record's JSON (`{"outcome": "completed", ...}`).
impl<W: HookWorkflow> Serialize for Outcome<W> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(tag = "outcome", rename_all = "snake_case")]
        enum Wire<'a, C, R, D> {
            Completed {
                instance_id: &'a str,
                #[serde(flatten)]
                detail: &'a C,
            },
            AlreadyCompleted {
                instance_id: &'a str,
                detail: &'a str,
            },
            Stopped {
                instance_id: &'a str,
                reason: &'a R,
            },
            HandedOff {
                instance_id: &'a str,
                attempt: u32,
                topic_arn: &'a str,
                message_id: &'a str,
            },
            DryRun {
                instance_id: &'a str,
                decision: &'a D,
            },
        }
        let wire: Wire<'_, W::Completed, W::Stopped, W::Decision> = match self {
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
                reason,
            } => Wire::Stopped {
                instance_id,
                reason,
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
                decision,
            },
            Outcome::Finished(f) => return f.serialize(s),
        };
        wire.serialize(s)
    }
}

/// A workflow without outcomes of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum NoFinish {}

/// A lifecycle-hook workflow: what it takes, observes, decides and does. The
/// runtime ([`execute`]) does the rest.
pub trait HookWorkflow: Sync {
    /// The function's name; continuations carry it.
    const NAME: &'static str;
    /// The work, as named in the failure line ("drain", "launch verification").
    const WORK: &'static str;

    type AutoScaling: AutoScaling;
    type Publisher: Publisher;
    /// Carried in a continuation: what the next invocation cannot observe.
    type Memo: Serialize + DeserializeOwned + Default + Clone + Debug + Send + Sync;
    /// Deadlines and policy for one invocation.
    type Plan: Send + Sync;
    /// What one invocation learns and keeps between polls (never handed over).
    type Scratch: Default + Send;
    type Observed: Send + Sync;
    type Decision: Serialize + Clone + Debug + Send + Sync;
    /// The workflow's own steps.
    type Own: Send;
    type Completed: Serialize + Debug + Send + Sync;
    type Stopped: Serialize + Debug + Send + Sync;
    type Finished: Serialize + Debug + Send + Sync;

    fn holder(&self) -> &Holder<Self::AutoScaling, Self::Publisher>;
    fn common(&self) -> &CommonConfig;

    /// Handles one Lambda event (see [`crate::hook::dispatch::handle_event`]).
    fn handle(
        &self,
        event: &Value,
        deadline_ms: u64,
    ) -> impl Future<Output = Result<Value, Error>> + Send
    where
        Self: Sized,
    {
        handle_event(self, event, deadline_ms)
    }

    /// Turns a unit of work into a job, or acknowledges and drops it (logging why).
    fn accept(&self, work: Work, reply_topic: Option<String>) -> Result<Accept<Self::Memo>, Error>;

    /// The span every line about the job is logged in.
    fn span(&self, job: &Job<Self::Memo>) -> Span;

    /// Works out the invocation's plan (deadlines, the hook's timeouts).
    fn prepare(
        &self,
        job: &Job<Self::Memo>,
        started_at_ms: u64,
    ) -> impl Future<Output = Result<Prepared<Self::Plan>, Error>> + Send;

    /// One observation of the world (level-triggered: everything is looked at again).
    fn observe(
        &self,
        job: &mut Job<Self::Memo>,
        scratch: &mut Self::Scratch,
        plan: &Self::Plan,
    ) -> impl Future<Output = Result<Self::Observed, Error>> + Send;

    /// The pure decision.
    fn decide(
        &self,
        observed: &Self::Observed,
        plan: &Self::Plan,
        clocks: &HookClocks,
    ) -> Self::Decision;

    /// One structured line per decision.
    fn log_decision(
        &self,
        decision: &Self::Decision,
        observed: &Self::Observed,
        plan: &Self::Plan,
        started_at_ms: u64,
        now_ms: u64,
    );

    /// Whether the decision asks for a heartbeat, and what it asks the runtime to do.
    fn next(decision: Self::Decision) -> (bool, NextOf<Self>);

    /// Carries out one of the workflow's own steps.
    fn act(
        &self,
        step: Self::Own,
        observed: &Self::Observed,
        job: &mut Job<Self::Memo>,
        now_ms: u64,
    ) -> impl Future<Output = Result<Flow<Self::Finished>, Error>> + Send;
}

/// Runs one unit of work of a workflow: the record's outcome as JSON, or the
/// error (logged with the action's fields) for Lambda's retries.
pub async fn execute<W: HookWorkflow>(
    workflow: &W,
    work: Work,
    reply_topic: Option<String>,
    deadline_ms: u64,
) -> Result<Value, Error> {
    let job = match workflow.accept(work, reply_topic)? {
        Accept::Job(job) => *job,
        Accept::Ignored(outcome) => return Ok(outcome),
    };
    let span = workflow.span(&job);
    let outcome = hold(workflow, job, deadline_ms)
        .instrument(span)
        .await
        .inspect_err(|e| {
            error!(
                error = %e,
                error_type = e.kind(),
                retryable = e.is_retryable(),
                "{} failed; the action is not completed, the event will be retried",
                W::WORK
            )
        })?;
    serde_json::to_value(outcome).map_err(|e| EventError::new("outcome", e.to_string()).into())
}

/// Holds one action until it is completed, over, or handed off.
pub async fn hold<W: HookWorkflow>(
    workflow: &W,
    mut job: Job<W::Memo>,
    deadline_ms: u64,
) -> Result<Outcome<W>, Error> {
    let clock = Clock::start();
    let now = clock.now_ms();
    let started_at = job.started_at_ms.unwrap_or(now);
    let instance_id = job.action.instance_id.clone();
    let common = workflow.common();
    let holder = workflow.holder();
    let prepared = workflow.prepare(&job, started_at).await?;
    let mut heartbeat_base = job.last_heartbeat_ms.unwrap_or(prepared.heartbeat_base_ms);
    warn_if_too_short(
        now,
        deadline_ms,
        millis(common.poll_interval),
        millis(holder.handoff_margin),
    );

    let autoscaling = &holder.autoscaling;
    let mut scratch = W::Scratch::default();
    loop {
        let observed = workflow
            .observe(&mut job, &mut scratch, &prepared.plan)
            .await?;
        let clocks = HookClocks {
            now_ms: clock.now_ms(),
            invocation_deadline_ms: deadline_ms,
            heartbeat_base_ms: heartbeat_base,
            heartbeat_every_ms: prepared.heartbeat_every_ms,
            attempt: job.attempt,
        };
        let decision = workflow.decide(&observed, &prepared.plan, &clocks);
        workflow.log_decision(
            &decision,
            &observed,
            &prepared.plan,
            started_at,
            clocks.now_ms,
        );
        if common.dry_run {
            info!("DRY_RUN: nothing was changed");
            return Ok(Outcome::DryRun {
                instance_id,
                decision,
            });
        }

        let (heartbeat, next) = W::next(decision);
        if heartbeat {
            match autoscaling.heartbeat(&job.action).await? {
                ActionAck::Accepted => heartbeat_base = clock.now_ms(),
                ActionAck::NoActiveAction(detail) => return Ok(no_active(instance_id, detail)),
            }
        }
        match next {
            Next::Stop(reason) => {
                return Ok(Outcome::Stopped {
                    instance_id,
                    reason,
                });
            }
            Next::Complete { result, detail } => {
                return Ok(match autoscaling.complete(&job.action, result).await? {
                    ActionAck::Accepted => {
                        info!(
                            result = result.as_str(),
                            elapsed_s = clock.now_ms().saturating_sub(started_at) / 1000,
                            "completed the lifecycle action"
                        );
                        Outcome::Completed {
                            instance_id,
                            detail,
                        }
                    }
                    ActionAck::NoActiveAction(detail) => no_active(instance_id, detail),
                });
            }
            Next::Wait { sleep_ms } => tokio::time::sleep(Duration::from_millis(sleep_ms)).await,
            Next::HandOff => {
                let h = hand_off(
                    &holder.publisher,
                    W::NAME,
                    common.continuation_topic.as_deref(),
                    &job,
                    started_at,
                    heartbeat_base,
                    &job.memo,
                )
                .await?;
                return Ok(Outcome::HandedOff {
                    instance_id,
                    attempt: h.attempt,
                    topic_arn: h.topic_arn,
                    message_id: h.message_id,
                });
            }
            Next::Own(step) => {
                match workflow
                    .act(step, &observed, &mut job, clock.now_ms())
                    .await?
                {
                    Flow::Observe => {}
                    Flow::Sleep(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                    Flow::Finish(f) => return Ok(Outcome::Finished(f)),
                }
            }
        }
    }
}

fn no_active<W: HookWorkflow>(instance_id: String, detail: String) -> Outcome<W> {
    info!(%detail, "Auto Scaling has no active lifecycle action for the instance (completed elsewhere or expired); final, not retried");
    Outcome::AlreadyCompleted {
        instance_id,
        detail,
    }
}

#[cfg(test)]
#[path = "runtime_tests.rs"]
mod tests;
