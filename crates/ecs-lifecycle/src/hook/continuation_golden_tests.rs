//! Golden files of the continuation (`fixtures/continuation/v<N>/`): what one
//! release publishes to SNS, the next must accept, since a drain or a launch
//! check handed over just before a deploy is resumed by the new code (the
//! alias switches at once). The rule for changing the schema is in
//! docs/deploying.md ("Upgrades").
//!
//! - every file of every version parses with today's reader, as the function
//!   it names, and its fields survive (checked one by one below);
//! - the files written by today's writer (`terminate-drain.json`,
//!   `launch-verify.json` of the current version) are exactly what it writes
//!   again after reading them: a field renamed, dropped or re-typed fails here;
//! - `CONTINUATION_VERSION` is the newest directory, and no version is skipped.

use std::path::PathBuf;

use serde_json::{Value, json};

use super::continuation::{CONTINUATION_KIND, CONTINUATION_VERSION, Continuation};
use super::event::{Message, parse_message_value};
use super::job::Job;
use crate::drain::DrainMemo;
use crate::launch::LaunchMemo;
use crate::launch::claim::ChainMemo;
use crate::model::HookTimeouts;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/continuation")
}

fn golden(version: u32, name: &str) -> Value {
    let path = dir().join(format!("v{version}/{name}"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn read(value: &Value) -> Continuation {
    match parse_message_value::<()>(value, "golden") {
        Ok(Message::Continuation(c)) => c,
        other => panic!("not read as a continuation: {other:?}"),
    }
}

#[test]
fn the_current_version_is_the_newest_golden_directory_and_none_is_skipped() {
    let mut versions: Vec<u32> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_prefix('v')
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("fixtures/continuation/{name}: not a v<N> directory"))
        })
        .collect();
    versions.sort_unstable();
    assert_eq!(versions, (1..=CONTINUATION_VERSION).collect::<Vec<_>>());
    for v in versions {
        for name in ["terminate-drain.json", "launch-verify.json"] {
            let g = golden(v, name);
            assert_eq!(g["kind"], CONTINUATION_KIND);
            assert_eq!(g["version"], v, "v{v}/{name}");
        }
    }
}

#[test]
fn a_drain_handed_over_by_this_version_resumes_with_every_field() {
    let g = golden(CONTINUATION_VERSION, "terminate-drain.json");
    let c = read(&g);
    assert_eq!(c.function, "terminate-drain");
    assert_eq!(c.attempt, 3);
    assert_eq!(c.started_at_ms, 1_795_324_242_311);
    assert_eq!(c.last_heartbeat_ms, Some(1_795_324_842_311));
    assert!(c.held);
    assert_eq!(
        c.hook_timeouts,
        Some(HookTimeouts {
            heartbeat_timeout_s: 300,
            global_timeout_s: 30_000
        })
    );
    let a = &c.action;
    assert_eq!(
        (a.asg.as_str(), a.hook.as_deref(), a.instance_id.as_str()),
        (
            "web-asg",
            Some("ecs-lifecycle-terminate"),
            "i-0a1b2c3d4e5f60718"
        )
    );
    assert_eq!(
        a.token.as_deref(),
        Some("3f8e1c2d-7b6a-4e59-8d3c-2a1b0c9d8e7f")
    );
    assert_eq!(a.time.as_deref(), Some("2026-11-22T05:10:42.118Z"));
    assert_eq!(a.metadata.as_deref(), Some("{\"team\":\"platform\"}"));
    assert_eq!(a.origin.as_deref(), Some("AutoScalingGroup"));
    assert_eq!(a.destination.as_deref(), Some("EC2"));
    assert_eq!(a.account_id.as_deref(), Some("123456789012"));

    let job = Job::<DrainMemo>::resume(c.clone(), None).unwrap();
    assert!(job.held());
    assert_eq!(job.attempt, 3);
    assert_eq!(job.hook_timeouts, c.hook_timeouts);
    let m = &job.memo;
    assert_eq!(
        m.cluster.as_deref(),
        Some("arn:aws:ecs:us-east-1:123456789012:cluster/prod")
    );
    assert!(
        m.container_instance_arn
            .as_deref()
            .is_some_and(|a| a.ends_with("/0f1e2d3c4b5a69788796a5b4c3d2e1f0"))
    );
    assert_eq!(
        m.services.iter().map(String::as_str).collect::<Vec<_>>(),
        ["api", "worker"]
    );
    assert_eq!(m.agent_disconnected_since_ms, Some(1_795_324_700_000));
}

