//! terminate-drain as a hook workflow: which work it takes, how it plans an
//! invocation (the drain deadline, the hook's heartbeat cadence), and its own
//! steps (set DRAINING, stop the tasks the scheduler will not stop). The hook
//! runtime ([`crate::hook::runtime`]) holds the action around them.

use std::collections::{BTreeSet, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tracing::{debug, info, warn};

use crate::config::{DrainConfig, DrainTimeoutAction, StandalonePolicy, WaitMode};
use crate::drain::budget::DrainSlots;
use crate::drain::decide::{
    Census, Clocks, Completion, Observed, Policy, Step, StopReason, decide,
};
use crate::drain::events::{DrainEvent, EcsEvent};
use crate::drain::observe::{Scratch, stuck_report_due};
use crate::error::{AwsError, Error};
use crate::hook::coalesce::Coalescer;
use crate::hook::dispatch::ignored;
use crate::hook::pacing::random_u64;
use crate::hook::runtime::{self, Flow, Holder, HookWorkflow, OutcomeOf, Spec, Tally};
use crate::hook::{Accept, Job};
use crate::model::{
    AsgInstance, Cluster, ContainerInstance, ContainerInstanceArn, InstanceId, InstanceStatus,
    LifecycleAction, LifecycleState, TaskArn, Transition,
};
use crate::ports::{AutoScaling, Ecs, Publisher, StopResult};
use crate::report::{Event, Notification, Record};
use crate::time::millis;

pub const FUNCTION_NAME: &str = "terminate-drain";

/// The longest a drain rests its looks under ECS throttling (see
/// [`DrainMemo::rest_ms`]).
pub const MAX_REST_MS: u64 = 300_000;

/// Most container instances one DescribeContainerInstances takes.
const DESCRIBE_CONTAINER_INSTANCES_MAX: usize = 100;
/// Most instances one DescribeAutoScalingInstances takes.
const DESCRIBE_AUTO_SCALING_INSTANCES_MAX: usize = 50;

/// Memo carried in a continuation: hints that save lookups, never trusted blindly.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DrainMemo {
    #[serde(default)]
    pub cluster: Option<Cluster>,
    #[serde(default)]
    pub container_instance_arn: Option<ContainerInstanceArn>,
    /// Services that had tasks on the instance (for the stability check).
    #[serde(default)]
    pub services: BTreeSet<String>,
    /// Since when the agent has been seen disconnected (epoch ms), while it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_disconnected_since_ms: Option<u64>,
    /// What the last full look found on the DRAINING instance: until the end,
    /// a look needs only the container instance's task counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub census: Option<Census>,
    /// When the drain last said why it is stuck (epoch ms): at most once every
    /// ten minutes, across hops.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stuck_reported_at_ms: Option<u64>,
    /// The drain's share of a throttled ECS: after a look ECS throttled, the
    /// drain's looks list no task and read the container instance at one hop
    /// in four only (its claim, for one chain per action), for this long (doubling from the poll interval
    /// up to [`MAX_REST_MS`] while ECS keeps throttling, halving after a look
    /// that went through), so a thousand drains ask for what the account's
    /// bucket grants instead of retrying into it. Heartbeats never rest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rest_ms: Option<u64>,
    /// Until when (epoch ms) the drain rests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rest_until_ms: Option<u64>,
    /// MAX_CONCURRENT_DRAINS: this drain holds a slot of its cluster's budget
    /// (its lease is renewed first thing in every look).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub holds_slot: bool,
    /// Started by an ECS event, not by the hook's chain: look once, complete if
    /// drained, otherwise leave the drain to its chain. Never handed over.
    #[serde(skip)]
    pub from_event: bool,
    /// What this invocation learned so far (never handed over).
    #[serde(skip)]
    pub(super) scratch: Scratch,
}

impl DrainMemo {
    /// Whether the drain rests its looks now (ECS throttled its last one). A
    /// rest that would end further away than [`MAX_REST_MS`] was set by a
    /// clock ahead of this one: ignored.
    pub(super) fn resting(&self, now_ms: u64) -> bool {
        self.rest_until_ms
            .is_some_and(|until| now_ms < until && until - now_ms <= MAX_REST_MS)
    }

