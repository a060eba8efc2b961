//! The runtime's promises, shown with a workflow of its own: `Probe` waits until
//! a set time and then completes, nothing else, so each test is about the
//! runtime alone (hand-off, duplicates, expiry, heartbeat cadence, the error
//! policy) over the in-memory fleet, under tokio's paused clock.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::config::{CommonConfig, Env};
use crate::error::{AwsError, Error};
use crate::hook::dispatch::NoEvents;
use crate::hook::pacing::pace;
use crate::hook::runtime::{
    Clocks, Flow, Handler, Holder, HookWorkflow, OutcomeOf, Spec, Step, Tally,
};
use crate::hook::{Accept, Job};
use crate::model::{ActionResult, Transition};
use crate::ports::{AutoScaling, Publisher};
use crate::report::Record;
use crate::testing::fleet::{ActionState, FakeFleet};
use crate::time::epoch_ms;

const ID: &str = "i-0123456789abcdef0";
const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:continue";
const POLL_MS: u64 = 5_000;

/// Waits until `done_at`, then completes with CONTINUE.
#[derive(Debug)]
struct Probe {
    hold: Holder<FakeFleet, FakeFleet>,
    done_at: Instant,
    /// Observations fail with these first, one each.
    failures: Mutex<VecDeque<Error>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Memo {
    /// Looks taken, across hand-offs.
    looks: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct Looked {
    looks: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
enum Nudge {}

impl HookWorkflow for Probe {
    const SPEC: Spec = Spec {
        name: "probe",
        work: "probe",
        transition: Transition::Terminating,
    };
    type Event = NoEvents;
    type Memo = Memo;
    type Observed = bool;
    type Act = Nudge;
    type Done = Looked;

    fn holder(&self) -> &Holder<impl AutoScaling, impl Publisher> {
        &self.hold
    }

    async fn on_event(&self, event: NoEvents) -> Result<Accept<Memo>, Error> {
        match event {}
    }

    async fn observe(&self, job: &mut Job<Memo>, _clocks: &Clocks) -> Result<bool, Error> {
        if let Some(e) = self.failures.lock().unwrap().pop_front() {
            return Err(e);
        }
        job.memo.looks += 1;
        Ok(Instant::now() >= self.done_at)
    }

    fn decide(&self, job: &Job<Memo>, done: &bool, c: &Clocks) -> Step<Nudge, Looked> {
        let looked = Looked {
            looks: job.memo.looks,
        };
        if *done {
            return Step::Complete {
                result: ActionResult::Continue,
                detail: looked,
            };
        }
        let p = pace(
            c.now_ms,
            c.heartbeat_base_ms,
            c.heartbeat_every_ms,
            c.poll_ms,
            c.invocation_deadline_ms,
            10_000,
        );
        if p.hand_off {
            Step::HandOff
        } else {
            Step::Wait {
                sleep_ms: p.sleep_ms,
            }
        }
    }

    async fn act(
        &self,
        act: Nudge,
        _observed: &bool,
        _job: &mut Job<Memo>,
        _clocks: &Clocks,
    ) -> Result<Flow<Looked>, Error> {
        match act {}
    }

    fn cluster(&self, _job: &Job<Memo>) -> String {
        "c1".into()
    }

    async fn report(
        &self,
        _outcome: &OutcomeOf<Self>,
        _job: &Job<Memo>,
        _tally: &Tally,
        record: Record,
    ) -> Record {
        record
    }
}

fn probe(fleet: &FakeFleet, done_after: Duration) -> Probe {
    let common = CommonConfig::from_env(&Env::new(|k| match k {
        "POLL_INTERVAL_SECONDS" => Some((POLL_MS / 1000).to_string()),
        "CONTINUATION_TOPIC_ARN" => Some(TOPIC.to_owned()),
        _ => None,
    }))
    .unwrap();
    Probe {
        hold: Holder::new(fleet.clone(), fleet.clone(), common, "probe"),
        done_at: Instant::now() + done_after,
        failures: Mutex::new(VecDeque::new()),
    }
}

/// A terminate action of `heartbeat_timeout_s` held by the fleet, and its event.
fn action(heartbeat_timeout_s: u64) -> (FakeFleet, Value) {
    let fleet = FakeFleet::new();
    fleet.terminating(ID, "g", heartbeat_timeout_s);
    let event = json!({
        "LifecycleHookName": "drain", "AccountId": "123456789012", "RequestId": "r-1",
        "LifecycleTransition": "autoscaling:EC2_INSTANCE_TERMINATING",
        "AutoScalingGroupName": "g", "Service": "AWS Auto Scaling",
        "EC2InstanceId": ID, "LifecycleActionToken": "token-1"
    });
    (fleet, event)
}

fn deadline_in(d: Duration) -> u64 {
    epoch_ms() + u64::try_from(d.as_millis()).unwrap()
}

fn outcome(v: &Value) -> &Value {
    &v["outcomes"][0]
}

/// The longest the action went without its heartbeat clock restarting, from
/// `start` to its completion (or now).
fn max_gap(fleet: &FakeFleet, start: Instant) -> Duration {
    let mut marks = vec![start];
    marks.extend(fleet.heartbeats(ID));
    marks.extend(fleet.completions(ID).iter().map(|(_, t)| *t));
    if fleet.completions(ID).is_empty() {
        marks.push(Instant::now());
    }
    marks.sort();
    marks
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default()
}

fn throttled() -> Error {
    Error::Aws(AwsError::new(
        "ecs",
        "DescribeTasks",
        Some("ThrottlingException".into()),
        "Rate exceeded".into(),
    ))
}

#[tokio::test(start_paused = true)]
async fn heartbeats_on_the_hooks_cadence_and_completes_once() {
    let (fleet, event) = action(60);
    let start = Instant::now();
    let p = probe(&fleet, Duration::from_secs(300));
    let v = p
        .handle(&event, deadline_in(Duration::from_secs(900)))
        .await
        .unwrap()
        .to_json();
    assert_eq!(outcome(&v)["outcome"], "completed", "{v}");
    assert_eq!(fleet.completions(ID).len(), 1);
    // A third of 60 s: about 15 beats over 300 s, never a gap near the timeout.
    let beats = fleet.heartbeats(ID).len();
    assert!((14..=17).contains(&beats), "{beats} heartbeats");
    assert!(max_gap(&fleet, start) <= Duration::from_secs(21));
    assert_eq!(fleet.hook_reads(), 1);
}

#[tokio::test(start_paused = true)]
async fn heartbeats_from_the_first_moment_while_the_hooks_timeouts_cannot_be_read() {
    // Auto Scaling throttles DescribeLifecycleHooks for 100 s; the action's
    // HeartbeatTimeout is 30 s (the smallest). Nothing may wait for the read.
    let (fleet, event) = action(30);
    fleet.fail_hook_reads("Throttling", Duration::from_secs(100));
    let start = Instant::now();
    let p = probe(&fleet, Duration::from_secs(150));
    let v = p
        .handle(&event, deadline_in(Duration::from_secs(900)))
        .await
        .unwrap()
        .to_json();
    assert_eq!(outcome(&v)["outcome"], "completed", "{v}");
    assert_eq!(
        fleet.action_state(ID),
        Some(ActionState::Completed(ActionResult::Continue))
    );
    let gap = max_gap(&fleet, start);
    assert!(gap < Duration::from_secs(30), "{gap:?} without a heartbeat");
    assert!(fleet.hook_reads() > 1, "the read was retried");
}

#[tokio::test(start_paused = true)]
async fn hands_off_with_the_hooks_timeouts_and_the_next_invocation_reads_nothing_again() {
    let (fleet, event) = action(60);
    let start = Instant::now();
    let p = probe(&fleet, Duration::from_secs(100));
    let v = p
        .handle(&event, deadline_in(Duration::from_secs(40)))
        .await
        .unwrap()
        .to_json();
    assert_eq!(outcome(&v)["outcome"], "handed_off", "{v}");
    let published = fleet.published();
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].0, TOPIC);
    let continuation: Value = serde_json::from_str(&published[0].1).unwrap();
    assert_eq!(continuation["attempt"], 1);
    assert_eq!(continuation["held"], true);
    assert_eq!(continuation["hook_timeouts"]["heartbeat_timeout_s"], 60);
    assert!(continuation["state"]["looks"].as_u64().unwrap() >= 1);

    // The next invocation starts from the continuation: no second read of the hook.
    let v = p
        .handle(&continuation, deadline_in(Duration::from_secs(900)))
        .await
        .unwrap()
        .to_json();
    assert_eq!(outcome(&v)["outcome"], "completed", "{v}");
    assert_eq!(fleet.hook_reads(), 1);
    assert_eq!(fleet.completions(ID).len(), 1);
    assert!(max_gap(&fleet, start) <= Duration::from_secs(21));
}

#[tokio::test(start_paused = true)]
async fn a_duplicate_delivery_completes_the_action_once() {
    let (fleet, event) = action(60);
    let p = probe(&fleet, Duration::from_secs(30));
    let deadline = deadline_in(Duration::from_secs(900));
    let (a, b) = tokio::join!(p.handle(&event, deadline), p.handle(&event, deadline));
    let mut outcomes = [
        outcome(&a.unwrap().to_json())["outcome"]
            .as_str()
            .unwrap()
            .to_owned(),
        outcome(&b.unwrap().to_json())["outcome"]
            .as_str()
            .unwrap()
            .to_owned(),
    ];
    outcomes.sort();
    assert_eq!(outcomes, ["already_completed", "completed"]);
    assert_eq!(fleet.completions(ID).len(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_expired_action_ends_the_work_without_completing_or_handing_off() {
    let (fleet, event) = action(60);
    let p = probe(&fleet, Duration::from_secs(3_000));
    let f = fleet.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(45)).await;
        f.expire(ID);
    });
    let v = p
        .handle(&event, deadline_in(Duration::from_secs(900)))
        .await
        .unwrap()
        .to_json();
    assert_eq!(outcome(&v)["outcome"], "already_completed", "{v}");
    assert!(fleet.completions(ID).is_empty());
    assert!(fleet.published().is_empty());
}

#[tokio::test(start_paused = true)]
async fn transient_failures_are_waited_out_and_others_end_after_a_last_heartbeat() {
    let (fleet, event) = action(60);
    let p = probe(&fleet, Duration::from_secs(3_000));
    p.failures
        .lock()
        .unwrap()
        .extend([throttled(), throttled(), Error::Internal("a bug".into())]);
    let start = Instant::now();
    let err = p
        .handle(&event, deadline_in(Duration::from_secs(900)))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Internal(_)), "{err}");
    // Two back-offs (jittered around a stretched poll), then the give-up.
    assert!(Instant::now() - start >= Duration::from_secs(5));
    let beats = fleet.heartbeats(ID);
    let last = beats.last().copied().unwrap();
    assert_eq!(
        last,
        Instant::now(),
        "a last heartbeat as the invocation ends"
    );
    assert!(fleet.completions(ID).is_empty());
    assert_eq!(fleet.action_state(ID), Some(ActionState::Waiting));
}

