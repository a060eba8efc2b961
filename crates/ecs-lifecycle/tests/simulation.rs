//! A deterministic simulation of terminate-drain (issue 18, item 1): one seed
//! draws a fleet and a schedule of what AWS and Lambda do, the real `Drainer`
//! runs against the in-memory fleet under tokio's paused clock, and invariants
//! are checked after every step. `docs/testing.md` describes it.
//!
//! `SIM_SEEDS=a..b cargo test --workspace --test simulation -- --nocapture` runs
//! seeds a..b (default 0..2000); a failing seed prints the line that replays it
//! and the last events of its run.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

/// launch-verify's world, played by a share of the seeds.
#[path = "simulation/launch.rs"]
mod launch;

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use ecs_lifecycle::config::{DrainConfig, DrainTimeoutAction, Env, StandalonePolicy};
use ecs_lifecycle::drain::Drainer;
use ecs_lifecycle::error::Error;
use ecs_lifecycle::hook::Handler;
use ecs_lifecycle::hook::dispatch::Answer;
use ecs_lifecycle::model::{ActionResult, InstanceStatus, TaskStatus};
use ecs_lifecycle::report::Reporter;
use ecs_lifecycle::testing::fleet::{ActionState, FakeFleet, Fault, FaultKind};
use ecs_lifecycle::time::{epoch_ms, rfc3339, simulated};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio::time::Instant;

const DEFAULT_SEEDS: std::ops::Range<u64> = 0..2000;
/// The wall clock every seed starts at (2027-01-15T08:00:00Z).
const EPOCH0: u64 = 1_800_000_000_000;
const HOOK_TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:ecs-lifecycle";
const CONTINUE_TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:ecs-lifecycle-continue";
const CLUSTER_ARN: &str = "arn:aws:ecs:us-east-1:123456789012:cluster/c1";
/// How often the simulated ECS looks at its tasks.
const TICK: Duration = Duration::from_secs(2);
/// Trace lines kept per seed for the report of a failure.
const TRACE: usize = 30;
/// An invocation that hands over sooner than this after its start hops as fast
/// as SNS delivers: a storm (every function timeout drawn leaves room for a poll
/// and the hand-off margin, so a chain hops once per invocation).
const STORM: Duration = Duration::from_secs(2);
/// A seed that has made this many invocations has run away: it stops there.
const MAX_INVOCATIONS: usize = 3000;

// ---------------------------------------------------------------- the PRNG

#[path = "common/rng.rs"]
mod rng;
use rng::Rng;

// ---------------------------------------------------------------- the world drawn

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Service,
    Daemon,
    Standalone,
}

/// One task and how the simulated ECS treats it.
#[derive(Debug, Clone)]
struct SimTask {
    arn: String,
    instance: usize,
    role: Role,
    /// A service task: how long after DRAINING the scheduler stops it.
    sched_delay: Duration,
    /// From desiredStatus STOPPED to lastStatus STOPPED (stopTimeout, shutdown).
    stop_time: Duration,
    /// A standalone task that ends on its own at this time.
    ends_at: Option<Instant>,
    /// When the stop was first seen (desired STOPPED).
    stopping_since: Option<Instant>,
    stopped: bool,
}

