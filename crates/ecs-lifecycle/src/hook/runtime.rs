//! The executor of lifecycle-hook workflows: what terminate-drain and
//! launch-verify share, written once.
//!
//! A workflow ([`HookWorkflow`]) gives the runtime what a controller gives its
//! reconciler: how it takes its own events, one observation of the world, a pure
//! decision ([`Step`]), its own acts, and its report. The runtime holds the
//! lifecycle action around them: it reads the hook's timeouts, heartbeats from
//! the first moment it holds the action (a task of its own, [`super::heartbeat`]),
//! honours `DRY_RUN`, completes the action exactly once (Auto Scaling's "No
//! active Lifecycle Action" is final: the action is over, never retried), hands
//! the work to a new invocation before this one ends, and sends every failure
//! through one error policy ([`super::policy`]).

use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tracing::{Instrument, error, info, warn};

use crate::config::{CommonConfig, WaitMode};
use crate::error::Error;
use crate::hook::continuation::Wait;
use crate::hook::dispatch::{Answer, WorkflowEvent, handle_event};
use crate::hook::handoff::{Next, hand_off};
use crate::hook::heartbeat::{keep_alive, last_heartbeat};
use crate::hook::job::{Accept, Job};
use crate::hook::pacing::{
    Beat, HookTiming, PROVISIONAL_HEARTBEAT_EVERY_MS, Pacer, heartbeat_every_ms, warn_if_too_short,
};
use crate::hook::policy::{Recovery, error_policy};
pub use crate::hook::step::{Clocks, Flow, Outcome, Step, Tally};
use crate::model::{ActionAck, ActionResult, HookTimeouts, InstanceId, Transition};
use crate::ports::{AutoScaling, Publisher};
use crate::report::{Record, Reporter};
use crate::time::{Clock, millis};

/// Time kept before the invocation deadline to hand off (default 10 s).
pub const DEFAULT_HANDOFF_MARGIN: Duration = Duration::from_secs(10);

/// In `WAIT_MODE=queue`, how long an invocation may spend in quick looks (a
/// look right after an act, a short back-off) before it hands the work over.
pub const QUICK_LOOKS_MS: u64 = 5_000;

/// In `WAIT_MODE=queue`, the longest wait taken in the invocation (a quick
/// look); a longer one, a poll interval's, is the queue's.
pub const QUICK_LOOK_WAIT_MS: u64 = 2_000;

/// When handing over in-invocation work: heartbeat first if the next beat falls
/// due within this (a continuation runs within seconds; Lambda's retry of a
/// failed one comes one to three minutes later).
const IN_INVOCATION_HANDOFF_HORIZON_MS: u64 = 180_000;

/// In `WAIT_MODE=queue`, the slack beyond the queue's delay that a hand-off's
/// heartbeat covers (the event source mapping's polling). A beat due later is
/// left to the next invocation, which heartbeats first thing if due: a late
/// delivery (a busy function) still has the two thirds of HeartbeatTimeout that
/// the cadence keeps in hand before the action would expire.
const QUEUE_HANDOFF_SLACK_MS: u64 = 10_000;

/// Heartbeat cadences at or above this are "never" (no hook holds the work).
pub const NEVER_MS: u64 = 86_400_000;

/// What the runtime needs of every workflow to hold its actions: Auto Scaling
/// (hook timeouts, heartbeats, completion), SNS (hand-off, notifications), the
/// settings every hook function shares, the margin kept before the invocation
/// deadline for the hand-off, and the reporter of its metrics and notifications.
#[derive(Debug)]
pub struct Holder<A, P> {
    pub autoscaling: A,
    pub publisher: P,
    pub common: CommonConfig,
    pub handoff_margin: Duration,
    pub reporter: Reporter,
}

impl<A, P> Holder<A, P> {
    pub fn new(autoscaling: A, publisher: P, common: CommonConfig, function: &str) -> Self {
        let reporter = Reporter::new(function, common.notification_topic.clone());
        Holder {
            autoscaling,
            publisher,
            common,
            handoff_margin: DEFAULT_HANDOFF_MARGIN,
            reporter,
        }
    }
}

