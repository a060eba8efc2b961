//! The runtime's loop over the in-memory fleet, under tokio's paused clock: a
//! drain of minutes runs in milliseconds, and every time is exact.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use crate::config::{DrainConfig, Env};
use crate::drain::Drainer;
use crate::hook::Handler;
use crate::model::{ActionResult, InstanceStatus, TaskStatus};
use crate::testing::fleet::{ActionState, FakeFleet, Fault, FaultKind};
use crate::time::epoch_ms;

const ID: &str = "i-0123456789abcdef0";
const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:continue";

fn drainer(fleet: &FakeFleet, poll_s: u64) -> Drainer<FakeFleet, FakeFleet, FakeFleet> {
    let poll = poll_s.to_string();
    let config = DrainConfig::from_env(&Env::new(|k| match k {
        "CLUSTER_NAME" => Some("c1".to_owned()),
        "POLL_INTERVAL_SECONDS" => Some(poll.clone()),
        "CONTINUATION_TOPIC_ARN" => Some(TOPIC.to_owned()),
        _ => None,
    }))
    .unwrap();
    Drainer::new(fleet.clone(), fleet.clone(), fleet.clone(), config)
}

/// The terminate action as Auto Scaling sends it (the bare message).
fn terminate_event() -> Value {
    json!({
        "LifecycleHookName": "drain", "AccountId": "123456789012", "RequestId": "r-1",
        "LifecycleTransition": "autoscaling:EC2_INSTANCE_TERMINATING",
        "AutoScalingGroupName": "g", "Service": "AWS Auto Scaling",
        "EC2InstanceId": ID, "LifecycleActionToken": "token-1"
    })
}

/// A draining instance with one service task that ECS stops after `stops_after`.
fn fleet_with_task(heartbeat_timeout_s: u64, stops_after: Option<Duration>) -> FakeFleet {
    let fleet = FakeFleet::new();
    fleet.terminating(ID, "g", heartbeat_timeout_s);
    fleet.register(ID);
    fleet.run_service_task(ID, "task-1", "web");
    if let Some(after) = stops_after {
        let f = fleet.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            f.stop_task("task-1");
        });
    }
    fleet
}

fn outcome(v: &Value) -> &str {
    v["outcomes"][0]["outcome"].as_str().unwrap_or("")
}

fn deadline_in(d: Duration) -> u64 {
    epoch_ms() + u64::try_from(d.as_millis()).unwrap()
}

#[tokio::test(start_paused = true)]
async fn heartbeats_every_third_of_the_timeout_until_the_completion() {
    let start = Instant::now();
    let fleet = fleet_with_task(30, Some(Duration::from_secs(95)));
    let d = drainer(&fleet, 10);

    let v = d
        .handle(&terminate_event(), deadline_in(Duration::from_secs(900)))
        .await
        .unwrap()
        .to_json();

    assert_eq!(outcome(&v), "completed", "{v}");
    assert_eq!(v["outcomes"][0]["reason"], json!("Drained"));
    let completions = fleet.completions(ID);
    assert_eq!(completions.len(), 1);
    assert_eq!(completions[0].0, ActionResult::Continue);
    // Completed at the first poll after the task stopped (95 s), not later.
    let done = completions[0].1 - start;
    assert!(
        done >= Duration::from_secs(95) && done <= Duration::from_secs(105),
        "{done:?}"
    );
    // Never more than a third of HeartbeatTimeout (10 s) without a heartbeat.
    let mut marks = vec![start];
    marks.extend(fleet.heartbeats(ID));
    marks.push(completions[0].1);
    for pair in marks.windows(2) {
        assert!(
            pair[1] - pair[0] <= Duration::from_secs(10),
            "a gap of {:?}",
            pair[1] - pair[0]
        );
    }
    assert!(fleet.heartbeats(ID).len() >= 9);
    assert_eq!(fleet.refused(), 0);
    assert_eq!(
        fleet.action_state(ID),
        Some(ActionState::Completed(ActionResult::Continue))
    );
}

#[tokio::test(start_paused = true)]
async fn hands_off_before_the_invocation_deadline_and_the_next_one_completes() {
    let start = Instant::now();
    let fleet = fleet_with_task(300, None);
    let d = drainer(&fleet, 10);

    let v = d
        .handle(&terminate_event(), deadline_in(Duration::from_secs(60)))
        .await
        .unwrap()
        .to_json();

    assert_eq!(outcome(&v), "handed_off", "{v}");
    assert_eq!(v["outcomes"][0]["attempt"], json!(1));
    let handed_at = Instant::now() - start;
    // Within the margin (10 s) before the deadline, with a poll's room: not earlier.
    assert!(
        handed_at >= Duration::from_secs(40) && handed_at <= Duration::from_secs(50),
        "{handed_at:?}"
    );
    let published = fleet.published();
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].0, TOPIC);
    let continuation: Value = serde_json::from_str(&published[0].1).unwrap();
    assert_eq!(continuation["function"], json!("terminate-drain"));
    assert_eq!(continuation["attempt"], json!(1));
    assert!(
        continuation["state"]["container_instance_arn"]
            .as_str()
            .is_some_and(|a| a.ends_with(ID))
    );
    assert!(fleet.completions(ID).is_empty());

    // The next invocation picks the continuation up; the task stops meanwhile.
    fleet.stop_task("task-1");
    let v = d
        .handle(&continuation, deadline_in(Duration::from_secs(60)))
        .await
        .unwrap()
        .to_json();
    assert_eq!(outcome(&v), "completed", "{v}");
    assert_eq!(fleet.completions(ID).len(), 1);
    assert_eq!(fleet.published().len(), 1, "no second hand-off");
}

