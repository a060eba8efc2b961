//! The real `ecs-lifecycle` binary (crates/cli; built by `cargo build
//! --workspace --bins`) against the AWS stand-in over real HTTP: moto server
//! 5.2.5 for ECS, EC2 and Auto Scaling, with what moto lacks played by the
//! stand-in (tests/standin/standin.py) and named where the test relies on it:
//! - lifecycle actions (`Terminating:Wait`, `Pending:Wait`): moto has none;
//! - scaling activities: moto records none, and the stand-in records none when
//!   a lifecycle action starts either, so the test records the in-progress
//!   `Terminating EC2 instance: i-...` activity AWS shows for it (status
//!   `MidLifecycleAction`) through `/_standin/activity`;
//! - instance refresh: moto answers HTTP 500; the stand-in keeps refreshes;
//! - instance lifecycle policies: moto ignores them; the stand-in keeps a
//!   group's `TerminateHookAbandon` and leaves an instance whose terminate
//!   action ends ABANDON in `Terminating:Retained`.
//!
//! The binary runs with a cleared environment: only the variables each test
//! gives it, so no profile or credentials of the machine leak in.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed set-up is a failed test

use std::collections::HashMap;
use std::process::{Command, Output};

use aws_sdk_autoscaling::types::{RefreshPreferences, Tag};
use aws_sdk_ecs::types::ContainerInstanceStatus;
use aws_smithy_types::date_time::Format;
use ecs_lifecycle_suite::drain::{lifecycle_state, set_retention};
use ecs_lifecycle_suite::fleet_on;
use ecs_lifecycle_suite::rollout::{new_version, pin, scaling_activities, start_refresh};
use serde_json::{Value, json};
use testkit::{Fleet, FleetSpec, Standin};

const TERMINATING: &str = "autoscaling:EC2_INSTANCE_TERMINATING";
const LAUNCHING: &str = "autoscaling:EC2_INSTANCE_LAUNCHING";
/// ami-rollout's refusal record on a group (crates/cli/src/rollout.rs).
const REFUSED_AMI_TAG: &str = "ecs-lifecycle:refused-ami";

/// The binary with exactly `env` (plus no AWS config or credentials files).
fn run(env: &[(&str, &str)], args: &[&str]) -> Output {
    let binary = testkit::binary("ecs-lifecycle").unwrap();
    Command::new(&binary)
        .args(args)
        .env_clear()
        .env("AWS_CONFIG_FILE", "/nonexistent/ecs-lifecycle-test/config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/ecs-lifecycle-test/credentials",
        )
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()))
}

/// The environment of an operator pointed at the stand-in.
fn standin_env(s: &Standin) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", s.endpoint.clone()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
    ]
}

fn run_against(s: &Standin, args: &[&str]) -> Output {
    let env = standin_env(s);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    run(&env, args)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", stdout(out), stderr(out)))
}

fn rfc3339(t: &aws_smithy_types::DateTime) -> String {
    aws_smithy_types::DateTime::from_secs(t.secs())
        .fmt(Format::DateTime)
        .unwrap()
}