    /// Adapts the rest to how the look went: a look ECS throttled doubles it
    /// (from the poll interval, up to [`MAX_REST_MS`]); one that went through
    /// halves it (under the poll interval: none). A rested look changes nothing.
    fn after_look(&mut self, looked: &Result<Observed, Error>, now_ms: u64, poll_ms: u64) {
        match looked {
            Ok(o) if o.rested => {}
            Ok(_) => {
                self.rest_ms = self.rest_ms.map(|r| r / 2).filter(|r| *r >= poll_ms);
                self.rest_until_ms = None;
            }
            Err(e) if e.is_ecs_throttle() => {
                let rest = self
                    .rest_ms
                    .map_or(poll_ms, |r| r.saturating_mul(2))
                    .clamp(poll_ms.min(MAX_REST_MS), MAX_REST_MS);
                self.rest_ms = Some(rest);
                // Jittered (half to all of it): drains throttled together do
                // not come back together.
                let jitter = random_u64() % (rest / 2 + 1);
                self.rest_until_ms = Some(now_ms.saturating_add(rest / 2 + jitter));
            }
            Err(_) => {}
        }
    }
}

/// How a drain ended (the `reason` of a `completed` or `stopped` outcome).
/// `Completed` is CONTINUE, except a [`Completion::Retained`] drain (ABANDON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Done {
    /// Completed (CONTINUE, or ABANDON when retained).
    Completed { reason: Completion },
    /// Ended without completing.
    Stopped { reason: StopReason },
}

/// The drain's deadlines and policy in one invocation, from its clocks.
#[derive(Debug, Clone, Copy)]
struct Plan {
    policy: Policy,
    /// MAX_DRAIN_SECONDS after the drain started, capped by the hook's global timeout.
    drain_deadline_ms: u64,
    /// When Auto Scaling started the action (the drain's own start).
    action_start_ms: u64,
}

/// The drain's own acts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Act {
    SetDraining,
    StopTasks {
        arns: Vec<TaskArn>,
        why: crate::drain::decide::StopWhy,
    },
}

/// The terminate-drain workflow over any ECS, Auto Scaling and SNS implementation.
#[derive(Debug)]
pub struct Drainer<E, A, P> {
    pub(super) ecs: E,
    pub(super) hold: Holder<A, P>,
    pub(super) config: DrainConfig,
    /// Groups whose instance lifecycle policy was looked at (or tried) in this
    /// sandbox, with DRAIN_TIMEOUT_ACTION=retain: each is checked once per cold
    /// start.
    retention_checked: Mutex<HashSet<String>>,
    /// The looks of the records of one invocation (an SQS batch of
    /// continuations) share their DescribeContainerInstances per cluster...
    pub(super) container_instances: Coalescer<Cluster, ContainerInstanceArn, ContainerInstance>,
    /// ... and their DescribeAutoScalingInstances.
    pub(super) asg_instances: Coalescer<(), InstanceId, AsgInstance>,
    /// The drain budget's store (MAX_CONCURRENT_DRAINS), when set.
    pub(super) slots: Option<Box<dyn DrainSlots>>,
}

impl<E: Ecs, A: AutoScaling, P: Publisher> Drainer<E, A, P> {
    pub fn new(ecs: E, autoscaling: A, publisher: P, config: DrainConfig) -> Self {
        Drainer {
            ecs,
            hold: Holder::new(autoscaling, publisher, config.common.clone(), FUNCTION_NAME),
            config,
            retention_checked: Mutex::new(HashSet::new()),
            container_instances: Coalescer::new(DESCRIBE_CONTAINER_INSTANCES_MAX),
            asg_instances: Coalescer::new(DESCRIBE_AUTO_SCALING_INSTANCES_MAX),
            slots: None,
        }
    }

    /// The store of the drain budget (MAX_CONCURRENT_DRAINS; DRAIN_SLOTS_TABLE
    /// in AWS): without it, a limited budget fails every drain that asks it.
    pub fn with_slots(mut self, slots: impl DrainSlots + 'static) -> Self {
        self.slots = Some(Box::new(slots));
        self
    }

    /// Where metrics and notifications go (stdout and NOTIFICATION_TOPIC_ARN by default).
    pub fn with_reporter(mut self, reporter: crate::report::Reporter) -> Self {
        self.hold.reporter = reporter;
        self
    }

    /// Time kept before the invocation deadline to hand off (default 10 s).
    pub fn with_handoff_margin(mut self, margin: Duration) -> Self {
        self.hold.handoff_margin = margin;
        self
    }

