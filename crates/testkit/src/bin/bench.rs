//! Benchmark of the release `terminate-drain` binary against the AWS stand-in
//! (not a test; CI does not run it). `scripts/bench.sh` builds and runs it; the
//! Markdown report goes to stdout, progress to stderr. BENCHMARKS.md says what
//! it measures and what the figures mean.
//!
//! 1. Cold start: a fresh process, the Runtime API already holding one queued
//!    invocation; spawn -> first `/next` and spawn -> response, both read from
//!    the stand-in's `started_at` / `finished_at`.
//! 2. Peak memory: VmHWM of the function process after real drains.
//! 3. AWS calls per poll: a 200-task instance in a 1000-instance cluster, a drain
//!    kept stuck (no scheduler steps) for N polls with POLL_INTERVAL_SECONDS=1.
//! 4. Lag from the last task on the instance reaching STOPPED to the
//!    CompleteLifecycleAction, with the stand-in's scheduler draining the instance.
//!
//! Sizes can be shrunk for a quick try with BENCH_INSTANCES, BENCH_COLD_REPS,
//! BENCH_POLLS, BENCH_LAG_REPS, BENCH_LAG_REPS_5S.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_ecs::types::{ContainerDefinition, SchedulingStrategy};
use serde_json::{Value, json};
use testkit::{Fleet, FleetSpec, LocalFunction, Result, Standin};

const TERMINATING: &str = "autoscaling:EC2_INSTANCE_TERMINATING";
/// The 200-task mix on a measured instance.
const REPLICA_SERVICES: usize = 10;
const TASKS_PER_REPLICA_SERVICE: usize = 19;
const DAEMONS: [&str; 3] = ["log-router", "metrics-agent", "security-agent"];
const STANDALONE_TASKS: usize = 7;
/// Instances at the end of the cluster left empty, for the cold-start drains
/// (at least this many; two per cold-start repetition: cold, then warm).
const EMPTY_INSTANCES: usize = 20;
/// The stand-in's scheduler step while a drain runs (replace, then one state a step).
const SCHEDULER_STEP_MS: u64 = 500;
const INVOCATION_TIMEOUT_MS: u64 = 900_000;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("bench failed: {e}");
        std::process::exit(1);
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn progress(t0: Instant, what: &str) {
    eprintln!("[bench {:>6.1}s] {what}", t0.elapsed().as_secs_f64());
}

fn epoch_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NAN, f64::max)
}

fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NAN, f64::min)
}

/// A `VmXxx:` line of /proc/<pid>/status, in kB.
fn vm_kb(pid: u32, key: &str) -> Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| format!("no {key} in /proc/{pid}/status"))
}

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

fn f64_of(v: &Value, key: &str) -> Result<f64> {
    v[key]
        .as_f64()
        .ok_or_else(|| format!("no number {key:?} in {v}"))
}

/// Replica and daemon services and a standalone family, ready to be seeded.
#[derive(Debug)]
struct Workload {
    /// (task definition, startedBy, group) per replica service.
    replica: Vec<(String, String, String)>,
    /// Same, per daemon service.
    daemons: Vec<(String, String, String)>,
    standalone_td: String,
}

async fn task_definition(fleet: &Fleet, family: &str) -> Result<String> {
    let out = fleet
        .ecs
        .register_task_definition()
        .family(family)
        .container_definitions(
            ContainerDefinition::builder()
                .name(family)
                .image("public.ecr.aws/docker/library/busybox:stable")
                .memory(64)
                .build(),
        )
        .send()
        .await
        .map_err(|e| format!("RegisterTaskDefinition: {e}"))?;
    out.task_definition()
        .and_then(|t| t.task_definition_arn())
        .map(str::to_owned)
        .ok_or_else(|| "no task definition ARN".into())
}

