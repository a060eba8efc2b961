//! Load benchmark of the `terminate-drain` binary (not a test; CI does not run it):
//! many instances of one cluster draining at once against a stand-in whose ECS
//! answers through one account-wide token bucket, in either wait mode of the
//! function. `scripts/load.sh` builds the release binaries and runs it; the Markdown
//! report goes to stdout, progress to stderr. docs/benchmarks.md ("Concurrent drains
//! under ECS throttling", "Fleet-scale drains against the stand-in (issue 20)") says
//! what it measures and what the figures mean.
//!
//! What the stand-in plays (tests/standin/standin/): Auto Scaling's lifecycle actions
//! with their heartbeat timeout enforced by the clock (an action not heartbeated for
//! HeartbeatTimeout expires, as on AWS); ECS's throttling (`/_standin/throttle`: a
//! bucket of LOAD_BURST calls refilled at LOAD_RATE calls/s for every ECS call of
//! every process; over budget, ThrottlingException); ECS's scheduler on DRAINING
//! instances (kept off for the first LOAD_STUCK_S seconds, so every drain holds its
//! action that long, then stepping every LOAD_SCHEDULER_MS); Lambda's Runtime API
//! and SNS delivery (hook notifications and continuations, each invocation to
//! whichever function process is free, so the number of processes bounds the
//! invocations in flight); with LOAD_WAIT_MODE=queue, the template's wait queue
//! (SNS -> SQS with DelaySeconds = the poll interval -> the event source mapping:
//! the continuations marked `"wait": "queue"` come back a poll interval later as an
//! SQS event of one record); with LOAD_EVENTS=on, EventBridge's task-stopped rule
//! (`/_standin/ecs/events`: each task of the cluster reaching STOPPED invokes the
//! function with its `ECS Task State Change` event LOAD_EVENT_DELAY_MS later,
//! default 500). Not played: the Container Instance State Change rule, the event
//! source mapping's batching (BatchSize 100 in the template) and its polling
//! latency.
//!
//! Per scenario (LOAD_SIZES, default "10,50" drains): a fresh stand-in, a cluster of
//! the drained instances plus spares for the service replacements; on each drained
//! instance (LOAD_TASKS) `mixed`: 2 replica-service tasks, 1 daemon task and 1
//! standalone task (STANDALONE_TASKS=stop), or `one`: 1 replica-service task; all
//! actions started at once. LOAD_WAIT_MODE (`in-invocation`, the default, or
//! `queue`) is the function's WAIT_MODE; LOAD_FUNCTIONS function processes (default:
//! one per drain in-invocation, two with events, as each drain holds one; the
//! template's WaitConcurrency of 10 in the queue)
//! with POLL_INTERVAL_SECONDS = LOAD_POLL_S (default 1 in-invocation, 10 in the
//! queue: the template's PollIntervalSeconds; 30 with LOAD_EVENTS=on: its
//! DrainPollIntervalSeconds) and invocations of LOAD_INVOCATION_MS;
//! the hook's HeartbeatTimeout is LOAD_HEARTBEAT_S (default 30 in-invocation, 120 in
//! the queue: the template's minimum, and the queue is only used while the poll
//! plus 10 s fits in a third of it).
//!
//! Figures: ECS calls per second and per drain demanded (every call that reached the
//! stand-in, SDK retries included) and granted (answered by moto), throttled calls,
//! function errors and timeouts, lag from the last task on an instance reaching
//! STOPPED to its CompleteLifecycleAction (median / max), heartbeat gaps (the longest
//! an action went without its heartbeat clock restarting), expiries, completions
//! (once, more than once, before the tasks stopped), the back-offs the functions
//! logged and how far they stretched their poll, peak memory; and Lambda's side:
//! invocations (by source), the most in flight at once, the longest an invocation
//! waited for a free process, billed duration (the invocations' durations, each
//! attributed to the drain whose instance its event names) as a share of the
//! drain's length, and what the run's invocations cost at arm64 128 MB.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use devtools::{loadavg, max, median, seed_tasks, vm_kb};
use serde_json::Value;
use testkit::{Fleet, FleetSpec, LocalFunction, Result, Standin, ThrottleReport};

const TERMINATING: &str = "autoscaling:EC2_INSTANCE_TERMINATING";

