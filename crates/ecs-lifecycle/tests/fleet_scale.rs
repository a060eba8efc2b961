//! Fleet-scale drains (issue 20, item 4): a benchmark, not a test. The real
//! `Drainer` runs against the in-memory fleet under tokio's paused clock; a
//! mass scale-in of many instances across five clusters, ECS's cluster
//! resource reads (DescribeContainerInstances, ListTasks, DescribeTasks,
//! ListContainerInstances) behind one account-wide token bucket (20 calls/s,
//! burst 100) of which another client spends 10 calls/s. This harness plays Auto Scaling's hooks (SNS to
//! Lambda), the ECS scheduler (each instance's tasks stop some time after it
//! is DRAINING, then an ECS task-stopped event goes to the function), and, in
//! `WAIT_MODE=queue`, the wait queue and Lambda's event source mapping
//! (`DelaySeconds` the poll interval, batches of up to 100 records within a
//! one-second batching window, at most `WaitConcurrency` invocations).
//!
//! `cargo test --workspace --test fleet_scale -- --ignored --nocapture`
//! prints a Markdown table (docs/benchmarks.md). `FLEET_DRAINS` (default
//! 1000), `FLEET_STUCK_S` (`a..b`, default 60..600), `FLEET_WINDOW_S` (the
//! batching window, default 1) and `FLEET_MODES` (default
//! `in-invocation,queue`) change the scenario.
//! It is `#[ignore]`d: CI does not run benchmarks.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use ecs_lifecycle::config::{DrainConfig, Env};
use ecs_lifecycle::drain::Drainer;
use ecs_lifecycle::error::Error;
use ecs_lifecycle::hook::Handler;
use ecs_lifecycle::hook::dispatch::Answer;
use ecs_lifecycle::model::{InstanceStatus, TaskStatus};
use ecs_lifecycle::report::Reporter;
use ecs_lifecycle::testing::fleet::FakeFleet;
use ecs_lifecycle::time::{epoch_ms, rfc3339, simulated};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio::time::Instant;

const EPOCH0: u64 = 1_800_000_000_000;
const HOOK_TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:ecs-lifecycle";
const CONTINUE_TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:ecs-lifecycle-continue";
const CLUSTERS: [&str; 5] = ["web", "api", "batch", "jobs", "edge"];
/// The template's defaults: the drain's poll with ECS events on, the hooks'
/// HeartbeatTimeout, MAX_DRAIN_SECONDS, the wait queue's batch and concurrency.
const POLL_S: u64 = 30;
const HEARTBEAT_TIMEOUT_S: u64 = 300;
const MAX_DRAIN_S: u64 = 1800;
const BATCH: usize = 100;
/// The mapping's batching window (the template's; `FLEET_WINDOW_S` to try others).
const BATCH_WINDOW_S: u64 = 1;
const WAIT_CONCURRENCY: usize = 10;
const FUNCTION_TIMEOUT: Duration = Duration::from_secs(900);
/// The step of the harness's loop.
const STEP: Duration = Duration::from_millis(100);
/// Lambda arm64 prices (us-east-1): per GB-second and per request; 128 MB.
const GB_SECOND_USD: f64 = 0.000_013_333_4;
const REQUEST_USD: f64 = 0.000_000_2;
const MEMORY_GB: f64 = 0.125;

#[path = "common/rng.rs"]
mod rng;
use rng::Rng;

struct Drain {
    id: String,
    cluster: &'static str,
    task: String,
    scale_in_at: Instant,
    stuck: Duration,
    /// When the harness (the scheduler) first saw it DRAINING.
    draining_at: Option<Instant>,
    stopped_at: Option<Instant>,
}

/// What an invocation returned, or that it ran into its timeout.
type Ran = Result<Result<Answer, Error>, tokio::time::error::Elapsed>;