/// Who a workflow is: its function's name (continuations carry it), the work as
/// named in log lines ("drain"), and the lifecycle transition it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    pub name: &'static str,
    pub work: &'static str,
    pub transition: Transition,
}

/// The outcome of a workflow.
pub type OutcomeOf<W> = Outcome<<W as HookWorkflow>::Act, <W as HookWorkflow>::Done>;

/// A lifecycle-hook workflow: the events it takes, what it observes, decides and
/// does, and what it reports. The runtime ([`Handler::handle`]) does the rest.
pub trait HookWorkflow: Sync + Sized {
    /// Who the workflow is.
    const SPEC: Spec;
    /// The EventBridge events the workflow takes besides lifecycle actions and
    /// continuations ([`crate::hook::dispatch::NoEvents`] for none).
    type Event: WorkflowEvent;
    /// What it keeps about one piece of work: handed over in a continuation
    /// (serialized fields) or kept for one invocation (`#[serde(skip)]` fields).
    type Memo: Serialize + DeserializeOwned + Default + Clone + Debug + Send + Sync;
    type Observed: Send + Sync;
    /// Its own acts (the `Act` of a [`Step`]).
    type Act: Serialize + Debug + Send + Sync;
    /// How its work ended: the detail of a completed, stopped or finished outcome.
    type Done: Serialize + Debug + Send + Sync;

    /// Auto Scaling, SNS and the shared settings the runtime holds actions with.
    fn holder(&self) -> &Holder<impl AutoScaling, impl Publisher>;

    /// Turns one of its events into a job, or answers it at once (logging why).
    fn on_event(
        &self,
        event: Self::Event,
    ) -> impl Future<Output = Result<Accept<Self::Memo>, Error>> + Send;

    /// One observation of the world (level-triggered: everything is looked at again).
    fn observe(
        &self,
        job: &mut Job<Self::Memo>,
        clocks: &Clocks,
    ) -> impl Future<Output = Result<Self::Observed, Error>> + Send;

    /// The pure decision, logged in one structured line.
    fn decide(
        &self,
        job: &Job<Self::Memo>,
        observed: &Self::Observed,
        clocks: &Clocks,
    ) -> Step<Self::Act, Self::Done>;

    /// Carries out one of its own acts.
    fn act(
        &self,
        act: Self::Act,
        observed: &Self::Observed,
        job: &mut Job<Self::Memo>,
        clocks: &Clocks,
    ) -> impl Future<Output = Result<Flow<Self::Done>, Error>> + Send;

    /// The cluster a job's metrics are counted under.
    fn cluster(&self, job: &Job<Self::Memo>) -> String;

    /// Adds its own metrics of an outcome to `record` (which holds the runtime's:
    /// Heartbeats, EcsThrottles, HandOffs) and publishes its notifications.
    /// Called once per held action, by the invocation that reached the outcome.
    fn report(
        &self,
        outcome: &OutcomeOf<Self>,
        job: &Job<Self::Memo>,
        tally: &Tally,
        record: Record,
    ) -> impl Future<Output = Record> + Send;
}

/// The Lambda handler of every hook workflow.
pub trait Handler {
    /// Handles one Lambda event (see [`crate::hook::dispatch::handle_event`]).
    fn handle(
        &self,
        event: &Value,
        deadline_ms: u64,
    ) -> impl Future<Output = Result<Answer, Error>> + Send;
}

impl<W: HookWorkflow> Handler for W {
    fn handle(
        &self,
        event: &Value,
        deadline_ms: u64,
    ) -> impl Future<Output = Result<Answer, Error>> + Send {
        handle_event(self, event, deadline_ms)
    }
}