/// Creates a service (moto starts no tasks) and says how ECS's scheduler would
/// tag its tasks: startedBy the deployment id, group `service:<name>`.
async fn service(
    fleet: &Fleet,
    name: &str,
    daemon: bool,
    desired: i32,
) -> Result<(String, String, String)> {
    let td = task_definition(fleet, name).await?;
    let mut req = fleet
        .ecs
        .create_service()
        .cluster(&fleet.cluster)
        .service_name(name)
        .task_definition(&td);
    req = if daemon {
        req.scheduling_strategy(SchedulingStrategy::Daemon)
    } else {
        req.desired_count(desired)
    };
    let svc = req
        .send()
        .await
        .map_err(|e| format!("CreateService {name}: {e}"))?;
    let deployment = svc
        .service()
        .and_then(|s| s.deployments().first())
        .and_then(|d| d.id())
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{name}-deployment"));
    let started_by = if deployment.starts_with("ecs-svc/") {
        deployment
    } else {
        format!("ecs-svc/{deployment}")
    };
    Ok((td, started_by, format!("service:{name}")))
}

fn seed(
    s: &Standin,
    fleet: &Fleet,
    instance: usize,
    (td, started_by, group): (&str, &str, &str),
    count: usize,
) -> Result<()> {
    s.post(
        "/_standin/ecs/tasks",
        json!({
            "cluster": fleet.cluster,
            "container_instance": fleet.container_instances[instance],
            "task_definition": td,
            "count": count,
            "started_by": started_by,
            "group": group,
        }),
    )
    .map(|_| ())
}

impl Workload {
    async fn create(fleet: &Fleet, targets: usize) -> Result<Workload> {
        let mut replica = Vec::new();
        for i in 0..REPLICA_SERVICES {
            let desired = i32::try_from(TASKS_PER_REPLICA_SERVICE * targets).unwrap_or(i32::MAX);
            replica.push(service(fleet, &format!("svc-{i:02}"), false, desired).await?);
        }
        let mut daemons = Vec::new();
        for name in DAEMONS {
            daemons.push(service(fleet, name, true, 0).await?);
        }
        let standalone_td = task_definition(fleet, "batch-job").await?;
        Ok(Workload {
            replica,
            daemons,
            standalone_td,
        })
    }

    /// The first daemon on every instance but the empty ones (one control call each).
    fn seed_cluster_daemon(&self, s: &Standin, fleet: &Fleet, empty: usize) -> Result<()> {
        let (td, by, group) = &self.daemons[0];
        let n = fleet.container_instances.len().saturating_sub(empty);
        for i in 0..n {
            seed(s, fleet, i, (td, by, group), 1)?;
        }
        Ok(())
    }

    /// The rest of the 200-task mix on one instance (the first daemon is already there).
    fn seed_instance(&self, s: &Standin, fleet: &Fleet, instance: usize) -> Result<()> {
        for (td, by, group) in &self.replica {
            seed(
                s,
                fleet,
                instance,
                (td, by, group),
                TASKS_PER_REPLICA_SERVICE,
            )?;
        }
        for (td, by, group) in self.daemons.iter().skip(1) {
            seed(s, fleet, instance, (td, by, group), 1)?;
        }
        seed(
            s,
            fleet,
            instance,
            (&self.standalone_td, "batch-runner", "family:batch-job"),
            STANDALONE_TASKS,
        )
    }
}

/// The function's environment (as a deployment would set it).
fn function_env(fleet: &Fleet, poll_s: u64) -> Vec<(String, String)> {
    vec![
        ("CLUSTER_NAME".into(), fleet.cluster.clone()),
        ("POLL_INTERVAL_SECONDS".into(), poll_s.to_string()),
        ("CONTINUATION_TOPIC_ARN".into(), fleet.topic_arn.clone()),
        ("STANDALONE_TASKS".into(), "stop".into()),
        ("AWS_LAMBDA_LOG_FORMAT".into(), "JSON".into()),
    ]
}

fn as_refs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ColdEvent {
    /// `autoscaling:TEST_NOTIFICATION` through SNS: no AWS call.
    TestNotification,
    /// The hook's notification for an instance with no tasks: a whole drain.
    EmptyDrain,
}

#[derive(Debug, Default)]
struct ColdSamples {
    to_next_ms: Vec<f64>,
    to_response_ms: Vec<f64>,
    handler_ms: Vec<f64>,
    /// The second, warm invocation of the same process.
    warm_handler_ms: Vec<f64>,
    hwm_kb: Vec<u64>,
    aws_calls: Vec<u64>,
}