struct Invocation {
    started: Instant,
    from_queue: bool,
    /// The SQS records of a batch (message ids to their continuation), to
    /// return those the function reports failed.
    records: HashMap<String, Value>,
    handle: JoinHandle<(Instant, Ran)>,
}

#[derive(Default)]
struct Figures {
    invocations: usize,
    queue_invocations: usize,
    records: usize,
    billed: Duration,
    max_in_flight: usize,
    function_errors: usize,
    failed_records: usize,
}

struct Bench {
    rng: Rng,
    queue: bool,
    fleet: FakeFleet,
    drainer: Arc<Drainer<FakeFleet, FakeFleet, FakeFleet>>,
    drains: Vec<Drain>,
    /// Direct deliveries (SNS or EventBridge to Lambda): when, the event.
    direct: Vec<(Instant, Value)>,
    /// The wait queue: when each message becomes visible, its id, its body.
    wait_queue: Vec<(Instant, String, Value)>,
    next_message: u64,
    published_seen: usize,
    running: Vec<Invocation>,
    figures: Figures,
    batch_window: Duration,
}

impl Bench {
    fn new(drains: usize, queue: bool, stuck: (u64, u64)) -> Self {
        let mut rng = Rng(0x5EED_F1EE7);
        let config = DrainConfig::from_env(&Env::new(|k| match k {
            "WAIT_MODE" => Some(if queue { "queue" } else { "in-invocation" }.to_owned()),
            "CLUSTER_NAME" => Some(CLUSTERS.join(",")),
            "POLL_INTERVAL_SECONDS" => Some(POLL_S.to_string()),
            "CONTINUATION_TOPIC_ARN" => Some(CONTINUE_TOPIC.to_owned()),
            "MAX_DRAIN_SECONDS" => Some(MAX_DRAIN_S.to_string()),
            _ => None,
        }))
        .unwrap();
        let fleet = FakeFleet::new();
        fleet.set_ecs_budget(20.0, 100.0, 10.0);
        // An AWS API round trip from Lambda.
        fleet.set_latency(Duration::from_millis(30));
        let (reporter, _kept) = Reporter::in_memory("terminate-drain", None);
        let drainer = Arc::new(
            Drainer::new(fleet.clone(), fleet.clone(), fleet.clone(), config)
                .with_reporter(reporter),
        );
        let t0 = Instant::now();
        let drains = (0..drains)
            .map(|k| {
                let id = format!("i-{k:017x}");
                let cluster = CLUSTERS[k % CLUSTERS.len()];
                fleet.register_in(&id, cluster);
                let task = format!("arn:aws:ecs:us-east-1:123456789012:task/{cluster}/{id}-0");
                fleet.run_service_task(&id, &task, &format!("{cluster}-svc"));
                Drain {
                    id,
                    cluster,
                    task,
                    // Auto Scaling terminates a mass scale-in over a minute.
                    scale_in_at: t0 + rng.millis(0, 60_000),
                    stuck: rng.millis(stuck.0 * 1000, stuck.1 * 1000),
                    draining_at: None,
                    stopped_at: None,
                }
            })
            .collect();
        Bench {
            rng,
            queue,
            fleet,
            drainer,
            drains,
            direct: Vec::new(),
            wait_queue: Vec::new(),
            next_message: 0,
            published_seen: 0,
            running: Vec::new(),
            figures: Figures::default(),
            batch_window: Duration::from_secs(
                std::env::var("FLEET_WINDOW_S")
                    .ok()
                    .map_or(BATCH_WINDOW_S, |v| {
                        v.parse().expect("FLEET_WINDOW_S: seconds")
                    }),
            ),
        }
    }