/// Lambda's arm64 price per GB-second and per request (us-east-1).
const ARM64_USD_PER_GB_S: f64 = 0.000_013_333_4;
const USD_PER_REQUEST: f64 = 0.20 / 1_000_000.0;
/// The memory the template gives terminate-drain, in GB.
const MEMORY_GB: f64 = 128.0 / 1024.0;
/// How long a continuation may wait in the queue beyond the poll interval and
/// still be delivered before the beat falls due (the runtime's hand-off slack).
const QUEUE_SLACK_S: u64 = 10;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("load benchmark failed: {e}");
        std::process::exit(1);
    }
}

/// Where the function waits between two looks (its `WAIT_MODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WaitMode {
    InInvocation,
    Queue,
}

impl WaitMode {
    fn as_str(self) -> &'static str {
        match self {
            WaitMode::InInvocation => "in-invocation",
            WaitMode::Queue => "queue",
        }
    }
}

impl std::str::FromStr for WaitMode {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "in-invocation" => Ok(WaitMode::InInvocation),
            "queue" => Ok(WaitMode::Queue),
            _ => Err("expected in-invocation or queue".into()),
        }
    }
}

/// The tasks on each drained instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tasks {
    /// 2 replica-service tasks, 1 daemon task, 1 standalone task.
    Mixed,
    /// 1 replica-service task.
    One,
}

impl Tasks {
    fn describe(self) -> &'static str {
        match self {
            Tasks::Mixed => "2 service tasks, 1 daemon, 1 standalone task",
            Tasks::One => "1 service task",
        }
    }
}

impl std::str::FromStr for Tasks {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "mixed" => Ok(Tasks::Mixed),
            "one" => Ok(Tasks::One),
            _ => Err("expected mixed or one".into()),
        }
    }
}

/// One scenario's settings (from the environment).
#[derive(Debug, Clone)]
struct Scenario {
    drains: usize,
    wait_mode: WaitMode,
    /// Function processes: the most invocations in flight at once.
    functions: usize,
    tasks: Tasks,
    /// ECS's task-stopped events delivered to the function (EventBridge played),
    /// this long after the task stopped; `None`: no events.
    event_delay_ms: Option<u64>,
    rate_per_s: f64,
    burst: u32,
    poll_s: u64,
    heartbeat_timeout_s: i32,
    invocation_ms: u64,
    stuck_s: u64,
    scheduler_ms: u64,
}

/// What one scenario measured.
#[derive(Debug)]
struct Measured {
    sc: Scenario,
    spares: usize,
    setup_s: f64,
    /// Actions started -> the last one ended.
    elapsed_s: f64,
    completed_once: usize,
    expired: usize,
    still_active: usize,
    completed_more_than_once: usize,
    /// Completed before the instance's last task reached STOPPED.
    early: usize,
    invocations: usize,
    function_errors: usize,
    timeouts: usize,
    throttle: ThrottleReport,
    lags_s: Vec<f64>,
    drains_s: Vec<f64>,
    gaps_s: Vec<f64>,
    heartbeats: usize,
    back_offs: usize,
    handed_off_on_failure: usize,
    max_poll_ms: u64,
    hwm_kb: Vec<u64>,
    lambda: LambdaFigures,
}

/// What the run's invocations cost and how they overlapped.
#[derive(Debug, Default)]
struct LambdaFigures {
    /// Invocations by source (`sns`, `sqs`, ...).
    by_source: BTreeMap<String, usize>,
    /// The most invocations running at the same moment.
    max_in_flight: usize,
    /// The longest an invocation was queued before a process took it (s).
    max_queued_s: f64,
    /// Per drain: (billed seconds, billed seconds / the drain's length).
    billed: Vec<(f64, f64)>,
    /// Every invocation's duration, rounded up to the millisecond as Lambda
    /// bills it, in seconds.
    billed_total_s: f64,
    /// Invocations whose event names none of the drained instances.
    unattributed: usize,
}

impl LambdaFigures {
    fn gb_s(&self) -> f64 {
        self.billed_total_s * MEMORY_GB
    }

    /// The run's invocations at arm64 128 MB: duration and requests.
    fn cost_usd(&self) -> f64 {
        let invocations: usize = self.by_source.values().sum();
        self.gb_s() * ARM64_USD_PER_GB_S + invocations as f64 * USD_PER_REQUEST
    }

    /// Billed seconds of all drains over the length of all drains.
    fn overall_share(&self, drains_s: &[f64]) -> f64 {
        let billed: f64 = self.billed.iter().map(|b| b.0).sum();
        billed / drains_s.iter().sum::<f64>()
    }
}