    pub fn config(&self) -> &DrainConfig {
        &self.config
    }

    /// Sets the container instance DRAINING (ECS's per-item failure is an error)
    /// and tells the operators (`detail` gets the container instance's ARN).
    pub(super) async fn set_draining(
        &self,
        ci: &ContainerInstance,
        group: Option<&str>,
        instance_id: &InstanceId,
        mut detail: serde_json::Value,
    ) -> Result<(), Error> {
        if let Err(failure) = self.ecs.set_draining(&ci.cluster, &ci.arn).await? {
            return Err(failure.of_state_update(&ci.arn));
        }
        detail["container_instance"] = json!(ci.arn);
        let mut note = Notification::new(Event::DrainStarted, &ci.cluster)
            .instance(instance_id)
            .detail(detail);
        note.group = group.map(str::to_owned);
        self.hold.reporter.notify(&self.hold.publisher, note).await;
        Ok(())
    }
}

impl<E: Ecs, A: AutoScaling, P: Publisher> Drainer<E, A, P> {
    /// An ECS event that may end a drain (a task STOPPED, or a DRAINING instance
    /// with nothing left running): find the action it belongs to, cheaply. Events
    /// for clusters outside CLUSTER_NAME cost no call. Others cost one
    /// (DescribeContainerInstances: the status, the drain's hook attribute and
    /// the task counts) when the instance is not draining for us or still has
    /// tasks whose desired status is RUNNING (that event cannot end the drain:
    /// its own chain looks on its pace, and nothing is heartbeated here). Only an
    /// event that can end the drain costs a second call
    /// (DescribeAutoScalingInstances) and then the drain's full look.
    async fn on_ecs_event(&self, event: EcsEvent) -> Result<Accept<DrainMemo>, Error> {
        let skip = |why: &str| {
            debug!(cluster = %event.cluster_arn, container_instance = %event.container_instance_arn, why, "skipped an ECS event");
            Ok(Accept::Answered(ignored(why)))
        };
        if !event.may_end_a_drain() {
            return skip("ECS event that cannot end a drain");
        }
        if !self.config.common.clusters.contains(&event.cluster_arn) {
            return skip("ECS event of another cluster");
        }
        // An event only hastens a drain its chain carries anyway: when ECS or
        // Auto Scaling throttles (or fails for a moment) its look, the event is
        // dropped, not failed (a function error would be retried by Lambda a
        // minute later and counted by the Errors alarm). A permanent error
        // (access denied) still fails loudly.
        let transient = |e: &AwsError| {
            e.is_retryable().then(|| {
                debug!(error = %e, "an ECS event's look failed for a moment; the drain's own chain looks at its pace");
                Ok(Accept::Answered(ignored("ECS event dropped: its look failed for a moment")))
            })
        };
        let ci = match self
            .ecs
            .describe_container_instance(&event.cluster_arn, &event.container_instance_arn)
            .await
        {
            Ok(Some(ci)) => ci,
            Ok(None) => return skip("container instance unknown to ECS"),
            Err(e) => return transient(&e).unwrap_or(Err(e.into())),
        };
        // An early drain's instance (no terminate hook holds it): may it be undone?
        if ci.drain_hook.is_none() && ci.early_drain.is_some() {
            // No wait here: the agent's own connection is such an event.
            let wait = std::time::Duration::ZERO;
            return Ok(Accept::Answered(self.undo_early_drain(ci, wait).await?));
        }
        let (InstanceStatus::Draining, Some(hook)) = (&ci.status, ci.drain_hook.clone()) else {
            return skip("no drain of ours on the container instance");
        };
        // Tasks whose desired status is RUNNING keep the drain going, unless they
        // may be standalone tasks the drain ignores (STANDALONE_TASKS=ignore).
        let tasks_to_run = ci.running_tasks_count > 0 || ci.pending_tasks_count > 0;
        if tasks_to_run && self.config.standalone != StandalonePolicy::Ignore {
            return skip("the draining instance still has tasks to run: the drain goes on");
        }
        let asg_instance = match self.hold.autoscaling.instance(&ci.ec2_instance_id).await {
            Ok(Some(i)) => i,
            Ok(None) => return skip("instance in no Auto Scaling group"),
            Err(e) => return transient(&e).unwrap_or(Err(e.into())),
        };
        if !asg_instance.lifecycle_state.is_terminate_wait() {
            return skip("instance not waiting on a terminate action");
        }
        info!(asg = %asg_instance.asg, %hook, instance_id = %ci.ec2_instance_id, "an ECS event may end a drain: looking at once");
        let action = LifecycleAction {
            asg: asg_instance.asg,
            hook: Some(hook),
            instance_id: ci.ec2_instance_id.clone(),
            transition: Transition::Terminating,
            token: None,
            time: None,
            metadata: None,
            origin: None,
            destination: None,
            account_id: None,
        };
        let mut job = Job::fresh(action, None);
        // The drain started when its chain's action did, not with this event.
        job.started_at_ms = ci.drain_started_ms;
        job.memo = DrainMemo {
            cluster: Some(ci.cluster),
            container_instance_arn: Some(ci.arn),
            from_event: true,
            ..DrainMemo::default()
        };
        Ok(Accept::Job(Box::new(job)))
    }
}

