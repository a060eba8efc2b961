//! The drain decision: a pure function from what was observed (and the clocks)
//! to the next step. No I/O, no clock reads: everything comes in as data, so
//! every case is a table test. [`crate::drainer`] carries the step out.

use serde::Serialize;

use crate::config::{DrainTimeoutAction, StandalonePolicy};
use crate::drain::budget::SlotWait;
use crate::hook::continuation::MAX_HOPS;
use crate::hook::pacing::pace;
use crate::model::{
    ActionResult, AsgInstance, ContainerInstance, InstanceStatus, LifecycleState, Task, TaskArn,
};

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
    /// Another invocation's token holds the drain (a duplicate delivery started a
    /// newer chain).
    pub superseded_by: Option<String>,
    /// Since when the container instance's agent has been seen disconnected
    /// (epoch ms), while it still is.
    pub agent_disconnected_since_ms: Option<u64>,
    /// A brief look: only the container instance was described, and its task
    /// counts say tasks the drain waits on are still there (`live_tasks` is
    /// empty and means nothing). Taken only before the drain deadline, with the
    /// agent connected and a recent census (see [`Census`]).
    pub brief: Option<Brief>,
    /// The drain rests its looks while ECS throttles: only the container
    /// instance was read (for the chain's claim), not its tasks. Never at the
    /// drain deadline.
    pub rested: bool,
    /// With MAX_CONCURRENT_DRAINS: the instance is not draining yet and the
    /// cluster's budget has no slot for it now.
    pub waiting_for_slot: Option<SlotWait>,
}

/// What a full look found on the DRAINING instance, carried with the drain
/// (across hops too) so that the looks until its end need only the container
/// instance's task counts: one DescribeContainerInstances instead of two
/// ListTasks and a DescribeTasks (and DescribeServices in a new invocation).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Census {
    /// When the full look was taken (epoch ms).
    pub at_ms: u64,
    /// Live tasks of replica services.
    pub service: u32,
    /// Live tasks of daemon services.
    pub daemon: u32,
    /// Live standalone tasks.
    pub standalone: u32,
    /// The fewest tasks RUNNING or PENDING the container instance has counted
    /// since (`None`: not known). More than that is a task started on the
    /// draining instance since the census: it is taken again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fewest: Option<u32>,
}

impl Census {
    /// Of the tasks ECS counts as RUNNING or PENDING, how many may be ones the
    /// drain must act on or ignores rather than wait for ECS to move: daemons
    /// (stopped last, by the drain) and standalone tasks unless
    /// STANDALONE_TASKS=wait (stopped by the drain, or ignored). While the
    /// counts are above this, a task ECS will move (or one the drain waits
    /// for) is still there, whatever the others are doing.
    pub fn not_moved_by_ecs(&self, standalone: StandalonePolicy) -> u32 {
        let standalone = match standalone {
            StandalonePolicy::Wait => 0,
            StandalonePolicy::Stop | StandalonePolicy::Ignore => self.standalone,
        };
        self.daemon.saturating_add(standalone)
    }
}

/// A brief look's finding: the container instance's counts, read against the
/// drain's census.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Brief {
    /// `runningTasksCount + pendingTasksCount`.
    pub tasks: u32,
    pub census: Census,
}

impl Brief {
    /// What is left, as far as the counts tell (for the log line): the tasks
    /// counted beyond the census's daemons and standalone tasks are the
    /// services'.
    fn remaining(&self, policy: &Policy) -> Remaining {
        let c = self.census;
        let standalone = c.standalone.min(self.tasks);
        let daemon = c.daemon.min(self.tasks - standalone);
        let counted = policy.standalone != StandalonePolicy::Ignore;
        Remaining {
            service: (self.tasks - standalone - daemon) as usize,
            daemon: daemon as usize,
            standalone: if counted { standalone as usize } else { 0 },
            ignored: if counted { 0 } else { standalone as usize },
            unsteady_services: Vec::new(),
        }
    }
}

/// The drain's settings that shape decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub standalone: StandalonePolicy,
    pub service_stability: bool,
    pub poll_interval_ms: u64,
    /// Time kept in hand before the invocation deadline for the hand-off.
    pub handoff_margin_ms: u64,
    /// AGENT_DISCONNECTED_GRACE_SECONDS.
    pub agent_grace_ms: u64,
    /// DRAIN_TIMEOUT_ACTION: what the drain deadline does to an instance that
    /// still runs tasks.
    pub timeout_action: DrainTimeoutAction,
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
    NotWaiting {
        lifecycle_state: Option<LifecycleState>,
    },
    /// Another invocation (a duplicate delivery's chain) holds the drain now.
    Superseded { by: String },
    /// Started by an ECS event and not drained yet: the hook's chain carries on.
    LeftToTheDrain,
}

