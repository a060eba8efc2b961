//! The drain budget through the hook runtime, over the in-memory fleet (its
//! table: a consistent read and a version-conditioned write, as DynamoDB's)
//! under tokio's paused clock.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use crate::config::{DrainConfig, Env};
use crate::drain::Drainer;
use crate::drain::budget::{DrainSlots, SlotBook, SlotHolder};
use crate::hook::Handler;
use crate::model::{ActionResult, Cluster, InstanceStatus};
use crate::testing::fleet::{ActionState, FakeFleet, Fault, FaultKind};
use crate::time::{epoch_ms, rfc3339};

type FakeDrainer = Drainer<FakeFleet, FakeFleet, FakeFleet>;

/// The wall clock follows tokio's paused clock on this thread, and randomness
/// is seeded, until the guard drops (the thread then goes back to the system
/// clock, for the next test it runs).
fn deterministic() -> impl Drop {
    struct Guard;
    impl Drop for Guard {
        fn drop(&mut self) {
            crate::time::simulated::stop();
        }
    }
    crate::time::simulated::start(1_800_000_000_000, 21);
    Guard
}

fn drainer(fleet: &FakeFleet, vars: &[(&str, &str)]) -> FakeDrainer {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .chain([
            ("CLUSTER_NAME".to_owned(), "c1".to_owned()),
            ("POLL_INTERVAL_SECONDS".to_owned(), "5".to_owned()),
            ("DRAIN_SLOTS_TABLE".to_owned(), "slots".to_owned()),
            (
                "CONTINUATION_TOPIC_ARN".to_owned(),
                "arn:aws:sns:us-east-1:123456789012:continue".to_owned(),
            ),
        ])
        .collect();
    let config = DrainConfig::from_env(&Env::new(move |k| {
        vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }))
    .unwrap();
    Drainer::new(fleet.clone(), fleet.clone(), fleet.clone(), config).with_slots(fleet.clone())
}

/// The terminate action of `id`, started `ago` before now.
fn terminate_event(id: &str, ago: Duration) -> Value {
    let started = epoch_ms() - u64::try_from(ago.as_millis()).unwrap();
    json!({
        "LifecycleHookName": "drain", "AccountId": "123456789012", "RequestId": format!("r-{id}"),
        "LifecycleTransition": "autoscaling:EC2_INSTANCE_TERMINATING",
        "AutoScalingGroupName": "g", "Service": "AWS Auto Scaling", "Time": rfc3339(started),
        "EC2InstanceId": id, "LifecycleActionToken": format!("token-{id}")
    })
}

fn deadline_in(d: Duration) -> u64 {
    epoch_ms() + u64::try_from(d.as_millis()).unwrap()
}

/// Terminating instances, each with one service task that ECS (played here)
/// stops `moves_in` after the instance is set DRAINING.
fn fleet_of(ids: &[&str], heartbeat_timeout_s: u64, moves_in: Duration) -> FakeFleet {
    let fleet = FakeFleet::new();
    for id in ids {
        fleet.terminating(id, "g", heartbeat_timeout_s);
        fleet.register(id);
        let task = format!("task-{id}");
        fleet.run_service_task(id, &task, "web");
        let (f, id) = (fleet.clone(), (*id).to_owned());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                if f.container_instance(&id).map(|c| c.status) == Some(InstanceStatus::Draining) {
                    tokio::time::sleep(moves_in).await;
                    f.stop_task(&task);
                    return;
                }
            }
        });
    }
    fleet
}