impl<E: Ecs, A: AutoScaling, P: Publisher> Drainer<E, A, P> {
    /// With DRAIN_TIMEOUT_ACTION=retain, says once per group and cold start
    /// whether the group's instance lifecycle policy retains an instance whose
    /// terminate hook is abandoned (`TerminateHookAbandon: retain`): without it,
    /// the ABANDON of a retained drain terminates the instance all the same.
    /// One DescribeAutoScalingGroups per group; never gates the drain.
    async fn check_retention(&self, group: &str) {
        if self.config.timeout_action != DrainTimeoutAction::Retain {
            return;
        }
        let first = self
            .retention_checked
            .lock()
            .map(|mut seen| seen.insert(group.to_owned()))
            .unwrap_or(false);
        if !first {
            return;
        }
        match self.hold.autoscaling.group(group).await {
            Ok(Some(g)) if g.retains_abandoned_terminations() => {
                debug!(
                    asg = group,
                    "the group's instance lifecycle policy retains abandoned terminations"
                );
            }
            Ok(Some(g)) => warn!(
                asg = group,
                terminate_hook_abandon = g.terminate_hook_abandon.as_deref().unwrap_or("none"),
                check = "retention_policy",
                "DRAIN_TIMEOUT_ACTION=retain, but the group has no instance lifecycle policy with TerminateHookAbandon=retain: a drain that times out is completed ABANDON and Auto Scaling terminates the instance anyway (set it: aws autoscaling update-auto-scaling-group --auto-scaling-group-name <group> --instance-lifecycle-policy 'RetentionTriggers={{TerminateHookAbandon=retain}}')"
            ),
            Ok(None) => debug!(asg = group, "group not found; retention policy not checked"),
            Err(e) => warn!(
                asg = group,
                error = %e,
                check = "retention_policy",
                "could not read the group's instance lifecycle policy (DRAIN_TIMEOUT_ACTION=retain needs TerminateHookAbandon=retain on the group)"
            ),
        }
    }

    fn plan(&self, clocks: &runtime::Clocks) -> Plan {
        let max_ms = millis(self.config.max_drain);
        let started = clocks.started_at_ms;
        Plan {
            policy: Policy {
                standalone: self.config.standalone,
                service_stability: self.config.service_stability,
                // The poll interval as the runtime paces it (stretched while ECS throttles).
                poll_interval_ms: clocks.poll_ms,
                handoff_margin_ms: millis(self.hold.handoff_margin),
                agent_grace_ms: millis(self.config.agent_disconnected_grace),
                timeout_action: self.config.timeout_action,
            },
            drain_deadline_ms: clocks.hook.map_or(started.saturating_add(max_ms), |h| {
                h.deadline(started, max_ms)
            }),
            action_start_ms: clocks.hook.map_or(started, |h| h.action_start_ms),
        }
    }
}

impl<E: Ecs, A: AutoScaling, P: Publisher> HookWorkflow for Drainer<E, A, P> {
    const SPEC: Spec = Spec {
        name: FUNCTION_NAME,
        work: "drain",
        transition: Transition::Terminating,
    };
    type Event = DrainEvent;
    type Memo = DrainMemo;
    type Observed = Observed;
    type Act = Act;
    type Done = Done;

    fn holder(&self) -> &Holder<impl AutoScaling, impl Publisher> {
        &self.hold
    }

