//! Plain domain data: what the functions observe of ECS and Auto Scaling, with no
//! SDK types in it.

use serde::{Deserialize, Serialize};

use crate::error::EventError;

mod ids;
mod state;

pub use ids::{Cluster, ContainerInstanceArn, InstanceId, TaskArn};
pub use state::{
    CommandStatus, Ec2State, ImageState, InstanceStatus, LifecycleState, RefreshStatus, TaskStatus,
};

/// An EC2 instance registered with an ECS cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerInstance {
    pub cluster: Cluster,
    pub arn: ContainerInstanceArn,
    pub ec2_instance_id: InstanceId,
    pub status: InstanceStatus,
    pub agent_connected: bool,
    /// Tasks whose *desired* status is RUNNING (not enough to call it drained).
    pub running_tasks_count: i32,
    /// Tasks in PENDING.
    pub pending_tasks_count: i32,
    /// When it registered with the cluster (epoch ms).
    pub registered_ms: Option<u64>,
    /// The value of its [`DRAIN_ATTRIBUTE`]: which terminate-drain invocation
    /// holds its drain.
    pub drain_token: Option<String>,
    /// The value of its [`DRAIN_HOOK_ATTRIBUTE`]: the terminate hook being drained for.
    pub drain_hook: Option<String>,
    /// The value of its [`DRAIN_STARTED_ATTRIBUTE`]: when the drain's lifecycle
    /// action started (epoch ms).
    pub drain_started_ms: Option<u64>,
    /// The value of its [`DRAIN_HOP_ATTRIBUTE`]: the latest hop of the drain's
    /// chain that has looked at it.
    pub drain_hop: Option<u32>,
    /// The value of its [`EARLY_DRAIN_ATTRIBUTE`]: an early warning (Spot,
    /// rebalance, maintenance) set it DRAINING, and until when that drain may
    /// end in termination.
    pub early_drain: Option<EarlyDrain>,
}

/// The ECS attribute on a container instance that names the one terminate-drain
/// invocation holding its drain (see `drain::observe`).
pub const DRAIN_ATTRIBUTE: &str = "ecs-lifecycle.drain-token";

/// The ECS attribute naming the lifecycle hook a drain holds (written with the
/// token), so that an ECS event about the instance can find the action.
pub const DRAIN_HOOK_ATTRIBUTE: &str = "ecs-lifecycle.drain-hook";

/// The ECS attribute with the start of the drain's lifecycle action (epoch ms,
/// written with the token), so that an invocation started by an ECS event
/// measures the drain from its real start.
pub const DRAIN_STARTED_ATTRIBUTE: &str = "ecs-lifecycle.drain-started";

/// The ECS attribute with the latest hop (continuation attempt) of the drain's
/// chain that has claimed it: a delivery of an earlier hop (a duplicate, a late
/// retry) finds a later one has looked, and stops instead of continuing a
/// second chain (with WAIT_MODE=queue a chain hops at every poll).
pub const DRAIN_HOP_ATTRIBUTE: &str = "ecs-lifecycle.drain-hop";

/// The ECS attribute an early drain (Spot, rebalance or maintenance warning)
/// writes on a container instance just before it sets it DRAINING: who
/// started the drain and until when it may end in termination
/// ([`EarlyDrain`]). Only a drain with this marker is ever set ACTIVE again
/// (`drain::undo`); an operator's DRAINING has none, a terminate hook's drain
/// carries [`DRAIN_HOOK_ATTRIBUTE`].
pub const EARLY_DRAIN_ATTRIBUTE: &str = "ecs-lifecycle.early-drain";

/// What the [`EARLY_DRAIN_ATTRIBUTE`] says: `<reason>:<since_ms>:<until_ms>`
/// (ECS attribute values allow letters, digits, `_`, `-`, `.`, `@`, `/`, `:`
/// and spaces, up to 128 characters).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EarlyDrain {
    /// What started it: `spot_terminate`, `spot_stop`, `spot_hibernate`,
    /// `rebalance_recommendation` or `scheduled_<event type code>`.
    pub reason: String,
    /// When the early drain set DRAINING (epoch ms).
    pub since_ms: u64,
    /// The end of the event's window (epoch ms): an instance still in service
    /// after it was not taken away. Lowered to the moment EC2 reports the
    /// instance running again after the drain.
    pub until_ms: u64,
}

