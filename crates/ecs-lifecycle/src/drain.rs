//! The drain decision: a pure function from what was observed (and the clocks)
//! to the next step. No I/O, no clock reads: everything comes in as data, so
//! every case is a table test. [`crate::drainer`] carries the step out.

use serde::Serialize;

use crate::config::StandalonePolicy;
use crate::continuation::MAX_HOPS;
use crate::model::{AsgInstance, ContainerInstance, InstanceStatus, Task};

/// Who owns a task on the instance, which decides how the drain treats it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Role {
    /// Started by a REPLICA service: ECS replaces it elsewhere while draining.
    Service,
    /// Started by a DAEMON service: stopped by us once only daemons remain.
    Daemon,
    /// Started by RunTask/StartTask: ECS leaves it; STANDALONE_TASKS decides.
    Standalone,
}

/// A task on the instance that has not reached STOPPED.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LiveTask {
    pub task: Task,
    pub role: Role,
}

/// One observation of the world, taken fresh at every poll.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// The instance in its Auto Scaling group; `None` if no group has it.
    pub asg_instance: Option<AsgInstance>,
    /// Its container instance; `None` if it is in none of the clusters searched.
    pub container_instance: Option<ContainerInstance>,
    /// Tasks on it whose lastStatus is not STOPPED (desired RUNNING or STOPPED).
    pub live_tasks: Vec<LiveTask>,
    /// With the stability check on: services that had tasks here and do not run
    /// their desired count yet.
    pub unsteady_services: Vec<String>,
}

/// The drain's settings that shape decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub standalone: StandalonePolicy,
    pub service_stability: bool,
    pub poll_interval_ms: u64,
    /// Time kept in hand before the invocation deadline for the hand-off.
    pub handoff_margin_ms: u64,
}

/// Every time the decision depends on, in epoch milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clocks {
    pub now_ms: u64,
    /// MAX_DRAIN_SECONDS after the drain started, capped by the hook's global timeout.
    pub drain_deadline_ms: u64,
    /// This Lambda invocation's deadline.
    pub invocation_deadline_ms: u64,
    /// When Auto Scaling's heartbeat clock last restarted (last heartbeat, or the action start).
    pub heartbeat_base_ms: u64,
    /// How often to heartbeat: well inside the hook's HeartbeatTimeout.
    pub heartbeat_every_ms: u64,
    /// Hops so far (0 for the original event).
    pub attempt: u32,
}

/// Why the function stops without completing the action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum StopReason {
    /// No group has the instance, or it is not in `Terminating:Wait`: someone else
    /// completed the action, it expired, or it never existed. Nothing to complete.
    NotWaiting { lifecycle_state: Option<String> },
}

/// Why the action is completed with CONTINUE.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Completion {
    /// The instance is in none of the clusters searched: nothing to drain.
    NotInCluster,
    /// INACTIVE or DEREGISTERING: it no longer runs tasks for ECS.
    Deregistered { status: String },
    /// REGISTERING / REGISTRATION_FAILED: never became ACTIVE, so it holds no tasks.
    NeverActive { status: String },
    /// No task on the instance is short of STOPPED (and services are steady, if asked).
    Drained,
    /// MAX_DRAIN_SECONDS (or the hook's global timeout) is reached: tasks left behind.
    DeadlineReached { left: Vec<String> },
    /// More continuation hops than any real drain can take: a bug, stop the chain.
    HopLimit { attempt: u32 },
}

/// Why tasks are stopped by the drain itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum StopWhy {
    /// Only daemon tasks are left; nothing else needs them now.
    DaemonsLast,
    /// STANDALONE_TASKS=stop.
    StandalonePolicy,
}

/// What is still on the instance, for the log line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Remaining {
    pub service: usize,
    pub daemon: usize,
    pub standalone: usize,
    /// Standalone tasks left to die with the instance (STANDALONE_TASKS=ignore).
    pub ignored: usize,
    pub unsteady_services: Vec<String>,
}

/// The next step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Step {
    Stop(StopReason),
    Complete(Completion),
    SetDraining,
    StopTasks { arns: Vec<String>, why: StopWhy },
    /// Sleep, then observe again.
    Wait { remaining: Remaining, sleep_ms: u64 },
    /// Not enough invocation time for another poll: continue in a new invocation.
    HandOff { remaining: Remaining },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub step: Step,
    /// Record a lifecycle heartbeat before carrying the step out.
    pub heartbeat: bool,
}