struct SimInstance {
    id: String,
    asg: String,
    heartbeat_timeout: Duration,
    global_timeout: Duration,
    scale_in_at: Duration,
    /// When the action started (the scale-in).
    started: Option<Instant>,
    draining_since: Option<Instant>,
    /// Gap tracking: the last heartbeat (or the start) and heartbeats seen.
    last_mark: Option<Instant>,
    heartbeats_seen: usize,
    done: bool,
    /// Intervals in which nothing could keep the action alive (an invocation
    /// that crashed or failed, until Lambda's retry; a late delivery).
    excuses: Vec<(Instant, Instant, &'static str)>,

    expired_excused: bool,
    completion_checked: bool,
    /// Seen DRAINING while its terminate action waited: never ACTIVE again
    /// until the action is over (the undo of early drains).
    held_draining: bool,
}

#[derive(Debug, Clone)]
struct Delivery {
    event: Value,
    /// The instance it is about (none for a test notification).
    instance: Option<usize>,
    /// 0 for the first attempt, 1 and 2 for Lambda's async retries.
    lambda_try: u8,
    label: String,
}

enum Scheduled {
    ScaleIn(usize),
    Deliver(Delivery),
    /// EC2 stops (false: the agent goes, the tasks stop) or starts (true: the
    /// agent connects) instance k.
    Agent(usize, bool),
}

/// The undo of an early drain, played in a quarter of the seeds (drawn from
/// the seed apart from the world's RNG): a Spot `stop` warning for instance 0
/// while Auto Scaling has it InService; EC2 stops it two minutes later (its
/// agent goes, its tasks stop) and starts it again (`running`; the agent
/// connects within 90 s), before or after its scale-in.
struct UndoPlan {
    k: usize,
    /// When the agent connects again after EC2 starts the instance.
    agent_back: Instant,
    /// When EC2 starts it again (the `running` event's time).
    back_at: Instant,
    /// When the warning's drain was last answered (a Lambda retry can come
    /// after the instance is back, and drains it again for the warning's window).
    warned_at: Option<Instant>,
}

/// The label of the `running` event's deliveries.
const RUNNING_LABEL: &str = "EC2 running";

/// When the invocation ended, and how.
type Run = (
    Instant,
    Result<Result<Answer, Error>, tokio::time::error::Elapsed>,
);

struct Running {
    id: usize,
    delivery: Delivery,
    started: Instant,
    deadline: Instant,
    crash: bool,
    handle: JoinHandle<Run>,
}

type SimDrainer = Drainer<FakeFleet, FakeFleet, FakeFleet>;

struct Sim {
    rng: Rng,
    t0: Instant,
    fleet: FakeFleet,
    drainer: Arc<SimDrainer>,
    standalone: StandalonePolicy,
    /// DRAIN_TIMEOUT_ACTION of this seed.
    timeout_action: DrainTimeoutAction,
    /// WAIT_MODE=queue for this seed: continuations wait a poll interval in the
    /// wait queue before they are delivered.
    queue_mode: bool,
    max_drain: Duration,
    poll: Duration,
    function_timeout: Duration,
    ecs_events: bool,
    instances: Vec<SimInstance>,
    tasks: Vec<SimTask>,
    faults: Vec<Fault>,
    queue: Vec<(Instant, u64, Scheduled)>,
    seq: u64,
    running: Vec<Running>,
    next_invocation: usize,
    published_seen: usize,
    trace: VecDeque<String>,
    violations: Vec<String>,
    /// The longest closed gap between heartbeats, as a fraction of HeartbeatTimeout
    /// (unexcused gaps only).
    longest_gap: f64,
    longest_gap_at: String,
    /// The longest gap in which nothing blocked heartbeats at all.
    longest_clean_gap: f64,
    invocations: usize,
    stats: Stats,
    schedule_ends: Instant,
    /// SIM_TRACE=1: keep and print every trace line.
    full_trace: bool,
    /// SIM_TRACE=live: print trace lines as they happen.
    live_trace: bool,
    undo: Option<UndoPlan>,
    /// MAX_CONCURRENT_DRAINS of this seed, and the most drains it allows here.
    budget: Option<(&'static str, usize)>,
}

/// What one seed found.
struct SeedReport {
    violations: Vec<String>,
    trace: Vec<String>,
    longest_gap: f64,
    /// Where the longest gap was.
    longest_gap_at: String,
    longest_clean_gap: f64,
    invocations: usize,
    virtual_secs: u64,
    stats: Stats,
}

/// What the seeds played, counted (to see that the world is not too kind).
#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    actions: u64,
    completed: u64,
    /// Completed with tasks left, at MAX_DRAIN_SECONDS.
    at_deadline: u64,
    /// Of those, completed ABANDON (DRAIN_TIMEOUT_ACTION=retain).
    retained: u64,
    /// Expired while the world kept the action from being held.
    expired_excused: u64,
    crashes: u64,
    errors: u64,
    retries: u64,
    dead_letters: u64,
    hand_offs: u64,
    excused_gaps: u64,
    /// Early drains undone (the undo plan's `running` events that set ACTIVE).
    undone: u64,
    /// Per WAIT_MODE ([in-invocation, queue]): seconds invocations ran (what
    /// Lambda bills), seconds the actions were held (start to completion), and
    /// the most invocations running at once in one seed.
    busy_s: [f64; 2],
    held_s: [f64; 2],
    max_in_flight: [usize; 2],
    /// MAX_CONCURRENT_DRAINS: seeds with a budget, and checks that saw an
    /// action wait ACTIVE while the budget's slots were all DRAINING.
    budget_seeds: u64,
    budget_held_back: u64,
}

impl Stats {
    fn add(&mut self, o: &Stats) {
        self.actions += o.actions;
        self.completed += o.completed;
        self.at_deadline += o.at_deadline;
        self.retained += o.retained;
        self.expired_excused += o.expired_excused;
        self.crashes += o.crashes;
        self.errors += o.errors;
        self.retries += o.retries;
        self.dead_letters += o.dead_letters;
        self.hand_offs += o.hand_offs;
        self.excused_gaps += o.excused_gaps;
        self.undone += o.undone;
        self.budget_seeds += o.budget_seeds;
        self.budget_held_back += o.budget_held_back;
        for m in 0..2 {
            self.busy_s[m] += o.busy_s[m];
            self.held_s[m] += o.held_s[m];
            self.max_in_flight[m] = self.max_in_flight[m].max(o.max_in_flight[m]);
        }
    }
}

impl Sim {
    fn new(seed: u64) -> Self {
        let mut rng = Rng(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0x5EED);
        let t0 = Instant::now();
        let poll_s = rng.pick(&[5u64, 10, 10, 15, 30]);
        let max_drain_s = rng.pick(&[120u64, 300, 600, 900, 1800]);
        let standalone = rng.pick(&[
            StandalonePolicy::Stop,
            StandalonePolicy::Wait,
            StandalonePolicy::Ignore,
        ]);
        let stability = rng.chance(25);
        let function_timeout = Duration::from_secs(rng.pick(&[900u64, 900, 300, 120, 60, 45]));
        let ecs_events = rng.chance(50);
        // Half the seeds retain at the deadline; drawn from the seed apart from
        // the world's RNG, so a seed plays the same world as before.
        let timeout_action = if seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 63 == 1 {
            DrainTimeoutAction::Retain
        } else {
            DrainTimeoutAction::Continue
        };
        // Half the seeds wait in the queue (WAIT_MODE=queue): every continuation
        // comes back a poll interval later, through the wait queue. Drawn
        // from the seed too.
        let queue_mode = seed.wrapping_mul(0xD1B5_4A32_D192_ED03) >> 63 == 1;
        // Half the seeds hold a drain budget (MAX_CONCURRENT_DRAINS 1, 2 or
        // 50 %), drawn from the seed too.
        let budget = match seed.wrapping_mul(0xA24B_AED4_963E_E407) >> 61 {
            0 | 1 => Some("1"),
            2 => Some("2"),
            3 => Some("50%"),
            _ => None,
        };
        let config = DrainConfig::from_env(&Env::new(|k| match k {
            "WAIT_MODE" => Some(if queue_mode { "queue" } else { "in-invocation" }.to_owned()),
            "DRAIN_TIMEOUT_ACTION" => Some(timeout_action.as_str().to_owned()),
            "CLUSTER_NAME" => Some("c1".to_owned()),
            "POLL_INTERVAL_SECONDS" => Some(poll_s.to_string()),
            "CONTINUATION_TOPIC_ARN" => Some(CONTINUE_TOPIC.to_owned()),
            "MAX_DRAIN_SECONDS" => Some(max_drain_s.to_string()),
            "STANDALONE_TASKS" => Some(
                match standalone {
                    StandalonePolicy::Stop => "stop",
                    StandalonePolicy::Wait => "wait",
                    StandalonePolicy::Ignore => "ignore",
                }
                .to_owned(),
            ),
            "SERVICE_STABILITY_CHECK" => Some(stability.to_string()),
            "MAX_CONCURRENT_DRAINS" => budget.map(str::to_owned),
            "DRAIN_SLOTS_TABLE" => budget.map(|_| "drain-slots".to_owned()),
            _ => None,
        }))
        .unwrap();
        let fleet = FakeFleet::new();
        let (reporter, _kept) = Reporter::in_memory("terminate-drain", None);
        let drainer = Arc::new(
            Drainer::new(fleet.clone(), fleet.clone(), fleet.clone(), config)
                .with_reporter(reporter)
                .with_slots(fleet.clone()),
        );

        // The fleet: 1-4 instances in one or two groups, each group's hook with
        // its own HeartbeatTimeout (30..7200 s; realistic values).
        let groups: Vec<u64> = (0..rng.range(1, 2))
            .map(|_| rng.pick(&[30u64, 45, 60, 90, 120, 300, 600, 3600]))
            .collect();
        let n = rng.range(1, 4) as usize;
        let mut instances = Vec::new();
        let mut tasks = Vec::new();
        for k in 0..n {
            let g = (rng.next() % groups.len() as u64) as usize;
            let hbt = groups[g];
            let id = format!("i-{:017x}", seed.wrapping_mul(16) + k as u64);
            fleet.register(&id);
            let add = |rng: &mut Rng, role: Role, name: &str, tasks: &mut Vec<SimTask>| {
                let arn = format!(
                    "arn:aws:ecs:us-east-1:123456789012:task/c1/{id}-{}",
                    tasks.len()
                );
                match role {
                    Role::Service => fleet.run_service_task(&id, &arn, name),
                    Role::Daemon => fleet.run_daemon_task(&id, &arn, name),
                    Role::Standalone => fleet.run_standalone_task(&id, &arn),
                }
                // Most services move within minutes; some stall (100 % minimum
                // healthy without spare capacity) far longer.
                let sched_delay = if rng.chance(8) {
                    rng.secs(600, 4000)
                } else {
                    rng.secs(0, 240)
                };
                let ends_at =
                    (role == Role::Standalone && rng.chance(60)).then(|| t0 + rng.secs(30, 3000));
                tasks.push(SimTask {
                    arn,
                    instance: k,
                    role,
                    sched_delay,
                    stop_time: rng.secs(1, 120),
                    ends_at,
                    stopping_since: None,
                    stopped: false,
                });
            };
            for _ in 0..rng.range(0, 3) {
                let name = rng.pick(&["web", "api", "worker"]);
                add(&mut rng, Role::Service, name, &mut tasks);
            }
            if rng.chance(40) {
                add(&mut rng, Role::Daemon, "agent", &mut tasks);
            }
            for _ in 0..rng.range(0, 2) {
                if rng.chance(50) {
                    add(&mut rng, Role::Standalone, "", &mut tasks);
                }
            }
            instances.push(SimInstance {
                id,
                asg: format!("g{g}"),
                heartbeat_timeout: Duration::from_secs(hbt),
                global_timeout: Duration::from_secs((hbt * 100).min(172_800)),
                scale_in_at: rng.secs(0, 300),
                started: None,
                draining_since: None,
                last_mark: None,
                heartbeats_seen: 0,
                done: false,
                excuses: Vec::new(),
                expired_excused: false,
                completion_checked: false,
                held_draining: false,
            });
        }

        let mut sim = Sim {
            rng,
            t0,
            fleet,
            drainer,
            standalone,
            timeout_action,
            queue_mode,
            max_drain: Duration::from_secs(max_drain_s),
            poll: Duration::from_secs(poll_s),
            function_timeout,
            ecs_events,
            instances,
            tasks,
            faults: Vec::new(),
            queue: Vec::new(),
            seq: 0,
            running: Vec::new(),
            next_invocation: 0,
            published_seen: 0,
            trace: VecDeque::new(),
            violations: Vec::new(),
            longest_gap: 0.0,
            longest_gap_at: String::new(),
            longest_clean_gap: 0.0,
            invocations: 0,
            stats: Stats::default(),
            schedule_ends: t0,
            full_trace: std::env::var_os("SIM_TRACE").is_some(),
            live_trace: std::env::var("SIM_TRACE").is_ok_and(|v| v == "live"),
            undo: None,
            // A percentage of the cluster's container instances (n at most:
            // deregistered ones only lower it), rounded down, at least one.
            budget: budget.map(|b| match b {
                "50%" => (b, (n / 2).max(1)),
                _ => (b, b.parse().unwrap()),
            }),
        };
        sim.note(format!(
            "world: {n} instance(s), hooks {groups:?} s, poll {poll_s} s, MAX_DRAIN {max_drain_s} s, DRAIN_TIMEOUT_ACTION {}, WAIT_MODE {}, STANDALONE_TASKS {standalone:?}, stability {stability}, function timeout {} s, ECS events {ecs_events}",
            sim.timeout_action.as_str(),
            if sim.queue_mode { "queue" } else { "in-invocation" },
            sim.function_timeout.as_secs()
        ));
        sim.draw_schedule();
        if seed.wrapping_mul(0xA24B_AED4_963E_E407) >> 62 == 0 {
            sim.plan_undo(seed);
        }
        sim.draw_budget_faults(seed);
        sim
    }

