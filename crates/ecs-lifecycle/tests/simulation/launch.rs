//! launch-verify in the simulation: one seed draws a few launches and their
//! fates (instances that join their cluster after a random delay, ones that
//! never join, ones that join after REGISTRATION_TIMEOUT_SECONDS, agents that
//! flap or connect late), the same schedule of faults and Lambda's ways as
//! the drain worlds (throttling, 5xx, slow and timed-out calls, lost answers,
//! invocations killed at any await point, async retries, late and duplicate
//! deliveries, both WAIT_MODEs), and the real `Verifier` runs against the
//! in-memory fleet under tokio's paused clock.
//!
//! Invariants, checked after every step:
//! 1. while Auto Scaling answers, no action expires (heartbeat gap <
//!    HeartbeatTimeout);
//! 2. at most one accepted completion per action, and eventually one (or an
//!    expiry the world forced);
//! 3. CONTINUE as "registered" only for an instance that was ACTIVE with its
//!    agent connected during the invocation that decided it; before
//!    REGISTRATION_TIMEOUT_SECONDS, CONTINUE only for an instance that has
//!    joined; an instance that joined in time and stayed joined is never
//!    called an orphan;
//! 4. ABANDON only with TERMINATE_ORPHANS=true, only for an instance that was
//!    not joined when observed, never before REGISTRATION_TIMEOUT_SECONDS,
//!    and with its reason logged (the `ORPHAN` WARN line, in the action's
//!    span, with the verdict's `why`: the world reads the WARN lines);
//!    with TERMINATE_ORPHANS=true an instance that never joined is never
//!    continued;
//! 5. no invocation panics or outlives its deadline; every error is named;
//! 6. eventually one chain per action: no action has more than one chain
//!    (continuations of one hop) for more than [`MULTI_CHAIN_HOPS`]
//!    consecutive hops, hops published while EC2 or Auto Scaling failed the
//!    reads and writes before and of the claim not counted; more than
//!    MAX_INVOCATIONS invocations is a storm, always a violation.
//!
//! Not played here: the diagnosis (SSM: the fake fleet has none, so
//! SSM_DOCUMENT_NAME is unset and an orphan's findings say so), warm pools
//! and the no-hook mode (`EC2 Instance Launch Successful`, whose refusal
//! terminates through the group, a call the fake fleet does not make).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use ecs_lifecycle::config::{Env, LaunchConfig};
use ecs_lifecycle::error::Error;
use ecs_lifecycle::hook::Handler;
use ecs_lifecycle::launch::Verifier;
use ecs_lifecycle::model::{ActionResult, InstanceStatus};
use ecs_lifecycle::report::Reporter;
use ecs_lifecycle::testing::fleet::{FakeFleet, Fault, FaultKind};
use ecs_lifecycle::time::{epoch_ms, rfc3339, simulated};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing_subscriber::layer::{Layer as _, SubscriberExt as _};

use super::{EPOCH0, Rng, SeedReport, Stats, TRACE, epoch_at, heartbeats_blocked, sns_on};

const HOOK_TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:ecs-lifecycle-launch";
const CONTINUE_TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:ecs-lifecycle-launch-continue";
/// A seed that has made this many invocations has run away: it stops there.
const MAX_INVOCATIONS: usize = 2000;
/// Invariant 6: an action may have more than one chain (continuations of one
/// hop) for at most this many consecutive hops: a duplicate delivery stops at
/// its next look, or its child does at the next hop.
const MULTI_CHAIN_HOPS: u64 = 3;

/// Whether seed `seed` plays a launch world too (a share of the seeds, drawn
/// from the seed apart from the drain world's draws, so those stay as they were).
pub(super) fn plays(seed: u64) -> bool {
    seed.wrapping_mul(0xA24B_AED4_963E_E407) >> 62 == 0
}

/// What becomes of a launched instance.
#[derive(Debug, Clone)]
enum Fate {
    /// Registers (ACTIVE, agent connected) this long after the launch.
    Joins(Duration),
    /// Never registers (a broken user data, a wrong cluster).
    Never,
    /// Registers, agent disconnected, and the agent connects later.
    AgentLate {
        registers: Duration,
        connects: Duration,
    },
    /// Registers, then its agent drops and comes back: (after the launch,
    /// connected) changes.
    Flaps {
        registers: Duration,
        changes: Vec<(Duration, bool)>,
    },
}

