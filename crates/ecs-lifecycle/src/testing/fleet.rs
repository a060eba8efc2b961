//! An in-memory fleet behind the ports, for testing the hook runtime's loop
//! without Python or HTTP, under tokio's paused clock (`start_paused`).
//!
//! It keeps what the runtime's promises are about: lifecycle actions with AWS's
//! clocks (an action expires when its heartbeat timeout passes without a
//! heartbeat; completing or expiring it is final, and every later call answers
//! "No active Lifecycle Action"), a container instance whose tasks stop when the
//! test says so, and every heartbeat, completion and publish, with the time it
//! was made. Calls the hook workflows never make answer an error naming the call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use crate::drain::budget::{DrainSlots, SlotBook, SlotFuture, Versioned};
use crate::error::AwsError;
use crate::model::{
    ActionAck, ActionResult, AsgGroup, AsgInstance, Cluster, CommandInvocation, CommandSent,
    ContainerInstance, ContainerInstanceArn, DRAIN_ATTRIBUTE, DRAIN_HOOK_ATTRIBUTE,
    DRAIN_HOP_ATTRIBUTE, DRAIN_STARTED_ATTRIBUTE, EARLY_DRAIN_ATTRIBUTE, EarlyDrain, Ec2Instance,
    Ec2State, Ec2Status, HookTimeouts, Image, InstanceId, InstanceStatus, InstanceTypeInfo,
    LAUNCH_CHAIN_TAG, LaunchTemplateRef, LifecycleAction, LifecycleHook, LifecycleState, Refresh,
    RefreshPreferences, ScalingActivity, Scheduling, Service, Task, TaskArn, TaskStatus,
    TemplateVersion, Transition,
};
use crate::ports::{
    AutoScaling, DesiredStatus, Ec2, Ecs, EcsFailure, Publisher, Registration, Ssm, StopResult,
};

/// Where a fake lifecycle action stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionState {
    Waiting,
    Completed(ActionResult),
    /// The heartbeat (or global) timeout passed: Auto Scaling applied the default result.
    Expired,
}

#[derive(Debug)]
struct Action {
    asg: String,
    transition_wait: LifecycleState,
    timeouts: HookTimeouts,
    started: Instant,
    last_heartbeat: Instant,
    state: ActionState,
    /// When Auto Scaling's timeout ran out, if it did.
    expired_at: Option<Instant>,
}

/// How a scheduled fault answers a call (see [`FakeFleet::add_fault`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultKind {
    /// The call fails with this code (a throttle, a 5xx) and does nothing.
    Error(String),
    /// The call takes this much longer, then answers.
    Slow(Duration),
    /// The call takes this long, then fails without a code (the SDK's operation
    /// timeout); it did nothing.
    Timeout(Duration),
    /// The call takes effect but its answer is lost: the caller sees this code
    /// (Auto Scaling heartbeats and completions, SNS publishes, EC2 CreateTags;
    /// elsewhere it is an [`FaultKind::Error`]).
    LostAnswer(String),
}

/// A fault of one service's calls (`operation: None` for every call of the
/// service) from `from` until `until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub service: &'static str,
    pub operation: Option<&'static str>,
    pub from: Instant,
    pub until: Instant,
    pub kind: FaultKind,
}

/// A notification the fake fleet's SNS took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notified {
    pub topic: String,
    pub message: String,
    pub attributes: Vec<(String, String)>,
}

impl World {
    /// The container instance with ECS's task counts: tasks on it whose desired
    /// status is RUNNING (`runningTasksCount` counts those not PENDING), as
    /// DescribeContainerInstances reports them.
    fn counted(&self, ci: &ContainerInstance) -> ContainerInstance {
        let desired_running = || {
            self.tasks.iter().filter(|t| {
                t.container_instance_arn.as_ref() == Some(&ci.arn)
                    && t.desired_status == TaskStatus::Running
            })
        };
        let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
        ContainerInstance {
            running_tasks_count: count(
                desired_running()
                    .filter(|t| t.last_status != TaskStatus::Pending)
                    .count(),
            ),
            pending_tasks_count: count(
                desired_running()
                    .filter(|t| t.last_status == TaskStatus::Pending)
                    .count(),
            ),
            ..ci.clone()
        }
    }
}

#[derive(Debug, Default)]
struct World {
    actions: HashMap<String, Action>,
    /// (instance, time) of every accepted heartbeat.
    heartbeats: Vec<(String, Instant)>,
    /// (instance, result, time) of every accepted completion.
    completions: Vec<(String, ActionResult, Instant)>,
    /// Calls answered "No active Lifecycle Action".
    refused: usize,
    /// (topic, message) of every publish.
    published: Vec<(String, String)>,
    notifications: Vec<Notified>,
    instances: HashMap<String, ContainerInstance>,
    tasks: Vec<Task>,
    services: Vec<Service>,
    /// How long every call takes (the fake's latency).
    latency: Duration,
    /// How long every ECS call takes on top.
    ecs_latency: Duration,
    /// Until then, every ECS call fails with this code.
    ecs_fault: Option<(Instant, String)>,
    /// The account's ECS token bucket, if one is set.
    ecs_budget: Option<Bucket>,
    /// ECS calls the bucket refused (ThrottlingException).
    ecs_throttled: usize,
    /// ECS calls made (failed ones included), per operation.
    ecs_operations: HashMap<&'static str, usize>,
    /// ECS calls made (failed ones included), with their times.
    ecs_calls: Vec<Instant>,
    /// The next this many publishes fail with this code.
    publish_faults: (u32, String),
    /// Until then, DescribeLifecycleHooks fails with this code.
    hook_fault: Option<(Instant, String)>,
    /// DescribeLifecycleHooks calls made (failed ones included).
    hook_reads: usize,
    /// The next this many CompleteLifecycleAction calls fail with this code.
    complete_faults: (u32, String),
    /// Instances marked unhealthy.
    unhealthy: Vec<String>,
    /// Scheduled faults, per service and operation.
    faults: Vec<Fault>,
    /// When each message of `published` was published.
    published_at: Vec<Instant>,
    /// (instance, result, time, the instance's tasks then) of every accepted completion.
    completed_with: Vec<(String, ActionResult, Instant, Vec<Task>)>,
    /// The drain budget's store: each cluster's versioned book (DynamoDB's
    /// item; its conditional write is the version check of `write`).
    slots: HashMap<String, Versioned>,
    /// Every write of an instance's [`LAUNCH_CHAIN_TAG`]: (instance, time, value).
    chain_tags: Vec<(String, Instant, String)>,
    /// How far DescribeInstances' tags lag behind CreateTags (EC2 is eventually
    /// consistent): a read shows the tags as they stood this long ago.
    tag_read_lag: Duration,
    /// Instances whose tags are full (50): CreateTags is refused.
    tags_full: Vec<String>,
}

