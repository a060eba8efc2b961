//! launch-verify's helpers, for `tests/launch_verify.rs`:
//! - Given: [`launch`] (a launch action and the hook's notification, edited:
//!   [`aged`]), [`launch_successful`] (the no-hook mode's EventBridge event),
//!   [`OOM_REPORT`] (what the diagnostic reports of an OOM-killed agent);
//! - When: the workflow in process ([`verifier`], [`orphan_verifier`]);
//! - Then: [`crate::single_outcome`], [`crate::outcome_and_result`].

use std::time::Duration;

use ecs_lifecycle::config::LaunchConfig;
use ecs_lifecycle::launch::Verifier;
use serde_json::{Value, json};
use testkit::{Fleet, Standin, now_ms};

use crate::{aws_time, env_of};

pub const LAUNCHING: &str = "autoscaling:EC2_INSTANCE_LAUNCHING";
pub const DOCUMENT: &str = "ecs-lifecycle-OrphanDiagnostic";
pub const LOG_GROUP: &str = "/ecs-lifecycle/diagnostics";

pub type TestVerifier = Verifier<
    aws_sdk_ecs::Client,
    aws_sdk_autoscaling::Client,
    aws_sdk_ec2::Client,
    aws_sdk_ssm::Client,
    aws_sdk_sns::Client,
>;

/// The verifier polling every second with the diagnostic's document and log
/// group, `vars` on top, handing off 1.5 s before an invocation's deadline.
pub fn verifier(sdk: &aws_config::SdkConfig, vars: &[(&str, &str)]) -> TestVerifier {
    let defaults = [
        ("POLL_INTERVAL_SECONDS", "1"),
        ("SSM_DOCUMENT_NAME", DOCUMENT),
        ("DIAGNOSTICS_LOG_GROUP", LOG_GROUP),
    ];
    let config = LaunchConfig::from_env(&env_of(defaults.iter().chain(vars)))
        .expect("valid test configuration");
    let all: Vec<(&str, &str)> = defaults.iter().chain(vars).copied().collect();
    let sdk = &testkit::as_function(sdk, "launch-verify", &all);
    Verifier::new(
        aws_sdk_ecs::Client::new(sdk),
        aws_sdk_autoscaling::Client::new(sdk),
        aws_sdk_ec2::Client::new(sdk),
        aws_sdk_ssm::Client::new(sdk),
        aws_sdk_sns::Client::new(sdk),
        config,
        "us-east-1",
    )
    .with_handoff_margin(Duration::from_millis(1500))
}

/// [`verifier`] of `cluster` that calls an instance an orphan 30 s after its
/// launch, `extra` on top.
pub fn orphan_verifier(
    sdk: &aws_config::SdkConfig,
    cluster: &str,
    extra: &[(&str, &str)],
) -> TestVerifier {
    let mut vars = vec![
        ("CLUSTER_NAME", cluster),
        ("REGISTRATION_TIMEOUT_SECONDS", "30"),
    ];
    vars.extend_from_slice(extra);
    verifier(sdk, &vars)
}

/// Auto Scaling launches instance `i` into `Pending:Wait`; the hook's
/// notification (SNS -> SQS) becomes the event, its message edited by `edit`
/// (to age the action, or mark it for the warm pool).
pub async fn launch(s: &Standin, fleet: &Fleet, i: usize, edit: impl FnOnce(&mut Value)) -> Value {
    let body = crate::hook_notification(s, fleet, &fleet.launch_hook, i, LAUNCHING).await;
    let mut doc: Value = serde_json::from_str(&body).unwrap();
    let mut message: Value = serde_json::from_str(doc["Message"].as_str().unwrap()).unwrap();
    assert_eq!(message["LifecycleTransition"], LAUNCHING);
    edit(&mut message);
    doc["Message"] = json!(message.to_string());
    fleet.sqs_event(&[doc.to_string()])
}

/// As if Auto Scaling started the action `secs` ago (the notification arrived late).
pub fn aged(secs: u64) -> impl FnOnce(&mut Value) {
    move |m: &mut Value| m["Time"] = json!(aws_time(now_ms() - secs * 1000))
}

/// EventBridge's `EC2 Instance Launch Successful` for `instance_id` of
/// `fleet`'s group, at `time`, with `detail` on top (the no-hook mode's event).
pub fn launch_successful(
    fleet: &Fleet,
    id: &str,
    instance_id: &str,
    time: &str,
    detail: Value,
) -> Value {
    let mut event = json!({
        "version": "0", "id": id, "detail-type": "EC2 Instance Launch Successful",
        "source": "aws.autoscaling", "account": "123456789012", "region": "us-east-1",
        "time": time,
        "resources": [], "detail": {"AutoScalingGroupName": fleet.asg, "EC2InstanceId": instance_id}
    });
    if let (Some(into), Some(from)) = (event["detail"].as_object_mut(), detail.as_object()) {
        into.extend(from.clone());
    }
    event
}

/// What the diagnostic reports of an instance whose ECS agent was OOM-killed
/// (exit code 8: not registered).
pub const OOM_REPORT: &str = concat!(
    r#"{"schema":"ecs-orphan-diagnostic/1","instance_id":"i-0123456789abcdef0","region":"us-east-1","registered":false,"cluster":"verify","container_instance_arn":null,"checks":["#,
    r#"{"name":"agent_introspection","status":"fail","detail":"no answer from http://localhost:51678/v1/metadata"},"#,
    r#"{"name":"agent_container","status":"fail","detail":"ecs-agent exited 137, OOMKilled=true"},"#,
    r#"{"name":"docker_service","status":"pass","detail":"active"}],"failed":["agent_introspection","agent_container"]}"#,
    "\nECS agent NOT registered: the agent container was OOM-killed.\n"
);
