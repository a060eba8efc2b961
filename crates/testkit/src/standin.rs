use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use aws_config::{Region, SdkConfig};
use serde_json::{Value, json};

use crate::{Result, ctx};

/// The repository root (where `tests/standin` lives).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A running stand-in server. Dropping it kills the process (which also exits
/// by itself when its stdin closes, so a crashed test leaves nothing behind).
#[derive(Debug)]
pub struct Standin {
    child: Child,
    /// `http://127.0.0.1:<port>`
    pub endpoint: String,
    agent: ureq::Agent,
}

impl Standin {
    /// Starts the stand-in with the venv's Python (`STANDIN_PYTHON` overrides).
    pub fn start() -> Result<Standin> {
        let root = workspace_root();
        let python = std::env::var("STANDIN_PYTHON")
            .map(PathBuf::from)
            .unwrap_or_else(|_| root.join(".venv/bin/python"));
        let script = root.join("tests/standin/standin.py");
        let mut child = Command::new(&python)
            .arg(&script)
            .args(["--host", "127.0.0.1", "--port", "0"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot start {} {}: {e} (run .ci/run or scripts/setup-venv.sh first)",
                    python.display(),
                    script.display()
                )
            })?;
        let stdout = child.stdout.take().ok_or("no stdout from the stand-in")?;
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(ctx("reading the stand-in's first line"))?;
        let endpoint = line
            .trim()
            .strip_prefix("STANDIN_READY ")
            .ok_or_else(|| format!("the stand-in did not start; it said {line:?}"))?
            .to_owned();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .into();
        Ok(Standin {
            child,
            endpoint,
            agent,
        })
    }

    /// Host and port, as `AWS_LAMBDA_RUNTIME_API` wants it.
    pub fn host_port(&self) -> &str {
        self.endpoint.trim_start_matches("http://")
    }

    /// SDK configuration pointing every service at the stand-in, with the
    /// product's own retry and timeout settings.
    pub async fn sdk_config(&self) -> SdkConfig {
        ecs_lifecycle::aws::config_loader()
            .endpoint_url(&self.endpoint)
            .region(Region::new("us-east-1"))
            .test_credentials()
            .load()
            .await
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        let url = format!("{}{path}", self.endpoint);
        let response = match (method, body) {
            ("GET", _) => self.agent.get(&url).call(),
            ("DELETE", _) => self.agent.delete(&url).call(),
            (_, Some(b)) => self.agent.post(&url).send_json(b),
            (_, None) => self.agent.post(&url).send_empty(),
        };
        let mut response = response.map_err(ctx(&format!("{method} {path}")))?;
        let status = response.status();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(ctx(&format!("{method} {path} body")))?;
        let value: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).map_err(ctx(&format!("{method} {path} json")))?
        };
        if !status.is_success() {
            return Err(format!("{method} {path} -> {status}: {text}"));
        }
        Ok(value)
    }

    pub fn get(&self, path: &str) -> Result<Value> {
        self.call("GET", path, None)
    }

    pub fn post(&self, path: &str, body: Value) -> Result<Value> {
        self.call("POST", path, Some(body))
    }

    pub fn delete(&self, path: &str) -> Result<Value> {
        self.call("DELETE", path, None)
    }

    /// Plays Auto Scaling starting a lifecycle action: the instance enters
    /// `Terminating:Wait` (or `Pending:Wait`) and the hook's target is notified.
    /// Returns `{"token", "message"}`.
    pub fn start_lifecycle_action(
        &self,
        asg: &str,
        hook: &str,
        instance_id: &str,
        transition: &str,
    ) -> Result<Value> {
        self.post(
            "/_standin/lifecycle/start",
            json!({"asg": asg, "hook": hook, "instance_id": instance_id, "transition": transition}),
        )
    }

    /// Every lifecycle action the stand-in knows, with completions and heartbeats.
    pub fn lifecycle_actions(&self) -> Result<Vec<Value>> {
        Ok(self
            .get("/_standin/lifecycle/actions")?
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// The action for one instance.
    pub fn lifecycle_action(&self, instance_id: &str) -> Result<Value> {
        self.lifecycle_actions()?
            .into_iter()
            .rev()
            .find(|a| a["instance_id"] == instance_id)
            .ok_or_else(|| format!("no lifecycle action for {instance_id}"))
    }

    /// Plays Auto Scaling letting an action time out.
    pub fn expire_lifecycle_action(&self, instance_id: &str) -> Result<Value> {
        self.post(
            "/_standin/lifecycle/expire",
            json!({"instance_id": instance_id}),
        )
    }

    /// One step of the ECS scheduler stand-in (replacements for DRAINING
    /// instances, stopping tasks advance one state).
    pub fn ecs_step(&self) -> Result<Value> {
        self.post("/_standin/ecs/step", json!({}))
    }

    /// Plays an ECS agent losing (`connected: false`) or regaining its
    /// connection: the container instance reports `agentConnected` so, and the
    /// scheduler stand-in moves none of its tasks meanwhile (moto's agent is
    /// always connected).
    pub fn set_agent_connected(
        &self,
        cluster: &str,
        container_instance: &str,
        connected: bool,
    ) -> Result<Value> {
        self.post(
            "/_standin/ecs/agent",
            json!({"cluster": cluster, "container_instance": container_instance, "connected": connected}),
        )
    }

    /// Runs the scheduler stand-in in the background every `interval_ms` (0 stops it).
    pub fn ecs_auto(&self, interval_ms: u64) -> Result<Value> {
        self.post("/_standin/ecs/auto", json!({"interval_ms": interval_ms}))
    }

    /// Plays EventBridge's rule for tasks of `cluster` STOPPED on container
    /// instances, its target the subscribed function: from now on each such
    /// task invokes it (asynchronously, invocations of `timeout_ms`, source
    /// `eventbridge`) with its `ECS Task State Change` event, `delay_ms` after
    /// it stopped (moto emits no events).
    pub fn ecs_task_events(&self, cluster: &str, timeout_ms: u64, delay_ms: u64) -> Result<Value> {
        self.post(
            "/_standin/ecs/events",
            json!({"cluster": cluster, "timeout_ms": timeout_ms, "delay_ms": delay_ms}),
        )
    }

    /// The ECS service scheduler's newest event for `service` says `message`.
    pub fn service_event(&self, cluster: &str, service: &str, message: &str) -> Result<Value> {
        self.post(
            "/_standin/ecs/service-event",
            json!({"cluster": cluster, "service": service, "message": message}),
        )
    }

    /// The next `count` calls to `target` (`ecs:DescribeTasks`) fail with `error`.
    pub fn inject_fault(&self, target: &str, error: &str, count: u32) -> Result<Value> {
        self.post(
            "/_standin/faults",
            json!({"target": target, "error": error, "count": count}),
        )
    }

    /// Every call to `target` (an fnmatch pattern: `ecs:*`) fails with `error` and
    /// HTTP `status`, in the protocol the service speaks, for `for_ms` from now: an
    /// outage of that service or operation.
    pub fn fault_for(&self, target: &str, error: &str, status: u16, for_ms: u64) -> Result<Value> {
        self.post(
            "/_standin/faults",
            json!({"target": target, "error": error, "status": status, "for_ms": for_ms}),
        )
    }

    /// Plays AWS's account-wide throttling: every call to `target` (an fnmatch
    /// pattern: `ecs:*`) takes a token from one bucket of `burst` tokens refilled at
    /// `rate_per_s`; a call that finds it empty is answered ThrottlingException
    /// ("Rate exceeded", HTTP 400) and never reaches moto. Replaces an earlier
    /// bucket of the same target.
    pub fn throttle(&self, target: &str, rate_per_s: f64, burst: u32) -> Result<Value> {
        self.post(
            "/_standin/throttle",
            json!({"target": target, "rate_per_s": rate_per_s, "burst": burst}),
        )
    }

    /// Removes every token bucket.
    pub fn clear_throttle(&self) -> Result<()> {
        self.delete("/_standin/throttle").map(|_| ())
    }

    /// What each token bucket granted and throttled, in total, by operation and
    /// per second.
    pub fn throttle_report(&self) -> Result<Vec<ThrottleReport>> {
        let v = self.get("/_standin/throttle")?;
        let buckets = v.as_array().ok_or("GET /_standin/throttle: not a list")?;
        Ok(buckets.iter().map(ThrottleReport::from_json).collect())
    }

    /// Auto Scaling's heartbeat and global timeouts applied by the clock (off by
    /// default): an action whose last heartbeat (or start) is older than its hook's
    /// HeartbeatTimeout, or whose start is older than the global timeout, expires
    /// with the hook's DefaultResult, as on AWS.
    pub fn enforce_heartbeats(&self, enabled: bool) -> Result<()> {
        self.post("/_standin/lifecycle/enforce", json!({ "enabled": enabled }))
            .map(|_| ())
    }

    /// AWS calls seen so far, by `service:Operation`.
    pub fn calls(&self) -> Result<BTreeMap<String, u64>> {
        let v = self.get("/_standin/calls")?;
        serde_json::from_value(v).map_err(ctx("calls"))
    }

    pub fn reset_calls(&self) -> Result<()> {
        self.delete("/_standin/calls").map(|_| ())
    }
}

impl Standin {
    /// Scripts what SSM reports for commands run on `instance_id`: `status`,
    /// exit code and stdout, after `in_progress_polls` polls answered InProgress.
    pub fn script_ssm_outcome(
        &self,
        instance_id: &str,
        status: &str,
        response_code: i32,
        stdout: &str,
        in_progress_polls: u32,
    ) -> Result<()> {
        self.post(
            "/_standin/ssm/outcome",
            json!({"instance_id": instance_id, "status": status, "response_code": response_code, "stdout": stdout, "in_progress_polls": in_progress_polls}),
        )
        .map(|_| ())
    }

    /// SSM cannot reach `instance_id` (SendCommand fails with InvalidInstanceId).
    pub fn make_ssm_unreachable(&self, instance_id: &str) -> Result<()> {
        self.post(
            "/_standin/ssm/unreachable",
            json!({"instance_id": instance_id}),
        )
        .map(|_| ())
    }

    /// The SSM commands sent so far.
    pub fn ssm_commands(&self) -> Result<Vec<Value>> {
        Ok(self
            .get("/_standin/ssm/commands")?
            .as_array()
            .cloned()
            .unwrap_or_default())
    }
}

/// One token bucket of the stand-in's throttling, as `GET /_standin/throttle` reports it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ThrottleReport {
    pub target: String,
    pub rate_per_s: f64,
    pub burst: u64,
    /// Calls that found a token.
    pub granted: u64,
    /// Calls answered with a throttling error.
    pub throttled: u64,
    /// `service:Operation` -> (granted, throttled).
    pub by_operation: BTreeMap<String, (u64, u64)>,
    /// (epoch second, granted, throttled), oldest first; seconds with no call are absent.
    pub per_second: Vec<(u64, u64, u64)>,
}

impl ThrottleReport {
    fn from_json(v: &Value) -> ThrottleReport {
        let n = |v: &Value, k: &str| v[k].as_u64().unwrap_or(0);
        ThrottleReport {
            target: v["target"].as_str().unwrap_or_default().to_owned(),
            rate_per_s: v["rate_per_s"].as_f64().unwrap_or(0.0),
            burst: n(v, "burst"),
            granted: n(v, "granted"),
            throttled: n(v, "throttled"),
            by_operation: v["by_operation"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(op, c)| (op.clone(), (n(c, "granted"), n(c, "throttled"))))
                        .collect()
                })
                .unwrap_or_default(),
            per_second: v["per_second"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|p| (n(p, "t"), n(p, "granted"), n(p, "throttled")))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

impl Drop for Standin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