impl EarlyDrain {
    /// The attribute's value.
    pub fn to_value(&self) -> String {
        format!("{}:{}:{}", self.reason, self.since_ms, self.until_ms)
    }

    /// Reads an attribute's value; `None` when it is not one this code wrote.
    pub fn parse(value: &str) -> Option<Self> {
        let mut parts = value.rsplitn(3, ':');
        let until_ms = parts.next()?.parse().ok()?;
        let since_ms = parts.next()?.parse().ok()?;
        let reason = parts.next().filter(|r| !r.is_empty())?.to_owned();
        Some(EarlyDrain {
            reason,
            since_ms,
            until_ms,
        })
    }
}

/// A task, as far as draining cares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Task {
    pub arn: TaskArn,
    pub last_status: TaskStatus,
    pub desired_status: TaskStatus,
    /// `ecs-svc/<deployment>` for service tasks.
    pub started_by: Option<String>,
    /// `service:<name>` for service tasks, `family:<name>` by default otherwise.
    pub group: Option<String>,
    pub container_instance_arn: Option<ContainerInstanceArn>,
    /// When ECS says the task stopped (epoch ms), once it has.
    pub stopped_at_ms: Option<u64>,
}

impl Task {
    /// STOPPED is the only state in which a task holds nothing on the instance.
    pub fn is_stopped(&self) -> bool {
        self.last_status.is_stopped()
    }

    /// Whether the scheduler has already been told to stop it.
    pub fn is_stopping(&self) -> bool {
        self.desired_status == TaskStatus::Stopped
    }

    /// The service that owns the task, if a service scheduler started it.
    pub fn service_name(&self) -> Option<&str> {
        if !self
            .started_by
            .as_deref()
            .is_some_and(|s| s.starts_with("ecs-svc/"))
        {
            return None;
        }
        self.group
            .as_deref()
            .and_then(|g| g.strip_prefix("service:"))
    }
}

/// How ECS schedules a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Scheduling {
    Replica,
    Daemon,
}

/// A service's counts, for the daemon test and the stability check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Service {
    pub name: String,
    pub scheduling: Scheduling,
    pub desired_count: i32,
    pub running_count: i32,
    pub pending_count: i32,
    pub deployments: usize,
    /// The scheduler's latest event (e.g. "(service web) was unable to place a
    /// task because no container instance met all of its requirements").
    pub latest_event: Option<String>,
}

impl Service {
    /// Replacements are running: as many tasks run as are desired.
    pub fn has_replacements_running(&self) -> bool {
        self.running_count >= self.desired_count
    }
}

/// An instance as Auto Scaling sees it: its group and lifecycle state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AsgInstance {
    pub instance_id: InstanceId,
    pub asg: String,
    pub lifecycle_state: LifecycleState,
}

impl AsgInstance {
    /// Whether a terminate lifecycle action is waiting on us.
    pub fn is_terminate_wait(&self) -> bool {
        self.lifecycle_state.is_terminate_wait()
    }
}

/// The timeouts of a lifecycle hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookTimeouts {
    pub heartbeat_timeout_s: u64,
    pub global_timeout_s: u64,
}

impl HookTimeouts {
    /// Auto Scaling's defaults (3600 s; 100 x heartbeat capped at 48 h).
    pub const DEFAULT: HookTimeouts = HookTimeouts::from_heartbeat(3600);

    pub const fn from_heartbeat(heartbeat_timeout_s: u64) -> Self {
        let global = heartbeat_timeout_s.saturating_mul(100);
        HookTimeouts {
            heartbeat_timeout_s,
            global_timeout_s: if global < 172_800 { global } else { 172_800 },
        }
    }
}