/// Holds one job: the record's outcome as JSON, or the error (logged with the
/// action's fields) for Lambda's retries.
pub async fn execute<W: HookWorkflow>(
    workflow: &W,
    job: Job<W::Memo>,
    deadline_ms: u64,
) -> Result<Value, Error> {
    let span = tracing::info_span!(
        "action",
        work = W::SPEC.work,
        asg = %job.action.asg,
        hook = job.action.hook_name(),
        instance_id = %job.action.instance_id,
        attempt = job.attempt,
        cluster = tracing::field::Empty,
        container_instance = tracing::field::Empty,
    );
    let outcome = async {
        hold(workflow, job, deadline_ms).await.inspect_err(|e| {
            // Inside the action's span: the line names the group, hook and instance.
            let work = W::SPEC.work;
            if e.is_retryable() {
                error!(
                    error = %e,
                    error_type = e.kind(),
                    retryable = true,
                    "{work} failed; the action is not completed: Lambda retries the event (about 1 and 3 minutes later), then keeps it in the dead-letter queue",
                )
            } else {
                error!(
                    error = %e,
                    error_type = e.kind(),
                    retryable = false,
                    "{work} failed; the action is not completed and retrying cannot help: fix the cause named here (the event ends in the dead-letter queue after Lambda's retries)",
                )
            }
        })
    }
    .instrument(span)
    .await?;
    serde_json::to_value(outcome).map_err(|e| Error::Internal(format!("outcome as JSON: {e}")))
}

/// Holds one action until it is completed, over, or handed off.
pub async fn hold<W: HookWorkflow>(
    workflow: &W,
    mut job: Job<W::Memo>,
    deadline_ms: u64,
) -> Result<OutcomeOf<W>, Error> {
    let clock = Clock::start();
    let now = clock.now_ms();
    // Times in a continuation come from another sandbox's clock: never in our future.
    let started_at = job.started_at_ms.map_or(now, |t| t.min(now));
    job.started_at_ms = Some(started_at);
    let holder = workflow.holder();
    let margin_ms = millis(holder.handoff_margin);
    warn_if_too_short(
        now,
        deadline_ms,
        millis(holder.common.poll_interval),
        margin_ms,
    );
    // The heartbeat clock, from the first moment: the last heartbeat handed over,
    // else the action's start; unknown, it is due now. Until the hook's timeouts
    // are read, beat as often as the shortest HeartbeatTimeout needs.
    let beat = Beat::new(
        job.last_heartbeat_ms
            .or(job.action.started_at_ms())
            .map_or(0, |t| t.min(now)),
        match (job.held(), job.hook_timeouts) {
            (false, _) => NEVER_MS,
            (true, Some(t)) => heartbeat_every_ms(t),
            (true, None) => PROVISIONAL_HEARTBEAT_EVERY_MS,
        },
    );
    let action = job.action.clone();
    let instance_id = action.instance_id.clone();
    let handoff_at = deadline_ms.saturating_sub(margin_ms);
    let wait_until = handoff_at.min(started_at.saturating_add(QUICK_LOOKS_MS));
    let mut held = Held {
        workflow,
        job,
        beat: &beat,
        clock,
        started_at,
        deadline_ms,
        handoff_at,
        wait_until,
        pacer: Pacer::new(millis(holder.common.poll_interval)),
        hook: None,
    };
    let result = {
        let run = held.run();
        let keep_alive = async {
            if beat.every() >= NEVER_MS {
                std::future::pending::<String>().await
            } else {
                keep_alive(&holder.autoscaling, &action, &beat, &clock).await
            }
        };
        tokio::select! {
            biased;
            outcome = run => outcome,
            detail = keep_alive => Ok(no_active(instance_id, detail)),
        }
    };
    let tally = Tally {
        started_at_ms: started_at,
        ended_at_ms: clock.now_ms(),
        action_start_ms: held.hook.map(|h| h.action_start_ms),
        heartbeats: beat.heartbeats(),
        throttles: beat.throttles(),
    };
    let job = &held.job;
    let reporter = &holder.reporter;
    let mut record = reporter
        .record(&workflow.cluster(job), Some(&job.action.asg))
        .count("Heartbeats", tally.heartbeats)
        .count("EcsThrottles", tally.throttles)
        .count(
            "HandOffs",
            u64::from(matches!(result, Ok(Outcome::HandedOff { .. }))),
        )
        .property("instance_id", job.action.instance_id.as_str());
    if let Ok(outcome) = &result {
        record = workflow.report(outcome, job, &tally, record).await;
    }
    reporter.emit(&record);
    result
}

