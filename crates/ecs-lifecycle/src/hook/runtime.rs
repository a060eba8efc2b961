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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Serialize, Serializer};
use serde_json::Value;
use tracing::{Instrument, Span, debug, error, info, warn};

use crate::config::CommonConfig;
use crate::error::Error;
use crate::hook::dispatch::{Job, Work, handle_event};
use crate::hook::handoff::hand_off;
use crate::hook::pacing::warn_if_too_short;
use crate::model::{ActionAck, ActionResult, LifecycleAction};
use crate::ports::{AutoScaling, Publisher};
use crate::report::{Record, Reporter};
use crate::time::{Clock, millis};

/// Time kept before the invocation deadline to hand off (default 10 s).
pub const DEFAULT_HANDOFF_MARGIN: Duration = Duration::from_secs(10);

/// What the runtime needs of every workflow to hold its actions: Auto Scaling
/// (heartbeats, completion), SNS (hand-off, notifications), the margin kept
/// before the invocation deadline for the hand-off, and the reporter of its
/// metrics and notifications.
#[derive(Debug)]
pub struct Holder<A, P> {
    pub autoscaling: A,
    pub publisher: P,
    pub handoff_margin: Duration,
    pub reporter: Reporter,
}

impl<A, P> Holder<A, P> {
    pub fn new(autoscaling: A, publisher: P, reporter: Reporter) -> Self {
        Holder {
            autoscaling,
            publisher,
            handoff_margin: DEFAULT_HANDOFF_MARGIN,
            reporter,
        }
    }
}

/// What the runtime counted while it held one action in this invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// When the work started (the first invocation's start, for a continuation).
    pub started_at_ms: u64,
    /// When this invocation let go of the action.
    pub ended_at_ms: u64,
    /// Heartbeats Auto Scaling accepted.
    pub heartbeats: u64,
    /// ECS calls answered with throttling (after the SDK's own retries).
    pub throttles: u64,
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
    /// Answered without holding an action: acknowledged and dropped (with the
    /// reason), or handled at once (e.g. a Spot warning drained early).
    Answered(Value),
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
    /// The poll interval now: the configured one, stretched while ECS throttles.
    pub poll_ms: u64,
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
    /// (A signal such as an ECS event may need a call or two to find its action.)
    fn accept(
        &self,
        work: Work,
        reply_topic: Option<String>,
    ) -> impl Future<Output = Result<Accept<Self::Memo>, Error>> + Send;

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
        now_ms: u64,
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

    /// The cluster a job's metrics are counted under.
    fn metrics_cluster(&self, job: &Job<Self::Memo>) -> String;

    /// Adds the workflow's own metrics of an outcome to `record` (which holds
    /// the runtime's: Heartbeats, EcsThrottles, HandOffs) and publishes its
    /// notifications. Called once per held action, by the invocation that
    /// reached the outcome.
    fn report(
        &self,
        outcome: &Outcome<Self>,
        job: &Job<Self::Memo>,
        plan: &Self::Plan,
        scratch: &Self::Scratch,
        tally: &Tally,
        record: Record,
    ) -> impl Future<Output = Record> + Send
    where
        Self: Sized;
}

/// Runs one unit of work of a workflow: the record's outcome as JSON, or the
/// error (logged with the action's fields) for Lambda's retries.
pub async fn execute<W: HookWorkflow>(
    workflow: &W,
    work: Work,
    reply_topic: Option<String>,
    deadline_ms: u64,
) -> Result<Value, Error> {
    let job = match workflow.accept(work, reply_topic).await? {
        Accept::Job(job) => *job,
        Accept::Answered(outcome) => return Ok(outcome),
    };
    let span = workflow.span(&job);
    let outcome = async {
        hold(workflow, job, deadline_ms).await.inspect_err(|e| {
            // Inside the action's span: the line names the group, hook and instance.
            if e.is_retryable() {
                error!(
                    error = %e,
                    error_type = e.kind(),
                    retryable = true,
                    "{} failed; the action is not completed: Lambda retries the event (about 1 and 3 minutes later), then keeps it in the dead-letter queue",
                    W::WORK
                )
            } else {
                error!(
                    error = %e,
                    error_type = e.kind(),
                    retryable = false,
                    "{} failed; the action is not completed and retrying cannot help: fix the cause named here (the event ends in the dead-letter queue after Lambda's retries)",
                    W::WORK
                )
            }
        })
    }
    .instrument(span)
    .await?;
    serde_json::to_value(outcome).map_err(|e| Error::Internal(format!("outcome as JSON: {e}")))
}