/// The ECS operations that share the account's cluster-resource-read bucket
/// (writes and service reads have buckets of their own).
const CLUSTER_RESOURCE_READS: [&str; 4] = [
    "DescribeContainerInstances",
    "ListContainerInstances",
    "DescribeTasks",
    "ListTasks",
];

/// ECS's per-account token bucket of cluster resource reads, shared with
/// another client that spends a steady rate of it.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    rate: f64,
    burst: f64,
    other: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// Takes a token, if one is left after the refill (and the other client's
    /// share) since the last call.
    fn take(&mut self, now: Instant) -> bool {
        let dt = (now - self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + (self.rate - self.other) * dt).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl World {
    /// Applies Auto Scaling's timeouts up to now.
    fn settle(&mut self) {
        let now = Instant::now();
        for a in self.actions.values_mut() {
            if a.state == ActionState::Waiting {
                let heartbeat = Duration::from_secs(a.timeouts.heartbeat_timeout_s);
                let global = Duration::from_secs(a.timeouts.global_timeout_s);
                let ends = (a.last_heartbeat + heartbeat).min(a.started + global);
                if now >= ends {
                    a.state = ActionState::Expired;
                    a.expired_at = Some(ends);
                }
            }
        }
    }
}

/// The fake fleet; clones share one world.
#[derive(Debug, Clone, Default)]
pub struct FakeFleet {
    world: Arc<Mutex<World>>,
}

fn unsupported(service: &'static str, operation: &'static str) -> AwsError {
    AwsError::new(
        service,
        operation,
        Some("NotEmulated".into()),
        format!("{service}:{operation} is not emulated by the fake fleet"),
    )
}

impl FakeFleet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Schedules a fault of one service's calls.
    pub fn add_fault(&self, fault: Fault) {
        self.world().faults.push(fault);
    }

    /// The fault of `service`'s `operation` now, if one is scheduled.
    fn fault(&self, service: &str, operation: &str) -> Option<FaultKind> {
        let now = Instant::now();
        self.world()
            .faults
            .iter()
            .find(|f| {
                f.service == service
                    && f.operation.is_none_or(|o| o == operation)
                    && f.from <= now
                    && now < f.until
            })
            .map(|f| f.kind.clone())
    }

    /// A call of `service`'s `operation` under its fault of the moment: the
    /// world once the call lands, and the error its answer turns into (a lost
    /// answer: the caller applies the effect, then returns the error), or the
    /// error before any effect.
    async fn faulty(
        &self,
        service: &'static str,
        operation: &'static str,
    ) -> Result<(MutexGuard<'_, World>, Option<AwsError>), AwsError> {
        let err = |code: Option<String>, message: &str| {
            AwsError::new(service, operation, code, message.to_owned())
        };
        match self.fault(service, operation) {
            None => Ok((self.call().await, None)),
            Some(FaultKind::Slow(d)) => {
                tokio::time::sleep(d).await;
                Ok((self.call().await, None))
            }
            Some(FaultKind::Timeout(d)) => {
                tokio::time::sleep(d).await;
                Err(err(None, "operation timed out (the fake fleet's fault)"))
            }
            Some(FaultKind::Error(code)) => {
                let _w = self.call().await;
                Err(err(Some(code), "the fake fleet's fault"))
            }
            Some(FaultKind::LostAnswer(code)) => Ok((
                self.call().await,
                Some(err(
                    Some(code),
                    "the answer was lost (the fake fleet's fault)",
                )),
            )),
        }
    }

    fn world(&self) -> MutexGuard<'_, World> {
        // A test that panicked while holding the lock has failed already.
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn call(&self) -> MutexGuard<'_, World> {
        let latency = self.world().latency;
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let mut w = self.world();
        w.settle();
        w
    }

    /// Every call takes this long from now on.
    pub fn set_latency(&self, latency: Duration) {
        self.world().latency = latency;
    }

    /// Every ECS call takes this long (on top of the common latency) from now on.
    pub fn set_ecs_latency(&self, latency: Duration) {
        self.world().ecs_latency = latency;
    }

    /// Every ECS call fails with `code` (e.g. `ServiceUnavailable`,
    /// `ThrottlingException`, `AccessDeniedException`) for `how_long` from now.
    /// Puts ECS's cluster resource reads (DescribeContainerInstances,
    /// ListContainerInstances, DescribeTasks, ListTasks) behind one token
    /// bucket: `rate` calls/s, `burst` at most, of which another client of the
    /// account spends `other` calls/s. A read without a token fails with
    /// ThrottlingException.
    pub fn set_ecs_budget(&self, rate: f64, burst: f64, other: f64) {
        self.world().ecs_budget = Some(Bucket {
            rate,
            burst,
            other,
            tokens: burst,
            at: Instant::now(),
        });
    }

    /// ECS calls that reached the bucket (after scheduled faults), per operation.
    pub fn ecs_operations(&self) -> HashMap<&'static str, usize> {
        self.world().ecs_operations.clone()
    }

    /// ECS calls the bucket of [`FakeFleet::set_ecs_budget`] refused.
    pub fn ecs_throttled(&self) -> usize {
        self.world().ecs_throttled
    }

    pub fn fail_ecs(&self, code: &str, how_long: Duration) {
        self.world().ecs_fault = Some((Instant::now() + how_long, code.to_owned()));
    }

    /// Every read of a hook's timeouts (DescribeLifecycleHooks) fails with
    /// `code` for `how_long` from now.
    pub fn fail_hook_reads(&self, code: &str, how_long: Duration) {
        self.world().hook_fault = Some((Instant::now() + how_long, code.to_owned()));
    }

    /// The next `n` completions fail with `code` (the action stays waiting).
    pub fn fail_completions(&self, n: u32, code: &str) {
        self.world().complete_faults = (n, code.to_owned());
    }

    /// Reads of a hook's timeouts so far.
    pub fn hook_reads(&self) -> usize {
        self.world().hook_reads
    }

    /// The next `n` publishes fail with `code`.
    pub fn fail_publishes(&self, n: u32, code: &str) {
        self.world().publish_faults = (n, code.to_owned());
    }

    /// Instances marked unhealthy in their group.
    pub fn unhealthy(&self) -> Vec<String> {
        self.world().unhealthy.clone()
    }

    /// The container instance's status and its tasks' desired statuses.
    pub fn container_instance(&self, instance_id: &str) -> Option<ContainerInstance> {
        self.world().instances.get(instance_id).cloned()
    }

    /// A running standalone task (RunTask) on the instance.
    pub fn run_standalone_task(&self, instance_id: &str, task: &str) {
        let mut w = self.world();
        let ci = w
            .instances
            .get(instance_id)
            .map(|c| c.arn.clone())
            .unwrap_or_default();
        w.tasks.push(Task {
            arn: task.into(),
            last_status: TaskStatus::Running,
            desired_status: TaskStatus::Running,
            started_by: None,
            group: Some("family:batch".into()),
            container_instance_arn: Some(ci),
            stopped_at_ms: None,
        });
    }

    /// A task's desired status.
    pub fn desired_status(&self, task: &str) -> Option<TaskStatus> {
        self.world()
            .tasks
            .iter()
            .find(|t| t.arn == task)
            .map(|t| t.desired_status.clone())
    }

    /// When each ECS call was made.
    pub fn ecs_calls(&self) -> Vec<Instant> {
        self.world().ecs_calls.clone()
    }

    /// An ECS call: its latency, its record, and the fault of the moment.
    async fn ecs(&self, operation: &'static str) -> Result<MutexGuard<'_, World>, AwsError> {
        let latency = self.world().ecs_latency;
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let answer = self.faulty("ecs", operation).await;
        let mut w = match answer {
            Ok((w, None)) => w,
            Ok((mut w, Some(e))) => {
                w.ecs_calls.push(Instant::now());
                return Err(e);
            }
            Err(e) => {
                self.world().ecs_calls.push(Instant::now());
                return Err(e);
            }
        };
        let now = Instant::now();
        w.ecs_calls.push(now);
        *w.ecs_operations.entry(operation).or_default() += 1;
        if let Some(bucket) = w.ecs_budget.as_mut()
            && CLUSTER_RESOURCE_READS.contains(&operation)
            && !bucket.take(now)
        {
            w.ecs_throttled += 1;
            return Err(AwsError::new(
                "ecs",
                operation,
                Some("ThrottlingException".into()),
                "Rate exceeded (the fake fleet's ECS bucket)".into(),
            ));
        }
        match &w.ecs_fault {
            Some((until, code)) if now < *until => Err(AwsError::new(
                "ecs",
                operation,
                Some(code.clone()),
                format!("the fake fleet's ECS answers {code}"),
            )),
            _ => Ok(w),
        }
    }

    /// An instance of `asg` waiting in `Terminating:Wait` on a hook with this
    /// heartbeat timeout, registered in cluster `c1` as DRAINING or ACTIVE.
    pub fn terminating(&self, instance_id: &str, asg: &str, heartbeat_timeout_s: u64) {
        self.wait_on(
            instance_id,
            asg,
            LifecycleState::TerminatingWait,
            heartbeat_timeout_s,
        );
    }

    fn wait_on(&self, instance_id: &str, asg: &str, state: LifecycleState, timeout_s: u64) {
        let now = Instant::now();
        self.world().actions.insert(
            instance_id.to_owned(),
            Action {
                asg: asg.to_owned(),
                transition_wait: state,
                timeouts: HookTimeouts::from_heartbeat(timeout_s),
                started: now,
                last_heartbeat: now,
                state: ActionState::Waiting,
                expired_at: None,
            },
        );
    }

    /// An instance InService in `asg` (no lifecycle action waits on it).
    pub fn in_service(&self, instance_id: &str, asg: &str) {
        let now = Instant::now();
        self.world().actions.insert(
            instance_id.to_owned(),
            Action {
                asg: asg.to_owned(),
                transition_wait: LifecycleState::InService,
                timeouts: HookTimeouts::DEFAULT,
                started: now,
                last_heartbeat: now,
                state: ActionState::Completed(ActionResult::Continue),
                expired_at: None,
            },
        );
    }

    /// Registers the instance's container instance (ACTIVE, agent connected).
    pub fn register(&self, instance_id: &str) -> String {
        self.register_in(instance_id, "c1")
    }

    /// Registers the instance's container instance in `cluster` (ACTIVE, agent
    /// connected). The fake answers lookups in any cluster; the container
    /// instance names its own.
    pub fn register_in(&self, instance_id: &str, cluster: &str) -> String {
        let arn = format!(
            "arn:aws:ecs:us-east-1:123456789012:container-instance/{cluster}/{instance_id}"
        );
        self.world().instances.insert(
            instance_id.to_owned(),
            ContainerInstance {
                cluster: cluster.into(),
                arn: arn.as_str().into(),
                ec2_instance_id: instance_id.into(),
                status: InstanceStatus::Active,
                agent_connected: true,
                running_tasks_count: 0,
                pending_tasks_count: 0,
                registered_ms: None,
                drain_token: None,
                drain_hook: None,
                drain_started_ms: None,
                drain_hop: None,
                early_drain: None,
            },
        );
        arn
    }

    /// The instance's ECS agent loses (or regains) its connection to ECS: its
    /// tasks are then never reported stopped while it is gone.
    pub fn set_agent_connected(&self, instance_id: &str, connected: bool) {
        if let Some(ci) = self.world().instances.get_mut(instance_id) {
            ci.agent_connected = connected;
        }
    }

    /// A running task of a replica service on the instance.
    pub fn run_service_task(&self, instance_id: &str, task: &str, service: &str) {
        self.run_task(instance_id, task, service, Scheduling::Replica);
    }

    /// A running task of a daemon service on the instance.
    pub fn run_daemon_task(&self, instance_id: &str, task: &str, service: &str) {
        self.run_task(instance_id, task, service, Scheduling::Daemon);
    }

    fn run_task(&self, instance_id: &str, task: &str, service: &str, scheduling: Scheduling) {
        let mut w = self.world();
        let ci = w
            .instances
            .get(instance_id)
            .map(|c| c.arn.clone())
            .unwrap_or_default();
        if !w.services.iter().any(|s| s.name == service) {
            w.services.push(Service {
                name: service.to_owned(),
                scheduling,
                desired_count: 1,
                running_count: 1,
                pending_count: 0,
                deployments: 1,
                latest_event: None,
            });
        }
        w.tasks.push(Task {
            arn: task.into(),
            last_status: TaskStatus::Running,
            desired_status: TaskStatus::Running,
            started_by: Some("ecs-svc/1".into()),
            group: Some(format!("service:{service}")),
            container_instance_arn: Some(ci),
            stopped_at_ms: None,
        });
    }

    /// Every task, as ECS would describe it.
    pub fn tasks(&self) -> Vec<Task> {
        self.world().tasks.clone()
    }

    /// Plays ECS's agent and scheduler: the task's statuses are now these (a task
    /// reaching STOPPED gets its `stoppedAt`).
    pub fn set_task_status(&self, task: &str, last: TaskStatus, desired: TaskStatus) {
        let stopped_at = crate::time::epoch_ms();
        for t in self.world().tasks.iter_mut().filter(|t| t.arn == task) {
            if last.is_stopped() && !t.last_status.is_stopped() {
                t.stopped_at_ms = Some(stopped_at);
            }
            t.last_status = last.clone();
            t.desired_status = desired.clone();
        }
    }

    /// When the instance's action ran out of time, if it did.
    pub fn expired_at(&self, instance_id: &str) -> Option<Instant> {
        let mut w = self.world();
        w.settle();
        w.actions.get(instance_id).and_then(|a| a.expired_at)
    }

    /// Accepted completions for the instance, each with the tasks on the
    /// instance's container instance at that moment.
    pub fn completed_with(&self, instance_id: &str) -> Vec<(ActionResult, Instant, Vec<Task>)> {
        self.world()
            .completed_with
            .iter()
            .filter(|(i, ..)| i == instance_id)
            .cloned()
            .map(|(_, r, t, tasks)| (r, t, tasks))
            .collect()
    }

    /// Every message published, as `(time, topic, body)`.
    pub fn published_at(&self) -> Vec<(Instant, String, String)> {
        self.published_since(0)
    }

    /// The publishes after the first `seen`, with their times.
    pub fn published_since(&self, seen: usize) -> Vec<(Instant, String, String)> {
        let w = self.world();
        w.published_at
            .iter()
            .zip(&w.published)
            .skip(seen)
            .map(|(t, (topic, body))| (*t, topic.clone(), body.clone()))
            .collect()
    }

    /// Plays ECS's scheduler: the task has stopped.
    pub fn stop_task(&self, task: &str) {
        for t in self.world().tasks.iter_mut().filter(|t| t.arn == task) {
            t.last_status = TaskStatus::Stopped;
            t.desired_status = TaskStatus::Stopped;
        }
    }

    /// Plays Auto Scaling giving up on the action (as its timeout would).
    pub fn expire(&self, instance_id: &str) {
        if let Some(a) = self.world().actions.get_mut(instance_id) {
            a.state = ActionState::Expired;
        }
    }

    pub fn action_state(&self, instance_id: &str) -> Option<ActionState> {
        let mut w = self.world();
        w.settle();
        w.actions.get(instance_id).map(|a| a.state.clone())
    }

    /// Times of the accepted heartbeats for the instance.
    pub fn heartbeats(&self, instance_id: &str) -> Vec<Instant> {
        self.world()
            .heartbeats
            .iter()
            .filter(|(i, _)| i == instance_id)
            .map(|(_, t)| *t)
            .collect()
    }

    /// Accepted completions for the instance.
    pub fn completions(&self, instance_id: &str) -> Vec<(ActionResult, Instant)> {
        self.world()
            .completions
            .iter()
            .filter(|(i, _, _)| i == instance_id)
            .map(|(_, r, t)| (*r, *t))
            .collect()
    }

    /// Heartbeats and completions answered "No active Lifecycle Action".
    pub fn refused(&self) -> usize {
        self.world().refused
    }

    /// Every notification published.
    pub fn notifications(&self) -> Vec<Notified> {
        self.world().notifications.clone()
    }

    /// Every message published, as `(topic, body)`.
    pub fn published(&self) -> Vec<(String, String)> {
        self.world().published.clone()
    }

    fn no_active(w: &mut World, instance_id: &str) -> ActionAck {
        w.refused += 1;
        ActionAck::NoActiveAction(format!(
            "No active Lifecycle Action found with instance ID {instance_id}"
        ))
    }
}