/// `name` from the environment, `default` when unset; a value that does not
/// parse is an error naming the variable.
fn env_or<T>(name: &str, default: T) -> Result<T>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    match std::env::var(name) {
        Err(std::env::VarError::NotPresent) => Ok(default),
        Err(e) => Err(format!("{name}: {e}")),
        Ok(v) => v
            .trim()
            .parse()
            .map_err(|e| format!("{name}={v:?} is not valid: {e}")),
    }
}

fn progress(t0: Instant, what: &str) {
    eprintln!("[load {:>6.1}s] {what}", t0.elapsed().as_secs_f64());
}

async fn run() -> Result<()> {
    let t0 = Instant::now();
    let sizes: Vec<usize> = env_or("LOAD_SIZES", "10,50".to_owned())?
        .split(',')
        .map(|s| match s.trim().parse() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!(
                "LOAD_SIZES: {s:?} is not a number of drains (a comma-separated list of positive integers)"
            )),
        })
        .collect::<Result<_>>()?;
    let binary = testkit::binary("terminate-drain")?;
    let release = binary.components().any(|c| c.as_os_str() == "release");
    if !release {
        eprintln!(
            "warning: {} is not a release build; run scripts/load.sh",
            binary.display()
        );
    }
    let load_before = loadavg();
    let mut runs = Vec::new();
    for drains in sizes {
        let sc = scenario(drains)?;
        runs.push(measure(t0, &binary, sc).await?);
    }
    let load_after = loadavg();
    print!(
        "{}",
        report(
            &runs,
            &binary,
            release,
            &format!("{load_before} before, {load_after} after")
        )
    );
    Ok(())
}

/// The settings of a scenario of `drains` drains, from the environment.
fn scenario(drains: usize) -> Result<Scenario> {
    let wait_mode = env_or("LOAD_WAIT_MODE", WaitMode::InInvocation)?;
    let queue = wait_mode == WaitMode::Queue;
    let events = match env_or("LOAD_EVENTS", "off".to_owned())?.as_str() {
        "on" => true,
        "off" => false,
        other => {
            return Err(format!(
                "LOAD_EVENTS={other:?} is not valid: expected on or off"
            ));
        }
    };
    // The template's poll: DrainPollIntervalSeconds (30) with ECS's events,
    // PollIntervalSeconds (10) without; the in-invocation harness's historic 1 s.
    let default_poll = match (queue, events) {
        (_, true) => 30,
        (true, false) => 10,
        (false, false) => 1,
    };
    let sc = Scenario {
        drains,
        wait_mode,
        // In-invocation, each drain holds a process for its whole length; its
        // ECS events need others (Lambda scales async invocations out).
        functions: env_or(
            "LOAD_FUNCTIONS",
            match (queue, events) {
                (true, _) => drains.min(10),
                (false, false) => drains,
                (false, true) => 2 * drains,
            },
        )?,
        tasks: env_or("LOAD_TASKS", Tasks::Mixed)?,
        event_delay_ms: events
            .then(|| env_or("LOAD_EVENT_DELAY_MS", 500))
            .transpose()?,
        rate_per_s: env_or("LOAD_RATE", 4.0)?,
        burst: env_or("LOAD_BURST", 10)?,
        poll_s: env_or("LOAD_POLL_S", default_poll)?,
        heartbeat_timeout_s: env_or("LOAD_HEARTBEAT_S", if queue { 120 } else { 30 })?,
        invocation_ms: env_or("LOAD_INVOCATION_MS", 60_000)?,
        stuck_s: env_or("LOAD_STUCK_S", 35)?,
        scheduler_ms: env_or("LOAD_SCHEDULER_MS", 1000)?,
    };
    if sc.functions == 0 {
        return Err("LOAD_FUNCTIONS must be at least 1".into());
    }
    if !sc.rate_per_s.is_finite() || sc.rate_per_s <= 0.0 {
        return Err(format!("LOAD_RATE={} must be above 0", sc.rate_per_s));
    }
    if !(1..=300).contains(&sc.poll_s) {
        return Err(format!(
            "LOAD_POLL_S={} is outside POLL_INTERVAL_SECONDS' 1-300",
            sc.poll_s
        ));
    }
    if !(30..=7200).contains(&sc.heartbeat_timeout_s) {
        return Err(format!(
            "LOAD_HEARTBEAT_S={} is outside HeartbeatTimeout's 30-7200",
            sc.heartbeat_timeout_s
        ));
    }
    // terminate-drain waits in the invocation, whatever WAIT_MODE says, unless
    // the queue's delivery (poll + slack) fits in a heartbeat period: such a run
    // would not measure the queue.
    let beat_s = u64::try_from(sc.heartbeat_timeout_s / 3).unwrap_or(0);
    if queue && beat_s < sc.poll_s + QUEUE_SLACK_S {
        return Err(format!(
            "LOAD_WAIT_MODE=queue with LOAD_POLL_S={} and LOAD_HEARTBEAT_S={}: the function only \
             waits in the queue while the poll + {QUEUE_SLACK_S} s fits in a third of \
             HeartbeatTimeout ({beat_s} s here); raise LOAD_HEARTBEAT_S or lower LOAD_POLL_S",
            sc.poll_s, sc.heartbeat_timeout_s
        ));
    }
    Ok(sc)
}