/// Queues one invocation of `kind` (through SNS, as AWS delivers it) and
/// returns its request id and the outcome the function should answer.
fn queue_one(
    s: &Standin,
    fleet: &Fleet,
    kind: ColdEvent,
    next_empty: &mut usize,
) -> Result<(Value, &'static str)> {
    let before: BTreeSet<String> = s
        .invocations()?
        .iter()
        .filter_map(|i| i["request_id"].as_str().map(str::to_owned))
        .collect();
    let expected = match kind {
        ColdEvent::TestNotification => {
            s.post(
                "/_standin/lifecycle/test-notification",
                json!({"asg": fleet.asg, "hook": fleet.hook}),
            )?;
            "ignored"
        }
        ColdEvent::EmptyDrain => {
            let idx = *next_empty;
            *next_empty += 1;
            let id = fleet
                .instance_ids
                .get(idx)
                .ok_or("ran out of empty instances")?;
            s.start_lifecycle_action(&fleet.asg, &fleet.hook, id, TERMINATING)?;
            "completed"
        }
    };
    let new: Vec<Value> = s
        .invocations()?
        .into_iter()
        .filter(|i| {
            i["request_id"]
                .as_str()
                .is_some_and(|r| !before.contains(r))
        })
        .collect();
    match new.as_slice() {
        [inv] => Ok((inv["request_id"].clone(), expected)),
        _ => Err(format!("expected one new invocation, found {new:?}")),
    }
}