    async fn run(mut self) -> Report {
        let t0 = Instant::now();
        let cap = t0 + Duration::from_secs(MAX_DRAIN_S + 3600);
        let mut started = vec![false; self.drains.len()];
        loop {
            let now = Instant::now();
            for (k, d) in self.drains.iter().enumerate() {
                if !started[k] && now >= d.scale_in_at {
                    started[k] = true;
                    self.fleet.terminating(&d.id, "fleet", HEARTBEAT_TIMEOUT_S);
                    let at = now + self.rng.millis(100, 2000);
                    self.direct
                        .push((at, sns(HOOK_TOPIC, &hook_message(&d.id))));
                }
            }
            self.schedule_ecs(now);
            self.take_publications(now);
            self.deliver(now);
            self.reap().await;
            self.figures.max_in_flight = self.figures.max_in_flight.max(self.running.len());
            let over = started.iter().all(|s| *s)
                && self.running.is_empty()
                && self.direct.is_empty()
                && self.wait_queue.is_empty();
            if over || now >= cap {
                break;
            }
            tokio::time::sleep(STEP).await;
        }
        self.report(t0)
    }

    /// The ECS scheduler: a DRAINING instance's task stops after its stuck
    /// time, and ECS's task-stopped event reaches the function about a second
    /// later.
    fn schedule_ecs(&mut self, now: Instant) {
        for d in &mut self.drains {
            if d.stopped_at.is_some() || now < d.scale_in_at {
                continue;
            }
            if d.draining_at.is_none()
                && self
                    .fleet
                    .container_instance(&d.id)
                    .is_some_and(|ci| ci.status == InstanceStatus::Draining)
            {
                d.draining_at = Some(now);
            }
            if let Some(at) = d.draining_at
                && now >= at + d.stuck
            {
                self.fleet
                    .set_task_status(&d.task, TaskStatus::Stopped, TaskStatus::Stopped);
                d.stopped_at = Some(now);
                let event = task_event(d.cluster, &d.id, &d.task);
                self.direct.push((now + self.rng.millis(300, 1500), event));
            }
        }
    }

    /// The function's continuations: through the wait queue (a poll interval
    /// later) when they ask to wait, else straight back through SNS.
    fn take_publications(&mut self, now: Instant) {
        let published = self.fleet.published_since(self.published_seen);
        for (_, topic, body) in published {
            self.published_seen += 1;
            if topic != CONTINUE_TOPIC {
                continue;
            }
            let message: Value = serde_json::from_str(&body).unwrap();
            if self.queue && message["wait"] == "queue" {
                self.next_message += 1;
                let id = format!("m-{}", self.next_message);
                self.wait_queue
                    .push((now + Duration::from_secs(POLL_S), id, message));
            } else {
                let at = now + self.rng.millis(100, 1000);
                self.direct.push((at, sns(CONTINUE_TOPIC, &message)));
            }
        }
    }

    fn deliver(&mut self, now: Instant) {
        let (due, later): (Vec<_>, Vec<_>) = self.direct.drain(..).partition(|(t, _)| *t <= now);
        self.direct = later;
        for (_, event) in due {
            self.invoke(event, false, HashMap::new());
        }
        // The event source mapping: a batch when 100 records are visible or
        // the oldest has waited the batching window.
        loop {
            let in_flight = self.running.iter().filter(|r| r.from_queue).count();
            if in_flight >= WAIT_CONCURRENCY {
                break;
            }
            if self.wait_queue.is_empty() {
                break;
            }
            self.wait_queue.sort_by_key(|(t, id, _)| (*t, id.clone()));
            let visible = self.wait_queue.iter().filter(|(t, ..)| *t <= now).count();
            let oldest = self.wait_queue.first().map(|(t, ..)| *t);
            let ready = visible >= BATCH || oldest.is_some_and(|t| t + self.batch_window <= now);
            if visible == 0 || !ready {
                break;
            }
            let batch: Vec<_> = self.wait_queue.drain(..visible.min(BATCH)).collect();
            let records: HashMap<String, Value> = batch
                .iter()
                .map(|(_, id, m)| (id.clone(), m.clone()))
                .collect();
            let event = json!({"Records": batch
                .iter()
                .map(|(_, id, m)| sqs_record(id, m))
                .collect::<Vec<_>>()});
            self.invoke(event, true, records);
        }
    }

