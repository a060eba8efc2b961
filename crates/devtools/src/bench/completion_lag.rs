//! Lag (figure 4) from the last task on the instance reaching STOPPED to the
//! CompleteLifecycleAction, with the stand-in's scheduler draining the
//! instances; and peak memory (figure 2): VmHWM of the function process after
//! these real drains.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use testkit::{LocalFunction, Result};

use crate::{Bench, SCHEDULER_STEP_MS, TERMINATING, f64_of, vm_kb};

#[derive(Debug)]
pub struct LagSample {
    pub instance: usize,
    pub poll_s: u64,
    pub tasks: usize,
    pub drain_s: f64,
    pub lag_s: f64,
}

/// The drains of a run and the memory of the processes that made them.
#[derive(Debug)]
pub struct Drains {
    /// Instance 0's drain, from the scheduler stand-in starting to completion.
    pub drain_calls: BTreeMap<String, u64>,
    pub hwm_first_kb: u64,
    pub rss_first_kb: u64,
    pub hwm_all_kb: u64,
    pub rss_all_kb: u64,
    /// Drains made by the POLL_INTERVAL_SECONDS=1 process.
    pub drains_p1: usize,
    /// VmHWM of the POLL_INTERVAL_SECONDS=5 process, if it ran.
    pub hwm_5s_kb: Option<u64>,
    pub lags: Vec<LagSample>,
}

async fn wait_completed(b: &Bench<'_>, instance_id: &str, limit: Duration) -> Result<Value> {
    let action =
        b.s.wait_for(limit, |s| {
            let a = s.lifecycle_action(instance_id)?;
            Ok((a["state"] != "active").then_some(a))
        })
        .await?;
    if action["state"] != "completed" || action["result"] != "CONTINUE" {
        return Err(format!("the action did not complete CONTINUE: {action}"));
    }
    Ok(action)
}

/// Completion vs the last task on the instance reaching STOPPED.
async fn lag_of(b: &Bench<'_>, instance: usize, poll_s: u64, action: &Value) -> Result<LagSample> {
    let tasks = b.fleet.tasks_on(instance).await?;
    if let Some(t) = tasks.iter().find(|t| t.last_status != "STOPPED") {
        return Err(format!("completed with a task not STOPPED: {t:?}"));
    }
    let last_stop = testkit::last_stopped_at(&tasks).unwrap_or(f64::NAN);
    let completed = f64_of(action, "completed_at")?;
    let started = f64_of(action, "started_at")?;
    Ok(LagSample {
        instance,
        poll_s,
        tasks: tasks.len(),
        drain_s: completed - started,
        lag_s: completed - last_stop,
    })
}

/// One drain per target instance, the scheduler stand-in running.
async fn timed_drains(
    b: &Bench<'_>,
    instances: std::ops::Range<usize>,
    poll_s: u64,
) -> Result<Vec<LagSample>> {
    let (s, fleet) = (b.s, b.fleet);
    let mut out = Vec::new();
    for i in instances {
        let id = &fleet.instance_ids[i];
        s.start_lifecycle_action(&fleet.asg, &fleet.hook, id, TERMINATING)?;
        let action = wait_completed(b, id, Duration::from_secs(180)).await?;
        let sample = lag_of(b, i, poll_s, &action).await?;
        b.progress(&format!(
            "drain of instance {i} (poll {poll_s} s): {:.1} s, lag {:.2} s",
            sample.drain_s, sample.lag_s
        ));
        out.push(sample);
    }
    Ok(out)
}

/// Lets the scheduler stand-in drain instance 0 (left stuck by
/// [`crate::calls_per_poll`], in `function`), then instances 1.. with the same
/// process, up to `lag_reps` drains; then `lag_reps_5s` more with a
/// POLL_INTERVAL_SECONDS=5 process logging to `log`.
pub async fn measure(
    b: &Bench<'_>,
    log: &Path,
    function: LocalFunction,
    lag_reps: usize,
    lag_reps_5s: usize,
) -> Result<Drains> {
    let s = b.s;
    b.progress("scheduler stand-in on: draining instance 0");
    s.ecs_auto(SCHEDULER_STEP_MS)?;
    let action = wait_completed(b, &b.fleet.instance_ids[0], Duration::from_secs(180)).await?;
    let drain_calls = s.calls()?;
    let first = lag_of(b, 0, 1, &action).await?;
    b.progress(&format!("instance 0 completed: lag {:.2} s", first.lag_s));
    let hwm_first_kb = vm_kb(function.pid(), "VmHWM")?;
    let rss_first_kb = vm_kb(function.pid(), "VmRSS")?;
    let mut lags = vec![first];
    lags.extend(timed_drains(b, 1..lag_reps, 1).await?);
    let hwm_all_kb = vm_kb(function.pid(), "VmHWM")?;
    let rss_all_kb = vm_kb(function.pid(), "VmRSS")?;
    drop(function);

    let mut hwm_5s_kb = None;
    if lag_reps_5s > 0 {
        let function5 = b.start_logging_to(5, log)?;
        lags.extend(timed_drains(b, lag_reps..lag_reps + lag_reps_5s, 5).await?);
        hwm_5s_kb = Some(vm_kb(function5.pid(), "VmHWM")?);
    }
    Ok(Drains {
        drain_calls,
        hwm_first_kb,
        rss_first_kb,
        hwm_all_kb,
        rss_all_kb,
        drains_p1: lag_reps,
        hwm_5s_kb,
        lags,
    })
}
