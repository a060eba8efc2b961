//! terminate-drain's helpers, for `tests/terminate_drain*.rs`:
//! - Given: [`scale_in`] (a terminate action and the hook's notification),
//!   [`handed_off_once`] (a stuck drain past its first hand-off),
//!   [`start_terminating`] (the action only, for the binary the stand-in
//!   notifies), [`fleet_spec`] (AWS's minimum HeartbeatTimeout);
//! - When: the workflow in process ([`drainer`], [`fleet_drainer`],
//!   [`chained_drainer`]; one invocation kept to its deadline, [`invoke`]; Lambda
//!   played across hand-offs, [`play_lambda`]) or the real binary
//!   ([`start_binary`], [`start_drain`], [`drain_instance_0`]);
//! - Then: the action ([`assert_completed_once`], [`max_heartbeat_gap`]), the
//!   tasks ([`assert_all_stopped`], [`last_stop`]), the drain's mark
//!   ([`drain_token`]), the calls ([`ecs_calls`]).
//!
//! In process, an invocation is `Drainer::handle` with its deadline, and a
//! hand-off's continuation is read back from the queue the topic feeds
//! ([`crate::next_continuation`]).

use std::path::Path;
use std::time::Duration;

use ecs_lifecycle::config::DrainConfig;
use ecs_lifecycle::drain::Drainer;
use ecs_lifecycle::hook::Handler;
use serde_json::Value;
use testkit::{Fleet, FleetSpec, LocalFunction, Standin, TaskInfo, now_ms};

use crate::{env_of, next_continuation, single_outcome};

pub const TERMINATING: &str = "autoscaling:EC2_INSTANCE_TERMINATING";
/// AWS's minimum HeartbeatTimeout: a heartbeat is due every 10 s.
pub const HEARTBEAT_TIMEOUT_S: i32 = 30;
/// The hand-off margin of the in-process drains (the binary keeps 10 s).
pub const MARGIN_MS: u64 = 1500;

pub type TestDrainer =
    Drainer<aws_sdk_ecs::Client, aws_sdk_autoscaling::Client, aws_sdk_sns::Client>;

/// The drain configured by exactly `vars`, handing off [`MARGIN_MS`] before
/// an invocation's deadline.
pub fn drainer(sdk: &aws_config::SdkConfig, vars: &[(&str, &str)]) -> TestDrainer {
    drainer_as_deployed(sdk, vars).with_handoff_margin(Duration::from_millis(MARGIN_MS))
}

/// The drain configured by exactly `vars`, with the hand-off margin the
/// binary keeps.
pub fn drainer_as_deployed(sdk: &aws_config::SdkConfig, vars: &[(&str, &str)]) -> TestDrainer {
    let config = DrainConfig::from_env(&env_of(vars)).expect("valid test configuration");
    let sdk = &testkit::as_function(sdk, "terminate-drain", vars);
    Drainer::new(
        aws_sdk_ecs::Client::new(sdk),
        aws_sdk_autoscaling::Client::new(sdk),
        aws_sdk_sns::Client::new(sdk),
        config,
    )
}

/// [`drainer`] of `fleet`'s cluster polling every second, `extra` on top.
pub fn fleet_drainer(
    sdk: &aws_config::SdkConfig,
    fleet: &Fleet,
    extra: &[(&str, &str)],
) -> TestDrainer {
    let mut vars = vec![
        ("CLUSTER_NAME", fleet.cluster.as_str()),
        ("POLL_INTERVAL_SECONDS", "1"),
    ];
    vars.extend_from_slice(extra);
    drainer(sdk, &vars)
}

/// [`fleet_drainer`] handing off through the fleet's topic
/// (`CONTINUATION_TOPIC_ARN`), `extra` on top.
pub fn chained_drainer(
    sdk: &aws_config::SdkConfig,
    fleet: &Fleet,
    extra: &[(&str, &str)],
) -> TestDrainer {
    let mut vars = vec![("CONTINUATION_TOPIC_ARN", fleet.topic_arn.as_str())];
    vars.extend_from_slice(extra);
    fleet_drainer(sdk, fleet, &vars)
}