/// Heartbeat cadences at or above this are "never" (no hook holds the work).
const NEVER_MS: u64 = 86_400_000;

/// The longest a drain stretches its poll interval while ECS throttles.
pub const MAX_STRETCHED_POLL_MS: u64 = 60_000;

/// The heartbeat clock, shared by the loop (which reads it for its decisions and
/// hands it over in a continuation) and the heartbeater (which restarts it).
#[derive(Debug)]
struct Beat {
    base_ms: AtomicU64,
    every_ms: u64,
    /// Set just before CompleteLifecycleAction: from then on "No active
    /// Lifecycle Action" is the completion's own doing, not an expiry.
    completing: AtomicBool,
    /// Heartbeats accepted, and ECS calls throttled, in this invocation.
    heartbeats: AtomicU64,
    throttles: AtomicU64,
}

impl Beat {
    fn base(&self) -> u64 {
        self.base_ms.load(Ordering::Relaxed)
    }
}

/// Sends the heartbeats of a held action every `every_ms`, whatever the loop is
/// doing (a slow or failing ECS call never holds a heartbeat back). Returns only
/// when Auto Scaling says the action is over without us completing it.
async fn keep_alive<A: AutoScaling>(
    autoscaling: &A,
    action: &LifecycleAction,
    beat: &Beat,
    clock: &Clock,
) -> String {
    if beat.every_ms >= NEVER_MS {
        return std::future::pending().await;
    }
    loop {
        let due = beat.base().saturating_add(beat.every_ms);
        let now = clock.now_ms();
        if due > now {
            tokio::time::sleep(Duration::from_millis(due - now)).await;
            continue;
        }
        if beat.completing.load(Ordering::Relaxed) {
            return std::future::pending().await;
        }
        // One attempt may not outlast the cadence: a hung call is abandoned and
        // tried again while the action still has two thirds of its window.
        let attempt = tokio::time::timeout(
            Duration::from_millis(beat.every_ms),
            autoscaling.heartbeat(action),
        )
        .await;
        match attempt {
            Ok(Ok(ActionAck::Accepted)) => {
                beat.base_ms.store(clock.now_ms(), Ordering::Relaxed);
                beat.heartbeats.fetch_add(1, Ordering::Relaxed);
                debug!("recorded a lifecycle action heartbeat");
            }
            Ok(Ok(ActionAck::NoActiveAction(detail))) => {
                if beat.completing.load(Ordering::Relaxed) {
                    return std::future::pending().await;
                }
                return detail;
            }
            Ok(Err(e)) => {
                warn!(error = %e, "heartbeat failed; trying again in 2 s");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(_) => warn!(
                timeout_ms = beat.every_ms,
                "heartbeat call timed out; trying again"
            ),
        }
    }
}

/// The poll interval, stretched while ECS throttles and shrunk back as calls
/// succeed: N drains of one account converge on what its ECS budget sustains.
#[derive(Debug, Clone, Copy)]
struct Pacer {
    configured_ms: u64,
    current_ms: u64,
    failures: u32,
}

impl Pacer {
    fn new(configured_ms: u64) -> Self {
        Pacer {
            configured_ms,
            current_ms: configured_ms,
            failures: 0,
        }
    }

    fn succeeded(&mut self) {
        self.failures = 0;
        // Halve it at each success: from the 60 s cap back to a 10 s poll in three
        // polls (about two minutes), gently enough not to re-trigger the throttle.
        self.current_ms = (self.current_ms / 2).max(self.configured_ms);
    }

    /// Records a transient failure; returns how long to back off.
    fn failed(&mut self, throttled: bool) -> u64 {
        self.failures = self.failures.saturating_add(1);
        if throttled {
            self.current_ms = self
                .current_ms
                .saturating_mul(2)
                .min(MAX_STRETCHED_POLL_MS.max(self.configured_ms));
        }
        // Random jitter (0.5x..1.5x) so that drains that failed together do not
        // come back together.
        let base = self.current_ms.max(1000);
        base / 2 + jitter(base)
    }
}

/// A random number in `0..bound`.
fn jitter(bound: u64) -> u64 {
    random_u64() % bound.max(1)
}

/// A random 64-bit number, from the standard library's randomly keyed hasher
/// (fresh keys each time; nothing here needs a cryptographic generator).
pub fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(crate::time::epoch_ms());
    h.finish()
}