async fn measure(t0: Instant, binary: &Path, sc: Scenario) -> Result<Measured> {
    let n = sc.drains;
    progress(t0, &format!("{n} drains: starting the stand-in"));
    let t_setup = Instant::now();
    let s = Standin::start()?;
    let sdk = s.sdk_config().await;
    // Spares take the service replacements (2 a drained instance).
    let spares = (n / 5).max(2);
    let fleet = Fleet::create(
        &sdk,
        &FleetSpec {
            heartbeat_timeout: sc.heartbeat_timeout_s,
            ..FleetSpec::new(&format!("load{n}"), i32::try_from(n + spares).unwrap_or(0))
        },
    )
    .await?;
    let web = fleet.create_service("web", false, 2 * n).await?;
    let agent = fleet.create_service("agent", true, 0).await?;
    let batch = fleet.standalone_family("batch").await?;
    for i in 0..n + spares {
        match sc.tasks {
            Tasks::Mixed => {
                seed_tasks(&s, &fleet, i, &agent, 1)?;
                if i < n {
                    seed_tasks(&s, &fleet, i, &web, 2)?;
                    seed_tasks(&s, &fleet, i, &batch, 1)?;
                }
            }
            Tasks::One if i < n => seed_tasks(&s, &fleet, i, &web, 1)?,
            Tasks::One => {}
        }
    }
    s.enforce_heartbeats(true)?;
    let logs: Vec<PathBuf> = (0..sc.functions)
        .map(|i| {
            std::env::temp_dir().join(format!(
                "ecs-lifecycle-load-{}-{n}-{i}.log",
                std::process::id()
            ))
        })
        .collect();
    let env = [
        ("CLUSTER_NAME", fleet.cluster.as_str()),
        ("POLL_INTERVAL_SECONDS", &sc.poll_s.to_string()),
        ("CONTINUATION_TOPIC_ARN", fleet.topic_arn.as_str()),
        ("STANDALONE_TASKS", "stop"),
        ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
        ("WAIT_MODE", sc.wait_mode.as_str()),
    ]
    .map(|(k, v)| (k, v.to_owned()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut functions = Vec::new();
    for log in &logs {
        let _ = std::fs::remove_file(log);
        functions.push(LocalFunction::start_logging_to(
            &s,
            binary,
            "terminate-drain",
            &env,
            log,
        )?);
    }
    match sc.wait_mode {
        WaitMode::InInvocation => s.subscribe_function(&fleet.topic_arn, sc.invocation_ms)?,
        // The template's wait queue: DelaySeconds = POLL_INTERVAL_SECONDS.
        WaitMode::Queue => s.subscribe_function_with_wait_queue(
            &fleet.topic_arn,
            sc.invocation_ms,
            sc.poll_s * 1000,
        )?,
    };
    if let Some(delay_ms) = sc.event_delay_ms {
        s.ecs_task_events(&fleet.cluster, sc.invocation_ms, delay_ms)?;
    }
    s.throttle("ecs:*", sc.rate_per_s, sc.burst)?;
    s.reset_calls()?;
    let setup_s = t_setup.elapsed().as_secs_f64();
    progress(
        t0,
        &format!(
            "{n} drains ({}, {} function processes): fleet of {} ready in {setup_s:.1} s; starting every action at once",
            sc.wait_mode.as_str(),
            sc.functions,
            n + spares
        ),
    );

    let started = Instant::now();
    for id in &fleet.instance_ids[..n] {
        s.start_lifecycle_action(&fleet.asg, &fleet.hook, id, TERMINATING)?;
    }
    tokio::time::sleep(Duration::from_secs(sc.stuck_s).saturating_sub(started.elapsed())).await;
    progress(t0, &format!("{n} drains: the scheduler stand-in starts"));
    s.ecs_auto(sc.scheduler_ms)?;
    let mut last_report = Instant::now();
    let actions = s
        .wait_for(Duration::from_secs(900), |s| {
            let actions = s.lifecycle_actions()?;
            let left = actions.iter().filter(|a| a["state"] == "active").count();
            if last_report.elapsed() > Duration::from_secs(15) {
                last_report = Instant::now();
                progress(t0, &format!("{n} drains: {left} actions still held"));
            }
            Ok((left == 0).then_some(actions))
        })
        .await?;
    let elapsed_s = started.elapsed().as_secs_f64();
    s.ecs_auto(0)?;
    let throttle = s
        .throttle_report()?
        .into_iter()
        .next()
        .ok_or("no throttle report")?;
    s.clear_throttle()?;
    progress(
        t0,
        &format!("{n} drains: every action ended after {elapsed_s:.1} s"),
    );
    let invocations = s
        .ended_invocations(Duration::from_millis(sc.invocation_ms + 15_000))
        .await?;
    let mut hwm_kb = Vec::new();
    for f in &functions {
        hwm_kb.push(vm_kb(f.pid(), "VmHWM").unwrap_or(0));
    }
    drop(functions);

    let mut m = Measured {
        sc: sc.clone(),
        spares,
        setup_s,
        elapsed_s,
        completed_once: 0,
        expired: 0,
        still_active: 0,
        completed_more_than_once: 0,
        early: 0,
        invocations: invocations.len(),
        function_errors: invocations
            .iter()
            .filter(|i| i["status"] == "error")
            .count(),
        timeouts: invocations
            .iter()
            .filter(|i| i["status"] == "timeout")
            .count(),
        throttle,
        lags_s: Vec::new(),
        drains_s: Vec::new(),
        gaps_s: Vec::new(),
        heartbeats: 0,
        back_offs: 0,
        handed_off_on_failure: 0,
        max_poll_ms: 0,
        hwm_kb,
        lambda: LambdaFigures::default(),
    };
    for (i, id) in fleet.instance_ids[..n].iter().enumerate() {
        let action = actions
            .iter()
            .find(|a| a["instance_id"] == id.as_str())
            .ok_or_else(|| format!("no action for {id}"))?;
        match action["state"].as_str() {
            Some("completed") => {
                if action["complete_calls"] == 1 {
                    m.completed_once += 1;
                } else {
                    m.completed_more_than_once += 1;
                }
            }
            Some("expired") => m.expired += 1,
            _ => m.still_active += 1,
        }
        m.heartbeats += action["heartbeats"].as_array().map_or(0, Vec::len);
        m.gaps_s.push(max_heartbeat_gap(action));
        let tasks = fleet.tasks_on(i).await?;
        let last_stop = tasks
            .iter()
            .filter_map(|t| t.stopped_at)
            .fold(f64::NAN, f64::max);
        let all_stopped = tasks.iter().all(|t| t.last_status == "STOPPED");
        if let (Some(completed), Some(start), true) = (
            action["completed_at"].as_f64(),
            action["started_at"].as_f64(),
            action["state"] == "completed",
        ) {
            if !all_stopped || completed < last_stop {
                m.early += 1;
            }
            m.lags_s.push(completed - last_stop);
            m.drains_s.push(completed - start);
        }
    }
    let drained: Vec<(&str, &str)> = fleet.instance_ids[..n]
        .iter()
        .zip(&fleet.container_instances)
        .map(|(id, ci)| (id.as_str(), ci.as_str()))
        .collect();
    m.lambda = lambda_figures(&invocations, &drained, &actions)?;
    // A run that broke an invariant keeps what explains it: the functions' logs,
    // and the actions and invocations as the stand-in recorded them.
    let anomalies = m.completed_more_than_once
        + m.expired
        + m.still_active
        + m.early
        + m.function_errors
        + m.timeouts;
    for log in &logs {
        let (back_offs, handed, poll_ms) = read_log(log);
        m.back_offs += back_offs;
        m.handed_off_on_failure += handed;
        m.max_poll_ms = m.max_poll_ms.max(poll_ms);
        if anomalies == 0 {
            let _ = std::fs::remove_file(log);
        }
    }
    if anomalies > 0 {
        let kept = std::env::temp_dir().join(format!(
            "ecs-lifecycle-load-{}-{n}-record.json",
            std::process::id()
        ));
        let record = serde_json::json!({"actions": actions, "invocations": invocations});
        std::fs::write(&kept, record.to_string())
            .map_err(|e| format!("writing {}: {e}", kept.display()))?;
        progress(
            t0,
            &format!(
                "{n} drains: {anomalies} anomalies; kept the function logs ({}) and the stand-in's record ({})",
                logs.iter()
                    .map(|l| l.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                kept.display()
            ),
        );
    }
    progress(
        t0,
        &format!(
            "{n} drains: {} completed once, {} expired; {} ECS calls granted, {} throttled",
            m.completed_once, m.expired, m.throttle.granted, m.throttle.throttled
        ),
    );
    Ok(m)
}

/// Lambda's side of the run, from the stand-in's invocations: each invocation
/// is attributed to the drained instance its event names (a hook notification,
/// a continuation and an SQS record carry the instance id, an ECS event its
/// container instance). `drained`: (instance id, container instance ARN).
fn lambda_figures(
    invocations: &[Value],
    drained: &[(&str, &str)],
    actions: &[Value],
) -> Result<LambdaFigures> {
    let mut f = LambdaFigures::default();
    let mut billed_by_instance: BTreeMap<&str, f64> = BTreeMap::new();
    let mut marks: Vec<(f64, i32)> = Vec::new();
    for inv in invocations {
        let source = inv["source"].as_str().unwrap_or("?").to_owned();
        *f.by_source.entry(source).or_default() += 1;
        let (Some(started), Some(finished)) =
            (inv["started_at"].as_f64(), inv["finished_at"].as_f64())
        else {
            return Err(format!(
                "an invocation that never ran or never ended: {inv}"
            ));
        };
        if let Some(queued) = inv["queued_at"].as_f64() {
            f.max_queued_s = f.max_queued_s.max(started - queued);
        }
        // Lambda bills each invocation rounded up to the millisecond.
        let billed_s = ((finished - started) * 1000.0).ceil() / 1000.0;
        f.billed_total_s += billed_s;
        marks.push((started, 1));
        marks.push((finished, -1));
        let event = inv["event"].to_string();
        match drained
            .iter()
            .find(|(id, ci)| event.contains(id) || event.contains(ci))
        {
            Some((id, _)) => *billed_by_instance.entry(id).or_default() += billed_s,
            None => f.unattributed += 1,
        }
    }
    // An end and a start at the same instant do not overlap.
    marks.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut running = 0_i32;
    for (_, d) in marks {
        running += d;
        f.max_in_flight = f.max_in_flight.max(usize::try_from(running).unwrap_or(0));
    }
    for (id, _) in drained {
        let action = actions
            .iter()
            .find(|a| a["instance_id"] == *id)
            .ok_or_else(|| format!("no action for {id}"))?;
        // The stand-in sets `completed_at` on an expiry too: the action's end.
        let end = action["completed_at"].as_f64();
        if let (Some(start), Some(end)) = (action["started_at"].as_f64(), end) {
            let billed = billed_by_instance.get(id).copied().unwrap_or(0.0);
            f.billed.push((billed, billed / (end - start)));
        }
    }
    Ok(f)
}

/// (back-offs after a failure, hand-offs forced by a failure, largest poll interval
/// logged) from a function's JSON log.
fn read_log(path: &Path) -> (usize, usize, u64) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut back_offs = 0;
    let mut handed = 0;
    let mut poll_ms = 0;
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let fields = &v["fields"];
        let message = fields["message"].as_str().unwrap_or_default();
        if message.starts_with("failed; the action is kept alive") {
            back_offs += 1;
        }
        if message.starts_with("failed near the end of the invocation") {
            handed += 1;
        }
        if let Some(p) = fields["poll_ms"].as_u64() {
            poll_ms = poll_ms.max(p);
        }
    }
    (back_offs, handed, poll_ms)
}

/// The longest the action went without its heartbeat clock restarting: start,
/// heartbeats, then the end (completion or expiry).
fn max_heartbeat_gap(action: &Value) -> f64 {
    let mut marks: Vec<f64> = action["started_at"].as_f64().into_iter().collect();
    marks.extend(
        action["heartbeats"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_f64),
    );
    marks.extend(action["completed_at"].as_f64());
    marks
        .windows(2)
        .map(|p| p[1] - p[0])
        .fold(0.0_f64, f64::max)
}

/// Demanded (granted + throttled) and granted ECS calls per second over the run:
/// (mean demanded, mean granted, peak demanded, peak granted, seconds).
fn rates(t: &ThrottleReport) -> (f64, f64, u64, u64, u64) {
    let (Some(first), Some(last)) = (t.per_second.first(), t.per_second.last()) else {
        return (0.0, 0.0, 0, 0, 0);
    };
    let seconds = last.0 - first.0 + 1;
    let demanded: u64 = t.per_second.iter().map(|p| p.1 + p.2).sum();
    let granted: u64 = t.per_second.iter().map(|p| p.1).sum();
    let peak_demanded = t.per_second.iter().map(|p| p.1 + p.2).max().unwrap_or(0);
    let peak_granted = t.per_second.iter().map(|p| p.1).max().unwrap_or(0);
    (
        demanded as f64 / seconds as f64,
        granted as f64 / seconds as f64,
        peak_demanded,
        peak_granted,
        seconds,
    )
}

/// Mean demanded and granted calls/s in consecutive windows of `window` seconds.
fn timeline(t: &ThrottleReport, window: u64) -> Vec<(u64, f64, f64)> {
    let Some(first) = t.per_second.first().map(|p| p.0) else {
        return Vec::new();
    };
    let mut buckets: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    for (sec, granted, throttled) in &t.per_second {
        let b = buckets.entry((sec - first) / window).or_default();
        b.0 += granted + throttled;
        b.1 += granted;
    }
    buckets
        .into_iter()
        .map(|(k, (d, g))| {
            (
                k * window,
                d as f64 / window as f64,
                g as f64 / window as f64,
            )
        })
        .collect()
}

/// ", events" when the run had ECS's task-stopped events.
fn events_note(sc: &Scenario) -> &'static str {
    if sc.event_delay_ms.is_some() {
        ", events"
    } else {
        ""
    }
}