impl AutoScaling for FakeFleet {
    async fn instance(&self, instance_id: &InstanceId) -> Result<Option<AsgInstance>, AwsError> {
        let w = match self
            .faulty("autoscaling", "DescribeAutoScalingInstances")
            .await?
        {
            (w, None) => w,
            (_, Some(e)) => return Err(e),
        };
        Ok(asg_instance(&w, instance_id))
    }

    async fn instances(&self, instance_ids: &[InstanceId]) -> Result<Vec<AsgInstance>, AwsError> {
        let w = match self
            .faulty("autoscaling", "DescribeAutoScalingInstances")
            .await?
        {
            (w, None) => w,
            (_, Some(e)) => return Err(e),
        };
        Ok(instance_ids
            .iter()
            .filter_map(|id| asg_instance(&w, id))
            .collect())
    }

    /// Every group of the fake fleet is one of the function's: it has the
    /// deployment's terminate hook (no notification target: the function has
    /// no CONTINUATION_TOPIC_ARN here, so any terminate hook is its own).
    async fn lifecycle_hooks(&self, _group: &str) -> Result<Vec<LifecycleHook>, AwsError> {
        if let (_, Some(e)) = self.faulty("autoscaling", "DescribeLifecycleHooks").await? {
            return Err(e);
        }
        Ok(vec![LifecycleHook {
            name: "drain".into(),
            transition: Some(Transition::Terminating),
            timeouts: HookTimeouts::DEFAULT,
            default_result: "CONTINUE".into(),
            notification_target: None,
        }])
    }