/// What the loop does after a failure.
enum Recovery {
    /// Observe again (after the back-off).
    Again,
    /// The hand-off point is here: continue in a new invocation.
    HandOff,
}

/// Holds one action until it is completed, over, or handed off.
pub async fn hold<W: HookWorkflow>(
    workflow: &W,
    mut job: Job<W::Memo>,
    deadline_ms: u64,
) -> Result<Outcome<W>, Error> {
    let clock = Clock::start();
    let now = clock.now_ms();
    // Times in a continuation come from another sandbox's clock: never in our future.
    let started_at = job.started_at_ms.map_or(now, |t| t.min(now));
    job.started_at_ms = Some(started_at);
    let instance_id = job.action.instance_id.clone();
    let holder = workflow.holder();
    let margin_ms = millis(holder.handoff_margin);
    let handoff_at = deadline_ms.saturating_sub(margin_ms);
    warn_if_too_short(
        now,
        deadline_ms,
        millis(workflow.common().poll_interval),
        margin_ms,
    );

    let mut prepare_throttles = 0;
    let prepared = loop {
        match bounded(&clock, handoff_at, workflow.prepare(&job, started_at)).await {
            Ok(p) => break p,
            Err(e) if e.is_transient() && clock.now_ms() < handoff_at => {
                prepare_throttles += u64::from(e.is_ecs_throttle());
                let pause =
                    Pacer::new(millis(workflow.common().poll_interval)).failed(e.is_throttle());
                warn!(error = %e, error_type = e.kind(), retry_in_ms = pause, "could not read the hook's timing; trying again");
                nap(&clock, handoff_at, pause).await;
            }
            Err(e) => return Err(e),
        }
    };
    let beat = Beat {
        base_ms: AtomicU64::new(
            job.last_heartbeat_ms
                .map_or(prepared.heartbeat_base_ms, |t| t.min(now)),
        ),
        every_ms: prepared.heartbeat_every_ms,
        completing: AtomicBool::new(false),
        heartbeats: AtomicU64::new(0),
        throttles: AtomicU64::new(prepare_throttles),
    };
    let action = job.action.clone();
    let mut scratch = W::Scratch::default();
    let result = {
        let drive = drive(
            workflow,
            &mut job,
            &mut scratch,
            &prepared,
            &beat,
            &clock,
            started_at,
            deadline_ms,
        );
        let keep_alive = keep_alive(&holder.autoscaling, &action, &beat, &clock);
        tokio::select! {
            biased;
            outcome = drive => outcome,
            detail = keep_alive => Ok(no_active(instance_id, detail)),
        }
    };
    let tally = Tally {
        started_at_ms: started_at,
        ended_at_ms: clock.now_ms(),
        heartbeats: beat.heartbeats.load(Ordering::Relaxed),
        throttles: beat.throttles.load(Ordering::Relaxed),
    };
    let reporter = &holder.reporter;
    let mut record = reporter
        .record(&workflow.metrics_cluster(&job), Some(&job.action.asg))
        .count("Heartbeats", tally.heartbeats)
        .count("EcsThrottles", tally.throttles)
        .count(
            "HandOffs",
            u64::from(matches!(result, Ok(Outcome::HandedOff { .. }))),
        )
        .property("instance_id", job.action.instance_id.as_str());
    if let Ok(outcome) = &result {
        record = workflow
            .report(outcome, &job, &prepared.plan, &scratch, &tally, record)
            .await;
    }
    reporter.emit(&record);
    result
}