#[tokio::test(start_paused = true)]
async fn a_duplicate_delivery_completes_the_action_once() {
    let fleet = fleet_with_task(60, Some(Duration::from_secs(30)));
    let d = drainer(&fleet, 5);
    let deadline = deadline_in(Duration::from_secs(900));

    let event = terminate_event();
    let (a, b) = tokio::join!(d.handle(&event, deadline), d.handle(&event, deadline));
    let (a, b) = (a.unwrap().to_json(), b.unwrap().to_json());

    // One completes; the other finds the action over (completed elsewhere) or
    // the instance no longer waiting: never a second completion.
    let (first, second) = (outcome(&a), outcome(&b));
    let other = match (first, second) {
        ("completed", other) | (other, "completed") => other,
        _ => panic!("neither completed: {a} {b}"),
    };
    assert!(["already_completed", "stopped"].contains(&other), "{a} {b}");
    assert_eq!(fleet.completions(ID).len(), 1);

    // A third delivery, after the end, does nothing.
    let c = d.handle(&event, deadline).await.unwrap().to_json();
    assert_eq!(outcome(&c), "stopped", "{c}");
    assert_eq!(fleet.completions(ID).len(), 1);
    assert!(fleet.published().is_empty());
}

#[tokio::test(start_paused = true)]
async fn an_expired_action_ends_the_drain_without_completing_or_handing_off() {
    let fleet = fleet_with_task(30, None);
    let d = drainer(&fleet, 10);
    let f = fleet.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(25)).await;
        f.expire(ID);
    });

    let v = d
        .handle(&terminate_event(), deadline_in(Duration::from_secs(900)))
        .await
        .unwrap()
        .to_json();

    // The first heartbeat after the expiry learns it; the drain stops there.
    let o = outcome(&v);
    assert!(o == "already_completed" || o == "stopped", "{v}");
    assert!(fleet.completions(ID).is_empty());
    assert!(fleet.published().is_empty());
    assert_eq!(fleet.action_state(ID), Some(ActionState::Expired));
}

#[tokio::test(start_paused = true)]
async fn dry_run_decides_and_changes_nothing() {
    let fleet = fleet_with_task(30, None);
    let config = DrainConfig::from_env(&Env::new(|k| match k {
        "CLUSTER_NAME" => Some("c1".to_owned()),
        "DRY_RUN" => Some("true".to_owned()),
        _ => None,
    }))
    .unwrap();
    let d = Drainer::new(fleet.clone(), fleet.clone(), fleet.clone(), config);

    let v = d
        .handle(&terminate_event(), deadline_in(Duration::from_secs(900)))
        .await
        .unwrap()
        .to_json();

    assert_eq!(outcome(&v), "dry_run", "{v}");
    assert_eq!(v["outcomes"][0]["decision"]["step"], json!("SetDraining"));
    assert!(fleet.heartbeats(ID).is_empty() && fleet.completions(ID).is_empty());
    assert_eq!(fleet.action_state(ID), Some(ActionState::Waiting));
}

/// Gaps between the action's start, its heartbeats and its completion.
fn max_gap(fleet: &FakeFleet, start: Instant) -> Duration {
    let mut marks = vec![start];
    marks.extend(fleet.heartbeats(ID));
    marks.extend(fleet.completions(ID).iter().map(|(_, t)| *t));
    marks
        .windows(2)
        .map(|p| p[1] - p[0])
        .max()
        .unwrap_or_default()
}

#[tokio::test(start_paused = true)]
async fn an_ecs_outage_longer_than_the_heartbeat_timeout_loses_nothing() {
    let start = Instant::now();
    // HeartbeatTimeout at its minimum (30 s); ECS answers 503 for 100 s, and the
    // task stops (for ECS) at 60 s, in the middle of it.
    let fleet = fleet_with_task(30, Some(Duration::from_secs(60)));
    let d = drainer(&fleet, 10);
    let f = fleet.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        f.fail_ecs("ServiceUnavailable", Duration::from_secs(100));
    });

    let v = d
        .handle(&terminate_event(), deadline_in(Duration::from_secs(900)))
        .await
        .unwrap()
        .to_json();

    assert_eq!(outcome(&v), "completed", "{v}");
    let completions = fleet.completions(ID);
    assert_eq!(completions.len(), 1);
    let done = completions[0].1 - start;
    // After the outage (105 s), within about one back-off of it.
    assert!(
        done >= Duration::from_secs(105) && done <= Duration::from_secs(140),
        "{done:?}"
    );
    assert!(
        max_gap(&fleet, start) <= Duration::from_secs(10),
        "{:?}",
        max_gap(&fleet, start)
    );
    assert_ne!(fleet.action_state(ID), Some(ActionState::Expired));
    // It kept trying, but backed off: not one call per poll interval of 10 s... at
    // most a few dozen in 100 s.
    let during: Vec<_> = fleet
        .ecs_calls()
        .into_iter()
        .filter(|t| *t - start > Duration::from_secs(5) && *t - start < Duration::from_secs(105))
        .collect();
    assert!(
        !during.is_empty() && during.len() <= 30,
        "{} calls",
        during.len()
    );
}

