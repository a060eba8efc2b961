//! `scale-in`: Auto Scaling scales in an instance carrying service, daemon and
//! standalone tasks; `terminate-drain` drains it across several invocations,
//! waiting between its looks in its wait queue (WAIT_MODE=queue, as the template
//! deploys it).

use std::time::{Duration, Instant};

use testkit::{Fleet, FleetSpec, Standin};

use crate::function::DemoFunction;
use crate::say;

/// Each invocation's timeout (the template uses 900 s; in the queue no
/// invocation comes near it).
const INVOCATION_TIMEOUT_MS: u64 = 16_000;

/// The wait queue's delay: the poll interval (the template's `DelaySeconds`).
const WAIT_MS: u64 = 2_000;

pub async fn run() -> testkit::Result<()> {
    let t0 = Instant::now();
    say(
        t0,
        "starting the AWS stand-in (moto server + lifecycle/scheduler/Lambda stand-ins) on 127.0.0.1",
    );
    let s = Standin::start()?;
    let sdk = s.sdk_config().await;
    let fleet = Fleet::create(
        &sdk,
        &FleetSpec {
            heartbeat_timeout: 60,
            ..FleetSpec::new("demo", 3)
        },
    )
    .await?;
    fleet.service("web", false, &[3, 2, 2]).await?;
    fleet.service("log-router", true, &[1, 1, 1]).await?;
    fleet.standalone("nightly-report", 0, 1).await?;
    say(
        t0,
        &format!(
            "cluster `{}`: 3 container instances in Auto Scaling group `{}`",
            fleet.cluster, fleet.asg
        ),
    );
    say(
        t0,
        &format!(
            "terminate hook `{}` (heartbeat timeout 60 s) notifies {}",
            fleet.hook, fleet.topic_arn
        ),
    );
    say(
        t0,
        &format!(
            "on {}: 3 web tasks, 1 log-router (daemon) task, 1 standalone nightly-report task",
            fleet.instance_ids[0]
        ),
    );

    let mut function = DemoFunction::start(
        &s,
        "terminate-drain",
        "ecs-lifecycle-demo",
        &[
            ("CLUSTER_NAME", &fleet.cluster),
            ("POLL_INTERVAL_SECONDS", "2"),
            ("WAIT_MODE", "queue"),
            ("STANDALONE_TASKS", "stop"),
            ("CONTINUATION_TOPIC_ARN", &fleet.topic_arn),
            ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
        ],
    )?;
    s.subscribe_function_with_wait_queue(&fleet.topic_arn, INVOCATION_TIMEOUT_MS, WAIT_MS)?;
    say(
        t0,
        &format!(
            "terminate-drain ({}) runs as a Lambda function with WAIT_MODE=queue: each invocation looks, acts and hands the drain to its wait queue, which delivers the next look {} s later",
            function.binary.display(),
            WAIT_MS / 1000
        ),
    );
    // ECS's scheduler, played by the stand-in: one step every 1.5 s.
    s.ecs_auto(1500)?;

    say(
        t0,
        &format!(
            "Auto Scaling scales in: {} enters Terminating:Wait",
            fleet.instance_ids[0]
        ),
    );
    s.start_lifecycle_action(
        &fleet.asg,
        &fleet.hook,
        &fleet.instance_ids[0],
        "autoscaling:EC2_INSTANCE_TERMINATING",
    )?;

    let mut last_progress = String::new();
    let action = loop {
        function.echo_log(t0);
        let tasks = fleet.tasks_on(0).await?;
        let mut by_status = std::collections::BTreeMap::<String, usize>::new();
        for t in &tasks {
            *by_status.entry(t.last_status.clone()).or_default() += 1;
        }
        let action = s.lifecycle_action(&fleet.instance_ids[0])?;
        let progress = format!(
            "instance {} | tasks {:?} | lifecycle action {} | heartbeats {}",
            fleet.status_of(0).await?,
            by_status,
            action["state"].as_str().unwrap_or("?"),
            action["heartbeats"].as_array().map_or(0, Vec::len)
        );
        if progress != last_progress {
            say(t0, &format!("    {progress}"));
            last_progress = progress;
        }
        if action["state"] != "active" {
            break action;
        }
        if t0.elapsed() > Duration::from_secs(240) {
            return Err("the drain did not finish within 4 minutes".into());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    function.echo_log(t0);
    s.ecs_auto(0)?;

    let tasks = fleet.tasks_on(0).await?;
    let last_stop = tasks
        .iter()
        .filter_map(|t| t.stopped_at)
        .fold(0.0_f64, f64::max);
    let completed_at = action["completed_at"].as_f64().unwrap_or(0.0);
    let invocations = s.invocations()?;
    println!();
    println!("Result");
    println!(
        "  lifecycle action      {} with {} ({} CompleteLifecycleAction call)",
        action["state"].as_str().unwrap_or("?"),
        action["result"].as_str().unwrap_or("?"),
        action["complete_calls"]
    );
    println!(
        "  tasks on the instance {} of {} STOPPED",
        tasks.iter().filter(|t| t.last_status == "STOPPED").count(),
        tasks.len()
    );
    println!(
        "  invocations           {} ({} continuation(s) through the wait queue)",
        invocations.len(),
        invocations.len().saturating_sub(1)
    );
    println!(
        "  heartbeats            {}",
        action["heartbeats"].as_array().map_or(0, Vec::len)
    );
    println!(
        "  last task stopped ->  completed: {:.2} s",
        completed_at - last_stop
    );
    println!("  function log (JSON)   {}", function.log.display());
    if action["state"] != "completed" || action["complete_calls"] != 1 {
        return Err(format!("unexpected end state: {action}"));
    }
    Ok(())
}