/// The loop of [`hold`]: observe, decide, act, until the work is over.
#[allow(clippy::too_many_arguments)]
async fn drive<W: HookWorkflow>(
    workflow: &W,
    job: &mut Job<W::Memo>,
    scratch: &mut W::Scratch,
    prepared: &Prepared<W::Plan>,
    beat: &Beat,
    clock: &Clock,
    started_at: u64,
    deadline_ms: u64,
) -> Result<Outcome<W>, Error> {
    let instance_id = job.action.instance_id.clone();
    let common = workflow.common();
    let holder = workflow.holder();
    let autoscaling = &holder.autoscaling;
    let handoff_at = deadline_ms.saturating_sub(millis(holder.handoff_margin));
    let mut pacer = Pacer::new(millis(common.poll_interval));

    // A failure: back off and look again if waiting can heal it, hand off at the
    // hand-off point, or end with the error after a last heartbeat.
    macro_rules! recover {
        ($e:expr, $what:literal) => {{
            let e: Error = $e;
            if e.is_ecs_throttle() {
                beat.throttles.fetch_add(1, Ordering::Relaxed);
            }
            if !e.is_transient() {
                last_heartbeat(autoscaling, &job.action, beat, clock, deadline_ms).await;
                return Err(e);
            }
            match back_off(&e, $what, &mut pacer, clock, handoff_at).await {
                Recovery::Again => continue,
                Recovery::HandOff => {
                    return hand_over(workflow, job, beat, clock, started_at, deadline_ms).await;
                }
            }
        }};
    }

    loop {
        let observed = match bounded(
            clock,
            handoff_at,
            workflow.observe(job, scratch, &prepared.plan, clock.now_ms()),
        )
        .await
        {
            Ok(o) => o,
            Err(e) => recover!(e, "observing"),
        };
        pacer.succeeded();
        let clocks = HookClocks {
            now_ms: clock.now_ms(),
            invocation_deadline_ms: deadline_ms,
            heartbeat_base_ms: beat.base(),
            heartbeat_every_ms: prepared.heartbeat_every_ms,
            poll_ms: pacer.current_ms,
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

        // The heartbeater keeps the action alive; the decision's own heartbeat
        // flag only says one was due when it looked.
        let (_heartbeat_due, next) = W::next(decision);
        match next {
            Next::Stop(reason) => {
                return Ok(Outcome::Stopped {
                    instance_id,
                    reason,
                });
            }
            Next::Complete { result, detail } => {
                beat.completing.store(true, Ordering::Relaxed);
                match bounded(clock, deadline_ms, async {
                    autoscaling
                        .complete(&job.action, result)
                        .await
                        .map_err(Error::from)
                })
                .await
                {
                    Ok(ActionAck::Accepted) => {
                        info!(
                            result = result.as_str(),
                            elapsed_s = clock.now_ms().saturating_sub(started_at) / 1000,
                            "completed the lifecycle action"
                        );
                        return Ok(Outcome::Completed {
                            instance_id,
                            detail,
                        });
                    }
                    Ok(ActionAck::NoActiveAction(detail)) => {
                        return Ok(no_active(instance_id, detail));
                    }
                    Err(e) => {
                        // Not completed: keep the action alive and decide again.
                        beat.completing.store(false, Ordering::Relaxed);
                        recover!(e, "completing the lifecycle action")
                    }
                }
            }
            Next::Wait { sleep_ms } => nap(clock, handoff_at, sleep_ms).await,
            Next::HandOff => {
                return hand_over(workflow, job, beat, clock, started_at, deadline_ms).await;
            }
            Next::Own(step) => {
                let now_ms = clock.now_ms();
                match bounded(
                    clock,
                    handoff_at,
                    workflow.act(step, &observed, job, now_ms),
                )
                .await
                {
                    Ok(Flow::Observe) => {}
                    Ok(Flow::Sleep(ms)) => nap(clock, handoff_at, ms).await,
                    Ok(Flow::Finish(f)) => return Ok(Outcome::Finished(f)),
                    Err(e) => recover!(e, "carrying out a step"),
                }
            }
        }
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
        Err(_) => Err(Error::Aws(crate::error::AwsError {
            service: "ecs-lifecycle",
            operation: "step",
            code: None,
            message: "not answered before the hand-off point".into(),
        })),
    }
}

/// Sleeps `ms`, but never past the hand-off point.
async fn nap(clock: &Clock, handoff_at: u64, ms: u64) {
    let left = handoff_at.saturating_sub(clock.now_ms());
    tokio::time::sleep(Duration::from_millis(ms.min(left))).await;
}

/// Logs a transient failure and backs off; at the hand-off point, says so.
async fn back_off(
    e: &Error,
    what: &'static str,
    pacer: &mut Pacer,
    clock: &Clock,
    handoff_at: u64,
) -> Recovery {
    let pause = pacer.failed(e.is_throttle());
    let now = clock.now_ms();
    if now.saturating_add(pause) >= handoff_at {
        warn!(error = %e, error_type = e.kind(), what, "failed near the end of the invocation; handing the work over");
        return Recovery::HandOff;
    }
    warn!(
        error = %e,
        error_type = e.kind(),
        throttled = e.is_throttle(),
        failures = pacer.failures,
        poll_ms = pacer.current_ms,
        retry_in_ms = pause,
        what,
        "failed; the action is kept alive and the world observed again after a pause"
    );
    tokio::time::sleep(Duration::from_millis(pause)).await;
    Recovery::Again
}

/// Publishes the continuation (retrying it within the margin); if that fails,
/// heartbeats, then ends with the error so Lambda's async retry resumes the work.
async fn hand_over<W: HookWorkflow>(
    workflow: &W,
    job: &Job<W::Memo>,
    beat: &Beat,
    clock: &Clock,
    started_at: u64,
    deadline_ms: u64,
) -> Result<Outcome<W>, Error> {
    let holder = workflow.holder();
    let handed = hand_off(
        &holder.publisher,
        W::NAME,
        workflow.common().continuation_topic.as_deref(),
        job,
        started_at,
        beat.base(),
        &job.memo,
        clock,
        // Publish retries may use the margin but a third of it: the rest is for a
        // last heartbeat and the answer, should the publish keep failing.
        deadline_ms.saturating_sub(millis(holder.handoff_margin) / 3),
    )
    .await;
    match handed {
        Ok(h) => Ok(Outcome::HandedOff {
            instance_id: job.action.instance_id.clone(),
            attempt: h.attempt,
            topic_arn: h.topic_arn,
            message_id: h.message_id,
        }),
        Err(e) => {
            last_heartbeat(&holder.autoscaling, &job.action, beat, clock, deadline_ms).await;
            Err(e)
        }
    }
}

/// One heartbeat before an invocation ends in an error, so that Lambda's retry
/// (a minute or more later) finds the action still alive where it can.
async fn last_heartbeat<A: AutoScaling>(
    autoscaling: &A,
    action: &LifecycleAction,
    beat: &Beat,
    clock: &Clock,
    deadline_ms: u64,
) {
    if beat.every_ms >= NEVER_MS {
        return;
    }
    // Never past the invocation's end, however slow Auto Scaling answers.
    let left = deadline_ms
        .saturating_sub(clock.now_ms())
        .saturating_sub(500);
    match tokio::time::timeout(Duration::from_millis(left), autoscaling.heartbeat(action)).await {
        Ok(Ok(ActionAck::Accepted)) => {
            beat.heartbeats.fetch_add(1, Ordering::Relaxed);
            info!("recorded a last heartbeat before failing")
        }
        Ok(Ok(ActionAck::NoActiveAction(detail))) => {
            info!(%detail, "no active lifecycle action any more")
        }
        Ok(Err(e)) => warn!(error = %e, "the last heartbeat failed too"),
        Err(_) => warn!("no time left for a last heartbeat"),
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