    fn invoke(&mut self, event: Value, from_queue: bool, records: HashMap<String, Value>) {
        self.figures.invocations += 1;
        self.figures.queue_invocations += usize::from(from_queue);
        self.figures.records += records.len().max(1);
        let drainer = Arc::clone(&self.drainer);
        let deadline_ms = epoch_ms() + FUNCTION_TIMEOUT.as_millis() as u64;
        let handle = tokio::spawn(async move {
            let run =
                tokio::time::timeout(FUNCTION_TIMEOUT, drainer.handle(&event, deadline_ms)).await;
            (Instant::now(), run)
        });
        self.running.push(Invocation {
            started: Instant::now(),
            from_queue,
            records,
            handle,
        });
    }

    async fn reap(&mut self) {
        let mut i = 0;
        while i < self.running.len() {
            if !self.running[i].handle.is_finished() {
                i += 1;
                continue;
            }
            let r = self.running.swap_remove(i);
            let (ended, run) = r.handle.await.unwrap();
            // Lambda bills each invocation by the millisecond.
            self.figures.billed += (ended - r.started).max(Duration::from_millis(1));
            match run {
                Ok(Ok(answer)) => {
                    // Records the function returned: visible again after the
                    // queue's visibility timeout (960 s).
                    for f in &answer.batch.batch_item_failures {
                        let id = f.item_identifier.clone();
                        if let Some(m) = r.records.get(&id) {
                            self.figures.failed_records += 1;
                            self.wait_queue
                                .push((ended + Duration::from_secs(960), id, m.clone()));
                        }
                    }
                }
                Ok(Err(e)) => {
                    self.figures.function_errors += 1;
                    if self.figures.function_errors <= 3 {
                        eprintln!("fleet_scale: a function error: {e}");
                    }
                }
                Err(_) => {
                    self.figures.function_errors += 1;
                    eprintln!("fleet_scale: an invocation ran into its timeout");
                }
            }
        }
    }

