//! The undo of an early drain, through the real `terminate-drain` binary against
//! the AWS stand-in (moto server + the stand-in's lifecycle actions, ECS
//! scheduler and Lambda Runtime API, as in terminate_drain_binary.rs).
//!
//! moto emits no EventBridge events and has no Spot: the test plays EC2 and
//! EventBridge. It delivers the `EC2 Spot Instance Interruption Warning` and,
//! once "EC2 has started the instance again", the `EC2 Instance State-change
//! Notification` (state `running`) the template's InstanceRunningRule routes
//! to the function. It also plays the instance's ECS agent going away while
//! the instance is stopped and connecting a few seconds after it runs again
//! (`/_standin/ecs/agent`: moto keeps `agentConnected` true forever).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed set-up is a failed test

use std::time::Duration;

use ecs_lifecycle_suite::drain::{start_binary, start_terminating};
use ecs_lifecycle_suite::{aws_time, fleet_on};
use serde_json::{Value, json};
use testkit::{Fleet, FleetSpec, NotificationQueue, Standin, notified_events, now_ms};

const EARLY_DRAIN_ATTRIBUTE: &str = "ecs-lifecycle.early-drain";
const DRAIN_HOOK_ATTRIBUTE: &str = "ecs-lifecycle.drain-hook";

/// An EC2 event for `instance_id`, timed now.
fn ec2_event(detail_type: &str, detail: Value) -> Value {
    json!({
        "version": "0", "id": format!("undo-{}", now_ms()), "detail-type": detail_type,
        "source": "aws.ec2", "account": "123456789012", "time": aws_time(now_ms()),
        "region": "us-east-1", "resources": [], "detail": detail
    })
}

fn spot_warning(instance_id: &str, action: &str) -> Value {
    ec2_event(
        "EC2 Spot Instance Interruption Warning",
        json!({"instance-id": instance_id, "instance-action": action}),
    )
}

fn running(instance_id: &str) -> Value {
    ec2_event(
        "EC2 Instance State-change Notification",
        json!({"instance-id": instance_id, "state": "running"}),
    )
}

/// Invokes the function with `event` as Lambda would (the stand-in's Runtime
/// API), waiting for its answer: the outcome of its one record.
fn invoke(s: &Standin, event: &Value) -> Value {
    let inv = s
        .post(
            "/_standin/lambda/invoke",
            json!({"event": event, "timeout_ms": 180_000}),
        )
        .unwrap();
    assert_eq!(inv["status"], "success", "{inv}");
    inv["response"]["outcomes"][0].clone()
}

/// The value of a custom attribute on container instance `i`.
async fn attribute(fleet: &Fleet, i: usize, name: &str) -> Option<String> {
    let d = fleet
        .ecs
        .describe_container_instances()
        .cluster(&fleet.cluster)
        .container_instances(&fleet.container_instances[i])
        .send()
        .await
        .unwrap();
    d.container_instances()
        .first()?
        .attributes()
        .iter()
        .find(|a| a.name() == name)
        .and_then(|a| a.value().map(str::to_owned))
}

