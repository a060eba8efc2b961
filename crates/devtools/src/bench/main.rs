//! Benchmark of the release `terminate-drain` binary against the AWS stand-in
//! (not a test; CI does not run it). `scripts/bench.sh` builds and runs it; the
//! Markdown report goes to stdout, progress to stderr. docs/benchmarks.md says what
//! it measures and what the figures mean.
//!
//! 1. Cold start ([`cold_start`]): a fresh process, the Runtime API already
//!    holding one queued invocation; spawn -> first `/next` and spawn ->
//!    response, both read from the stand-in's `started_at` / `finished_at`.
//! 2. Peak memory: VmHWM of the function process after real drains (read in
//!    [`cold_start`] and [`completion_lag`]).
//! 3. AWS calls per poll ([`calls_per_poll`]): a 200-task instance in a
//!    1000-instance cluster, a drain kept stuck (no scheduler steps) for N polls
//!    with POLL_INTERVAL_SECONDS=1.
//! 4. Lag from the last task on the instance reaching STOPPED to the
//!    CompleteLifecycleAction, with the stand-in's scheduler draining the
//!    instance ([`completion_lag`]).
//!
//! The cluster's tasks: [`workload`]. This file: the sizes, the order of the
//! scenarios and the report.
//!
//! Sizes can be shrunk for a quick try with BENCH_INSTANCES, BENCH_COLD_REPS,
//! BENCH_POLLS, BENCH_LAG_REPS, BENCH_LAG_REPS_5S.
//!
//! `ecs-lifecycle-bench poll` runs [`poll_interval`] instead: ECS calls and
//! completion lag of one drain at POLL_INTERVAL_SECONDS 10 and 30, with and
//! without the ECS event.
//!
//! `ecs-lifecycle-bench footprint` runs another scenario instead, without the
//! stand-in ([`footprint`]): cold start and peak memory of all three function
//! binaries beside a bare `lambda_runtime` binary (`lambda-echo`), alternated.

mod calls_per_poll;
mod cold_start;
mod completion_lag;
mod footprint;
mod poll_interval;
mod workload;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Instant;

use devtools::{loadavg, max, median, vm_kb};
use serde_json::Value;
use testkit::{Fleet, FleetSpec, LocalFunction, Result, Standin};

use calls_per_poll::PollCalls;
use cold_start::ColdStarts;
use completion_lag::Drains;
use workload::Workload;

const TERMINATING: &str = "autoscaling:EC2_INSTANCE_TERMINATING";
/// Instances at the end of the cluster left empty, for the cold-start drains
/// (at least this many; two per cold-start repetition: cold, then warm).
const EMPTY_INSTANCES: usize = 20;
/// The stand-in's scheduler step while a drain runs (replace, then one state a step).
const SCHEDULER_STEP_MS: u64 = 500;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("bench failed: {e}");
        std::process::exit(1);
    }
}

/// What the scenarios run against.
#[derive(Debug)]
struct Bench<'a> {
    s: &'a Standin,
    fleet: &'a Fleet,
    /// The `terminate-drain` binary measured.
    binary: &'a Path,
    t0: Instant,
}

impl Bench<'_> {
    fn progress(&self, what: &str) {
        progress(self.t0, what);
    }

    /// The function's environment (as a deployment would set it).
    fn function_env(&self, poll_s: u64) -> Vec<(String, String)> {
        vec![
            ("CLUSTER_NAME".into(), self.fleet.cluster.clone()),
            ("POLL_INTERVAL_SECONDS".into(), poll_s.to_string()),
            (
                "CONTINUATION_TOPIC_ARN".into(),
                self.fleet.topic_arn.clone(),
            ),
            ("STANDALONE_TASKS".into(), "stop".into()),
            ("AWS_LAMBDA_LOG_FORMAT".into(), "JSON".into()),
        ]
    }

    /// Starts the function, POLL_INTERVAL_SECONDS=`poll_s`, its logs appended to `log`.
    fn start_logging_to(&self, poll_s: u64, log: &Path) -> Result<LocalFunction> {
        let env = self.function_env(poll_s);
        LocalFunction::start_logging_to(self.s, self.binary, "terminate-drain", &as_refs(&env), log)
    }
}

fn as_refs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
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

fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NAN, f64::min)
}

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

fn f64_of(v: &Value, key: &str) -> Result<f64> {
    v[key]
        .as_f64()
        .ok_or_else(|| format!("no number {key:?} in {v}"))
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
        .map(|(_, m)| m.trim().to_owned())
        .unwrap_or_else(|| "unknown".into())
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(0, |n| n.get())
}