/// Given a cluster of five instances in one group: 0 ACTIVE; 1 DRAINING by
/// hand; 2 in `Terminating:Wait` on the terminate hook and DRAINING, as
/// terminate-drain leaves it; 3 InService but never registered (an orphan);
/// 4 in `Pending:Wait` on the launch hook, not registered yet (not an orphan).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_active_draining_orphan_and_waiting_instances() {
    let s = Standin::start().unwrap();
    let sdk = s.sdk_config().await;
    let mut spec = FleetSpec::new("clistatus", 5);
    spec.unregistered = 2;
    let fleet = Fleet::create(&sdk, &spec).await.unwrap();
    let ids = fleet.instance_ids.clone();
    fleet.service("web", false, &[2, 0, 1]).await.unwrap();
    for i in [1, 2] {
        fleet
            .ecs
            .update_container_instances_state()
            .cluster(&fleet.cluster)
            .container_instances(&fleet.container_instances[i])
            .status(ContainerInstanceStatus::Draining)
            .send()
            .await
            .unwrap();
    }
    s.start_lifecycle_action(&fleet.asg, &fleet.hook, &ids[2], TERMINATING)
        .unwrap();
    s.record_activity(
        &fleet.asg,
        "MidLifecycleAction",
        &format!("Terminating EC2 instance: {}", ids[2]),
        None,
        None,
    )
    .unwrap();
    s.start_lifecycle_action(&fleet.asg, &fleet.launch_hook, &ids[4], LAUNCHING)
        .unwrap();
    // What AWS itself says, to compare the report with.
    let activity_start = scaling_activities(&fleet)
        .await
        .iter()
        .find(|a| a.description().is_some_and(|d| d.ends_with(&ids[2])))
        .and_then(|a| a.start_time())
        .map(rfc3339)
        .unwrap();
    let described = aws_sdk_ec2::Client::new(&sdk)
        .describe_instances()
        .set_instance_ids(Some(ids.clone()))
        .send()
        .await
        .unwrap();
    let amis: HashMap<String, String> = described
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .map(|i| {
            (
                i.instance_id().unwrap().to_owned(),
                i.image_id().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(amis.len(), 5);

    // When the operator asks for the cluster's status as JSON
    let out = run_against(&s, &["status", "--cluster", &fleet.cluster, "--json"]);

    // Then: exit 1, as an orphan needs attention
    assert_eq!(out.status.code(), Some(1), "stderr: {}", stderr(&out));
    let r = json_of(&out);
    assert_eq!(
        (
            &r["version"],
            &r["kind"],
            &r["cluster"],
            &r["region"],
            &r["groups"]
        ),
        (
            &json!(1),
            &json!("status"),
            &json!(fleet.cluster),
            &json!("us-east-1"),
            &json!([fleet.asg])
        ),
        "{r:#}"
    );
    let rows = r["container_instances"].as_array().unwrap();
    let row = |id: &str| {
        rows.iter()
            .find(|x| x["ec2_instance_id"] == id)
            .unwrap_or_else(|| panic!("{id} not reported: {r:#}"))
    };
    assert_eq!(rows.len(), 3, "the registered instances only: {r:#}");
    for (i, ecs, lifecycle, running, draining_since) in [
        (0, "ACTIVE", "InService", 2, Value::Null),
        (1, "DRAINING", "InService", 0, Value::Null),
        (2, "DRAINING", "Terminating:Wait", 1, json!(activity_start)),
    ] {
        let x = row(&ids[i]);
        assert_eq!(x["container_instance_arn"], fleet.container_instances[i]);
        assert_eq!(
            (
                &x["ecs_status"],
                &x["lifecycle_state"],
                &x["group"],
                &x["running_tasks"],
                &x["pending_tasks"],
                &x["agent_connected"],
            ),
            (
                &json!(ecs),
                &json!(lifecycle),
                &json!(fleet.asg),
                &json!(running),
                &json!(0),
                &json!(true)
            ),
            "instance {i}: {x:#}"
        );
        assert_eq!(x["ami"], amis[&ids[i]], "instance {i}");
        assert_eq!(x["draining_since"], draining_since, "instance {i}");
        assert!(x["registered_at"].is_string(), "instance {i}: {x:#}");
    }

    let waiting = r["waiting"].as_array().unwrap();
    let waits: Vec<_> = waiting
        .iter()
        .map(|w| {
            (
                w["ec2_instance_id"].clone(),
                w["lifecycle_state"].clone(),
                w["registered"].clone(),
                w["action_started_at"].clone(),
                w["hooks"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|h| (h["name"].clone(), h["default_result"].clone()))
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    assert_eq!(
        waits,
        vec![
            (
                json!(ids[2]),
                json!("Terminating:Wait"),
                json!(true),
                json!(activity_start),
                vec![(json!(fleet.hook), json!("CONTINUE"))]
            ),
            (
                json!(ids[4]),
                json!("Pending:Wait"),
                json!(false),
                Value::Null,
                vec![(json!(fleet.launch_hook), json!("ABANDON"))]
            ),
        ]
    );
    // The fleet's hooks: HeartbeatTimeout 300 s, so a global timeout of 30 000 s.
    let drain = &waiting[0]["hooks"][0];
    assert_eq!(
        (&drain["heartbeat_timeout_s"], &drain["global_timeout_s"]),
        (&json!(300), &json!(30_000))
    );
    let left = drain["time_left_s"].as_u64().unwrap();
    assert!((30_000 - 120..=30_000).contains(&left), "time left {left}");
    assert_eq!(
        waiting[1]["hooks"][0]["time_left_s"],
        Value::Null,
        "no activity: unknown"
    );

    let orphans = r["orphans"].as_array().unwrap();
    assert_eq!(orphans.len(), 1, "{r:#}");
    assert_eq!(
        (
            &orphans[0]["ec2_instance_id"],
            &orphans[0]["group"],
            &orphans[0]["lifecycle_state"],
            &orphans[0]["ami"],
            &orphans[0]["ec2_state"]
        ),
        (
            &json!(ids[3]),
            &json!(fleet.asg),
            &json!("InService"),
            &json!(amis[&ids[3]]),
            &json!("running")
        )
    );
    assert_eq!(
        r["attention"],
        json!([{"kind": "orphan", "subject": ids[3],
                "message": format!("{} is InService in group {} but not registered in cluster {}", ids[3], fleet.asg, fleet.cluster)}])
    );

    // The same as a table: no colour (stdout is not a terminal), aligned
    // columns, every instance, the attention list.
    let out = run_against(&s, &["status", "--cluster", &fleet.cluster]);
    assert_eq!(out.status.code(), Some(1), "stderr: {}", stderr(&out));
    let text = stdout(&out);
    assert!(!text.contains('\x1b'), "{text}");
    for id in &ids {
        assert!(text.contains(id.as_str()), "{id} missing:\n{text}");
    }
    assert!(text.contains("Needs attention (1):"), "{text}");
    let header = text
        .lines()
        .find(|l| l.starts_with("EC2 INSTANCE") && l.contains("LIFECYCLE"))
        .unwrap_or_else(|| panic!("no instance table:\n{text}"));
    let ecs_column = header.find("  ECS  ").unwrap() + 2;
    for (i, status) in [(0, "ACTIVE"), (1, "DRAINING"), (2, "DRAINING")] {
        let line = text
            .lines()
            .find(|l| l.starts_with(&ids[i]) && l.contains(status))
            .unwrap_or_else(|| panic!("no row for {}:\n{text}", ids[i]));
        assert_eq!(
            line.get(ecs_column..ecs_column + status.len()),
            Some(status),
            "{text}"
        );
    }

    // --group names the groups; an unknown one, or an unknown cluster, is a usage error.
    let status_of_group = |group: &str, more: &[&str]| {
        let args = [
            &["status", "--cluster", &fleet.cluster, "--group", group],
            more,
        ]
        .concat();
        run_against(&s, &args)
    };
    let out = status_of_group(&fleet.asg, &["--json"]);
    assert_eq!(out.status.code(), Some(1), "stderr: {}", stderr(&out));
    assert_eq!(json_of(&out)["orphans"][0]["ec2_instance_id"], ids[3]);
    let out = status_of_group("no-such-group", &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no Auto Scaling group named no-such-group in us-east-1"),
        "{}",
        stderr(&out)
    );
    let out = run_against(&s, &["status", "--cluster", "no-such-cluster"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no ECS cluster named no-such-cluster in us-east-1"),
        "{}",
        stderr(&out)
    );
    assert!(out.stdout.is_empty());
}

/// --profile: the region and credentials come from the named profile of the
/// AWS files; --region overrides the profile's region.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profile_and_region_flags() {
    let s = Standin::start().unwrap();
    let (_, fleet) = fleet_on(&s, &FleetSpec::new("cliprofile", 1)).await;
    let dir = std::env::temp_dir().join(format!("ecs-lifecycle-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config");
    let credentials = dir.join("credentials");
    std::fs::write(&config, "[profile ops]\nregion = eu-west-1\n").unwrap();
    std::fs::write(
        &credentials,
        "[ops]\naws_access_key_id = testing\naws_secret_access_key = testing\n",
    )
    .unwrap();
    let env = [
        ("AWS_ENDPOINT_URL", s.endpoint.as_str()),
        ("AWS_CONFIG_FILE", config.to_str().unwrap()),
        ("AWS_SHARED_CREDENTIALS_FILE", credentials.to_str().unwrap()),
    ];
    // The profile's region: the cluster is in us-east-1, not there.
    let out = run(
        &env,
        &["--profile", "ops", "status", "--cluster", &fleet.cluster],
    );
    assert_eq!(out.status.code(), Some(2), "stderr: {}", stderr(&out));
    assert!(stderr(&out).contains("in eu-west-1"), "{}", stderr(&out));
    let out = run(
        &env,
        &[
            "status",
            "--cluster",
            &fleet.cluster,
            "--profile",
            "ops",
            "--region",
            "us-east-1",
            "--json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let r = json_of(&out);
    assert_eq!(
        (&r["region"], &r["attention"]),
        (&json!("us-east-1"), &json!([]))
    );
    assert_eq!(
        r["container_instances"][0]["ec2_instance_id"],
        fleet.instance_ids[0]
    );
    // Without --profile, the files' default profile does not exist: no credentials.
    let out = run(
        &env,
        &[
            "--region",
            "us-east-1",
            "status",
            "--cluster",
            &fleet.cluster,
        ],
    );
    assert_eq!(out.status.code(), Some(3), "stderr: {}", stderr(&out));
    assert!(
        stderr(&out).contains("no AWS credentials"),
        "{}",
        stderr(&out)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// No region anywhere (no flag, no AWS_REGION / AWS_DEFAULT_REGION, no config
/// file, no instance metadata): a clear error naming what to set, exit 3; and
/// no credentials likewise. Neither needs the stand-in: nothing is called.
#[test]
fn missing_region_or_credentials_is_a_clear_error() {
    let out = run(
        &[
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
        ],
        &["status", "--cluster", "prod", "--json"],
    );
    assert_eq!(out.status.code(), Some(3), "stderr: {}", stderr(&out));
    let err = stderr(&out);
    for needle in [
        "ecs-lifecycle: no AWS region",
        "--region",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "~/.aws/config",
    ] {
        assert!(err.contains(needle), "{needle:?} missing: {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
    assert!(out.stdout.is_empty());

    let out = run(&[("AWS_REGION", "us-east-1")], &["rollout", "status"]);
    assert_eq!(out.status.code(), Some(3), "stderr: {}", stderr(&out));
    let err = stderr(&out);
    for needle in [
        "ecs-lifecycle: no AWS credentials",
        "AWS_ACCESS_KEY_ID",
        "--profile",
    ] {
        assert!(err.contains(needle), "{needle:?} missing: {err}");
    }

    let out = run(&[], &["status"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a usage error: {}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("--cluster"), "{}", stderr(&out));
}

/// Given a group pinned to launch template version 1, a version 2 with a new
/// AMI, a refresh towards it half-way, and ami-rollout's refusal tag for some
/// other AMI: rollout status shows the refresh, both AMIs and the refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_status_reports_the_refresh_its_target_and_refused_amis() {
    let s = Standin::start().unwrap();
    let (sdk, fleet) = fleet_on(&s, &FleetSpec::new("clirollout", 2)).await;
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let new_ami = fleet.new_ami(&sdk, "clirollout-next").await.unwrap();
    let (_, old_ami) = fleet.group_template(&sdk).await.unwrap();
    pin(&fleet, "1").await;
    new_version(&ec2, &fleet, &new_ami, None).await;
    let prefs = RefreshPreferences::builder()
        .min_healthy_percentage(100)
        .max_healthy_percentage(150)
        .build();
    start_refresh(&fleet, Some("2"), Some(prefs)).await.unwrap();
    s.refresh_step(&fleet.asg).unwrap();
    fleet.refresh_batch(&s).await.unwrap();
    let refused = "ami-0123456789abcdef0 2026-11-20T12:00:00Z";
    fleet
        .autoscaling
        .create_or_update_tags()
        .tags(
            Tag::builder()
                .resource_id(&fleet.asg)
                .resource_type("auto-scaling-group")
                .key(REFUSED_AMI_TAG)
                .value(refused)
                .propagate_at_launch(false)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let refresh = fleet.refreshes().await.unwrap()[0].clone();

    let out = run_against(&s, &["rollout", "status", "--group", &fleet.asg, "--json"]);
    assert_eq!(out.status.code(), Some(1), "stderr: {}", stderr(&out));
    let r = json_of(&out);
    assert_eq!(
        (&r["version"], &r["kind"]),
        (&json!(1), &json!("rollout-status"))
    );
    let g = &r["groups"][0];
    assert_eq!(g["group"], fleet.asg);
    assert_eq!(
        (
            &g["refresh"]["id"],
            &g["refresh"]["status"],
            &g["refresh"]["percentage"]
        ),
        (
            &json!(refresh.instance_refresh_id().unwrap()),
            &json!(refresh.status().unwrap().as_str()),
            &json!(refresh.percentage_complete())
        ),
        "{g:#}"
    );
    assert_eq!(g["refresh"]["status"], "InProgress", "half-way: {g:#}");
    assert_eq!(
        (
            &g["target"]["ami"],
            &g["target"]["version"],
            &g["target"]["version_number"],
            &g["target"]["source"]
        ),
        (&json!(new_ami), &json!("2"), &json!(2), &json!("refresh")),
        "{g:#}"
    );
    assert_eq!(
        (
            &g["launch_template"]["ami"],
            &g["launch_template"]["version"]
        ),
        (&json!(old_ami), &json!("1")),
        "{g:#}"
    );
    assert_eq!(
        g["refused_amis"],
        json!([{"ami": "ami-0123456789abcdef0", "refused_at": "2026-11-20T12:00:00Z"}])
    );
    let kinds: Vec<_> = r["attention"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["kind"].clone(), a["subject"].clone()))
        .collect();
    assert_eq!(kinds, [(json!("refused_ami"), json!(fleet.asg))]);

    // Without --group: every group of the region (the stand-in has this one).
    let out = run_against(&s, &["rollout", "status"]);
    assert_eq!(out.status.code(), Some(1), "stderr: {}", stderr(&out));
    let text = stdout(&out);
    let row = text
        .lines()
        .find(|l| l.starts_with(&fleet.asg))
        .unwrap_or_else(|| panic!("no row for {}:\n{text}", fleet.asg));
    for needle in [
        new_ami.as_str(),
        old_ami.as_str(),
        "InProgress",
        "ami-0123456789abcdef0",
    ] {
        assert!(row.contains(needle), "{needle} missing: {row}");
    }
}

/// Given a group whose instance lifecycle policy retains abandoned
/// terminations and one of its instances retained (its terminate action
/// completed ABANDON, as terminate-drain does with DRAIN_TIMEOUT_ACTION=retain),
/// and a second group without the policy: `retained` lists the instance (exit
/// 1: it needs attention) and names the group without the policy; `release`
/// is a dry run that changes nothing, `release --apply` terminates it, and
/// an instance that is not retained is refused (exit 2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_lists_and_release_terminates_only_with_apply() {
    let s = Standin::start().unwrap();
    let (sdk, fleet) = fleet_on(&s, &FleetSpec::new("cliretain", 2)).await;
    let (_, other) = fleet_on(&s, &FleetSpec::new("clinopolicy", 1)).await;
    set_retention(&fleet, "retain").await;
    let id = fleet.instance_ids[0].clone();
    s.start_lifecycle_action(&fleet.asg, &fleet.hook, &id, TERMINATING)
        .unwrap();
    aws_sdk_autoscaling::Client::new(&sdk)
        .complete_lifecycle_action()
        .auto_scaling_group_name(&fleet.asg)
        .lifecycle_hook_name(&fleet.hook)
        .instance_id(&id)
        .lifecycle_action_result("ABANDON")
        .send()
        .await
        .unwrap();
    assert_eq!(
        lifecycle_state(&fleet, 0).await.as_deref(),
        Some("Terminating:Retained")
    );

    // retained: the instance, and the group whose policy would not keep one.
    let out = run_against(
        &s,
        &[
            "retained", "--group", &fleet.asg, "--group", &other.asg, "--json",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "stderr: {}", stderr(&out));
    let r = json_of(&out);
    assert_eq!(r["kind"], "retained");
    assert_eq!(
        r["instances"],
        json!([{"ec2_instance_id": id, "group": fleet.asg, "lifecycle_state": "Terminating:Retained"}])
    );
    assert_eq!(r["groups_without_retention"], json!([other.asg]));
    let text = stdout(&run_against(&s, &["retained", "--group", &fleet.asg]));
    assert!(
        text.contains(&id) && text.contains("Terminating:Retained") && text.contains("release"),
        "{text}"
    );

    // release: a dry run by default.
    let out = run_against(&s, &["release", &id]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert!(stdout(&out).contains("dry run"), "{}", stdout(&out));
    assert_eq!(
        lifecycle_state(&fleet, 0).await.as_deref(),
        Some("Terminating:Retained")
    );
    // --apply terminates it through its group.
    let out = run_against(&s, &["release", &id, "--apply", "--json"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let r = json_of(&out);
    assert_eq!(
        (&r["kind"], &r["applied"]),
        (&json!("release"), &json!(true))
    );
    assert_eq!(
        lifecycle_state(&fleet, 0).await,
        None,
        "no longer in the group"
    );
    let state = aws_sdk_ec2::Client::new(&sdk)
        .describe_instances()
        .instance_ids(&id)
        .send()
        .await
        .unwrap()
        .reservations()[0]
        .instances()[0]
        .state()
        .and_then(|s| s.name())
        .map(|n| n.as_str().to_owned());
    assert!(
        matches!(state.as_deref(), Some("shutting-down" | "terminated")),
        "{state:?}"
    );
    // Not retained (gone, or InService): refused, nothing done.
    for (instance, says) in [
        (id.as_str(), "in no Auto Scaling group"),
        (fleet.instance_ids[1].as_str(), "not retained"),
    ] {
        let out = run_against(&s, &["release", instance, "--apply"]);
        assert_eq!(out.status.code(), Some(2), "stderr: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{}", stderr(&out));
    }
    assert_eq!(
        lifecycle_state(&fleet, 1).await.as_deref(),
        Some("InService")
    );
    let out = run_against(&s, &["release", "not-an-instance"]);
    assert_eq!(out.status.code(), Some(2), "stderr: {}", stderr(&out));
}