fn report(runs: &[Measured], binary: &Path, release: bool, load: &str) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "## Concurrent drains under ECS throttling\n\nBinary: {} ({}). Load average {load}.\n",
        binary.display(),
        if release {
            "release"
        } else {
            "NOT a release build"
        },
    );
    let _ = writeln!(
        o,
        "| drains | wait mode (function processes) | ECS bucket | ECS calls/s demanded: mean / peak | granted: mean / peak | throttled | function errors / timeouts | expiries | completed once | lag last task STOPPED -> completion, median / max | max heartbeat gap (aim < {:.0} s) | drain, median / max | invocations |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        runs.first()
            .map_or(12.0, |r| f64::from(r.sc.heartbeat_timeout_s) / 3.0 + 2.0)
    );
    for r in runs {
        let (dem, gr, peak_d, peak_g, _) = rates(&r.throttle);
        let _ = writeln!(
            o,
            "| {} | {}{} ({}) | {} calls/s, burst {} | {dem:.1} / {peak_d} | {gr:.2} / {peak_g} | {} of {} ({:.0} %) | {} / {} | {} | {} of {} ({} before its tasks stopped) | {:.1} / {:.1} s | {:.1} s | {:.0} / {:.0} s | {} |",
            r.sc.drains,
            r.sc.wait_mode.as_str(),
            events_note(&r.sc),
            r.sc.functions,
            r.sc.rate_per_s,
            r.sc.burst,
            r.throttle.throttled,
            r.throttle.granted + r.throttle.throttled,
            100.0 * r.throttle.throttled as f64
                / (r.throttle.granted + r.throttle.throttled).max(1) as f64,
            r.function_errors,
            r.timeouts,
            r.expired,
            r.completed_once,
            r.sc.drains,
            r.early,
            median(&r.lags_s),
            max(&r.lags_s),
            max(&r.gaps_s),
            median(&r.drains_s),
            max(&r.drains_s),
            r.invocations,
        );
    }
    let _ = writeln!(
        o,
        "\n| drains | wait mode (function processes) | invocations (by source) | in flight: most at once / mean | longest wait for a free process | billed duration per drain, median / max | billed share of the drain, median / max / all drains | ECS calls per drain, demanded / granted | cost of the run (arm64 128 MB) | per drain | 1,000 such drains |\n|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for r in runs {
        let l = &r.lambda;
        let billed_s: Vec<f64> = l.billed.iter().map(|b| b.0).collect();
        let shares: Vec<f64> = l.billed.iter().map(|b| 100.0 * b.1).collect();
        let per_drain = l.cost_usd() / r.sc.drains as f64;
        let _ = writeln!(
            o,
            "| {} | {}{} ({}) | {} ({}) | {} / {:.1} | {:.1} s | {:.1} / {:.1} s | {:.1} / {:.1} / {:.1} % | {:.1} / {:.1} | ${:.6} ({:.1} GB-s) | ${:.7} | ${:.4} |",
            r.sc.drains,
            r.sc.wait_mode.as_str(),
            events_note(&r.sc),
            r.sc.functions,
            r.invocations,
            l.by_source
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", "),
            l.max_in_flight,
            // Invocation time over the run's length: the executions held on average.
            l.billed_total_s / r.elapsed_s,
            l.max_queued_s,
            median(&billed_s),
            max(&billed_s),
            median(&shares),
            max(&shares),
            100.0 * l.overall_share(&r.drains_s),
            (r.throttle.granted + r.throttle.throttled) as f64 / r.sc.drains as f64,
            r.throttle.granted as f64 / r.sc.drains as f64,
            l.cost_usd(),
            l.gb_s(),
            per_drain,
            per_drain * 1000.0,
        );
    }
    for r in runs {
        let (dem, gr, _, _, seconds) = rates(&r.throttle);
        let _ = writeln!(
            o,
            "\n### {} drains, WAIT_MODE={}\n\nSet-up {:.0} s (a cluster of {} instances: {} drained, {} spares; on each drained instance {}). \
             {} function processes{}. \
             HeartbeatTimeout {} s (enforced by the stand-in's clock), POLL_INTERVAL_SECONDS={}, invocations of {} s, ECS scheduler (played) off for the first {} s, then a step every {} ms. \
             All actions started at once; the last ended after {:.0} s. ECS calls: {} granted, {} throttled over {seconds} s ({dem:.1} demanded/s, {gr:.2} granted/s against a bucket of {}/s). \
             Completed exactly once: {} of {}; more than once: {}; expired: {}; still held at the end: {}; completed before the instance's last task stopped: {}. \
             Heartbeats recorded: {}. Back-offs logged by the functions (an observation failed after the SDK's retries): {}; hand-offs forced by a failure: {}; the longest poll interval logged: {:.1} s. \
             Peak memory (VmHWM) of a function process: max {:.1} MB. Invocations naming no drained instance: {}.\n",
            r.sc.drains,
            r.sc.wait_mode.as_str(),
            r.setup_s,
            r.sc.drains + r.spares,
            r.sc.drains,
            r.spares,
            r.sc.tasks.describe(),
            r.sc.functions,
            match r.sc.wait_mode {
                WaitMode::Queue => format!(
                    " (the continuations through the played wait queue, delay {} s)",
                    r.sc.poll_s
                ),
                WaitMode::InInvocation => String::new(),
            } + &match r.sc.event_delay_ms {
                Some(ms) => format!(
                    "; ECS's task-stopped events on (EventBridge played: each task STOPPED invokes the function {ms} ms later)"
                ),
                None => "; no ECS events".to_owned(),
            },
            r.sc.heartbeat_timeout_s,
            r.sc.poll_s,
            r.sc.invocation_ms / 1000,
            r.sc.stuck_s,
            r.sc.scheduler_ms,
            r.elapsed_s,
            r.throttle.granted,
            r.throttle.throttled,
            r.sc.rate_per_s,
            r.completed_once,
            r.sc.drains,
            r.completed_more_than_once,
            r.expired,
            r.still_active,
            r.early,
            r.heartbeats,
            r.back_offs,
            r.handed_off_on_failure,
            r.max_poll_ms as f64 / 1000.0,
            r.hwm_kb.iter().copied().max().unwrap_or(0) as f64 / 1024.0,
            r.lambda.unattributed,
        );
        let _ = writeln!(o, "| ECS operation | granted | throttled |\n|---|---|---|");
        for (op, (g, t)) in &r.throttle.by_operation {
            let _ = writeln!(o, "| {op} | {g} | {t} |");
        }
        let _ = writeln!(
            o,
            "\nECS calls per second, 10 s windows from the first call (demanded / granted): {}",
            timeline(&r.throttle, 10)
                .iter()
                .map(|(t, d, g)| format!("{t} s: {d:.1} / {g:.1}"))
                .collect::<Vec<_>>()
                .join("; ")
        );
        let mut lags = r.lags_s.clone();
        lags.sort_by(f64::total_cmp);
        let mut gaps = r.gaps_s.clone();
        gaps.sort_by(f64::total_cmp);
        let _ = writeln!(
            o,
            "\nLags, sorted (s): {}. Max heartbeat gaps per action, sorted (s): {}.",
            lags.iter()
                .map(|v| format!("{v:.1}"))
                .collect::<Vec<_>>()
                .join(", "),
            gaps.iter()
                .map(|v| format!("{v:.1}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    o
}
