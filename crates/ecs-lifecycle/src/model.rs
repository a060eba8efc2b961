//! Plain domain data: what the functions observe of ECS and Auto Scaling, with no
//! SDK types in it.

use serde::Serialize;

/// Container instance status as ECS reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum InstanceStatus {
    Active,
    Draining,
    Registering,
    RegistrationFailed,
    Deregistering,
    Inactive,
    Other(String),
}

impl InstanceStatus {
    pub fn parse(s: &str) -> Self {
        match s {
            "ACTIVE" => InstanceStatus::Active,
            "DRAINING" => InstanceStatus::Draining,
            "REGISTERING" => InstanceStatus::Registering,
            "REGISTRATION_FAILED" => InstanceStatus::RegistrationFailed,
            "DEREGISTERING" => InstanceStatus::Deregistering,
            "INACTIVE" => InstanceStatus::Inactive,
            other => InstanceStatus::Other(other.to_owned()),
        }
    }
}

/// An EC2 instance registered with an ECS cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerInstance {
    pub cluster: String,
    pub arn: String,
    pub ec2_instance_id: String,
    pub status: InstanceStatus,
    pub agent_connected: bool,
    /// Tasks whose *desired* status is RUNNING (not enough to call it drained).
    pub running_tasks_count: i32,
}

/// The lifecycle of an ECS task; `STOPPED` is the only state in which it holds
/// nothing on the instance any more.
pub const STOPPED: &str = "STOPPED";
pub const RUNNING: &str = "RUNNING";

/// A task, as far as draining cares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Task {
    pub arn: String,
    pub last_status: String,
    pub desired_status: String,
    /// `ecs-svc/<deployment>` for service tasks.
    pub started_by: Option<String>,
    /// `service:<name>` for service tasks, `family:<name>` by default otherwise.
    pub group: Option<String>,
    pub container_instance_arn: Option<String>,
}

impl Task {
    pub fn is_stopped(&self) -> bool {
        self.last_status == STOPPED
    }

    /// Whether the scheduler has already been told to stop it.
    pub fn is_stopping(&self) -> bool {
        self.desired_status == STOPPED
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
}

impl Service {
    /// Replacements are running: as many tasks run as are desired.
    pub fn has_replacements_running(&self) -> bool {
        self.running_count >= self.desired_count
    }
}

/// An instance as Auto Scaling sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AsgInstance {
    pub asg: String,
    /// e.g. `InService`, `Terminating:Wait`, `Warmed:Terminating:Wait`.
    pub lifecycle_state: String,
}

impl AsgInstance {
    /// Whether a terminate lifecycle action is waiting on us.
    pub fn is_terminate_wait(&self) -> bool {
        self.lifecycle_state == "Terminating:Wait"
            || self.lifecycle_state == "Warmed:Terminating:Wait"
    }
}

/// The timeouts of a lifecycle hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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

/// An EC2 instance's state name (`pending`, `running`, `shutting-down`,
/// `terminated`, `stopping`, `stopped`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ec2State(pub String);

impl Ec2State {
    pub fn is_running(&self) -> bool {
        self.0 == "running"
    }

    pub fn is_pending(&self) -> bool {
        self.0 == "pending"
    }
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
    /// `Pending`, `InProgress`, `Delayed`, `Success`, `Failed`, `TimedOut`, `Cancelled`, ...
    pub status: String,
    /// The script's exit code (-1 while it runs).
    pub response_code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl CommandInvocation {
    pub fn is_finished(&self) -> bool {
        !matches!(
            self.status.as_str(),
            "Pending" | "InProgress" | "Delayed" | "Cancelling"
        )
    }
}

/// An Auto Scaling group as the AMI rollout needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AsgGroup {
    pub name: String,
    pub desired_capacity: i32,
    /// The launch template the group launches from, or why it has none the
    /// rollout can change (launch configuration, mixed instances policy).
    pub template: Result<TemplateSpec, String>,
    /// `(instance id, lifecycle state)`.
    pub instances: Vec<(String, String)>,
    pub tags: Vec<(String, String)>,
}

/// A group's launch template reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TemplateSpec {
    pub id: String,
    /// A number, `$Latest` or `$Default`.
    pub version: String,
}

/// One version of a launch template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TemplateVersion {
    pub number: i64,
    pub image_id: Option<String>,
    pub description: Option<String>,
    /// Whether it is the template's default version.
    pub is_default: bool,
}

/// An EC2 instance: its AMI and when it was launched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ec2Instance {
    pub id: String,
    pub image_id: Option<String>,
    pub launched_ms: Option<u64>,
    pub state: Option<String>,
}

/// How a refresh replaces instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RefreshPreferences {
    /// 100: launch before terminating, keep full capacity.
    pub min_healthy_percentage: i32,
    /// 100 + the batch as a percentage of the group.
    pub max_healthy_percentage: i32,
    /// Let Auto Scaling roll back its own failures: yes for a rollout, no for a
    /// restore (rolling a restore back would bring the refused AMI back).
    pub auto_rollback: bool,
}
