//! One chain per launch action, through the real `Verifier` and the hook
//! runtime over the in-memory fleet, under tokio's paused clock: duplicate and
//! late deliveries stop on the claim; a claim EC2 refuses never gates the check.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::config::{Env, LaunchConfig};
use crate::hook::Handler;
use crate::launch::Verifier;
use crate::launch::claim::ChainTag;
use crate::model::ActionResult;
use crate::testing::fleet::{ActionState, FakeFleet};
use crate::time::epoch_ms;

const ID: &str = "i-0123456789abcdef0";
const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:continue";

type TestVerifier = Verifier<FakeFleet, FakeFleet, FakeFleet, FakeFleet, FakeFleet>;

fn verifier(fleet: &FakeFleet) -> TestVerifier {
    let config = LaunchConfig::from_env(&Env::new(|k| match k {
        "CLUSTER_NAME" => Some("c1".to_owned()),
        "POLL_INTERVAL_SECONDS" => Some("5".to_owned()),
        "CONTINUATION_TOPIC_ARN" => Some(TOPIC.to_owned()),
        _ => None,
    }))
    .unwrap();
    let f = fleet.clone();
    Verifier::new(
        f.clone(),
        f.clone(),
        f.clone(),
        f.clone(),
        f,
        config,
        "us-east-1",
    )
}

/// The launch action as Auto Scaling sends it (the bare message).
fn launch_event() -> Value {
    json!({
        "LifecycleHookName": "verify", "AccountId": "123456789012", "RequestId": "r-1",
        "LifecycleTransition": "autoscaling:EC2_INSTANCE_LAUNCHING",
        "AutoScalingGroupName": "g", "Service": "AWS Auto Scaling",
        "EC2InstanceId": ID, "LifecycleActionToken": "token-1"
    })
}

fn deadline_in(d: Duration) -> u64 {
    epoch_ms() + u64::try_from(d.as_millis()).unwrap()
}

fn outcome(v: &Value) -> &Value {
    &v["outcomes"][0]
}

fn claim(fleet: &FakeFleet) -> ChainTag {
    ChainTag::parse(&fleet.launch_chain_tag(ID).expect("a claim")).expect("a claim it reads")
}

/// A late duplicate of the hook notification (hop 0) arrives after hop 2 has
/// looked: it stops at its first look and hands nothing over; the chain goes
/// on and gives the verdict once.
#[tokio::test(start_paused = true)]
async fn a_late_duplicate_stops_once_a_later_hop_has_looked() {
    crate::time::simulated::start(epoch_ms(), 18);
    let fleet = FakeFleet::new();
    fleet.launching(ID, "g", 300);
    let v = verifier(&fleet);
    let hop = |n: usize| -> Value { serde_json::from_str(&fleet.published()[n].1).unwrap() };
    let short = || deadline_in(Duration::from_secs(30));

    let r = v.handle(&launch_event(), short()).await.unwrap().to_json();
    assert_eq!(outcome(&r)["outcome"], "handed_off", "{r}");
    for n in 0..2 {
        let r = v.handle(&hop(n), short()).await.unwrap().to_json();
        assert_eq!(outcome(&r)["outcome"], "handed_off", "{r}");
    }
    let c = claim(&fleet);
    assert_eq!((c.hop, c.hook.as_str()), (2, "verify"));

    let r = v.handle(&launch_event(), short()).await.unwrap().to_json();
    assert_eq!(outcome(&r)["outcome"], "stopped", "{r}");
    assert_eq!(
        outcome(&r)["reason"],
        json!({"Superseded": {"by": "hop 2"}}),
        "{r}"
    );
    assert_eq!(
        fleet.published().len(),
        3,
        "the duplicate handed nothing over"
    );
    assert_eq!(claim(&fleet), c, "and wrote no claim");

    fleet.register(ID);
    let r = v.handle(&hop(2), short()).await.unwrap().to_json();
    assert_eq!(outcome(&r)["result"], "CONTINUE", "{r}");
    let completions = fleet.completions(ID);
    assert_eq!(completions.len(), 1);
    assert_eq!(completions[0].0, ActionResult::Continue);
    crate::time::simulated::stop();
}

/// A duplicate delivered while the first invocation still waits claims the
/// action; the first stops at its next look (without completing), and the
/// duplicate gives the verdict: one completion.
#[tokio::test(start_paused = true)]
async fn a_duplicate_takes_over_and_the_first_stops_at_its_next_look() {
    crate::time::simulated::start(epoch_ms(), 19);
    let fleet = FakeFleet::new();
    fleet.launching(ID, "g", 300);
    let v = Arc::new(verifier(&fleet));
    let long = deadline_in(Duration::from_secs(900));

    let first = {
        let v = Arc::clone(&v);
        tokio::spawn(async move { v.handle(&launch_event(), long).await })
    };
    tokio::time::sleep(Duration::from_secs(12)).await;
    let first_claim = claim(&fleet);
    let second = {
        let v = Arc::clone(&v);
        tokio::spawn(async move { v.handle(&launch_event(), long).await })
    };
    let r = first.await.unwrap().unwrap().to_json();
    assert_eq!(outcome(&r)["outcome"], "stopped", "{r}");
    let now = claim(&fleet);
    assert_ne!(now.token, first_claim.token);
    assert_eq!(
        outcome(&r)["reason"],
        json!({"Superseded": {"by": now.token}}),
        "{r}"
    );
    assert_eq!(fleet.action_state(ID), Some(ActionState::Waiting));

    fleet.register(ID);
    let r = second.await.unwrap().unwrap().to_json();
    assert_eq!(outcome(&r)["result"], "CONTINUE", "{r}");
    assert_eq!(fleet.completions(ID).len(), 1);
    assert!(fleet.published().is_empty(), "neither handed off");
    crate::time::simulated::stop();
}

/// An instance whose 50 tags leave no room: EC2 refuses the claim, the check
/// goes on unclaimed, and completes.
#[tokio::test(start_paused = true)]
async fn a_refused_claim_never_gates_the_check() {
    crate::time::simulated::start(epoch_ms(), 20);
    let fleet = FakeFleet::new();
    fleet.launching(ID, "g", 300);
    fleet.fill_tags(ID);
    let v = verifier(&fleet);
    let registers = {
        let f = fleet.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(20)).await;
            f.register(ID);
        })
    };
    let r = v
        .handle(&launch_event(), deadline_in(Duration::from_secs(900)))
        .await
        .unwrap()
        .to_json();
    registers.await.unwrap();
    assert_eq!(outcome(&r)["result"], "CONTINUE", "{r}");
    assert_eq!(fleet.launch_chain_tag(ID), None);
    assert_eq!(fleet.completions(ID).len(), 1);
    crate::time::simulated::stop();
}
