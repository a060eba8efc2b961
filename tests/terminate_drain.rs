//! terminate-drain against the AWS stand-in over real HTTP: moto server 5.2.5 for
//! ECS, Auto Scaling, EC2, SNS and SQS, with two gaps filled explicitly by the
//! stand-in (tests/standin/standin.py) and named where a test relies on them:
//! - Auto Scaling lifecycle actions (moto has no Terminating:Wait, no
//!   CompleteLifecycleAction or heartbeat, no hook notification): the stand-in
//!   plays them, with AWS's `ValidationError: No active Lifecycle Action` wording;
//! - ECS's scheduler on a DRAINING instance (moto only flips the status): the
//!   stand-in's `ecs/step` replaces service tasks elsewhere and walks stopping tasks
//!   through DEACTIVATING -> STOPPING -> DEPROVISIONING -> STOPPED, one state per step.

//!
//! Given / When / Then helpers: `tests/support/drain.rs` (the next test of this
//! workflow takes them from there, and adds what it needs there).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed set-up is a failed test

use std::time::Duration;

use ecs_lifecycle::hook::Handler;
use ecs_lifecycle::report::Reporter;
use ecs_lifecycle_suite::drain::{
    TERMINATING, assert_all_stopped, drainer, fleet_drainer, fleet_spec, last_stop,
    lifecycle_state, scale_in, scheduler_stops_without_replacements, set_retention,
};
use ecs_lifecycle_suite::{action_of, fleet_on, next_continuation, outcomes, single_outcome};
use serde_json::json;
use testkit::{
    Fleet, FleetSpec, NotificationQueue, Standin, metric_sum, notification, notified_events,
    now_ms, records_with,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_in_drains_every_kind_of_task_then_completes_once() {
    let s = Standin::start().unwrap();
    let (sdk, fleet) = fleet_on(&s, &FleetSpec::new("scalein", 3)).await;
    let web = fleet.service("web", false, &[2, 1, 1]).await.unwrap();
    let logs = fleet.service("logs", true, &[1, 1, 1]).await.unwrap();
    let report = fleet.standalone("report", 0, 1).await.unwrap();
    let event = scale_in(&s, &fleet, 0).await;

    // The stand-in plays ECS's scheduler every 300 ms.
    s.ecs_auto(300).unwrap();
    let d = fleet_drainer(&sdk, &fleet, &[("STANDALONE_TASKS", "stop")]);
    let result = d
        .handle(&event, now_ms() + 120_000)
        .await
        .unwrap()
        .to_json();
    s.ecs_auto(0).unwrap();

    let outcome = single_outcome(&result);
    assert_eq!(outcome["outcome"], "completed", "{result}");
    assert_eq!(outcome["reason"], "Drained");
    assert_eq!(fleet.status_of(0).await.unwrap(), "DRAINING");

    let tasks = fleet.tasks_on(0).await.unwrap();
    assert_all_stopped(&tasks);
    for arn in [&logs[0], &report[0]] {
        let t = tasks.iter().find(|t| &t.arn == arn).unwrap();
        assert!(
            t.stopped_reason
                .as_deref()
                .unwrap_or("")
                .contains("terminate-drain"),
            "stopped by the drain: {t:?}"
        );
    }
    let web_here: Vec<_> = tasks.iter().filter(|t| web.contains(&t.arn)).collect();
    assert_eq!(web_here.len(), 2);
    assert!(
        web_here.iter().all(|t| !t
            .stopped_reason
            .as_deref()
            .unwrap_or("")
            .contains("terminate-drain")),
        "service tasks are ECS's to move"
    );
    // ECS placed their replacements on the other instances.
    let mut running_web_elsewhere = 0;
    for i in 1..3 {
        running_web_elsewhere += fleet
            .tasks_on(i)
            .await
            .unwrap()
            .iter()
            .filter(|t| t.group.as_deref() == Some("service:web") && t.last_status == "RUNNING")
            .count();
    }
    assert_eq!(running_web_elsewhere, 4);

    let action = action_of(&s, &fleet, 0);
    assert_eq!(action["state"], "completed", "{action}");
    assert_eq!(action["result"], "CONTINUE");
    assert_eq!(
        action["complete_calls"], 1,
        "completed exactly once: {action}"
    );
    let last_stop = last_stop(&tasks);
    let completed_at = action["completed_at"].as_f64().unwrap();
    assert!(
        completed_at >= last_stop,
        "completed at {completed_at} before the last task stopped at {last_stop}"
    );
    assert!(
        completed_at - last_stop <= 2.0,
        "lag {:.2} s is more than a poll interval plus slack",
        completed_at - last_stop
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_drain_hands_off_and_its_continuation_finishes_the_job() {
    let s = Standin::start().unwrap();
    let (sdk, fleet) = fleet_on(&s, &fleet_spec("stuck", 2)).await;
    fleet.service("api", false, &[2, 0]).await.unwrap();
    let event = scale_in(&s, &fleet, 0).await;
    let d = fleet_drainer(&sdk, &fleet, &[]);

    // No scheduler steps: the drain is stuck. The hook's 30 s heartbeat timeout
    // asks for a heartbeat every 10 s after the action started; the invocation
    // has 16 s, so it hands off (deadline - margin - one poll, ~13.5 s) well
    // after the first heartbeat is due, however slow the machine is.
    let started = now_ms();
    let result = d.handle(&event, started + 16_000).await.unwrap().to_json();
    let outcome = single_outcome(&result);
    assert_eq!(outcome["outcome"], "handed_off", "{result}");
    assert_eq!(outcome["attempt"], 1);
    assert_eq!(
        outcome["topic_arn"],
        fleet.topic_arn.as_str(),
        "falls back to the topic the event came through"
    );
    let action = action_of(&s, &fleet, 0);
    assert_eq!(action["state"], "active");
    assert_eq!(action["complete_calls"], 0, "never completed early");
    assert!(
        !action["heartbeats"].as_array().unwrap().is_empty(),
        "heartbeat within the timeout: {action}"
    );

    // The continuation, read back from the queue subscribed to the topic.
    let (next_event, continuation) = next_continuation(&fleet).await;
    assert_eq!(continuation["attempt"], 1);
    assert_eq!(
        continuation["action"]["EC2InstanceId"],
        fleet.instance_ids[0].as_str()
    );
    assert!(continuation["started_at_ms"].as_u64().unwrap() >= started);
    assert_eq!(
        continuation["state"]["container_instance_arn"],
        fleet.container_instances[0].as_str()
    );

    // ECS gets going; the continuation, fed back, finishes the drain.
    s.ecs_auto(300).unwrap();
    let result = d
        .handle(&next_event, now_ms() + 120_000)
        .await
        .unwrap()
        .to_json();
    s.ecs_auto(0).unwrap();
    assert_eq!(single_outcome(&result)["outcome"], "completed", "{result}");
    let action = action_of(&s, &fleet, 0);
    assert_eq!(
        (action["state"].as_str(), action["complete_calls"].as_u64()),
        (Some("completed"), Some(1))
    );
    assert!(
        fleet.drain_queue().await.unwrap().is_empty(),
        "no further continuation"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_deliveries_complete_the_action_once() {
    let s = Standin::start().unwrap();
    let (sdk, fleet) = fleet_on(&s, &FleetSpec::new("dupes", 2)).await;
    fleet.service("api", false, &[2, 1]).await.unwrap();
    let event = scale_in(&s, &fleet, 0).await;
    let d = fleet_drainer(&sdk, &fleet, &[]);

    s.ecs_auto(300).unwrap();
    let deadline = now_ms() + 120_000;
    let (a, b) = tokio::join!(d.handle(&event, deadline), d.handle(&event, deadline));
    s.ecs_auto(0).unwrap();
    // One completes; the other finds the action completed or the instance no
    // longer waiting. (Sorting the pair by name, as this test once did, put
    // "stopped" after "completed" and failed a correct run.)
    let kinds = [
        single_outcome(&a.unwrap().to_json())["outcome"].clone(),
        single_outcome(&b.unwrap().to_json())["outcome"].clone(),
    ];
    let other = match (&kinds[0], &kinds[1]) {
        (c, other) | (other, c) if c == "completed" => other,
        _ => panic!("neither completed: {kinds:?}"),
    };
    assert!(
        other == "already_completed" || other == "stopped",
        "{kinds:?}"
    );

    // A late third copy finds nothing waiting and does nothing.
    let late = d.handle(&event, now_ms() + 60_000).await.unwrap().to_json();
    assert_eq!(single_outcome(&late)["outcome"], "stopped");
    let action = action_of(&s, &fleet, 0);
    assert_eq!(action["state"], "completed");
    assert!(action["complete_calls"].as_u64().unwrap() <= 2, "{action}");
    assert!(
        fleet.drain_queue().await.unwrap().is_empty(),
        "duplicates publish no continuation"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_api_still_ends_correctly() {
    let s = Standin::start().unwrap();
    let (sdk, fleet) = fleet_on(&s, &FleetSpec::new("throttled", 2)).await;
    fleet.service("api", false, &[3, 0]).await.unwrap();
    fleet.service("agent", true, &[1, 1]).await.unwrap();
    let event = scale_in(&s, &fleet, 0).await;
    for (target, code, n) in [
        ("autoscaling:DescribeAutoScalingInstances", "Throttling", 2),
        ("ecs:ListContainerInstances", "ThrottlingException", 2),
        (
            "ecs:UpdateContainerInstancesState",
            "ThrottlingException",
            1,
        ),
        ("ecs:ListTasks", "ThrottlingException", 3),
        ("ecs:DescribeTasks", "ThrottlingException", 3),
        ("ecs:StopTask", "ThrottlingException", 1),
        ("autoscaling:CompleteLifecycleAction", "Throttling", 2),
    ] {
        s.inject_fault(target, code, n).unwrap();
    }
    s.ecs_auto(300).unwrap();
    let d = fleet_drainer(&sdk, &fleet, &[]);
    let result = d
        .handle(&event, now_ms() + 120_000)
        .await
        .unwrap()
        .to_json();
    s.ecs_auto(0).unwrap();
    assert_eq!(single_outcome(&result)["outcome"], "completed", "{result}");
    assert_eq!(
        s.get("/_standin/faults").unwrap(),
        json!([]),
        "every injected throttle was hit and retried"
    );
    let action = action_of(&s, &fleet, 0);
    assert_eq!(action["state"], "completed");
    assert_eq!(
        action["complete_calls"], 1,
        "throttled attempts never reach Auto Scaling"
    );
    assert_eq!(
        s.calls().unwrap()["autoscaling:CompleteLifecycleAction"],
        3,
        "two throttled attempts, then the one that completed"
    );
    assert_all_stopped(&fleet.tasks_on(0).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_cases_complete_skip_or_refuse_as_documented() {
    let s = Standin::start().unwrap();
    let (sdk, fleet) = fleet_on(&s, &FleetSpec::new("edges", 4)).await;
    fleet.service("api", false, &[1, 1, 1, 1]).await.unwrap();
    aws_sdk_ecs::Client::new(&sdk)
        .create_cluster()
        .cluster_name("elsewhere")
        .send()
        .await
        .unwrap();
    let base = [("POLL_INTERVAL_SECONDS", "1")];

    // DRY_RUN decides and logs but changes nothing.
    let event = scale_in(&s, &fleet, 0).await;
    let dry = drainer(
        &sdk,
        &[
            base[0],
            ("CLUSTER_NAME", &fleet.cluster),
            ("DRY_RUN", "true"),
        ],
    );
    let outcome = single_outcome(
        &dry.handle(&event, now_ms() + 60_000)
            .await
            .unwrap()
            .to_json(),
    );
    assert_eq!(outcome["outcome"], "dry_run");
    assert_eq!(outcome["decision"]["step"], "SetDraining");
    assert_eq!(fleet.status_of(0).await.unwrap(), "ACTIVE");
    assert_eq!(action_of(&s, &fleet, 0)["complete_calls"], 0);

    // Not registered in the clusters named: complete at once, touch nothing.
    let d = drainer(&sdk, &[base[0], ("CLUSTER_NAME", "elsewhere")]);
    let outcome = single_outcome(&d.handle(&event, now_ms() + 60_000).await.unwrap().to_json());
    assert_eq!(
        (outcome["outcome"].as_str(), outcome["reason"].as_str()),
        (Some("completed"), Some("NotInCluster"))
    );
    assert_eq!(fleet.status_of(0).await.unwrap(), "ACTIVE");

    // CLUSTER_NAME unset: every cluster of the account is searched (two here).
    let everywhere = drainer(&sdk, &base);
    s.ecs_auto(300).unwrap();
    let event1 = scale_in(&s, &fleet, 1).await;
    let outcome = single_outcome(
        &everywhere
            .handle(&event1, now_ms() + 60_000)
            .await
            .unwrap()
            .to_json(),
    );
    assert_eq!(outcome["outcome"], "completed", "{outcome}");
    assert_eq!(fleet.status_of(1).await.unwrap(), "DRAINING");
    s.ecs_auto(0).unwrap();

    // The action expired before we got to it: the instance is no longer in
    // Terminating:Wait, so stop without completing or continuing.
    let event2 = scale_in(&s, &fleet, 2).await;
    s.expire_lifecycle_action(&fleet.instance_ids[2]).unwrap();
    let outcome = single_outcome(
        &everywhere
            .handle(&event2, now_ms() + 60_000)
            .await
            .unwrap()
            .to_json(),
    );
    assert_eq!(outcome["outcome"], "stopped", "{outcome}");
    assert_eq!(action_of(&s, &fleet, 2)["complete_calls"], 0);
    assert!(fleet.drain_queue().await.unwrap().is_empty());

    // Test notifications and launch transitions are acknowledged and dropped.
    let test_note = json!({"Records": [{"EventSource": "aws:sns", "EventVersion": "1.0", "EventSubscriptionArn": "x",
        "Sns": {"Type": "Notification", "MessageId": "m", "TopicArn": fleet.topic_arn, "Subject": null, "Timestamp": "2026-11-22T05:00:00.000Z",
                "SignatureVersion": "1", "Signature": "s", "SigningCertUrl": "u", "UnsubscribeUrl": "u", "MessageAttributes": {},
                "Message": json!({"Event": "autoscaling:TEST_NOTIFICATION", "AutoScalingGroupName": fleet.asg}).to_string()}}]});
    assert_eq!(
        single_outcome(
            &everywhere
                .handle(&test_note, now_ms() + 60_000)
                .await
                .unwrap()
                .to_json()
        )["outcome"],
        "ignored"
    );
    let launch = json!({"LifecycleHookName": "h", "AutoScalingGroupName": fleet.asg, "EC2InstanceId": fleet.instance_ids[3], "LifecycleTransition": "autoscaling:EC2_INSTANCE_LAUNCHING"});
    assert_eq!(
        single_outcome(
            &everywhere
                .handle(&launch, now_ms() + 60_000)
                .await
                .unwrap()
                .to_json()
        )["outcome"],
        "ignored"
    );
    assert_eq!(fleet.status_of(3).await.unwrap(), "ACTIVE");

    // MAX_DRAIN_SECONDS reached with a task that will not move (no scheduler
    // steps): complete CONTINUE anyway and name the task left behind.
    let event3 = scale_in(&s, &fleet, 3).await;
    let capped = drainer(&sdk, &[base[0], ("MAX_DRAIN_SECONDS", "2")]);
    let outcome = single_outcome(
        &capped
            .handle(&event3, now_ms() + 60_000)
            .await
            .unwrap()
            .to_json(),
    );
    assert_eq!(outcome["outcome"], "completed", "{outcome}");
    let left = outcome["reason"]["DeadlineReached"]["left"]
        .as_array()
        .unwrap();
    assert_eq!(left.len(), 1, "{outcome}");
    assert!(left[0].as_str().unwrap().contains(":task/edges/"));
    assert_eq!(action_of(&s, &fleet, 3)["complete_calls"], 1);

    // Malformed input is an error naming the field; in an SQS batch only that record fails.
    let bad = json!({"LifecycleHookName": "h", "AutoScalingGroupName": fleet.asg, "LifecycleTransition": TERMINATING});
    let err = everywhere
        .handle(&bad, now_ms() + 60_000)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("EC2InstanceId"), "{err}");
    let batch = fleet.sqs_event(&[
        "{}".to_owned(),
        json!({"Event": "autoscaling:TEST_NOTIFICATION"}).to_string(),
    ]);
    let result = everywhere
        .handle(&batch, now_ms() + 60_000)
        .await
        .unwrap()
        .to_json();
    assert_eq!(
        result["batchItemFailures"],
        json!([{"itemIdentifier": "msg-0"}])
    );
    assert_eq!(outcomes(&result).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stability_check_waits_for_replacements_to_run() {
    let s = Standin::start().unwrap();
    let (sdk, fleet) = fleet_on(&s, &FleetSpec::new("stable", 2)).await;
    let api = fleet.service("api", false, &[2, 0]).await.unwrap();
    let event = scale_in(&s, &fleet, 0).await;
    let d = fleet_drainer(&sdk, &fleet, &[("SERVICE_STABILITY_CHECK", "true")]);
    let handle = tokio::spawn({
        let event = event.clone();
        async move { d.handle(&event, now_ms() + 120_000).await }
    });

    // Playing ECS for a service at minimumHealthyPercent 0 with no spare capacity:
    // both tasks are stopped without replacements, so the instance empties while
    // the service runs 0 of 2.
    for _ in 0..100 {
        if fleet.status_of(0).await.unwrap() == "DRAINING" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(fleet.status_of(0).await.unwrap(), "DRAINING");
    scheduler_stops_without_replacements(&s, &fleet, &api).await;
    assert_all_stopped(&fleet.tasks_on(0).await.unwrap());
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !handle.is_finished(),
        "empty instance, but the service runs 0 of 2: keep waiting"
    );
    assert_eq!(action_of(&s, &fleet, 0)["complete_calls"], 0);

    // Capacity arrives: the replacements run on instance 1, and the drain completes.
    let deployment = api_started_by(&fleet).await;
    let td = fleet
        .ecs
        .describe_services()
        .cluster(&fleet.cluster)
        .services("api")
        .send()
        .await
        .unwrap()
        .services()[0]
        .task_definition()
        .unwrap()
        .to_owned();
    for _ in 0..2 {
        fleet
            .ecs
            .start_task()
            .cluster(&fleet.cluster)
            .task_definition(&td)
            .container_instances(&fleet.container_instances[1])
            .started_by(&deployment)
            .group("service:api")
            .send()
            .await
            .unwrap();
    }
    let result = handle.await.unwrap().unwrap().to_json();
    assert_eq!(single_outcome(&result)["outcome"], "completed", "{result}");
    assert_eq!(action_of(&s, &fleet, 0)["complete_calls"], 1);
}

async fn api_started_by(fleet: &Fleet) -> String {
    let tasks = fleet.tasks_on(0).await.unwrap();
    tasks.iter().find_map(|t| t.started_by.clone()).unwrap()
}

/// DRAIN_TIMEOUT_ACTION=retain. Given a group whose instance lifecycle policy
/// retains abandoned terminations (STAND-IN: moto ignores the policy; the
/// stand-in keeps it and leaves an ABANDONed terminating instance in
/// `Terminating:Retained`) and an instance with a service task ECS never moves
/// (no scheduler steps), a daemon and a standalone task: at MAX_DRAIN_SECONDS
/// the action is completed ABANDON exactly once, no task is stopped, the
/// instance is retained, one `DrainsRetained` metric and one `drain_retained`
/// notification (with what still runs and why) are emitted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retain_abandons_once_at_the_deadline_and_stops_nothing() {
    let s = Standin::start().unwrap();
    let (sdk, fleet) = fleet_on(&s, &fleet_spec("retain", 2)).await;
    let api = fleet.service("api", false, &[1, 0]).await.unwrap();
    let logs = fleet.service("logs", true, &[1, 1]).await.unwrap();
    let batch = fleet.standalone("batch", 0, 1).await.unwrap();
    set_retention(&fleet, "retain").await;
    let notes = NotificationQueue::create(&sdk, "retain").await.unwrap();
    let (reporter, records) = Reporter::in_memory("td", Some(notes.topic_arn.clone()));
    let d = fleet_drainer(
        &sdk,
        &fleet,
        &[
            ("MAX_DRAIN_SECONDS", "3"),
            ("DRAIN_TIMEOUT_ACTION", "retain"),
            ("NOTIFICATION_TOPIC_ARN", notes.topic_arn.as_str()),
        ],
    )
    .with_reporter(reporter);

    // When the drain runs to its deadline with nothing moving.
    let event = scale_in(&s, &fleet, 0).await;
    let outcome = single_outcome(&d.handle(&event, now_ms() + 60_000).await.unwrap().to_json());

    // Then: completed ABANDON, naming every task left.
    assert_eq!(outcome["outcome"], "completed", "{outcome}");
    let left = outcome["reason"]["Retained"]["left"].as_array().unwrap();
    assert_eq!(left.len(), 3, "{outcome}");
    let action = action_of(&s, &fleet, 0);
    assert_eq!(action["state"], "completed", "{action}");
    assert_eq!(action["result"], "ABANDON", "{action}");
    assert_eq!(action["complete_calls"], 1, "{action}");
    assert_eq!(
        lifecycle_state(&fleet, 0).await.as_deref(),
        Some("Terminating:Retained")
    );
    // Nothing stopped: every task still runs, none told to stop by the drain.
    let tasks = fleet.tasks_on(0).await.unwrap();
    for arn in api.iter().chain(&logs[..1]).chain(&batch) {
        let t = tasks.iter().find(|t| &t.arn == arn).unwrap();
        assert_eq!(
            (t.last_status.as_str(), t.desired_status.as_str()),
            ("RUNNING", "RUNNING"),
            "{t:?}"
        );
    }
    assert_eq!(fleet.status_of(0).await.unwrap(), "DRAINING");

    // A duplicate delivery finds the instance retained: no second completion.
    let again = single_outcome(&d.handle(&event, now_ms() + 60_000).await.unwrap().to_json());
    assert_eq!(again["outcome"], "stopped", "{again}");
    assert_eq!(action_of(&s, &fleet, 0)["complete_calls"], 1);

    // The metric line and the notification.
    let records = records.lock().unwrap().clone();
    assert_eq!(metric_sum(&records, "DrainsRetained"), 1.0, "{records:#?}");
    assert_eq!(metric_sum(&records, "DrainTimeouts"), 0.0, "{records:#?}");
    let done = records_with(&records, "DrainsRetained");
    assert_eq!(done.len(), 1, "{records:#?}");
    assert_eq!(done[0]["TasksLeftAtCompletion"], 3.0);
    // Declared as a metric of the line (Embedded Metric Format), not only a member.
    let declared = done[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"].to_string();
    assert!(declared.contains("\"DrainsRetained\""), "{}", done[0]);
    assert_eq!(done[0]["Cluster"], fleet.cluster.as_str());
    let delivered = notes.take().await.unwrap();
    assert_eq!(
        notified_events(&delivered).unwrap(),
        ["drain_retained", "drain_started"]
    );
    let n = delivered
        .iter()
        .map(|e| notification(e).unwrap())
        .find(|n| n["event"] == "drain_retained")
        .unwrap();
    assert_eq!(n["instance_id"], fleet.instance_ids[0].as_str());
    assert_eq!(n["detail"]["result"], "ABANDON", "{n}");
    assert_eq!(n["detail"]["tasks_left"], 3, "{n}");
    let why = n["detail"]["why"].to_string();
    assert!(
        why.contains("service api") && why.contains("standalone task"),
        "{n}"
    );
}