/// A fleet of `instances` whose hooks have AWS's minimum HeartbeatTimeout.
pub fn fleet_spec(name: &str, instances: i32) -> FleetSpec {
    FleetSpec {
        heartbeat_timeout: HEARTBEAT_TIMEOUT_S,
        ..FleetSpec::new(name, instances)
    }
}

/// Given a fleet, when Auto Scaling starts a terminate action on `instance`,
/// then the hook's notification (SNS -> SQS) is the event fed to the function.
pub async fn scale_in(s: &Standin, fleet: &Fleet, instance: usize) -> Value {
    let body = crate::hook_notification(s, fleet, &fleet.hook, instance, TERMINATING).await;
    fleet.sqs_event(&[body])
}

/// Auto Scaling starts a terminate action on `instance` (its notification goes
/// wherever the fleet's topic delivers).
pub fn start_terminating(s: &Standin, fleet: &Fleet, instance: usize) {
    s.start_lifecycle_action(
        &fleet.asg,
        &fleet.hook,
        &fleet.instance_ids[instance],
        TERMINATING,
    )
    .unwrap();
}

/// One invocation: the drain's answer, and the invocation's deadline kept.
pub async fn invoke(d: &TestDrainer, event: &Value, invocation_ms: u64) -> Value {
    let deadline = now_ms() + invocation_ms;
    let result = d.handle(event, deadline).await.unwrap().to_json();
    let ended = now_ms();
    assert!(
        ended <= deadline,
        "the invocation ran {} ms past its deadline: {result}",
        ended - deadline
    );
    single_outcome(&result)
}

/// Given a drain of instance 0 that has set DRAINING and handed off once (an
/// invocation of `invocation_ms`, nothing moving the tasks): the next
/// invocation's event and the continuation it carries.
pub async fn handed_off_once(
    s: &Standin,
    fleet: &Fleet,
    d: &TestDrainer,
    invocation_ms: u64,
) -> (Value, Value) {
    let event = scale_in(s, fleet, 0).await;
    assert_eq!(
        invoke(d, &event, invocation_ms).await["outcome"],
        "handed_off"
    );
    next_continuation(fleet).await
}

/// What [`play_lambda`] saw.
#[derive(Debug)]
pub struct Played {
    /// The last invocation's outcome.
    pub outcome: Value,
    pub invocations: usize,
    /// Function errors (each followed by a played retry while retries were left).
    pub errors: Vec<String>,
    /// Invocations that ended after their deadline (ms past it).
    pub overruns: Vec<u64>,
}

/// Plays Lambda for an in-process drain: `invocation_ms` per invocation; a
/// hand-off's continuation, read from the queue the topic feeds, is the next
/// invocation's event. A function error is retried as Lambda retries an async event
/// (twice), but after `retry_delay` instead of Lambda's ~1 and ~2 minutes
/// (compressed so the test stays short; with those real delays an action of
/// HeartbeatTimeout 30 s is lost unless the last heartbeat buys the time).
pub async fn play_lambda(
    d: &TestDrainer,
    fleet: &Fleet,
    first: Value,
    invocation_ms: u64,
    retry_delay: Duration,
) -> Played {
    let mut event = first;
    let mut played = Played {
        outcome: Value::Null,
        invocations: 0,
        errors: Vec::new(),
        overruns: Vec::new(),
    };
    let mut retries_left = 2;
    loop {
        played.invocations += 1;
        let deadline = now_ms() + invocation_ms;
        let result = d.handle(&event, deadline).await.map(|a| a.to_json());
        let ended = now_ms();
        if ended > deadline {
            played.overruns.push(ended - deadline);
        }
        match result {
            Ok(v) => {
                played.outcome = single_outcome(&v);
                if played.outcome["outcome"] != "handed_off" {
                    return played;
                }
                event = next_continuation(fleet).await.0;
                retries_left = 2;
            }
            Err(e) => {
                played.errors.push(e.to_string());
                if retries_left == 0 {
                    return played;
                }
                retries_left -= 1;
                tokio::time::sleep(retry_delay).await;
            }
        }
    }
}

