//! AWS calls per poll (figure 3): the drain of a 200-task instance kept stuck
//! (no scheduler steps) for N polls with POLL_INTERVAL_SECONDS=1; the calls up
//! to the drain's first `wait` decision, then those of the N steady polls.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use testkit::{LocalFunction, Result};

use crate::{Bench, TERMINATING};

/// Each invocation's timeout (as the template sets it).
const INVOCATION_TIMEOUT_MS: u64 = 900_000;

/// The calls of the stuck drain, by `service:Operation`.
#[derive(Debug)]
pub struct PollCalls {
    /// From the lifecycle action to the first `wait` decision.
    pub startup: BTreeMap<String, u64>,
    /// The steady polls after it.
    pub steady: BTreeMap<String, u64>,
    /// How many steady polls the calls show (DescribeAutoScalingInstances).
    pub steady_polls: u64,
    pub poll_period_s: f64,
}

/// Decision lines of kind `decision` in a JSON log.
fn decisions(log: &Path, decision: &str) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["fields"]["decision"] == decision)
        .count()
}

/// Waits until the log holds `n` decision lines of kind `decision`; returns when
/// it saw the n-th (checked every 10 ms from a file read, no AWS call).
async fn wait_decisions(log: &Path, decision: &str, n: usize, limit: Duration) -> Result<()> {
    let start = Instant::now();
    while decisions(log, decision) < n {
        if start.elapsed() > limit {
            return Err(format!(
                "{n} {decision:?} decisions not logged within {limit:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// Starts the function (logging to `log`) and the drain of instance 0, which
/// has `tasks` tasks, and counts the calls of `polls` polls. Returns the
/// function with the drain still running, for [`crate::completion_lag`].
pub async fn measure(
    b: &Bench<'_>,
    log: &Path,
    polls: usize,
    tasks: usize,
) -> Result<(PollCalls, LocalFunction)> {
    let (s, fleet) = (b.s, b.fleet);
    let _ = std::fs::remove_file(log);
    let function = b.start_logging_to(1, log)?;
    s.subscribe_function(&fleet.topic_arn, INVOCATION_TIMEOUT_MS)?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.reset_calls()?;
    b.progress(&format!(
        "stuck drain of instance 0 ({tasks} tasks), {polls} polls at 1 s"
    ));
    s.start_lifecycle_action(&fleet.asg, &fleet.hook, &fleet.instance_ids[0], TERMINATING)?;
    // The first `wait` decision ends the lookup: find the container instance,
    // set DRAINING, first full observation (services described once).
    wait_decisions(log, "wait", 1, Duration::from_secs(60)).await?;
    let startup = s.calls()?;
    s.reset_calls()?;
    let t_steady = Instant::now();
    wait_decisions(
        log,
        "wait",
        1 + polls,
        Duration::from_secs(5 * polls as u64 + 30),
    )
    .await?;
    let steady = s.calls()?;
    let steady_s = t_steady.elapsed().as_secs_f64();
    s.reset_calls()?;
    let steady_polls = steady
        .get("autoscaling:DescribeAutoScalingInstances")
        .copied()
        .unwrap_or(0);
    if steady_polls != polls as u64 {
        eprintln!("warning: {steady_polls} DescribeAutoScalingInstances calls in {polls} polls");
    }
    let calls = PollCalls {
        startup,
        steady,
        steady_polls,
        poll_period_s: steady_s / polls as f64,
    };
    Ok((calls, function))
}