/// CompleteLifecycleAction's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ActionResult {
    Continue,
    Abandon,
}

impl ActionResult {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionResult::Continue => "CONTINUE",
            ActionResult::Abandon => "ABANDON",
        }
    }
}

/// What Auto Scaling said to a heartbeat or completion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionAck {
    Accepted,
    /// `ValidationError: No active Lifecycle Action found`: the action was already
    /// completed or has expired. Final: never retry.
    NoActiveAction(String),
}

/// What SendCommand said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandSent {
    Sent {
        command_id: String,
    },
    /// SSM cannot run commands on the instance (no SSM agent, no instance
    /// profile, no route to SSM): itself a finding.
    Unreachable(String),
}

/// A command invocation on one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandInvocation {
    pub status: CommandStatus,
    /// The script's exit code (-1 while it runs).
    pub response_code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl CommandInvocation {
    pub fn is_finished(&self) -> bool {
        self.status.is_finished()
    }
}

/// An Auto Scaling group: its launch template, instances and tags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AsgGroup {
    pub name: String,
    pub desired_capacity: i32,
    /// The group's launch template as it names it (directly or in its mixed
    /// instances policy); `None` for a launch configuration.
    pub launch_template: Option<LaunchTemplateRef>,
    /// It launches through a mixed instances policy.
    pub mixed_instances_policy: bool,
    /// `(instance id, lifecycle state)`.
    pub instances: Vec<(InstanceId, LifecycleState)>,
    pub tags: Vec<(String, String)>,
    /// The account that owns the group (from its ARN).
    pub account_id: Option<String>,
    /// Instances whose health status Auto Scaling reports as `Unhealthy`.
    pub unhealthy: Vec<InstanceId>,
    /// The group's instance lifecycle policy, `RetentionTriggers.TerminateHookAbandon`
    /// as Auto Scaling spells it (`retain` or `terminate`); `None` without a policy.
    pub terminate_hook_abandon: Option<String>,
}

impl AsgGroup {
    /// Whether an instance whose terminate hook ends ABANDON is retained
    /// (`Terminating:Retained`) instead of terminated.
    pub fn retains_abandoned_terminations(&self) -> bool {
        self.terminate_hook_abandon
            .as_deref()
            .is_some_and(|v| v.eq_ignore_ascii_case("retain"))
    }

    /// The launch template the AMI rollout can change, or why it has none
    /// (launch configuration, mixed instances policy, a template by name only).
    pub fn template(&self) -> Result<TemplateSpec, String> {
        if self.mixed_instances_policy {
            return Err(
                "it uses a mixed instances policy (not supported yet: give it a plain launch template)"
                    .to_owned(),
            );
        }
        match &self.launch_template {
            Some(LaunchTemplateRef {
                id: Some(id),
                version,
                ..
            }) => Ok(TemplateSpec {
                id: id.clone(),
                version: version.clone(),
            }),
            Some(_) => Err("its launch template reference has no id".to_owned()),
            None => Err(
                "it uses a launch configuration (deprecated by AWS); move it to a launch template"
                    .to_owned(),
            ),
        }
    }
}

/// A launch template as a group or a refresh names it: by id or by name (AWS
/// takes either), at a version (a number, `$Latest` or `$Default`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LaunchTemplateRef {
    pub id: Option<String>,
    pub name: Option<String>,
    pub version: String,
}

impl LaunchTemplateRef {
    /// The id if known, else the name.
    pub fn label(&self) -> &str {
        self.id
            .as_deref()
            .or(self.name.as_deref())
            .unwrap_or_default()
    }
}

/// A group's launch template by id, as the AMI rollout changes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TemplateSpec {
    pub id: String,
    /// A number, `$Latest` or `$Default`.
    pub version: String,
}

/// A lifecycle hook of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LifecycleHook {
    pub name: String,
    /// `None` for a transition this version does not know.
    pub transition: Option<Transition>,
    pub timeouts: HookTimeouts,
    /// `CONTINUE` or `ABANDON` (Auto Scaling's default is ABANDON).
    pub default_result: String,
    /// The SNS topic (or SQS queue) its notifications go to, if any.
    pub notification_target: Option<String>,
}

