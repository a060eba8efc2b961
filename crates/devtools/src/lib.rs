//! The tools over testkit's stand-in and fleets: the local demo
//! (`ecs-lifecycle-demo`, `scripts/demo`), the benchmarks (`ecs-lifecycle-bench`,
//! `scripts/bench.sh`) and the load benchmark (`ecs-lifecycle-load`,
//! `scripts/load.sh`). None is a test; what only they need of the stand-in is here.

use serde_json::{Value, json};
use testkit::{Result, Standin};

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
