//! ami-rollout against the AWS stand-in over real HTTP (moto server 5.2.5 for
//! EC2 launch templates and images, Auto Scaling groups, SSM parameters and
//! ECS). Stood in for explicitly, as tests/standin/standin.py documents: moto
//! has no instance refresh (Start/Describe/Rollback/CancelInstanceRefresh are
//! HTTP 500 there), so the stand-in keeps the refreshes and each
//! `refresh_step` plays one replacement the way Auto Scaling does (launch one
//! instance from the desired version, then terminate one old instance; on
//! success the group takes the desired version). What the launch and
//! terminate hooks do in production (launch-verify, terminate-drain, the ECS
//! agent registering) the test plays too: it registers each new instance with
//! the cluster and deregisters each terminated one; for the orphan case it
//! completes the launch action with ABANDON, as launch-verify does.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed set-up is a failed test

use std::collections::HashMap;

use ecs_lifecycle::config::{Env, RolloutConfig};
use ecs_lifecycle::rollout::Roller;
use serde_json::{Value, json};
use testkit::{
    ACTIVE_REFRESH, Fleet, FleetSpec, Standin, now_ms, parameter_change_event, put_parameter,
};

const PARAM: &str = "/ecs-lifecycle-test/ecs-ami";

type TestRoller = Roller<
    aws_sdk_autoscaling::Client,
    aws_sdk_ec2::Client,
    aws_sdk_ecs::Client,
    aws_sdk_ssm::Client,
>;