struct Machine {
    id: String,
    asg: String,
    heartbeat_timeout: Duration,
    global_timeout: Duration,
    launch_at: Duration,
    fate: Fate,
    /// When the action started (the launch).
    started: Option<Instant>,
    /// Joined (ACTIVE and agent connected) or not, from each instant on.
    timeline: Vec<(Instant, bool)>,
    last_mark: Option<Instant>,
    heartbeats_seen: usize,
    /// Its tags are full: its chains go on unclaimed (invariant 6 waived).
    unclaimed: bool,
    completions_seen: usize,
    done: bool,
    excuses: Vec<(Instant, Instant, &'static str)>,
    expired_excused: bool,
}

impl Machine {
    fn joined_at(&self, t: Instant) -> bool {
        self.timeline
            .iter()
            .rev()
            .find(|(at, _)| *at <= t)
            .is_some_and(|(_, j)| *j)
    }
    /// Joined at some moment of `from..=to`.
    fn joined_sometime(&self, from: Instant, to: Instant) -> bool {
        self.joined_at(from)
            || self
                .timeline
                .iter()
                .any(|(at, j)| *j && *at >= from && *at <= to)
    }
    /// First joined (the registration with the agent connected).
    fn first_joined(&self) -> Option<Instant> {
        self.timeline.iter().find(|(_, j)| *j).map(|(t, _)| *t)
    }
    /// Joined from `from` to `to` without a break.
    fn joined_throughout(&self, from: Instant, to: Instant) -> bool {
        self.joined_at(from)
            && !self
                .timeline
                .iter()
                .any(|(at, j)| !*j && *at > from && *at <= to)
    }
}

#[derive(Debug, Clone)]
struct Delivery {
    event: Value,
    instance: Option<usize>,
    lambda_try: u8,
    label: String,
}

enum Scheduled {
    Launch(usize),
    Register(usize, bool),
    Agent(usize, bool),
    Deliver(Delivery),
}

type Run = (
    Instant,
    Result<Result<ecs_lifecycle::hook::dispatch::Answer, Error>, tokio::time::error::Elapsed>,
);

struct Running {
    id: usize,
    delivery: Delivery,
    started: Instant,
    deadline: Instant,
    crash: bool,
    handle: JoinHandle<Run>,
}

type SimVerifier = Verifier<FakeFleet, FakeFleet, FakeFleet, FakeFleet, FakeFleet>;

/// The WARN and ERROR lines a launch world's invocations log (plain text,
/// with the action's span: `action{... instance_id=i-...}: ...`).
#[derive(Clone, Default)]
struct Logged(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Logged {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logged {
    /// Whether a line logged so far contains every one of `parts`.
    fn has_line(&self, parts: &[&str]) -> bool {
        let text = self.0.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&text)
            .lines()
            .any(|l| parts.iter().all(|p| l.contains(p)))
    }
}

/// What the launch worlds played, counted.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct LaunchStats {
    pub actions: u64,
    pub registered: u64,
    /// Orphans continued (TERMINATE_ORPHANS=false) and abandoned (true).
    pub orphans_kept: u64,
    pub orphans_abandoned: u64,
    pub expired_excused: u64,
    pub crashes: u64,
    pub errors: u64,
    pub retries: u64,
    pub hand_offs: u64,
    /// The most continuations one action's chains published for one hop: how
    /// far duplicate deliveries multiplied its chains before the claim
    /// stopped the extra ones.
    pub most_chains: u64,
    /// The most consecutive hops of one action with more than one chain (a
    /// duplicate that hands off before it sees the claim it lost); more than
    /// [`MULTI_CHAIN_HOPS`] is a violation.
    pub longest_multi_chain: u64,
    /// Actions whose instance had no room for the claim (it went on unclaimed).
    pub unclaimed: u64,
}

impl LaunchStats {
    pub(super) fn add(&mut self, o: &LaunchStats) {
        self.actions += o.actions;
        self.registered += o.registered;
        self.orphans_kept += o.orphans_kept;
        self.orphans_abandoned += o.orphans_abandoned;
        self.expired_excused += o.expired_excused;
        self.crashes += o.crashes;
        self.errors += o.errors;
        self.retries += o.retries;
        self.hand_offs += o.hand_offs;
        self.most_chains = self.most_chains.max(o.most_chains);
        self.longest_multi_chain = self.longest_multi_chain.max(o.longest_multi_chain);
        self.unclaimed += o.unclaimed;
    }
}

struct LaunchSim {
    rng: Rng,
    t0: Instant,
    fleet: FakeFleet,
    verifier: Arc<SimVerifier>,
    terminate_orphans: bool,
    queue_mode: bool,
    poll: Duration,
    registration_timeout: Duration,
    function_timeout: Duration,
    machines: Vec<Machine>,
    faults: Vec<Fault>,
    queue: Vec<(Instant, u64, Scheduled)>,
    seq: u64,
    running: Vec<Running>,
    next_invocation: usize,
    published_seen: usize,
    /// Continuations published per (instance, hop): more than one means as
    /// many chains.
    chains: HashMap<(usize, u64), u64>,
    /// (instance, hop) with a continuation published while EC2 failed the
    /// claim's reads or writes: no invocation could tell it was a duplicate.
    blind: HashSet<(usize, u64)>,
    /// Instances already found with too many chains (invariant 6 once each).
    multi_chain_found: Vec<usize>,
    logged: Logged,
    trace: VecDeque<String>,
    violations: Vec<String>,
    longest_gap: f64,
    longest_gap_at: String,
    longest_clean_gap: f64,
    invocations: usize,
    stats: LaunchStats,
    schedule_ends: Instant,
    full_trace: bool,
    live_trace: bool,
}

impl LaunchSim {
    fn new(seed: u64, logged: Logged) -> Self {
        // Its own stream of draws: the drain world of the same seed is unchanged.
        let mut rng = Rng(seed.wrapping_mul(0x9FB2_1C65_1E98_DF25) ^ 0x1A0C);
        let t0 = Instant::now();
        let poll_s = rng.pick(&[5u64, 10, 10, 15, 30]);
        let registration_s = rng.pick(&[60u64, 120, 300, 300, 600]);
        let terminate_orphans = rng.chance(50);
        let queue_mode = rng.chance(50);
        let function_timeout = Duration::from_secs(rng.pick(&[900u64, 300, 120, 60, 45]));
        let config = LaunchConfig::from_env(&Env::new(|k| match k {
            "WAIT_MODE" => Some(if queue_mode { "queue" } else { "in-invocation" }.to_owned()),
            "CLUSTER_NAME" => Some("c1".to_owned()),
            "POLL_INTERVAL_SECONDS" => Some(poll_s.to_string()),
            "CONTINUATION_TOPIC_ARN" => Some(CONTINUE_TOPIC.to_owned()),
            "REGISTRATION_TIMEOUT_SECONDS" => Some(registration_s.to_string()),
            "TERMINATE_ORPHANS" => Some(terminate_orphans.to_string()),
            _ => None,
        }))
        .unwrap();
        let fleet = FakeFleet::new();
        let (reporter, _kept) = Reporter::in_memory("launch-verify", None);
        let verifier = Arc::new(
            Verifier::new(
                fleet.clone(),
                fleet.clone(),
                fleet.clone(),
                fleet.clone(),
                fleet.clone(),
                config,
                "us-east-1",
            )
            .with_reporter(reporter),
        );
        let registration = Duration::from_secs(registration_s);
        let groups: Vec<u64> = (0..rng.range(1, 2))
            .map(|_| rng.pick(&[30u64, 45, 60, 90, 120, 300, 600, 3600]))
            .collect();
        let n = rng.range(1, 4) as usize;
        let mut machines = Vec::new();
        for k in 0..n {
            let g = (rng.next() % groups.len() as u64) as usize;
            let hbt = groups[g];
            let reg_ms = registration.as_millis() as u64;
            // Within the registration timeout (most), or after it.
            let in_time =
                |rng: &mut Rng| rng.millis(5_000, reg_ms.saturating_sub(2_000).max(5_000));
            let fate = match rng.range(0, 9) {
                0..=3 => Fate::Joins(in_time(&mut rng)),
                4 => Fate::Never,
                5 => Fate::Joins(registration + rng.secs(1, 300)),
                6 => {
                    let registers = in_time(&mut rng);
                    Fate::AgentLate {
                        registers,
                        connects: registers + rng.secs(1, 400),
                    }
                }
                _ => {
                    let registers = in_time(&mut rng);
                    let mut at = registers;
                    let mut changes = Vec::new();
                    for _ in 0..rng.range(1, 4) {
                        at += rng.secs(1, 120);
                        changes.push((at, false));
                        // Now and then the agent stays away.
                        if rng.chance(85) {
                            at += rng.secs(1, 90);
                            changes.push((at, true));
                        }
                    }
                    Fate::Flaps { registers, changes }
                }
            };
            machines.push(Machine {
                id: format!("i-{:017x}", seed.wrapping_mul(16) + 8 + k as u64),
                asg: format!("g{g}"),
                heartbeat_timeout: Duration::from_secs(hbt),
                global_timeout: Duration::from_secs((hbt * 100).min(172_800)),
                launch_at: rng.secs(0, 300),
                fate,
                started: None,
                timeline: Vec::new(),
                last_mark: None,
                heartbeats_seen: 0,
                unclaimed: false,
                completions_seen: 0,
                done: false,
                excuses: Vec::new(),
                expired_excused: false,
            });
        }
        let mut sim = LaunchSim {
            rng,
            t0,
            fleet,
            verifier,
            terminate_orphans,
            queue_mode,
            poll: Duration::from_secs(poll_s),
            registration_timeout: registration,
            function_timeout,
            machines,
            faults: Vec::new(),
            queue: Vec::new(),
            seq: 0,
            running: Vec::new(),
            next_invocation: 0,
            published_seen: 0,
            chains: HashMap::new(),
            blind: HashSet::new(),
            multi_chain_found: Vec::new(),
            logged,
            trace: VecDeque::new(),
            violations: Vec::new(),
            longest_gap: 0.0,
            longest_gap_at: String::new(),
            longest_clean_gap: 0.0,
            invocations: 0,
            stats: LaunchStats::default(),
            schedule_ends: t0,
            full_trace: std::env::var_os("SIM_TRACE").is_some(),
            live_trace: std::env::var("SIM_TRACE").is_ok_and(|v| v == "live"),
        };
        let fates: Vec<String> = sim
            .machines
            .iter()
            .map(|m| format!("{:?}", m.fate))
            .collect();
        sim.note(format!(
            "launch world: {n} launch(es), hooks {groups:?} s, poll {poll_s} s, REGISTRATION_TIMEOUT {registration_s} s, TERMINATE_ORPHANS {terminate_orphans}, WAIT_MODE {}, function timeout {} s, fates {fates:?}",
            if queue_mode { "queue" } else { "in-invocation" },
            function_timeout.as_secs()
        ));
        sim.draw_schedule();
        sim
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

    /// The launches, each instance's fate, and fault windows per API.
    fn draw_schedule(&mut self) {
        let t0 = self.t0;
        for k in 0..self.machines.len() {
            let launch = t0 + self.machines[k].launch_at;
            self.schedule(launch, Scheduled::Launch(k));
            match self.machines[k].fate.clone() {
                Fate::Joins(after) => self.schedule(launch + after, Scheduled::Register(k, true)),
                Fate::Never => {}
                Fate::AgentLate {
                    registers,
                    connects,
                } => {
                    self.schedule(launch + registers, Scheduled::Register(k, false));
                    self.schedule(launch + connects, Scheduled::Agent(k, true));
                }
                Fate::Flaps { registers, changes } => {
                    self.schedule(launch + registers, Scheduled::Register(k, true));
                    for (after, connected) in changes {
                        self.schedule(launch + after, Scheduled::Agent(k, connected));
                    }
                }
            }
        }
        let horizon = 900;
        let heavy = if self.rng.chance(15) { 3 } else { 1 };
        let ecs_ops = [
            None,
            Some("ListContainerInstances"),
            Some("DescribeContainerInstances"),
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
        for _ in 0..self.rng.range(0, 2) * heavy {
            let kind = self.draw_kind(&["RequestLimitExceeded", "InternalError"], false);
            let len = self.rng.secs(5, 120);
            self.fault("ec2", Some("DescribeInstances"), horizon, len, kind);
        }
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
        for _ in 0..self.rng.range(0, 2) * heavy {
            let kind = self.draw_kind(&["Throttling", "InternalError"], true);
            let len = if matches!(kind, FaultKind::LostAnswer(_)) {
                self.rng.secs(1, 5)
            } else {
                self.rng.secs(2, 60)
            };
            self.fault("sns", Some("Publish"), horizon, len, kind);
        }
        // The launch-chain claim: CreateTags throttled or failing, its answer
        // lost; DescribeInstances showing tags seconds behind the writes (EC2
        // is eventually consistent); now and then an instance whose 50 tags
        // leave no room (its chain goes on unclaimed).
        for _ in 0..self.rng.range(0, 2) * heavy {
            let kind = self.draw_kind(&["RequestLimitExceeded", "InternalError"], true);
            let len = self.rng.secs(2, 90);
            self.fault("ec2", Some("CreateTags"), horizon, len, kind);
        }
        // Under half the shortest poll interval drawn (5 s): two chains then
        // cannot each keep reading only their own writes (with a lag over half
        // the poll, their hops can lock in phase, each seeing the tag as it
        // stood at its own parent's write, until delivery jitter breaks it:
        // seed 2751 with a 5 s lag kept two chains for 8 hops).
        let lag = self.rng.pick(&[0u64, 0, 500, 1_000, 2_000]);
        self.fleet.set_tag_read_lag(Duration::from_millis(lag));
        if lag > 0 {
            self.note(format!("EC2: tags read {lag} ms behind their writes"));
        }
        for k in 0..self.machines.len() {
            if self.rng.chance(5) {
                let id = self.machines[k].id.clone();
                self.fleet.fill_tags(&id);
                self.machines[k].unclaimed = true;
                self.stats.unclaimed += 1;
                self.note(format!(
                    "EC2: {id} has 50 tags already (no room for the claim)"
                ));
            }
        }
        self.schedule_ends = self
            .faults
            .iter()
            .map(|f| f.until)
            .chain(self.queue.iter().map(|(t, ..)| *t))
            .max()
            .unwrap_or(t0);
    }

    fn draw_kind(&mut self, codes: &[&'static str], lost_ok: bool) -> FaultKind {
        match self.rng.range(0, if lost_ok { 4 } else { 3 }) {
            0 | 1 => FaultKind::Error(self.rng.pick(codes).into()),
            2 => {
                if self.rng.chance(30) {
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
        let m = &self.machines[k];
        let started = m.started.unwrap_or(self.t0);
        sns_on(
            HOOK_TOPIC,
            &json!({
                "Origin": "EC2", "Destination": "AutoScalingGroup",
                "LifecycleHookName": "verify", "AccountId": "123456789012", "RequestId": format!("r-l{k}"),
                "LifecycleTransition": "autoscaling:EC2_INSTANCE_LAUNCHING",
                "AutoScalingGroupName": m.asg, "Service": "AWS Auto Scaling",
                "Time": rfc3339(epoch_at(started)),
                "EC2InstanceId": m.id, "LifecycleActionToken": format!("token-l{k}")
            }),
        )
    }

    fn deliver_later(&mut self, at: Instant, d: Delivery) {
        self.schedule(at, Scheduled::Deliver(d));
    }

    /// Whether instance `k` is joined in the fleet now (ACTIVE, agent connected).
    fn joined_now(&self, k: usize) -> bool {
        self.fleet
            .container_instance(&self.machines[k].id)
            .is_some_and(|c| c.status == InstanceStatus::Active && c.agent_connected)
    }

    fn mark(&mut self, k: usize) {
        let joined = self.joined_now(k);
        let m = &mut self.machines[k];
        if m.timeline.last().is_none_or(|(_, j)| *j != joined) {
            m.timeline.push((Instant::now(), joined));
        }
    }

    async fn run(mut self) -> (SeedReport, LaunchStats) {
        let cap = self.schedule_ends
            + self.registration_timeout
            + self
                .machines
                .iter()
                .map(|m| m.heartbeat_timeout)
                .max()
                .unwrap_or_default()
                * 2
            + Duration::from_secs(900);
        loop {
            let now = Instant::now();
            if let Some(wake) = self.queue.iter().map(|(t, ..)| *t).min()
                && wake > now
            {
                // Wake for the next event, or to look at the running invocations.
                tokio::time::sleep_until(wake.min(now + Duration::from_secs(1))).await;
            } else if self.queue.is_empty() {
                tokio::time::sleep(Duration::from_secs(1)).await;
            } else {
                tokio::task::yield_now().await;
            }
            let now = Instant::now();
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
                    Scheduled::Launch(k) => self.launch(k),
                    Scheduled::Register(k, connected) => {
                        let id = self.machines[k].id.clone();
                        self.fleet.register(&id);
                        self.fleet.set_agent_connected(&id, connected);
                        self.note(format!(
                            "ECS: {id} registered ACTIVE, agent {}",
                            if connected {
                                "connected"
                            } else {
                                "disconnected"
                            }
                        ));
                        self.mark(k);
                    }
                    Scheduled::Agent(k, connected) => {
                        let id = self.machines[k].id.clone();
                        self.fleet.set_agent_connected(&id, connected);
                        self.note(format!(
                            "ECS: {id}'s agent {}",
                            if connected {
                                "reconnects"
                            } else {
                                "disconnects"
                            }
                        ));
                        self.mark(k);
                    }
                    Scheduled::Deliver(d) => self.invoke(d),
                }
                self.check();
            }
            self.reap().await;
            self.take_continuations();
            self.check();
            let settled = self.machines.iter().all(|m| m.done)
                && self.running.is_empty()
                && self
                    .queue
                    .iter()
                    .all(|(_, _, s)| !matches!(s, Scheduled::Deliver(_) | Scheduled::Launch(_)));
            if settled || now >= cap {
                break;
            }
            if self.invocations > MAX_INVOCATIONS {
                self.violation(format!(
                    "no hand-off storm: more than {MAX_INVOCATIONS} invocations (up to {} chains for one hop); the seed stops here",
                    self.stats.most_chains
                ));
                break;
            }
        }
        for r in std::mem::take(&mut self.running) {
            r.handle.abort();
        }
        self.finish();
        let report = SeedReport {
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
            stats: Stats::default(),
        };
        (report, self.stats)
    }

    fn launch(&mut self, k: usize) {
        let (id, asg, hbt) = {
            let m = &self.machines[k];
            (m.id.clone(), m.asg.clone(), m.heartbeat_timeout.as_secs())
        };
        self.fleet.launching(&id, &asg, hbt);
        let now = Instant::now();
        self.machines[k].started = Some(now);
        self.machines[k].last_mark = Some(now);
        self.mark(k);
        self.note(format!(
            "launch: {id} Pending:Wait ({asg}, HeartbeatTimeout {hbt} s)"
        ));
        let event = self.hook_event(k);
        let first = if self.rng.chance(3) {
            let at = now + self.rng.millis(5_000, 20_000);
            self.machines[k]
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
        let verifier = Arc::clone(&self.verifier);
        let event = d.event.clone();
        let handle = tokio::spawn(async move {
            let run = tokio::time::timeout(limit, verifier.handle(&event, deadline_ms)).await;
            (Instant::now(), run)
        });
        self.running.push(Running {
            id,
            delivery: d,
            started: now,
            deadline,
            crash,
            handle,
        });
    }

    /// Collects the invocations that ended, judges their verdicts, and plays
    /// Lambda's retries of the failed ones (about one, then two minutes later).
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
            let took = (ended - r.started).as_secs_f64();
            let failed = match run {
                Ok(Ok(Ok(answer))) => {
                    let v = answer.to_json();
                    let o = &v["outcomes"][0];
                    let outcome = o["outcome"].as_str().unwrap_or("?").to_owned();
                    self.note(format!(
                        "#{} ended after {took:.1} s: {outcome} {} {}",
                        r.id,
                        o["result"].as_str().unwrap_or(""),
                        o.get("verdict")
                            .or_else(|| o.get("reason"))
                            .map(Value::to_string)
                            .unwrap_or_default()
                    ));
                    if outcome == "handed_off" {
                        self.stats.hand_offs += 1;
                    }
                    if outcome == "completed"
                        && let Some(k) = r.delivery.instance
                    {
                        let o = o.clone();
                        self.judge_verdict(k, r.id, r.started, ended, &o);
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
                            "invariant 5 (named errors): invocation #{} ({}) returned an internal error: {e}",
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
                        "invariant 5 (deadline): invocation #{} ({}) was still running at its deadline ({} s) and was killed",
                        r.id,
                        r.delivery.label,
                        (r.deadline - r.started).as_secs()
                    ));
                    true
                }
                Err(e) => {
                    self.violation(format!(
                        "invariant 5 (no panic): invocation #{} ({}) panicked: {e}",
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
                    next.map(|s| ended + Duration::from_secs(s) + self.rng.millis(0, 5000));
                if let Some(k) = r.delivery.instance {
                    let until = retry_at.unwrap_or(ended + Duration::from_secs(86_400));
                    self.machines[k]
                        .excuses
                        .push((ended, until, "failed invocation"));
                }
                match retry_at {
                    Some(at) => {
                        self.stats.retries += 1;
                        let mut d = r.delivery.clone();
                        d.lambda_try += 1;
                        self.deliver_later(at, d);
                    }
                    None => self.note(format!(
                        "#{}: Lambda's retries are spent; the event goes to the dead-letter queue",
                        r.id
                    )),
                }
            }
        }
    }

    /// Invariants 3 and 4 on a verdict invocation `#n` (started at `started`)
    /// reported when it ended.
    fn judge_verdict(&mut self, k: usize, n: usize, started: Instant, ended: Instant, o: &Value) {
        let m = &self.machines[k];
        let id = m.id.clone();
        let launched = m.started.unwrap_or(self.t0);
        let global_half = m.global_timeout / 2;
        let joined_sometime = m.joined_sometime(started, ended);
        let joined_throughout = m.joined_throughout(started, ended);
        let (from, to) = (self.at(started), self.at(ended));
        let (from, to) = (from.trim(), to.trim());
        let result = o["result"].as_str().unwrap_or("");
        let verdict = &o["verdict"];
        let mut found = Vec::new();
        if verdict.get("Registered").is_some() {
            self.stats.registered += 1;
            if result != "CONTINUE" {
                found.push(format!(
                    "invariant 3: {id} registered but completed {result}"
                ));
            }
            if !joined_sometime {
                found.push(format!(
                    "invariant 3 (joined at the decision): invocation #{n} called {id} registered, but it was never ACTIVE with its agent connected between {from} and {to}"
                ));
            }
        } else if let Some(orphan) = verdict.get("Orphan") {
            let why = orphan["why"].as_str().unwrap_or("");
            if result == "ABANDON" {
                self.stats.orphans_abandoned += 1;
            } else {
                self.stats.orphans_kept += 1;
            }
            let want = if self.terminate_orphans {
                "ABANDON"
            } else {
                "CONTINUE"
            };
            if result != want {
                found.push(format!(
                    "invariant 4: orphan {id} completed {result}, TERMINATE_ORPHANS={} wants {want}",
                    self.terminate_orphans
                ));
            }
            if why.is_empty() {
                found.push(format!(
                    "invariant 4 (a reason): orphan {id} completed {result} with no reason: {o}"
                ));
            }
            let decision = if result == "ABANDON" {
                "decision=\"abandon\""
            } else {
                "decision=\"continue\""
            };
            let instance = format!("instance_id={id}");
            if !self
                .logged
                .has_line(&["WARN", "ORPHAN", decision, &instance, why])
            {
                found.push(format!(
                    "invariant 4 (logged): orphan {id} completed {result} without its ORPHAN WARN line naming why ({why})"
                ));
            }
            if joined_throughout {
                found.push(format!(
                    "invariant 3 (no false orphan): invocation #{n} called {id} an orphan ({why}), but it was ACTIVE with its agent connected from {from} to {to}"
                ));
            }
            if ended < launched + self.registration_timeout && ended < launched + global_half {
                found.push(format!(
                    "invariant 4 (in time): {id} was called an orphan at {to}, before REGISTRATION_TIMEOUT_SECONDS ran out"
                ));
            }
        } else {
            found.push(format!(
                "invariant 3: {id} completed with an unexpected verdict: {o}"
            ));
        }
        for v in found {
            self.violation(v);
        }
    }

    /// Delivers the continuations the function published (SNS -> Lambda, or
    /// the wait queue in WAIT_MODE=queue): within a second or two; now and
    /// then late, or twice.
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
            let k = self.machines.iter().position(|m| m.id == instance_id);
            let attempt = message["attempt"].as_u64().unwrap_or(0);
            if let Some(k) = k {
                let n = self.chains.entry((k, attempt)).or_default();
                *n += 1;
                self.stats.most_chains = self.stats.most_chains.max(*n);
                if self.claim_blind(at) {
                    self.blind.insert((k, attempt));
                }
                self.judge_chains(k, attempt);
            }
            let event = sns_on(CONTINUE_TOPIC, &message);
            let late = self.rng.chance(3);
            let mut delay = if late {
                self.rng.millis(5_000, 25_000)
            } else {
                self.rng.millis(50, 2_000)
            };
            if self.queue_mode && message["wait"] == "queue" {
                delay += self.poll;
            }
            if let Some(k) = k
                && late
            {
                self.machines[k]
                    .excuses
                    .push((at, at + delay, "late continuation"));
            }
            let d = Delivery {
                event,
                instance: k,
                lambda_try: 0,
                label: format!("continuation {instance_id} attempt {attempt}"),
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

    /// Whether a fault that fails the calls before or of the claim was on at
    /// `at`: EC2's DescribeInstances or CreateTags (the claim can be neither
    /// read nor written), or Auto Scaling's DescribeLifecycleHooks (the
    /// runtime reads the hook's timing before it looks at anything).
    fn claim_blind(&self, at: Instant) -> bool {
        self.faults.iter().any(|f| {
            let blinds = match f.service {
                "ec2" => f
                    .operation
                    .is_none_or(|o| o == "DescribeInstances" || o == "CreateTags"),
                "autoscaling" => f.operation.is_none_or(|o| o == "DescribeLifecycleHooks"),
                _ => false,
            };
            blinds && !matches!(f.kind, FaultKind::Slow(_)) && f.from <= at && at < f.until
        })
    }

    /// Invariant 6: eventually one chain per action. The run of consecutive
    /// hops around `attempt` that each had more than one continuation, not
    /// counting the hops published while EC2 failed the claim (the duplicates
    /// must stop within [`MULTI_CHAIN_HOPS`] hops once it answers again).
    fn judge_chains(&mut self, k: usize, attempt: u64) {
        let multi = |h: u64| self.chains.get(&(k, h)).is_some_and(|n| *n > 1);
        if !multi(attempt) {
            return;
        }
        let before = (1..=attempt).take_while(|d| multi(attempt - d)).count() as u64;
        let after = (1..).take_while(|d| multi(attempt + d)).count() as u64;
        let first = attempt - before;
        let run = (first..=attempt + after)
            .filter(|h| !self.blind.contains(&(k, *h)))
            .count() as u64;
        self.stats.longest_multi_chain = self.stats.longest_multi_chain.max(run);
        if run > MULTI_CHAIN_HOPS
            && !self.machines[k].unclaimed
            && !self.multi_chain_found.contains(&k)
        {
            self.multi_chain_found.push(k);
            let id = self.machines[k].id.clone();
            self.violation(format!(
                "invariant 6 (one chain): launch {id} had more than one chain for {run} consecutive hops (to hop {})",
                attempt + after
            ));
        }
    }

    /// Invariants 1 to 4 on what Auto Scaling saw so far.
    fn check(&mut self) {
        for k in 0..self.machines.len() {
            if self.machines[k].started.is_none() || self.machines[k].done {
                continue;
            }
            let id = self.machines[k].id.clone();
            let beats = self.fleet.heartbeats(&id);
            for b in beats
                .iter()
                .skip(self.machines[k].heartbeats_seen)
                .copied()
                .collect::<Vec<_>>()
            {
                self.machines[k].heartbeats_seen += 1;
                self.close_gap(k, b, "heartbeat");
            }
            let completions = self.fleet.completions(&id);
            for (result, at) in completions
                .iter()
                .skip(self.machines[k].completions_seen)
                .copied()
                .collect::<Vec<_>>()
            {
                self.machines[k].completions_seen += 1;
                self.judge_completion(k, result, at);
            }
            if completions.len() > 1 {
                self.violation(format!(
                    "invariant 2 (exactly once): {id} was completed {} times",
                    completions.len()
                ));
            }
            if !completions.is_empty() {
                self.machines[k].done = true;
                continue;
            }
            if let Some(at) = self.fleet.expired_at(&id) {
                self.note(format!("Auto Scaling: {id} EXPIRED"));
                let excused = self.close_gap(k, at, "expiry");
                self.machines[k].expired_excused = excused;
                self.machines[k].done = true;
            }
        }
    }

    /// Invariants 3 and 4 from Auto Scaling's side alone (every completion,
    /// whether or not its invocation lived to report it).
    fn judge_completion(&mut self, k: usize, result: ActionResult, at: Instant) {
        self.note(format!(
            "Auto Scaling: {} completed {result:?}",
            self.machines[k].id
        ));
        self.close_gap(k, at, "completion");
        let m = &self.machines[k];
        let id = m.id.clone();
        let launched = m.started.unwrap_or(self.t0);
        let registration_over =
            at >= launched + self.registration_timeout || at >= launched + m.global_timeout / 2;
        let ever_joined = m.joined_sometime(launched, at);
        let joined_in_time_and_stayed = m.first_joined().is_some_and(|j| {
            j + self.poll < launched + self.registration_timeout && m.joined_throughout(j, at)
        });
        match result {
            ActionResult::Abandon => {
                if !self.terminate_orphans {
                    self.violation(format!(
                        "invariant 4: {id} completed ABANDON with TERMINATE_ORPHANS=false"
                    ));
                }
                if !registration_over {
                    self.violation(format!(
                        "invariant 4 (in time): {id} completed ABANDON at {}, before REGISTRATION_TIMEOUT_SECONDS ran out",
                        self.at(at).trim()
                    ));
                }
                if joined_in_time_and_stayed {
                    self.violation(format!(
                        "invariant 3 (no false orphan): {id} completed ABANDON at {} though it joined in time and stayed joined",
                        self.at(at).trim()
                    ));
                }
            }
            ActionResult::Continue => {
                if !registration_over && !ever_joined {
                    self.violation(format!(
                        "invariant 3 (joined): {id} completed CONTINUE at {}, before REGISTRATION_TIMEOUT_SECONDS ran out, and it never joined",
                        self.at(at).trim()
                    ));
                }
                if self.terminate_orphans && !ever_joined {
                    self.violation(format!(
                        "invariant 4: {id} never joined, yet completed CONTINUE with TERMINATE_ORPHANS=true"
                    ));
                }
            }
        }
    }

    /// Closes the gap of instance `k` at `at`; returns whether a gap as long
    /// as HeartbeatTimeout was excused by the world.
    fn close_gap(&mut self, k: usize, at: Instant, by: &str) -> bool {
        let m = &self.machines[k];
        let Some(from) = m.last_mark else {
            return false;
        };
        let gap = at.saturating_duration_since(from);
        let hbt = m.heartbeat_timeout;
        let fraction = gap.as_secs_f64() / hbt.as_secs_f64();
        let (blocked, excuse) = heartbeats_blocked(&self.faults, &m.excuses, hbt, from, at);
        self.machines[k].last_mark = Some(at);
        if blocked.is_zero() {
            self.longest_clean_gap = self.longest_clean_gap.max(fraction);
        }
        if excuse.is_some() {
            return gap >= hbt;
        }
        if fraction > self.longest_gap {
            self.longest_gap = fraction;
            self.longest_gap_at = format!(
                "launch {}: {:.1} s from {} to the {by} at {} (HeartbeatTimeout {} s)",
                self.machines[k].id,
                gap.as_secs_f64(),
                self.at(from).trim(),
                self.at(at).trim(),
                hbt.as_secs()
            );
        }
        if gap >= hbt {
            let id = self.machines[k].id.clone();
            self.violation(format!(
                "invariant 1 (no expiry): launch {id}: {:.1} s from {} to the {by} at {} without a heartbeat (HeartbeatTimeout {} s)",
                gap.as_secs_f64(),
                self.at(from).trim(),
                self.at(at).trim(),
                hbt.as_secs()
            ));
        }
        false
    }

    /// Invariant 2: every action completed exactly once (or expired while the
    /// world kept it from being held).
    fn finish(&mut self) {
        self.check();
        for k in 0..self.machines.len() {
            let m = &self.machines[k];
            if m.started.is_none() {
                continue;
            }
            let id = m.id.clone();
            let completions = self.fleet.completions(&id).len();
            self.stats.actions += 1;
            self.stats.expired_excused += u64::from(completions == 0 && m.expired_excused);
            match (completions, m.done, m.expired_excused) {
                (1, _, _) | (0, true, true) => {}
                (0, true, false) => self.violation(format!(
                    "invariant 2 (eventually completed): launch {id} expired; no invocation completed it"
                )),
                (0, false, _) => self.violation(format!(
                    "invariant 2 (eventually completed): launch {id} still waits at the end of the run; its chain is lost"
                )),
                _ => {}
            }
        }
    }
}

impl SeedReport {
    /// Adds what the same seed's launch world found to the drain world's report.
    pub(super) fn absorb(&mut self, launch: SeedReport) {
        if !launch.violations.is_empty() || std::env::var_os("SIM_TRACE").is_some() {
            self.trace.push("--- the launch world:".into());
            self.trace.extend(launch.trace);
        }
        self.violations.extend(
            launch
                .violations
                .into_iter()
                .map(|v| format!("launch world: {v}")),
        );
        if launch.longest_gap > self.longest_gap {
            self.longest_gap = launch.longest_gap;
            self.longest_gap_at = launch.longest_gap_at;
        }
        self.longest_clean_gap = self.longest_clean_gap.max(launch.longest_clean_gap);
        self.invocations += launch.invocations;
        self.virtual_secs += launch.virtual_secs;
    }
}

/// Runs seed `seed`'s launch world.
pub(super) fn run_seed(seed: u64) -> (SeedReport, LaunchStats) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let report = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let logged = Logged::default();
        let writer = logged.clone();
        // Spans (INFO) for the action's fields on each line; events from WARN.
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_writer(move || writer.clone())
                .with_filter(tracing_subscriber::filter::filter_fn(|m| {
                    m.is_span() || *m.level() <= tracing::Level::WARN
                })),
        );
        // The runtime is this thread's: every invocation logs through it.
        let _logging = tracing::subscriber::set_default(subscriber);
        rt.block_on(async {
            simulated::start(EPOCH0, seed ^ 0x1A0C);
            LaunchSim::new(seed, logged).run().await
        })
    }));
    simulated::stop();
    report.unwrap_or_else(|p| {
        (
            SeedReport {
                violations: vec![format!(
                    "the launch simulation itself panicked: {}",
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
            },
            LaunchStats::default(),
        )
    })
}