    /// Schedules the [`UndoPlan`] with its own generator (the world's draws
    /// stay as they were).
    fn plan_undo(&mut self, seed: u64) {
        let mut rng = Rng(seed ^ 0xE4A7_1D2C_0B5F_9A31);
        let k = 0;
        let (id, asg) = (self.instances[k].id.clone(), self.instances[k].asg.clone());
        self.fleet.in_service(&id, &asg);
        let warn_at = self.t0 + rng.secs(0, 120);
        let stop_at = warn_at + Duration::from_secs(120);
        let back_at = stop_at + rng.secs(10, 400);
        let agent_back = back_at + rng.secs(0, 90);
        let ec2 = |detail_type: &str, detail: Value, at: Instant| {
            json!({
                "version": "0", "id": format!("ec2-{}", epoch_at(at)), "detail-type": detail_type,
                "source": "aws.ec2", "account": "123456789012", "time": rfc3339(epoch_at(at)),
                "region": "us-east-1", "resources": [], "detail": detail
            })
        };
        let warning = ec2(
            "EC2 Spot Instance Interruption Warning",
            json!({"instance-id": id, "instance-action": "stop"}),
            warn_at,
        );
        let running = ec2(
            "EC2 Instance State-change Notification",
            json!({"instance-id": id, "state": "running"}),
            back_at,
        );
        let deliver = |event: Value, label: &str| {
            Scheduled::Deliver(Delivery {
                event,
                instance: None,
                lambda_try: 0,
                label: label.to_owned(),
            })
        };
        self.schedule(warn_at, deliver(warning, "Spot stop warning"));
        self.schedule(stop_at, Scheduled::Agent(k, false));
        self.schedule(
            back_at + rng.millis(200, 3000),
            deliver(running.clone(), RUNNING_LABEL),
        );
        if rng.chance(20) {
            let again = back_at + rng.secs(5, 300);
            self.schedule(
                again,
                deliver(running, &format!("{RUNNING_LABEL} (duplicate)")),
            );
        }
        self.schedule(agent_back, Scheduled::Agent(k, true));
        // Half the plans: Auto Scaling takes the instance only after it is
        // back (its scale-in moved after the agent's return), so that the undo
        // has an instance in service to undo.
        if rng.chance(50) {
            let later = agent_back + rng.secs(30, 600);
            for (at, _, what) in &mut self.queue {
                if matches!(what, Scheduled::ScaleIn(i) if *i == k) {
                    *at = later;
                }
            }
            self.schedule_ends = self.schedule_ends.max(later);
        }
        self.note(format!(
            "undo plan: {id} Spot stop warning at {}, stopped at {}, running at {}, agent back at {}",
            self.at(warn_at).trim(),
            self.at(stop_at).trim(),
            self.at(back_at).trim(),
            self.at(agent_back).trim()
        ));
        self.undo = Some(UndoPlan {
            k,
            agent_back,
            back_at,
            warned_at: None,
        });
    }

    /// EC2 stops or starts instance `k`: a stop takes its agent and every task
    /// on it (ECS reports them STOPPED); a start brings the agent back.
    fn ec2_power(&mut self, k: usize, on: bool) {
        let id = self.instances[k].id.clone();
        self.fleet.set_agent_connected(&id, on);
        if !on {
            for t in self
                .tasks
                .iter_mut()
                .filter(|t| t.instance == k && !t.stopped)
            {
                self.fleet
                    .set_task_status(&t.arn, TaskStatus::Stopped, TaskStatus::Stopped);
                t.stopped = true;
            }
        }
        self.note(format!(
            "EC2: {id} {}",
            if on {
                "running, agent connected"
            } else {
                "stopped, agent gone"
            }
        ));
    }

    /// With a budget, faults of its table (DynamoDB): throttles, 5xx, slow
    /// answers, and writes that took effect with their answer lost. Drawn
    /// from the seed apart from the world's RNG (every other seed plays the
    /// world it played before budgets). They excuse nothing: whatever the
    /// table does, heartbeats go on.
    fn draw_budget_faults(&mut self, seed: u64) {
        let Some((name, limit)) = self.budget else {
            return;
        };
        self.stats.budget_seeds = 1;
        self.note(format!(
            "MAX_CONCURRENT_DRAINS {name}: at most {limit} drain(s) at once"
        ));
        let mut rng = Rng(seed.wrapping_mul(0x94D0_49BB_1331_11EB) ^ 0xB0D6_E75E);
        for _ in 0..rng.range(0, 2) {
            let op = rng.pick(&[None, Some("GetItem"), Some("PutItem")]);
            let kind = match rng.range(0, 3) {
                0 => FaultKind::Error("ProvisionedThroughputExceededException".into()),
                1 => FaultKind::Error("InternalServerError".into()),
                2 => FaultKind::Slow(rng.millis(500, 8_000)),
                _ => FaultKind::LostAnswer("InternalServerError".into()),
            };
            let from = self.t0 + rng.secs(0, 600);
            let len = rng.secs(2, 120);
            self.note(format!(
                "fault dynamodb:{} {kind:?} from {} for {} s",
                op.unwrap_or("*"),
                self.at(from).trim(),
                len.as_secs()
            ));
            self.fleet.add_fault(Fault {
                service: "dynamodb",
                operation: op,
                from,
                until: from + len,
                kind,
            });
        }
    }

    /// Invariant 7 (drain budget): never more instances DRAINING, among those
    /// whose action is still open (a drain holds its slot until its action is
    /// completed), than MAX_CONCURRENT_DRAINS allows, the urgent drain of an
    /// undo plan's Spot warning left out.
    fn check_budget(&mut self) {
        let Some((name, limit)) = self.budget else {
            return;
        };
        // An urgent drain (the undo plan's Spot warning) bypasses the budget
        // by design, whatever it holds: the budgeted drains are what it bounds
        // (that an urgent drain counts against them is the budget's unit tests'
        // and flow tests' to check).
        let urgent = self.undo.as_ref().map(|u| u.k).filter(|k| {
            self.fleet
                .container_instance(&self.instances[*k].id)
                .is_some_and(|c| c.early_drain.is_some())
        });
        let (mut draining, mut waiting) = (Vec::new(), 0);
        for (k, i) in self
            .instances
            .iter()
            .enumerate()
            .filter(|(_, i)| i.started.is_some())
        {
            if self.fleet.action_state(&i.id) != Some(ActionState::Waiting) || Some(k) == urgent {
                continue;
            }
            match self.fleet.container_instance(&i.id).map(|c| c.status) {
                Some(InstanceStatus::Draining) => draining.push(i.id.clone()),
                Some(InstanceStatus::Active) => waiting += 1,
                _ => {}
            }
        }
        if draining.len() > limit {
            self.violation(format!(
                "invariant 7 (drain budget): {} instances DRAINING at once with MAX_CONCURRENT_DRAINS={name} (at most {limit}): {draining:?}",
                draining.len()
            ));
        }
        if draining.len() == limit && waiting > 0 {
            self.stats.budget_held_back += 1;
        }
    }

    fn at(&self, t: Instant) -> String {
        format!("{:>9.1}s", (t - self.t0).as_secs_f64())
    }