    async fn hook_timeouts(
        &self,
        asg: &str,
        _hook: &str,
    ) -> Result<Option<HookTimeouts>, AwsError> {
        let mut w = match self.faulty("autoscaling", "DescribeLifecycleHooks").await? {
            (w, None) => w,
            (_, Some(e)) => return Err(e),
        };
        w.hook_reads += 1;
        if let Some((until, code)) = &w.hook_fault
            && Instant::now() < *until
        {
            return Err(AwsError::new(
                "autoscaling",
                "DescribeLifecycleHooks",
                Some(code.clone()),
                "injected by the fake fleet".into(),
            ));
        }
        // The group's hook, as its actions carry it (an instance merely in
        // service in the group holds no action, and says nothing of the hook).
        Ok(w.actions
            .values()
            .find(|a| a.asg == asg && a.transition_wait != LifecycleState::InService)
            .map(|a| a.timeouts))
    }

    async fn heartbeat(&self, action: &LifecycleAction) -> Result<ActionAck, AwsError> {
        let (mut w, lost) = self
            .faulty("autoscaling", "RecordLifecycleActionHeartbeat")
            .await?;
        let now = Instant::now();
        let ack = match w.actions.get_mut(action.instance_id.as_str()) {
            Some(a) if a.state == ActionState::Waiting => {
                a.last_heartbeat = now;
                w.heartbeats.push((action.instance_id.to_string(), now));
                ActionAck::Accepted
            }
            _ => Self::no_active(&mut w, &action.instance_id),
        };
        lost.map_or(Ok(ack), Err)
    }