async fn run() -> Result<()> {
    if std::env::args().nth(1).as_deref() == Some("poll") {
        return poll_interval::run().await;
    }
    if std::env::args().nth(1).as_deref() == Some("footprint") {
        return tokio::task::spawn_blocking(footprint::run)
            .await
            .map_err(|e| format!("footprint scenario: {e}"))?;
    }
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
    let bench = Bench {
        s: &s,
        fleet: &fleet,
        binary: &binary,
        t0,
    };

    // 1. Cold start.
    let cold = cold_start::measure(&bench, cold_reps, n_instances - empty).await?;
    // 3. Calls per poll: a drain kept stuck.
    let log = testkit::temp_log("ecs-lifecycle-bench");
    let (calls, function) = calls_per_poll::measure(&bench, &log, polls, tasks_on_target).await?;
    // 4 + 2. Let the scheduler drain it, then the other targets.
    let drains = completion_lag::measure(&bench, &log, function, lag_reps, lag_reps_5s).await?;
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
        load: format!("{load_before} before, {load_after} after"),
        cold,
        calls,
        drains,
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
    load: String,
    cold: ColdStarts,
    calls: PollCalls,
    drains: Drains,
    failed_invocations: usize,
    invocations: usize,
}

impl Report {
    #[allow(clippy::too_many_lines)]
    fn markdown(&self) -> String {
        use std::fmt::Write;
        let mut o = String::new();
        let polls = self.calls.steady_polls.max(1) as f64;
        let steady_total: u64 = self.calls.steady.values().sum();
        let startup_total: u64 = self.calls.startup.values().sum();
        let per_poll = steady_total as f64 / polls;
        // The first polls of a drain (up to its first `wait`) also pay the per-poll
        // calls; what they make beyond that is the one-time cost.
        let startup_polls = self
            .calls
            .startup
            .get("autoscaling:DescribeAutoScalingInstances")
            .copied()
            .unwrap_or(0) as f64;
        let one_time: BTreeMap<&String, f64> = self
            .calls
            .startup
            .iter()
            .map(|(op, n)| {
                let steady = self.calls.steady.get(op).copied().unwrap_or(0) as f64 / polls;
                (op, (*n as f64 - startup_polls * steady).max(0.0))
            })
            .collect();
        let one_time_total: f64 = one_time.values().sum();
        let one_time_stop = one_time
            .iter()
            .find(|(op, _)| op.as_str() == "ecs:StopTask")
            .map_or(0.0, |(_, n)| *n);
        let lags_at = |poll_s: u64| -> Vec<f64> {
            self.drains
                .lags
                .iter()
                .filter(|l| l.poll_s == poll_s)
                .map(|l| l.lag_s)
                .collect()
        };
        let (lag1, lag5) = (lags_at(1), lags_at(5));
        let ct = &self.cold.test;
        let cd = &self.cold.drain;
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
            mb(self.drains.hwm_first_kb)
        );
        let _ = writeln!(
            o,
            "| peak memory (VmHWM) after {} such drains in one process | {:.1} MB (RSS now {:.1} MB) | < 20 MB |",
            self.drains.drains_p1,
            mb(self.drains.hwm_all_kb),
            mb(self.drains.rss_all_kb)
        );
        let _ = writeln!(
            o,
            "| AWS calls per steady-state poll ({} tasks, {} instances; {} polls) | {:.2} | O(tasks/100) |",
            self.tasks_on_target, self.n_instances, self.calls.steady_polls, per_poll
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
            self.calls.steady_polls,
            self.calls.poll_period_s * polls,
            self.calls.poll_period_s
        );
        let _ = writeln!(
            o,
            "| operation | start of the drain | of which one-time | per steady poll | rest of the drain |\n|---|---|---|---|---|"
        );
        let ops: BTreeSet<&String> = self
            .calls
            .startup
            .keys()
            .chain(self.calls.steady.keys())
            .chain(self.drains.drain_calls.keys())
            .collect();
        for op in ops {
            let _ = writeln!(
                o,
                "| {op} | {} | {:.0} | {:.2} | {} |",
                self.calls.startup.get(op).copied().unwrap_or(0),
                one_time.get(op).copied().unwrap_or(0.0),
                self.calls.steady.get(op).copied().unwrap_or(0) as f64 / polls,
                self.drains.drain_calls.get(op).copied().unwrap_or(0)
            );
        }
        let drain_total: u64 = self.drains.drain_calls.values().sum();
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
            self.cold.warmup_ms
        );

        let _ = writeln!(
            o,
            "\n### Drains (scheduler stand-in stepping every {SCHEDULER_STEP_MS} ms)\n\n| instance | POLL_INTERVAL_SECONDS | tasks | action start -> completion | last task STOPPED -> completion |\n|---|---|---|---|---|"
        );
        for l in &self.drains.lags {
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
            mb(self.drains.hwm_first_kb),
            mb(self.drains.rss_first_kb),
            self.drains.drains_p1,
            mb(self.drains.hwm_all_kb),
            mb(self.drains.rss_all_kb),
            self.drains
                .hwm_5s_kb
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
