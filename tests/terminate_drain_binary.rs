//! The real `terminate-drain` binary, run as Lambda runs it: the stand-in's
//! Runtime API feeds it events, the hook notifies an SNS topic that "invokes" the
//! function (the stand-in delivers each publish to the function, as an SNS
//! subscription of protocol lambda would; moto's own lambda subscriptions break
//! Publish), and the function's continuations travel the same way. ECS's
//! scheduler is played by the stand-in (see tests/terminate_drain.rs).

//!
//! Given / When / Then helpers: `tests/support/drain.rs` (the next test of this
//! workflow takes them from there, and adds what it needs there).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed set-up is a failed test

use std::time::Duration;

use ecs_lifecycle_suite::drain::{
    action_over, assert_all_stopped, drain_instance_0, draining_was_set, max_heartbeat_gap,
    start_binary, start_drain, start_terminating,
};
use ecs_lifecycle_suite::fleet_on;
use serde_json::Value;
use testkit::{
    FleetSpec, LocalFunction, NotificationQueue, Standin, last_stopped_at, metric_records,
    metric_sum, notification, notified_events, records_with,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_drains_across_invocations_and_logs_json() {
    let s = Standin::start().unwrap();
    let (_, fleet) = fleet_on(&s, &FleetSpec::new("binary", 2)).await;
    fleet.service("web", false, &[2, 1]).await.unwrap();
    fleet.service("logs", true, &[1, 1]).await.unwrap();

    let log = testkit::temp_log("terminate-drain");
    // Each invocation gets 13 s: with the 10 s hand-off margin, about 2 s of
    // polling, so a drain of ~10 s needs several invocations.
    let mut function = start_drain(&s, &fleet, "terminate-drain", &[], &log, 13_000);
    let (action, invocations) = drain_instance_0(&s, &fleet).await;
    assert_eq!(
        (action["state"].as_str(), action["result"].as_str()),
        (Some("completed"), Some("CONTINUE")),
        "{action}"
    );
    assert_eq!(action["complete_calls"], 1);
    assert_eq!(fleet.status_of(0).await.unwrap(), "DRAINING");
    assert_all_stopped(&fleet.tasks_on(0).await.unwrap());

    assert!(
        invocations.len() >= 2,
        "the drain continued across invocations: {}",
        invocations.len()
    );
    assert!(
        invocations.iter().all(|i| i["status"] == "success"),
        "{invocations:#?}"
    );
    let messages: Vec<String> = invocations
        .iter()
        .map(|i| {
            i["event"]["Records"][0]["Sns"]["Message"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    assert!(
        messages[0].contains("LifecycleActionToken"),
        "first the hook's notification"
    );
    for (i, m) in messages.iter().enumerate().skip(1) {
        let c: Value = serde_json::from_str(m).unwrap();
        assert_eq!(
            (c["kind"].as_str(), c["attempt"].as_u64()),
            (Some("ecs-lifecycle.continuation"), Some(i as u64)),
            "then its continuations"
        );
    }
    assert!(
        !function.exited(),
        "the function process stays up between invocations"
    );

    // CloudWatch-style JSON logs: one line per decision, carrying the action's fields.
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(!lines.is_empty(), "JSON log lines expected, got:\n{text}");
    // LOG_LEVEL=INFO filters the function's own lines, whatever Lambda's
    // AWS_LAMBDA_LOG_LEVEL (TRACE, as the template sets it) says.
    assert!(
        lines
            .iter()
            .filter_map(|l| l["level"].as_str())
            .all(|level| ["INFO", "WARN", "ERROR"].contains(&level)),
        "lines below LOG_LEVEL=INFO:\n{text}"
    );
    let decisions: Vec<&Value> = lines
        .iter()
        .filter(|l| l["fields"]["decision"].is_string())
        .collect();
    let kinds: Vec<&str> = decisions
        .iter()
        .filter_map(|l| l["fields"]["decision"].as_str())
        .collect();
    for k in ["set_draining", "wait", "hand_off", "stop_tasks", "complete"] {
        assert!(kinds.contains(&k), "a {k} decision line: {kinds:?}");
    }
    for d in decisions {
        let span = &d["span"];
        assert_eq!(span["asg"], fleet.asg.as_str(), "{d}");
        assert_eq!(span["hook"], fleet.hook.as_str());
        assert_eq!(span["instance_id"], fleet.instance_ids[0].as_str());
        assert_eq!(span["cluster"], fleet.cluster.as_str(), "{d}");
        assert_eq!(
            span["container_instance"],
            fleet.container_instances[0].as_str()
        );
    }
    let _ = std::fs::remove_file(&log);
}

#[test]
fn a_bad_configuration_stops_the_function_at_cold_start_naming_the_variable() {
    let s = Standin::start().unwrap();
    let log = std::env::temp_dir().join(format!("terminate-drain-bad-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let binary = testkit::binary("terminate-drain").unwrap();
    let mut function = LocalFunction::start_logging_to(
        &s,
        &binary,
        "terminate-drain",
        &[("POLL_INTERVAL_SECONDS", "0"), ("STANDALONE_TASKS", "stop")],
        &log,
    )
    .unwrap();
    let start = std::time::Instant::now();
    while !function.exited() && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(function.exited(), "the process exits at start-up");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("POLL_INTERVAL_SECONDS=\"0\" is invalid: expected a whole number of seconds from 1 to 300"),
        "{text}"
    );
    assert!(s.invocations().unwrap().is_empty());
    let _ = std::fs::remove_file(&log);
}

/// Started with no AWS credentials at all (the keys Lambda sets blanked; no
/// profile, no shared file, no web identity, no container credentials), the
/// binary stops at cold start naming what is missing, before taking any event:
/// otherwise every event would fail unsigned, be retried and dead-lettered,
/// while the lifecycle actions it was given expire.
#[test]
fn without_credentials_the_function_stops_at_cold_start_naming_them() {
    let s = Standin::start().unwrap();
    let log = testkit::temp_log("terminate-drain-no-credentials");
    let _ = std::fs::remove_file(&log);
    let binary = testkit::binary("terminate-drain").unwrap();
    let mut function = LocalFunction::start_logging_to(
        &s,
        &binary,
        "terminate-drain",
        &[
            ("CLUSTER_NAME", "any"),
            (
                "CONTINUATION_TOPIC_ARN",
                "arn:aws:sns:us-east-1:123456789012:continue",
            ),
            ("AWS_ACCESS_KEY_ID", ""),
            ("AWS_SECRET_ACCESS_KEY", ""),
        ],
        &log,
    )
    .unwrap();
    let start = std::time::Instant::now();
    while !function.exited() && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(function.exited(), "the process exits at start-up");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("configuration variable AWS_ACCESS_KEY_ID=\"\" is invalid: expected AWS credentials, and none were found"),
        "{text}"
    );
    assert!(s.invocations().unwrap().is_empty());
    let _ = std::fs::remove_file(&log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_drain_says_which_service_holds_it_and_why() {
    let s = Standin::start().unwrap();
    let (_, fleet) = fleet_on(&s, &FleetSpec::new("held", 2)).await;
    fleet.service("web", false, &[2, 0]).await.unwrap();
    // What ECS's scheduler says when it cannot place the replacements.
    let why = "(service web) was unable to place a task because no container instance met all of its requirements.";
    s.service_event(&fleet.cluster, "web", why).unwrap();

    let log = testkit::temp_log("held-drain");
    // A budget of 40 s: the drain says why it is stuck after a quarter (10 s).
    let _function = start_drain(
        &s,
        &fleet,
        "held-drain",
        &[("MAX_DRAIN_SECONDS", "40")],
        &log,
        30_000,
    );
    // No scheduler steps: the service's tasks stay on the instance.
    start_terminating(&s, &fleet, 0);
    let started = std::time::Instant::now();
    let line = s
        .wait_for(Duration::from_secs(30), |_| {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            Ok(text
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find(|l| l["fields"]["stuck"] == "service"))
        })
        .await
        .unwrap();
    let after = started.elapsed();
    assert_eq!(line["level"], "WARN", "{line}");
    let f = &line["fields"];
    assert_eq!(f["service"], "web", "{line}");
    assert_eq!(f["tasks_here"], 2, "{line}");
    assert_eq!(f["desired"], 2, "{line}");
    assert_eq!(f["latest_event"], why, "{line}");
    assert!(f["waited_s"].as_u64().unwrap() >= 10, "{line}");
    assert!(
        after >= Duration::from_secs(9) && after < Duration::from_secs(20),
        "{after:?}"
    );
    assert_eq!(line["span"]["instance_id"], fleet.instance_ids[0].as_str());
    let _ = std::fs::remove_file(&log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_across_hand_offs_reports_what_the_stand_in_saw_and_notifies_once() {
    let s = Standin::start().unwrap();
    let (sdk, fleet) = fleet_on(&s, &FleetSpec::new("observed", 2)).await;
    fleet.service("web", false, &[2, 1]).await.unwrap();
    // The operators' topic, read through an SQS queue subscribed to it.
    let notes = NotificationQueue::create(&sdk, "observed").await.unwrap();
    let log = testkit::temp_log("observed-drain");
    // 13 s invocations with the 10 s hand-off margin: the drain (the played
    // scheduler stops a task every 800 ms step) needs several of them.
    let mut function = start_drain(
        &s,
        &fleet,
        "observed-drain",
        &[("NOTIFICATION_TOPIC_ARN", notes.topic_arn.as_str())],
        &log,
        13_000,
    );
    let (action, invocations) = drain_instance_0(&s, &fleet).await;
    let id = &fleet.instance_ids[0];
    assert_eq!(action["state"], "completed", "{action}");
    assert!(invocations.len() >= 2, "{}", invocations.len());
    assert!(!function.exited());

    let records = metric_records(&std::fs::read_to_string(&log).unwrap());
    for r in &records {
        assert_eq!(
            r["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            "EcsLifecycle"
        );
        assert_eq!(r["Function"], "observed-drain");
        assert_eq!(r["Cluster"], fleet.cluster.as_str());
        assert_eq!(r["AutoScalingGroup"], fleet.asg.as_str());
        assert_eq!(r["instance_id"], id.as_str());
    }
    // One record per invocation that held the action.
    assert_eq!(records.len(), invocations.len(), "{records:#?}");
    assert_eq!(
        metric_sum(&records, "HandOffs") as usize,
        invocations.len() - 1
    );
    assert_eq!(
        metric_sum(&records, "Heartbeats"),
        action["heartbeat_calls"].as_f64().unwrap()
    );
    let done = records_with(&records, "DrainsCompleted");
    assert_eq!(done.len(), 1, "{records:#?}");
    let done = done[0];
    // From the action's start to its completion, as the stand-in recorded them.
    let took = action["completed_at"].as_f64().unwrap() - action["started_at"].as_f64().unwrap();
    let secs = done["DrainSeconds"].as_f64().unwrap();
    assert!((secs - took).abs() < 1.0, "DrainSeconds {secs} vs {took}");
    assert_eq!(done["DrainTimeouts"], 0.0);
    assert_eq!(done["TasksLeftAtCompletion"], 0.0);
    // From the last task's stoppedAt (ECS's) to the completion.
    let last_stop = last_stopped_at(&fleet.tasks_on(0).await.unwrap()).unwrap();
    let lag = done["CompletionLagSeconds"].as_f64().unwrap();
    let seen = action["completed_at"].as_f64().unwrap() - last_stop;
    assert!(
        (0.0..=2.5).contains(&lag) && (lag - seen).abs() < 0.5,
        "CompletionLagSeconds {lag} vs {seen}"
    );
    println!("drain {secs:.3} s (stand-in: {took:.3} s), lag {lag:.3} s (stand-in: {seen:.3} s)");

    // One message per event, across the hand-offs.
    let delivered = notes.take().await.unwrap();
    assert_eq!(
        notified_events(&delivered).unwrap(),
        ["drain_completed", "drain_started"]
    );
    for envelope in &delivered {
        let n = notification(envelope).unwrap();
        assert_eq!(n["schema_version"], 1);
        assert_eq!(n["cluster"], fleet.cluster.as_str());
        assert_eq!(n["instance_id"], id.as_str());
        assert_eq!(
            envelope["MessageAttributes"]["cluster"]["Value"],
            fleet.cluster.as_str()
        );
        if n["event"] == "drain_completed" {
            assert_eq!(n["detail"]["drain_seconds"].as_f64().unwrap(), secs);
            assert_eq!(n["detail"]["tasks_left"], 0);
        }
    }
    let _ = std::fs::remove_file(&log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_killed_mid_drain_is_resumed_by_lambdas_retry_and_the_action_lives() {
    // The function's process dies mid-drain (SIGKILL: no last heartbeat, no
    // hand-off). Lambda retries the event; the test plays that retry (the stand-in
    // does not retry), 5 s later instead of Lambda's minute (compressed). The new
    // process knows nothing of the last heartbeat: it must heartbeat first thing,
    // and the drain completes once, the action never expired (HeartbeatTimeout 30 s,
    // enforced by the stand-in's clock).
    let s = Standin::start().unwrap();
    let spec = FleetSpec {
        heartbeat_timeout: 30,
        ..FleetSpec::new("killed", 2)
    };
    let (_, fleet) = fleet_on(&s, &spec).await;
    fleet.service("web", false, &[2, 0]).await.unwrap();
    s.enforce_heartbeats(true).unwrap();
    let log = testkit::temp_log("terminate-drain-killed");
    let mut first = start_drain(&s, &fleet, "terminate-drain", &[], &log, 60_000);
    start_terminating(&s, &fleet, 0);
    draining_was_set(&s, Duration::from_secs(30)).await;
    // Killed with the action held, 12 s into the drain (the scheduler is still).
    tokio::time::sleep(Duration::from_secs(12)).await;
    let killed = std::process::Command::new("kill")
        .args(["-9", &first.pid().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let event = s
        .invocations()
        .unwrap()
        .into_iter()
        .find(|i| i["status"] == "running")
        .expect("the killed invocation")["event"]
        .clone();
    assert!(
        first.exited() || {
            tokio::time::sleep(Duration::from_millis(500)).await;
            first.exited()
        }
    );

    tokio::time::sleep(Duration::from_secs(5)).await;
    let binary = testkit::binary("terminate-drain").unwrap();
    let _second = LocalFunction::start_logging_to(
        &s,
        &binary,
        "terminate-drain",
        &ecs_lifecycle_suite::drain::deployed_env(&fleet, &[]),
        &log,
    )
    .unwrap();
    s.ecs_auto(500).unwrap();
    s.post(
        "/_standin/lambda/invoke",
        serde_json::json!({"event": event, "timeout_ms": 60_000, "async": true}),
    )
    .unwrap();
    let action = action_over(&s, &fleet, 0, Duration::from_secs(90)).await;
    s.ecs_auto(0).unwrap();
    assert_eq!(
        (action["state"].as_str(), action["result"].as_str()),
        (Some("completed"), Some("CONTINUE")),
        "{action}"
    );
    assert_eq!(action["complete_calls"], 1, "{action}");
    let gap = ecs_lifecycle_suite::drain::max_heartbeat_gap(&action);
    assert!(gap < 30.0, "{gap:.1} s without a heartbeat: {action}");
}

/// WAIT_MODE=queue through the real binary: each invocation looks, acts and
/// hands the drain to its wait queue (played by the stand-in: moto has no event
/// source mapping; a 3 s delay, as POLL_INTERVAL_SECONDS=3 sets the queue's);
/// none waits for ECS. The action is completed once, after the tasks stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_queue_mode_no_invocation_waits_for_ecs_and_the_drain_completes_once() {
    let s = Standin::start().unwrap();
    let (_, fleet) = fleet_on(&s, &FleetSpec::new("queued", 2)).await;
    fleet.service("web", false, &[2, 1]).await.unwrap();
    let log = testkit::temp_log("queued-drain");
    let mut function = start_binary(
        &s,
        &fleet,
        "queued-drain",
        &[("WAIT_MODE", "queue"), ("POLL_INTERVAL_SECONDS", "3")],
        &log,
    );
    s.subscribe_function_with_wait_queue(&fleet.topic_arn, 60_000, 3_000)
        .unwrap();
    let (action, invocations) = drain_instance_0(&s, &fleet).await;
    assert_eq!(action["state"], "completed", "{action}");
    assert_eq!(action["complete_calls"], 1, "{action}");
    assert_all_stopped(&fleet.tasks_on(0).await.unwrap());
    assert!(!function.exited());

    // The hook's notification came as SNS, every continuation from the queue.
    assert!(invocations.len() >= 2, "{invocations:#?}");
    assert_eq!(invocations[0]["source"], "sns");
    assert!(
        invocations[1..].iter().all(|i| i["source"] == "sqs"),
        "{invocations:#?}"
    );
    for i in &invocations {
        assert_eq!(i["status"], "success", "{i}");
        let took = i["finished_at"].as_f64().unwrap() - i["started_at"].as_f64().unwrap();
        // Quick looks only (5 s at most), never a poll interval's sleep per look.
        assert!(took < 6.0, "an invocation held the drain {took:.1} s: {i}");
        assert_eq!(
            i["response"]["batchItemFailures"],
            serde_json::json!([]),
            "{i}"
        );
    }
    let gap = max_heartbeat_gap(&action);
    assert!(gap < 60.0, "{gap:.1} s without a heartbeat");
    let _ = std::fs::remove_file(&log);
}

/// The stand-in's EventBridge (`/_standin/ecs/events`, what the load benchmark
/// uses with LOAD_EVENTS=on): the task that stops on the draining instance
/// invokes the binary with its `ECS Task State Change`, and that invocation
/// completes the action about a second after the stop, where the chain's 30 s
/// poll would have taken up to 30 s.
///
/// STAND-IN: moto emits no events; the stand-in plays the template's
/// EcsTaskStoppedRule (tasks of the cluster reaching STOPPED on a container
/// instance) with the function as its target, 300 ms after the stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standins_task_stopped_event_completes_the_drain_within_a_second() {
    let s = Standin::start().unwrap();
    let (_, fleet) = fleet_on(&s, &FleetSpec::new("evented", 2)).await;
    let web = fleet.service("web", false, &[1, 0]).await.unwrap();
    let log = testkit::temp_log("evented-drain");
    let log2 = testkit::temp_log("evented-drain-2");
    let poll = [("POLL_INTERVAL_SECONDS", "30")];
    // Two processes: the drain's invocation holds one (it waits in it), the
    // event needs the other, as Lambda would run it in a second execution.
    let _function = start_drain(&s, &fleet, "evented-drain", &poll, &log, 60_000);
    let _second = start_binary(&s, &fleet, "evented-drain", &poll, &log2);
    s.ecs_task_events(&fleet.cluster, 60_000, 300).unwrap();
    s.ecs_auto(800).unwrap();
    start_terminating(&s, &fleet, 0);
    let action = action_over(&s, &fleet, 0, Duration::from_secs(60)).await;
    s.ecs_auto(0).unwrap();

    assert_eq!(
        (action["state"].as_str(), action["complete_calls"].as_u64()),
        (Some("completed"), Some(1)),
        "{action}"
    );
    let lag = action["completed_at"].as_f64().unwrap()
        - last_stopped_at(&fleet.tasks_on(0).await.unwrap()).unwrap();
    assert!(
        (0.0..3.0).contains(&lag),
        "completed {lag:.1} s after the last task stopped"
    );
    // The completion came from the event: the task's own, with the fields the
    // rule matches, answered `completed`.
    let by_event = s
        .wait_for(Duration::from_secs(10), |s| {
            Ok(s.invocations()?.into_iter().find(|i| {
                i["source"] == "eventbridge" && i["status"] != "queued" && i["status"] != "running"
            }))
        })
        .await
        .unwrap();
    let event = &by_event["event"];
    assert_eq!(event["detail-type"], "ECS Task State Change", "{event}");
    assert_eq!(event["source"], "aws.ecs", "{event}");
    assert_eq!(event["detail"]["taskArn"], web[0].as_str(), "{event}");
    assert_eq!(event["detail"]["lastStatus"], "STOPPED", "{event}");
    assert_eq!(
        event["detail"]["containerInstanceArn"],
        fleet.container_instances[0].as_str(),
        "{event}"
    );
    assert_eq!(by_event["status"], "success", "{by_event}");
    assert_eq!(
        by_event["response"]["outcomes"][0]["outcome"], "completed",
        "{by_event}"
    );
    let _ = std::fs::remove_file(&log);
    let _ = std::fs::remove_file(&log2);
}

/// The function's JSON log lines (those that parse).
fn json_lines(log: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// An ECS agent that disconnects mid-drain: its tasks can never be reported
/// STOPPED, so without the disconnected-agent rule the drain would hold the
/// action until MAX_DRAIN_SECONDS (30 min here). With
/// AGENT_DISCONNECTED_GRACE_SECONDS=60 (its minimum) the drain holds the action
/// across hand-offs, heartbeating (HeartbeatTimeout 30 s, enforced by the
/// stand-in's clock), and completes it CONTINUE once that minute has passed,
/// with a WARN naming the instance and its container instance. The minute is
/// spent in real time: the binary reads the system clock and has no seam to
/// compress it, and 60 s is AWS-realistic anyway.
///
/// STAND-IN: moto's agent is always connected; the stand-in plays the
/// disconnect (`/_standin/ecs/agent`: `agentConnected` false, and its
/// scheduler moves nothing on that instance, as the agent is what stops tasks).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_whose_agent_disconnects_completes_after_its_grace_and_loses_no_action() {
    let s = Standin::start().unwrap();
    let spec = FleetSpec {
        heartbeat_timeout: 30,
        ..FleetSpec::new("cutoff", 2)
    };
    let (_, fleet) = fleet_on(&s, &spec).await;
    fleet.service("web", false, &[2, 0]).await.unwrap();
    s.enforce_heartbeats(true).unwrap();
    let log = testkit::temp_log("cutoff-drain");
    // 30 s invocations: with the binary's 10 s hand-off margin, the minute of
    // grace spans hand-offs (the disconnect's start travels in the continuation).
    let _function = start_drain(
        &s,
        &fleet,
        "cutoff-drain",
        &[("AGENT_DISCONNECTED_GRACE_SECONDS", "60")],
        &log,
        30_000,
    );
    start_terminating(&s, &fleet, 0);
    // Given a drain under way (DRAINING set, no scheduler yet: the tasks run),
    draining_was_set(&s, Duration::from_secs(30)).await;
    // when the agent disconnects (and the scheduler runs, moving nothing there),
    let cut_at = testkit::now_ms() as f64 / 1000.0;
    s.set_agent_connected(&fleet.cluster, &fleet.container_instances[0], false)
        .unwrap();
    s.ecs_auto(800).unwrap();
    let action = action_over(&s, &fleet, 0, Duration::from_secs(150)).await;
    s.ecs_auto(0).unwrap();

    // then the action completed once, CONTINUE, never expired,
    assert_eq!(
        (
            action["state"].as_str(),
            action["result"].as_str(),
            action["complete_calls"].as_u64(),
            &action["expired_by"]
        ),
        (Some("completed"), Some("CONTINUE"), Some(1), &Value::Null),
        "{action}"
    );
    let gap = max_heartbeat_gap(&action);
    assert!(gap <= 15.0, "{gap:.1} s without a heartbeat: {action}");
    // after the grace (and not much later), its tasks still not stopped,
    let after = action["completed_at"].as_f64().unwrap() - cut_at;
    assert!(
        (60.0..=80.0).contains(&after),
        "completed {after:.1} s after the agent disconnected"
    );
    let tasks = fleet.tasks_on(0).await.unwrap();
    assert_eq!(
        tasks.iter().filter(|t| t.last_status != "STOPPED").count(),
        2,
        "{tasks:#?}"
    );
    // with a WARN saying why, naming the instance and the agent's container instance,
    let lines = json_lines(&log);
    let why: Vec<&Value> = lines
        .iter()
        .filter(|l| l["fields"]["reason"] == "agent_disconnected")
        .collect();
    assert_eq!(why.len(), 1, "{lines:#?}");
    let line = why[0];
    assert_eq!(line["level"], "WARN", "{line}");
    assert_eq!(line["fields"]["decision"], "complete", "{line}");
    assert!(
        line["fields"]["disconnected_s"].as_u64().unwrap() >= 60,
        "{line}"
    );
    assert_eq!(line["fields"]["tasks_left"], 2, "{line}");
    assert_eq!(line["span"]["instance_id"], fleet.instance_ids[0].as_str());
    assert_eq!(
        line["span"]["container_instance"],
        fleet.container_instances[0].as_str()
    );
    // and no invocation failed on the way.
    let invocations = s.ended_invocations(Duration::from_secs(40)).await.unwrap();
    assert!(invocations.len() >= 3, "{}", invocations.len());
    assert!(
        invocations.iter().all(|i| i["status"] == "success"),
        "{invocations:#?}"
    );
    eprintln!(
        "agent disconnected: completed {after:.1} s later over {} invocations, max heartbeat gap {gap:.1} s",
        invocations.len()
    );
    let _ = std::fs::remove_file(&log);
}

/// An AWS Health event for a Dedicated Host (entity `h-...`, no instance)
/// reaches the real binary while it drains another instance: it is read,
/// logged ("names no EC2 instance") and answered, not a function error (which
/// Lambda would retry twice and then dead-letter, and the Errors alarm would
/// count); no instance is touched; the drain carries on and completes once.
/// EventBridge is played: its target invokes the function asynchronously with
/// the event; a second process of the function takes it, as Lambda would run
/// a second instance beside the busy one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_health_event_for_a_dedicated_host_is_answered_and_a_drain_meanwhile_is_unaffected() {
    let s = Standin::start().unwrap();
    let spec = FleetSpec {
        heartbeat_timeout: 30,
        ..FleetSpec::new("dedicated", 2)
    };
    let (_, fleet) = fleet_on(&s, &spec).await;
    fleet.service("web", false, &[2, 1]).await.unwrap();
    s.enforce_heartbeats(true).unwrap();
    let log = testkit::temp_log("dedicated-drain");
    let _draining = start_drain(&s, &fleet, "dedicated", &[], &log, 13_000);
    let _second = start_binary_appending(&s, &fleet, "dedicated", &log);
    // Given a drain under way on instance 0,
    s.ecs_auto(800).unwrap();
    start_terminating(&s, &fleet, 0);
    draining_was_set(&s, Duration::from_secs(30)).await;
    // when AWS Health announces a Dedicated Host's retirement,
    let path = testkit::workspace_root()
        .join("crates/ecs-lifecycle/fixtures/eventbridge-health-retirement.json");
    let mut host: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    host["resources"] = serde_json::json!(["h-0123456789abcdef0"]);
    host["detail"]["eventTypeCode"] = "AWS_EC2_DEDICATED_HOST_RETIREMENT_SCHEDULED".into();
    host["detail"]["affectedEntities"] =
        serde_json::json!([{"entityValue": "h-0123456789abcdef0"}]);
    let answered = s
        .post(
            "/_standin/lambda/invoke",
            serde_json::json!({"event": host, "timeout_ms": 30_000}),
        )
        .unwrap();

    // then the function answers (no error for Lambda to retry or dead-letter),
    assert_eq!(answered["status"], "success", "{answered}");
    let o = &answered["response"]["outcomes"][0];
    assert_eq!(o["outcome"], "signal", "{answered}");
    assert_eq!(o["signal"], "scheduled_change", "{answered}");
    assert_eq!(o["instances"], serde_json::json!([]), "{answered}");
    // having logged why it did nothing,
    let lines = json_lines(&log);
    let said = lines
        .iter()
        .find(|l| {
            l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("names no EC2 instance"))
        })
        .unwrap_or_else(|| panic!("no line about the host: {lines:#?}"));
    assert_eq!(said["level"], "INFO", "{said}");
    assert_eq!(said["fields"]["signal"], "scheduled_change", "{said}");
    // and the drain carries on to one completion, the action never lost,
    let action = action_over(&s, &fleet, 0, Duration::from_secs(90)).await;
    s.ecs_auto(0).unwrap();
    assert_eq!(
        (
            action["state"].as_str(),
            action["result"].as_str(),
            action["complete_calls"].as_u64(),
            &action["expired_by"]
        ),
        (Some("completed"), Some("CONTINUE"), Some(1), &Value::Null),
        "{action}"
    );
    assert_all_stopped(&fleet.tasks_on(0).await.unwrap());
    // while no instance was touched for the host: instance 1 still ACTIVE, no
    // health set, DRAINING set once (the drain's).
    assert_eq!(fleet.status_of(1).await.unwrap(), "ACTIVE");
    let calls = s.calls().unwrap();
    assert!(
        !calls.contains_key("autoscaling:SetInstanceHealth"),
        "{calls:?}"
    );
    assert_eq!(
        calls.get("ecs:UpdateContainerInstancesState"),
        Some(&1),
        "{calls:?}"
    );
    let invocations = s.ended_invocations(Duration::from_secs(20)).await.unwrap();
    assert!(
        invocations.iter().all(|i| i["status"] == "success"),
        "{invocations:#?}"
    );
    let _ = std::fs::remove_file(&log);
}

/// A second process of the real binary for `fleet`, as [`start_binary`] starts
/// it, its logs appended to the same `log` (not removed first).
fn start_binary_appending(
    s: &Standin,
    fleet: &testkit::Fleet,
    name: &str,
    log: &std::path::Path,
) -> LocalFunction {
    let binary = testkit::binary("terminate-drain").unwrap();
    LocalFunction::start_logging_to(
        s,
        &binary,
        name,
        &ecs_lifecycle_suite::drain::deployed_env(fleet, &[]),
        log,
    )
    .unwrap()
}