    async fn mark_unhealthy(&self, instance_id: &InstanceId) -> Result<(), AwsError> {
        let mut w = self.call().await;
        w.unhealthy.push(instance_id.to_string());
        Ok(())
    }

    async fn terminate_instance(&self, _instance_id: &InstanceId) -> Result<(), AwsError> {
        Err(unsupported(
            "autoscaling",
            "TerminateInstanceInAutoScalingGroup",
        ))
    }

    async fn complete(
        &self,
        action: &LifecycleAction,
        result: ActionResult,
    ) -> Result<ActionAck, AwsError> {
        let (mut w, lost) = self
            .faulty("autoscaling", "CompleteLifecycleAction")
            .await?;
        if w.complete_faults.0 > 0 {
            w.complete_faults.0 -= 1;
            return Err(AwsError::new(
                "autoscaling",
                "CompleteLifecycleAction",
                Some(w.complete_faults.1.clone()),
                "injected by the fake fleet".into(),
            ));
        }
        let ack = match w.actions.get_mut(action.instance_id.as_str()) {
            Some(a) if a.state == ActionState::Waiting => {
                a.state = ActionState::Completed(result);
                let now = Instant::now();
                w.completions
                    .push((action.instance_id.to_string(), result, now));
                let ci = w
                    .instances
                    .get(action.instance_id.as_str())
                    .map(|c| c.arn.clone());
                let tasks = w
                    .tasks
                    .iter()
                    .filter(|t| ci.is_some() && t.container_instance_arn == ci)
                    .cloned()
                    .collect();
                w.completed_with
                    .push((action.instance_id.to_string(), result, now, tasks));
                ActionAck::Accepted
            }
            _ => Self::no_active(&mut w, &action.instance_id),
        };
        lost.map_or(Ok(ack), Err)
    }

    async fn group(&self, _name: &str) -> Result<Option<AsgGroup>, AwsError> {
        Err(unsupported("autoscaling", "DescribeAutoScalingGroups"))
    }

    async fn groups(&self, _names: &[String]) -> Result<Vec<AsgGroup>, AwsError> {
        Err(unsupported("autoscaling", "DescribeAutoScalingGroups"))
    }

    async fn refreshes(&self, _group: &str) -> Result<Vec<Refresh>, AwsError> {
        Err(unsupported("autoscaling", "DescribeInstanceRefreshes"))
    }

    async fn newest_refresh(&self, _group: &str) -> Result<Option<Refresh>, AwsError> {
        Err(unsupported("autoscaling", "DescribeInstanceRefreshes"))
    }

    async fn activities_since(
        &self,
        _group: &str,
        _since_ms: u64,
    ) -> Result<Vec<ScalingActivity>, AwsError> {
        Err(unsupported("autoscaling", "DescribeScalingActivities"))
    }