    fn note(&mut self, line: String) {
        let line = format!("{} {line}", self.at(Instant::now()));
        if self.live_trace {
            eprintln!("    {line}");
        }
        if self.trace.len() == 4 * TRACE && !self.full_trace {
            self.trace.pop_front();
        }
        self.trace.push_back(line);
    }

    fn violation(&mut self, what: String) {
        self.note(format!("VIOLATION {what}"));
        self.violations.push(what);
    }

    fn schedule(&mut self, at: Instant, what: Scheduled) {
        self.seq += 1;
        self.queue.push((at, self.seq, what));
    }

    /// Draws what AWS and Lambda do: scale-ins, duplicate hook notifications,
    /// and fault windows per API.
    fn draw_schedule(&mut self) {
        let t0 = self.t0;
        if self.rng.chance(30) {
            let at = t0 + self.rng.secs(0, 60);
            let event = sns(&json!({
                "AccountId": "123456789012", "RequestId": "r-test", "AutoScalingGroupEventARN": "arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:x:autoScalingGroupName/g0",
                "AutoScalingGroupName": "g0", "Service": "AWS Auto Scaling", "Event": "autoscaling:TEST_NOTIFICATION", "Time": rfc3339(EPOCH0)
            }));
            self.schedule(
                at,
                Scheduled::Deliver(Delivery {
                    event,
                    instance: None,
                    lambda_try: 0,
                    label: "test notification".into(),
                }),
            );
        }
        for k in 0..self.instances.len() {
            let at = t0 + self.instances[k].scale_in_at;
            self.schedule(at, Scheduled::ScaleIn(k));
        }
        // Faults fall where the drains are (scale-ins in the first five minutes,
        // most drains over within fifteen); a few seeds get many more.
        let horizon = 900;
        let heavy = if self.rng.chance(15) { 3 } else { 1 };
        // ECS: throttling, 5xx, slow answers and timeouts, per operation or all.
        let ecs_ops = [
            None,
            Some("DescribeContainerInstances"),
            Some("ListContainerInstances"),
            Some("ListTasks"),
            Some("DescribeTasks"),
            Some("DescribeServices"),
            Some("UpdateContainerInstancesState"),
            Some("StopTask"),
            Some("PutAttributes"),
        ];
        for _ in 0..self.rng.range(0, 4) * heavy {
            let op = self.rng.pick(&ecs_ops);
            let kind = self.draw_kind(
                &[
                    "ThrottlingException",
                    "ServiceUnavailable",
                    "InternalFailure",
                ],
                false,
            );
            let len = self.rng.secs(5, 300);
            self.fault("ecs", op, horizon, len, kind);
        }
        // Auto Scaling: the same, lost answers of heartbeats and completions, and
        // now and then an outage of the whole API.
        let asg_ops = [
            None,
            Some("DescribeAutoScalingInstances"),
            Some("DescribeLifecycleHooks"),
            Some("RecordLifecycleActionHeartbeat"),
            Some("CompleteLifecycleAction"),
        ];
        for _ in 0..self.rng.range(0, 3) * heavy {
            let op = self.rng.pick(&asg_ops);
            let lost_ok = matches!(
                op,
                Some("RecordLifecycleActionHeartbeat" | "CompleteLifecycleAction")
            );
            let kind = self.draw_kind(
                &["Throttling", "ServiceUnavailable", "InternalFailure"],
                lost_ok,
            );
            let len = self.rng.secs(2, 60);
            self.fault("autoscaling", op, horizon, len, kind);
        }
        if self.rng.chance(5) {
            let len = self.rng.secs(30, 600);
            self.fault(
                "autoscaling",
                None,
                horizon,
                len,
                FaultKind::Error("ServiceUnavailable".into()),
            );
        }
        // SNS: publishes that fail, time out, answer slowly or lose their answer.
        for _ in 0..self.rng.range(0, 2) * heavy {
            let kind = self.draw_kind(&["Throttling", "InternalError"], true);
            // A publish that took effect but whose answer was lost is an
            // occasional event (its retry is a duplicate), not a minute-long state.
            let len = if matches!(kind, FaultKind::LostAnswer(_)) {
                self.rng.secs(1, 5)
            } else {
                self.rng.secs(2, 60)
            };
            self.fault("sns", Some("Publish"), horizon, len, kind);
        }
        self.schedule_ends = self
            .faults
            .iter()
            .map(|f| f.until)
            .chain(self.instances.iter().map(|i| t0 + i.scale_in_at))
            .max()
            .unwrap_or(t0);
    }