/// A scaling activity of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScalingActivity {
    pub id: String,
    /// e.g. `Terminating EC2 instance: i-0123456789abcdef0`.
    pub description: String,
    /// A ScalingActivityStatusCode (`MidLifecycleAction`, `Successful`, ...).
    pub status_code: String,
    pub status_message: Option<String>,
    pub started_ms: Option<u64>,
}

impl ScalingActivity {
    /// The activity is over (the instance launched, terminated, or failed to).
    pub fn is_finished(&self) -> bool {
        matches!(
            self.status_code.as_str(),
            "Successful" | "Failed" | "Cancelled"
        )
    }

    /// A launch that ended failed or cancelled (a launch hook abandoned it, or
    /// EC2 refused).
    pub fn is_refused_launch(&self) -> bool {
        self.description.starts_with("Launching a new EC2 instance")
            && matches!(self.status_code.as_str(), "Failed" | "Cancelled")
    }
}

/// One version of a launch template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TemplateVersion {
    pub number: i64,
    pub image_id: Option<String>,
    pub description: Option<String>,
    /// Whether it is the template's default version.
    pub is_default: bool,
    /// The instance type it launches, if it names one.
    pub instance_type: Option<String>,
}

/// An AMI as DescribeImages reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Image {
    pub id: String,
    pub state: ImageState,
    /// `x86_64`, `arm64`, `i386`, ...
    pub architecture: Option<String>,
    /// The account that owns it.
    pub owner_id: Option<String>,
    /// `amazon` for AWS's own images (`aws-marketplace`, or none, otherwise).
    pub owner_alias: Option<String>,
    /// CreationDate, epoch milliseconds.
    pub created_ms: Option<u64>,
}

/// The processor architectures an instance type supports (DescribeInstanceTypes'
/// `ProcessorInfo.SupportedArchitectures`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstanceTypeInfo {
    pub instance_type: String,
    pub architectures: Vec<String>,
}

/// An instance as launch-verify looks at it (one DescribeInstances): its state
/// and its [`LAUNCH_CHAIN_TAG`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ec2Status {
    pub state: Ec2State,
    /// The value of the instance's [`LAUNCH_CHAIN_TAG`], if it has one.
    pub launch_chain: Option<String>,
}

/// The EC2 tag on an instance that names the launch-verify invocation holding
/// its launch action (see `launch::claim`).
pub const LAUNCH_CHAIN_TAG: &str = "ecs-lifecycle:launch-chain";

/// An EC2 instance: its AMI and when it was launched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ec2Instance {
    pub id: InstanceId,
    pub image_id: Option<String>,
    pub launched_ms: Option<u64>,
    pub state: Option<Ec2State>,
}

/// How a refresh replaces instances.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefreshPreferences {
    /// 100: launch before terminating, keep full capacity.
    pub min_healthy_percentage: i32,
    /// 100 + the batch as a percentage of the group.
    pub max_healthy_percentage: i32,
    /// Let Auto Scaling roll back its own failures: yes for a rollout, no for a
    /// restore (rolling a restore back would bring the refused AMI back).
    pub auto_rollback: bool,
    /// `CheckpointPercentages` (ascending, the last 100); empty: none.
    pub checkpoint_percentages: Vec<i32>,
    /// `CheckpointDelay` in seconds, sent with the checkpoints only.
    pub checkpoint_delay_s: Option<i32>,
    /// CloudWatch alarms Auto Scaling watches during the refresh
    /// (`AlarmSpecification`); empty: none.
    pub alarms: Vec<String>,
}

/// The lifecycle transition an action is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Transition {
    #[serde(rename = "autoscaling:EC2_INSTANCE_LAUNCHING")]
    Launching,
    #[serde(rename = "autoscaling:EC2_INSTANCE_TERMINATING")]
    Terminating,
}