    async fn start_refresh(
        &self,
        _group: &str,
        _template_id: &str,
        _version: i64,
        _preferences: RefreshPreferences,
    ) -> Result<Option<String>, AwsError> {
        Err(unsupported("autoscaling", "StartInstanceRefresh"))
    }

    async fn rollback_refresh(&self, _group: &str) -> Result<Option<String>, AwsError> {
        Err(unsupported("autoscaling", "RollbackInstanceRefresh"))
    }

    async fn pin_template(
        &self,
        _group: &str,
        _template_id: &str,
        _version: i64,
    ) -> Result<(), AwsError> {
        Err(unsupported("autoscaling", "UpdateAutoScalingGroup"))
    }

    async fn refused_launches(
        &self,
        _group: &str,
        _since_ms: u64,
    ) -> Result<Vec<String>, AwsError> {
        Err(unsupported("autoscaling", "DescribeScalingActivities"))
    }

    async fn set_group_tag(
        &self,
        _group: &str,
        _key: &str,
        _value: Option<&str>,
    ) -> Result<(), AwsError> {
        Err(unsupported("autoscaling", "CreateOrUpdateTags"))
    }
}

/// The instance as DescribeAutoScalingInstances shows it, if a group has it.
fn asg_instance(w: &World, instance_id: &InstanceId) -> Option<AsgInstance> {
    w.actions.get(instance_id.as_str()).map(|a| AsgInstance {
        instance_id: instance_id.clone(),
        asg: a.asg.clone(),
        lifecycle_state: match &a.state {
            ActionState::Waiting => a.transition_wait.clone(),
            _ if a.transition_wait.is_terminate_wait() => LifecycleState::Terminating,
            _ => LifecycleState::InService,
        },
    })
}

impl Ecs for FakeFleet {
    async fn cluster_arns(&self) -> Result<Vec<Cluster>, AwsError> {
        let _w = self.ecs("ListClusters").await?;
        Ok(vec!["c1".into()])
    }

    async fn find_container_instance(
        &self,
        _cluster: &Cluster,
        ec2_instance_id: &InstanceId,
    ) -> Result<Registration, AwsError> {
        let w = self.ecs("ListContainerInstances").await?;
        Ok(w.instances
            .get(ec2_instance_id.as_str())
            .map(|c| Box::new(w.counted(c)))
            .map_or(Registration::NotRegistered, Registration::Registered))
    }

    async fn describe_container_instance(
        &self,
        _cluster: &Cluster,
        arn: &ContainerInstanceArn,
    ) -> Result<Option<ContainerInstance>, AwsError> {
        let w = self.ecs("DescribeContainerInstances").await?;
        Ok(w.instances
            .values()
            .find(|c| c.arn == arn)
            .map(|c| w.counted(c)))
    }

    async fn describe_container_instances(
        &self,
        _cluster: &Cluster,
        arns: &[ContainerInstanceArn],
    ) -> Result<Vec<ContainerInstance>, AwsError> {
        let w = self.ecs("DescribeContainerInstances").await?;
        Ok(w.instances
            .values()
            .filter(|c| arns.contains(&c.arn))
            .map(|c| w.counted(c))
            .collect())
    }

    async fn set_attributes(
        &self,
        _cluster: &Cluster,
        container_instance: &ContainerInstanceArn,
        attributes: &[(&str, &str)],
    ) -> Result<(), AwsError> {
        let mut w = self.ecs("PutAttributes").await?;
        if let Some(ci) = w
            .instances
            .values_mut()
            .find(|c| c.arn == container_instance)
        {
            for (name, value) in attributes {
                match *name {
                    DRAIN_ATTRIBUTE => ci.drain_token = Some((*value).to_owned()),
                    DRAIN_HOOK_ATTRIBUTE => ci.drain_hook = Some((*value).to_owned()),
                    DRAIN_STARTED_ATTRIBUTE => ci.drain_started_ms = value.parse().ok(),
                    DRAIN_HOP_ATTRIBUTE => ci.drain_hop = value.parse().ok(),
                    EARLY_DRAIN_ATTRIBUTE => ci.early_drain = EarlyDrain::parse(value),
                    _ => {}
                }
            }
        }
        Ok(())
    }