/// Waits for an invocation to end (polled every 50 ms; the times come from the
/// stand-in's own timestamps, not from this loop) and checks its outcome.
async fn finished(s: &Standin, request_id: &Value, expected: &str) -> Result<Value> {
    let started = Instant::now();
    tokio::time::sleep(Duration::from_millis(40)).await;
    let done = loop {
        let all = s.invocations()?;
        if let Some(i) = all.iter().find(|i| &i["request_id"] == request_id)
            && i["status"] != "queued"
            && i["status"] != "running"
        {
            break i.clone();
        }
        if started.elapsed() > Duration::from_secs(30) {
            return Err(format!("invocation not done in 30 s: {all:?}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    if done["status"] != "success"
        || done["response"]["outcomes"][0]["outcome"].as_str() != Some(expected)
    {
        return Err(format!("unexpected invocation result: {done}"));
    }
    Ok(done)
}

async fn cold_starts(
    s: &Standin,
    fleet: &Fleet,
    binary: &Path,
    kind: ColdEvent,
    reps: usize,
    next_empty: &mut usize,
) -> Result<ColdSamples> {
    let env = function_env(fleet, 1);
    let env = as_refs(&env);
    let mut out = ColdSamples::default();
    for _ in 0..reps {
        s.delete("/_standin/lambda/invocations")?;
        let (request_id, expected) = queue_one(s, fleet, kind, next_empty)?;
        s.reset_calls()?;

        let t0 = epoch_s();
        let function = LocalFunction::start(s, binary, "terminate-drain", &env, true)?;
        let done = finished(s, &request_id, expected).await?;
        let calls: u64 = s.calls()?.values().sum();
        let next = f64_of(&done, "started_at")?;
        let fin = f64_of(&done, "finished_at")?;
        out.to_next_ms.push((next - t0) * 1000.0);
        out.to_response_ms.push((fin - t0) * 1000.0);
        out.handler_ms.push((fin - next) * 1000.0);
        out.aws_calls.push(calls);
        // The same kind of event again in the now warm process: what the handler
        // costs without the cold start (for a drain: mostly moto's latency).
        let (request_id, expected) = queue_one(s, fleet, kind, next_empty)?;
        let done = finished(s, &request_id, expected).await?;
        out.warm_handler_ms
            .push((f64_of(&done, "finished_at")? - f64_of(&done, "started_at")?) * 1000.0);
        out.hwm_kb.push(vm_kb(function.pid(), "VmHWM")?);
        drop(function);
    }
    s.delete("/_standin/lambda/invocations")?;
    Ok(out)
}

/// Decision lines of kind `decision` in a JSON log.
fn decisions(log: &Path, decision: &str) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["fields"]["decision"] == decision)
        .count()
}

/// Waits until the log holds `n` decision lines of kind `decision`; returns when
/// it saw the n-th (checked every 10 ms from a file read, no AWS call).
async fn wait_decisions(log: &Path, decision: &str, n: usize, limit: Duration) -> Result<()> {
    let start = Instant::now();
    while decisions(log, decision) < n {
        if start.elapsed() > limit {
            return Err(format!(
                "{n} {decision:?} decisions not logged within {limit:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

#[derive(Debug)]
struct LagSample {
    instance: usize,
    poll_s: u64,
    tasks: usize,
    drain_s: f64,
    lag_s: f64,
}

async fn wait_completed(s: &Standin, instance_id: &str, limit: Duration) -> Result<Value> {
    let action = s
        .wait_for(limit, |s| {
            let a = s.lifecycle_action(instance_id)?;
            Ok((a["state"] != "active").then_some(a))
        })
        .await?;
    if action["state"] != "completed" || action["result"] != "CONTINUE" {
        return Err(format!("the action did not complete CONTINUE: {action}"));
    }
    Ok(action)
}

/// Completion vs the last task on the instance reaching STOPPED.
async fn lag_of(fleet: &Fleet, instance: usize, poll_s: u64, action: &Value) -> Result<LagSample> {
    let tasks = fleet.tasks_on(instance).await?;
    if let Some(t) = tasks.iter().find(|t| t.last_status != "STOPPED") {
        return Err(format!("completed with a task not STOPPED: {t:?}"));
    }
    let last_stop = tasks
        .iter()
        .filter_map(|t| t.stopped_at)
        .fold(f64::NAN, f64::max);
    let completed = f64_of(action, "completed_at")?;
    let started = f64_of(action, "started_at")?;
    Ok(LagSample {
        instance,
        poll_s,
        tasks: tasks.len(),
        drain_s: completed - started,
        lag_s: completed - last_stop,
    })
}

/// One drain per target instance, the scheduler stand-in running.
async fn timed_drains(
    s: &Standin,
    fleet: &Fleet,
    instances: std::ops::Range<usize>,
    poll_s: u64,
    t0: Instant,
) -> Result<Vec<LagSample>> {
    let mut out = Vec::new();
    for i in instances {
        let id = &fleet.instance_ids[i];
        s.start_lifecycle_action(&fleet.asg, &fleet.hook, id, TERMINATING)?;
        let action = wait_completed(s, id, Duration::from_secs(180)).await?;
        let sample = lag_of(fleet, i, poll_s, &action).await?;
        progress(
            t0,
            &format!(
                "drain of instance {i} (poll {poll_s} s): {:.1} s, lag {:.2} s",
                sample.drain_s, sample.lag_s
            ),
        );
        out.push(sample);
    }
    Ok(out)
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
        .map(|(_, m)| m.trim().to_owned())
        .unwrap_or_else(|| "unknown".into())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(0, |n| n.get())
}

#[allow(clippy::too_many_lines)]
async fn run() -> Result<()> {
    let t0 = Instant::now();
    let n_instances = env_usize("BENCH_INSTANCES", 1000);
    let cold_reps = env_usize("BENCH_COLD_REPS", 10);
    let polls = env_usize("BENCH_POLLS", 20);
    let lag_reps = env_usize("BENCH_LAG_REPS", 5).max(1);
    let lag_reps_5s = env_usize("BENCH_LAG_REPS_5S", 2);
    let targets = lag_reps + lag_reps_5s;
    let empty = EMPTY_INSTANCES.max(2 * cold_reps);
    if n_instances < targets + empty + 1 {
        return Err(format!(
            "BENCH_INSTANCES={n_instances} is too small for {targets} drains and {cold_reps} empty instances"
        ));
    }
    let binary = testkit::binary("terminate-drain")?;
    if !binary.components().any(|c| c.as_os_str() == "release") {
        eprintln!(
            "warning: {} is not a release build; run scripts/bench.sh",
            binary.display()
        );
    }
    let binary_kb = std::fs::metadata(&binary).map_or(0, |m| m.len() / 1024);
    let load_before = loadavg();

    progress(t0, "starting the stand-in");
    let s = Standin::start()?;
    let sdk = s.sdk_config().await;
    progress(
        t0,
        &format!("creating a {n_instances}-instance Auto Scaling group and cluster"),
    );
    let t_fleet = Instant::now();
    let fleet = Fleet::create(
        &sdk,
        &FleetSpec::new("bench", i32::try_from(n_instances).unwrap_or(0)),
    )
    .await?;
    let fleet_s = t_fleet.elapsed().as_secs_f64();
    progress(t0, &format!("fleet ready in {fleet_s:.1} s; seeding tasks"));
    let t_seed = Instant::now();
    let workload = Workload::create(&fleet, targets).await?;
    workload.seed_cluster_daemon(&s, &fleet, empty)?;
    for i in 0..targets {
        workload.seed_instance(&s, &fleet, i)?;
    }
    let seed_s = t_seed.elapsed().as_secs_f64();
    let tasks_on_target = fleet.tasks_on(0).await?.len();
    progress(
        t0,
        &format!(
            "seeded in {seed_s:.1} s: {tasks_on_target} tasks on each of {targets} target instances, one daemon task on every other instance"
        ),
    );

    // 1. Cold start.
    s.subscribe_function(&fleet.topic_arn, 60_000)?;
    let mut next_empty = n_instances - empty;
    // The run's first spawn pays for the page cache and the stand-in's first
    // Runtime API request; reported apart, not in the samples.
    progress(
        t0,
        "cold start warm-up (first spawn of the run, not counted)",
    );
    let warmup = cold_starts(
        &s,
        &fleet,
        &binary,
        ColdEvent::TestNotification,
        1,
        &mut next_empty,
    )
    .await?;
    let warmup_ms = warmup.to_response_ms.first().copied().unwrap_or(f64::NAN);
    progress(t0, &format!("cold start x{cold_reps}: TEST_NOTIFICATION"));
    let cold_test = cold_starts(
        &s,
        &fleet,
        &binary,
        ColdEvent::TestNotification,
        cold_reps,
        &mut next_empty,
    )
    .await?;
    progress(
        t0,
        &format!("cold start x{cold_reps}: drain of an empty instance"),
    );
    let cold_drain = cold_starts(
        &s,
        &fleet,
        &binary,
        ColdEvent::EmptyDrain,
        cold_reps,
        &mut next_empty,
    )
    .await?;

    // 3. Calls per poll: a drain kept stuck.
    let log = std::env::temp_dir().join(format!("ecs-lifecycle-bench-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let env1 = function_env(&fleet, 1);
    let function =
        LocalFunction::start_logging_to(&s, &binary, "terminate-drain", &as_refs(&env1), &log)?;
    s.subscribe_function(&fleet.topic_arn, INVOCATION_TIMEOUT_MS)?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.reset_calls()?;
    progress(
        t0,
        &format!("stuck drain of instance 0 ({tasks_on_target} tasks), {polls} polls at 1 s"),
    );
    let target_id = fleet.instance_ids[0].clone();
    s.start_lifecycle_action(&fleet.asg, &fleet.hook, &target_id, TERMINATING)?;
    // The first `wait` decision ends the lookup: find the container instance,
    // set DRAINING, first full observation (services described once).
    wait_decisions(&log, "wait", 1, Duration::from_secs(60)).await?;
    let startup = s.calls()?;
    s.reset_calls()?;
    let t_steady = Instant::now();
    wait_decisions(
        &log,
        "wait",
        1 + polls,
        Duration::from_secs(5 * polls as u64 + 30),
    )
    .await?;
    let steady = s.calls()?;
    let steady_s = t_steady.elapsed().as_secs_f64();
    s.reset_calls()?;
    let steady_polls = steady
        .get("autoscaling:DescribeAutoScalingInstances")
        .copied()
        .unwrap_or(0);
    if steady_polls != polls as u64 {
        eprintln!("warning: {steady_polls} DescribeAutoScalingInstances calls in {polls} polls");
    }
    let poll_period_s = steady_s / polls as f64;

    // 4 + 2. Let the scheduler drain it, then the other targets.
    progress(t0, "scheduler stand-in on: draining instance 0");
    s.ecs_auto(SCHEDULER_STEP_MS)?;
    let action = wait_completed(&s, &target_id, Duration::from_secs(180)).await?;
    let drain_calls = s.calls()?;
    let first = lag_of(&fleet, 0, 1, &action).await?;
    progress(
        t0,
        &format!("instance 0 completed: lag {:.2} s", first.lag_s),
    );
    let hwm_first_kb = vm_kb(function.pid(), "VmHWM")?;
    let rss_first_kb = vm_kb(function.pid(), "VmRSS")?;
    let mut lags = vec![first];
    lags.extend(timed_drains(&s, &fleet, 1..lag_reps, 1, t0).await?);
    let hwm_all_kb = vm_kb(function.pid(), "VmHWM")?;
    let rss_all_kb = vm_kb(function.pid(), "VmRSS")?;
    let drains_p1 = lag_reps;
    drop(function);

    let mut hwm_5s_kb = None;
    if lag_reps_5s > 0 {
        let env5 = function_env(&fleet, 5);
        let function5 =
            LocalFunction::start_logging_to(&s, &binary, "terminate-drain", &as_refs(&env5), &log)?;
        lags.extend(timed_drains(&s, &fleet, lag_reps..targets, 5, t0).await?);
        hwm_5s_kb = Some(vm_kb(function5.pid(), "VmHWM")?);
    }
    s.ecs_auto(0)?;
    let invocations = s.invocations()?;
    let failed: Vec<&Value> = invocations
        .iter()
        .filter(|i| i["status"] != "success")
        .collect();
    let _ = std::fs::remove_file(&log);
    let total_s = t0.elapsed().as_secs_f64();
    let load_after = loadavg();
    progress(t0, "done");

    // ---- report ----
    let r = Report {
        n_instances,
        tasks_on_target,
        polls,
        binary_kb,
        fleet_s,
        seed_s,
        total_s,
        warmup_ms,
        load: format!("{load_before} before, {load_after} after"),
        cold_test,
        cold_drain,
        startup,
        steady,
        steady_polls,
        poll_period_s,
        drain_calls,
        hwm_first_kb,
        rss_first_kb,
        hwm_all_kb,
        rss_all_kb,
        drains_p1,
        hwm_5s_kb,
        lags,
        failed_invocations: failed.len(),
        invocations: invocations.len(),
    };
    print!("{}", r.markdown());
    Ok(())
}

#[derive(Debug)]
struct Report {
    n_instances: usize,
    tasks_on_target: usize,
    polls: usize,
    binary_kb: u64,
    fleet_s: f64,
    seed_s: f64,
    total_s: f64,
    warmup_ms: f64,
    load: String,
    cold_test: ColdSamples,
    cold_drain: ColdSamples,
    startup: BTreeMap<String, u64>,
    steady: BTreeMap<String, u64>,
    steady_polls: u64,
    poll_period_s: f64,
    drain_calls: BTreeMap<String, u64>,
    hwm_first_kb: u64,
    rss_first_kb: u64,
    hwm_all_kb: u64,
    rss_all_kb: u64,
    drains_p1: usize,
    hwm_5s_kb: Option<u64>,
    lags: Vec<LagSample>,
    failed_invocations: usize,
    invocations: usize,
}

impl Report {
    #[allow(clippy::too_many_lines)]
    fn markdown(&self) -> String {
        use std::fmt::Write;
        let mut o = String::new();
        let polls = self.steady_polls.max(1) as f64;
        let steady_total: u64 = self.steady.values().sum();
        let startup_total: u64 = self.startup.values().sum();
        let per_poll = steady_total as f64 / polls;
        // The first polls of a drain (up to its first `wait`) also pay the per-poll
        // calls; what they make beyond that is the one-time cost.
        let startup_polls = self
            .startup
            .get("autoscaling:DescribeAutoScalingInstances")
            .copied()
            .unwrap_or(0) as f64;
        let one_time: BTreeMap<&String, f64> = self
            .startup
            .iter()
            .map(|(op, n)| {
                let steady = self.steady.get(op).copied().unwrap_or(0) as f64 / polls;
                (op, (*n as f64 - startup_polls * steady).max(0.0))
            })
            .collect();
        let one_time_total: f64 = one_time.values().sum();
        let one_time_stop = one_time
            .iter()
            .find(|(op, _)| op.as_str() == "ecs:StopTask")
            .map_or(0.0, |(_, n)| *n);
        let lag1: Vec<f64> = self
            .lags
            .iter()
            .filter(|l| l.poll_s == 1)
            .map(|l| l.lag_s)
            .collect();
        let lag5: Vec<f64> = self
            .lags
            .iter()
            .filter(|l| l.poll_s == 5)
            .map(|l| l.lag_s)
            .collect();
        let ct = &self.cold_test;
        let cd = &self.cold_drain;
        let hwm_cold: Vec<f64> = ct.hwm_kb.iter().chain(&cd.hwm_kb).map(|k| mb(*k)).collect();
        let drain_calls_cold = median(&cd.aws_calls.iter().map(|c| *c as f64).collect::<Vec<_>>());

        let _ = writeln!(
            o,
            "## terminate-drain benchmark\n\nMachine: {} cores, {}. Release binary {:.1} MB (stripped). \
             Cluster of {} container instances; {} tasks on each drained instance. \
             Set-up: fleet {:.1} s, task seeding {:.1} s; whole run {:.0} s; load average {}.\n",
            cores(),
            cpu_model(),
            self.binary_kb as f64 / 1024.0,
            self.n_instances,
            self.tasks_on_target,
            self.fleet_s,
            self.seed_s,
            self.total_s,
            self.load
        );
        let _ = writeln!(o, "| figure | measured | aim |\n|---|---|---|");
        let _ = writeln!(
            o,
            "| cold start, spawn -> first `/next` (median / max of {}) | {:.1} / {:.1} ms | |",
            ct.to_next_ms.len() + cd.to_next_ms.len(),
            median(&[ct.to_next_ms.clone(), cd.to_next_ms.clone()].concat()),
            max(&[ct.to_next_ms.clone(), cd.to_next_ms.clone()].concat()),
        );
        let _ = writeln!(
            o,
            "| cold start, spawn -> response: TEST_NOTIFICATION (median / max of {}) | {:.1} / {:.1} ms | < 30 ms |",
            ct.to_response_ms.len(),
            median(&ct.to_response_ms),
            max(&ct.to_response_ms)
        );
        let _ = writeln!(
            o,
            "| cold start, spawn -> response: whole drain of an empty instance, {drain_calls_cold:.0} AWS calls (median / max of {}) | {:.1} / {:.1} ms | < 30 ms |",
            cd.to_response_ms.len(),
            median(&cd.to_response_ms),
            max(&cd.to_response_ms)
        );
        let _ = writeln!(
            o,
            "| peak memory (VmHWM) after the {}-task drain (stuck {} polls, then drained) | {:.1} MB | < 20 MB |",
            self.tasks_on_target,
            self.polls,
            mb(self.hwm_first_kb)
        );
        let _ = writeln!(
            o,
            "| peak memory (VmHWM) after {} such drains in one process | {:.1} MB (RSS now {:.1} MB) | < 20 MB |",
            self.drains_p1,
            mb(self.hwm_all_kb),
            mb(self.rss_all_kb)
        );
        let _ = writeln!(
            o,
            "| AWS calls per steady-state poll ({} tasks, {} instances; {} polls) | {:.2} | O(tasks/100) |",
            self.tasks_on_target, self.n_instances, self.steady_polls, per_poll
        );
        let _ = writeln!(
            o,
            "| one-time calls of a drain beyond its polls: hook, lookup, DRAINING, services (+ one StopTask per standalone task) | {:.0} (+ {:.0}) | |",
            one_time_total - one_time_stop,
            one_time_stop
        );
        let _ = writeln!(
            o,
            "| lag, last task STOPPED -> CompleteLifecycleAction, POLL_INTERVAL_SECONDS=1 (median / max of {}) | {:.2} / {:.2} s | <= 1 s |",
            lag1.len(),
            median(&lag1),
            max(&lag1)
        );
        if !lag5.is_empty() {
            let _ = writeln!(
                o,
                "| lag, POLL_INTERVAL_SECONDS=5 (median / max of {}) | {:.2} / {:.2} s | <= 5 s |",
                lag5.len(),
                median(&lag5),
                max(&lag5)
            );
        }

        let _ = writeln!(
            o,
            "\n### Calls by operation\n\nSteady state: {} polls in {:.1} s ({:.2} s a poll: 1 s sleep + observation against moto). \
             Drain: from the scheduler stand-in starting until completion (instance 0).\n",
            self.steady_polls,
            self.poll_period_s * polls,
            self.poll_period_s
        );
        let _ = writeln!(
            o,
            "| operation | start of the drain | of which one-time | per steady poll | rest of the drain |\n|---|---|---|---|---|"
        );
        let ops: BTreeSet<&String> = self
            .startup
            .keys()
            .chain(self.steady.keys())
            .chain(self.drain_calls.keys())
            .collect();
        for op in ops {
            let _ = writeln!(
                o,
                "| {op} | {} | {:.0} | {:.2} | {} |",
                self.startup.get(op).copied().unwrap_or(0),
                one_time.get(op).copied().unwrap_or(0.0),
                self.steady.get(op).copied().unwrap_or(0) as f64 / polls,
                self.drain_calls.get(op).copied().unwrap_or(0)
            );
        }
        let drain_total: u64 = self.drain_calls.values().sum();
        let _ = writeln!(
            o,
            "| **total** | {startup_total} | {one_time_total:.0} | {per_poll:.2} | {drain_total} |"
        );

        let _ = writeln!(
            o,
            "\n### Cold starts\n\nEach repetition: a fresh process, one invocation queued before the spawn; then the same kind of event again in that process (warm).\n\n| event | spawn -> `/next` median / min / max | spawn -> response median / min / max | handler cold, median | handler warm, median | AWS calls | VmHWM median / max |\n|---|---|---|---|---|---|---|"
        );
        for (name, c) in [
            ("TEST_NOTIFICATION", ct),
            ("drain of an empty instance", cd),
        ] {
            let h: Vec<f64> = c.hwm_kb.iter().map(|k| mb(*k)).collect();
            let _ = writeln!(
                o,
                "| {name} (x{}) | {:.1} / {:.1} / {:.1} ms | {:.1} / {:.1} / {:.1} ms | {:.1} ms | {:.1} ms | {} | {:.1} / {:.1} MB |",
                c.to_next_ms.len(),
                median(&c.to_next_ms),
                min(&c.to_next_ms),
                max(&c.to_next_ms),
                median(&c.to_response_ms),
                min(&c.to_response_ms),
                max(&c.to_response_ms),
                median(&c.handler_ms),
                median(&c.warm_handler_ms),
                c.aws_calls.iter().max().copied().unwrap_or(0),
                median(&h),
                max(&h)
            );
        }
        let _ = writeln!(
            o,
            "\nAll cold-start samples, spawn -> response (ms): TEST_NOTIFICATION {:?}; empty drain {:?}. VmHWM of the cold processes: max {:.1} MB. \
             Not counted: the run's first spawn (warm-up, TEST_NOTIFICATION), {:.1} ms.",
            ct.to_response_ms
                .iter()
                .map(|v| (v * 10.0).round() / 10.0)
                .collect::<Vec<_>>(),
            cd.to_response_ms
                .iter()
                .map(|v| (v * 10.0).round() / 10.0)
                .collect::<Vec<_>>(),
            max(&hwm_cold),
            self.warmup_ms
        );

        let _ = writeln!(
            o,
            "\n### Drains (scheduler stand-in stepping every {SCHEDULER_STEP_MS} ms)\n\n| instance | POLL_INTERVAL_SECONDS | tasks | action start -> completion | last task STOPPED -> completion |\n|---|---|---|---|---|"
        );
        for l in &self.lags {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {:.1} s | {:.2} s |",
                l.instance, l.poll_s, l.tasks, l.drain_s, l.lag_s
            );
        }
        let _ = writeln!(
            o,
            "\nPeak memory: after the first drain VmHWM {:.1} MB (VmRSS {:.1} MB); after {} drains VmHWM {:.1} MB (VmRSS {:.1} MB){}. \
             Invocations: {} (failed: {}).",
            mb(self.hwm_first_kb),
            mb(self.rss_first_kb),
            self.drains_p1,
            mb(self.hwm_all_kb),
            mb(self.rss_all_kb),
            self.hwm_5s_kb
                .map(|k| format!(
                    "; the POLL_INTERVAL_SECONDS=5 process VmHWM {:.1} MB",
                    mb(k)
                ))
                .unwrap_or_default(),
            self.invocations,
            self.failed_invocations
        );
        o
    }
}