    async fn on_event(&self, event: DrainEvent) -> Result<Accept<DrainMemo>, Error> {
        match event {
            DrainEvent::Ecs(event) => self.on_ecs_event(event).await,
            DrainEvent::Signal(signal) => Ok(Accept::Answered(self.on_signal(signal).await?)),
            DrainEvent::InstanceState(change) => {
                Ok(Accept::Answered(self.on_instance_state(change).await?))
            }
        }
    }

    async fn observe(
        &self,
        job: &mut Job<DrainMemo>,
        clocks: &runtime::Clocks,
    ) -> Result<Observed, Error> {
        let plan = self.plan(clocks);
        let now_ms = clocks.now_ms;
        let instance_id = job.action.instance_id.clone();
        // Every drain job holds a terminate action (its ECS events find theirs).
        let hook = job.action.hook.clone().ok_or_else(|| {
            Error::Internal(format!("a drain of {instance_id} without a lifecycle hook"))
        })?;
        job.memo.scratch.observing_at_ms = now_ms;
        if !job.memo.from_event {
            self.check_retention(&job.action.asg).await;
        }
        self.renew_slot(&job.memo, &instance_id, now_ms).await;
        // A drain about to be retained says why it is stuck now, whenever it
        // last did: its WARN names the reason.
        let retaining = self.config.timeout_action == DrainTimeoutAction::Retain
            && now_ms >= plan.drain_deadline_ms;
        let report_due = retaining
            || stuck_report_due(
                now_ms,
                clocks.started_at_ms,
                plan.drain_deadline_ms,
                job.memo.stuck_reported_at_ms,
            );
        // A brief look (the task counts only) unless this look may end the
        // drain at its deadline or must name what blocks it.
        let brief_ok = now_ms < plan.drain_deadline_ms && !report_due;
        // A rest under ECS throttling holds back the stuck report too (it
        // needs the tasks' list), never the deadline.
        let rest_ok = now_ms < plan.drain_deadline_ms;
        let looked = self
            .look(
                &mut job.memo,
                &instance_id,
                &hook,
                plan.action_start_ms,
                job.attempt,
                brief_ok,
                rest_ok,
            )
            .await;
        // In the queue each hop is one look, and nothing but the memo carries
        // the pace across hops; an invocation that waits stretches its own
        // polls while ECS throttles (the runtime's pacer).
        if self.config.common.wait_mode == WaitMode::Queue {
            job.memo
                .after_look(&looked, now_ms, plan.policy.poll_interval_ms);
        }
        // An ECS event only hastens the drain its chain carries anyway: a look
        // of its that fails for a moment (ECS throttling) ends it, rather than
        // retrying into a busy ECS or handing over (which would start a chain
        // beside the drain's own).
        if job.memo.from_event
            && let Err(e) = &looked
            && e.is_retryable()
        {
            info!(error = %e, "an ECS event's look failed for a moment; the drain's own chain looks at its pace");
            return Ok(Observed {
                asg_instance: Some(AsgInstance {
                    instance_id: instance_id.clone(),
                    asg: job.action.asg.clone(),
                    lifecycle_state: LifecycleState::TerminatingWait,
                }),
                rested: true,
                ..Observed::default()
            });
        }
        let mut observed = looked?;
        observed.waiting_for_slot = self
            .budget_look(job, &observed, plan.action_start_ms, now_ms)
            .await;
        if report_due
            && !observed.live_tasks.is_empty()
            && let Some(ci) = &observed.container_instance
        {
            job.memo.stuck_reported_at_ms = Some(now_ms);
            job.memo.scratch.stuck_why = self
                .report_stuck(
                    &ci.cluster,
                    &observed.live_tasks,
                    now_ms.saturating_sub(clocks.started_at_ms),
                )
                .await;
        }
        Ok(observed)
    }

