//! The undo of early drains through the handler, over the in-memory fleet
//! under tokio's paused clock (the wall clock follows it: `simulated::start`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use crate::config::{DrainConfig, Env};
use crate::drain::Drainer;
use crate::drain::undo::{AGENT_WAIT, REBALANCE_WINDOW_MS, SPOT_WINDOW_MS};
use crate::hook::Handler;
use crate::model::{InstanceStatus, LifecycleState};
use crate::ports::Ecs;
use crate::testing::fleet::FakeFleet;
use crate::time::{epoch_ms, rfc3339, simulated};

const ID: &str = "i-0123456789abcdef0";
/// 2026-11-22T06:00:00Z
const EPOCH_MS: u64 = 1_795_327_200_000;

fn drainer(fleet: &FakeFleet, vars: &[(&str, &str)]) -> Drainer<FakeFleet, FakeFleet, FakeFleet> {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .chain([
            ("CLUSTER_NAME".to_owned(), "c1".to_owned()),
            ("POLL_INTERVAL_SECONDS".to_owned(), "5".to_owned()),
        ])
        .collect();
    let config = DrainConfig::from_env(&Env::new(move |k| {
        vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }))
    .unwrap();
    Drainer::new(fleet.clone(), fleet.clone(), fleet.clone(), config)
}

fn event(detail_type: &str, detail: Value) -> Value {
    json!({
        "version": "0", "id": "u-1", "detail-type": detail_type, "source": "aws.ec2",
        "account": "123456789012", "time": rfc3339(epoch_ms()), "region": "us-east-1",
        "resources": [], "detail": detail
    })
}

fn spot(action: &str) -> Value {
    event(
        "EC2 Spot Instance Interruption Warning",
        json!({"instance-id": ID, "instance-action": action}),
    )
}

fn running() -> Value {
    event(
        "EC2 Instance State-change Notification",
        json!({"instance-id": ID, "state": "running"}),
    )
}

/// ECS's event of a DRAINING container instance with no task (the template's
/// rule routes it; ECS sends one when the agent connects, too).
fn instance_drained(fleet: &FakeFleet) -> Value {
    let ci = fleet.container_instance(ID).unwrap();
    json!({
        "version": "0", "id": "e-1", "detail-type": "ECS Container Instance State Change",
        "source": "aws.ecs", "account": "123456789012", "time": rfc3339(epoch_ms()),
        "region": "us-east-1", "resources": [ci.arn],
        "detail": {
            "clusterArn": "c1", "containerInstanceArn": ci.arn, "ec2InstanceId": ID,
            "status": "DRAINING", "agentConnected": ci.agent_connected,
            "runningTasksCount": 0, "pendingTasksCount": 0
        }
    })
}

fn in_service() -> FakeFleet {
    simulated::start(EPOCH_MS, 7);
    let fleet = FakeFleet::new();
    fleet.in_service(ID, "g");
    fleet.register(ID);
    fleet
}

async fn handle(d: &Drainer<FakeFleet, FakeFleet, FakeFleet>, e: &Value) -> Value {
    let v = d.handle(e, epoch_ms() + 900_000).await.unwrap().to_json();
    v["outcomes"][0].clone()
}

fn status(fleet: &FakeFleet) -> InstanceStatus {
    fleet.container_instance(ID).unwrap().status
}

#[tokio::test(start_paused = true)]
async fn a_spot_stop_drain_is_undone_once_the_instance_runs_and_its_agent_connects() {
    let fleet = in_service();
    let d = drainer(&fleet, &[]);
    // Given a Spot `stop` warning that drained the instance
    let o = handle(&d, &spot("stop")).await;
    assert_eq!(o["instances"][0]["done"], "draining", "{o}");
    let marker = fleet.container_instance(ID).unwrap().early_drain.unwrap();
    assert_eq!(marker.reason, "spot_stop");
    assert_eq!(marker.until_ms, marker.since_ms + SPOT_WINDOW_MS);
    // and EC2 stopped it (its agent gone), then started it again 5 minutes later
    fleet.set_agent_connected(ID, false);
    tokio::time::sleep(Duration::from_secs(300)).await;
    let f = fleet.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(40)).await;
        f.set_agent_connected(ID, true);
    });
    // When EC2 reports it running
    let started = Instant::now();
    let o = handle(&d, &running()).await;
    // Then the function waited for the agent, and set it ACTIVE again
    assert_eq!(o["outcome"], "undo", "{o}");
    assert_eq!(o["done"], "set_active", "{o}");
    assert_eq!(o["early_drain"]["reason"], "spot_stop", "{o}");
    let waited = Instant::now() - started;
    assert!(
        waited >= Duration::from_secs(40) && waited <= Duration::from_secs(46),
        "{waited:?}"
    );
    assert_eq!(status(&fleet), InstanceStatus::Active);
    assert_eq!(fleet.container_instance(ID).unwrap().early_drain, None);
    // A duplicate of the event finds nothing to undo.
    let o = handle(&d, &running()).await;
    assert_eq!(o["done"], "not_an_early_drain", "{o}");
    assert_eq!(status(&fleet), InstanceStatus::Active);
}