#[tokio::test(start_paused = true)]
async fn a_completion_that_fails_leaves_the_action_heartbeated() {
    // The completion is throttled three times: the runtime backs off and tries
    // again, and the heartbeater never stops meanwhile.
    let (fleet, event) = action(30);
    fleet.fail_completions(3, "Throttling");
    fleet.set_latency(Duration::from_millis(300));
    let start = Instant::now();
    let p = probe(&fleet, Duration::from_secs(20));
    let v = p
        .handle(&event, deadline_in(Duration::from_secs(900)))
        .await
        .unwrap()
        .to_json();
    assert_eq!(outcome(&v)["outcome"], "completed", "{v}");
    assert_eq!(fleet.completions(ID).len(), 1);
    let gap = max_gap(&fleet, start);
    assert!(gap < Duration::from_secs(30), "{gap:?} without a heartbeat");
}

fn queued_probe(fleet: &FakeFleet, done_after: Duration) -> Probe {
    queued_probe_polling(fleet, done_after, POLL_MS)
}

fn queued_probe_polling(fleet: &FakeFleet, done_after: Duration, poll_ms: u64) -> Probe {
    let common = CommonConfig::from_env(&Env::new(move |k| match k {
        "POLL_INTERVAL_SECONDS" => Some((poll_ms / 1000).to_string()),
        "CONTINUATION_TOPIC_ARN" => Some(TOPIC.to_owned()),
        "WAIT_MODE" => Some("queue".to_owned()),
        _ => None,
    }))
    .unwrap();
    Probe {
        hold: Holder::new(fleet.clone(), fleet.clone(), common, "probe"),
        done_at: Instant::now() + done_after,
        failures: Mutex::new(VecDeque::new()),
    }
}