/// Why the action is completed (with CONTINUE, except [`Completion::Retained`]:
/// see [`Completion::result`]).
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
    DeadlineReached { left: Vec<TaskArn> },
    /// MAX_DRAIN_SECONDS (or the hook's global timeout) is reached with tasks
    /// the drain waits on still there, and DRAIN_TIMEOUT_ACTION=retain: the
    /// action is completed ABANDON, nothing more is stopped, and the group's
    /// lifecycle policy (`TerminateHookAbandon: retain`) keeps the instance in
    /// `Terminating:Retained` for an operator to look at.
    Retained { left: Vec<TaskArn> },
    /// The ECS agent stayed disconnected for AGENT_DISCONNECTED_GRACE_SECONDS: its
    /// tasks can never be reported STOPPED; they end with the instance.
    AgentDisconnected { for_s: u64, left: Vec<TaskArn> },
    /// More continuation hops than any real drain can take: a bug, stop the chain.
    HopLimit { attempt: u32 },
    /// MAX_DRAIN_SECONDS (or the hook's global timeout) is reached while the
    /// drain still waits for a slot of MAX_CONCURRENT_DRAINS: the instance was
    /// never set DRAINING. Completed as any drain at its deadline is:
    /// CONTINUE, or ABANDON with DRAIN_TIMEOUT_ACTION=retain.
    NoDrainSlot { waited_s: u64, retained: bool },
}

impl Completion {
    /// The lifecycle action's result: ABANDON for a retained drain, else CONTINUE.
    pub fn result(&self) -> ActionResult {
        match self {
            Completion::Retained { .. } => ActionResult::Abandon,
            Completion::NoDrainSlot { retained: true, .. } => ActionResult::Abandon,
            _ => ActionResult::Continue,
        }
    }
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
    StopTasks {
        arns: Vec<TaskArn>,
        why: StopWhy,
    },
    /// Sleep, then observe again.
    Wait {
        remaining: Remaining,
        sleep_ms: u64,
    },
    /// Not enough invocation time for another poll: continue in a new invocation.
    HandOff {
        remaining: Remaining,
    },
    /// The instance waits for a slot of MAX_CONCURRENT_DRAINS: look again
    /// after `sleep_ms` (or in a new invocation, `hand_off`), heartbeating.
    WaitForSlot {
        ahead: usize,
        limit: usize,
        holders: Vec<String>,
        waited_s: u64,
        sleep_ms: u64,
        hand_off: bool,
    },
}

/// Decides the next step of a drain: first whether there is a drain to carry
/// on at all ([`settled`]), then, on a DRAINING instance, what is left on it.
pub fn decide(observed: &Observed, policy: &Policy, clocks: &Clocks) -> Step {
    if let Some(step) = settled(observed, clocks) {
        return match (&step, &observed.waiting_for_slot) {
            (Step::SetDraining, Some(wait)) => wait_for_slot(wait, policy, clocks),
            _ => step,
        };
    }
    if observed.rested {
        return wait_or_hand_off(Remaining::default(), policy, clocks);
    }
    if let Some(brief) = &observed.brief {
        // Tasks the drain waits on are still there: nothing to stop, nothing
        // to complete (a brief look is never taken at the deadline nor with
        // the agent disconnected).
        return wait_or_hand_off(brief.remaining(policy), policy, clocks);
    }
    let remaining = remaining(observed, policy);
    let standalone_counted = policy.standalone != StandalonePolicy::Ignore;
    let waited_on: Vec<&LiveTask> = observed
        .live_tasks
        .iter()
        .filter(|t| standalone_counted || t.role != Role::Standalone)
        .collect();

    if clocks.now_ms >= clocks.drain_deadline_ms {
        // Nothing more is stopped at the deadline, whatever the action: the
        // tasks left end with the instance (continue) or stay on it (retain).
        let left = observed
            .live_tasks
            .iter()
            .map(|t| t.task.arn.clone())
            .collect();
        if policy.timeout_action == DrainTimeoutAction::Retain && !waited_on.is_empty() {
            return Step::Complete(Completion::Retained { left });
        }
        return Step::Complete(Completion::DeadlineReached { left });
    }
    if let Some(since) = observed.agent_disconnected_since_ms
        && !waited_on.is_empty()
        && clocks.now_ms.saturating_sub(since) >= policy.agent_grace_ms
    {
        let left = observed
            .live_tasks
            .iter()
            .map(|t| t.task.arn.clone())
            .collect();
        return Step::Complete(Completion::AgentDisconnected {
            for_s: clocks.now_ms.saturating_sub(since) / 1000,
            left,
        });
    }
    if waited_on.is_empty() && remaining.unsteady_services.is_empty() {
        return Step::Complete(Completion::Drained);
    }
    if let Some(step) = tasks_to_stop(&waited_on, policy) {
        return step;
    }
    wait_or_hand_off(remaining, policy, clocks)
}

/// Wait for the next look, or hand off if this invocation has no time for it.
fn wait_or_hand_off(remaining: Remaining, policy: &Policy, clocks: &Clocks) -> Step {
    let pace = pace(
        clocks.now_ms,
        clocks.heartbeat_base_ms,
        clocks.heartbeat_every_ms,
        policy.poll_interval_ms,
        clocks.invocation_deadline_ms,
        policy.handoff_margin_ms,
    );
    if pace.hand_off {
        return Step::HandOff { remaining };
    }
    Step::Wait {
        remaining,
        sleep_ms: pace.sleep_ms,
    }
}