#[tokio::test(start_paused = true)]
async fn slow_ecs_calls_never_hold_a_heartbeat_back() {
    let start = Instant::now();
    // Every ECS call takes 25 s (an SDK call spending its retries); HeartbeatTimeout 30 s.
    let fleet = fleet_with_task(30, Some(Duration::from_secs(120)));
    fleet.set_ecs_latency(Duration::from_secs(25));
    let d = drainer(&fleet, 10);

    let v = d
        .handle(&terminate_event(), deadline_in(Duration::from_secs(900)))
        .await
        .unwrap()
        .to_json();

    assert_eq!(outcome(&v), "completed", "{v}");
    assert!(
        max_gap(&fleet, start) <= Duration::from_secs(10),
        "{:?}",
        max_gap(&fleet, start)
    );
    assert_eq!(fleet.completions(ID).len(), 1);
}

/// CompleteLifecycleAction hangs until the SDK's operation timeout (45 s) from
/// now for `how_long`.
fn hang_completions(fleet: &FakeFleet, how_long: Duration) {
    let now = Instant::now();
    fleet.add_fault(Fault {
        service: "autoscaling",
        operation: Some("CompleteLifecycleAction"),
        from: now,
        until: now + how_long,
        kind: FaultKind::Timeout(Duration::from_secs(45)),
    });
}

#[tokio::test(start_paused = true)]
async fn a_hanging_completion_never_holds_a_heartbeat_back() {
    // The simulation's seed 9474: HeartbeatTimeout 45 s, a completion that hangs
    // 45 s; the heartbeats go on meanwhile and the retried completion succeeds.
    let start = Instant::now();
    let fleet = fleet_with_task(45, Some(Duration::from_secs(20)));
    hang_completions(&fleet, Duration::from_secs(40));
    let d = drainer(&fleet, 10);

    let v = d
        .handle(&terminate_event(), deadline_in(Duration::from_secs(900)))
        .await
        .unwrap()
        .to_json();

    assert_eq!(outcome(&v), "completed", "{v}");
    assert_eq!(fleet.completions(ID).len(), 1);
    assert!(
        max_gap(&fleet, start) <= Duration::from_secs(15),
        "{:?}",
        max_gap(&fleet, start)
    );
}

#[tokio::test(start_paused = true)]
async fn a_hanging_completion_leaves_the_margin_to_hand_over() {
    // The simulation's seed 1940: a completion that hangs near the end of the
    // invocation fails at the hand-off point and the work is handed over before
    // the deadline; the next invocation completes.
    let start = Instant::now();
    let fleet = fleet_with_task(300, Some(Duration::from_secs(25)));
    hang_completions(&fleet, Duration::from_secs(60));
    let d = drainer(&fleet, 10);

    let v = d
        .handle(&terminate_event(), deadline_in(Duration::from_secs(60)))
        .await
        .unwrap()
        .to_json();

    assert_eq!(outcome(&v), "handed_off", "{v}");
    assert!(Instant::now() - start < Duration::from_secs(60));
    assert!(fleet.completions(ID).is_empty());
    tokio::time::sleep(Duration::from_secs(5)).await;
    let continuation: Value = serde_json::from_str(&fleet.published()[0].1).unwrap();
    let v = d
        .handle(&continuation, deadline_in(Duration::from_secs(60)))
        .await
        .unwrap()
        .to_json();
    assert_eq!(outcome(&v), "completed", "{v}");
    assert_eq!(fleet.completions(ID).len(), 1);
}

#[tokio::test(start_paused = true)]
async fn throttling_stretches_the_poll_and_it_shrinks_back() {
    let start = Instant::now();
    let fleet = fleet_with_task(300, Some(Duration::from_secs(400)));
    let d = drainer(&fleet, 2);
    let f = fleet.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(20)).await;
        f.fail_ecs("ThrottlingException", Duration::from_secs(200));
    });

    let v = d
        .handle(&terminate_event(), deadline_in(Duration::from_secs(900)))
        .await
        .unwrap()
        .to_json();
    assert_eq!(outcome(&v), "completed", "{v}");

    let calls = fleet.ecs_calls();
    let window = |from: u64, to: u64| {
        calls
            .iter()
            .filter(|t| {
                let s = (**t - start).as_secs();
                s >= from && s < to
            })
            .count()
    };
    // Unthrottled, a 2 s poll makes one call (a brief look: the container
    // instance's counts) every 2 s, and a full look (about 4 calls) every five
    // minutes: ~50 in 100 s.
    let before = window(0, 20);
    let throttled = window(120, 220);
    let after = window(300, 400);
    assert!(before >= 8, "before: {before}");
    assert!(throttled <= 10, "while throttled: {throttled}");
    assert!(after >= 40, "back to pace after: {after}");
}

