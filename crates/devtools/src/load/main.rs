//! Load benchmark of the `terminate-drain` binary (not a test; CI does not run it):
//! many instances of one cluster draining at once, each drain in its own function
//! process, against a stand-in whose ECS answers through one account-wide token
//! bucket. `scripts/load.sh` builds the release binaries and runs it; the Markdown
//! report goes to stdout, progress to stderr. docs/benchmarks.md ("Concurrent drains
//! under ECS throttling") says what it measures and what the figures mean.
//!
//! What the stand-in plays (tests/standin/standin/): Auto Scaling's lifecycle actions
//! with their heartbeat timeout enforced by the clock (an action not heartbeated for
//! HeartbeatTimeout expires, as on AWS); ECS's throttling (`/_standin/throttle`: a
//! bucket of LOAD_BURST calls refilled at LOAD_RATE calls/s for every ECS call of
//! every process; over budget, ThrottlingException); ECS's scheduler on DRAINING
//! instances (kept off for the first LOAD_STUCK_S seconds, so every drain holds its
//! action past HeartbeatTimeout, then stepping every LOAD_SCHEDULER_MS); Lambda's
//! Runtime API and SNS delivery (hook notifications and continuations, to whichever
//! process is free).
//!
//! Per scenario (LOAD_SIZES, default "10,50" drains): a fresh stand-in, a cluster of
//! the drained instances plus spares for the service replacements, on each drained
//! instance 2 replica-service tasks, 1 daemon task and 1 standalone task
//! (STANDALONE_TASKS=stop), one function process per drain (POLL_INTERVAL_SECONDS =
//! LOAD_POLL_S, invocations of LOAD_INVOCATION_MS), all actions started at once.
//!
//! Figures: ECS calls per second demanded (every call that reached the stand-in,
//! SDK retries included) and granted (answered by moto), throttled calls, function
//! errors and timeouts, lag from the last task on an instance reaching STOPPED to
//! its CompleteLifecycleAction (median / max), heartbeat gaps (the longest an action
//! went without its heartbeat clock restarting), expiries, the back-offs the
//! functions logged and how far they stretched their poll, peak memory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use devtools::{loadavg, max, median, seed_tasks, vm_kb};
use serde_json::Value;
use testkit::{Fleet, FleetSpec, LocalFunction, Result, Standin, ThrottleReport};

const TERMINATING: &str = "autoscaling:EC2_INSTANCE_TERMINATING";

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("load benchmark failed: {e}");
        std::process::exit(1);
    }
}

/// One scenario's settings (from the environment).
#[derive(Debug, Clone)]
struct Scenario {
    drains: usize,
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
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn progress(t0: Instant, what: &str) {
    eprintln!("[load {:>6.1}s] {what}", t0.elapsed().as_secs_f64());
}

async fn run() -> Result<()> {
    let t0 = Instant::now();
    let sizes: Vec<usize> = std::env::var("LOAD_SIZES")
        .unwrap_or_else(|_| "10,50".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
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
        let sc = Scenario {
            drains,
            rate_per_s: env_or("LOAD_RATE", 4.0),
            burst: env_or("LOAD_BURST", 10),
            poll_s: env_or("LOAD_POLL_S", 1),
            heartbeat_timeout_s: env_or("LOAD_HEARTBEAT_S", 30),
            invocation_ms: env_or("LOAD_INVOCATION_MS", 60_000),
            stuck_s: env_or("LOAD_STUCK_S", 35),
            scheduler_ms: env_or("LOAD_SCHEDULER_MS", 1000),
        };
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
        seed_tasks(&s, &fleet, i, &agent, 1)?;
        if i < n {
            seed_tasks(&s, &fleet, i, &web, 2)?;
            seed_tasks(&s, &fleet, i, &batch, 1)?;
        }
    }
    s.enforce_heartbeats(true)?;
    let logs: Vec<PathBuf> = (0..n)
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
    s.subscribe_function(&fleet.topic_arn, sc.invocation_ms)?;
    s.throttle("ecs:*", sc.rate_per_s, sc.burst)?;
    s.reset_calls()?;
    let setup_s = t_setup.elapsed().as_secs_f64();
    progress(
        t0,
        &format!(
            "{n} drains: fleet of {} ready in {setup_s:.1} s; starting every action at once",
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
    for log in &logs {
        let (back_offs, handed, poll_ms) = read_log(log);
        m.back_offs += back_offs;
        m.handed_off_on_failure += handed;
        m.max_poll_ms = m.max_poll_ms.max(poll_ms);
        let _ = std::fs::remove_file(log);
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
        "| drains (processes) | ECS bucket | ECS calls/s demanded: mean / peak | granted: mean / peak | throttled | function errors / timeouts | expiries | completed once | lag last task STOPPED -> completion, median / max | max heartbeat gap (aim < {:.0} s) | drain, median / max | invocations |\n|---|---|---|---|---|---|---|---|---|---|---|---|",
        runs.first()
            .map_or(12.0, |r| f64::from(r.sc.heartbeat_timeout_s) / 3.0 + 2.0)
    );
    for r in runs {
        let (dem, gr, peak_d, peak_g, _) = rates(&r.throttle);
        let _ = writeln!(
            o,
            "| {} | {} calls/s, burst {} | {dem:.1} / {peak_d} | {gr:.2} / {peak_g} | {} of {} ({:.0} %) | {} / {} | {} | {} of {} | {:.1} / {:.1} s | {:.1} s | {:.0} / {:.0} s | {} |",
            r.sc.drains,
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
            median(&r.lags_s),
            max(&r.lags_s),
            max(&r.gaps_s),
            median(&r.drains_s),
            max(&r.drains_s),
            r.invocations,
        );
    }
    for r in runs {
        let (dem, gr, _, _, seconds) = rates(&r.throttle);
        let _ = writeln!(
            o,
            "\n### {} drains\n\nSet-up {:.0} s (a cluster of {} instances: {} drained, {} spares; on each drained instance 2 service tasks, 1 daemon, 1 standalone task). \
             HeartbeatTimeout {} s (enforced by the stand-in's clock), POLL_INTERVAL_SECONDS={}, invocations of {} s, ECS scheduler (played) off for the first {} s, then a step every {} ms. \
             All actions started at once; the last ended after {:.0} s. ECS calls: {} granted, {} throttled over {seconds} s ({dem:.1} demanded/s, {gr:.2} granted/s against a bucket of {}/s). \
             Completed exactly once: {} of {}; more than once: {}; expired: {}; still held at the end: {}; completed before the instance's last task stopped: {}. \
             Heartbeats recorded: {}. Back-offs logged by the functions (an observation failed after the SDK's retries): {}; hand-offs forced by a failure: {}; the longest poll interval logged: {:.1} s. \
             Peak memory (VmHWM) of a function process: max {:.1} MB.\n",
            r.sc.drains,
            r.setup_s,
            r.sc.drains + r.spares,
            r.sc.drains,
            r.spares,
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
