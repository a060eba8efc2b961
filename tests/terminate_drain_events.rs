//! terminate-drain completing on ECS's own events, against the AWS stand-in (moto
//! server + the stand-in's lifecycle actions and ECS scheduler, as in
//! terminate_drain.rs). moto emits no EventBridge events: the test plays
//! EventBridge, delivering the `ECS Task State Change` ECS would publish when the
//! last task reaches STOPPED, to a second invocation of the function.

//!
//! Given / When / Then helpers: `tests/support/drain.rs` (the next test of this
//! workflow takes them from there, and adds what it needs there).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed set-up is a failed test

use std::time::{Duration, Instant};

use ecs_lifecycle::hook::Handler;
use ecs_lifecycle_suite::drain::{
    drainer_as_deployed, scale_in, scheduler_stops_without_replacements,
};
use ecs_lifecycle_suite::{action_of, aws_time, fleet_on};
use serde_json::{Value, json};
use testkit::{Fleet, FleetSpec, Standin, now_ms};

fn task_stopped(fleet: &Fleet, task_arn: &str) -> Value {
    json!({
        "version": "0", "id": "0f6b7a2c-0000-4000-8000-000000000001",
        "detail-type": "ECS Task State Change", "source": "aws.ecs",
        "account": "123456789012", "time": "2026-11-22T05:10:31Z", "region": "us-east-1",
        "resources": [task_arn],
        "detail": {
            "clusterArn": fleet.cluster_arn, "containerInstanceArn": fleet.container_instances[0],
            "taskArn": task_arn, "lastStatus": "STOPPED", "desiredStatus": "STOPPED",
            "version": 4
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_of_the_last_task_completes_the_drain_within_a_second() {
    let s = Standin::start().unwrap();
    let (sdk, fleet) = fleet_on(&s, &FleetSpec::new("events", 2)).await;
    let api = fleet.service("api", false, &[1, 0]).await.unwrap();
    let hook_event = scale_in(&s, &fleet, 0).await;
    let vars = [
        ("CLUSTER_NAME", fleet.cluster.as_str()),
        // A long poll: without the event, the completion lags up to 30 s.
        ("POLL_INTERVAL_SECONDS", "30"),
    ];
    let chain = drainer_as_deployed(&sdk, &vars);
    let (reporter, records) = ecs_lifecycle::report::Reporter::in_memory("td", None);
    let by_event = drainer_as_deployed(&sdk, &vars).with_reporter(reporter);

    let polling = async {
        let v = chain
            .handle(&hook_event, now_ms() + 120_000)
            .await
            .unwrap()
            .to_json();
        (v, Instant::now())
    };
    let ecs_and_eventbridge = async {
        // Wait for DRAINING, then play ECS's scheduler until the task is STOPPED.
        while fleet.status_of(0).await.unwrap() != "DRAINING" {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Let the chain settle into its 30 s sleep first.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let stopped_at = loop {
            s.ecs_step().unwrap();
            let tasks = fleet.tasks_on(0).await.unwrap();
            if tasks.iter().all(|t| t.last_status == "STOPPED") {
                break Instant::now();
            }
        };
        // EventBridge delivers the task's STOPPED a moment later.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let v = by_event
            .handle(&task_stopped(&fleet, &api[0]), now_ms() + 60_000)
            .await
            .unwrap()
            .to_json();
        (v, stopped_at, Instant::now())
    };
    let ((chain_result, chain_ended), (event_result, stopped_at, event_done)) =
        tokio::join!(polling, ecs_and_eventbridge);

    assert_eq!(
        event_result["outcomes"][0]["outcome"], "completed",
        "{event_result}"
    );
    let lag = event_done - stopped_at;
    eprintln!("ECS event: last task STOPPED -> completed in {lag:?} (the chain's poll: 30 s)");
    assert!(
        lag < Duration::from_millis(1500),
        "{lag:?} after the last task stopped"
    );
    let action = action_of(&s, &fleet, 0);
    assert_eq!(action["state"], "completed", "{action}");
    assert_eq!(action["complete_calls"], 1, "{action}");
    // The event's invocation measures the drain from the action's start (the
    // chain wrote it on the container instance) to its completion, and the lag
    // from ECS's stoppedAt.
    let records = records.lock().unwrap().clone();
    assert_eq!(records.len(), 1, "{records:?}");
    let took = action["completed_at"].as_f64().unwrap() - action["started_at"].as_f64().unwrap();
    let secs = records[0]["DrainSeconds"].as_f64().unwrap();
    assert!((secs - took).abs() < 1.0, "DrainSeconds {secs} vs {took}");
    let last_stop = testkit::last_stopped_at(&fleet.tasks_on(0).await.unwrap()).unwrap();
    let seen = action["completed_at"].as_f64().unwrap() - last_stop;
    let lag = records[0]["CompletionLagSeconds"].as_f64().unwrap();
    assert!(
        (lag - seen).abs() < 0.5,
        "CompletionLagSeconds {lag} vs {seen}"
    );
    // The chain, asleep meanwhile, stops at its next poll without a second completion.
    let o = &chain_result["outcomes"][0]["outcome"];
    assert!(o == "stopped" || o == "already_completed", "{chain_result}");
    assert!(chain_ended > event_done);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_stability_check_an_event_never_completes_before_the_replacements_run() {
    // The service runs at minimumHealthyPercent 0 with no spare capacity: the
    // scheduler stops both tasks without replacements. The event of the last
    // task's stop reaches an invocation that never saw the tasks live: it must
    // still know the service had tasks here (ECS lists the stopped ones) and
    // leave the action to the chain instead of completing it.
    let s = Standin::start().unwrap();
    let (sdk, fleet) = fleet_on(&s, &FleetSpec::new("evstable", 2)).await;
    let api = fleet.service("api", false, &[2, 0]).await.unwrap();
    let hook_event = scale_in(&s, &fleet, 0).await;
    let vars = [
        ("CLUSTER_NAME", fleet.cluster.as_str()),
        ("POLL_INTERVAL_SECONDS", "30"),
        ("SERVICE_STABILITY_CHECK", "true"),
    ];
    let chain = drainer_as_deployed(&sdk, &vars);
    let by_event = drainer_as_deployed(&sdk, &vars);
    let chain = tokio::spawn(async move { chain.handle(&hook_event, now_ms() + 120_000).await });
    while fleet.status_of(0).await.unwrap() != "DRAINING" {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    scheduler_stops_without_replacements(&s, &fleet, &api).await;
    let v = by_event
        .handle(&task_stopped(&fleet, &api[1]), now_ms() + 60_000)
        .await
        .unwrap()
        .to_json();
    let o = &v["outcomes"][0];
    assert_eq!(o["outcome"], "stopped", "{v}");
    assert_eq!(o["reason"], "LeftToTheDrain", "{v}");
    assert_eq!(action_of(&s, &fleet, 0)["complete_calls"], 0);
    chain.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_of_other_instances_cost_at_most_two_calls_and_other_clusters_none() {
    let s = Standin::start().unwrap();
    let (sdk, fleet) = fleet_on(&s, &FleetSpec::new("quiet", 2)).await;
    let api = fleet.service("api", false, &[1, 1]).await.unwrap();
    let d = drainer_as_deployed(&sdk, &[("CLUSTER_NAME", fleet.cluster.as_str())]);
    let ecs_calls = |s: &Standin| -> u64 {
        s.calls()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.starts_with("ecs:") || k.starts_with("autoscaling:"))
            .map(|(_, n)| n)
            .sum()
    };

    // Another cluster: no call.
    let mut other = task_stopped(&fleet, &api[0]);
    other["detail"]["clusterArn"] = json!("arn:aws:ecs:us-east-1:123456789012:cluster/elsewhere");
    s.reset_calls().unwrap();
    let v = d.handle(&other, now_ms() + 30_000).await.unwrap().to_json();
    assert_eq!(v["outcomes"][0]["outcome"], "ignored", "{v}");
    assert_eq!(ecs_calls(&s), 0);

    // Our cluster, an ACTIVE instance no drain holds: one call.
    s.reset_calls().unwrap();
    let v = d
        .handle(&task_stopped(&fleet, &api[0]), now_ms() + 30_000)
        .await
        .unwrap()
        .to_json();
    assert_eq!(v["outcomes"][0]["outcome"], "ignored", "{v}");
    assert!(ecs_calls(&s) <= 2, "{:?}", s.calls().unwrap());
    // Nothing was completed or changed.
    assert_eq!(fleet.status_of(0).await.unwrap(), "ACTIVE");
}

/// A task that stops on a draining instance which still has a task to run
/// cannot end the drain: the event costs one call (DescribeContainerInstances,
/// whose counts say so) and no Auto Scaling call, so no heartbeat either; the
/// drain's own chain looks on its pace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_that_cannot_end_a_drain_costs_one_call_and_no_heartbeat() {
    let s = Standin::start().unwrap();
    let (sdk, fleet) = fleet_on(&s, &FleetSpec::new("busy", 1)).await;
    let api = fleet.service("api", false, &[2]).await.unwrap();
    let d = drainer_as_deployed(&sdk, &[("CLUSTER_NAME", fleet.cluster.as_str())]);
    // The drain of a terminate hook holds the instance (as its first invocation
    // leaves it): DRAINING, with the hook's attribute.
    let ci = &fleet.container_instances[0];
    fleet
        .ecs
        .update_container_instances_state()
        .cluster(&fleet.cluster)
        .container_instances(ci)
        .status(aws_sdk_ecs::types::ContainerInstanceStatus::Draining)
        .send()
        .await
        .unwrap();
    fleet
        .ecs
        .put_attributes()
        .cluster(&fleet.cluster)
        .attributes(
            aws_sdk_ecs::types::Attribute::builder()
                .name(ecs_lifecycle::model::DRAIN_HOOK_ATTRIBUTE)
                .value(fleet.hook.as_str())
                .target_id(ci)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    // ECS stops one of the two tasks; the other still runs.
    fleet
        .ecs
        .stop_task()
        .cluster(&fleet.cluster)
        .task(&api[0])
        .send()
        .await
        .unwrap();

    s.reset_calls().unwrap();
    let v = d
        .handle(&task_stopped(&fleet, &api[0]), now_ms() + 30_000)
        .await
        .unwrap()
        .to_json();
    assert_eq!(v["outcomes"][0]["outcome"], "ignored", "{v}");
    let calls = s.calls().unwrap();
    let ours: Vec<_> = calls
        .iter()
        .filter(|(k, _)| k.starts_with("ecs:") || k.starts_with("autoscaling:"))
        .collect();
    assert_eq!(
        ours,
        [(&"ecs:DescribeContainerInstances".to_owned(), &1)],
        "{calls:?}"
    );
}

/// An EventBridge event of `detail_type` from the fixtures, for `instance_id`
/// (the fixtures name `i-0123456789abcdef0`).
fn signal(fixture: &str, instance_id: &str) -> Value {
    let path = testkit::workspace_root().join(format!("crates/ecs-lifecycle/fixtures/{fixture}"));
    let text = std::fs::read_to_string(&path).unwrap();
    let mut event: Value =
        serde_json::from_str(&text.replace("i-0123456789abcdef0", instance_id)).unwrap();
    event["time"] = json!(aws_time(now_ms()));
    event
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spot_warning_drains_within_a_second_and_completes_no_action() {
    let s = Standin::start().unwrap();
    let (sdk, fleet) = fleet_on(&s, &FleetSpec::new("spot", 2)).await;
    fleet.service("api", false, &[1, 1]).await.unwrap();
    let notes = testkit::NotificationQueue::create(&sdk, "spot")
        .await
        .unwrap();
    let d = drainer_as_deployed(
        &sdk,
        &[
            ("CLUSTER_NAME", fleet.cluster.as_str()),
            ("NOTIFICATION_TOPIC_ARN", notes.topic_arn.as_str()),
        ],
    );
    let id = &fleet.instance_ids[0];
    assert_eq!(fleet.status_of(0).await.unwrap(), "ACTIVE");

    s.reset_calls().unwrap();
    let sent = Instant::now();
    let v = d
        .handle(
            &signal("eventbridge-spot-interruption.json", id),
            now_ms() + 60_000,
        )
        .await
        .unwrap()
        .to_json();
    let took = sent.elapsed();
    assert_eq!(v["outcomes"][0]["instances"][0]["done"], "draining", "{v}");
    assert_eq!(fleet.status_of(0).await.unwrap(), "DRAINING");
    assert_eq!(fleet.status_of(1).await.unwrap(), "ACTIVE");
    eprintln!("Spot warning -> DRAINING in {took:?}");
    assert!(took < Duration::from_secs(1), "{took:?}");
    let calls = s.calls().unwrap();
    assert!(
        calls.keys().all(|k| !k.contains("LifecycleAction")),
        "no lifecycle action is touched: {calls:?}"
    );
    let delivered = notes.take().await.unwrap();
    assert_eq!(delivered.len(), 1, "{delivered:?}");
    let n = testkit::notification(&delivered[0]).unwrap();
    assert_eq!(n["event"], "drain_started");
    assert_eq!(n["detail"]["reason"], "spot_interruption");
    assert_eq!(n["instance_id"], id.as_str());

    // The same warning again (EventBridge is at-least-once): already DRAINING,
    // nothing more to say.
    d.handle(
        &signal("eventbridge-spot-interruption.json", id),
        now_ms() + 60_000,
    )
    .await
    .unwrap()
    .to_json();
    assert!(notes.take().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_retirement_replaces_the_instance_or_drains_it() {
    let s = Standin::start().unwrap();
    let (sdk, fleet) = fleet_on(&s, &FleetSpec::new("retire", 2)).await;
    let health = |i: usize| {
        let fleet = &fleet;
        async move {
            fleet
                .autoscaling
                .describe_auto_scaling_instances()
                .instance_ids(&fleet.instance_ids[i])
                .send()
                .await
                .unwrap()
                .auto_scaling_instances()[0]
                .health_status()
                .unwrap_or_default()
                // AWS answers HEALTHY / UNHEALTHY, moto as SetInstanceHealth was told.
                .to_ascii_uppercase()
        }
    };
    let cluster = [("CLUSTER_NAME", fleet.cluster.as_str())];

    // replace (the default): marked unhealthy, so Auto Scaling replaces it
    // through the terminate hook; ECS is left as it is until then.
    let v = drainer_as_deployed(&sdk, &cluster)
        .handle(
            &signal("eventbridge-health-retirement.json", &fleet.instance_ids[0]),
            now_ms() + 60_000,
        )
        .await
        .unwrap()
        .to_json();
    assert_eq!(
        v["outcomes"][0]["instances"][0]["done"], "marked_unhealthy",
        "{v}"
    );
    assert_eq!(health(0).await, "UNHEALTHY");
    assert_eq!(fleet.status_of(0).await.unwrap(), "ACTIVE");

    // drain: DRAINING now, healthy in its group.
    let v = drainer_as_deployed(&sdk, &[cluster[0], ("SCHEDULED_EVENT_ACTION", "drain")])
        .handle(
            &signal("eventbridge-health-retirement.json", &fleet.instance_ids[1]),
            now_ms() + 60_000,
        )
        .await
        .unwrap()
        .to_json();
    assert_eq!(v["outcomes"][0]["instances"][0]["done"], "draining", "{v}");
    assert_eq!(fleet.status_of(1).await.unwrap(), "DRAINING");
    assert_eq!(health(1).await, "HEALTHY");
}

/// A scheduled retirement of an instance in the cluster whose group another
/// stack manages (its terminate hook notifies that stack's topic, not this
/// function's): left to that stack. This function's role covers its own
/// groups only, so SetInstanceHealth on the other group would be AccessDenied
/// on AWS, a failed invocation and two retries (found by the IAM check).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_retirement_in_another_stacks_group_is_left_to_that_stack() {
    let s = Standin::start().unwrap();
    let (sdk, fleet) = fleet_on(&s, &FleetSpec::new("neighbour", 1)).await;
    let ours = "arn:aws:sns:us-east-1:123456789012:this-stack-lifecycle";
    let v = drainer_as_deployed(
        &sdk,
        &[
            ("CLUSTER_NAME", fleet.cluster.as_str()),
            ("CONTINUATION_TOPIC_ARN", ours),
        ],
    )
    .handle(
        &signal("eventbridge-health-retirement.json", &fleet.instance_ids[0]),
        now_ms() + 60_000,
    )
    .await
    .unwrap()
    .to_json();
    let done = &v["outcomes"][0]["instances"][0];
    assert_eq!(done["done"], "not_managed", "{v}");
    assert_eq!(done["asg"], fleet.asg.as_str(), "{v}");
    let health = fleet
        .autoscaling
        .describe_auto_scaling_instances()
        .instance_ids(&fleet.instance_ids[0])
        .send()
        .await
        .unwrap()
        .auto_scaling_instances()[0]
        .health_status()
        .unwrap_or_default()
        .to_ascii_uppercase();
    assert_eq!(health, "HEALTHY");
}