    async fn delete_attributes(
        &self,
        _cluster: &Cluster,
        container_instance: &ContainerInstanceArn,
        names: &[&str],
    ) -> Result<(), AwsError> {
        let mut w = self.ecs("DeleteAttributes").await?;
        if let Some(ci) = w
            .instances
            .values_mut()
            .find(|c| c.arn == container_instance)
        {
            for name in names {
                match *name {
                    DRAIN_ATTRIBUTE => ci.drain_token = None,
                    DRAIN_HOOK_ATTRIBUTE => ci.drain_hook = None,
                    DRAIN_STARTED_ATTRIBUTE => ci.drain_started_ms = None,
                    DRAIN_HOP_ATTRIBUTE => ci.drain_hop = None,
                    EARLY_DRAIN_ATTRIBUTE => ci.early_drain = None,
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// ECS allows ACTIVE <-> DRAINING only; another status is a per-item failure.
    async fn set_active(
        &self,
        _cluster: &Cluster,
        arn: &ContainerInstanceArn,
    ) -> Result<Result<(), EcsFailure>, AwsError> {
        let mut w = self.ecs("UpdateContainerInstancesState").await?;
        match w.instances.values_mut().find(|c| c.arn == arn) {
            Some(ci) if matches!(ci.status, InstanceStatus::Active | InstanceStatus::Draining) => {
                ci.status = InstanceStatus::Active;
                Ok(Ok(()))
            }
            Some(ci) => Ok(Err(EcsFailure {
                reason: format!("cannot set ACTIVE from {}", ci.status),
                detail: None,
            })),
            None => Ok(Err(EcsFailure {
                reason: "MISSING".into(),
                detail: None,
            })),
        }
    }

    async fn set_draining(
        &self,
        _cluster: &Cluster,
        arn: &ContainerInstanceArn,
    ) -> Result<Result<(), EcsFailure>, AwsError> {
        let mut w = self.ecs("UpdateContainerInstancesState").await?;
        match w.instances.values_mut().find(|c| c.arn == arn) {
            Some(ci) => {
                ci.status = InstanceStatus::Draining;
                Ok(Ok(()))
            }
            None => Ok(Err(EcsFailure {
                reason: "MISSING".into(),
                detail: None,
            })),
        }
    }

    async fn task_arns(
        &self,
        _cluster: &Cluster,
        container_instance: &ContainerInstanceArn,
        desired: DesiredStatus,
    ) -> Result<Vec<TaskArn>, AwsError> {
        let w = self.ecs("ListTasks").await?;
        let want = match desired {
            DesiredStatus::Running => TaskStatus::Running,
            DesiredStatus::Stopped => TaskStatus::Stopped,
        };
        Ok(w.tasks
            .iter()
            .filter(|t| {
                t.container_instance_arn.as_ref() == Some(container_instance)
                    && t.desired_status == want
            })
            .map(|t| t.arn.clone())
            .collect())
    }

    async fn tasks(&self, _cluster: &Cluster, arns: &[TaskArn]) -> Result<Vec<Task>, AwsError> {
        let w = self.ecs("DescribeTasks").await?;
        Ok(w.tasks
            .iter()
            .filter(|t| arns.contains(&t.arn))
            .cloned()
            .collect())
    }

    async fn services(
        &self,
        _cluster: &Cluster,
        names: &[String],
    ) -> Result<Vec<Service>, AwsError> {
        let w = self.ecs("DescribeServices").await?;
        Ok(w.services
            .iter()
            .filter(|s| names.contains(&s.name))
            .cloned()
            .collect())
    }

    async fn stop(
        &self,
        _cluster: &Cluster,
        arn: &TaskArn,
        _reason: &str,
    ) -> Result<StopResult, AwsError> {
        let mut w = self.ecs("StopTask").await?;
        match w.tasks.iter_mut().find(|t| t.arn == arn) {
            Some(t) => {
                t.desired_status = TaskStatus::Stopped;
                Ok(StopResult::Stopped)
            }
            None => Ok(StopResult::NotFound(format!("task {arn} not found"))),
        }
    }

    async fn container_instances(
        &self,
        _cluster: &Cluster,
    ) -> Result<Vec<ContainerInstance>, AwsError> {
        let w = self.ecs("ListContainerInstances").await?;
        Ok(w.instances.values().map(|c| w.counted(c)).collect())
    }

    async fn container_instance_count(&self, cluster: &Cluster) -> Result<usize, AwsError> {
        let w = self.ecs("ListContainerInstances").await?;
        Ok(w.instances
            .values()
            .filter(|c| c.cluster == *cluster && c.status != InstanceStatus::Inactive)
            .count())
    }

    async fn service_arns(&self, _cluster: &Cluster) -> Result<Vec<String>, AwsError> {
        let w = self.ecs("ListServices").await?;
        Ok(w.services.iter().map(|s| s.name.clone()).collect())
    }

    async fn service_task_arns(
        &self,
        _cluster: &Cluster,
        _service: &str,
        _desired: DesiredStatus,
    ) -> Result<Vec<TaskArn>, AwsError> {
        Err(unsupported("ecs", "ListTasks"))
    }
}

impl FakeFleet {
    /// The drain budget's book of a cluster, as stored.
    pub fn slot_book(&self, cluster: &str) -> Option<SlotBook> {
        self.world().slots.get(cluster).map(|v| v.book.clone())
    }
}

/// The drain budget's table: a consistent read and a write conditioned on the
/// version, as DynamoDB's GetItem (ConsistentRead) and conditional PutItem.
/// Faults come from the `dynamodb` service's schedule (a lost answer: the
/// write took effect).
impl DrainSlots for FakeFleet {
    fn read<'a>(&'a self, cluster: &'a Cluster) -> SlotFuture<'a, Option<Versioned>> {
        Box::pin(async move {
            let (w, err) = self.faulty("dynamodb", "GetItem").await?;
            let found = w.slots.get(cluster.as_str()).cloned();
            match err {
                Some(e) => Err(e),
                None => Ok(found),
            }
        })
    }

    fn write<'a>(
        &'a self,
        cluster: &'a Cluster,
        book: &'a SlotBook,
        expected: Option<u64>,
    ) -> SlotFuture<'a, bool> {
        Box::pin(async move {
            let (mut w, err) = self.faulty("dynamodb", "PutItem").await?;
            let stored = w.slots.get(cluster.as_str()).map(|v| v.version);
            if stored != expected {
                // ConditionalCheckFailedException: nothing written.
                return err.map_or(Ok(false), Err);
            }
            w.slots.insert(
                cluster.as_str().to_owned(),
                Versioned {
                    book: book.clone(),
                    version: expected.map_or(1, |v| v + 1),
                },
            );
            match err {
                Some(e) => Err(e),
                None => Ok(true),
            }
        })
    }
}

impl Publisher for FakeFleet {
    async fn publish_message(
        &self,
        topic_arn: &str,
        _subject: &str,
        message: &str,
    ) -> Result<String, AwsError> {
        let (mut w, lost) = self.faulty("sns", "Publish").await?;
        if w.publish_faults.0 > 0 {
            w.publish_faults.0 -= 1;
            return Err(AwsError::new(
                "sns",
                "Publish",
                Some(w.publish_faults.1.clone()),
                "the fake fleet's SNS refuses this publish".into(),
            ));
        }
        w.published.push((topic_arn.to_owned(), message.to_owned()));
        w.published_at.push(Instant::now());
        match lost {
            Some(e) => Err(e),
            None => Ok(format!("msg-{}", w.published.len())),
        }
    }

    async fn publish_notification(
        &self,
        topic_arn: &str,
        _subject: &str,
        message: &str,
        attributes: &[(&str, &str)],
    ) -> Result<String, AwsError> {
        let mut w = self.call().await;
        let attributes = attributes
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        w.notifications.push(Notified {
            topic: topic_arn.to_owned(),
            message: message.to_owned(),
            attributes,
        });
        Ok(format!("note-{}", w.notifications.len()))
    }
}

impl Ec2 for FakeFleet {
    async fn instance_state(
        &self,
        instance_id: &InstanceId,
    ) -> Result<Option<Ec2Status>, AwsError> {
        let w = match self.faulty("ec2", "DescribeInstances").await? {
            (w, None) => w,
            (_, Some(e)) => return Err(e),
        };
        if !w.actions.contains_key(instance_id.as_str()) {
            return Ok(None);
        }
        let seen = Instant::now().checked_sub(w.tag_read_lag);
        let launch_chain = w
            .chain_tags
            .iter()
            .rev()
            .find(|(id, at, _)| id == instance_id.as_str() && seen.is_some_and(|s| *at <= s))
            .map(|(_, _, v)| v.clone());
        Ok(Some(Ec2Status {
            state: Ec2State::Running,
            launch_chain,
        }))
    }

    async fn tag_instance(
        &self,
        instance_id: &InstanceId,
        key: &str,
        value: &str,
    ) -> Result<(), AwsError> {
        let (mut w, lost) = self.faulty("ec2", "CreateTags").await?;
        let err = |code: &str, message: String| {
            AwsError::new("ec2", "CreateTags", Some(code.into()), message)
        };
        if !w.actions.contains_key(instance_id.as_str()) {
            return Err(err(
                "InvalidInstanceID.NotFound",
                format!("The instance ID '{instance_id}' does not exist"),
            ));
        }
        if w.tags_full.iter().any(|i| i == instance_id.as_str()) {
            return Err(err(
                "TagLimitExceeded",
                "The maximum number of Tags for a resource has been reached.".into(),
            ));
        }
        if key == LAUNCH_CHAIN_TAG {
            w.chain_tags
                .push((instance_id.to_string(), Instant::now(), value.to_owned()));
        }
        lost.map_or(Ok(()), Err)
    }

    async fn instances(&self, _ids: &[InstanceId]) -> Result<Vec<Ec2Instance>, AwsError> {
        Err(unsupported("ec2", "DescribeInstances"))
    }

    async fn template_versions(
        &self,
        _template_id: &str,
        _versions: &[String],
    ) -> Result<Vec<TemplateVersion>, AwsError> {
        Err(unsupported("ec2", "DescribeLaunchTemplateVersions"))
    }

    async fn template_version(
        &self,
        _template: &LaunchTemplateRef,
    ) -> Result<Option<TemplateVersion>, AwsError> {
        Err(unsupported("ec2", "DescribeLaunchTemplateVersions"))
    }

    async fn template_versions_after(
        &self,
        _template_id: &str,
        _after: i64,
    ) -> Result<Vec<TemplateVersion>, AwsError> {
        Err(unsupported("ec2", "DescribeLaunchTemplateVersions"))
    }

    async fn create_template_version(
        &self,
        _template_id: &str,
        _from: i64,
        _ami: &str,
        _description: &str,
    ) -> Result<i64, AwsError> {
        Err(unsupported("ec2", "CreateLaunchTemplateVersion"))
    }

    async fn images(&self, _ids: &[String]) -> Result<Vec<Image>, AwsError> {
        Err(unsupported("ec2", "DescribeImages"))
    }

    async fn instance_types(&self, _types: &[String]) -> Result<Vec<InstanceTypeInfo>, AwsError> {
        Err(unsupported("ec2", "DescribeInstanceTypes"))
    }
}

impl Ssm for FakeFleet {
    async fn run_document(
        &self,
        _document: &str,
        _instance_id: &InstanceId,
        _parameters: &[(&str, &str)],
        _log_group: Option<&str>,
        _timeout_s: i32,
    ) -> Result<CommandSent, AwsError> {
        Err(unsupported("ssm", "SendCommand"))
    }

    async fn command_invocation(
        &self,
        _command_id: &str,
        _instance_id: &InstanceId,
    ) -> Result<Option<CommandInvocation>, AwsError> {
        Err(unsupported("ssm", "GetCommandInvocation"))
    }

    async fn parameter(&self, _name: &str) -> Result<Option<String>, AwsError> {
        Err(unsupported("ssm", "GetParameter"))
    }
}

/// A launch action waiting in `Pending:Wait`, and its instance's tags.
impl FakeFleet {
    /// The instance's [`LAUNCH_CHAIN_TAG`] as written last (no lag).
    pub fn launch_chain_tag(&self, instance_id: &str) -> Option<String> {
        self.world()
            .chain_tags
            .iter()
            .rev()
            .find(|(id, ..)| id == instance_id)
            .map(|(_, _, v)| v.clone())
    }

    /// How many times the instance's [`LAUNCH_CHAIN_TAG`] was written.
    pub fn launch_chain_writes(&self, instance_id: &str) -> usize {
        self.world()
            .chain_tags
            .iter()
            .filter(|(id, ..)| id == instance_id)
            .count()
    }

    /// DescribeInstances shows tags as they stood `lag` ago.
    pub fn set_tag_read_lag(&self, lag: Duration) {
        self.world().tag_read_lag = lag;
    }

    /// The instance has 50 tags already: CreateTags is refused.
    pub fn fill_tags(&self, instance_id: &str) {
        self.world().tags_full.push(instance_id.to_owned());
    }

    pub fn launching(&self, instance_id: &str, asg: &str, heartbeat_timeout_s: u64) {
        self.wait_on(
            instance_id,
            asg,
            LifecycleState::PendingWait,
            heartbeat_timeout_s,
        );
    }
}