/// The environment the template gives the binary for `fleet` (JSON logs,
/// Lambda's log level TRACE and the function's own LOG_LEVEL INFO,
/// continuations through the fleet's topic, a poll a second), `extra` on top.
pub fn deployed_env<'a>(fleet: &'a Fleet, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![
        ("CLUSTER_NAME", fleet.cluster.as_str()),
        ("POLL_INTERVAL_SECONDS", "1"),
        ("CONTINUATION_TOPIC_ARN", fleet.topic_arn.as_str()),
        ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
        ("AWS_LAMBDA_LOG_LEVEL", "TRACE"),
        ("LOG_LEVEL", "INFO"),
    ];
    env.extend_from_slice(extra);
    env
}

/// Starts the real binary for `fleet` as the template deploys it
/// ([`deployed_env`], `extra` on top), its logs appended to `log` (removed
/// first). The stand-in's Runtime API feeds it.
pub fn start_binary(
    s: &Standin,
    fleet: &Fleet,
    name: &str,
    extra: &[(&str, &str)],
    log: &Path,
) -> LocalFunction {
    let _ = std::fs::remove_file(log);
    let binary = testkit::binary("terminate-drain").unwrap();
    LocalFunction::start_logging_to(s, &binary, name, &deployed_env(fleet, extra), log).unwrap()
}

/// [`start_binary`], and the stand-in delivers the fleet's topic to it in
/// invocations of `invocation_ms`.
pub fn start_drain(
    s: &Standin,
    fleet: &Fleet,
    name: &str,
    extra: &[(&str, &str)],
    log: &Path,
    invocation_ms: u64,
) -> LocalFunction {
    let function = start_binary(s, fleet, name, extra, log);
    s.subscribe_function(&fleet.topic_arn, invocation_ms)
        .unwrap();
    function
}

/// Terminates instance 0 with the scheduler stand-in stepping every 800 ms: the
/// action once it is over, and the invocations once the last has answered.
pub async fn drain_instance_0(s: &Standin, fleet: &Fleet) -> (Value, Vec<Value>) {
    s.ecs_auto(800).unwrap();
    start_terminating(s, fleet, 0);
    let action = action_over(s, fleet, 0, Duration::from_secs(90)).await;
    s.ecs_auto(0).unwrap();
    // Give the last invocation a moment to post its response.
    let invocations = s.ended_invocations(Duration::from_secs(10)).await.unwrap();
    (action, invocations)
}

/// Every task of `tasks` has reached STOPPED.
pub fn assert_all_stopped(tasks: &[TaskInfo]) {
    assert!(
        tasks.iter().all(|t| t.last_status == "STOPPED"),
        "{tasks:#?}"
    );
}

/// Epoch seconds the last task of `tasks` reached STOPPED (all must have).
pub fn last_stop(tasks: &[TaskInfo]) -> f64 {
    assert_all_stopped(tasks);
    tasks
        .iter()
        .filter_map(|t| t.stopped_at)
        .fold(0.0_f64, f64::max)
}

/// A number of the action's record (`started_at`, `completed_at`, ...).
pub fn num(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or_else(|| panic!("no {key} in {v}"))
}

