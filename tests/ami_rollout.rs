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

//!
//! Given / When / Then helpers: `tests/support/rollout.rs` (the next test of this
//! workflow takes them from there, and adds what it needs there).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed set-up is a failed test

use ecs_lifecycle::report::Reporter;
use ecs_lifecycle::rollout::{BASELINE_TAG, REFUSED_AMI_TAG, REPORTED_TAG, UNSTEADY_TAG};
use ecs_lifecycle_suite::rollout::{
    MUTATING, PARAM, assert_not_refused, cancelled_then_restoring, group_report, invoke, next_of,
    next_step, publish, refresh_succeeds, refreshes, roller, roller_with, setup, start, started,
    step, step_until_over, versions_made, watch, watch_succeeded,
};
use serde_json::json;
use testkit::{
    NotificationQueue, Standin, metric_sum, notification, notified_events, now_ms,
    parameter_change_event, put_parameter,
};

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

    s.reset_calls().unwrap();
    let out = invoke(&r, parameter_change_event(PARAM)).await;
    assert_eq!(out["outcome"], "watching", "{out}");
    assert_eq!(next_step(&out), "wait", "{out}");
    // The AMI is checked before each of the three steps that change
    // something (pin, version, refresh), and the baseline is empty: no tag.
    let calls = s.calls().unwrap();
    println!("calls for the start of a rollout (pin, version, refresh, one look): {calls:?}");
    assert_eq!(calls.get("ec2:DescribeImages"), Some(&3), "{calls:?}");
    assert_eq!(
        calls.get("ec2:DescribeInstanceTypes"),
        Some(&3),
        "{calls:?}"
    );
    assert_eq!(
        calls.get("autoscaling:CreateOrUpdateTags"),
        None,
        "{calls:?}"
    );
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

    let out = refresh_succeeds(&s, &fleet, &r).await;
    assert_eq!(out["outcome"], "settled", "{out}");
    assert_eq!(
        fleet.instance_amis(&sdk).await.unwrap(),
        vec![new.clone(); 3]
    );
    let (version, ami) = fleet.group_template(&sdk).await.unwrap();
    assert_eq!((version.as_str(), ami.as_str()), ("2", new.as_str()));

    // The same parameter event again: nothing to do.
    let out = start(&r).await;
    assert_eq!(next_step(&out), "up_to_date", "{out}");
    assert_eq!(refreshes(&fleet).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_to_do_when_the_instances_already_run_the_ami() {
    let s = Standin::start().unwrap();
    let (sdk, fleet, old, _) = setup(&s, "current", 2).await;
    let r = roller(&sdk, &fleet);
    publish(&sdk, &old).await;
    s.reset_calls().unwrap();
    let out = start(&r).await;
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
    publish(&sdk, &new).await;
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
    let out = watch(&r).await;
    assert_eq!(next_step(&out), "wait", "{out}");
    let out = start(&r).await;
    assert_eq!(next_step(&out), "wait", "{out}");
    assert_eq!(versions_made(&sdk, &fleet).await, 1);
    assert_eq!(refreshes(&fleet).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_refresh_is_rolled_back_and_not_retried_without_force() {
    let s = Standin::start().unwrap();
    let (sdk, fleet, old, new) = setup(&s, "fails", 3).await;
    let r = roller(&sdk, &fleet);
    started(&s, &sdk, &fleet, &r, &new, 2).await; // Pending -> InProgress, then one replaced
    s.refresh_fail(&fleet.asg, "Instance i-x failed health checks")
        .unwrap();
    let out = watch(&r).await;
    assert_eq!(next_of(&out)["phase"], "rolling_back", "{out}");
    assert_eq!(step_until_over(&s, &fleet).await, "RollbackSuccessful");
    let out = watch(&r).await;
    assert_eq!(
        next_of(&out)["outcome"]["rolled_back"]["reason"],
        "Instance i-x failed health checks",
        "{out}"
    );
    assert_eq!(
        fleet.instance_amis(&sdk).await.unwrap(),
        vec![old.clone(); 3]
    );

    // The same AMI is not tried again by itself ...
    let out = start(&r).await;
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
    started(&s, &sdk, &fleet, &r, &new, 1).await;
    // Auto Scaling launches a new instance; it never joins the cluster, and
    // launch-verify (TERMINATE_ORPHANS=true) abandons its launch action.
    let out = s.refresh_step(&fleet.asg).unwrap();
    let launched = out["launched"][0].as_str().unwrap().to_owned();
    fleet.refuse_launch(&s, &launched).await.unwrap();

    let out = watch(&r).await;
    let actions = out["actions"].as_array().cloned().unwrap_or_default();
    assert_eq!(actions.len(), 1, "{out}");
    assert_eq!(actions[0]["step"]["step"], "rollback", "{out}");
    let reason = actions[0]["step"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("refused at launch"), "{out}");
    assert!(reason.contains(&launched), "{out}");
    assert!(reason.contains("ABANDON"), "{out}");
    assert_eq!(next_of(&out)["phase"], "rolling_back", "{out}");
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
    started(&s, &sdk, &fleet, &r, &new, 1).await;
    // Concurrent deliveries of the same trigger, and a manual start.
    let event = parameter_change_event(PARAM);
    let (a, b) = tokio::join!(invoke(&r, event.clone()), invoke(&r, event));
    assert_eq!(
        (next_step(&a), next_step(&b)),
        ("wait".into(), "wait".into())
    );
    start(&r).await;
    assert_eq!(refreshes(&fleet).await.len(), 1);
    assert_eq!(versions_made(&sdk, &fleet).await, 1);
    assert_eq!(step_until_over(&s, &fleet).await, "Successful");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_refresh_is_restored_to_the_previous_version() {
    let s = Standin::start().unwrap();
    let (sdk, fleet, old, new) = setup(&s, "cancel", 3).await;
    let r = roller(&sdk, &fleet);
    started(&s, &sdk, &fleet, &r, &new, 2).await;
    // An operator cancels it in the console: one instance is on the new AMI.
    cancelled_then_restoring(&s, &fleet, &r).await;
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
    let out = watch(&r).await;
    assert!(next_of(&out)["outcome"]["rolled_back"].is_object(), "{out}");
    assert_eq!(fleet.instance_amis(&sdk).await.unwrap(), vec![old; 3]);
}

// ------------------------------------------------------------------ issue 12

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_that_fails_is_restore_failed_never_rolled_back_and_not_restarted() {
    let s = Standin::start().unwrap();
    let (sdk, fleet, _, new) = setup(&s, "restorefail", 3).await;
    let r = roller(&sdk, &fleet);
    started(&s, &sdk, &fleet, &r, &new, 2).await;
    // Cancelled with one instance on the new AMI: the watch restores.
    cancelled_then_restoring(&s, &fleet, &r).await;
    // The restore itself fails (no AutoRollback on a restore: Failed).
    s.refresh_fail(&fleet.asg, "Instance i-y failed to launch")
        .unwrap();
    assert_eq!(
        refreshes(&fleet).await[0].status().unwrap().as_str(),
        "Failed"
    );

    let out = watch(&r).await;
    assert_eq!(out["outcome"], "settled", "{out}");
    let next = next_of(&out);
    assert_eq!(next["step"], "done", "{out}");
    assert!(next["outcome"]["rolled_back"].is_null(), "{out}");
    let reason = next["outcome"]["restore_failed"]["reason"]
        .as_str()
        .unwrap_or_default();
    assert!(reason.contains("did not take the group back"), "{out}");
    assert!(reason.contains("Instance i-y failed to launch"), "{out}");
    // Durably refused on the group, and said so by status.
    let tags = fleet.group_tags().await.unwrap();
    let refused = tags.get(REFUSED_AMI_TAG).cloned().unwrap_or_default();
    assert!(refused.starts_with(&format!("{new} ")), "{tags:?}");
    let status = invoke(&r, json!({"action": "status"})).await;
    let g = group_report(&status);
    assert!(
        g["next"]["outcome"]["restore_failed"].is_object(),
        "{status}"
    );
    assert_eq!(g["refused_ami"]["ami"], new.as_str(), "{status}");

    // No new start without force.
    let before = refreshes(&fleet).await.len();
    let out = start(&r).await;
    assert_eq!(next_step(&out), "blocked", "{out}");
    assert_eq!(refreshes(&fleet).await.len(), before);
    // An operator's rollback tries the restore again.
    let out = invoke(&r, json!({"action": "rollback", "reason": "restore again"})).await;
    assert_eq!(next_of(&out)["phase"], "restoring", "{out}");
    assert_eq!(refreshes(&fleet).await.len(), before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_older_than_the_refresh_history_is_still_honoured() {
    let s = Standin::start().unwrap();
    let (sdk, fleet, old, new) = setup(&s, "aged", 2).await;
    let r = roller(&sdk, &fleet);
    started(&s, &sdk, &fleet, &r, &new, 2).await;
    s.refresh_fail(&fleet.asg, "Instance i-x failed health checks")
        .unwrap();
    assert_eq!(step_until_over(&s, &fleet).await, "RollbackSuccessful");
    let out = watch(&r).await;
    assert!(next_of(&out)["outcome"]["rolled_back"].is_object(), "{out}");
    assert!(
        fleet.group_tags().await.unwrap()[REFUSED_AMI_TAG].starts_with(&new),
        "the watch records the refusal"
    );
    assert_eq!(fleet.instance_amis(&sdk).await.unwrap(), vec![old; 2]);

    // Six weeks later DescribeInstanceRefreshes no longer returns it (the
    // stand-in's clock, compressed); the version made for the AMI is still
    // in the launch template.
    s.age_refresh_history(&fleet.asg, 43).unwrap();
    assert!(refreshes(&fleet).await.is_empty());
    assert_eq!(versions_made(&sdk, &fleet).await, 1);
    for event in [
        json!({"action": "start"}),
        parameter_change_event(PARAM),
        json!({"action": "watch"}),
    ] {
        let out = invoke(&r, event).await;
        assert_eq!(next_step(&out), "blocked", "{out}");
        let why = next_of(&out)["why"].as_str().unwrap_or_default().to_owned();
        assert!(
            why.contains(REFUSED_AMI_TAG) && why.contains("force"),
            "{out}"
        );
    }
    assert!(refreshes(&fleet).await.is_empty());
    // Only force tries it again, and lifts the refusal.
    let out = invoke(&r, json!({"action": "start", "force": true})).await;
    assert_eq!(next_step(&out), "wait", "{out}");
    assert_eq!(refreshes(&fleet).await.len(), 1);
    assert_not_refused(&fleet).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unrelated_service_unsteady_before_and_during_the_rollout_lets_it_complete() {
    let s = Standin::start().unwrap();
    let (sdk, fleet, _, new) = setup(&s, "unrelated", 3).await;
    let r = roller(&sdk, &fleet);
    // Steady, with tasks on the group's instances.
    fleet.service("web", false, &[1, 1, 1]).await.unwrap();
    // Crash-looping before the rollout: one task of two.
    fleet
        .service_below_desired("crashloop", 2, &[1])
        .await
        .unwrap();
    publish(&sdk, &new).await;
    let out = start(&r).await;
    assert_eq!(next_step(&out), "wait", "{out}");
    // The baseline: what was unsteady when the refresh started.
    assert_eq!(
        fleet
            .group_tags()
            .await
            .unwrap()
            .get(BASELINE_TAG)
            .map(String::as_str),
        Some("crashloop")
    );
    step(&s, &fleet).await;
    step(&s, &fleet).await;
    // During the rollout, a service with no task on the group's instances
    // (placed elsewhere, e.g. Fargate) cannot start its task.
    fleet
        .service_below_desired("elsewhere", 1, &[])
        .await
        .unwrap();
    // Both have been unsteady for an hour, longer than
    // STABILITY_TIMEOUT_SECONDS (600 s): the function's clock compressed
    // through its own memo, the unsteady-since tag.
    fleet
        .set_group_tag(UNSTEADY_TAG, &(now_ms() - 3_600_000).to_string())
        .await
        .unwrap();
    s.reset_calls().unwrap();
    let out = watch(&r).await;
    assert_eq!(next_of(&out)["phase"], "rolling", "{out}");
    // Tasks are looked up for the service that could count (not deploying,
    // not in the baseline): ListTasks running and stopped; "elsewhere" has
    // none to describe. The figure docs/benchmarks.md quotes.
    let calls = s.calls().unwrap();
    println!("calls for a watch with two unsteady services, one in the baseline: {calls:?}");
    assert_eq!(calls.get("ecs:ListTasks"), Some(&2), "{calls:?}");
    assert_eq!(calls.get("ecs:DescribeTasks"), None, "{calls:?}");
    assert_eq!(out["actions"], json!([]), "no rollback: {out}");
    assert!(
        !fleet.group_tags().await.unwrap().contains_key(UNSTEADY_TAG),
        "nothing counts against the rollout: the marker goes"
    );
    refresh_succeeds(&s, &fleet, &r).await;
    assert_eq!(fleet.instance_amis(&sdk).await.unwrap(), vec![new; 3]);
    assert!(!fleet.group_tags().await.unwrap().contains_key(BASELINE_TAG));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capacity_failure_is_waited_out_and_never_rolled_back() {
    let s = Standin::start().unwrap();
    let (sdk, fleet, _, new) = setup(&s, "capacity", 2).await;
    let r = roller(&sdk, &fleet);
    started(&s, &sdk, &fleet, &r, &new, 1).await; // Pending -> InProgress
    for code in [
        "InsufficientInstanceCapacity",
        "SpotCapacity",
        "VcpuLimitExceeded",
    ] {
        s.refresh_capacity_failures(&fleet.asg, 1, code).unwrap();
        let out = fleet.refresh_batch(&s).await.unwrap();
        assert_eq!(out["capacity_failed"], 1, "{code}: {out}");
        assert_eq!(out["launched"], json!([]), "{code}: {out}");
        let out = watch(&r).await;
        assert_eq!(next_of(&out)["phase"], "rolling", "{code}: {out}");
        assert_eq!(out["actions"], json!([]), "{code}: no rollback: {out}");
    }
    // Auto Scaling's retries get the capacity: the rollout completes.
    refresh_succeeds(&s, &fleet, &r).await;
    assert_eq!(refreshes(&fleet).await.len(), 1);
    assert_not_refused(&fleet).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ami_that_fails_its_checks_is_refused_before_any_change() {
    let s = Standin::start().unwrap();
    let (sdk, fleet, _, pending) = setup(&s, "checks", 2).await;
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    // An arm64 image of Amazon's (moto's catalogue) for the group's m5.large.
    let arm64 = ec2
        .describe_images()
        .owners("amazon")
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("architecture")
                .values("arm64")
                .build(),
        )
        .send()
        .await
        .unwrap()
        .images()[0]
        .image_id()
        .unwrap()
        .to_owned();
    // An image still being made (stand-in: moto's are available at once).
    s.set_image(&pending, json!({"state": "pending"})).unwrap();
    // A third party's image shared with the account.
    let foreign = fleet.new_ami(&sdk, "checks-third-party").await.unwrap();
    s.set_image(
        &foreign,
        json!({"owner_id": "999988887777", "owner_alias": null}),
    )
    .unwrap();
    let r = roller(&sdk, &fleet);

    for (via_parameter, ami, check, seen) in [
        (true, arm64.as_str(), "architecture", "arm64"),
        (false, pending.as_str(), "state", "pending"),
        (false, foreign.as_str(), "owner", "999988887777"),
    ] {
        s.reset_calls().unwrap();
        let event = if via_parameter {
            put_parameter(&sdk, PARAM, ami).await.unwrap();
            parameter_change_event(PARAM)
        } else {
            json!({"action": "start", "ami_id": ami})
        };
        let err = r.handle(&event, now_ms() + 2_000).await.unwrap_err();
        assert_eq!(err.kind(), "EcsLifecycle.AmiRefused", "{err}");
        let msg = err.to_string();
        for part in [ami, check, seen, fleet.asg.as_str()] {
            assert!(msg.contains(part), "{part}: {msg}");
        }
        let calls = s.calls().unwrap();
        for mutating in MUTATING {
            assert_eq!(calls.get(mutating), None, "{ami}: {mutating}: {calls:?}");
        }
        assert_eq!(calls.get("ec2:DescribeImages"), Some(&1), "{calls:?}");
        assert_eq!(versions_made(&sdk, &fleet).await, 0);
        let (version, _) = fleet.group_template(&sdk).await.unwrap();
        assert_eq!(version, "$Latest", "not even pinned");
    }
    assert!(refreshes(&fleet).await.is_empty());

    // The third party's owner allowed: the rollout starts.
    let allowed = roller_with(&sdk, &fleet, &[("ALLOWED_AMI_OWNERS", "999988887777")]);
    let out = invoke(&allowed, json!({"action": "start", "ami_id": foreign})).await;
    assert_eq!(next_step(&out), "wait", "{out}");
    assert_eq!(refreshes(&fleet).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_look_that_straddles_the_end_of_the_refresh_starts_no_second_one() {
    let s = Standin::start().unwrap();
    let (sdk, fleet, _, new) = setup(&s, "straddle", 2).await;
    let r = roller(&sdk, &fleet);
    started(&s, &sdk, &fleet, &r, &new, 1).await; // InProgress, nothing replaced yet
    // The refresh ends between the look's two reads of the group (whichever
    // comes second of its refreshes and the group itself).
    s.finish_refresh_on(
        &fleet.asg,
        &[
            "autoscaling:DescribeInstanceRefreshes",
            "autoscaling:DescribeAutoScalingGroups",
        ],
        2,
    )
    .unwrap();
    // A second trigger arrives then (the scheduled check, another function
    // instance): it waits, it starts nothing.
    let out = invoke(&r, parameter_change_event(PARAM)).await;
    assert_eq!(next_step(&out), "wait", "{out}");
    let all = refreshes(&fleet).await;
    assert_eq!(all.len(), 1, "no second StartInstanceRefresh");
    assert_eq!(all[0].status().unwrap().as_str(), "Successful");
    // The next look sees it over.
    watch_succeeded(&r).await;
    let out = start(&r).await;
    assert_eq!(next_step(&out), "up_to_date", "{out}");
    assert_eq!(refreshes(&fleet).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_and_alarms_go_to_the_rollout_refresh_not_the_restore() {
    let s = Standin::start().unwrap();
    let (sdk, fleet, _, new) = setup(&s, "guarded", 3).await;
    let r = roller_with(
        &sdk,
        &fleet,
        &[
            ("ROLLOUT_CHECKPOINT_PERCENTAGES", "50,100"),
            ("ROLLOUT_CHECKPOINT_DELAY_SECONDS", "120"),
            ("ROLLOUT_ALARM_NAMES", "p99-latency,5xx-rate"),
        ],
    );
    started(&s, &sdk, &fleet, &r, &new, 0).await;
    let rollout = refreshes(&fleet).await;
    let p = rollout[0].preferences().unwrap();
    assert_eq!(p.checkpoint_percentages(), [50, 100]);
    assert_eq!(p.checkpoint_delay(), Some(120));
    assert_eq!(
        p.alarm_specification().map(|a| a.alarms().to_vec()),
        Some(vec!["p99-latency".to_owned(), "5xx-rate".to_owned()])
    );
    assert_eq!(p.auto_rollback(), Some(true));
    step(&s, &fleet).await;
    step(&s, &fleet).await;
    cancelled_then_restoring(&s, &fleet, &r).await;
    // The restore goes back at once and must not fail on the alarm that may
    // have made it necessary.
    let restore = &refreshes(&fleet).await[0];
    let p = restore.preferences().unwrap();
    assert!(p.checkpoint_percentages().is_empty(), "{p:?}");
    assert!(p.alarm_specification().is_none(), "{p:?}");
    assert_eq!(p.auto_rollback(), Some(false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_rollout_waits_for_the_maintenance_window_and_a_running_one_carries_on() {
    let s = Standin::start().unwrap();
    let (sdk, fleet, _, new) = setup(&s, "window", 2).await;
    // Windows around the current hour (UTC), open and closed now.
    let hour = (now_ms() / 3_600_000) % 24;
    let open = format!("daily {:02}:00-{:02}:00", hour, (hour + 1) % 24);
    let closed = format!("daily {:02}:00-{:02}:00", (hour + 2) % 24, (hour + 3) % 24);
    let outside = roller_with(&sdk, &fleet, &[("ROLLOUT_WINDOW", closed.as_str())]);
    let inside = roller_with(&sdk, &fleet, &[("ROLLOUT_WINDOW", open.as_str())]);
    publish(&sdk, &new).await;

    s.reset_calls().unwrap();
    let out = invoke(&outside, parameter_change_event(PARAM)).await;
    let next = next_of(&out);
    assert_eq!(next["step"], "outside_window", "{out}");
    assert!(
        next["opens"]
            .as_str()
            .is_some_and(|t| t.ends_with(&format!("T{:02}:00:00Z", (hour + 2) % 24))),
        "{out}"
    );
    let calls = s.calls().unwrap();
    for mutating in MUTATING {
        assert_eq!(calls.get(mutating), None, "{mutating}: {calls:?}");
    }
    assert!(refreshes(&fleet).await.is_empty());
    // The schedule's watch inside the window starts what was held back.
    let out = watch(&inside).await;
    assert_eq!(next_step(&out), "wait", "{out}");
    assert_eq!(refreshes(&fleet).await.len(), 1);
    // Once the window has closed, the running rollout carries on.
    step(&s, &fleet).await;
    let out = watch(&outside).await;
    assert_eq!(next_of(&out)["phase"], "rolling", "{out}");
    refresh_succeeds(&s, &fleet, &outside).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_reports_its_start_and_its_end_once() {
    let s = Standin::start().unwrap();
    let (sdk, fleet, _, new) = setup(&s, "rolled", 2).await;
    publish(&sdk, &new).await;
    // The operators' topic, read through an SQS queue subscribed to it.
    let notes = NotificationQueue::create(&sdk, "rolled").await.unwrap();
    let (reporter, records) = Reporter::in_memory("ar", Some(notes.topic_arn.clone()));
    let r = roller_with(
        &sdk,
        &fleet,
        &[("NOTIFICATION_TOPIC_ARN", notes.topic_arn.as_str())],
    )
    .with_reporter(reporter);

    invoke(&r, parameter_change_event(PARAM)).await;
    assert_eq!(metric_sum(&records.lock().unwrap(), "RolloutsStarted"), 1.0);
    // A second trigger while it runs starts nothing, reports nothing.
    invoke(&r, parameter_change_event(PARAM)).await;
    assert_eq!(step_until_over(&s, &fleet).await, "Successful");
    // Three watches after the end: the outcome is reported by the first only.
    for _ in 0..3 {
        let out = watch(&r).await;
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
    assert_eq!(
        notified_events(&delivered).unwrap(),
        ["rollout_completed", "rollout_started"]
    );
    for envelope in &delivered {
        let n = notification(envelope).unwrap();
        assert_eq!(n["auto_scaling_group"], fleet.asg.as_str());
        assert_eq!(n["detail"]["target_ami"], new.as_str());
    }
}