impl Transition {
    pub fn as_str(self) -> &'static str {
        match self {
            Transition::Launching => "autoscaling:EC2_INSTANCE_LAUNCHING",
            Transition::Terminating => "autoscaling:EC2_INSTANCE_TERMINATING",
        }
    }
}

/// A lifecycle action as Auto Scaling announces it (the keys are Auto Scaling's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleAction {
    #[serde(rename = "AutoScalingGroupName")]
    pub asg: String,
    /// The hook holding the action; `None` for work no hook holds (launch-verify's
    /// `EC2 Instance Launch Successful` mode): nothing to heartbeat or complete.
    #[serde(
        rename = "LifecycleHookName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub hook: Option<String>,
    #[serde(rename = "EC2InstanceId")]
    pub instance_id: InstanceId,
    #[serde(rename = "LifecycleTransition")]
    pub transition: Transition,
    /// Absent when the action is addressed by instance id only.
    #[serde(
        rename = "LifecycleActionToken",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub token: Option<String>,
    /// When Auto Scaling started the action (RFC 3339): the hook's global timeout
    /// counts from here.
    #[serde(rename = "Time", default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    #[serde(
        rename = "NotificationMetadata",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub metadata: Option<String>,
    /// `EC2`, `AutoScalingGroup` or `WarmPool` (EventBridge and newer SNS messages).
    #[serde(rename = "Origin", default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    #[serde(
        rename = "Destination",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub destination: Option<String>,
    #[serde(rename = "AccountId", default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
}

impl LifecycleAction {
    /// The start time in epoch milliseconds, if the message carried a valid one.
    pub fn started_at_ms(&self) -> Option<u64> {
        crate::time::epoch_ms_of(self.time.as_deref()?)
    }

    /// The hook's name, for log lines (`none` for work no hook holds).
    pub fn hook_name(&self) -> &str {
        self.hook.as_deref().unwrap_or("none")
    }

    /// Checks what Auto Scaling always sends; `held` = a hook must be named.
    pub(crate) fn validate(self, context: &str, held: bool) -> Result<Self, EventError> {
        let field_err =
            |field: &str, why: &str| EventError::new(context, format!("field {field} {why}"));
        if self.asg.trim().is_empty() {
            return Err(field_err("AutoScalingGroupName", "is empty"));
        }
        match self.hook.as_deref() {
            Some(hook) if hook.trim().is_empty() => {
                return Err(field_err("LifecycleHookName", "is empty"));
            }
            None if held => return Err(field_err("LifecycleHookName", "is missing")),
            _ => {}
        }
        if !is_instance_id(&self.instance_id) {
            return Err(field_err(
                "EC2InstanceId",
                &format!("is not an EC2 instance id: {:?}", self.instance_id),
            ));
        }
        if self.token.as_deref().is_some_and(|t| t.trim().is_empty()) {
            return Err(field_err("LifecycleActionToken", "is empty"));
        }
        Ok(self)
    }
}

/// `i-` followed by 8 or 17 lowercase hex digits.
pub fn is_instance_id(s: &str) -> bool {
    s.strip_prefix("i-").is_some_and(|h| {
        (h.len() == 8 || h.len() == 17)
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// One instance refresh, with what its desired launch template version says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refresh {
    pub id: String,
    pub status: RefreshStatus,
    pub status_reason: Option<String>,
    pub started_ms: Option<u64>,
    pub ended_ms: Option<u64>,
    pub percentage: Option<i32>,
    pub instances_to_update: Option<i32>,
    /// Its DesiredConfiguration's launch template (directly or in its mixed
    /// instances policy); `None` when it has none (it then moves instances to
    /// the group's own launch template).
    pub desired_template: Option<LaunchTemplateRef>,
    /// The version number its DesiredConfiguration's launch template names
    /// (not a mixed instances policy's), if it names one.
    pub desired_version: Option<i64>,
    /// `(ami, from)` when that version is one of ours.
    pub ours: Option<(String, i64)>,
    pub rollback_reason: Option<String>,
}