    fn decide(
        &self,
        job: &Job<DrainMemo>,
        observed: &Observed,
        c: &runtime::Clocks,
    ) -> runtime::Step<Act, Done> {
        let plan = self.plan(c);
        let clocks = Clocks {
            now_ms: c.now_ms,
            drain_deadline_ms: plan.drain_deadline_ms,
            invocation_deadline_ms: c.invocation_deadline_ms,
            heartbeat_base_ms: c.heartbeat_base_ms,
            heartbeat_every_ms: c.heartbeat_every_ms,
            attempt: c.attempt,
        };
        let mut step = decide(observed, &plan.policy, &clocks);
        if job.memo.from_event && !matches!(step, Step::Complete(_) | Step::Stop(_)) {
            // Not drained yet: the hook's own chain carries on; no second chain.
            step = Step::Stop(StopReason::LeftToTheDrain);
        }
        log_decision(
            &step,
            observed,
            &job.memo.scratch.stuck_why,
            c.started_at_ms,
            c.now_ms,
        );
        match step {
            Step::Stop(reason) => runtime::Step::Stop(Done::Stopped { reason }),
            Step::Complete(reason) => runtime::Step::Complete {
                result: reason.result(),
                detail: Done::Completed { reason },
            },
            Step::SetDraining => runtime::Step::Act(Act::SetDraining),
            Step::StopTasks { arns, why } => runtime::Step::Act(Act::StopTasks { arns, why }),
            Step::Wait { sleep_ms, .. } => runtime::Step::Wait { sleep_ms },
            Step::HandOff { .. } => runtime::Step::HandOff,
            Step::WaitForSlot { hand_off: true, .. } => runtime::Step::HandOff,
            Step::WaitForSlot { sleep_ms, .. } => runtime::Step::Wait { sleep_ms },
        }
    }

    async fn act(
        &self,
        act: Act,
        observed: &Observed,
        job: &mut Job<DrainMemo>,
        _clocks: &runtime::Clocks,
    ) -> Result<Flow<Done>, Error> {
        let instance_id = &job.action.instance_id;
        let ci = observed.container_instance.as_ref().ok_or_else(|| {
            Error::Internal(format!(
                "a step on the container instance of {instance_id}, but none was observed"
            ))
        })?;
        match act {
            Act::SetDraining => {
                let detail = json!({
                    "reason": "terminate_lifecycle_action",
                    "hook": job.action.hook,
                });
                self.set_draining(ci, Some(&job.action.asg), instance_id, detail)
                    .await?;
                info!("set the container instance to DRAINING");
                // Observe again at once: ECS has already started stopping PENDING tasks.
                Ok(Flow::Observe)
            }
            Act::StopTasks { arns, why } => {
                let reason = format!(
                    "{FUNCTION_NAME}: instance {instance_id} is being terminated by Auto Scaling"
                );
                for arn in &arns {
                    match self.ecs.stop(&ci.cluster, arn, &reason).await? {
                        StopResult::Stopped => info!(task = %arn, ?why, "stopped task"),
                        // Already gone: exactly what we wanted.
                        StopResult::NotFound(detail) => {
                            warn!(task = %arn, %detail, "task to stop was not found")
                        }
                    }
                }
                Ok(Flow::Sleep(millis(self.config.common.poll_interval)))
            }
        }
    }

    fn cluster(&self, job: &Job<DrainMemo>) -> String {
        job.memo
            .cluster
            .clone()
            .or_else(|| self.config.common.clusters.single().cloned())
            .unwrap_or_default()
            .into_string()
    }