/// WAIT_MODE=queue: no invocation waits for the work. Each looks, hands the
/// work over at once (the queue's delay is the pace; played here by sleeping
/// the poll interval between deliveries), and heartbeats only when the beat
/// falls due before the next delivery: the action lives on the hook's cadence
/// and is completed once, by the invocation that finds it done.
#[tokio::test(start_paused = true)]
async fn in_queue_mode_no_invocation_waits_and_the_action_lives_on_its_cadence() {
    // Across invocations the wall clock must move with tokio's paused clock.
    crate::time::simulated::start(epoch_ms(), 7);
    let (fleet, event) = action(120);
    let start = Instant::now();
    let p = queued_probe(&fleet, Duration::from_secs(300));
    let mut delivery = event;
    let mut invocations = 0;
    let mut longest = Duration::ZERO;
    loop {
        invocations += 1;
        assert!(invocations < 200, "the work never ended");
        let began = Instant::now();
        let v = p
            .handle(&delivery, deadline_in(Duration::from_secs(900)))
            .await
            .unwrap()
            .to_json();
        longest = longest.max(Instant::now() - began);
        match outcome(&v)["outcome"].as_str() {
            Some("handed_off") => {}
            Some("completed") => break,
            other => panic!(
                "{other:?} after {invocations} invocations, {:?}: {v}; heartbeats at {:?}; last continuation {}",
                Instant::now() - start,
                fleet
                    .heartbeats(ID)
                    .iter()
                    .map(|t| *t - start)
                    .collect::<Vec<_>>(),
                fleet
                    .published()
                    .last()
                    .map(|p| p.1.clone())
                    .unwrap_or_default()
            ),
        }
        let published = fleet.published();
        delivery = serde_json::from_str(&published.last().unwrap().1).unwrap();
        tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
    }
    assert!(
        longest <= Duration::from_secs(1),
        "an invocation waited {longest:?}"
    );
    // About one delivery per poll interval over 300 s.
    assert!(
        (55..=65).contains(&invocations),
        "{invocations} invocations"
    );
    assert_eq!(fleet.completions(ID).len(), 1);
    // A third of 120 s is the cadence: not a heartbeat per delivery.
    let beats = fleet.heartbeats(ID).len();
    assert!((6..=10).contains(&beats), "{beats} heartbeats");
    let gap = max_gap(&fleet, start);
    assert!(
        gap <= Duration::from_secs(50),
        "{gap:?} without a heartbeat"
    );
    crate::time::simulated::stop();
}