/// Watches `ids` every 500 ms: the most of them DRAINING at once while their
/// action is still open.
fn watch_draining(fleet: &FakeFleet, ids: &[&str]) -> Arc<Mutex<usize>> {
    let most = Arc::new(Mutex::new(0));
    let (f, ids, m) = (
        fleet.clone(),
        ids.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>(),
        most.clone(),
    );
    tokio::spawn(async move {
        loop {
            let n = ids
                .iter()
                .filter(|id| {
                    f.action_state(id) == Some(ActionState::Waiting)
                        && f.container_instance(id).map(|c| c.status)
                            == Some(InstanceStatus::Draining)
                })
                .count();
            if let Ok(mut m) = m.lock() {
                *m = (*m).max(n);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    most
}

fn max_gap(fleet: &FakeFleet, id: &str, start: Instant) -> Duration {
    let mut marks = vec![start];
    marks.extend(fleet.heartbeats(id));
    marks.extend(fleet.completions(id).iter().map(|c| c.1));
    marks
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default()
}

#[tokio::test(start_paused = true)]
async fn three_drains_with_a_budget_of_one_run_one_at_a_time_oldest_first() {
    let _clock = deterministic();
    let ids = [
        "i-0000000000000000a",
        "i-0000000000000000b",
        "i-0000000000000000c",
    ];
    let start = Instant::now();
    let fleet = fleet_of(&ids, 30, Duration::from_secs(20));
    let most = watch_draining(&fleet, &ids);
    let d = Arc::new(drainer(&fleet, &[("MAX_CONCURRENT_DRAINS", "1")]));
    // c's action is the oldest, then a, then b; b's invocation asks first.
    let ages = [(ids[1], 10), (ids[0], 20), (ids[2], 30)];
    let mut runs = Vec::new();
    for (id, age) in ages {
        let (d, event) = (d.clone(), terminate_event(id, Duration::from_secs(age)));
        runs.push(tokio::spawn(async move {
            d.handle(&event, deadline_in(Duration::from_secs(900)))
                .await
        }));
        tokio::task::yield_now().await;
    }
    for r in runs {
        let v = r.await.unwrap().unwrap().to_json();
        assert_eq!(v["outcomes"][0]["outcome"], "completed", "{v}");
        assert_eq!(v["outcomes"][0]["reason"], "Drained", "{v}");
    }
    assert_eq!(*most.lock().unwrap(), 1, "more than one drain at once");
    let done = |id: &str| {
        let c = fleet.completions(id);
        assert_eq!(c.len(), 1, "{id}: {c:?}");
        assert_eq!(c[0].0, ActionResult::Continue);
        c[0].1
    };
    // b asked first, with the budget free, and took the slot; then the actions
    // waiting go oldest first: c, then a, each after the previous one ended.
    let (a, b, c) = (done(ids[0]), done(ids[1]), done(ids[2]));
    assert!(
        b < c && c < a,
        "{:?} {:?} {:?}",
        a - start,
        b - start,
        c - start
    );
    assert!(a - start >= Duration::from_secs(60), "{:?}", a - start);
    for id in ids {
        let gap = max_gap(&fleet, id, start);
        assert!(
            gap <= Duration::from_secs(10),
            "{id}: {gap:?} without a heartbeat"
        );
    }
    // Every slot is back.
    assert_eq!(fleet.slot_book("c1"), Some(SlotBook::default()));
}

/// A percentage of the cluster's container instances: four, 50 %: two at
/// once; the count is made once for all the drains (kept in the book).
#[tokio::test(start_paused = true)]
async fn a_percentage_budget_counts_the_cluster_once_for_all_its_drains() {
    let _clock = deterministic();
    let ids = [
        "i-0000000000000000a",
        "i-0000000000000000b",
        "i-0000000000000000c",
        "i-0000000000000000d",
    ];
    let fleet = fleet_of(&ids, 30, Duration::from_secs(20));
    let most = watch_draining(&fleet, &ids);
    let d = Arc::new(drainer(&fleet, &[("MAX_CONCURRENT_DRAINS", "50%")]));
    let mut runs = Vec::new();
    for (n, id) in ids.iter().enumerate() {
        let (d, event) = (
            d.clone(),
            terminate_event(id, Duration::from_secs(10 * n as u64)),
        );
        runs.push(tokio::spawn(async move {
            d.handle(&event, deadline_in(Duration::from_secs(900)))
                .await
        }));
    }
    for r in runs {
        let v = r.await.unwrap().unwrap().to_json();
        assert_eq!(v["outcomes"][0]["outcome"], "completed", "{v}");
    }
    assert_eq!(*most.lock().unwrap(), 2, "50 % of four instances");
    let size = fleet.slot_book("c1").and_then(|b| b.cluster_size).unwrap();
    assert_eq!(size.instances, 4);
}

/// A budget held by a drain that never ends: the waiting action is completed
/// at its drain deadline (MAX_DRAIN_SECONDS), never set DRAINING, heartbeated
/// until then; CONTINUE, or ABANDON with DRAIN_TIMEOUT_ACTION=retain.
#[tokio::test(start_paused = true)]
async fn a_drain_still_waiting_at_its_deadline_ends_deliberately_never_drained() {
    let _clock = deterministic();
    for (action, result) in [
        ("continue", ActionResult::Continue),
        ("retain", ActionResult::Abandon),
    ] {
        let id = "i-0000000000000000b";
        let start = Instant::now();
        let fleet = fleet_of(&[id], 30, Duration::from_secs(1));
        let stuck = SlotBook {
            holders: [(
                "i-00000000000000000".to_owned(),
                SlotHolder {
                    since_ms: epoch_ms(),
                    lease_until_ms: epoch_ms() + 86_400_000,
                    urgent: false,
                },
            )]
            .into(),
            ..SlotBook::default()
        };
        assert!(
            fleet
                .write(&Cluster::from("c1"), &stuck, None)
                .await
                .unwrap()
        );
        let d = drainer(
            &fleet,
            &[
                ("MAX_CONCURRENT_DRAINS", "1"),
                ("MAX_DRAIN_SECONDS", "120"),
                ("DRAIN_TIMEOUT_ACTION", action),
            ],
        );
        let v = d
            .handle(
                &terminate_event(id, Duration::ZERO),
                deadline_in(Duration::from_secs(900)),
            )
            .await
            .unwrap()
            .to_json();
        let o = &v["outcomes"][0];
        assert_eq!(o["outcome"], "completed", "{v}");
        assert_eq!(
            o["reason"]["NoDrainSlot"]["retained"],
            action == "retain",
            "{v}"
        );
        let c = fleet.completions(id);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].0, result);
        let at = c[0].1 - start;
        assert!(
            at >= Duration::from_secs(120) && at <= Duration::from_secs(126),
            "{at:?}"
        );
        assert_eq!(
            fleet.container_instance(id).map(|c| c.status),
            Some(InstanceStatus::Active),
            "never set DRAINING"
        );
        assert!(max_gap(&fleet, id, start) <= Duration::from_secs(10));
        // Its place in the queue is given back.
        assert!(fleet.slot_book("c1").is_some_and(|b| b.waiters.is_empty()));
    }
}

/// A Spot warning drains at once whatever the budget and holds a slot; a
/// terminate hook of the same cluster then waits (handing over, heartbeated)
/// instead of draining beside it.
#[tokio::test(start_paused = true)]
async fn an_urgent_drain_bypasses_the_budget_and_counts_against_it() {
    let _clock = deterministic();
    let (spot, other) = ("i-00000000000000005", "i-0000000000000000b");
    let fleet = fleet_of(&[other], 30, Duration::from_secs(1));
    // Its own group: the fake reads a group's hook timeouts from any action
    // of the group, and an instance in service has Auto Scaling's defaults.
    fleet.in_service(spot, "spot-group");
    fleet.register(spot);
    // Full already: the Spot drain goes on all the same.
    let d = drainer(&fleet, &[("MAX_CONCURRENT_DRAINS", "1")]);
    let warning = json!({
        "version": "0", "id": "s-1", "detail-type": "EC2 Spot Instance Interruption Warning",
        "source": "aws.ec2", "account": "123456789012", "time": "2026-11-22T06:00:00Z",
        "region": "us-east-1", "resources": [],
        "detail": {"instance-id": spot, "instance-action": "terminate"}
    });
    let v = d
        .handle(&warning, deadline_in(Duration::from_secs(60)))
        .await
        .unwrap()
        .to_json();
    assert_eq!(v["outcomes"][0]["instances"][0]["done"], "draining", "{v}");
    let book = fleet.slot_book("c1").unwrap();
    assert!(book.holders[spot].urgent, "{book:?}");

    let v = d
        .handle(
            &terminate_event(other, Duration::ZERO),
            deadline_in(Duration::from_secs(40)),
        )
        .await
        .unwrap()
        .to_json();
    assert_eq!(v["outcomes"][0]["outcome"], "handed_off", "{v}");
    assert_eq!(
        fleet.container_instance(other).map(|c| c.status),
        Some(InstanceStatus::Active)
    );
    let book = fleet.slot_book("c1").unwrap();
    assert!(book.waiters.contains_key(other), "{book:?}");
    assert!(
        !fleet.heartbeats(other).is_empty(),
        "held alive while waiting"
    );
}

/// A table that cannot be used at all (access denied) does not hold the
/// drain: it runs without the budget (an ERROR says so); a transient failure
/// only delays it.
#[tokio::test(start_paused = true)]
async fn the_table_never_makes_a_drain_wait_for_good() {
    let _clock = deterministic();
    for (code, for_s) in [
        ("AccessDeniedException", 3_600),
        ("InternalServerError", 30),
    ] {
        let id = "i-0000000000000000b";
        let start = Instant::now();
        let fleet = fleet_of(&[id], 30, Duration::from_secs(5));
        fleet.add_fault(Fault {
            service: "dynamodb",
            operation: None,
            from: start,
            until: start + Duration::from_secs(for_s),
            kind: FaultKind::Error(code.into()),
        });
        let d = drainer(&fleet, &[("MAX_CONCURRENT_DRAINS", "1")]);
        let v = d
            .handle(
                &terminate_event(id, Duration::ZERO),
                deadline_in(Duration::from_secs(900)),
            )
            .await
            .unwrap()
            .to_json();
        assert_eq!(v["outcomes"][0]["outcome"], "completed", "{code}: {v}");
        assert_eq!(v["outcomes"][0]["reason"], "Drained", "{code}: {v}");
        let took = fleet.completions(id)[0].1 - start;
        if code == "InternalServerError" {
            // It waited for the table, then took its slot.
            assert!(took >= Duration::from_secs(30), "{took:?}");
        } else {
            assert!(took < Duration::from_secs(15), "{took:?}");
        }
        assert!(max_gap(&fleet, id, start) <= Duration::from_secs(10));
    }
}

/// A write whose answer was lost took effect: the next try reads its own
/// slot back and takes nothing twice.
#[tokio::test(start_paused = true)]
async fn a_lost_answer_of_the_table_takes_one_slot_once() {
    let _clock = deterministic();
    let ids = ["i-0000000000000000a", "i-0000000000000000b"];
    let start = Instant::now();
    let fleet = fleet_of(&ids, 30, Duration::from_secs(10));
    fleet.add_fault(Fault {
        service: "dynamodb",
        operation: Some("PutItem"),
        from: start,
        until: start + Duration::from_secs(1),
        kind: FaultKind::LostAnswer("InternalServerError".into()),
    });
    let most = watch_draining(&fleet, &ids);
    let d = Arc::new(drainer(&fleet, &[("MAX_CONCURRENT_DRAINS", "1")]));
    let mut runs = Vec::new();
    for (id, age) in [(ids[0], 20), (ids[1], 10)] {
        let (d, event) = (d.clone(), terminate_event(id, Duration::from_secs(age)));
        runs.push(tokio::spawn(async move {
            d.handle(&event, deadline_in(Duration::from_secs(900)))
                .await
        }));
    }
    for r in runs {
        let v = r.await.unwrap().unwrap().to_json();
        assert_eq!(v["outcomes"][0]["outcome"], "completed", "{v}");
    }
    assert_eq!(*most.lock().unwrap(), 1);
    assert_eq!(fleet.slot_book("c1"), Some(SlotBook::default()));
}
