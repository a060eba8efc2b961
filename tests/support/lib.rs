//! The suite package: its integration tests (`tests/*.rs`) run the functions
//! against the AWS stand-in over real HTTP. The stand-in, the fleets and the
//! local functions are the `testkit` crate, re-exported here; on top of it, one
//! module of helpers per workflow, where the next test of that workflow finds
//! its Given (a fleet, an event), its When (the workflow, an invocation) and its
//! Then (the outcome, the lifecycle action):
//!
//! | tests | helpers |
//! |---|---|
//! | `terminate_drain*.rs` | [`drain`] |
//! | `launch_verify.rs` | [`launch`] |
//! | `ami_rollout.rs`, `standin_refresh.rs`, `cli.rs` (rollout status) | [`rollout`] |
//! | `tests/template/` | [`cfn`] |
//!
//! What every hook workflow answers (outcomes, continuations, configuration
//! from variables) is in this module.
//!
//! The product crate (`ecs-lifecycle`) is an ordinary dependency of this
//! package, not a dev-dependency: these helpers build its workflows. The package
//! is test-only (nothing ships from it), so that costs nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed set-up is a failed test

pub mod cfn;
pub mod drain;
pub mod launch;
pub mod rollout;

use std::collections::HashMap;

use ecs_lifecycle::config::Env;
use serde_json::{Value, json};
pub use testkit::*;

/// The environment a workflow reads its configuration from: exactly `vars`,
/// a later entry winning over an earlier one of the same name.
pub fn env_of<'a>(
    vars: impl IntoIterator<Item = &'a (&'a str, &'a str)>,
) -> Env<impl Fn(&str) -> Option<String>> {
    let map: HashMap<String, String> = vars
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Env::new(move |k| map.get(k).cloned())
}

/// The outcomes of a hook function's answer (one per record).
pub fn outcomes(result: &Value) -> Vec<Value> {
    result["outcomes"].as_array().cloned().unwrap_or_default()
}

/// The one record's outcome of a hook function's answer, which failed no record.
pub fn single_outcome(result: &Value) -> Value {
    let o = outcomes(result);
    assert_eq!(o.len(), 1, "{result}");
    assert_eq!(result["batchItemFailures"], json!([]), "{result}");
    o[0].clone()
}

/// `(outcome, result)` of an outcome, to compare with
/// `(Some("completed"), Some("CONTINUE"))`.
pub fn outcome_and_result(outcome: &Value) -> (Option<&str>, Option<&str>) {
    (outcome["outcome"].as_str(), outcome["result"].as_str())
}

/// The continuation a hand-off published, as the next invocation receives it (an
/// SQS event of the SNS envelope from the queue the fleet's topic feeds), and the
/// continuation itself.
pub async fn next_continuation(fleet: &Fleet) -> (Value, Value) {
    let bodies = fleet.drain_queue().await.unwrap();
    assert_eq!(bodies.len(), 1, "one continuation: {bodies:?}");
    let envelope: Value = serde_json::from_str(&bodies[0]).unwrap();
    let continuation: Value = serde_json::from_str(envelope["Message"].as_str().unwrap()).unwrap();
    assert_eq!(continuation["kind"], "ecs-lifecycle.continuation");
    (fleet.sqs_event(&bodies), continuation)
}

/// Auto Scaling starts a lifecycle action of `transition` on `fleet`'s instance
/// `i` through `hook`; returns the hook's notification (SNS -> SQS), the one
/// message in the queue: an SNS envelope, as text.
pub async fn hook_notification(
    s: &Standin,
    fleet: &Fleet,
    hook: &str,
    i: usize,
    transition: &str,
) -> String {
    s.start_lifecycle_action(&fleet.asg, hook, &fleet.instance_ids[i], transition)
        .unwrap();
    let mut bodies = fleet.drain_queue().await.unwrap();
    assert_eq!(
        bodies.len(),
        1,
        "one notification through the hook's topic: {bodies:?}"
    );
    bodies.remove(0)
}

/// An epoch time in milliseconds as AWS writes it in events (`2026-11-22T05:00:00Z`).
pub fn aws_time(epoch_ms: u64) -> String {
    aws_smithy_types::DateTime::from_millis(i64::try_from(epoch_ms).unwrap())
        .fmt(aws_smithy_types::date_time::Format::DateTime)
        .unwrap()
}

/// The lifecycle action of `fleet`'s instance `i`, as the stand-in recorded it.
pub fn action_of(s: &Standin, fleet: &Fleet, i: usize) -> Value {
    s.lifecycle_action(&fleet.instance_ids[i]).unwrap()
}

/// A fleet of `instances` whose last `unregistered` never join the cluster.
pub async fn fleet_with_unregistered(
    sdk: &aws_config::SdkConfig,
    name: &str,
    instances: i32,
    unregistered: usize,
) -> Fleet {
    Fleet::create(
        sdk,
        &FleetSpec {
            unregistered,
            ..FleetSpec::new(name, instances)
        },
    )
    .await
    .unwrap()
}

/// Given a fleet built from `spec` on the stand-in: the SDK configuration
/// pointing at the stand-in, and the fleet.
pub async fn fleet_on(s: &Standin, spec: &FleetSpec) -> (aws_config::SdkConfig, Fleet) {
    let sdk = s.sdk_config().await;
    let fleet = Fleet::create(&sdk, spec).await.unwrap();
    (sdk, fleet)
}
