//! MAX_CONCURRENT_DRAINS through the real `terminate-drain` binary against the
//! stand-in: five terminate hooks at once with a budget of two. The budget's
//! table is a real DynamoDB table of moto (its conditional writes are moto's
//! own); the wait queue of `WAIT_MODE=queue` and ECS's scheduler are played by
//! the stand-in, as in tests/terminate_drain_binary.rs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed set-up is a failed test

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use ecs_lifecycle_suite::drain::{
    assert_all_stopped, max_heartbeat_gap, start_binary, start_terminating,
};
use ecs_lifecycle_suite::fleet_on;
use testkit::{FleetSpec, Standin};

const TABLE: &str = "drain-slots";

/// The table the template creates (DrainSlotsTable): the cluster as its key.
async fn create_slots_table(sdk: &aws_config::SdkConfig) -> aws_sdk_dynamodb::Client {
    let db = aws_sdk_dynamodb::Client::new(sdk);
    db.create_table()
        .table_name(TABLE)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("cluster")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("cluster")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    db
}

/// `ecs-lifecycle --json status --cluster <cluster> --drain-slots-table` as an
/// operator pointed at the stand-in runs it.
fn cli_status(s: &Standin, cluster: &str) -> serde_json::Value {
    let binary = testkit::binary("ecs-lifecycle").unwrap();
    let out = std::process::Command::new(&binary)
        .args([
            "--json",
            "status",
            "--cluster",
            cluster,
            "--drain-slots-table",
            TABLE,
        ])
        .env_clear()
        .env("AWS_CONFIG_FILE", "/nonexistent/ecs-lifecycle-test/config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/ecs-lifecycle-test/credentials",
        )
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL", &s.endpoint)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .output()
        .unwrap();
    // Exit 0, or 1 when something needs attention.
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Five simultaneous terminate hooks, `MAX_CONCURRENT_DRAINS=2`, three function
/// processes: at every
/// moment the test looks (ECS and the lifecycle actions, every 150 ms), at most
/// two of the instances whose action is still open are DRAINING; the others
/// wait ACTIVE, heartbeated through their continuations; all five complete
/// once, none expires, and every slot is given back.
///
/// A completed action's instance is terminated on AWS (and its container
/// instance deregistered by ECS); the stand-in keeps the container instance
/// DRAINING, so the count is of the instances whose action is still open: a
/// drain holds its slot until its action is completed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hooks_with_a_budget_of_two_never_drain_more_than_two_at_once() {
    let s = Standin::start().unwrap();
    // HeartbeatTimeout 60 s: a beat every 20 s, which the queue's 3 s delay
    // (and its 10 s slack) fits in, so the waits go through the wait queue.
    let spec = FleetSpec {
        heartbeat_timeout: 60,
        ..FleetSpec::new("budget", 6)
    };
    let (sdk, fleet) = fleet_on(&s, &spec).await;
    fleet
        .service("web", false, &[1, 1, 1, 1, 1, 1])
        .await
        .unwrap();
    let db = create_slots_table(&sdk).await;
    s.enforce_heartbeats(true).unwrap();
    // Three sandboxes of the function at once, as Lambda runs them under
    // load: each takes the next invocation from the Runtime API, so the drains
    // ask the budget from three processes concurrently.
    let logs: Vec<_> = (0..3)
        .map(|n| testkit::temp_log(&format!("budget-drain-{n}")))
        .collect();
    let mut functions: Vec<_> = logs
        .iter()
        .map(|log| {
            start_binary(
                &s,
                &fleet,
                "budget-drain",
                &[
                    ("WAIT_MODE", "queue"),
                    ("POLL_INTERVAL_SECONDS", "3"),
                    ("MAX_CONCURRENT_DRAINS", "2"),
                    ("DRAIN_SLOTS_TABLE", TABLE),
                ],
                log,
            )
        })
        .collect();
    s.subscribe_function_with_wait_queue(&fleet.topic_arn, 60_000, 3_000)
        .unwrap();
    s.ecs_auto(800).unwrap();
    let terminating = 0..5;
    for i in terminating.clone() {
        start_terminating(&s, &fleet, i);
    }

    let started = Instant::now();
    let mut most_draining = 0;
    let mut looks = 0;
    // Moments when an open action waited ACTIVE while two others drained.
    let mut held_back = 0;
    let mut ever_draining = BTreeSet::new();
    // The operator's view at the first moment a drain waited: `ecs-lifecycle
    // status --drain-slots-table`, and what ECS said then.
    let mut cli_seen = None;
    loop {
        let mut open = Vec::new();
        for i in terminating.clone() {
            let a = s.lifecycle_action(&fleet.instance_ids[i]).unwrap();
            assert_ne!(a["state"], "expired", "instance {i}: {a}");
            if a["state"] == "active" {
                open.push(i);
            }
        }
        if open.is_empty() {
            break;
        }
        let mut draining = Vec::new();
        for &i in &open {
            if fleet.status_of(i).await.unwrap() == "DRAINING" {
                draining.push(i);
            }
        }
        // The statuses were read after the states: an action completed in
        // between counts as open, which only makes the check stricter.
        assert!(
            draining.len() <= 2,
            "{} instances DRAINING at once with a budget of two: {draining:?} (open: {open:?}) after {:?}",
            draining.len(),
            started.elapsed()
        );
        most_draining = most_draining.max(draining.len());
        if draining.len() == 2 && open.len() > 2 {
            held_back += 1;
            // While three wait: one look later, at least two still do.
            if cli_seen.is_none() && open.len() == 5 {
                cli_seen = Some((
                    cli_status(&s, &fleet.cluster),
                    draining.clone(),
                    open.clone(),
                ));
            }
        }
        ever_draining.extend(draining);
        looks += 1;
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "the drains did not all end within 4 minutes (open: {open:?})"
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    s.ecs_auto(0).unwrap();
    assert!(looks > 20, "only {looks} looks");
    assert_eq!(most_draining, 2, "the budget was never used in full");
    assert!(held_back > 0, "no moment saw a drain wait for a slot");
    assert_eq!(ever_draining.len(), 5, "{ever_draining:?}");
    let (status, draining, open) = cli_seen.unwrap();
    let budget = &status["drain_budget"];
    let ids = |rows: &serde_json::Value| -> BTreeSet<String> {
        rows.as_array()
            .unwrap()
            .iter()
            .map(|r| r["ec2_instance_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let holding = ids(&budget["holding"]);
    let waiting = ids(&budget["waiting_for_slot"]);
    let draining: BTreeSet<String> = draining
        .iter()
        .map(|&i| fleet.instance_ids[i].clone())
        .collect();
    // Read just after ECS: a drain may have ended (its slot freed) and another
    // been admitted in between; never more than two hold a slot.
    assert!((1..=2).contains(&holding.len()), "{status}");
    assert!(holding.is_disjoint(&waiting), "{status}");
    assert!(
        !waiting.is_empty(),
        "the CLI names the instances waiting: {status}"
    );
    assert!(
        waiting
            .iter()
            .all(|w| open.iter().any(|&i| fleet.instance_ids[i] == *w) && !draining.contains(w)),
        "those waiting were open and not DRAINING: {status}"
    );
    let positions: Vec<u64> = budget["waiting_for_slot"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["position"].as_u64().unwrap())
        .collect();
    assert_eq!(
        positions,
        (1..=positions.len() as u64).collect::<Vec<_>>(),
        "{status}"
    );

    for i in terminating {
        let a = s.lifecycle_action(&fleet.instance_ids[i]).unwrap();
        assert_eq!(a["state"], "completed", "instance {i}: {a}");
        assert_eq!(a["result"], "CONTINUE", "instance {i}: {a}");
        assert_eq!(a["complete_calls"], 1, "instance {i}: {a}");
        let gap = max_heartbeat_gap(&a);
        assert!(gap < 60.0, "instance {i}: {gap:.1} s without a heartbeat");
        assert_all_stopped(&fleet.tasks_on(i).await.unwrap());
    }
    assert!(functions.iter_mut().all(|f| !f.exited()));

    // The logs say who waited for a slot, and for which drains.
    let text: String = logs
        .iter()
        .map(|log| std::fs::read_to_string(log).unwrap())
        .collect();
    let busy = logs
        .iter()
        .filter(|log| {
            std::fs::read_to_string(log)
                .unwrap()
                .contains("\"decision\"")
        })
        .count();
    assert!(
        busy >= 2,
        "the invocations were spread over {busy} process(es)"
    );
    let waits: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["fields"]["decision"] == "wait_for_slot")
        .collect();
    assert!(!waits.is_empty(), "no wait_for_slot line in the log");
    for w in &waits {
        assert_eq!(w["fields"]["waiting_for_slot"], true, "{w}");
        assert_eq!(w["fields"]["max_concurrent_drains"], 2, "{w}");
        let waiting = w["span"]["instance_id"].as_str().unwrap();
        let draining = w["fields"]["draining"].as_str().unwrap();
        // The drains holding the slots (none yet, when the free ones go to
        // older actions that have not looked since).
        assert!(
            !draining.contains(waiting) && draining.matches("i-").count() <= 2,
            "a wait names the drains it waits for: {w}"
        );
    }

    assert!(
        waits.iter().any(|w| w["fields"]["draining"]
            .as_str()
            .is_some_and(|d| d.matches("i-").count() == 2)),
        "some wait names the two drains holding the slots"
    );

    // Every slot given back: the book of the cluster holds no one.
    let item = db
        .get_item()
        .table_name(TABLE)
        .key("cluster", AttributeValue::S(fleet.cluster.clone()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    let book = item
        .item()
        .and_then(|i| i.get("book"))
        .and_then(|b| b.as_s().ok())
        .expect("the cluster's item");
    let book: serde_json::Value = serde_json::from_str(book).unwrap();
    assert_eq!(book["holders"], serde_json::json!({}), "{book}");
    assert_eq!(book["waiters"], serde_json::json!({}), "{book}");
    for log in &logs {
        let _ = std::fs::remove_file(log);
    }
}