    async fn report(
        &self,
        outcome: &OutcomeOf<Self>,
        job: &Job<DrainMemo>,
        tally: &Tally,
        record: Record,
    ) -> Record {
        // The action is over: its drain slot (or place in the queue) frees.
        let over = match outcome {
            runtime::Outcome::Completed { .. } | runtime::Outcome::AlreadyCompleted { .. } => true,
            runtime::Outcome::Stopped { detail, .. } => matches!(
                detail,
                Done::Stopped {
                    reason: StopReason::NotWaiting { .. }
                }
            ),
            _ => false,
        };
        if over && let Some(cluster) = &job.memo.cluster {
            self.release_slot(cluster, &job.action.instance_id, tally.ended_at_ms)
                .await;
        }
        let runtime::Outcome::Completed {
            detail: Done::Completed { reason },
            ..
        } = outcome
        else {
            return record;
        };
        let started = tally
            .action_start_ms
            .unwrap_or(tally.started_at_ms)
            .min(tally.started_at_ms);
        let drain_ms = tally.ended_at_ms.saturating_sub(started);
        let left = match reason {
            Completion::DeadlineReached { left }
            | Completion::Retained { left }
            | Completion::AgentDisconnected { left, .. } => Some(left.len()),
            _ => None,
        };
        let timed_out = matches!(
            reason,
            Completion::DeadlineReached { .. } | Completion::NoDrainSlot { .. }
        );
        let retained = matches!(
            reason,
            Completion::Retained { .. } | Completion::NoDrainSlot { retained: true, .. }
        );
        // The last task that stopped during this drain (not before it began).
        let lag_ms = job
            .memo
            .scratch
            .last_stopped_ms
            .filter(|t| *t >= started)
            .map(|t| tally.ended_at_ms.saturating_sub(t));
        let mut record = record
            .count("DrainsCompleted", 1)
            .seconds_from_ms("DrainSeconds", drain_ms)
            .count("TasksLeftAtCompletion", left.map_or(0, |n| n as u64))
            .count("DrainTimeouts", u64::from(timed_out))
            .count("DrainsRetained", u64::from(retained));
        if let Some(lag) = lag_ms {
            record = record.seconds_from_ms("CompletionLagSeconds", lag);
        }
        let event = if retained {
            Event::DrainRetained
        } else if timed_out {
            Event::DrainTimedOut
        } else {
            Event::DrainCompleted
        };
        #[allow(clippy::cast_precision_loss)]
        let seconds = |ms: u64| ms as f64 / 1000.0;
        self.hold
            .reporter
            .notify(
                &self.hold.publisher,
                Notification::new(event, &self.cluster(job))
                    .group(&job.action.asg)
                    .instance(&job.action.instance_id)
                    .detail(json!({
                        "reason": reason,
                        "result": reason.result(),
                        "why": if retained { json!(job.memo.scratch.stuck_why) } else { json!(null) },
                        "drain_seconds": seconds(drain_ms),
                        "completion_lag_seconds": lag_ms.map(seconds),
                        "tasks_left": left.unwrap_or(0),
                        "attempt": job.attempt,
                    })),
            )
            .await;
        record
    }
}

