//! What operators see of the functions besides their log lines, checked against
//! the stand-in's own record of what happened: the EMF metric records
//! (namespace `EcsLifecycle`) and the notifications on NOTIFICATION_TOPIC_ARN
//! (an SQS queue subscribed to the topic receives them, as an operator's
//! pipeline would). The stand-in plays what moto does not (lifecycle actions,
//! ECS's scheduler, SSM's run outcome, instance refreshes), as in the other
//! integration tests.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed set-up is a failed test

use std::collections::HashMap;
use std::time::Duration;

use ecs_lifecycle::config::{Env, LaunchConfig, RolloutConfig};
use ecs_lifecycle::hook::runtime::HookWorkflow;
use ecs_lifecycle::launch::Verifier;
use ecs_lifecycle::report::Reporter;
use ecs_lifecycle::rollout::{REPORTED_TAG, Roller};
use serde_json::{Value, json};
use testkit::{
    ACTIVE_REFRESH, Fleet, FleetSpec, LocalFunction, NotificationQueue, Standin, metric_records,
    metric_sum, notification, now_ms, parameter_change_event, put_parameter,
};

fn events(notes: &[Value]) -> Vec<String> {
    let mut e: Vec<String> = notes
        .iter()
        .map(|n| {
            notification(n).unwrap()["event"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    e.sort();
    e
}

fn records_with<'a>(records: &'a [Value], metric: &str) -> Vec<&'a Value> {
    records.iter().filter(|r| r.get(metric).is_some()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_across_hand_offs_reports_what_the_stand_in_saw_and_notifies_once() {
    let s = Standin::start().unwrap();
    let sdk = s.sdk_config().await;
    let fleet = Fleet::create(&sdk, &FleetSpec::new("observed", 2))
        .await
        .unwrap();
    fleet.service("web", false, &[2, 1]).await.unwrap();
    let notes = NotificationQueue::create(&sdk, "observed").await.unwrap();

    let log = testkit::temp_log("observed-drain");
    let _ = std::fs::remove_file(&log);
    let mut function = LocalFunction::start_logging_to(
        &s,
        &testkit::binary("terminate-drain").unwrap(),
        "observed-drain",
        &[
            ("CLUSTER_NAME", &fleet.cluster),
            ("POLL_INTERVAL_SECONDS", "1"),
            ("CONTINUATION_TOPIC_ARN", &fleet.topic_arn),
            ("NOTIFICATION_TOPIC_ARN", &notes.topic_arn),
            ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
        ],
        &log,
    )
    .unwrap();
    // 13 s invocations with the 10 s hand-off margin: the drain (the played
    // scheduler stops a task every 800 ms step) needs several of them.
    s.subscribe_function(&fleet.topic_arn, 13_000).unwrap();
    s.ecs_auto(800).unwrap();
    let id = &fleet.instance_ids[0];
    s.start_lifecycle_action(
        &fleet.asg,
        &fleet.hook,
        id,
        "autoscaling:EC2_INSTANCE_TERMINATING",
    )
    .unwrap();
    let action = s
        .wait_for(Duration::from_secs(90), |s| {
            let a = s.lifecycle_action(id)?;
            Ok((a["state"] != "active").then_some(a))
        })
        .await
        .unwrap();
    s.ecs_auto(0).unwrap();
    assert_eq!(action["state"], "completed", "{action}");
    let invocations = s
        .wait_for(Duration::from_secs(10), |s| {
            let all = s.invocations()?;
            Ok(all
                .iter()
                .all(|i| i["status"] != "queued" && i["status"] != "running")
                .then_some(all))
        })
        .await
        .unwrap();
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
    let last_stop = fleet
        .tasks_on(0)
        .await
        .unwrap()
        .iter()
        .filter_map(|t| t.stopped_at)
        .fold(0.0, f64::max);
    let lag = done["CompletionLagSeconds"].as_f64().unwrap();
    let seen = action["completed_at"].as_f64().unwrap() - last_stop;
    assert!(
        (0.0..=2.5).contains(&lag) && (lag - seen).abs() < 0.5,
        "CompletionLagSeconds {lag} vs {seen}"
    );
    println!("drain {secs:.3} s (stand-in: {took:.3} s), lag {lag:.3} s (stand-in: {seen:.3} s)");

    // One message per event, across the hand-offs.
    let delivered = notes.take().await.unwrap();
    assert_eq!(events(&delivered), ["drain_completed", "drain_started"]);
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

const OOM_REPORT: &str = concat!(
    r#"{"schema":"ecs-orphan-diagnostic/1","instance_id":"i-0123456789abcdef0","region":"us-east-1","registered":false,"cluster":"noted","container_instance_arn":null,"checks":["#,
    r#"{"name":"agent_container","status":"fail","detail":"ecs-agent exited 137, OOMKilled=true"}],"failed":["agent_container"]}"#,
    "\nECS agent NOT registered: the agent container was OOM-killed.\n"
);

/// The hook's notification of a launch of instance `i`, as its queue delivers it,
/// `age_s` after the action started.
async fn launch_event(s: &Standin, fleet: &Fleet, i: usize, age_s: u64) -> Value {
    s.start_lifecycle_action(
        &fleet.asg,
        &fleet.launch_hook,
        &fleet.instance_ids[i],
        "autoscaling:EC2_INSTANCE_LAUNCHING",
    )
    .unwrap();
    let bodies = fleet.drain_queue().await.unwrap();
    let mut doc: Value = serde_json::from_str(&bodies[0]).unwrap();
    let mut message: Value = serde_json::from_str(doc["Message"].as_str().unwrap()).unwrap();
    let t =
        aws_smithy_types::DateTime::from_millis(i64::try_from(now_ms() - age_s * 1000).unwrap());
    message["Time"] = json!(
        t.fmt(aws_smithy_types::date_time::Format::DateTime)
            .unwrap()
    );
    doc["Message"] = json!(message.to_string());
    fleet.sqs_event(&[doc.to_string()])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orphan_is_counted_and_notified_once_and_a_registration_timed() {
    let s = Standin::start().unwrap();
    let sdk = s.sdk_config().await;
    let fleet = Fleet::create(
        &sdk,
        &FleetSpec {
            unregistered: 1,
            ..FleetSpec::new("noted", 2)
        },
    )
    .await
    .unwrap();
    let notes = NotificationQueue::create(&sdk, "noted").await.unwrap();
    let orphan = &fleet.instance_ids[1];
    s.script_ssm_outcome(orphan, "Failed", 8, OOM_REPORT, 1)
        .unwrap();
    let vars: HashMap<String, String> = [
        ("CLUSTER_NAME", "noted"),
        ("POLL_INTERVAL_SECONDS", "1"),
        ("SSM_DOCUMENT_NAME", "ecs-lifecycle-OrphanDiagnostic"),
        ("REGISTRATION_TIMEOUT_SECONDS", "30"),
        ("TERMINATE_ORPHANS", "true"),
        ("NOTIFICATION_TOPIC_ARN", notes.topic_arn.as_str()),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let config = LaunchConfig::from_env(&Env::new(move |k| vars.get(k).cloned())).unwrap();
    let (reporter, records) = Reporter::in_memory("lv", config.common.notification_topic.clone());
    let v = Verifier::new(
        aws_sdk_ecs::Client::new(&sdk),
        aws_sdk_autoscaling::Client::new(&sdk),
        aws_sdk_ec2::Client::new(&sdk),
        aws_sdk_ssm::Client::new(&sdk),
        aws_sdk_sns::Client::new(&sdk),
        config,
        "us-east-1",
    )
    .with_handoff_margin(Duration::from_millis(1500))
    .with_reporter(reporter);

    // The registered instance: its registration time, from the action's start.
    let event = launch_event(&s, &fleet, 0, 5).await;
    v.handle(&event, now_ms() + 60_000).await.unwrap();
    // The orphan: diagnosed, abandoned; then the same notification delivered again.
    let event = launch_event(&s, &fleet, 1, 40).await;
    let out = v.handle(&event, now_ms() + 60_000).await.unwrap();
    assert_eq!(out["outcomes"][0]["result"], "ABANDON", "{out}");
    let again = v.handle(&event, now_ms() + 60_000).await.unwrap();
    assert_ne!(again["outcomes"][0]["outcome"], "completed", "{again}");

    let records = records.lock().unwrap().clone();
    let action = s.lifecycle_action(orphan).unwrap();
    assert_eq!(action["complete_calls"], 1);
    assert_eq!(metric_sum(&records, "Orphans"), 1.0, "{records:#?}");
    assert_eq!(metric_sum(&records, "OrphansRefused"), 1.0);
    assert_eq!(
        metric_sum(&records, "DiagnosticsRun") as usize,
        s.ssm_commands().unwrap().len()
    );
    let timed = records_with(&records, "RegistrationSeconds");
    assert_eq!(timed.len(), 1, "{records:#?}");
    let registration = timed[0]["RegistrationSeconds"].as_f64().unwrap();
    // The action started 5 s before the event; the verdict came at once.
    assert!((5.0..8.0).contains(&registration), "{registration}");
    assert_eq!(timed[0]["Cluster"], "noted");

    let delivered = notes.take().await.unwrap();
    assert_eq!(events(&delivered), ["orphan_found"]);
    let n = notification(&delivered[0]).unwrap();
    assert_eq!(n["instance_id"], orphan.as_str());
    assert_eq!(n["detail"]["done"], "abandoned");
    assert_eq!(n["detail"]["diagnosis"]["exit_code"], 8);
    assert_eq!(n["auto_scaling_group"], fleet.asg.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_reports_its_start_and_its_end_once() {
    const PARAM: &str = "/ecs-lifecycle-test/noted-ami";
    let s = Standin::start().unwrap();
    let sdk = s.sdk_config().await;
    let fleet = Fleet::create(&sdk, &FleetSpec::new("rolled", 2))
        .await
        .unwrap();
    let new = fleet.new_ami(&sdk, "rolled-al2023-ecs-next").await.unwrap();
    put_parameter(&sdk, PARAM, &new).await.unwrap();
    let notes = NotificationQueue::create(&sdk, "rolled").await.unwrap();
    let vars: HashMap<String, String> = [
        ("AMI_PARAMETER_NAME", PARAM),
        ("AUTO_SCALING_GROUP_NAMES", fleet.asg.as_str()),
        ("CLUSTER_NAME", fleet.cluster.as_str()),
        ("POLL_INTERVAL_SECONDS", "1"),
        ("STABILITY_TIMEOUT_SECONDS", "600"),
        ("NOTIFICATION_TOPIC_ARN", notes.topic_arn.as_str()),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let config = RolloutConfig::from_env(&Env::new(move |k| vars.get(k).cloned())).unwrap();
    let (reporter, records) = Reporter::in_memory("ar", config.common.notification_topic.clone());
    let r = Roller::new(
        aws_sdk_autoscaling::Client::new(&sdk),
        aws_sdk_ec2::Client::new(&sdk),
        aws_sdk_ecs::Client::new(&sdk),
        aws_sdk_ssm::Client::new(&sdk),
        config,
    )
    .with_publisher(aws_sdk_sns::Client::new(&sdk))
    .with_reporter(reporter);
    let invoke = |event: Value| {
        let r = &r;
        async move { r.handle(&event, now_ms() + 2_000).await.unwrap() }
    };

    invoke(parameter_change_event(PARAM)).await;
    assert_eq!(metric_sum(&records.lock().unwrap(), "RolloutsStarted"), 1.0);
    // A second trigger while it runs starts nothing, reports nothing.
    invoke(parameter_change_event(PARAM)).await;
    for _ in 0..20 {
        let out = fleet.refresh_batch(&s).await.unwrap();
        if !ACTIVE_REFRESH.contains(&out["status"].as_str().unwrap_or_default()) {
            assert_eq!(out["status"], "Successful", "{out}");
            break;
        }
    }
    // Three watches after the end: the outcome is reported by the first only.
    for _ in 0..3 {
        let out = invoke(json!({"action": "watch"})).await;
        assert_eq!(out["outcome"], "settled", "{out}");
    }
    let records = records.lock().unwrap().clone();
    assert_eq!(metric_sum(&records, "RolloutsStarted"), 1.0, "{records:#?}");
    assert_eq!(
        metric_sum(&records, "RolloutsCompleted"),
        1.0,
        "{records:#?}"
    );
    assert_eq!(metric_sum(&records, "RolloutsRolledBack"), 0.0);
    let amis = fleet.instance_amis(&sdk).await.unwrap();
    assert!(amis.iter().all(|a| *a == new));
    assert_eq!(
        metric_sum(&records, "InstancesReplaced") as usize,
        amis.len()
    );
    for rec in &records {
        assert_eq!(rec["AutoScalingGroup"], fleet.asg.as_str());
        assert_eq!(rec["Cluster"], fleet.cluster.as_str());
    }
    let refresh_id = fleet.refreshes().await.unwrap()[0]
        .instance_refresh_id()
        .unwrap()
        .to_owned();
    assert_eq!(
        fleet.group_tags().await.unwrap().get(REPORTED_TAG),
        Some(&refresh_id)
    );
    let delivered = notes.take().await.unwrap();
    assert_eq!(events(&delivered), ["rollout_completed", "rollout_started"]);
    for envelope in &delivered {
        let n = notification(envelope).unwrap();
        assert_eq!(n["auto_scaling_group"], fleet.asg.as_str());
        assert_eq!(n["detail"]["target_ami"], new.as_str());
    }
}