    fn report(self, t0: Instant) -> Report {
        let mut lags = Vec::new();
        let mut drain_time = Duration::ZERO;
        let (mut completed, mut expired, mut twice) = (0, 0, 0);
        for d in &self.drains {
            let done = self.fleet.completions(&d.id);
            completed += usize::from(!done.is_empty());
            twice += usize::from(done.len() > 1);
            expired += usize::from(self.fleet.expired_at(&d.id).is_some());
            if let Some((_, at)) = done.first() {
                drain_time += *at - d.scale_in_at;
                if let Some(stopped) = d.stopped_at {
                    lags.push((*at - stopped).as_secs_f64());
                }
            }
        }
        lags.sort_by(f64::total_cmp);
        let pct = |p: f64| lags.get(((lags.len() as f64 - 1.0) * p) as usize).copied();
        let mut ops: Vec<_> = self.fleet.ecs_operations().into_iter().collect();
        ops.sort();
        eprintln!(
            "fleet_scale: ECS calls per drain by operation: {}",
            ops.iter()
                .map(|(op, n)| format!("{op} {:.1}", *n as f64 / self.drains.len() as f64))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let calls = self.fleet.ecs_calls().len();
        let reads: usize = ops
            .iter()
            .filter(|(op, _)| {
                matches!(
                    *op,
                    "DescribeContainerInstances"
                        | "ListContainerInstances"
                        | "DescribeTasks"
                        | "ListTasks"
                )
            })
            .map(|(_, n)| n)
            .sum();
        let throttled = self.fleet.ecs_throttled();
        let billed_s = self.figures.billed.as_secs_f64();
        Report {
            queue: self.queue,
            drains: self.drains.len(),
            completed,
            expired,
            twice,
            figures: self.figures,
            ecs_calls: calls,
            ecs_reads: reads,
            ecs_throttled: throttled,
            drain_time_s: drain_time.as_secs_f64(),
            billed_s,
            lag_p50: pct(0.5),
            lag_p95: pct(0.95),
            lag_max: lags.last().copied(),
            elapsed_s: (Instant::now() - t0).as_secs_f64(),
        }
    }
}

struct Report {
    queue: bool,
    drains: usize,
    completed: usize,
    expired: usize,
    twice: usize,
    figures: Figures,
    ecs_calls: usize,
    ecs_reads: usize,
    ecs_throttled: usize,
    drain_time_s: f64,
    billed_s: f64,
    lag_p50: Option<f64>,
    lag_p95: Option<f64>,
    lag_max: Option<f64>,
    elapsed_s: f64,
}

impl Report {
    fn row(&self) -> String {
        let f = &self.figures;
        let n = self.drains as f64;
        let cost = f.invocations as f64 * REQUEST_USD + self.billed_s * MEMORY_GB * GB_SECOND_USD;
        let s = |x: Option<f64>| x.map_or("-".to_owned(), |v| format!("{v:.1}"));
        format!(
            "| {} | {} of {} | {} | {} | {} ({} from the queue, {} records) | {} | {:.1} % | {:.1} ({:.1} reads) | {:.1} % | {:.1} | {} / {} / {} s | {} / {} | ${:.5} | {:.0} s |",
            if self.queue { "queue" } else { "in-invocation" },
            self.completed,
            self.drains,
            self.expired,
            self.twice,
            f.invocations,
            f.queue_invocations,
            f.records,
            f.max_in_flight,
            100.0 * self.billed_s / self.drain_time_s.max(1e-9),
            self.ecs_calls as f64 / n,
            self.ecs_reads as f64 / n,
            100.0 * self.ecs_throttled as f64 / (self.ecs_reads as f64).max(1.0),
            (self.ecs_reads - self.ecs_throttled) as f64 / self.elapsed_s.max(1.0),
            s(self.lag_p50),
            s(self.lag_p95),
            s(self.lag_max),
            f.function_errors,
            f.failed_records,
            cost,
            self.elapsed_s,
        )
    }
}

fn hook_message(id: &str) -> Value {
    json!({
        "Origin": "AutoScalingGroup", "Destination": "EC2",
        "LifecycleHookName": "drain", "AccountId": "123456789012", "RequestId": format!("r-{id}"),
        "LifecycleTransition": "autoscaling:EC2_INSTANCE_TERMINATING",
        "AutoScalingGroupName": "fleet", "Service": "AWS Auto Scaling",
        "Time": rfc3339(epoch_ms()),
        "EC2InstanceId": id, "LifecycleActionToken": format!("token-{id}")
    })
}

/// An SNS notification of `message`; `url` spells the URL keys (`Url` in
/// Lambda's SNS record, `URL` in the document an SQS queue receives).
fn notification(topic: &str, message: &Value, url: &str) -> Value {
    json!({
        "Type": "Notification", "MessageId": "a1b2c3d4-0000-4000-8000-000000000001",
        "TopicArn": topic, "Subject": "s", "Message": message.to_string(),
        "Timestamp": rfc3339(epoch_ms()), "SignatureVersion": "1", "Signature": "x",
        format!("SigningCert{url}"): "https://sns.us-east-1.amazonaws.com/x.pem",
        format!("Unsubscribe{url}"): "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
        "MessageAttributes": {}
    })
}

/// `message` as SNS delivers it to a Lambda function from `topic`.
fn sns(topic: &str, message: &Value) -> Value {
    let n = notification(topic, message, "Url");
    json!({"Records": [{
        "EventSource": "aws:sns", "EventVersion": "1.0",
        "EventSubscriptionArn": format!("{topic}:0b7c7a53-5a0f-4a2e-8f1e-1c1d2e3f4a5b"),
        "Sns": n
    }]})
}

/// A wait-queue record: the SNS notification (no raw delivery) as its body.
fn sqs_record(id: &str, message: &Value) -> Value {
    json!({
        "messageId": id, "receiptHandle": format!("rh-{id}"),
        "body": notification(CONTINUE_TOPIC, message, "URL").to_string(),
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "0",
                       "SenderId": "sns", "ApproximateFirstReceiveTimestamp": "0"},
        "messageAttributes": {}, "md5OfBody": "0",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:terminate-drain-wait",
        "awsRegion": "us-east-1"
    })
}