/// An ACTIVE instance with no slot yet: wait (heartbeating) and look again,
/// until the drain's deadline, where it is completed as a drain at its deadline
/// is, never set DRAINING (the least surprising end: MAX_DRAIN_SECONDS keeps
/// its one meaning, the longest a termination waits for the function).
fn wait_for_slot(wait: &SlotWait, policy: &Policy, clocks: &Clocks) -> Step {
    let waited_s = clocks.now_ms.saturating_sub(wait.since_ms) / 1000;
    if clocks.now_ms >= clocks.drain_deadline_ms {
        return Step::Complete(Completion::NoDrainSlot {
            waited_s,
            retained: policy.timeout_action == DrainTimeoutAction::Retain,
        });
    }
    let pace = pace(
        clocks.now_ms,
        clocks.heartbeat_base_ms,
        clocks.heartbeat_every_ms,
        policy.poll_interval_ms,
        clocks.invocation_deadline_ms,
        policy.handoff_margin_ms,
    );
    Step::WaitForSlot {
        ahead: wait.ahead,
        limit: wait.limit,
        holders: wait.holders.clone(),
        waited_s,
        // Never past the deadline: the look there ends the wait.
        sleep_ms: pace.sleep_ms.min(
            clocks
                .drain_deadline_ms
                .saturating_sub(clocks.now_ms)
                .max(1),
        ),
        hand_off: pace.hand_off,
    }
}

/// The steps that need no look at the tasks: nothing waits on a terminate
/// action, another chain holds the drain, the hop limit, no container instance,
/// or one that is not DRAINING (set it, or there is nothing to drain). `None`:
/// the instance is DRAINING; look at what is left.
fn settled(observed: &Observed, clocks: &Clocks) -> Option<Step> {
    let waiting = observed
        .asg_instance
        .as_ref()
        .is_some_and(AsgInstance::is_terminate_wait);
    if !waiting {
        let lifecycle_state = observed
            .asg_instance
            .as_ref()
            .map(|i| i.lifecycle_state.clone());
        return Some(Step::Stop(StopReason::NotWaiting { lifecycle_state }));
    }
    if let Some(by) = &observed.superseded_by {
        return Some(Step::Stop(StopReason::Superseded { by: by.clone() }));
    }
    if clocks.attempt > MAX_HOPS {
        return Some(Step::Complete(Completion::HopLimit {
            attempt: clocks.attempt,
        }));
    }
    if observed.rested {
        return None;
    }
    let Some(instance) = &observed.container_instance else {
        return Some(Step::Complete(Completion::NotInCluster));
    };
    match &instance.status {
        InstanceStatus::Active => Some(Step::SetDraining),
        InstanceStatus::Draining => None,
        InstanceStatus::Inactive | InstanceStatus::Deregistering => {
            Some(Step::Complete(Completion::Deregistered {
                status: status_name(&instance.status),
            }))
        }
        InstanceStatus::Registering
        | InstanceStatus::RegistrationFailed
        | InstanceStatus::Other(_) => Some(Step::Complete(Completion::NeverActive {
            status: status_name(&instance.status),
        })),
    }
}

/// What is still on the instance, by role, and the services not steady yet.
fn remaining(observed: &Observed, policy: &Policy) -> Remaining {
    let counts_for = |role: Role| {
        observed
            .live_tasks
            .iter()
            .filter(|t| t.role == role)
            .count()
    };
    let standalone_counted = policy.standalone != StandalonePolicy::Ignore;
    let standalone = counts_for(Role::Standalone);
    Remaining {
        service: counts_for(Role::Service),
        daemon: counts_for(Role::Daemon),
        standalone: if standalone_counted { standalone } else { 0 },
        ignored: if standalone_counted { 0 } else { standalone },
        unsteady_services: if policy.service_stability {
            observed.unsteady_services.clone()
        } else {
            Vec::new()
        },
    }
}