/// The action's heartbeats, epoch milliseconds.
pub fn heartbeats_ms(action: &Value) -> Vec<f64> {
    action["heartbeats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_f64().unwrap() * 1000.0)
        .collect()
}

/// The longest the action went without its clock restarting: start, heartbeats,
/// then completion (or now, if still held).
pub fn max_heartbeat_gap(action: &Value) -> f64 {
    let mut marks = vec![num(action, "started_at")];
    marks.extend(
        action["heartbeats"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h.as_f64().unwrap()),
    );
    marks.push(
        action["completed_at"]
            .as_f64()
            .unwrap_or(now_ms() as f64 / 1000.0),
    );
    largest_gap(&marks)
}

/// The largest difference between neighbours of `marks`.
pub fn largest_gap(marks: &[f64]) -> f64 {
    marks
        .windows(2)
        .map(|p| p[1] - p[0])
        .fold(0.0_f64, f64::max)
}

/// The action completed exactly once, with CONTINUE, and never expired.
pub fn assert_completed_once(action: &Value) {
    assert_eq!(
        (
            action["state"].as_str(),
            action["result"].as_str(),
            action["complete_calls"].as_u64(),
            &action["expired_by"]
        ),
        (Some("completed"), Some("CONTINUE"), Some(1), &Value::Null),
        "completed once, never expired: {action}"
    );
}

/// The attribute a drain writes on the container instance it holds.
pub const DRAIN_ATTRIBUTE: &str = "ecs-lifecycle.drain-token";

/// The drain token on container instance `instance`, if a drain wrote one.
pub async fn drain_token(fleet: &Fleet, instance: usize) -> Option<String> {
    let d = fleet
        .ecs
        .describe_container_instances()
        .cluster(&fleet.cluster)
        .container_instances(&fleet.container_instances[instance])
        .send()
        .await
        .unwrap();
    d.container_instances()
        .first()?
        .attributes()
        .iter()
        .find(|a| a.name() == DRAIN_ATTRIBUTE)
        .and_then(|a| a.value().map(str::to_owned))
}

/// ECS calls seen so far.
pub fn ecs_calls(s: &Standin) -> u64 {
    s.calls()
        .unwrap()
        .iter()
        .filter(|(op, _)| op.starts_with("ecs:"))
        .map(|(_, n)| n)
        .sum()
}

/// The last `n` lines of a log file.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// ECS's scheduler for a service at minimumHealthyPercent 0 with no spare
/// capacity: it stops `tasks` without starting replacements, and they reach
/// STOPPED.
pub async fn scheduler_stops_without_replacements(s: &Standin, fleet: &Fleet, tasks: &[String]) {
    for arn in tasks {
        fleet
            .ecs
            .stop_task()
            .cluster(&fleet.cluster)
            .task(arn)
            .reason("scheduler: no capacity")
            .send()
            .await
            .unwrap();
    }
    for _ in 0..4 {
        s.ecs_step().unwrap();
    }
}

/// Instance `instance`'s lifecycle action once it is no longer active
/// (completed or expired), waiting up to `limit`.
pub async fn action_over(s: &Standin, fleet: &Fleet, instance: usize, limit: Duration) -> Value {
    s.wait_for(limit, |s| {
        let a = s.lifecycle_action(&fleet.instance_ids[instance])?;
        Ok((a["state"] != "active").then_some(a))
    })
    .await
    .unwrap()
}

/// Once the drain has set DRAINING (its first UpdateContainerInstancesState),
/// waiting up to `limit`.
pub async fn draining_was_set(s: &Standin, limit: Duration) {
    s.wait_for(limit, |s| {
        Ok(s.calls()?
            .get("ecs:UpdateContainerInstancesState")
            .is_some_and(|n| *n >= 1)
            .then_some(()))
    })
    .await
    .unwrap();
}

/// Sets the group's instance lifecycle policy: `TerminateHookAbandon` =
/// `retain` or `terminate` (STAND-IN: moto ignores the policy; the stand-in
/// keeps it and retains an abandoned terminating instance).
pub async fn set_retention(fleet: &Fleet, terminate_hook_abandon: &str) {
    use aws_sdk_autoscaling::types::{InstanceLifecyclePolicy, RetentionAction, RetentionTriggers};
    fleet
        .autoscaling
        .update_auto_scaling_group()
        .auto_scaling_group_name(&fleet.asg)
        .instance_lifecycle_policy(
            InstanceLifecyclePolicy::builder()
                .retention_triggers(
                    RetentionTriggers::builder()
                        .terminate_hook_abandon(RetentionAction::from(terminate_hook_abandon))
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
}

/// The instance's lifecycle state in its group, as Auto Scaling reports it.
pub async fn lifecycle_state(fleet: &Fleet, instance: usize) -> Option<String> {
    fleet
        .autoscaling
        .describe_auto_scaling_instances()
        .instance_ids(&fleet.instance_ids[instance])
        .send()
        .await
        .unwrap()
        .auto_scaling_instances()
        .first()
        .and_then(|i| i.lifecycle_state())
        .map(str::to_owned)
}