fn roller(sdk: &aws_config::SdkConfig, fleet: &Fleet) -> TestRoller {
    let map: HashMap<String, String> = [
        ("AMI_PARAMETER_NAME", PARAM),
        ("AUTO_SCALING_GROUP_NAMES", fleet.asg.as_str()),
        ("CLUSTER_NAME", fleet.cluster.as_str()),
        ("POLL_INTERVAL_SECONDS", "1"),
        ("STABILITY_TIMEOUT_SECONDS", "600"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let config = RolloutConfig::from_env(&Env::new(move |k| map.get(k).cloned()))
        .expect("valid test configuration");
    Roller::new(
        aws_sdk_autoscaling::Client::new(sdk),
        aws_sdk_ec2::Client::new(sdk),
        aws_sdk_ecs::Client::new(sdk),
        aws_sdk_ssm::Client::new(sdk),
        config,
    )
}

/// One invocation with a deadline close enough that it looks, acts, looks
/// again after a change, and returns instead of sleeping.
async fn invoke(r: &TestRoller, event: Value) -> Value {
    r.handle(&event, now_ms() + 2_000).await.unwrap()
}

fn group_report(result: &Value) -> Value {
    let groups = result["groups"].as_array().cloned().unwrap_or_default();
    assert_eq!(groups.len(), 1, "{result}");
    groups[0].clone()
}

fn next_step(result: &Value) -> String {
    group_report(result)["next"]["step"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn versions_made(sdk: &aws_config::SdkConfig, fleet: &Fleet) -> usize {
    aws_sdk_ec2::Client::new(sdk)
        .describe_launch_template_versions()
        .launch_template_name(fleet.launch_template_name())
        .send()
        .await
        .unwrap()
        .launch_template_versions()
        .iter()
        .filter(|v| {
            v.version_description()
                .is_some_and(|d| d.starts_with("ecs-lifecycle ami-rollout:"))
        })
        .count()
}

async fn refreshes(fleet: &Fleet) -> Vec<aws_sdk_autoscaling::types::InstanceRefresh> {
    fleet.refreshes().await.unwrap()
}

/// Plays one batch of the refresh (the stand-in's) with the hooks' part (new
/// instances join the cluster, terminated ones leave it); returns the status.
async fn step(s: &Standin, fleet: &Fleet) -> String {
    let out = fleet.refresh_batch(s).await.unwrap();
    out["status"].as_str().unwrap_or_default().to_owned()
}

async fn step_until_over(s: &Standin, fleet: &Fleet) -> String {
    for _ in 0..20 {
        let status = step(s, fleet).await;
        if !ACTIVE_REFRESH.contains(&status.as_str()) {
            return status;
        }
    }
    panic!("the refresh did not end in 20 steps");
}

async fn setup(
    s: &Standin,
    name: &str,
    size: i32,
) -> (aws_config::SdkConfig, Fleet, String, String) {
    let sdk = s.sdk_config().await;
    let fleet = Fleet::create(&sdk, &FleetSpec::new(name, size))
        .await
        .unwrap();
    let (_, old) = fleet.group_template(&sdk).await.unwrap();
    let new = fleet
        .new_ami(&sdk, &format!("{name}-al2023-ecs-next"))
        .await
        .unwrap();
    assert_ne!(old, new);
    (sdk, fleet, old, new)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_ami_replaces_every_instance_and_the_group_keeps_it() {
    let s = Standin::start().unwrap();
    let (sdk, fleet, old, new) = setup(&s, "rollout", 3).await;
    let r = roller(&sdk, &fleet);
    // AWS's public parameter shape (JSON with image_id).
    put_parameter(&sdk, PARAM,
        &json!({"schema_version": 1, "image_name": "al2023-ami-ecs-hvm-2026.11.20-x86_64", "image_id": new, "os": "Amazon Linux 2023"}).to_string(),
    )
    .await
    .unwrap();

    let out = invoke(&r, parameter_change_event(PARAM)).await;
    assert_eq!(out["outcome"], "watching", "{out}");
    assert_eq!(next_step(&out), "wait", "{out}");
    // The group was pinned from $Latest to the version it resolved to, one
    // version was made from it, and one refresh started towards it.
    let (pinned, ami) = fleet.group_template(&sdk).await.unwrap();
    assert_eq!((pinned.as_str(), ami.as_str()), ("1", old.as_str()));
    assert_eq!(versions_made(&sdk, &fleet).await, 1);
    let started = refreshes(&fleet).await;
    assert_eq!(started.len(), 1);
    let prefs = started[0].preferences().unwrap();
    assert_eq!(prefs.min_healthy_percentage(), Some(100));
    assert_eq!(prefs.max_healthy_percentage(), Some(133));
    assert_eq!(prefs.skip_matching(), Some(true));
    assert_eq!(prefs.auto_rollback(), Some(true));
    assert_eq!(
        started[0]
            .desired_configuration()
            .and_then(|d| d.launch_template())
            .and_then(|t| t.version()),
        Some("2")
    );

    // A watch in the middle reports progress.
    step(&s, &fleet).await;
    step(&s, &fleet).await;
    // One look costs a fixed handful of calls (one group, no services): the
    // figure docs/benchmarks.md quotes.
    s.reset_calls().unwrap();
    let out = invoke(&r, json!({"action": "status"})).await;
    let calls = s.calls().unwrap();
    let total: u64 = calls.values().sum();
    println!("calls for one look at one group during a refresh: {total} {calls:?}");
    assert!(total <= 9, "{calls:?}");
    let g = group_report(&out);
    assert_eq!(g["instances_on_target"], 1, "{out}");
    assert_eq!(g["instances"], 3, "{out}");

    assert_eq!(step_until_over(&s, &fleet).await, "Successful");
    let out = invoke(&r, json!({"action": "watch"})).await;
    assert_eq!(out["outcome"], "settled", "{out}");
    assert_eq!(group_report(&out)["next"]["outcome"], "succeeded", "{out}");
    assert_eq!(
        fleet.instance_amis(&sdk).await.unwrap(),
        vec![new.clone(); 3]
    );
    let (version, ami) = fleet.group_template(&sdk).await.unwrap();
    assert_eq!((version.as_str(), ami.as_str()), ("2", new.as_str()));

    // The same parameter event again: nothing to do.
    let out = invoke(&r, json!({"action": "start"})).await;
    assert_eq!(next_step(&out), "up_to_date", "{out}");
    assert_eq!(refreshes(&fleet).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_to_do_when_the_instances_already_run_the_ami() {
    let s = Standin::start().unwrap();
    let (sdk, fleet, old, _) = setup(&s, "current", 2).await;
    let r = roller(&sdk, &fleet);
    put_parameter(&sdk, PARAM, &old).await.unwrap();
    s.reset_calls().unwrap();
    let out = invoke(&r, json!({"action": "start"})).await;
    assert_eq!(out["outcome"], "settled", "{out}");
    assert_eq!(next_step(&out), "up_to_date", "{out}");
    let calls = s.calls().unwrap();
    for mutating in [
        "ec2:CreateLaunchTemplateVersion",
        "autoscaling:UpdateAutoScalingGroup",
        "autoscaling:StartInstanceRefresh",
    ] {
        assert_eq!(calls.get(mutating), None, "{mutating}: {calls:?}");
    }
    assert_eq!(versions_made(&sdk, &fleet).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_the_version_and_the_refresh_is_resumed_once() {
    let s = Standin::start().unwrap();
    let (sdk, fleet, _, new) = setup(&s, "crash", 2).await;
    let r = roller(&sdk, &fleet);
    put_parameter(&sdk, PARAM, &new).await.unwrap();
    // The invocation dies when it tries to start the refresh (an error the SDK
    // does not retry).
    s.inject_fault("autoscaling:StartInstanceRefresh", "AccessDenied", 1)
        .unwrap();
    let err = r
        .handle(&json!({"action": "start"}), now_ms() + 2_000)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("StartInstanceRefresh"), "{err}");
    assert_eq!(versions_made(&sdk, &fleet).await, 1);
    assert!(refreshes(&fleet).await.is_empty());

    // The schedule's next watch finds the version and starts the refresh with
    // it; a start after that changes nothing.
    let out = invoke(&r, json!({"action": "watch"})).await;
    assert_eq!(next_step(&out), "wait", "{out}");
    let out = invoke(&r, json!({"action": "start"})).await;
    assert_eq!(next_step(&out), "wait", "{out}");
    assert_eq!(versions_made(&sdk, &fleet).await, 1);
    assert_eq!(refreshes(&fleet).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_refresh_is_rolled_back_and_not_retried_without_force() {
    let s = Standin::start().unwrap();
    let (sdk, fleet, old, new) = setup(&s, "fails", 3).await;
    let r = roller(&sdk, &fleet);
    put_parameter(&sdk, PARAM, &new).await.unwrap();
    invoke(&r, json!({"action": "start"})).await;
    step(&s, &fleet).await; // Pending -> InProgress
    step(&s, &fleet).await; // one replaced
    s.refresh_fail(&fleet.asg, "Instance i-x failed health checks")
        .unwrap();
    let out = invoke(&r, json!({"action": "watch"})).await;
    assert_eq!(group_report(&out)["next"]["phase"], "rolling_back", "{out}");
    assert_eq!(step_until_over(&s, &fleet).await, "RollbackSuccessful");
    let out = invoke(&r, json!({"action": "watch"})).await;
    assert_eq!(
        group_report(&out)["next"]["outcome"]["rolled_back"]["reason"],
        "Instance i-x failed health checks",
        "{out}"
    );
    assert_eq!(
        fleet.instance_amis(&sdk).await.unwrap(),
        vec![old.clone(); 3]
    );

    // The same AMI is not tried again by itself ...
    let out = invoke(&r, json!({"action": "start"})).await;
    assert_eq!(next_step(&out), "blocked", "{out}");
    assert_eq!(refreshes(&fleet).await.len(), 1);
    // ... only when forced.
    let out = invoke(&r, json!({"action": "start", "force": true})).await;
    assert_eq!(next_step(&out), "wait", "{out}");
    assert_eq!(refreshes(&fleet).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orphaned_new_instance_rolls_the_refresh_back() {
    let s = Standin::start().unwrap();
    let (sdk, fleet, old, new) = setup(&s, "orphan", 2).await;
    let r = roller(&sdk, &fleet);
    put_parameter(&sdk, PARAM, &new).await.unwrap();
    invoke(&r, json!({"action": "start"})).await;
    step(&s, &fleet).await;
    // Auto Scaling launches a new instance; it never joins the cluster, and
    // launch-verify (TERMINATE_ORPHANS=true) abandons its launch action.
    let out = s.refresh_step(&fleet.asg).unwrap();
    let launched = out["launched"][0].as_str().unwrap().to_owned();
    fleet.refuse_launch(&s, &launched).await.unwrap();

    let out = invoke(&r, json!({"action": "watch"})).await;
    let actions = out["actions"].as_array().cloned().unwrap_or_default();
    assert_eq!(actions.len(), 1, "{out}");
    assert_eq!(actions[0]["step"]["step"], "rollback", "{out}");
    let reason = actions[0]["step"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("refused at launch"), "{out}");
    assert!(reason.contains(&launched), "{out}");
    assert!(reason.contains("ABANDON"), "{out}");
    assert_eq!(group_report(&out)["next"]["phase"], "rolling_back", "{out}");
    assert_eq!(
        refreshes(&fleet).await[0]
            .status()
            .map(|s| s.as_str().to_owned()),
        Some("RollbackInProgress".to_owned())
    );
    assert_eq!(step_until_over(&s, &fleet).await, "RollbackSuccessful");
    assert!(
        fleet
            .instance_amis(&sdk)
            .await
            .unwrap()
            .iter()
            .all(|a| *a == old)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_trigger_during_a_rollout_starts_nothing_else() {
    let s = Standin::start().unwrap();
    let (sdk, fleet, _, new) = setup(&s, "twice", 2).await;
    let r = roller(&sdk, &fleet);
    put_parameter(&sdk, PARAM, &new).await.unwrap();
    invoke(&r, json!({"action": "start"})).await;
    step(&s, &fleet).await;
    // Concurrent deliveries of the same trigger, and a manual start.
    let event = parameter_change_event(PARAM);
    let (a, b) = tokio::join!(invoke(&r, event.clone()), invoke(&r, event));
    assert_eq!(
        (next_step(&a), next_step(&b)),
        ("wait".into(), "wait".into())
    );
    invoke(&r, json!({"action": "start"})).await;
    assert_eq!(refreshes(&fleet).await.len(), 1);
    assert_eq!(versions_made(&sdk, &fleet).await, 1);
    assert_eq!(step_until_over(&s, &fleet).await, "Successful");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_refresh_is_restored_to_the_previous_version() {
    let s = Standin::start().unwrap();
    let (sdk, fleet, old, new) = setup(&s, "cancel", 3).await;
    let r = roller(&sdk, &fleet);
    put_parameter(&sdk, PARAM, &new).await.unwrap();
    invoke(&r, json!({"action": "start"})).await;
    step(&s, &fleet).await;
    step(&s, &fleet).await;
    // An operator cancels it in the console: one instance is on the new AMI.
    fleet
        .autoscaling
        .cancel_instance_refresh()
        .auto_scaling_group_name(&fleet.asg)
        .send()
        .await
        .unwrap();
    assert_eq!(step_until_over(&s, &fleet).await, "Cancelled");
    let out = invoke(&r, json!({"action": "watch"})).await;
    assert_eq!(group_report(&out)["next"]["phase"], "restoring", "{out}");
    // The restore goes back to the version the rollout started from, and Auto
    // Scaling is not to roll it back (that would bring the new AMI back).
    let restore = &refreshes(&fleet).await[0];
    assert_eq!(
        restore
            .desired_configuration()
            .and_then(|d| d.launch_template())
            .and_then(|t| t.version()),
        Some("1")
    );
    assert_eq!(restore.preferences().unwrap().auto_rollback(), Some(false));
    assert_eq!(step_until_over(&s, &fleet).await, "Successful");
    let out = invoke(&r, json!({"action": "watch"})).await;
    assert!(
        group_report(&out)["next"]["outcome"]["rolled_back"].is_object(),
        "{out}"
    );
    assert_eq!(fleet.instance_amis(&sdk).await.unwrap(), vec![old; 3]);
}