/// Tasks the drain stops itself (not yet told to stop): standalone ones with
/// STANDALONE_TASKS=stop, and daemons once only daemons are left.
fn tasks_to_stop(waited_on: &[&LiveTask], policy: &Policy) -> Option<Step> {
    let not_yet_told = |role: Role| -> Vec<TaskArn> {
        waited_on
            .iter()
            .filter(|t| t.role == role && !t.task.is_stopping())
            .map(|t| t.task.arn.clone())
            .collect()
    };
    if policy.standalone == StandalonePolicy::Stop {
        let arns = not_yet_told(Role::Standalone);
        if !arns.is_empty() {
            return Some(Step::StopTasks {
                arns,
                why: StopWhy::StandalonePolicy,
            });
        }
    }
    if !waited_on.is_empty() && waited_on.iter().all(|t| t.role == Role::Daemon) {
        let arns = not_yet_told(Role::Daemon);
        if !arns.is_empty() {
            return Some(Step::StopTasks {
                arns,
                why: StopWhy::DaemonsLast,
            });
        }
    }
    None
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

#[cfg(test)]
mod tests {
    use super::*;
    const RUNNING: &str = "RUNNING";
    const STOPPED: &str = "STOPPED";

    const NOW: u64 = 1_000_000;

    fn policy(standalone: StandalonePolicy, service_stability: bool) -> Policy {
        Policy {
            standalone,
            service_stability,
            poll_interval_ms: 10_000,
            handoff_margin_ms: 10_000,
            agent_grace_ms: 300_000,
            timeout_action: DrainTimeoutAction::Continue,
        }
    }

    fn retaining(standalone: StandalonePolicy) -> Policy {
        Policy {
            timeout_action: DrainTimeoutAction::Retain,
            ..policy(standalone, false)
        }
    }

    fn clocks() -> Clocks {
        Clocks {
            now_ms: NOW,
            drain_deadline_ms: NOW + 600_000,
            invocation_deadline_ms: NOW + 300_000,
            heartbeat_base_ms: NOW - 1_000,
            heartbeat_every_ms: 100_000,
            attempt: 0,
        }
    }

    fn asg(state: &str) -> Option<AsgInstance> {
        Some(AsgInstance {
            instance_id: "i-12345678".into(),
            asg: "g".into(),
            lifecycle_state: state.into(),
        })
    }

    fn ci(status: InstanceStatus) -> Option<ContainerInstance> {
        Some(ContainerInstance {
            cluster: "c".into(),
            arn: "ci".into(),
            ec2_instance_id: "i-12345678".into(),
            status,
            agent_connected: true,
            running_tasks_count: 0,
            pending_tasks_count: 0,
            registered_ms: None,
            drain_token: None,
            drain_hook: None,
            drain_started_ms: None,
            drain_hop: None,
            early_drain: None,
        })
    }

    fn task(arn: &str, role: Role, desired: &str, last: &str) -> LiveTask {
        LiveTask {
            task: Task {
                arn: arn.into(),
                last_status: last.into(),
                desired_status: desired.into(),
                started_by: None,
                group: None,
                container_instance_arn: Some("ci".into()),
                stopped_at_ms: None,
            },
            role,
        }
    }

    fn draining(tasks: Vec<LiveTask>) -> Observed {
        Observed {
            asg_instance: asg("Terminating:Wait"),
            container_instance: ci(InstanceStatus::Draining),
            live_tasks: tasks,
            unsteady_services: vec![],
            superseded_by: None,
            agent_disconnected_since_ms: None,
            brief: None,
            rested: false,
            waiting_for_slot: None,
        }
    }

    fn waiting_for_a_slot() -> Observed {
        Observed {
            container_instance: ci(InstanceStatus::Active),
            waiting_for_slot: Some(SlotWait {
                limit: 2,
                holders: vec!["i-a".into(), "i-b".into()],
                ahead: 1,
                since_ms: NOW - 60_000,
            }),
            ..draining(vec![])
        }
    }

    #[test]
    fn an_instance_without_a_slot_waits_heartbeating_and_is_not_drained() {
        let o = waiting_for_a_slot();
        let p = policy(StandalonePolicy::Wait, false);
        assert_eq!(
            step(&o, &p, &clocks()),
            Step::WaitForSlot {
                ahead: 1,
                limit: 2,
                holders: vec!["i-a".into(), "i-b".into()],
                waited_s: 60,
                sleep_ms: 10_000,
                hand_off: false,
            }
        );
        // A heartbeat due sooner than the poll shortens the wait.
        let c = Clocks {
            heartbeat_base_ms: NOW - 97_000,
            ..clocks()
        };
        assert!(matches!(
            step(&o, &p, &c),
            Step::WaitForSlot {
                sleep_ms: 3_000,
                hand_off: false,
                ..
            }
        ));
        // Near the invocation's end, it hands the wait over.
        let c = Clocks {
            invocation_deadline_ms: NOW + 15_000,
            ..clocks()
        };
        assert!(matches!(
            step(&o, &p, &c),
            Step::WaitForSlot { hand_off: true, .. }
        ));
        // Never sleeps past the drain's deadline.
        let c = Clocks {
            drain_deadline_ms: NOW + 4_000,
            ..clocks()
        };
        assert!(matches!(
            step(&o, &p, &c),
            Step::WaitForSlot {
                sleep_ms: 4_000,
                ..
            }
        ));
        // With a slot, it drains.
        let admitted = Observed {
            waiting_for_slot: None,
            ..o.clone()
        };
        assert_eq!(step(&admitted, &p, &clocks()), Step::SetDraining);
    }

    #[test]
    fn a_wait_for_a_slot_ends_at_the_drain_deadline_with_the_timeout_action() {
        let o = waiting_for_a_slot();
        let at_deadline = Clocks {
            drain_deadline_ms: NOW,
            ..clocks()
        };
        let s = step(&o, &policy(StandalonePolicy::Wait, false), &at_deadline);
        assert_eq!(
            s,
            Step::Complete(Completion::NoDrainSlot {
                waited_s: 60,
                retained: false
            })
        );
        let Step::Complete(c) = s else { unreachable!() };
        assert_eq!(c.result(), ActionResult::Continue);
        let s = step(&o, &retaining(StandalonePolicy::Wait), &at_deadline);
        let Step::Complete(c) = s else {
            panic!("{s:?}")
        };
        assert_eq!(
            c,
            Completion::NoDrainSlot {
                waited_s: 60,
                retained: true
            }
        );
        assert_eq!(c.result(), ActionResult::Abandon);
        // Whatever waits for a slot, the instance's own state comes first.
        let gone = Observed {
            asg_instance: asg("Terminated"),
            ..o.clone()
        };
        assert!(matches!(
            step(&gone, &policy(StandalonePolicy::Wait, false), &at_deadline),
            Step::Stop(_)
        ));
    }

    fn step(o: &Observed, p: &Policy, c: &Clocks) -> Step {
        decide(o, p, c)
    }

    fn remaining(service: usize, daemon: usize, standalone: usize, ignored: usize) -> Remaining {
        Remaining {
            service,
            daemon,
            standalone,
            ignored,
            unsteady_services: vec![],
        }
    }

    #[test]
    fn a_newer_chain_holding_the_drain_stops_this_one() {
        let p = policy(StandalonePolicy::Wait, false);
        let mut o = draining(vec![task("t1", Role::Service, RUNNING, RUNNING)]);
        assert!(matches!(step(&o, &p, &clocks()), Step::Wait { .. }));
        o.superseded_by = Some("0123456789abcdef".into());
        assert_eq!(
            step(&o, &p, &clocks()),
            Step::Stop(StopReason::Superseded {
                by: "0123456789abcdef".into()
            })
        );
        // Not waiting any more comes first: the action is over either way.
        o.asg_instance = asg("InService");
        assert!(matches!(
            step(&o, &p, &clocks()),
            Step::Stop(StopReason::NotWaiting { .. })
        ));
    }

    #[test]
    fn lifecycle_state_gates_everything() {
        let p = policy(StandalonePolicy::Wait, false);
        for state in [
            None,
            Some("InService"),
            Some("Terminating:Proceed"),
            Some("Terminated"),
            Some("Pending:Wait"),
        ] {
            let o = Observed {
                asg_instance: state.and_then(asg),
                ..draining(vec![])
            };
            assert_eq!(
                step(&o, &p, &clocks()),
                Step::Stop(StopReason::NotWaiting {
                    lifecycle_state: state.map(LifecycleState::from)
                }),
                "{state:?}"
            );
        }
        let warm = Observed {
            asg_instance: asg("Warmed:Terminating:Wait"),
            ..draining(vec![])
        };
        assert_eq!(
            step(&warm, &p, &clocks()),
            Step::Complete(Completion::Drained)
        );
    }

    #[test]
    fn container_instance_states() {
        let p = policy(StandalonePolicy::Wait, false);
        let with = |c: Option<ContainerInstance>| Observed {
            container_instance: c,
            ..draining(vec![])
        };
        let table = [
            (None, Step::Complete(Completion::NotInCluster)),
            (ci(InstanceStatus::Active), Step::SetDraining),
            (
                ci(InstanceStatus::Inactive),
                Step::Complete(Completion::Deregistered {
                    status: "INACTIVE".into(),
                }),
            ),
            (
                ci(InstanceStatus::Deregistering),
                Step::Complete(Completion::Deregistered {
                    status: "DEREGISTERING".into(),
                }),
            ),
            (
                ci(InstanceStatus::Registering),
                Step::Complete(Completion::NeverActive {
                    status: "REGISTERING".into(),
                }),
            ),
            (
                ci(InstanceStatus::RegistrationFailed),
                Step::Complete(Completion::NeverActive {
                    status: "REGISTRATION_FAILED".into(),
                }),
            ),
            (
                ci(InstanceStatus::Draining),
                Step::Complete(Completion::Drained),
            ),
        ];
        for (c, expected) in table {
            assert_eq!(step(&with(c.clone()), &p, &clocks()), expected, "{c:?}");
        }
    }

    #[test]
    fn stopping_tasks_are_not_drained_yet() {
        // desired STOPPED but still DEACTIVATING: runningTasksCount would say 0.
        let p = policy(StandalonePolicy::Wait, false);
        for last in ["DEACTIVATING", "STOPPING", "DEPROVISIONING", RUNNING] {
            let o = draining(vec![task("t1", Role::Service, STOPPED, last)]);
            assert_eq!(
                step(&o, &p, &clocks()),
                Step::Wait {
                    remaining: remaining(1, 0, 0, 0),
                    sleep_ms: 10_000
                },
                "{last}"
            );
        }
    }

    #[test]
    fn daemons_are_stopped_once_only_they_remain() {
        let p = policy(StandalonePolicy::Wait, false);
        let svc = task("s", Role::Service, RUNNING, RUNNING);
        let d1 = task("d1", Role::Daemon, RUNNING, RUNNING);
        let d2 = task("d2", Role::Daemon, STOPPED, "STOPPING");
        // Service tasks still there: daemons keep serving them.
        let o = draining(vec![svc.clone(), d1.clone()]);
        assert_eq!(
            step(&o, &p, &clocks()),
            Step::Wait {
                remaining: remaining(1, 1, 0, 0),
                sleep_ms: 10_000
            }
        );
        // Only daemons: stop the ones not already told to stop.
        let o = draining(vec![d1.clone(), d2.clone()]);
        assert_eq!(
            step(&o, &p, &clocks()),
            Step::StopTasks {
                arns: vec!["d1".into()],
                why: StopWhy::DaemonsLast
            }
        );
        // All daemons already stopping: just wait (no second StopTask).
        let o = draining(vec![d2.clone()]);
        assert_eq!(
            step(&o, &p, &clocks()),
            Step::Wait {
                remaining: remaining(0, 1, 0, 0),
                sleep_ms: 10_000
            }
        );
        // A waited-on standalone task keeps daemons alive too.
        let o = draining(vec![
            d1.clone(),
            task("a", Role::Standalone, RUNNING, RUNNING),
        ]);
        assert_eq!(
            step(&o, &p, &clocks()),
            Step::Wait {
                remaining: remaining(0, 1, 1, 0),
                sleep_ms: 10_000
            }
        );
        // ...but an ignored one does not.
        let o = draining(vec![d1, task("a", Role::Standalone, RUNNING, RUNNING)]);
        assert_eq!(
            step(&o, &policy(StandalonePolicy::Ignore, false), &clocks()),
            Step::StopTasks {
                arns: vec!["d1".into()],
                why: StopWhy::DaemonsLast
            }
        );
    }

    #[test]
    fn standalone_policies() {
        let alone = task("a", Role::Standalone, RUNNING, RUNNING);
        let alone_stopping = task("b", Role::Standalone, STOPPED, "DEACTIVATING");
        let svc = task("s", Role::Service, RUNNING, RUNNING);
        let o = draining(vec![svc.clone(), alone.clone(), alone_stopping.clone()]);
        assert_eq!(
            step(&o, &policy(StandalonePolicy::Stop, false), &clocks()),
            Step::StopTasks {
                arns: vec!["a".into()],
                why: StopWhy::StandalonePolicy
            }
        );
        assert_eq!(
            step(&o, &policy(StandalonePolicy::Wait, false), &clocks()),
            Step::Wait {
                remaining: remaining(1, 0, 2, 0),
                sleep_ms: 10_000
            }
        );
        assert_eq!(
            step(&o, &policy(StandalonePolicy::Ignore, false), &clocks()),
            Step::Wait {
                remaining: remaining(1, 0, 0, 2),
                sleep_ms: 10_000
            }
        );
        let only_alone = draining(vec![alone]);
        assert_eq!(
            step(
                &only_alone,
                &policy(StandalonePolicy::Ignore, false),
                &clocks()
            ),
            Step::Complete(Completion::Drained)
        );
        assert_eq!(
            step(
                &draining(vec![alone_stopping]),
                &policy(StandalonePolicy::Stop, false),
                &clocks()
            ),
            Step::Wait {
                remaining: remaining(0, 0, 1, 0),
                sleep_ms: 10_000
            }
        );
    }

    #[test]
    fn service_stability_check() {
        let mut o = draining(vec![]);
        o.unsteady_services = vec!["api".into()];
        assert_eq!(
            step(&o, &policy(StandalonePolicy::Wait, false), &clocks()),
            Step::Complete(Completion::Drained)
        );
        assert_eq!(
            step(&o, &policy(StandalonePolicy::Wait, true), &clocks()),
            Step::Wait {
                remaining: Remaining {
                    unsteady_services: vec!["api".into()],
                    ..Remaining::default()
                },
                sleep_ms: 10_000
            }
        );
        o.unsteady_services.clear();
        assert_eq!(
            step(&o, &policy(StandalonePolicy::Wait, true), &clocks()),
            Step::Complete(Completion::Drained)
        );
    }

    #[test]
    fn deadline_completes_and_names_the_tasks_left() {
        let p = policy(StandalonePolicy::Wait, false);
        let o = draining(vec![
            task("s", Role::Service, RUNNING, RUNNING),
            task("a", Role::Standalone, RUNNING, RUNNING),
        ]);
        let c = Clocks {
            now_ms: NOW + 600_000,
            ..clocks()
        };
        assert_eq!(
            step(&o, &p, &c),
            Step::Complete(Completion::DeadlineReached {
                left: vec!["s".into(), "a".into()]
            })
        );
        let c = Clocks {
            now_ms: NOW + 599_999,
            invocation_deadline_ms: NOW + 900_000,
            ..clocks()
        };
        assert!(matches!(step(&o, &p, &c), Step::Wait { .. }));
        // An ACTIVE instance past the deadline is still set DRAINING first.
        let active = Observed {
            container_instance: ci(InstanceStatus::Active),
            ..o
        };
        assert_eq!(
            step(
                &active,
                &p,
                &Clocks {
                    now_ms: NOW + 700_000,
                    ..clocks()
                }
            ),
            Step::SetDraining
        );
    }

    #[test]
    fn a_disconnected_agent_ends_the_drain_after_its_grace() {
        let p = policy(StandalonePolicy::Wait, false);
        let mut o = draining(vec![task("s", Role::Service, RUNNING, RUNNING)]);
        // Disconnected for less than the grace: wait as usual.
        o.agent_disconnected_since_ms = Some(NOW - 299_000);
        assert!(matches!(step(&o, &p, &clocks()), Step::Wait { .. }));
        // For the whole grace: its tasks can never be reported stopped.
        o.agent_disconnected_since_ms = Some(NOW - 300_000);
        assert_eq!(
            step(&o, &p, &clocks()),
            Step::Complete(Completion::AgentDisconnected {
                for_s: 300,
                left: vec!["s".into()]
            })
        );
        // Nothing left: drained, whatever the agent.
        let mut empty = draining(vec![]);
        empty.agent_disconnected_since_ms = Some(NOW - 900_000);
        assert_eq!(
            step(&empty, &p, &clocks()),
            Step::Complete(Completion::Drained)
        );
    }

    #[test]
    fn early_wake_for_the_heartbeat() {
        // The heartbeater (hook::heartbeat) sends the beats; the drain wakes with
        // it, so its next look sees the world the beat kept alive.
        let p = policy(StandalonePolicy::Wait, false);
        let o = draining(vec![task("s", Role::Service, RUNNING, RUNNING)]);
        // Due in 4 s: wake early for it.
        let c = Clocks {
            heartbeat_base_ms: NOW - 96_000,
            ..clocks()
        };
        assert_eq!(
            decide(&o, &p, &c),
            Step::Wait {
                remaining: remaining(1, 0, 0, 0),
                sleep_ms: 4_000
            }
        );
        // Due now: next poll at the normal interval.
        let c = Clocks {
            heartbeat_base_ms: NOW - 100_000,
            ..clocks()
        };
        assert_eq!(
            decide(&o, &p, &c),
            Step::Wait {
                remaining: remaining(1, 0, 0, 0),
                sleep_ms: 10_000
            }
        );
        assert_eq!(
            decide(&draining(vec![]), &p, &c),
            Step::Complete(Completion::Drained)
        );
        // Short heartbeat timeouts never make us sleep below 1 s.
        let c = Clocks {
            heartbeat_base_ms: NOW - 9_999,
            heartbeat_every_ms: 10_000,
            ..clocks()
        };
        assert_eq!(
            decide(&o, &p, &c),
            Step::Wait {
                remaining: remaining(1, 0, 0, 0),
                sleep_ms: 1_000
            }
        );
    }

    #[test]
    fn hand_off_before_the_invocation_deadline() {
        let p = policy(StandalonePolicy::Wait, false);
        let o = draining(vec![task("s", Role::Service, RUNNING, RUNNING)]);
        // 20 s left = one poll (10 s) + margin (10 s): still room.
        let c = Clocks {
            invocation_deadline_ms: NOW + 20_000,
            ..clocks()
        };
        assert!(matches!(step(&o, &p, &c), Step::Wait { .. }));
        let c = Clocks {
            invocation_deadline_ms: NOW + 19_999,
            ..clocks()
        };
        assert_eq!(
            step(&o, &p, &c),
            Step::HandOff {
                remaining: remaining(1, 0, 0, 0)
            }
        );
        // A drained instance completes even with no time left.
        assert_eq!(
            step(&draining(vec![]), &p, &c),
            Step::Complete(Completion::Drained)
        );
    }

    #[test]
    fn hop_limit_ends_a_runaway_chain() {
        let p = policy(StandalonePolicy::Wait, false);
        let o = draining(vec![task("s", Role::Service, RUNNING, RUNNING)]);
        let c = Clocks {
            attempt: MAX_HOPS + 1,
            ..clocks()
        };
        assert_eq!(
            step(&o, &p, &c),
            Step::Complete(Completion::HopLimit {
                attempt: MAX_HOPS + 1
            })
        );
        let c = Clocks {
            attempt: MAX_HOPS,
            ..clocks()
        };
        assert!(matches!(step(&o, &p, &c), Step::Wait { .. }));
    }

    #[test]
    fn retain_at_the_deadline_abandons_and_stops_nothing() {
        let at_deadline = Clocks {
            now_ms: NOW + 600_000,
            ..clocks()
        };
        let before = Clocks {
            now_ms: NOW + 599_999,
            invocation_deadline_ms: NOW + 900_000,
            ..clocks()
        };
        // A service task that never moves, a standalone one, and daemons not yet
        // told to stop: at the deadline, retain stops none of them.
        let stuck = draining(vec![
            task("s", Role::Service, RUNNING, RUNNING),
            task("a", Role::Standalone, RUNNING, RUNNING),
            task("d", Role::Daemon, RUNNING, RUNNING),
        ]);
        let only_daemons = draining(vec![task("d", Role::Daemon, RUNNING, RUNNING)]);
        let only_standalone = draining(vec![task("a", Role::Standalone, RUNNING, RUNNING)]);
        let empty = draining(vec![]);
        let table: Vec<(&str, &Observed, Policy, &Clocks, Step)> = vec![
            (
                "retain at the deadline",
                &stuck,
                retaining(StandalonePolicy::Wait),
                &at_deadline,
                Step::Complete(Completion::Retained {
                    left: vec!["s".into(), "a".into(), "d".into()],
                }),
            ),
            (
                "continue at the deadline (unchanged)",
                &stuck,
                policy(StandalonePolicy::Wait, false),
                &at_deadline,
                Step::Complete(Completion::DeadlineReached {
                    left: vec!["s".into(), "a".into(), "d".into()],
                }),
            ),
            (
                "retain: daemons left are not stopped at the deadline",
                &only_daemons,
                retaining(StandalonePolicy::Wait),
                &at_deadline,
                Step::Complete(Completion::Retained {
                    left: vec!["d".into()],
                }),
            ),
            (
                "retain: STANDALONE_TASKS=stop stops nothing at the deadline",
                &only_standalone,
                retaining(StandalonePolicy::Stop),
                &at_deadline,
                Step::Complete(Completion::Retained {
                    left: vec!["a".into()],
                }),
            ),
            (
                "retain: an ignored standalone task is not worth keeping the host",
                &only_standalone,
                retaining(StandalonePolicy::Ignore),
                &at_deadline,
                Step::Complete(Completion::DeadlineReached {
                    left: vec!["a".into()],
                }),
            ),
            (
                "retain: drained at the deadline completes CONTINUE",
                &empty,
                retaining(StandalonePolicy::Wait),
                &at_deadline,
                Step::Complete(Completion::DeadlineReached { left: vec![] }),
            ),
            (
                "retain: before the deadline the drain waits as usual",
                &stuck,
                retaining(StandalonePolicy::Wait),
                &before,
                Step::Wait {
                    remaining: remaining(1, 1, 1, 0),
                    sleep_ms: 10_000,
                },
            ),
            (
                "retain: before the deadline daemons-last still applies",
                &only_daemons,
                retaining(StandalonePolicy::Wait),
                &before,
                Step::StopTasks {
                    arns: vec!["d".into()],
                    why: StopWhy::DaemonsLast,
                },
            ),
        ];
        for (name, o, p, c, expected) in table {
            let got = step(o, &p, c);
            assert_eq!(got, expected, "{name}");
            if let Step::Complete(reason) = &got {
                let want = if matches!(reason, Completion::Retained { .. }) {
                    ActionResult::Abandon
                } else {
                    ActionResult::Continue
                };
                assert_eq!(reason.result(), want, "{name}");
            }
        }
        // Every other completion stays CONTINUE under retain.
        let gone = Observed {
            container_instance: ci(InstanceStatus::Inactive),
            ..stuck.clone()
        };
        assert_eq!(
            step(&gone, &retaining(StandalonePolicy::Wait), &at_deadline),
            Step::Complete(Completion::Deregistered {
                status: "INACTIVE".into()
            })
        );
        let mut cut_off = stuck;
        cut_off.agent_disconnected_since_ms = Some(NOW - 300_000);
        assert!(matches!(
            step(&cut_off, &retaining(StandalonePolicy::Wait), &clocks()),
            Step::Complete(c @ Completion::AgentDisconnected { .. }) if c.result() == ActionResult::Continue
        ));
    }

    #[test]
    fn a_brief_look_waits_or_hands_off_and_never_completes_nor_stops_tasks() {
        let census = Census {
            at_ms: 0,
            service: 3,
            daemon: 1,
            standalone: 2,
            fewest: None,
        };
        let mut o = draining(vec![]);
        o.brief = Some(Brief { tasks: 4, census });
        for standalone in [
            StandalonePolicy::Wait,
            StandalonePolicy::Stop,
            StandalonePolicy::Ignore,
        ] {
            let p = policy(standalone, true);
            match step(&o, &p, &clocks()) {
                Step::Wait { remaining, .. } => {
                    // 4 counted: the census's 2 standalone and 1 daemon, and 1
                    // service task.
                    assert_eq!(remaining.service, 1, "{standalone:?}");
                    assert_eq!(remaining.daemon, 1);
                    assert_eq!(remaining.standalone + remaining.ignored, 2);
                    assert!(remaining.unsteady_services.is_empty());
                }
                other => panic!("{standalone:?}: {other:?}"),
            }
            // With no time left in the invocation, it hands off.
            let mut c = clocks();
            c.invocation_deadline_ms = c.now_ms + 1;
            assert!(matches!(step(&o, &p, &c), Step::HandOff { .. }));
        }
        // The settled cases still come first: not waiting, superseded.
        let mut gone = o.clone();
        gone.asg_instance = asg("Terminating:Proceed");
        assert!(matches!(
            step(&gone, &policy(StandalonePolicy::Wait, true), &clocks()),
            Step::Stop(StopReason::NotWaiting { .. })
        ));
    }

    #[test]
    fn the_census_counts_what_ecs_does_not_move() {
        let census = Census {
            at_ms: 0,
            service: 5,
            daemon: 2,
            standalone: 3,
            fewest: None,
        };
        // Standalone tasks the drain waits for are waited on like services.
        assert_eq!(census.not_moved_by_ecs(StandalonePolicy::Wait), 2);
        assert_eq!(census.not_moved_by_ecs(StandalonePolicy::Stop), 5);
        assert_eq!(census.not_moved_by_ecs(StandalonePolicy::Ignore), 5);
        // Fewer counted tasks than the census knew: the shares never underflow.
        let b = Brief { tasks: 1, census };
        let r = b.remaining(&policy(StandalonePolicy::Ignore, false));
        assert_eq!((r.service, r.daemon, r.standalone, r.ignored), (0, 0, 0, 1));
    }

    #[test]
    fn a_rested_look_waits_or_hands_off_and_nothing_else() {
        let mut o = draining(vec![]);
        o.container_instance = None;
        o.rested = true;
        let p = policy(StandalonePolicy::Wait, true);
        assert!(matches!(step(&o, &p, &clocks()), Step::Wait { .. }));
        // Not waiting any more, or another chain: still seen (Auto Scaling is read).
        let mut gone = o.clone();
        gone.asg_instance = asg("Terminating:Proceed");
        assert!(matches!(
            step(&gone, &p, &clocks()),
            Step::Stop(StopReason::NotWaiting { .. })
        ));
    }
}