/// Decides the next step of a drain.
pub fn decide(observed: &Observed, policy: &Policy, clocks: &Clocks) -> Decision {
    let heartbeat_due_at = clocks.heartbeat_base_ms.saturating_add(clocks.heartbeat_every_ms);
    let heartbeat = clocks.now_ms >= heartbeat_due_at;
    let with = |step: Step| Decision { heartbeat: heartbeat && matches!(step, Step::SetDraining | Step::StopTasks { .. } | Step::Wait { .. } | Step::HandOff { .. }), step };

    let waiting = observed.asg_instance.as_ref().is_some_and(AsgInstance::is_terminate_wait);
    if !waiting {
        let lifecycle_state = observed.asg_instance.as_ref().map(|i| i.lifecycle_state.clone());
        return with(Step::Stop(StopReason::NotWaiting { lifecycle_state }));
    }
    if clocks.attempt > MAX_HOPS {
        return with(Step::Complete(Completion::HopLimit { attempt: clocks.attempt }));
    }
    let Some(instance) = &observed.container_instance else {
        return with(Step::Complete(Completion::NotInCluster));
    };
    match &instance.status {
        InstanceStatus::Active => return with(Step::SetDraining),
        InstanceStatus::Draining => {}
        InstanceStatus::Inactive | InstanceStatus::Deregistering => {
            return with(Step::Complete(Completion::Deregistered { status: status_name(&instance.status) }));
        }
        InstanceStatus::Registering | InstanceStatus::RegistrationFailed | InstanceStatus::Other(_) => {
            return with(Step::Complete(Completion::NeverActive { status: status_name(&instance.status) }));
        }
    }

    let counts_for = |role: Role| observed.live_tasks.iter().filter(|t| t.role == role).count();
    let standalone_counted = policy.standalone != StandalonePolicy::Ignore;
    let remaining = Remaining {
        service: counts_for(Role::Service),
        daemon: counts_for(Role::Daemon),
        standalone: if standalone_counted { counts_for(Role::Standalone) } else { 0 },
        ignored: if standalone_counted { 0 } else { counts_for(Role::Standalone) },
        unsteady_services: if policy.service_stability { observed.unsteady_services.clone() } else { Vec::new() },
    };
    let waited_on: Vec<&LiveTask> = observed.live_tasks.iter().filter(|t| standalone_counted || t.role != Role::Standalone).collect();

    if clocks.now_ms >= clocks.drain_deadline_ms {
        let left = observed.live_tasks.iter().map(|t| t.task.arn.clone()).collect();
        return with(Step::Complete(Completion::DeadlineReached { left }));
    }
    if waited_on.is_empty() && remaining.unsteady_services.is_empty() {
        return with(Step::Complete(Completion::Drained));
    }

    let not_yet_told = |role: Role| -> Vec<String> {
        waited_on.iter().filter(|t| t.role == role && !t.task.is_stopping()).map(|t| t.task.arn.clone()).collect()
    };
    if policy.standalone == StandalonePolicy::Stop {
        let arns = not_yet_told(Role::Standalone);
        if !arns.is_empty() {
            return with(Step::StopTasks { arns, why: StopWhy::StandalonePolicy });
        }
    }
    if !waited_on.is_empty() && waited_on.iter().all(|t| t.role == Role::Daemon) {
        let arns = not_yet_told(Role::Daemon);
        if !arns.is_empty() {
            return with(Step::StopTasks { arns, why: StopWhy::DaemonsLast });
        }
    }

    // Wake for the next poll, or earlier if a heartbeat falls due before it.
    let next_heartbeat_ms = if heartbeat { clocks.heartbeat_every_ms } else { heartbeat_due_at - clocks.now_ms };
    let sleep_ms = policy.poll_interval_ms.min(next_heartbeat_ms).max(1000.min(policy.poll_interval_ms));
    let time_left = clocks.invocation_deadline_ms.saturating_sub(clocks.now_ms);
    if time_left < sleep_ms + policy.handoff_margin_ms {
        return with(Step::HandOff { remaining });
    }
    with(Step::Wait { remaining, sleep_ms })
}

fn status_name(s: &InstanceStatus) -> String {
    match s {
        InstanceStatus::Active => "ACTIVE".into(),
        InstanceStatus::Draining => "DRAINING".into(),
        InstanceStatus::Registering => "REGISTERING".into(),
        InstanceStatus::RegistrationFailed => "REGISTRATION_FAILED".into(),
        InstanceStatus::Deregistering => "DEREGISTERING".into(),
        InstanceStatus::Inactive => "INACTIVE".into(),
        InstanceStatus::Other(o) => o.clone(),
    }
}