/// A queue whose delay (the poll interval, 30 s, plus 10 s of slack) does not
/// fit twice in the hook's HeartbeatTimeout (60 s) would let the action expire
/// between two deliveries: the work waits in the invocation instead.
#[tokio::test(start_paused = true)]
async fn a_queue_too_slow_for_the_hooks_timeout_is_not_used() {
    let (fleet, event) = action(60);
    let start = Instant::now();
    let p = queued_probe_polling(&fleet, Duration::from_secs(200), 30_000);
    let v = p
        .handle(&event, deadline_in(Duration::from_secs(900)))
        .await
        .unwrap()
        .to_json();
    assert_eq!(outcome(&v)["outcome"], "completed", "{v}");
    assert!(fleet.published().is_empty(), "no hand-off");
    assert!(max_gap(&fleet, start) <= Duration::from_secs(21));
}

#[test]
fn wait_mode_is_read_and_a_bad_one_is_named() {
    let mode = |v: Option<&str>| {
        let v = v.map(str::to_owned);
        CommonConfig::from_env(&Env::new(move |k| match k {
            "WAIT_MODE" => v.clone(),
            _ => None,
        }))
    };
    use crate::config::WaitMode;
    assert_eq!(mode(None).unwrap().wait_mode, WaitMode::InInvocation);
    assert_eq!(mode(Some("queue")).unwrap().wait_mode, WaitMode::Queue);
    assert_eq!(
        mode(Some("In-Invocation")).unwrap().wait_mode,
        WaitMode::InInvocation
    );
    let e = mode(Some("sqs")).unwrap_err();
    assert_eq!(e.var, "WAIT_MODE");
    assert!(e.to_string().contains("in-invocation or queue"), "{e}");
}
