//! launch-verify against the AWS stand-in over real HTTP (moto server 5.2.5 for
//! ECS, Auto Scaling, EC2, SNS, SQS and SSM). Stood in for explicitly, as
//! tests/standin/standin.py documents: the launch lifecycle action
//! (`Pending:Wait`, the hook notification, CompleteLifecycleAction) and what SSM
//! Run Command reports (moto's GetCommandInvocation is always Success with empty
//! output: the tests script each run's status, exit code and output).

//!
//! Given / When / Then helpers: `tests/support/launch.rs` (the next test of this
//! workflow takes them from there, and adds what it needs there).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed set-up is a failed test

use std::time::Duration;

use ecs_lifecycle::hook::Handler;
use ecs_lifecycle::launch::claim::{ChainTag, LAUNCH_CHAIN_TAG};
use ecs_lifecycle::report::Reporter;
use ecs_lifecycle_suite::launch::{
    DOCUMENT, LOG_GROUP, OOM_REPORT, aged, launch, launch_successful, orphan_verifier, verifier,
};
use ecs_lifecycle_suite::{
    aws_time, fleet_on, fleet_with_unregistered, next_continuation, outcome_and_result,
    single_outcome,
};
use serde_json::json;
use testkit::{
    FleetSpec, NotificationQueue, Standin, metric_sum, notification, notified_events, now_ms,
    records_with,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_instance_is_continued_and_a_warm_pool_one_needs_no_ecs() {
    let s = Standin::start().unwrap();
    let (sdk, fleet) = fleet_on(&s, &FleetSpec::new("joined", 2)).await;
    let v = verifier(&sdk, &[("CLUSTER_NAME", "joined")]);

    let event = launch(&s, &fleet, 0, |_| {}).await;
    let outcome = single_outcome(&v.handle(&event, now_ms() + 60_000).await.unwrap().to_json());
    assert_eq!(
        outcome_and_result(&outcome),
        (Some("completed"), Some("CONTINUE")),
        "{outcome}"
    );
    assert_eq!(
        outcome["verdict"]["Registered"]["container_instance"],
        fleet.container_instances[0].as_str()
    );
    let action = s.lifecycle_action(&fleet.instance_ids[0]).unwrap();
    assert_eq!(
        (action["result"].as_str(), action["complete_calls"].as_u64()),
        (Some("CONTINUE"), Some(1))
    );
    assert!(
        s.ssm_commands().unwrap().is_empty(),
        "no diagnosis for a healthy instance"
    );

    // Warm pool: CONTINUE at once, without a single ECS call.
    let event = launch(&s, &fleet, 1, |m| m["Destination"] = json!("WarmPool")).await;
    s.reset_calls().unwrap();
    let outcome = single_outcome(&v.handle(&event, now_ms() + 60_000).await.unwrap().to_json());
    assert_eq!(outcome["verdict"], "WarmPool", "{outcome}");
    assert_eq!(outcome["result"], "CONTINUE");
    let calls = s.calls().unwrap();
    assert!(calls.keys().all(|k| !k.starts_with("ecs:")), "{calls:?}");
    assert_eq!(calls.get("autoscaling:CompleteLifecycleAction"), Some(&1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orphan_is_diagnosed_then_continued_or_abandoned() {
    let s = Standin::start().unwrap();
    let sdk = s.sdk_config().await;
    let fleet = fleet_with_unregistered(&sdk, "verify", 3, 2).await;
    let (tolerated, refused) = (&fleet.instance_ids[1], &fleet.instance_ids[2]);
    for id in [tolerated, refused] {
        // What SSM reports of the run: still InProgress at the first poll, then
        // the script's exit code 8 ("not registered") and its JSON report.
        s.script_ssm_outcome(id, "Failed", 8, OOM_REPORT, 1)
            .unwrap();
    }

    // TERMINATE_ORPHANS=false (the default): CONTINUE, with the orphan named in a warning.
    let v = orphan_verifier(&sdk, "verify", &[]);
    let event = launch(&s, &fleet, 1, aged(40)).await;
    let outcome = single_outcome(&v.handle(&event, now_ms() + 60_000).await.unwrap().to_json());
    assert_eq!(
        outcome_and_result(&outcome),
        (Some("completed"), Some("CONTINUE")),
        "{outcome}"
    );
    let orphan = &outcome["verdict"]["Orphan"];
    assert_eq!(
        orphan["why"],
        "no container instance registered for it in the clusters searched"
    );
    assert_eq!(orphan["findings"]["outcome"], "completed");
    assert_eq!(orphan["findings"]["exit_code"], 8);
    assert!(
        orphan["findings"]["problems"]
            .to_string()
            .contains("OOMKilled=true"),
        "{orphan}"
    );

    let commands = s.ssm_commands().unwrap();
    assert_eq!(commands.len(), 1);
    let c = &commands[0];
    assert_eq!(c["document_name"], DOCUMENT);
    assert_eq!(c["instance_ids"], json!([tolerated]));
    assert_eq!(
        c["parameters"],
        json!({"InstanceId": [tolerated], "Region": ["us-east-1"]})
    );
    assert_eq!(
        c["cloudwatch_output_config"],
        json!({"CloudWatchOutputEnabled": true, "CloudWatchLogGroupName": LOG_GROUP})
    );

    // TERMINATE_ORPHANS=true: ABANDON, so Auto Scaling replaces the instance.
    let v = orphan_verifier(&sdk, "verify", &[("TERMINATE_ORPHANS", "true")]);
    let event = launch(&s, &fleet, 2, aged(40)).await;
    let outcome = single_outcome(&v.handle(&event, now_ms() + 60_000).await.unwrap().to_json());
    assert_eq!(outcome["result"], "ABANDON", "{outcome}");
    let action = s.lifecycle_action(refused).unwrap();
    assert_eq!(
        (action["result"].as_str(), action["complete_calls"].as_u64()),
        (Some("ABANDON"), Some(1))
    );
    assert_eq!(s.ssm_commands().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_on_the_third_poll_is_continued() {
    let s = Standin::start().unwrap();
    let sdk = s.sdk_config().await;
    let mut fleet = fleet_with_unregistered(&sdk, "late", 2, 1).await;
    let v = verifier(&sdk, &[("CLUSTER_NAME", "late")]);
    let event = launch(&s, &fleet, 1, |_| {}).await;
    s.reset_calls().unwrap();
    let run = tokio::spawn(async move { v.handle(&event, now_ms() + 60_000).await });

    // Two polls find nothing; then the agent registers (as an agent that took
    // its time would); the third poll finds it ACTIVE and connected.
    let polls = |s: &Standin| {
        s.calls()
            .map(|c| c.get("ecs:ListContainerInstances").copied().unwrap_or(0))
    };
    s.wait_for(Duration::from_secs(20), |s| {
        Ok((polls(s)? >= 2).then_some(()))
    })
    .await
    .unwrap();
    fleet.register(1).await.unwrap();
    let outcome = single_outcome(&run.await.unwrap().unwrap().to_json());
    assert_eq!(
        outcome_and_result(&outcome),
        (Some("completed"), Some("CONTINUE")),
        "{outcome}"
    );
    assert!(outcome["verdict"]["Registered"].is_object(), "{outcome}");
    assert_eq!(polls(&s).unwrap(), 3, "registered at the third poll");
    assert!(s.ssm_commands().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_ssm_and_the_no_hook_mode() {
    let s = Standin::start().unwrap();
    let sdk = s.sdk_config().await;
    let fleet = fleet_with_unregistered(&sdk, "nohook", 3, 2).await;

    // SSM cannot reach the instance: that is the finding; CONTINUE with a warning.
    s.make_ssm_unreachable(&fleet.instance_ids[1]).unwrap();
    let v = orphan_verifier(&sdk, "nohook", &[]);
    let event = launch(&s, &fleet, 1, aged(40)).await;
    let outcome = single_outcome(&v.handle(&event, now_ms() + 60_000).await.unwrap().to_json());
    assert_eq!(outcome["result"], "CONTINUE", "{outcome}");
    let findings = &outcome["verdict"]["Orphan"]["findings"];
    assert_eq!(findings["outcome"], "ssm_unreachable");
    assert!(
        findings["problems"][0]
            .as_str()
            .unwrap()
            .contains("not in a valid state"),
        "{findings}"
    );

    // EventBridge `EC2 Instance Launch Successful` (no hook) for an orphan, with
    // TERMINATE_ORPHANS=true: terminated through its Auto Scaling group.
    let orphan = &fleet.instance_ids[2];
    s.script_ssm_outcome(orphan, "Failed", 8, OOM_REPORT, 0)
        .unwrap();
    let event = launch_successful(
        &fleet,
        "5b4b2b3c-0000-4000-8000-000000000001",
        orphan,
        &aws_time(now_ms() - 45_000),
        json!({"StatusCode": "InProgress"}),
    );
    let refuse = orphan_verifier(&sdk, "nohook", &[("TERMINATE_ORPHANS", "true")]);
    let outcome = single_outcome(
        &refuse
            .handle(&event, now_ms() + 60_000)
            .await
            .unwrap()
            .to_json(),
    );
    assert_eq!(outcome["outcome"], "terminated", "{outcome}");
    let state = aws_sdk_ec2::Client::new(&sdk)
        .describe_instances()
        .instance_ids(orphan)
        .send()
        .await
        .unwrap();
    let name = state.reservations()[0].instances()[0]
        .state()
        .unwrap()
        .name()
        .unwrap()
        .as_str()
        .to_owned();
    assert!(name == "terminated" || name == "shutting-down", "{name}");
    // A healthy instance in the no-hook mode is only reported.
    let healthy = launch_successful(
        &fleet,
        "5b4b2b3c-0000-4000-8000-000000000002",
        &fleet.instance_ids[0],
        "2026-11-22T05:00:00Z",
        json!({}),
    );
    let outcome = single_outcome(
        &refuse
            .handle(&healthy, now_ms() + 60_000)
            .await
            .unwrap()
            .to_json(),
    );
    assert_eq!(outcome["outcome"], "reported", "{outcome}");
    assert!(outcome["verdict"]["Registered"].is_object());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_diagnosis_outlasting_the_invocation_resumes_in_the_next_one() {
    let s = Standin::start().unwrap();
    let sdk = s.sdk_config().await;
    let fleet = fleet_with_unregistered(&sdk, "resume", 1, 1).await;
    let id = &fleet.instance_ids[0];
    // The diagnostic takes a while: six polls InProgress.
    s.script_ssm_outcome(id, "Failed", 8, OOM_REPORT, 6)
        .unwrap();
    let v = orphan_verifier(&sdk, "resume", &[]);

    let event = launch(&s, &fleet, 0, aged(40)).await;
    let outcome = single_outcome(&v.handle(&event, now_ms() + 5_000).await.unwrap().to_json());
    assert_eq!(outcome["outcome"], "handed_off", "{outcome}");
    let (next_event, continuation) = next_continuation(&fleet).await;
    assert_eq!(continuation["function"], "launch-verify");
    assert!(
        continuation["state"]["command_id"].is_string(),
        "the running command travels: {continuation}"
    );

    let outcome = single_outcome(
        &v.handle(&next_event, now_ms() + 60_000)
            .await
            .unwrap()
            .to_json(),
    );
    assert_eq!(
        outcome_and_result(&outcome),
        (Some("completed"), Some("CONTINUE")),
        "{outcome}"
    );
    assert_eq!(outcome["verdict"]["Orphan"]["findings"]["exit_code"], 8);
    assert_eq!(
        s.ssm_commands().unwrap().len(),
        1,
        "the diagnostic ran once"
    );
    assert_eq!(s.lifecycle_action(id).unwrap()["complete_calls"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orphan_is_counted_and_notified_once_and_a_registration_timed() {
    let s = Standin::start().unwrap();
    let sdk = s.sdk_config().await;
    let fleet = fleet_with_unregistered(&sdk, "noted", 2, 1).await;
    let notes = NotificationQueue::create(&sdk, "noted").await.unwrap();
    let orphan = &fleet.instance_ids[1];
    s.script_ssm_outcome(orphan, "Failed", 8, OOM_REPORT, 1)
        .unwrap();
    let (reporter, records) = Reporter::in_memory("lv", Some(notes.topic_arn.clone()));
    let v = orphan_verifier(
        &sdk,
        "noted",
        &[
            ("TERMINATE_ORPHANS", "true"),
            ("NOTIFICATION_TOPIC_ARN", notes.topic_arn.as_str()),
        ],
    )
    .with_reporter(reporter);

    // The registered instance: its registration time, from the action's start.
    let event = launch(&s, &fleet, 0, aged(5)).await;
    v.handle(&event, now_ms() + 60_000).await.unwrap().to_json();
    // The orphan: diagnosed, abandoned; then the same notification delivered again.
    let event = launch(&s, &fleet, 1, aged(40)).await;
    let out = v.handle(&event, now_ms() + 60_000).await.unwrap().to_json();
    assert_eq!(out["outcomes"][0]["result"], "ABANDON", "{out}");
    let again = v.handle(&event, now_ms() + 60_000).await.unwrap().to_json();
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
    assert_eq!(notified_events(&delivered).unwrap(), ["orphan_found"]);
    let n = notification(&delivered[0]).unwrap();
    assert_eq!(n["instance_id"], orphan.as_str());
    assert_eq!(n["detail"]["done"], "abandoned");
    assert_eq!(n["detail"]["diagnosis"]["exit_code"], 8);
    assert_eq!(n["auto_scaling_group"], fleet.asg.as_str());
}

/// The tag on the instance that claims its launch action, as EC2 reports it.
async fn launch_chain_tag(sdk: &aws_config::SdkConfig, instance_id: &str) -> Option<String> {
    let out = aws_sdk_ec2::Client::new(sdk)
        .describe_instances()
        .instance_ids(instance_id)
        .send()
        .await
        .unwrap();
    out.reservations()
        .iter()
        .flat_map(|r| r.instances())
        .flat_map(|i| i.tags())
        .find(|t| t.key() == Some(LAUNCH_CHAIN_TAG))
        .and_then(|t| t.value().map(str::to_owned))
}

/// One chain per action: a second delivery of the same hook notification while
/// the first invocation still waits for the registration claims the action
/// (CreateTags on the instance, read back by every look); the first stops at
/// its next look, without completing; the second gives the verdict, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_hook_notification_leaves_one_chain() {
    let s = Standin::start().unwrap();
    let sdk = s.sdk_config().await;
    let mut fleet = fleet_with_unregistered(&sdk, "dup", 2, 1).await;
    let id = fleet.instance_ids[1].clone();
    let event = launch(&s, &fleet, 1, |_| {}).await;

    // Given the first delivery, waiting for the instance to register, its claim on the tag.
    let first = {
        let (v, event) = (verifier(&sdk, &[("CLUSTER_NAME", "dup")]), event.clone());
        tokio::spawn(async move { v.handle(&event, now_ms() + 60_000).await })
    };
    let mut first_claim = None;
    for _ in 0..200 {
        first_claim = launch_chain_tag(&sdk, &id).await;
        if first_claim.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let first_claim = first_claim.expect("the first delivery claims the action");
    let parsed = ChainTag::parse(&first_claim).expect("a claim this release reads");
    assert_eq!(
        (parsed.hop, parsed.parent.as_deref()),
        (0, None),
        "{first_claim}"
    );
    assert_eq!(parsed.hook, fleet.launch_hook, "{first_claim}");

    // When the same notification is delivered again.
    let second = {
        let (v, event) = (verifier(&sdk, &[("CLUSTER_NAME", "dup")]), event.clone());
        tokio::spawn(async move { v.handle(&event, now_ms() + 60_000).await })
    };

    // Then the first stops at its next look: another invocation carries the action.
    let stopped = single_outcome(&first.await.unwrap().unwrap().to_json());
    assert_eq!(stopped["outcome"], "stopped", "{stopped}");
    let by = stopped["reason"]["Superseded"]["by"].as_str().unwrap();
    let now = ChainTag::parse(&launch_chain_tag(&sdk, &id).await.unwrap()).unwrap();
    assert_eq!(by, now.token, "stopped for the second delivery's claim");
    assert_ne!(now.token, parsed.token);
    assert_eq!(s.lifecycle_action(&id).unwrap()["complete_calls"], 0);

    // And the second gives the verdict once the instance registers.
    fleet.register(1).await.unwrap();
    let outcome = single_outcome(&second.await.unwrap().unwrap().to_json());
    assert_eq!(
        outcome_and_result(&outcome),
        (Some("completed"), Some("CONTINUE")),
        "{outcome}"
    );
    let action = s.lifecycle_action(&id).unwrap();
    assert_eq!(
        (action["result"].as_str(), action["complete_calls"].as_u64()),
        (Some("CONTINUE"), Some(1))
    );
}
