//! The tools over testkit's stand-in and fleets: the local demo
//! (`ecs-lifecycle-demo`, `scripts/demo`), the benchmarks (`ecs-lifecycle-bench`,
//! `scripts/bench.sh`) and the load benchmark (`ecs-lifecycle-load`,
//! `scripts/load.sh`). None is a test; what only they need of the stand-in is
//! here, with the figures the benchmarks share.

use serde_json::{Value, json};
use testkit::{Fleet, Result, Standin, TaskTags};

/// Invoking the local function through the stand-in's Lambda, as the demo and
/// the benchmarks do (the tests let SNS deliver instead).
pub trait Invocations {
    /// Invokes the local function and waits for its answer.
    fn invoke(&self, event: &Value, timeout_ms: u64) -> Result<Value>;

    /// The invocation `request_id` once it has ended (neither queued nor running).
    fn ended_invocation(&self, request_id: &str) -> Result<Option<Value>>;
}

impl Invocations for Standin {
    fn invoke(&self, event: &Value, timeout_ms: u64) -> Result<Value> {
        self.post(
            "/_standin/lambda/invoke",
            json!({"event": event, "timeout_ms": timeout_ms, "async": false}),
        )
    }

    fn ended_invocation(&self, request_id: &str) -> Result<Option<Value>> {
        Ok(self
            .invocations()?
            .into_iter()
            .find(|i| i["request_id"] == request_id)
            .filter(|i| i["status"] != "queued" && i["status"] != "running"))
    }
}

/// Puts `count` RUNNING tasks of `tags` straight onto `fleet`'s container
/// instance `instance` (the stand-in's `/_standin/ecs/tasks`: as many as a
/// benchmark needs, without a StartTask each).
pub fn seed_tasks(
    s: &Standin,
    fleet: &Fleet,
    instance: usize,
    tags: &TaskTags,
    count: usize,
) -> Result<()> {
    s.post(
        "/_standin/ecs/tasks",
        json!({
            "cluster": fleet.cluster,
            "container_instance": fleet.container_instances[instance],
            "task_definition": tags.task_definition,
            "count": count,
            "started_by": tags.started_by,
            "group": tags.group,
        }),
    )
    .map(|_| ())
}

/// The median of `v` (NaN when empty).
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// The largest of `v` (NaN when empty).
pub fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NAN, f64::max)
}

/// A `VmXxx:` line of /proc/<pid>/status, in kB.
pub fn vm_kb(pid: u32, key: &str) -> Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| format!("no {key} in /proc/{pid}/status"))
}

/// The machine's load averages (1, 5 and 15 minutes), as /proc/loadavg says.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}