/// An `ECS Task State Change` event (task STOPPED) as EventBridge delivers it.
fn task_event(cluster: &str, instance_id: &str, task: &str) -> Value {
    json!({
        "version": "0", "id": "3317b2af-7005-947d-b652-f55e762e571a",
        "detail-type": "ECS Task State Change", "source": "aws.ecs",
        "account": "123456789012", "time": rfc3339(epoch_ms()), "region": "us-east-1",
        "resources": [task],
        "detail": {
            "clusterArn": format!("arn:aws:ecs:us-east-1:123456789012:cluster/{cluster}"),
            "containerInstanceArn": format!("arn:aws:ecs:us-east-1:123456789012:container-instance/{cluster}/{instance_id}"),
            "desiredStatus": "STOPPED", "lastStatus": "STOPPED",
            "taskArn": task, "version": 3
        }
    })
}

fn scenario(drains: usize, queue: bool, stuck: (u64, u64)) -> Report {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let report = rt.block_on(async {
        simulated::start(EPOCH0, 1);
        Bench::new(drains, queue, stuck).run().await
    });
    simulated::stop();
    report
}

#[test]
#[ignore = "a benchmark (docs/benchmarks.md), not a test"]
fn fleet_scale() {
    let drains: usize = std::env::var("FLEET_DRAINS")
        .ok()
        .map_or(1000, |v| v.parse().expect("FLEET_DRAINS: a count"));
    let stuck = std::env::var("FLEET_STUCK_S").ok().map_or((60, 600), |v| {
        let (a, b) = v.split_once("..").expect("FLEET_STUCK_S: a..b");
        (a.parse().unwrap(), b.parse().unwrap())
    });
    let mut out = String::new();
    writeln!(
        out,
        "{drains} drains across {} clusters, tasks stuck {}..{} s after DRAINING, ECS 20 calls/s (burst 100) of which another client uses 10, poll {POLL_S} s, HeartbeatTimeout {HEARTBEAT_TIMEOUT_S} s, ECS events on\n",
        CLUSTERS.len(),
        stuck.0,
        stuck.1
    )
    .unwrap();
    out.push_str("| WAIT_MODE | completed | expired | completed twice | invocations | most in flight | billed / drain time | ECS calls per drain | reads throttled | reads granted per s (mean) | lag p50 / p95 / max | function errors / records returned | cost (arm64, 128 MB) | virtual time |\n");
    out.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    let mut failed = Vec::new();
    let modes = std::env::var("FLEET_MODES").unwrap_or_else(|_| "in-invocation,queue".into());
    for queue in modes.split(',').map(|m| match m.trim() {
        "queue" => true,
        "in-invocation" => false,
        other => panic!("FLEET_MODES: {other:?} is not queue or in-invocation"),
    }) {
        let started = std::time::Instant::now();
        let r = scenario(drains, queue, stuck);
        eprintln!(
            "fleet_scale: WAIT_MODE {} took {:.1} s of real time",
            if queue { "queue" } else { "in-invocation" },
            started.elapsed().as_secs_f64()
        );
        out.push_str(&r.row());
        out.push('\n');
        if r.expired > 0 || r.twice > 0 || r.completed < r.drains {
            failed.push(r.row());
        }
    }
    println!("{out}");
    assert!(
        failed.is_empty(),
        "drains expired, completed twice or not at all: {failed:?}"
    );
}