#[test]
fn a_launch_check_handed_over_by_this_version_resumes_with_every_field() {
    let g = golden(CONTINUATION_VERSION, "launch-verify.json");
    let c = read(&g);
    assert_eq!(c.function, "launch-verify");
    assert_eq!((c.attempt, c.started_at_ms), (7, 1_795_324_800_000));
    assert_eq!(c.last_heartbeat_ms, Some(1_795_325_000_000));
    assert_eq!(
        c.hook_timeouts,
        Some(HookTimeouts {
            heartbeat_timeout_s: 600,
            global_timeout_s: 60_000
        })
    );
    let job = Job::<LaunchMemo>::resume(c, None).unwrap();
    assert!(job.held());
    assert_eq!(
        job.memo,
        LaunchMemo {
            command_id: Some("7c5a1b2e-3d4f-4a6b-8c9d-0e1f2a3b4c5d".into()),
            command_sent_at_ms: Some(1_795_324_990_000),
            ssm_unreachable: None,
            // The chain's claim on the action (launch::claim), handed over.
            chain: ChainMemo {
                claimed: Some("0f1e2d3c4b5a6978".into()),
                known: vec!["a1b2c3d4e5f60718".into(), "0f1e2d3c4b5a6978".into()],
            },
            ..LaunchMemo::default()
        }
    );
    assert_eq!(job.action.hook.as_deref(), Some("ecs-lifecycle-launch"));
}

/// What today's writer publishes for a job read from the golden file is the
/// golden file: the hand-off's own construction (handoff.rs), one hop on.
#[test]
fn this_version_writes_exactly_its_golden_files() {
    fn rewrite<M: serde::Serialize + serde::de::DeserializeOwned + Default>(g: &Value) -> Value {
        let c = read(g);
        let job = Job::<M>::resume(c, None).unwrap();
        let mut next = Continuation::new(
            g["function"].as_str().unwrap(),
            job.action.clone(),
            job.attempt,
            job.started_at_ms.unwrap(),
            job.last_heartbeat_ms,
            serde_json::to_value(&job.memo).unwrap(),
        );
        next.held = job.held();
        next.hook_timeouts = job.hook_timeouts;
        serde_json::to_value(&next).unwrap()
    }
    let drain = golden(CONTINUATION_VERSION, "terminate-drain.json");
    assert_eq!(rewrite::<DrainMemo>(&drain), drain);
    let launch = golden(CONTINUATION_VERSION, "launch-verify.json");
    assert_eq!(rewrite::<LaunchMemo>(&launch), launch);
    let unheld = golden(CONTINUATION_VERSION, "launch-verify-unheld.json");
    assert_eq!(rewrite::<LaunchMemo>(&unheld), unheld);
}

/// A drain handed over with its census (the task counts only until the end),
/// the time of its last stuck report and its rest under ECS throttling: all
/// resume, and are written back exactly.
#[test]
fn a_drain_with_its_census_resumes_and_is_written_back_exactly() {
    let g = golden(CONTINUATION_VERSION, "terminate-drain-census.json");
    let job = Job::<DrainMemo>::resume(read(&g), None).unwrap();
    let census = job.memo.census.expect("the census");
    assert_eq!(census.at_ms, 1_795_324_830_000);
    assert_eq!(
        (census.service, census.daemon, census.standalone),
        (4, 1, 0)
    );
    assert_eq!(census.fewest, Some(4));
    assert_eq!(job.memo.stuck_reported_at_ms, Some(1_795_324_800_000));
    assert_eq!(
        (job.memo.rest_ms, job.memo.rest_until_ms),
        (Some(60_000), Some(1_795_324_890_000))
    );
    let written = serde_json::to_value(&job.memo).unwrap();
    assert_eq!(written, g["state"]);
}

/// Work no hook holds names no hook (this release), or named a placeholder
/// with `held: false` (releases before it): both resume as unheld work.
#[test]
fn unheld_work_names_no_hook() {
    for name in [
        "launch-verify-unheld.json",
        "launch-verify-unheld-placeholder.json",
    ] {
        let job = Job::<LaunchMemo>::resume(read(&golden(1, name)), None).unwrap();
        assert_eq!(job.action.hook, None, "{name}");
        assert!(!job.held(), "{name}");
        assert_eq!(job.action.instance_id, "i-0b1c2d3e4f5a60719", "{name}");
    }
}

/// Continuations of earlier releases of version 1: without `held` and
/// `hook_timeouts`, with launch-verify's no-hook work marked in its memo.
#[test]
fn earlier_shapes_of_version_1_are_still_read() {
    let c = read(&golden(1, "terminate-drain-before-held.json"));
    assert!(c.held, "absent held: the work held an action");
    assert_eq!(c.hook_timeouts, None);
    assert_eq!(c.last_heartbeat_ms, None);
    let job = Job::<DrainMemo>::resume(c, None).unwrap();
    assert!(job.held());
    assert_eq!(job.memo.container_instance_arn, None);
    assert_eq!(job.memo.agent_disconnected_since_ms, None);

    let c = read(&golden(1, "launch-verify-no-hook-memo.json"));
    let job = Job::<LaunchMemo>::resume(c, None).unwrap();
    assert!(
        !job.held(),
        "no_hook in the memo: nothing to heartbeat or complete"
    );
    assert_eq!(job.last_heartbeat_ms, None);
}

/// A continuation of a later release (one field more) is read by this one:
/// rolling back a deploy mid-drain keeps the drain.
#[test]
fn a_field_added_by_a_later_release_is_ignored() {
    let mut g = golden(CONTINUATION_VERSION, "terminate-drain.json");
    g["added_later"] = json!({"anything": [1, 2]});
    g["state"]["memo_added_later"] = json!(true);
    let c = read(&g);
    let job = Job::<DrainMemo>::resume(c, None).unwrap();
    assert_eq!(job.attempt, 3);
}