/// One structured line per decision (`why`: what the last stuck report said).
fn log_decision(step: &Step, observed: &Observed, why: &[String], started_at: u64, now: u64) {
    let status = observed
        .container_instance
        .as_ref()
        .map(|c| c.status.to_string());
    let lifecycle_state = observed
        .asg_instance
        .as_ref()
        .map_or("none", |i| i.lifecycle_state.as_str());
    let elapsed_s = now.saturating_sub(started_at) / 1000;
    // `counts`: a brief look (the container instance's task counts only);
    // `resting`: none (ECS throttled the drain's last look).
    let look = if observed.rested {
        "resting"
    } else if observed.brief.is_some() {
        "counts"
    } else {
        "tasks"
    };
    match step {
        Step::Stop(reason) => info!(
            decision = "stop",
            ?reason,
            lifecycle_state,
            "the instance is not waiting on a terminate action; stopping without completing or continuing"
        ),
        Step::Complete(Completion::DeadlineReached { left }) => warn!(
            decision = "complete",
            reason = "deadline_reached",
            tasks_left = left.len(),
            left = ?left.iter().take(20).collect::<Vec<_>>(),
            elapsed_s,
            "drain deadline reached with tasks still on the instance; completing CONTINUE, they end with the instance"
        ),
        Step::Complete(Completion::Retained { left }) => warn!(
            decision = "complete",
            reason = "retained",
            result = "ABANDON",
            tasks_left = left.len(),
            left = ?left.iter().take(20).collect::<Vec<_>>(),
            why = ?why,
            elapsed_s,
            "drain deadline reached with tasks still running (DRAIN_TIMEOUT_ACTION=retain): completing ABANDON and stopping nothing more; the group's lifecycle policy keeps the instance in Terminating:Retained until `ecs-lifecycle release`"
        ),
        Step::Complete(Completion::AgentDisconnected { for_s, left }) => warn!(
            decision = "complete",
            reason = "agent_disconnected",
            disconnected_s = for_s,
            tasks_left = left.len(),
            left = ?left.iter().take(20).collect::<Vec<_>>(),
            elapsed_s,
            "the ECS agent has been disconnected for AGENT_DISCONNECTED_GRACE_SECONDS: its tasks can never be reported stopped; completing CONTINUE, they end with the instance"
        ),
        Step::Complete(Completion::NoDrainSlot { waited_s, retained }) => warn!(
            decision = "complete",
            reason = "no_drain_slot",
            result = if *retained { "ABANDON" } else { "CONTINUE" },
            waited_s,
            elapsed_s,
            "drain deadline reached while still waiting for a slot of MAX_CONCURRENT_DRAINS: the instance was never set DRAINING; completing as a drain at its deadline (DRAIN_TIMEOUT_ACTION), its tasks were not moved (raise MAX_DRAIN_SECONDS or the budget)"
        ),
        Step::Complete(reason) => info!(
            decision = "complete",
            ?reason,
            elapsed_s,
            "completing the lifecycle action with CONTINUE"
        ),
        Step::SetDraining => info!(
            decision = "set_draining",
            status = status.as_deref().unwrap_or(""),
            "the container instance is ACTIVE; setting DRAINING"
        ),
        Step::StopTasks { arns, why } => info!(
            decision = "stop_tasks",
            ?why,
            count = arns.len(),
            "stopping tasks the scheduler will not stop"
        ),
        Step::Wait {
            remaining,
            sleep_ms,
        } => info!(
            decision = "wait",
            service = remaining.service,
            daemon = remaining.daemon,
            standalone = remaining.standalone,
            ignored = remaining.ignored,
            unsteady = ?remaining.unsteady_services,
            sleep_ms,
            elapsed_s,
            look,
            "tasks still on the instance; waiting"
        ),
        Step::WaitForSlot {
            ahead,
            limit,
            holders,
            waited_s,
            sleep_ms,
            hand_off,
        } => info!(
            decision = "wait_for_slot",
            waiting_for_slot = true,
            ahead,
            max_concurrent_drains = limit,
            draining = ?holders.iter().take(20).collect::<Vec<_>>(),
            waited_s,
            sleep_ms,
            hand_off,
            elapsed_s,
            "no drain slot for this instance yet (MAX_CONCURRENT_DRAINS: the slots are held, or go to older actions first): waiting, heartbeating, before setting DRAINING"
        ),
        Step::HandOff { remaining } => info!(
            decision = "hand_off",
            service = remaining.service,
            daemon = remaining.daemon,
            standalone = remaining.standalone,
            elapsed_s,
            look,
            "invocation nearly over; continuing in a new invocation"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::AwsError;

    fn throttled() -> Result<Observed, Error> {
        Err(Error::Aws(AwsError::new(
            "ecs",
            "DescribeContainerInstances",
            Some("ThrottlingException".into()),
            "Rate exceeded".into(),
        )))
    }

    #[test]
    fn a_throttled_ecs_rests_the_drains_looks_doubling_then_halving() {
        let poll = 30_000;
        let mut m = DrainMemo::default();
        let mut now = 1_000_000;
        assert!(!m.resting(now));
        let mut rests = Vec::new();
        for _ in 0..6 {
            m.after_look(&throttled(), now, poll);
            rests.push(m.rest_ms.unwrap());
            // Half to all of the rest, jittered.
            let until = m.rest_until_ms.unwrap();
            let rest = m.rest_ms.unwrap();
            assert!((now + rest / 2..=now + rest).contains(&until), "{until}");
            assert!(m.resting(now + rest / 2 - 1));
            assert!(!m.resting(now + rest));
            now += rest;
        }
        assert_eq!(rests, [30_000, 60_000, 120_000, 240_000, 300_000, 300_000]);
        // A rested look changes nothing; one that went through halves it.
        let rested = Observed {
            rested: true,
            ..Observed::default()
        };
        m.after_look(&Ok(rested), now, poll);
        assert_eq!(m.rest_ms, Some(300_000));
        for want in [Some(150_000), Some(75_000), Some(37_500), None, None] {
            m.after_look(&Ok(Observed::default()), now, poll);
            assert_eq!(m.rest_ms, want);
            assert!(!m.resting(now));
        }
        // Other errors leave the rest as it is.
        let denied = Err(Error::Aws(AwsError::new(
            "ecs",
            "DescribeContainerInstances",
            Some("AccessDeniedException".into()),
            "no".into(),
        )));
        m.after_look(&denied, now, poll);
        assert_eq!((m.rest_ms, m.rest_until_ms), (None, None));
    }

    #[test]
    fn a_rest_set_by_a_clock_far_ahead_is_ignored() {
        let m = DrainMemo {
            rest_ms: Some(MAX_REST_MS),
            rest_until_ms: Some(10_000_000),
            ..DrainMemo::default()
        };
        assert!(m.resting(10_000_000 - MAX_REST_MS));
        // An hour behind the clock that set it: not a rest this drain asked for.
        assert!(!m.resting(10_000_000 - 3_600_000));
    }
}