    fn draw_kind(&mut self, codes: &[&'static str], lost_ok: bool) -> FaultKind {
        match self.rng.range(0, if lost_ok { 4 } else { 3 }) {
            0 | 1 => FaultKind::Error(self.rng.pick(codes).into()),
            2 => {
                if self.rng.chance(30) {
                    // The SDK's operation timeout (45 s) spent on retries.
                    FaultKind::Timeout(Duration::from_secs(45))
                } else {
                    FaultKind::Slow(self.rng.millis(500, 20_000))
                }
            }
            _ => FaultKind::LostAnswer(self.rng.pick(codes).into()),
        }
    }

    fn fault(
        &mut self,
        service: &'static str,
        operation: Option<&'static str>,
        horizon: u64,
        len: Duration,
        kind: FaultKind,
    ) {
        let from = self.t0 + self.rng.secs(0, horizon);
        let f = Fault {
            service,
            operation,
            from,
            until: from + len,
            kind,
        };
        self.fleet.add_fault(f.clone());
        self.note(format!(
            "fault {service}:{} {:?} from {} for {} s",
            operation.unwrap_or("*"),
            f.kind,
            self.at(from).trim(),
            len.as_secs()
        ));
        self.faults.push(f);
    }

    /// The hook notification of instance `k`, as SNS delivers it.
    fn hook_event(&self, k: usize) -> Value {
        let i = &self.instances[k];
        let started = i.started.unwrap_or(self.t0);
        sns(&json!({
            "Origin": "AutoScalingGroup", "Destination": "EC2",
            "LifecycleHookName": "drain", "AccountId": "123456789012", "RequestId": format!("r-{k}"),
            "LifecycleTransition": "autoscaling:EC2_INSTANCE_TERMINATING",
            "AutoScalingGroupName": i.asg, "Service": "AWS Auto Scaling",
            "Time": rfc3339(epoch_at(started)),
            "EC2InstanceId": i.id, "LifecycleActionToken": format!("token-{k}")
        }))
    }

    fn deliver_later(&mut self, at: Instant, d: Delivery) {
        self.schedule(at, Scheduled::Deliver(d));
    }

    // ------------------------------------------------------------ the run

    async fn run(mut self) -> SeedReport {
        // Run on past the schedule until every action is over and nothing is
        // left to deliver, or until the last action could have timed out twice.
        let cap = self.schedule_ends
            + self.max_drain
            + self
                .instances
                .iter()
                .map(|i| i.heartbeat_timeout)
                .max()
                .unwrap_or_default()
                * 2
            + Duration::from_secs(900);
        let mut next_tick = Instant::now();
        loop {
            let now = Instant::now();
            let next_event = self.queue.iter().map(|(t, ..)| *t).min();
            let wake = next_event.map_or(next_tick, |t| t.min(next_tick));
            if wake > now {
                tokio::time::sleep_until(wake).await;
            } else {
                tokio::task::yield_now().await;
            }
            let now = Instant::now();
            // Due events, in order.
            while let Some(pos) = self
                .queue
                .iter()
                .enumerate()
                .filter(|(_, (t, ..))| *t <= now)
                .min_by_key(|(_, (t, seq, _))| (*t, *seq))
                .map(|(p, _)| p)
            {
                let (_, _, what) = self.queue.swap_remove(pos);
                match what {
                    Scheduled::ScaleIn(k) => self.scale_in(k),
                    Scheduled::Deliver(d) => self.invoke(d),
                    Scheduled::Agent(k, on) => self.ec2_power(k, on),
                }
                self.check();
            }
            if now >= next_tick {
                self.play_ecs();
                next_tick = now + TICK;
            }
            self.reap().await;
            self.take_continuations();
            self.check();
            let settled = self.instances.iter().all(|i| i.done)
                && self.running.is_empty()
                && self.queue.is_empty();
            if settled || now >= cap {
                break;
            }
            if self.invocations > MAX_INVOCATIONS {
                self.violation(format!(
                    "no hand-off storm: more than {MAX_INVOCATIONS} invocations; the seed stops here"
                ));
                break;
            }
        }
        // Anything still running is cut off (Lambda would kill it at its deadline).
        for r in std::mem::take(&mut self.running) {
            r.handle.abort();
        }
        self.finish();
        SeedReport {
            violations: self.violations,
            trace: self
                .trace
                .iter()
                .rev()
                .take(if self.full_trace { usize::MAX } else { TRACE })
                .rev()
                .cloned()
                .collect(),
            longest_gap: self.longest_gap,
            longest_gap_at: self.longest_gap_at,
            longest_clean_gap: self.longest_clean_gap,
            invocations: self.invocations,
            virtual_secs: (Instant::now() - self.t0).as_secs(),
            stats: self.stats,
        }
    }

    fn scale_in(&mut self, k: usize) {
        let (id, asg, hbt) = {
            let i = &self.instances[k];
            (i.id.clone(), i.asg.clone(), i.heartbeat_timeout.as_secs())
        };
        self.fleet.terminating(&id, &asg, hbt);
        let now = Instant::now();
        self.instances[k].started = Some(now);
        self.instances[k].last_mark = Some(now);
        self.note(format!(
            "scale-in: {id} Terminating:Wait ({asg}, HeartbeatTimeout {hbt} s)"
        ));
        // Auto Scaling -> SNS -> Lambda: within a second or two, now and then
        // late (Lambda's async queue); at least once.
        let event = self.hook_event(k);
        let first = if self.rng.chance(3) {
            let at = now + self.rng.millis(5_000, 20_000);
            self.instances[k]
                .excuses
                .push((now, at, "late notification"));
            at
        } else {
            now + self.rng.millis(50, 3000)
        };
        self.deliver_later(
            first,
            Delivery {
                event: event.clone(),
                instance: Some(k),
                lambda_try: 0,
                label: format!("hook {id}"),
            },
        );
        if self.rng.chance(15) {
            let dup = now + self.rng.millis(100, 120_000);
            self.deliver_later(
                dup,
                Delivery {
                    event,
                    instance: Some(k),
                    lambda_try: 0,
                    label: format!("hook {id} (duplicate)"),
                },
            );
        }
    }

    fn invoke(&mut self, d: Delivery) {
        let id = self.next_invocation;
        self.next_invocation += 1;
        self.invocations += 1;
        let now = Instant::now();
        let deadline = now + self.function_timeout;
        let deadline_ms = epoch_ms() + self.function_timeout.as_millis() as u64;
        // Now and then Lambda loses the sandbox at a random point (out of
        // memory, a host failure): the invocation ends without an answer.
        let crash = self.rng.chance(4);
        let limit = if crash {
            self.rng.millis(0, self.function_timeout.as_millis() as u64)
        } else {
            self.function_timeout
        };
        self.note(format!(
            "invoke #{id}: {} (try {}){}",
            d.label,
            d.lambda_try,
            if crash {
                format!(", crashes after {:.1} s", limit.as_secs_f64())
            } else {
                String::new()
            }
        ));
        let drainer = Arc::clone(&self.drainer);
        let event = d.event.clone();
        let handle = tokio::spawn(async move {
            let run = tokio::time::timeout(limit, drainer.handle(&event, deadline_ms)).await;
            (Instant::now(), run)
        });
        let mode = usize::from(self.queue_mode);
        self.stats.max_in_flight[mode] = self.stats.max_in_flight[mode].max(self.running.len() + 1);
        self.running.push(Running {
            id,
            delivery: d,
            started: now,
            deadline,
            crash,
            handle,
        });
    }

    /// Collects the invocations that ended; Lambda retries the failed ones
    /// (async invocation: about one minute, then two minutes later).
    async fn reap(&mut self) {
        let mut i = 0;
        while i < self.running.len() {
            if !self.running[i].handle.is_finished() {
                i += 1;
                continue;
            }
            let r = self.running.swap_remove(i);
            let (ended, run) = match r.handle.await {
                Ok((ended, run)) => (ended, Ok(run)),
                Err(e) => (Instant::now(), Err(e)),
            };
            let now = ended;
            let took = (now - r.started).as_secs_f64();
            self.stats.busy_s[usize::from(self.queue_mode)] += took;
            let failed = match run {
                Ok(Ok(Ok(answer))) => {
                    let v = answer.to_json();
                    let outcome = v["outcomes"][0]["outcome"]
                        .as_str()
                        .unwrap_or("?")
                        .to_owned();
                    let detail = v["outcomes"][0]["reason"]
                        .as_str()
                        .map(str::to_owned)
                        .or_else(|| v["outcomes"][0].get("reason").map(|r| r.to_string()))
                        .unwrap_or_default();
                    self.note(format!(
                        "#{} ended after {took:.1} s: {outcome} {detail}",
                        r.id
                    ));
                    if r.delivery.label.starts_with(RUNNING_LABEL) {
                        let done = v["outcomes"][0]["done"].as_str().unwrap_or("?").to_owned();
                        self.check_undo_answer(&r.delivery.label, &done, r.started, now);
                    }
                    if r.delivery.label.starts_with("Spot stop warning")
                        && let Some(plan) = &mut self.undo
                    {
                        plan.warned_at = Some(now);
                    }
                    if outcome == "handed_off" {
                        self.stats.hand_offs += 1;
                        // In the queue, handing over at once is the design: the
                        // queue's delay paces the chain.
                        if !self.queue_mode && now - r.started < STORM {
                            self.violation(format!(
                                "no hand-off storm: invocation #{} ({}) handed over {took:.1} s after its start",
                                r.id, r.delivery.label
                            ));
                        }
                    }
                    false
                }
                Ok(Ok(Err(e))) => {
                    self.note(format!(
                        "#{} failed after {took:.1} s: {} {e}",
                        r.id,
                        e.kind()
                    ));
                    self.stats.errors += 1;
                    if matches!(e, Error::Internal(_)) {
                        self.violation(format!(
                            "invariant 4 (named errors): invocation #{} ({}) returned an internal error: {e}",
                            r.id, r.delivery.label
                        ));
                    }
                    true
                }
                Ok(Err(_)) if r.crash => {
                    self.note(format!("#{} crashed after {took:.1} s", r.id));
                    self.stats.crashes += 1;
                    true
                }
                Ok(Err(_)) => {
                    self.violation(format!(
                        "invariant 4 (deadline): invocation #{} ({}) was still running at its deadline ({} s) and was killed",
                        r.id,
                        r.delivery.label,
                        (r.deadline - r.started).as_secs()
                    ));
                    true
                }
                Err(e) => {
                    self.violation(format!(
                        "invariant 4 (no panic): invocation #{} ({}) panicked: {e}",
                        r.id, r.delivery.label
                    ));
                    true
                }
            };
            if failed {
                let next = match r.delivery.lambda_try {
                    0 => Some(60),
                    1 => Some(120),
                    _ => None,
                };
                let retry_at =
                    next.map(|s| now + Duration::from_secs(s) + self.rng.millis(0, 5000));
                // From the failure until Lambda's retry, nothing holds the action
                // (an ECS event's invocation never held it: the chain does).
                if let Some(k) = r.delivery.instance
                    && !r.delivery.label.starts_with("ECS event")
                {
                    let until = retry_at.unwrap_or(now + Duration::from_secs(86_400));
                    self.instances[k]
                        .excuses
                        .push((now, until, "failed invocation"));
                }
                match retry_at {
                    Some(at) => {
                        self.stats.retries += 1;
                        let mut d = r.delivery.clone();
                        d.lambda_try += 1;
                        self.deliver_later(at, d);
                    }
                    None => {
                        self.stats.dead_letters += 1;
                        self.note(format!(
                        "#{}: Lambda's retries are spent; the event goes to the dead-letter queue",
                        r.id
                    ));
                    }
                }
            }
        }
    }

    /// Delivers the continuations the function published (SNS -> Lambda):
    /// within a second or two; now and then late, or twice.
    fn take_continuations(&mut self) {
        let published = self.fleet.published_at();
        for (at, topic, body) in published.into_iter().skip(self.published_seen) {
            self.published_seen += 1;
            if topic != CONTINUE_TOPIC {
                continue;
            }
            let Ok(message) = serde_json::from_str::<Value>(&body) else {
                self.violation(format!("a continuation that is not JSON: {body}"));
                continue;
            };
            let instance_id = message["action"]["EC2InstanceId"].as_str().unwrap_or("");
            let k = self.instances.iter().position(|i| i.id == instance_id);
            let attempt = message["attempt"].as_u64().unwrap_or(0);
            let event = sns_on(CONTINUE_TOPIC, &message);
            let late = self.rng.chance(3);
            let mut delay = if late {
                self.rng.millis(5_000, 25_000)
            } else {
                self.rng.millis(50, 2_000)
            };
            if self.queue_mode && message["wait"] == "queue" {
                // The wait queue's DelaySeconds (the poll interval), then the
                // event source mapping's polling (the draw above); a
                // continuation that does not ask to wait comes through SNS.
                delay += self.poll;
            }
            if let Some(k) = k
                && late
            {
                self.instances[k]
                    .excuses
                    .push((at, at + delay, "late continuation"));
            }
            let label = format!("continuation {instance_id} attempt {attempt}");
            let d = Delivery {
                event,
                instance: k,
                lambda_try: 0,
                label,
            };
            self.deliver_later(at + delay, d.clone());
            if self.rng.chance(4) {
                let again = at + self.rng.millis(1_000, 90_000);
                let mut d = d;
                d.label.push_str(" (duplicate)");
                self.deliver_later(again, d);
            }
        }
    }

    /// Plays ECS: the scheduler stops service tasks some time after DRAINING,
    /// daemon tasks once the replica tasks are gone, standalone tasks end on
    /// their own; a task told to stop reaches STOPPED after its stop time. Each
    /// change may send an `ECS Task State Change` event (at least once, in any order).
    fn play_ecs(&mut self) {
        let now = Instant::now();
        for k in 0..self.instances.len() {
            if self.instances[k].draining_since.is_none()
                && self
                    .fleet
                    .container_instance(&self.instances[k].id)
                    .is_some_and(|c| c.status == InstanceStatus::Draining)
            {
                self.instances[k].draining_since = Some(now);
                let id = self.instances[k].id.clone();
                self.note(format!("ECS: {id} is DRAINING"));
            }
        }
        let fleet_tasks = self.fleet.tasks();
        let desired: HashMap<&str, TaskStatus> = fleet_tasks
            .iter()
            .map(|t| (t.arn.as_str(), t.desired_status.clone()))
            .collect();
        let mut changes: Vec<(usize, TaskStatus, TaskStatus)> = Vec::new();
        for (n, t) in self.tasks.iter().enumerate() {
            if t.stopped {
                continue;
            }
            let draining = self.instances[t.instance].draining_since;
            let told = desired.get(t.arn.as_str()) == Some(&TaskStatus::Stopped);
            if let Some(since) = t.stopping_since {
                if now >= since + t.stop_time {
                    changes.push((n, TaskStatus::Stopped, TaskStatus::Stopped));
                }
                continue;
            }
            let replicas_gone = self
                .tasks
                .iter()
                .all(|o| o.instance != t.instance || o.role != Role::Service || o.stopped);
            let stop = told
                || match t.role {
                    Role::Service => draining.is_some_and(|d| now >= d + t.sched_delay),
                    Role::Daemon => draining.is_some() && replicas_gone,
                    Role::Standalone => t.ends_at.is_some_and(|e| now >= e),
                };
            if stop {
                changes.push((n, TaskStatus::Stopping, TaskStatus::Stopped));
            }
        }
        for (n, last, want) in changes {
            let arn = self.tasks[n].arn.clone();
            self.fleet.set_task_status(&arn, last.clone(), want);
            if last == TaskStatus::Stopped {
                self.tasks[n].stopped = true;
            } else {
                self.tasks[n].stopping_since = Some(now);
            }
            let short = arn.rsplit('/').next().unwrap_or("").to_owned();
            self.note(format!("ECS: task {short} {}", last.as_str()));
            if self.ecs_events && last == TaskStatus::Stopped {
                let k = self.tasks[n].instance;
                let event = task_event(&self.instances[k].id, &arn, &last);
                let d = Delivery {
                    event,
                    instance: Some(k),
                    lambda_try: 0,
                    label: format!("ECS event {short} {}", last.as_str()),
                };
                let at = now + self.rng.millis(500, 5_000);
                self.deliver_later(at, d.clone());
                if self.rng.chance(15) {
                    let mut d = d;
                    d.label.push_str(" (duplicate)");
                    let again = now + self.rng.millis(5_000, 120_000);
                    self.deliver_later(again, d);
                }
            }
        }
    }

    // ------------------------------------------------------------ invariants

    /// Checks invariants 1-3 and 6 on what happened so far.
    fn check(&mut self) {
        self.check_budget();
        for k in 0..self.instances.len() {
            let Some(start) = self.instances[k].started else {
                continue;
            };
            if self.instances[k].done {
                continue;
            }
            let id = self.instances[k].id.clone();
            let hbt = self.instances[k].heartbeat_timeout;
            self.check_held_draining(k, start);
            // Invariant 1: each gap between heartbeats (or the start) and the next
            // heartbeat or the completion is shorter than HeartbeatTimeout.
            let beats = self.fleet.heartbeats(&id);
            for b in beats
                .iter()
                .skip(self.instances[k].heartbeats_seen)
                .copied()
                .collect::<Vec<_>>()
            {
                self.close_gap(k, b, "heartbeat");
            }
            self.instances[k].heartbeats_seen = beats.len();
            let completions = self.fleet.completed_with(&id);
            // Invariant 2: at most one accepted completion, with CONTINUE.
            if completions.len() > 1 {
                self.violation(format!(
                    "invariant 2 (complete once): {id} has {} accepted completions",
                    completions.len()
                ));
            }
            if let Some((result, at, tasks)) = completions.first().cloned() {
                if !self.instances[k].completion_checked {
                    self.instances[k].completion_checked = true;
                    self.note(format!("Auto Scaling: {id} completed {}", result.as_str()));
                    // ABANDON only with DRAIN_TIMEOUT_ACTION=retain (checked
                    // against the deadline below).
                    let retain = self.timeout_action == DrainTimeoutAction::Retain;
                    if result == ActionResult::Abandon && !retain {
                        self.violation(format!(
                            "invariant 2 (result): {id} completed with {}",
                            result.as_str()
                        ));
                    }
                    // Invariant 3: no CONTINUE before every waited-on task is STOPPED,
                    // unless the drain's deadline was reached.
                    let live: Vec<String> = tasks
                        .iter()
                        .filter(|t| !t.last_status.is_stopped())
                        .filter(|t| {
                            let role = self.role(&t.arn);
                            role != Some(Role::Standalone)
                                || self.standalone != StandalonePolicy::Ignore
                        })
                        .map(|t| {
                            format!(
                                "{} {}",
                                t.arn.rsplit('/').next().unwrap_or(""),
                                t.last_status.as_str()
                            )
                        })
                        .collect();
                    let safety = (self.poll * 2).max(Duration::from_secs(10));
                    let i = &self.instances[k];
                    let deadline = start + self.max_drain.min(i.global_timeout - safety);
                    if !live.is_empty() {
                        self.stats.at_deadline += 1;
                    }
                    if result == ActionResult::Abandon {
                        self.stats.retained += 1;
                        // Invariant 2 (retain): ABANDON only once the drain's
                        // deadline is reached.
                        if at < deadline {
                            self.violation(format!(
                                "invariant 2 (retain): {id} completed ABANDON at {}, before MAX_DRAIN_SECONDS ({})",
                                self.at(at).trim(),
                                self.at(deadline).trim()
                            ));
                        }
                    }
                    if !live.is_empty() && at < deadline {
                        self.violation(format!(
                            "invariant 3 (drained first): {id} completed CONTINUE at {} with tasks not STOPPED {live:?}, before MAX_DRAIN_SECONDS ({})",
                            self.at(at).trim(),
                            self.at(deadline).trim()
                        ));
                    }
                    self.close_gap(k, at, "completion");
                    self.instances[k].done = true;
                }
                continue;
            }
            if let Some(at) = self.fleet.expired_at(&id) {
                self.note(format!("Auto Scaling: {id} EXPIRED"));
                let excused = self.close_gap(k, at, "expiry");
                self.instances[k].expired_excused = excused;
                self.instances[k].done = true;
                continue;
            }
            let _ = hbt;
        }
    }

    /// Closes the gap of instance `k` at `at`; returns whether a gap as long as
    /// HeartbeatTimeout was excused by the world.
    fn close_gap(&mut self, k: usize, at: Instant, by: &str) -> bool {
        let i = &self.instances[k];
        let Some(from) = i.last_mark else {
            return false;
        };
        let gap = at.saturating_duration_since(from);
        let hbt = i.heartbeat_timeout;
        let fraction = gap.as_secs_f64() / hbt.as_secs_f64();
        let (blocked, excuse) = self.excuse(k, from, at);
        self.instances[k].last_mark = Some(at);
        if blocked.is_zero() && fraction > self.longest_clean_gap {
            self.longest_clean_gap = fraction;
            if std::env::var_os("SIM_TRACE").is_some() {
                let line = format!(
                    "clean gap {fraction:.3} from {} to the {by} at {}",
                    self.at(from).trim(),
                    self.at(at).trim()
                );
                self.note(line);
            }
        }
        match excuse {
            None => {
                if fraction > self.longest_gap {
                    self.longest_gap = fraction;
                    self.longest_gap_at = format!(
                        "{}: {:.1} s from {} to the {by} at {} (HeartbeatTimeout {} s)",
                        self.instances[k].id,
                        gap.as_secs_f64(),
                        self.at(from).trim(),
                        self.at(at).trim(),
                        hbt.as_secs()
                    );
                }
                if gap >= hbt {
                    let id = self.instances[k].id.clone();
                    self.violation(format!(
                        "invariant 1 (no expiry): {id}: {:.1} s from {} to the {by} at {} without a heartbeat (HeartbeatTimeout {} s)",
                        gap.as_secs_f64(),
                        self.at(from).trim(),
                        self.at(at).trim(),
                        hbt.as_secs()
                    ));
                }
                false
            }
            Some(why) => {
                if gap >= hbt {
                    self.stats.excused_gaps += 1;
                    let id = self.instances[k].id.clone();
                    self.note(format!(
                        "{id}: a gap of {:.1} s up to the {by}, excused: {why}",
                        gap.as_secs_f64()
                    ));
                }
                gap >= hbt
            }
        }
    }

    /// Why nothing could keep instance `k`'s action alive between `from` and
    /// `to`, if the world prevented it. The heartbeater beats every third of
    /// HeartbeatTimeout and retries a failed beat every 2 s, so only a gap in
    /// which heartbeats were blocked for two thirds of HeartbeatTimeout (less a
    /// retry) can expire an action. Blocked: Auto Scaling refusing or hanging
    /// heartbeats (a hung call holds the heartbeater up to a third more, one
    /// attempt), an invocation that held the action crashed or failed until
    /// Lambda's retry, a continuation delivered late.
    fn excuse(&self, k: usize, from: Instant, to: Instant) -> (Duration, Option<String>) {
        let i = &self.instances[k];
        heartbeats_blocked(&self.faults, &i.excuses, i.heartbeat_timeout, from, to)
    }

    fn role(&self, arn: &str) -> Option<Role> {
        self.tasks.iter().find(|t| t.arn == arn).map(|t| t.role)
    }

    /// Invariant 5: every action completed exactly once (or expired while the
    /// world kept it from being held).
    /// The undo's invariant (a): an instance seen DRAINING while its terminate
    /// action waits is never ACTIVE again until the action is over. ECS has no
    /// conditional write, so an undo that looked before the scale-in may set it
    /// ACTIVE; that undo puts it back (DRAINING) before it answers: only while
    /// a `running` event's invocation is in flight is ACTIVE excused.
    fn check_held_draining(&mut self, k: usize, start: Instant) {
        let id = self.instances[k].id.clone();
        let Some(status) = self.fleet.container_instance(&id).map(|c| c.status) else {
            return;
        };
        if status == InstanceStatus::Draining {
            self.instances[k].held_draining = true;
        } else if status == InstanceStatus::Active && self.instances[k].held_draining {
            let undoing = self
                .running
                .iter()
                .any(|r| r.delivery.label.starts_with(RUNNING_LABEL));
            if !undoing {
                self.violation(format!(
                    "undo (never while a hook holds it): {id} is ACTIVE again while its terminate action (started {}) waits",
                    self.at(start).trim()
                ));
            }
        }
    }

    /// The undo's invariant (b): a `running` event answered before the
    /// instance's scale-in, once its agent is connected, leaves it ACTIVE
    /// (`set_active`, or nothing to undo when an earlier delivery did); one
    /// that starts after the scale-in never sets it ACTIVE (`reverted` when
    /// the scale-in comes in the middle of it). A warning whose drain came
    /// after the instance was back (Lambda's retry) holds it for its window.
    fn check_undo_answer(&mut self, label: &str, done: &str, started: Instant, ended: Instant) {
        let Some(plan) = &self.undo else {
            return;
        };
        let (k, agent_back) = (plan.k, plan.agent_back);
        let late_warning = plan.warned_at.is_some_and(|w| w > plan.back_at);
        let id = self.instances[k].id.clone();
        let status = self.fleet.container_instance(&id).map(|c| c.status);
        if done == "set_active" {
            self.stats.undone += 1;
        }
        let ok = match self.instances[k].started {
            _ if late_warning => done != "set_active" || status == Some(InstanceStatus::Active),
            // (`marker_removed`: an earlier attempt set it ACTIVE and failed
            // before it removed the marker; Lambda's retry removes it.)
            None if ended >= agent_back => {
                matches!(done, "set_active" | "not_an_early_drain" | "marker_removed")
                    && status == Some(InstanceStatus::Active)
            }
            None => matches!(
                done,
                "set_active" | "not_an_early_drain" | "marker_removed" | "agent_not_connected"
            ),
            // Taken before the look: never set ACTIVE, not even for a moment.
            Some(at) if at <= started => !matches!(done, "set_active" | "reverted"),
            Some(_) => true,
        };
        if !ok {
            self.violation(format!(
                "undo (back means ACTIVE, leaving means not): {label} answered {done} with {id} {status:?}, scale-in {}",
                self.instances[k]
                    .started
                    .map_or("not yet".to_owned(), |t| format!("at {}", self.at(t).trim()))
            ));
        }
    }

    fn finish(&mut self) {
        self.check();
        for k in 0..self.instances.len() {
            let i = &self.instances[k];
            let id = i.id.clone();
            if i.started.is_none() {
                continue;
            }
            let completions = self.fleet.completions(&id).len();
            if let (Some(start), Some((_, end))) = (i.started, self.fleet.completions(&id).first())
            {
                self.stats.held_s[usize::from(self.queue_mode)] += (*end - start).as_secs_f64();
            }
            self.stats.actions += 1;
            self.stats.completed += u64::from(completions == 1);
            self.stats.expired_excused += u64::from(completions == 0 && i.expired_excused);
            match (completions, i.done, i.expired_excused) {
                (1, _, _) => {}
                (0, true, true) => {}
                (0, true, false) => self.violation(format!(
                    "invariant 5 (eventually completed): {id} expired; no invocation completed it"
                )),
                (0, false, _) => self.violation(format!(
                    "invariant 5 (eventually completed): {id} still waits at the end of the run; its chain is lost"
                )),
                (n, _, _) => self.violation(format!(
                    "invariant 5 (exactly once): {id} was completed {n} times"
                )),
            }
        }
    }
}

/// How long heartbeats were blocked between `from` and `to` for an action of
/// HeartbeatTimeout `hbt`, and why, when that was long enough to excuse an
/// expiry (see [`Sim::excuse`]): Auto Scaling's faults of heartbeats, then the
/// action's own `excuses` (failed invocations, late deliveries).
fn heartbeats_blocked(
    faults: &[Fault],
    excuses: &[(Instant, Instant, &'static str)],
    hbt: Duration,
    from: Instant,
    to: Instant,
) -> (Duration, Option<String>) {
    let every = hbt / 3;
    let retry = Duration::from_secs(2);
    let mut blocked: Vec<(Instant, Instant, &'static str)> = faults
        .iter()
        .filter(|f| {
            f.service == "autoscaling"
                && f.operation
                    .is_none_or(|o| o == "RecordLifecycleActionHeartbeat")
        })
        .filter_map(|f| {
            let tail = match &f.kind {
                FaultKind::Error(_) => retry,
                FaultKind::Slow(d) | FaultKind::Timeout(d) => (*d).min(every) + retry,
                FaultKind::LostAnswer(_) => return None,
            };
            Some((f.from, f.until + tail, "Auto Scaling refused heartbeats"))
        })
        .chain(excuses.iter().copied())
        .filter_map(|(a, b, why)| {
            let (a, b) = (a.max(from), b.min(to));
            (b > a).then_some((a, b, why))
        })
        .collect();
    blocked.sort();
    let mut total = Duration::ZERO;
    let mut reach: Option<Instant> = None;
    let mut why: Vec<&str> = Vec::new();
    for (a, b, w) in blocked {
        let a = reach.map_or(a, |r| a.max(r));
        if b > a {
            total += b - a;
            if !why.contains(&w) {
                why.push(w);
            }
        }
        reach = Some(reach.map_or(b, |r| r.max(b)));
    }
    let excuse = (total + retry >= every * 2).then(|| {
        format!(
            "heartbeats blocked for {} s ({})",
            total.as_secs(),
            why.join(", ")
        )
    });
    (total, excuse)
}

/// Epoch milliseconds of a virtual instant (the simulated wall clock follows
/// tokio's from [`EPOCH0`] at the seed's start).
fn epoch_at(t: Instant) -> u64 {
    let now = Instant::now();
    if t <= now {
        epoch_ms() - (now - t).as_millis() as u64
    } else {
        epoch_ms() + (t - now).as_millis() as u64
    }
}

fn sns(message: &Value) -> Value {
    sns_on(HOOK_TOPIC, message)
}

/// `message` as SNS delivers it to a Lambda function from `topic`.
fn sns_on(topic: &str, message: &Value) -> Value {
    json!({"Records": [{
        "EventSource": "aws:sns", "EventVersion": "1.0",
        "EventSubscriptionArn": format!("{topic}:0b7c7a53-5a0f-4a2e-8f1e-1c1d2e3f4a5b"),
        "Sns": {
            "Type": "Notification", "MessageId": "a1b2c3d4-0000-4000-8000-000000000001",
            "TopicArn": topic, "Subject": "s", "Message": message.to_string(),
            "Timestamp": rfc3339(epoch_ms()), "SignatureVersion": "1", "Signature": "x",
            "SigningCertUrl": "https://sns.us-east-1.amazonaws.com/x.pem",
            "UnsubscribeUrl": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
            "MessageAttributes": {}
        }
    }]})
}

/// An `ECS Task State Change` event as EventBridge delivers it.
fn task_event(instance_id: &str, task: &str, last: &TaskStatus) -> Value {
    json!({
        "version": "0", "id": "3317b2af-7005-947d-b652-f55e762e571a",
        "detail-type": "ECS Task State Change", "source": "aws.ecs",
        "account": "123456789012", "time": rfc3339(epoch_ms()), "region": "us-east-1",
        "resources": [task],
        "detail": {
            "clusterArn": CLUSTER_ARN,
            "containerInstanceArn": format!("arn:aws:ecs:us-east-1:123456789012:container-instance/c1/{instance_id}"),
            "desiredStatus": "STOPPED", "lastStatus": last.as_str(),
            "taskArn": task, "version": 3
        }
    })
}

fn run_seed(seed: u64) -> SeedReport {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let report = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(async {
            simulated::start(EPOCH0, seed);
            Sim::new(seed).run().await
        })
    }));
    simulated::stop();
    report.unwrap_or_else(|p| SeedReport {
        violations: vec![format!(
            "the simulation itself panicked: {}",
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default()
        )],
        trace: Vec::new(),
        longest_gap: 0.0,
        longest_gap_at: String::new(),
        longest_clean_gap: 0.0,
        invocations: 0,
        virtual_secs: 0,
        stats: Stats::default(),
    })
}

fn seeds() -> std::ops::Range<u64> {
    match std::env::var("SIM_SEEDS") {
        Ok(s) => {
            let (a, b) = s
                .split_once("..")
                .unwrap_or_else(|| panic!("SIM_SEEDS={s}: expected a..b"));
            a.trim().parse().unwrap()..b.trim().parse().unwrap()
        }
        Err(_) => DEFAULT_SEEDS,
    }
}

#[test]
fn simulation() {
    let started = std::time::Instant::now();
    let seeds = seeds();
    let (mut violations, mut failed, mut n) = (0usize, Vec::new(), 0u64);
    let (mut longest, mut longest_seed, mut longest_at) = (0.0f64, 0, String::new());
    let mut stats = Stats::default();
    let mut clean = 0.0f64;
    let (mut invocations, mut virtual_secs) = (0usize, 0u64);
    let (mut launch_worlds, mut launch_stats) = (0u64, launch::LaunchStats::default());
    let (mut launch_secs, mut launch_gap) = (0.0f64, 0.0f64);
    for seed in seeds.clone() {
        n += 1;
        let mut r = run_seed(seed);
        if launch::plays(seed) {
            let t = std::time::Instant::now();
            let (l, s) = launch::run_seed(seed);
            launch_secs += t.elapsed().as_secs_f64();
            launch_gap = launch_gap.max(l.longest_gap);
            launch_worlds += 1;
            launch_stats.add(&s);
            r.absorb(l);
        }
        invocations += r.invocations;
        virtual_secs += r.virtual_secs;
        stats.add(&r.stats);
        clean = clean.max(r.longest_clean_gap);
        if r.longest_gap > longest {
            longest = r.longest_gap;
            longest_seed = seed;
            longest_at = r.longest_gap_at.clone();
        }
        if std::env::var_os("SIM_TRACE").is_some() {
            println!("seed {seed}:");
            for line in &r.trace {
                println!("    {line}");
            }
        }
        if r.violations.is_empty() {
            continue;
        }
        violations += r.violations.len();
        failed.push(seed);
        let mut out = String::new();
        let _ = writeln!(out, "seed {seed}: {} violation(s)", r.violations.len());
        for v in &r.violations {
            let _ = writeln!(out, "  {v}");
        }
        let _ = writeln!(
            out,
            "  replay: SIM_SEEDS={seed}..{} cargo test --workspace --test simulation -- --nocapture",
            seed + 1
        );
        let _ = writeln!(out, "  last events:");
        for line in &r.trace {
            let _ = writeln!(out, "    {line}");
        }
        println!("{out}");
    }
    println!(
        "simulation: {n} seeds, {violations} violations ({invocations} invocations, {:.1} virtual hours, {:.1} s)",
        virtual_secs as f64 / 3600.0,
        started.elapsed().as_secs_f64()
    );
    println!(
        "longest heartbeat gap: {longest:.3} of HeartbeatTimeout (seed {longest_seed}, {longest_at})"
    );
    println!(
        "longest heartbeat gap with nothing blocking heartbeats: {clean:.3} of HeartbeatTimeout"
    );
    println!("played: {stats:?}");
    println!(
        "launch worlds: {launch_worlds} ({launch_secs:.1} s, longest heartbeat gap {launch_gap:.3} of HeartbeatTimeout), played: {launch_stats:?}"
    );
    for (m, mode) in ["in-invocation", "queue"].iter().enumerate() {
        if stats.held_s[m] > 0.0 {
            println!(
                "WAIT_MODE {mode}: invocations ran {:.1} h for {:.1} h of held actions ({:.1} % billed), at most {} in flight in a seed",
                stats.busy_s[m] / 3600.0,
                stats.held_s[m] / 3600.0,
                100.0 * stats.busy_s[m] / stats.held_s[m],
                stats.max_in_flight[m]
            );
        }
    }
    assert!(failed.is_empty(), "seeds with violations: {failed:?}");
}