#[tokio::test(start_paused = true)]
async fn an_error_waiting_cannot_heal_ends_after_a_last_heartbeat() {
    let fleet = fleet_with_task(30, None);
    let d = drainer(&fleet, 10);
    let f = fleet.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(15)).await;
        f.fail_ecs("AccessDeniedException", Duration::from_secs(600));
    });
    let before_error = Instant::now();

    let err = d
        .handle(&terminate_event(), deadline_in(Duration::from_secs(900)))
        .await
        .unwrap_err();

    assert_eq!(err.kind(), "EcsLifecycle.AwsError");
    assert!(!err.is_retryable(), "{err}");
    let heartbeats = fleet.heartbeats(ID);
    let last = *heartbeats.last().unwrap();
    // The last heartbeat is the failure's own, sent when it happened (about 20 s), not a
    // scheduled one (10 s).
    assert!(
        last - before_error >= Duration::from_secs(15),
        "{heartbeats:?}"
    );
    assert!(fleet.completions(ID).is_empty());
    assert_eq!(fleet.action_state(ID), Some(ActionState::Waiting));
}

#[tokio::test(start_paused = true)]
async fn a_failing_publish_is_retried_within_the_margin() {
    let fleet = fleet_with_task(300, None);
    fleet.fail_publishes(2, "InternalError");
    let d = drainer(&fleet, 10);

    let v = d
        .handle(&terminate_event(), deadline_in(Duration::from_secs(60)))
        .await
        .unwrap()
        .to_json();

    assert_eq!(outcome(&v), "handed_off", "{v}");
    assert_eq!(fleet.published().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_publish_that_keeps_failing_ends_in_an_error_after_a_heartbeat() {
    let fleet = fleet_with_task(300, None);
    fleet.fail_publishes(1000, "InternalError");
    let d = drainer(&fleet, 10);
    let started = Instant::now();

    let err = d
        .handle(&terminate_event(), deadline_in(Duration::from_secs(60)))
        .await
        .unwrap_err();

    assert!(err.is_retryable(), "{err}");
    let elapsed = Instant::now() - started;
    assert!(
        elapsed < Duration::from_secs(60),
        "{elapsed:?}: past the deadline"
    );
    // The heartbeat just before failing restarts Auto Scaling's clock for Lambda's retry.
    let last = *fleet.heartbeats(ID).last().unwrap();
    assert!(
        last - started >= Duration::from_secs(45),
        "{:?}",
        last - started
    );
    assert_eq!(fleet.action_state(ID), Some(ActionState::Waiting));
}

#[tokio::test(start_paused = true)]
async fn no_step_sleeps_past_the_hand_off_point() {
    // A daemon-only instance: the step before the hand-off point is StopTasks,
    // which waits a poll (30 s) for the daemon to stop; the daemon never stops.
    let fleet = FakeFleet::new();
    fleet.terminating(ID, "g", 300);
    fleet.register(ID);
    fleet.run_daemon_task(ID, "daemon-1", "agent");
    let d = drainer(&fleet, 30);
    let started = Instant::now();

    let v = d
        .handle(&terminate_event(), deadline_in(Duration::from_secs(35)))
        .await
        .unwrap()
        .to_json();

    assert_eq!(outcome(&v), "handed_off", "{v}");
    // Handed off by the hand-off point (35 s - 10 s margin), never after it.
    let at = Instant::now() - started;
    assert!(at <= Duration::from_secs(26), "{at:?}");
}

#[tokio::test(start_paused = true)]
async fn a_continuation_from_a_clock_ahead_of_ours_is_taken_as_now() {
    let start = Instant::now();
    // HeartbeatTimeout 60 s; the task stops at 200 s. Taken at its word, a last
    // heartbeat an hour ahead would put the next one an hour away: the action
    // would expire at 60 s.
    let fleet = fleet_with_task(60, Some(Duration::from_secs(200)));
    let d = drainer(&fleet, 10);
    let future = epoch_ms() + 3_600_000;
    let continuation = json!({
        "kind": "ecs-lifecycle.continuation", "version": 1, "function": "terminate-drain",
        "action": terminate_event(), "attempt": 3,
        "started_at_ms": future, "last_heartbeat_ms": future, "state": null
    });

    let v = d
        .handle(&continuation, deadline_in(Duration::from_secs(600)))
        .await
        .unwrap()
        .to_json();

    assert_eq!(outcome(&v), "completed", "{v}");
    assert!(
        fleet.heartbeats(ID).len() >= 9,
        "{:?}",
        fleet.heartbeats(ID)
    );
    assert!(max_gap(&fleet, start) <= Duration::from_secs(20));
}

#[tokio::test(start_paused = true)]
async fn a_duplicate_chain_mid_drain_ends_the_older_one_within_a_poll() {
    let start = Instant::now();
    let fleet = fleet_with_task(300, Some(Duration::from_secs(100)));
    let d = drainer(&fleet, 10);
    let deadline = deadline_in(Duration::from_secs(900));
    let event = terminate_event();

    let first = async {
        let v = d.handle(&event, deadline).await.unwrap().to_json();
        (v, Instant::now() - start)
    };
    let duplicate = async {
        tokio::time::sleep(Duration::from_secs(30)).await;
        d.handle(&event, deadline).await.unwrap().to_json()
    };
    let ((a, a_ended), b) = tokio::join!(first, duplicate);

    assert_eq!(outcome(&a), "stopped", "{a}");
    assert!(
        a["outcomes"][0]["reason"]["Superseded"]["by"].is_string(),
        "{a}"
    );
    // Within one poll (10 s) of the duplicate's claim at 30 s.
    assert!(a_ended <= Duration::from_secs(41), "{a_ended:?}");
    assert_eq!(outcome(&b), "completed", "{b}");
    assert_eq!(fleet.completions(ID).len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_failed_sqs_record_without_message_id_fails_the_batch_loudly() {
    let fleet = FakeFleet::new();
    let d = drainer(&fleet, 10);
    let deadline = deadline_in(Duration::from_secs(60));
    let batch = |id: Option<&str>| {
        let mut record = json!({"eventSource": "aws:sqs", "body": "not json"});
        if let Some(id) = id {
            record["messageId"] = json!(id);
        }
        json!({"Records": [record]})
    };

    // Named: reported in batchItemFailures, the rest of the batch is done.
    let v = d
        .handle(&batch(Some("m-1")), deadline)
        .await
        .unwrap()
        .to_json();
    assert_eq!(v["batchItemFailures"], json!([{"itemIdentifier": "m-1"}]));
    // Unnamed: an error, so that Lambda returns the whole batch to the queue.
    let err = d.handle(&batch(None), deadline).await.unwrap_err();
    assert_eq!(err.kind(), "EcsLifecycle.BadEvent");
}

/// `ECS Task State Change` for a task of the fake fleet's instance `ID`.
fn task_stopped_event(cluster: &str, container_instance: &str) -> Value {
    json!({
        "version": "0", "id": "e-1", "detail-type": "ECS Task State Change",
        "source": "aws.ecs", "account": "123456789012", "time": "2026-11-22T05:10:31Z",
        "region": "us-east-1", "resources": [],
        "detail": {
            "clusterArn": format!("arn:aws:ecs:us-east-1:123456789012:cluster/{cluster}"),
            "containerInstanceArn": container_instance,
            "taskArn": "task-1", "lastStatus": "STOPPED", "desiredStatus": "STOPPED",
            "version": 3
        }
    })
}

#[tokio::test(start_paused = true)]
async fn an_ecs_event_completes_the_drain_while_its_chain_sleeps() {
    let start = Instant::now();
    let fleet = FakeFleet::new();
    fleet.terminating(ID, "g", 300);
    let ci = fleet.register(ID);
    fleet.run_service_task(ID, "task-1", "web");
    // A 30 s poll: without the event the drain would learn of the stop up to 30 s late.
    let d = drainer(&fleet, 30);
    let deadline = deadline_in(Duration::from_secs(900));

    let chain = async {
        let v = d
            .handle(&terminate_event(), deadline)
            .await
            .unwrap()
            .to_json();
        (v, Instant::now() - start)
    };
    let event = async {
        tokio::time::sleep(Duration::from_secs(40)).await;
        fleet.stop_task("task-1");
        // EventBridge delivers the task's STOPPED a moment later.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let v = d
            .handle(&task_stopped_event("c1", &ci), deadline)
            .await
            .unwrap()
            .to_json();
        (v, Instant::now() - start)
    };
    let ((by_chain, chain_ended), (by_event, event_ended)) = tokio::join!(chain, event);

    assert_eq!(outcome(&by_event), "completed", "{by_event}");
    let completions = fleet.completions(ID);
    assert_eq!(completions.len(), 1, "completed once");
    let lag = completions[0].1 - start - Duration::from_secs(40);
    assert!(
        lag <= Duration::from_secs(1),
        "{lag:?} after the last task stopped"
    );
    assert!(event_ended <= Duration::from_secs(42), "{event_ended:?}");
    // The chain wakes at its next poll and stops: no second completion.
    assert!(
        ["stopped", "already_completed"].contains(&outcome(&by_chain)),
        "{by_chain}"
    );
    assert!(chain_ended <= Duration::from_secs(75), "{chain_ended:?}");
}

#[tokio::test(start_paused = true)]
async fn an_ecs_event_is_answered_before_the_hand_off_point_however_slow_ecs_is() {
    // ECS answers after 60 s; the invocation has 45 s (simulation seed 115651: an
    // ECS event's look ran past the deadline and Lambda killed it).
    let fleet = FakeFleet::new();
    fleet.terminating(ID, "g", 300);
    let ci = fleet.register(ID);
    fleet.set_ecs_latency(Duration::from_secs(60));
    let d = drainer(&fleet, 10);
    let start = Instant::now();
    let err = d
        .handle(
            &task_stopped_event("c1", &ci),
            deadline_in(Duration::from_secs(45)),
        )
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(
        Instant::now() - start <= Duration::from_secs(35),
        "{:?}",
        Instant::now() - start
    );
}

#[tokio::test(start_paused = true)]
async fn ecs_events_for_others_are_skipped_cheaply() {
    let fleet = FakeFleet::new();
    fleet.terminating(ID, "g", 300);
    let ci = fleet.register(ID);
    fleet.run_service_task(ID, "task-1", "web");
    let d = drainer(&fleet, 10);
    let deadline = deadline_in(Duration::from_secs(60));
    let calls = || fleet.ecs_calls().len();

    // Another cluster: no call at all.
    let v = d
        .handle(&task_stopped_event("other", &ci), deadline)
        .await
        .unwrap()
        .to_json();
    assert_eq!(outcome(&v), "ignored", "{v}");
    assert_eq!(calls(), 0);
    // A task still running: no call either.
    let mut running = task_stopped_event("c1", &ci);
    running["detail"]["lastStatus"] = json!("RUNNING");
    let v = d.handle(&running, deadline).await.unwrap().to_json();
    assert_eq!(outcome(&v), "ignored", "{v}");
    assert_eq!(calls(), 0);
    // Our cluster, but the instance is not being drained by us (ACTIVE, no hook
    // attribute): one DescribeContainerInstances, nothing else.
    let v = d
        .handle(&task_stopped_event("c1", &ci), deadline)
        .await
        .unwrap()
        .to_json();
    assert_eq!(outcome(&v), "ignored", "{v}");
    assert_eq!(calls(), 1);
    assert!(fleet.heartbeats(ID).is_empty() && fleet.completions(ID).is_empty());
}

fn drainer_with(
    fleet: &FakeFleet,
    vars: &[(&str, &str)],
) -> Drainer<FakeFleet, FakeFleet, FakeFleet> {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .chain([("CLUSTER_NAME".to_string(), "c1".to_string())])
        .collect();
    let config = DrainConfig::from_env(&Env::new(move |k| {
        vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }))
    .unwrap();
    Drainer::new(fleet.clone(), fleet.clone(), fleet.clone(), config)
}

fn signal_event(detail_type: &str, source: &str, detail: Value) -> Value {
    json!({
        "version": "0", "id": "s-1", "detail-type": detail_type, "source": source,
        "account": "123456789012", "time": "2026-11-22T06:00:00Z", "region": "us-east-1",
        "resources": [], "detail": detail
    })
}

fn spot_warning() -> Value {
    signal_event(
        "EC2 Spot Instance Interruption Warning",
        "aws.ec2",
        json!({"instance-id": ID, "instance-action": "terminate"}),
    )
}

/// An instance in service (no lifecycle action), registered, with a service and a
/// standalone task.
fn in_service_fleet() -> FakeFleet {
    let fleet = FakeFleet::new();
    fleet.in_service(ID, "g");
    fleet.register(ID);
    fleet.run_service_task(ID, "task-1", "web");
    fleet.run_standalone_task(ID, "batch-1");
    fleet
}

#[tokio::test(start_paused = true)]
async fn a_spot_warning_drains_at_once_and_completes_nothing() {
    let fleet = in_service_fleet();
    let d = drainer_with(&fleet, &[("STANDALONE_TASKS", "stop")]);
    let started = Instant::now();

    let v = d
        .handle(&spot_warning(), deadline_in(Duration::from_secs(60)))
        .await
        .unwrap()
        .to_json();

    let o = &v["outcomes"][0];
    assert_eq!(o["outcome"], "signal", "{v}");
    assert_eq!(o["instances"][0]["done"], "draining", "{v}");
    assert_eq!(
        o["detail"]["interruption_at"], "2026-11-22T06:02:00Z",
        "{v}"
    );
    assert!(Instant::now() - started < Duration::from_secs(1));
    assert_eq!(
        fleet.container_instance(ID).map(|c| c.status),
        Some(InstanceStatus::Draining)
    );
    // The standalone task is told to stop; the service task is ECS's to move.
    assert_eq!(fleet.desired_status("batch-1"), Some(TaskStatus::Stopped));
    assert_eq!(fleet.desired_status("task-1"), Some(TaskStatus::Running));
    assert!(fleet.completions(ID).is_empty() && fleet.heartbeats(ID).is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_disconnected_agent_holds_the_action_for_its_grace_only() {
    // The task never stops (its agent is gone); MAX_DRAIN_SECONDS is 30 minutes.
    let fleet = fleet_with_task(60, None);
    fleet.set_agent_connected(ID, false);
    let d = drainer(&fleet, 10);
    let start = Instant::now();
    let v = d
        .handle(&terminate_event(), deadline_in(Duration::from_secs(900)))
        .await
        .unwrap()
        .to_json();
    let o = &v["outcomes"][0];
    assert_eq!(o["outcome"], "completed", "{v}");
    let for_s = o["reason"]["AgentDisconnected"]["for_s"].as_u64().unwrap();
    assert!((300..=310).contains(&for_s), "{v}");
    assert_eq!(
        o["reason"]["AgentDisconnected"]["left"],
        json!(["task-1"]),
        "{v}"
    );
    let took = Instant::now() - start;
    assert!(
        took >= Duration::from_secs(300) && took < Duration::from_secs(320),
        "{took:?}"
    );
    assert_eq!(fleet.completions(ID).len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_health_event_for_a_dedicated_host_is_answered_not_an_error() {
    let fleet = in_service_fleet();
    let d = drainer_with(&fleet, &[]);
    let host = signal_event(
        "AWS Health Event",
        "aws.health",
        json!({
            "service": "EC2", "eventTypeCategory": "scheduledChange",
            "eventTypeCode": "AWS_EC2_DEDICATED_HOST_RETIREMENT_SCHEDULED",
            "affectedEntities": [{"entityValue": "h-0123456789abcdef0"}]
        }),
    );
    let v = d
        .handle(&host, deadline_in(Duration::from_secs(60)))
        .await
        .unwrap()
        .to_json();
    let o = &v["outcomes"][0];
    assert_eq!(o["outcome"], "signal", "{v}");
    assert_eq!(o["instances"], json!([]), "{v}");
    assert!(fleet.unhealthy().is_empty());
}

#[tokio::test(start_paused = true)]
async fn signals_follow_their_configured_actions() {
    // Rebalance: ignored by default.
    let fleet = in_service_fleet();
    let d = drainer_with(&fleet, &[]);
    let rebalance = signal_event(
        "EC2 Instance Rebalance Recommendation",
        "aws.ec2",
        json!({"instance-id": ID}),
    );
    let v = d
        .handle(&rebalance, deadline_in(Duration::from_secs(60)))
        .await
        .unwrap()
        .to_json();
    assert_eq!(v["outcomes"][0]["instances"][0]["done"], "ignored", "{v}");
    assert_eq!(
        fleet.container_instance(ID).map(|c| c.status),
        Some(InstanceStatus::Active)
    );
    // Spot, turned off.
    let d = drainer_with(&fleet, &[("SPOT_INTERRUPTION_ACTION", "ignore")]);
    let v = d
        .handle(&spot_warning(), deadline_in(Duration::from_secs(60)))
        .await
        .unwrap()
        .to_json();
    assert_eq!(v["outcomes"][0]["instances"][0]["done"], "ignored", "{v}");
    assert_eq!(
        fleet.container_instance(ID).map(|c| c.status),
        Some(InstanceStatus::Active)
    );

    // A scheduled retirement: replaced (marked unhealthy) by default; an instance
    // of no cluster of ours is left alone.
    let retirement = |ids: &[&str]| {
        signal_event(
            "AWS Health Event",
            "aws.health",
            json!({
                "service": "EC2", "eventTypeCategory": "scheduledChange",
                "eventTypeCode": "AWS_EC2_INSTANCE_RETIREMENT_SCHEDULED",
                "affectedEntities": ids.iter().map(|i| json!({"entityValue": i})).collect::<Vec<_>>()
            }),
        )
    };
    let stranger = "i-0fffffffffffffff0";
    fleet.in_service(stranger, "g");
    let d = drainer_with(&fleet, &[]);
    let v = d
        .handle(
            &retirement(&[ID, stranger]),
            deadline_in(Duration::from_secs(60)),
        )
        .await
        .unwrap()
        .to_json();
    let done: Vec<&str> = v["outcomes"][0]["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["done"].as_str().unwrap())
        .collect();
    assert_eq!(done, ["marked_unhealthy", "not_registered"], "{v}");
    assert_eq!(fleet.unhealthy(), [ID]);
    // SCHEDULED_EVENT_ACTION=drain drains instead.
    let d = drainer_with(&fleet, &[("SCHEDULED_EVENT_ACTION", "drain")]);
    let v = d
        .handle(&retirement(&[ID]), deadline_in(Duration::from_secs(60)))
        .await
        .unwrap()
        .to_json();
    assert_eq!(v["outcomes"][0]["instances"][0]["done"], "draining", "{v}");
    assert_eq!(fleet.unhealthy(), [ID], "not marked a second time");
}

#[tokio::test(start_paused = true)]
async fn a_slow_publish_at_the_hand_off_never_runs_past_the_deadline() {
    let fleet = fleet_with_task(300, None);
    let d = drainer(&fleet, 10);
    let started = Instant::now();
    // Once the drain is near its hand-off, every call takes 30 s (an SDK call
    // spending its retries against an SNS outage).
    let f = fleet.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(45)).await;
        f.set_latency(Duration::from_secs(30));
    });

    let result = d
        .handle(&terminate_event(), deadline_in(Duration::from_secs(60)))
        .await;

    let ended = Instant::now() - started;
    assert!(
        ended <= Duration::from_secs(60),
        "{ended:?} past a 60 s invocation: {result:?}"
    );
    assert!(fleet.completions(ID).is_empty());
}

const NOTE: &str = "arn:aws:sns:us-east-1:123456789012:ops";

fn events_notified(fleet: &FakeFleet) -> Vec<String> {
    fleet
        .notifications()
        .iter()
        .map(|n| {
            assert_eq!(n.topic, NOTE);
            let m: Value = serde_json::from_str(&n.message).unwrap();
            assert_eq!(m["schema_version"], 1);
            assert!(
                n.attributes
                    .contains(&("event".into(), m["event"].as_str().unwrap().into()))
            );
            assert!(n.attributes.contains(&("cluster".into(), "c1".into())));
            m["event"].as_str().unwrap().to_owned()
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn metrics_and_notifications_once_per_drain_across_a_hand_off() {
    use crate::report::Reporter;
    let fleet = FakeFleet::new();
    fleet.terminating(ID, "g", 30);
    fleet.register(ID);
    fleet.run_service_task(ID, "task-1", "web");
    let (reporter, records) = Reporter::in_memory("td", Some(NOTE.to_owned()));
    let d = drainer(&fleet, 10).with_reporter(reporter);

    // First invocation: sets DRAINING, holds the action, hands off at 60 s.
    let v = d
        .handle(&terminate_event(), deadline_in(Duration::from_secs(60)))
        .await
        .unwrap()
        .to_json();
    assert_eq!(outcome(&v), "handed_off", "{v}");
    assert_eq!(events_notified(&fleet), ["drain_started"]);
    {
        let r = records.lock().unwrap();
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!(r[0]["HandOffs"], 1.0);
        let beats = fleet.heartbeats(ID).len() as f64;
        assert_eq!(r[0]["Heartbeats"], beats);
        assert!(beats >= 4.0, "{beats}");
        assert_eq!(r[0]["Cluster"], "c1");
        assert_eq!(r[0]["AutoScalingGroup"], "g");
        assert_eq!(r[0]["Function"], "td");
        assert!(r[0].get("DrainsCompleted").is_none());
    }

    // The continuation: the task stops 25 s in; the drain completes once.
    let continuation: Value = serde_json::from_str(&fleet.published()[0].1).unwrap();
    let f = fleet.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(25)).await;
        f.stop_task("task-1");
    });
    let v = d
        .handle(&continuation, deadline_in(Duration::from_secs(120)))
        .await
        .unwrap()
        .to_json();
    assert_eq!(outcome(&v), "completed", "{v}");
    // A duplicated continuation afterwards: nothing more to report.
    let again = d
        .handle(&continuation, deadline_in(Duration::from_secs(120)))
        .await
        .unwrap()
        .to_json();
    assert_ne!(outcome(&again), "completed", "{again}");

    assert_eq!(
        events_notified(&fleet),
        ["drain_started", "drain_completed"]
    );
    let r = records.lock().unwrap();
    let done: Vec<&Value> = r
        .iter()
        .filter(|v| v.get("DrainsCompleted").is_some())
        .collect();
    assert_eq!(done.len(), 1, "{r:?}");
    assert_eq!(done[0]["HandOffs"], 0.0);
    assert_eq!(done[0]["DrainTimeouts"], 0.0);
    assert_eq!(done[0]["TasksLeftAtCompletion"], 0.0);
    // Under the paused clock each invocation's wall clock starts from the real
    // epoch again (the first invocation's 50 s do not show; the stand-in test
    // measures drains across hand-offs in real time): 25 s to the stop and at
    // most a poll more.
    let secs = done[0]["DrainSeconds"].as_f64().unwrap();
    assert!((25.0..=36.0).contains(&secs), "{secs}");
    // Seen live, then STOPPED at the next poll: the lag is that poll's own.
    let lag = done[0]["CompletionLagSeconds"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&lag), "{lag}");
    let note: Value = serde_json::from_str(&fleet.notifications()[1].message).unwrap();
    assert_eq!(note["instance_id"], ID);
    assert_eq!(note["detail"]["drain_seconds"].as_f64().unwrap(), secs);
}

/// A late duplicate of an earlier hop (SNS delivers at least once; with
/// WAIT_MODE=queue a chain hops at every poll) finds a later hop of its chain
/// has looked: it stops, and hands nothing over, so duplicates never multiply
/// chains. The chain itself carries on.
#[tokio::test(start_paused = true)]
async fn a_late_duplicate_of_an_earlier_hop_stops_and_the_chain_carries_on() {
    crate::time::simulated::start(epoch_ms(), 11);
    let fleet = fleet_with_task(300, None);
    let d = drainer(&fleet, 10);
    let hop = |n: usize| -> Value { serde_json::from_str(&fleet.published()[n].1).unwrap() };

    let v = d
        .handle(&terminate_event(), deadline_in(Duration::from_secs(30)))
        .await
        .unwrap()
        .to_json();
    assert_eq!(outcome(&v), "handed_off", "{v}");
    let first = hop(0);
    for n in 0..2 {
        let v = d
            .handle(&hop(n), deadline_in(Duration::from_secs(30)))
            .await
            .unwrap()
            .to_json();
        assert_eq!(outcome(&v), "handed_off", "{v}");
    }
    assert_eq!(fleet.published().len(), 3);

    // Hop 1 delivered again, after hop 2 has looked.
    let v = d
        .handle(&first, deadline_in(Duration::from_secs(30)))
        .await
        .unwrap()
        .to_json();
    assert_eq!(outcome(&v), "stopped", "{v}");
    assert_eq!(
        fleet.published().len(),
        3,
        "the duplicate handed nothing over"
    );
    // The chain goes on from its latest hop.
    let v = d
        .handle(&hop(2), deadline_in(Duration::from_secs(30)))
        .await
        .unwrap()
        .to_json();
    assert_eq!(outcome(&v), "handed_off", "{v}");
    assert_eq!(fleet.action_state(ID), Some(ActionState::Waiting));
    crate::time::simulated::stop();
}
