//! `ecs-lifecycle-bench poll`: what POLL_INTERVAL_SECONDS costs and buys once ECS's
//! events complete drains (issue 13). For each interval, one drain of the same
//! instance shape against the stand-in: the polling chain (the hook's
//! invocation, library code in this process) runs at that interval while the
//! stand-in's scheduler moves the tasks off; 300 ms after the last task reaches
//! STOPPED the bench delivers the `ECS Task State Change` EventBridge would send to
//! a second invocation, which completes the action. Counted: ECS and Auto Scaling
//! calls from the hook's notification to the end of the chain (the bench's own
//! calls watching the instance left out), the drain's length,
//! the lag from the last STOPPED to the completion; and the same drain without the
//! event (polling alone). The calls do not depend on the build (debug is fine).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ecs_lifecycle::config::{DrainConfig, Env};
use ecs_lifecycle::drain::Drainer;
use ecs_lifecycle::hook::Handler;
use serde_json::{Value, json};
use testkit::{Fleet, FleetSpec, Result, Standin, last_stopped_at, now_ms};

use crate::{TERMINATING, progress};

type LibDrainer = Drainer<aws_sdk_ecs::Client, aws_sdk_autoscaling::Client, aws_sdk_sns::Client>;

/// Tasks on the drained instance: one service of this many tasks.
const TASKS: usize = 6;
/// The scheduler stand-in's step while the tasks move (each task takes a few
/// steps: about a minute in all at the default 17 s, BENCH_POLL_STEP_S; not a
/// multiple of either interval, so polls and steps do not fall together).
fn step() -> Duration {
    Duration::from_secs(crate::env_usize("BENCH_POLL_STEP_S", 17) as u64)
}

#[derive(Debug)]
struct Sample {
    poll_s: u64,
    with_event: bool,
    drain_s: f64,
    lag_s: f64,
    ecs_calls: u64,
    autoscaling_calls: u64,
}

fn drainer(sdk: &aws_config::SdkConfig, cluster: &str, poll_s: u64) -> Result<LibDrainer> {
    let vars: HashMap<String, String> = [
        ("CLUSTER_NAME", cluster.to_owned()),
        ("POLL_INTERVAL_SECONDS", poll_s.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let config = DrainConfig::from_env(&Env::new(move |k| vars.get(k).cloned()))
        .map_err(|e| e.to_string())?;
    Ok(Drainer::new(
        aws_sdk_ecs::Client::new(sdk),
        aws_sdk_autoscaling::Client::new(sdk),
        aws_sdk_sns::Client::new(sdk),
        config,
    ))
}

async fn one(s: &Standin, poll_s: u64, with_event: bool, t0: Instant) -> Result<Sample> {
    let sdk = s.sdk_config().await;
    let name = format!("poll{poll_s}{}", if with_event { "e" } else { "p" });
    let fleet = Fleet::create(&sdk, &FleetSpec::new(&name, 2)).await?;
    let tasks = fleet.service("web", false, &[TASKS, 0]).await?;
    let chain = drainer(&sdk, &fleet.cluster, poll_s)?;
    let by_event = drainer(&sdk, &fleet.cluster, poll_s)?;
    s.reset_calls()?;
    let id = fleet.instance_ids[0].clone();
    s.start_lifecycle_action(&fleet.asg, &fleet.hook, &id, TERMINATING)?;
    let hook_event = fleet.sqs_event(&fleet.drain_queue().await?);
    let polling = async {
        chain
            .handle(&hook_event, now_ms() + 900_000)
            .await
            .map_err(|e| e.to_string())
    };
    // The bench's own ECS calls (watching the instance), left out of the count:
    // DescribeContainerInstances per status, ListTasks x2 + DescribeTasks per look.
    let own_calls = std::cell::Cell::new(0_u64);
    let scheduler = async {
        loop {
            own_calls.set(own_calls.get() + 1);
            if fleet.status_of(0).await? == "DRAINING" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        loop {
            tokio::time::sleep(step()).await;
            s.ecs_step()?;
            own_calls.set(own_calls.get() + 3);
            let on = fleet.tasks_on(0).await?;
            if on.iter().all(|t| t.last_status == "STOPPED") {
                break;
            }
        }
        if with_event {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let event = json!({
                "version": "0", "id": "bench", "detail-type": "ECS Task State Change",
                "source": "aws.ecs", "account": "123456789012", "time": "2026-12-06T00:00:00Z",
                "region": "us-east-1", "resources": [tasks[0]],
                "detail": {"clusterArn": fleet.cluster_arn, "containerInstanceArn": fleet.container_instances[0],
                           "taskArn": tasks[0], "lastStatus": "STOPPED", "desiredStatus": "STOPPED", "version": 9}
            });
            by_event
                .handle(&event, now_ms() + 60_000)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok::<_, String>(())
    };
    let (chain_result, scheduled) = tokio::join!(polling, scheduler);
    scheduled?;
    chain_result?;
    let action = s.lifecycle_action(&id)?;
    if action["state"] != "completed" || action["complete_calls"] != 1 {
        return Err(format!("the action was not completed once: {action}"));
    }
    let calls = s.calls()?;
    let sum = |prefix: &str| -> u64 {
        calls
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, n)| n)
            .sum()
    };
    let last_stop = last_stopped_at(&fleet.tasks_on(0).await?).unwrap_or(f64::NAN);
    let num = |v: &Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    let sample = Sample {
        poll_s,
        with_event,
        drain_s: num(&action, "completed_at") - num(&action, "started_at"),
        lag_s: num(&action, "completed_at") - last_stop,
        ecs_calls: sum("ecs:").saturating_sub(own_calls.get()),
        autoscaling_calls: sum("autoscaling:"),
    };
    progress(t0, &format!("{sample:?}"));
    Ok(sample)
}

pub async fn run() -> Result<()> {
    let t0 = Instant::now();
    let s = Standin::start()?;
    let mut samples = Vec::new();
    for poll_s in [10, 30] {
        for with_event in [true, false] {
            samples.push(one(&s, poll_s, with_event, t0).await?);
        }
    }
    println!(
        "| POLL_INTERVAL_SECONDS | completed by | drain (action start -> completion) | last task STOPPED -> completion | ECS calls | Auto Scaling calls |"
    );
    println!("|---|---|---|---|---|---|");
    for x in &samples {
        println!(
            "| {} s | {} | {:.1} s | {:.2} s | {} | {} |",
            x.poll_s,
            if x.with_event {
                "the ECS event"
            } else {
                "polling alone"
            },
            x.drain_s,
            x.lag_s,
            x.ecs_calls,
            x.autoscaling_calls
        );
    }
    Ok(())
}