#[tokio::test(start_paused = true)]
async fn an_agent_that_stays_away_leaves_the_undo_to_its_connection_event() {
    let fleet = in_service();
    let d = drainer(&fleet, &[]);
    handle(&d, &spot("hibernate")).await;
    fleet.set_agent_connected(ID, false);
    tokio::time::sleep(Duration::from_secs(180)).await;
    let started = Instant::now();
    let o = handle(&d, &running()).await;
    assert_eq!(o["done"], "agent_not_connected", "{o}");
    assert!(Instant::now() - started <= AGENT_WAIT);
    assert_eq!(status(&fleet), InstanceStatus::Draining);
    // The window was closed at the running event, in ECS: any later look undoes.
    let marker = fleet.container_instance(ID).unwrap().early_drain.unwrap();
    assert_eq!(marker.until_ms, marker.since_ms + 180_000);
    // ECS's event of the drained instance while the agent is still away: no wait.
    let o = handle(&d, &instance_drained(&fleet)).await;
    assert_eq!(o["done"], "agent_not_connected", "{o}");
    // The agent connects; ECS says so.
    fleet.set_agent_connected(ID, true);
    let o = handle(&d, &instance_drained(&fleet)).await;
    assert_eq!(o["done"], "set_active", "{o}");
    assert_eq!(status(&fleet), InstanceStatus::Active);
}

#[tokio::test(start_paused = true)]
async fn a_rebalance_drain_still_in_service_after_its_window_is_undone_at_the_next_look() {
    let fleet = in_service();
    let d = drainer(&fleet, &[("REBALANCE_ACTION", "drain")]);
    let rebalance = event(
        "EC2 Instance Rebalance Recommendation",
        json!({"instance-id": ID}),
    );
    handle(&d, &rebalance).await;
    assert_eq!(status(&fleet), InstanceStatus::Draining);
    // Within the window: left, it may still be interrupted.
    tokio::time::sleep(Duration::from_secs(600)).await;
    let o = handle(&d, &instance_drained(&fleet)).await;
    assert_eq!(o["done"], "window_open", "{o}");
    assert_eq!(status(&fleet), InstanceStatus::Draining);
    // After it (the agent reconnects several times an hour: ECS reports each).
    tokio::time::sleep(Duration::from_millis(REBALANCE_WINDOW_MS)).await;
    let o = handle(&d, &instance_drained(&fleet)).await;
    assert_eq!(o["done"], "set_active", "{o}");
    assert_eq!(status(&fleet), InstanceStatus::Active);
}

#[tokio::test(start_paused = true)]
async fn never_an_operators_drain_nor_one_a_terminate_action_holds() {
    // An operator's DRAINING: no marker, never undone.
    let fleet = in_service();
    let d = drainer(&fleet, &[]);
    let ci = fleet.container_instance(ID).unwrap();
    fleet
        .set_draining(&ci.cluster, &ci.arn)
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3600)).await;
    let o = handle(&d, &running()).await;
    assert_eq!(o["done"], "not_an_early_drain", "{o}");
    let o = handle(&d, &instance_drained(&fleet)).await;
    assert_eq!(o["outcome"], "ignored", "{o}");
    assert_eq!(status(&fleet), InstanceStatus::Draining);

    // An early drain whose instance Auto Scaling is terminating (its action
    // waits on the terminate hook): never undone.
    let fleet = in_service();
    let d = drainer(&fleet, &[]);
    handle(&d, &spot("stop")).await;
    fleet.terminating(ID, "g", 7200);
    tokio::time::sleep(Duration::from_millis(SPOT_WINDOW_MS)).await;
    let o = handle(&d, &running()).await;
    assert_eq!(o["done"], "not_in_service", "{o}");
    assert_eq!(status(&fleet), InstanceStatus::Draining);
    assert_eq!(
        crate::ports::AutoScaling::instance(&fleet, &ID.into())
            .await
            .unwrap()
            .unwrap()
            .lifecycle_state,
        LifecycleState::TerminatingWait
    );
}