/// One held action in this invocation: the loop of observe, decide, act.
struct Held<'a, W: HookWorkflow> {
    workflow: &'a W,
    job: Job<W::Memo>,
    beat: &'a Beat,
    clock: Clock,
    started_at: u64,
    deadline_ms: u64,
    handoff_at: u64,
    /// In `WAIT_MODE=queue`, the end of the quick looks: the last moment this
    /// invocation waits for a next look.
    wait_until: u64,
    pacer: Pacer,
    /// Auto Scaling's clocks of the action, once read.
    hook: Option<HookTiming>,
}

/// How a failure ended, when it ended the invocation.
type End<W> = Result<OutcomeOf<W>, Error>;

impl<W: HookWorkflow> Held<'_, W> {
    async fn run(&mut self) -> End<W> {
        if self.job.held() {
            loop {
                let clock = self.clock;
                match bounded(&clock, self.handoff_at, self.read_hook()).await {
                    Ok(()) => break,
                    Err(e) => {
                        if let Some(end) = self.recover(e, "reading the hook's timeouts").await {
                            return end;
                        }
                    }
                }
            }
        }
        loop {
            let clocks = self.clocks();
            let work = self.workflow.observe(&mut self.job, &clocks);
            let observed = match bounded(&self.clock, self.handoff_at, work).await {
                Ok(o) => o,
                Err(e) => match self.recover(e, "observing").await {
                    Some(end) => return end,
                    None => continue,
                },
            };
            self.pacer.succeeded();
            let clocks = self.clocks();
            let step = self.workflow.decide(&self.job, &observed, &clocks);
            if self.holder().common.dry_run {
                info!("DRY_RUN: nothing was changed");
                return Ok(Outcome::DryRun {
                    instance_id: self.instance_id(),
                    decision: step,
                });
            }
            let failure = match step {
                Step::Stop(detail) => {
                    return Ok(Outcome::Stopped {
                        instance_id: self.instance_id(),
                        detail,
                    });
                }
                Step::Complete { result, detail } => match self.complete(result).await {
                    Ok(None) => {
                        return Ok(Outcome::Completed {
                            instance_id: self.instance_id(),
                            detail,
                        });
                    }
                    Ok(Some(gone)) => return Ok(no_active(self.instance_id(), gone)),
                    Err(e) => (e, "completing the lifecycle action"),
                },
                Step::Wait { sleep_ms } => match self.pause(sleep_ms).await {
                    Some(end) => return end,
                    None => continue,
                },
                Step::HandOff => return self.hand_over().await,
                Step::Act(act) => {
                    let clocks = self.clocks();
                    let work = self.workflow.act(act, &observed, &mut self.job, &clocks);
                    match bounded(&self.clock, self.handoff_at, work).await {
                        Ok(Flow::Observe) => continue,
                        Ok(Flow::Sleep(ms)) => match self.pause(ms).await {
                            Some(end) => return end,
                            None => continue,
                        },
                        Ok(Flow::Finish(d)) => return Ok(Outcome::Finished(d)),
                        Err(e) => (e, "carrying out a step"),
                    }
                }
            };
            if let Some(end) = self.recover(failure.0, failure.1).await {
                return end;
            }
        }
    }

    fn holder(&self) -> &Holder<impl AutoScaling, impl Publisher> {
        self.workflow.holder()
    }

    fn instance_id(&self) -> InstanceId {
        self.job.action.instance_id.clone()
    }

    fn clocks(&self) -> Clocks {
        Clocks {
            now_ms: self.clock.now_ms(),
            started_at_ms: self.started_at,
            invocation_deadline_ms: self.deadline_ms,
            heartbeat_base_ms: self.beat.base(),
            heartbeat_every_ms: self.beat.every(),
            poll_ms: self.pacer.poll_ms(),
            attempt: self.job.attempt,
            hook: self.hook,
        }
    }

    /// Reads the hook's timeouts (unless a continuation carried them; Auto
    /// Scaling's defaults if the hook is gone) and sets the heartbeat cadence.
    async fn read_hook(&mut self) -> Result<(), Error> {
        let timeouts = match self.job.hook_timeouts {
            Some(t) => t,
            None => {
                let action = &self.job.action;
                match self
                    .holder()
                    .autoscaling
                    .hook_timeouts(&action.asg, action.hook_name())
                    .await?
                {
                    Some(t) => t,
                    None => {
                        warn!("lifecycle hook not found; assuming Auto Scaling's default timeouts");
                        HookTimeouts::DEFAULT
                    }
                }
            }
        };
        self.job.hook_timeouts = Some(timeouts);
        let timing = HookTiming::new(
            timeouts,
            self.job.action.started_at_ms(),
            self.started_at,
            millis(self.holder().common.poll_interval),
        );
        self.beat.set_every(timing.heartbeat_every_ms);
        self.hook = Some(timing);
        Ok(())
    }

    /// Completes the action; `Some(detail)` when Auto Scaling says it is no
    /// longer active. Like every step, not past the hand-off point: a completion
    /// that hangs (the SDK's operation timeout is 45 s) must leave the margin to
    /// hand the work over, or Lambda kills the invocation at its deadline with
    /// no continuation and no last heartbeat.
    async fn complete(&mut self, result: ActionResult) -> Result<Option<String>, Error> {
        self.beat.set_completing(true);
        let call = async {
            self.holder()
                .autoscaling
                .complete(&self.job.action, result)
                .await
                .map_err(Error::from)
        };
        match bounded(&self.clock, self.handoff_at, call).await {
            Ok(ActionAck::Accepted) => {
                info!(
                    result = result.as_str(),
                    elapsed_s = self.clock.now_ms().saturating_sub(self.started_at) / 1000,
                    "completed the lifecycle action"
                );
                Ok(None)
            }
            Ok(ActionAck::NoActiveAction(detail)) => Ok(Some(detail)),
            Err(e) => {
                // Not completed: the heartbeater keeps the action alive again.
                self.beat.set_completing(false);
                Err(e)
            }
        }
    }

    /// Applies the error policy to a failure: `None` to observe again (after the
    /// back-off), `Some` when the invocation ends here.
    async fn recover(&mut self, e: Error, what: &'static str) -> Option<End<W>> {
        if e.is_ecs_throttle() {
            self.beat.throttled();
        }
        // In the queue, a back-off longer than the quick looks is the queue's.
        let wait_until = if self.queued() {
            self.wait_until
        } else {
            self.handoff_at
        };
        match error_policy(&e, what, &mut self.pacer, self.clock.now_ms(), wait_until) {
            Recovery::RetryAfter(ms) => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                None
            }
            Recovery::HandOff => Some(self.hand_over().await),
            Recovery::GiveUp => {
                self.let_go(self.deadline_ms).await;
                Some(Err(e))
            }
        }
    }

    /// Publishes the continuation (retrying it within the margin), after a
    /// heartbeat when the next one would fall due before a new invocation can
    /// be counted on; if the publish fails, heartbeats, then ends with the error
    /// so Lambda's async retry resumes the work.
    async fn hand_over(&mut self) -> End<W> {
        let margin = millis(self.holder().handoff_margin);
        let horizon = if self.queued() {
            self.queue_delay_ms()
        } else {
            IN_INVOCATION_HANDOFF_HORIZON_MS
        };
        // It may use the first third of the margin: the publish needs the rest.
        if self.job.held() && self.beat.due() < self.clock.now_ms().saturating_add(horizon) {
            self.let_go(self.deadline_ms.saturating_sub(margin * 2 / 3))
                .await;
        }
        let holder = self.holder();
        let handed = hand_off(
            &holder.publisher,
            W::SPEC.name,
            holder.common.continuation_topic.as_deref(),
            &self.job,
            Next {
                started_at_ms: self.started_at,
                heartbeat_base_ms: self.beat.base(),
                wait: self.queued().then_some(Wait::Queue),
            },
            &self.clock,
            // Publish retries may use the margin but a third of it: the rest is for a
            // last heartbeat and the answer, should the publish keep failing.
            self.deadline_ms.saturating_sub(margin / 3),
        )
        .await;
        match handed {
            Ok(h) => Ok(Outcome::HandedOff {
                instance_id: self.instance_id(),
                attempt: h.attempt,
                topic_arn: h.topic_arn,
                message_id: h.message_id,
            }),
            Err(e) => {
                self.let_go(self.deadline_ms).await;
                Err(e)
            }
        }
    }

    /// The last heartbeat before this invocation lets go of a held action,
    /// answered before `until_ms`.
    async fn let_go(&self, until_ms: u64) {
        if self.job.held() {
            last_heartbeat(
                &self.holder().autoscaling,
                &self.job.action,
                self.beat,
                &self.clock,
                until_ms,
            )
            .await;
        }
    }

    /// Waits `ms` before the next look: in this invocation (`None`), or, past
    /// the quick looks of `WAIT_MODE=queue`, in the queue (the hand-off's end).
    async fn pause(&mut self, ms: u64) -> Option<End<W>> {
        if self.queued()
            && (ms > QUICK_LOOK_WAIT_MS || self.clock.now_ms().saturating_add(ms) > self.wait_until)
        {
            return Some(self.hand_over().await);
        }
        self.nap(ms).await;
        None
    }

    /// Whether this invocation waits in the queue (`WAIT_MODE=queue`). Only
    /// while the queue's delay (the poll interval) and its slack fit in one
    /// heartbeat period (a third of the hook's HeartbeatTimeout): a delivery
    /// then comes before the beat falls due, and a late one still has the two
    /// thirds the cadence keeps in hand. A longer delay (POLL_INTERVAL_SECONDS
    /// 300 with a HeartbeatTimeout of 120 s) could let the action expire between
    /// two deliveries: such work waits in the invocation.
    fn queued(&self) -> bool {
        if self.holder().common.wait_mode != WaitMode::Queue {
            return false;
        }
        !self.job.held() || self.beat.every() >= self.queue_delay_ms()
    }

    /// How long a continuation that waits in the queue takes to come back: the
    /// queue's delay (the poll interval) and the mapping's slack.
    fn queue_delay_ms(&self) -> u64 {
        millis(self.holder().common.poll_interval).saturating_add(QUEUE_HANDOFF_SLACK_MS)
    }

    /// Sleeps `ms`, but never past the hand-off point.
    async fn nap(&self, ms: u64) {
        let left = self.handoff_at.saturating_sub(self.clock.now_ms());
        tokio::time::sleep(Duration::from_millis(ms.min(left))).await;
    }
}

/// Runs `work`, but not past `until_ms`: a call that would (an SDK call spending
/// its retries) is abandoned as a transient failure.
async fn bounded<T>(
    clock: &Clock,
    until_ms: u64,
    work: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    let left = until_ms.saturating_sub(clock.now_ms());
    match tokio::time::timeout(Duration::from_millis(left.max(1)), work).await {
        Ok(result) => result,
        Err(_) => Err(Error::Aws(crate::error::AwsError::new(
            "ecs-lifecycle",
            "step",
            None,
            "not answered before the hand-off point".into(),
        ))),
    }
}

fn no_active<A, D>(instance_id: InstanceId, detail: String) -> Outcome<A, D> {
    info!(%detail, "Auto Scaling has no active lifecycle action for the instance (completed elsewhere or expired); final, not retried");
    Outcome::AlreadyCompleted {
        instance_id,
        detail,
    }
}

#[cfg(test)]
#[path = "runtime_tests.rs"]
mod tests;