fn set_agent(s: &Standin, fleet: &Fleet, i: usize, connected: bool) {
    s.post(
        "/_standin/ecs/agent",
        json!({"cluster": fleet.cluster, "container_instance": fleet.container_instances[i],
               "connected": connected}),
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spot_stop_drain_is_undone_when_the_instance_runs_again() {
    let s = Standin::start().unwrap();
    let (sdk, fleet) = fleet_on(&s, &FleetSpec::new("undo", 2)).await;
    fleet.service("api", false, &[1, 1]).await.unwrap();
    let notes = NotificationQueue::create(&sdk, "undo").await.unwrap();
    let log = testkit::temp_log("terminate-drain-undo");
    let _function = start_binary(
        &s,
        &fleet,
        "terminate-drain",
        &[("NOTIFICATION_TOPIC_ARN", notes.topic_arn.as_str())],
        &log,
    );
    let id = fleet.instance_ids[0].as_str();

    // Given a Spot warning whose instance-action is `stop`: drained at once,
    // marked as an early drain.
    let o = invoke(&s, &spot_warning(id, "stop"));
    assert_eq!(o["instances"][0]["done"], "draining", "{o}");
    assert_eq!(fleet.status_of(0).await.unwrap(), "DRAINING");
    let marker = attribute(&fleet, 0, EARLY_DRAIN_ATTRIBUTE).await.unwrap();
    assert!(marker.starts_with("spot_stop:"), "{marker}");
    // (ECS moves the service task away meanwhile.)
    s.ecs_step().unwrap();

    // When EC2 stops the instance (its agent goes), starts it again, and the
    // agent connects three seconds after the `running` event.
    set_agent(&s, &fleet, 0, false);
    tokio::time::sleep(Duration::from_secs(2)).await;
    s.post(
        "/_standin/lambda/invoke",
        json!({"event": running(id), "timeout_ms": 180_000, "async": true}),
    )
    .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        fleet.status_of(0).await.unwrap(),
        "DRAINING",
        "nothing undone while the agent is away"
    );
    set_agent(&s, &fleet, 0, true);
    let invocations = s.ended_invocations(Duration::from_secs(30)).await.unwrap();

    // Then it is ACTIVE again, its marker removed, and the operators are told.
    let last = invocations.last().unwrap();
    assert_eq!(last["status"], "success", "{last}");
    let o = &last["response"]["outcomes"][0];
    assert_eq!(
        (o["outcome"].as_str(), o["done"].as_str()),
        (Some("undo"), Some("set_active")),
        "{o}"
    );
    assert_eq!(o["early_drain"]["reason"], "spot_stop", "{o}");
    assert_eq!(fleet.status_of(0).await.unwrap(), "ACTIVE");
    assert_eq!(attribute(&fleet, 0, EARLY_DRAIN_ATTRIBUTE).await, None);
    assert_eq!(fleet.status_of(1).await.unwrap(), "ACTIVE");
    let delivered = notes.take().await.unwrap();
    assert_eq!(
        notified_events(&delivered).unwrap(),
        ["drain_started", "drain_undone"]
    );
    // One INFO line says what was undone and why.
    let text = std::fs::read_to_string(&log).unwrap();
    let undone: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["fields"]["undo"] == "set_active")
        .collect();
    assert_eq!(undone.len(), 1, "{text}");
    assert_eq!(undone[0]["level"], "INFO");
    assert_eq!(undone[0]["fields"]["early_drain"], "spot_stop");
    assert_eq!(undone[0]["fields"]["instance_id"], id);

    // A duplicate of the event (EventBridge is at least once): nothing to undo.
    let o = invoke(&s, &running(id));
    assert_eq!(o["done"], "not_an_early_drain", "{o}");
    assert_eq!(fleet.status_of(0).await.unwrap(), "ACTIVE");
    let _ = std::fs::remove_file(&log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operators_drain_and_a_terminate_hooks_drain_are_never_undone() {
    let s = Standin::start().unwrap();
    let (_, fleet) = fleet_on(&s, &FleetSpec::new("keep", 2)).await;
    // A service task on instance 0 that the scheduler stand-in never moves (no
    // step is played): the terminate hook's drain holds the action meanwhile.
    fleet.service("api", false, &[1, 0]).await.unwrap();
    let log = testkit::temp_log("terminate-drain-keep");
    let _function = start_binary(&s, &fleet, "terminate-drain", &[], &log);

    // An operator set instance 1 DRAINING by hand: no marker.
    fleet
        .ecs
        .update_container_instances_state()
        .cluster(&fleet.cluster)
        .container_instances(&fleet.container_instances[1])
        .status(aws_sdk_ecs::types::ContainerInstanceStatus::Draining)
        .send()
        .await
        .unwrap();
    let o = invoke(&s, &running(&fleet.instance_ids[1]));
    assert_eq!(o["done"], "not_an_early_drain", "{o}");
    assert_eq!(fleet.status_of(1).await.unwrap(), "DRAINING");

    // Instance 0: drained early for a Spot `stop`, then Auto Scaling terminates
    // it: the terminate hook's drain claims it.
    let o = invoke(&s, &spot_warning(&fleet.instance_ids[0], "stop"));
    assert_eq!(o["instances"][0]["done"], "draining", "{o}");
    s.subscribe_function(&fleet.topic_arn, 12_000).unwrap();
    start_terminating(&s, &fleet, 0);
    let claimed_by = std::time::Instant::now() + Duration::from_secs(30);
    while attribute(&fleet, 0, DRAIN_HOOK_ATTRIBUTE).await.is_none() {
        assert!(
            std::time::Instant::now() < claimed_by,
            "the drain never claimed the instance"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // EC2's `running` (a late delivery, or the instance started before Auto
    // Scaling took it): the early drain's window closes, but a terminate hook
    // holds the instance.
    let o = invoke(&s, &running(&fleet.instance_ids[0]));
    assert_eq!(o["done"], "terminate_hook_claims", "{o}");
    assert_eq!(fleet.status_of(0).await.unwrap(), "DRAINING");
    let action = s.lifecycle_action(&fleet.instance_ids[0]).unwrap();
    assert_eq!(
        action["state"], "active",
        "the drain still holds it: {action}"
    );
    let _ = std::fs::remove_file(&log);
}
