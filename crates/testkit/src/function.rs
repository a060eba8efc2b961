use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::{Result, Standin, ctx};

/// A Lambda function binary running locally against the stand-in's Runtime API,
/// with every AWS call going to the stand-in.
#[derive(Debug)]
pub struct LocalFunction {
    child: Child,
}

impl LocalFunction {
    /// Starts `binary` with the Lambda environment a real function sees, plus
    /// `env`, its logs (stdout and stderr, as CloudWatch Logs would get them)
    /// appended to `log`.
    pub fn start_logging_to(
        standin: &Standin,
        binary: &Path,
        name: &str,
        env: &[(&str, &str)],
        log: &Path,
    ) -> Result<LocalFunction> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(ctx("opening the log file"))?;
        let file2 = file.try_clone().map_err(ctx("log file"))?;
        Self::spawn(
            standin,
            binary,
            name,
            env,
            Stdio::from(file),
            Stdio::from(file2),
        )
    }

    /// Starts `binary` as [`LocalFunction::start_logging_to`] does, its stdout
    /// and stderr going where the caller says.
    pub fn spawn(
        standin: &Standin,
        binary: &Path,
        name: &str,
        env: &[(&str, &str)],
        stdout: Stdio,
        stderr: Stdio,
    ) -> Result<LocalFunction> {
        // The binary's own test credentials (crate::iam): its requests are
        // recorded as the function's, named by the binary's file name.
        let function = binary
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let credentials = crate::function_credentials(&function, env);
        let mut cmd = Command::new(binary);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", standin.host_port())
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "local")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", credentials.access_key_id())
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_ENDPOINT_URL", &standin.endpoint)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        let child = cmd
            .spawn()
            .map_err(ctx(&format!("starting {}", binary.display())))?;
        Ok(LocalFunction { child })
    }

    /// The process id (for memory readings).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process has exited (it should not, between invocations).
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }
}

impl Drop for LocalFunction {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Standin {
    /// From now on every publish to `topic_arn` invokes the local function
    /// asynchronously with the SNS event Lambda would receive, each invocation
    /// given `timeout_ms` (as the function's configured timeout).
    pub fn subscribe_function(&self, topic_arn: &str, timeout_ms: u64) -> Result<Value> {
        self.post(
            "/_standin/lambda/subscribe",
            json!({"topic_arn": topic_arn, "timeout_ms": timeout_ms}),
        )
    }

    /// As [`Self::subscribe_function`], with `WAIT_MODE=queue`'s wait queue
    /// played: the function's continuations come back `delay_ms` later as the
    /// SQS event of the queue's event source mapping.
    pub fn subscribe_function_with_wait_queue(
        &self,
        topic_arn: &str,
        timeout_ms: u64,
        delay_ms: u64,
    ) -> Result<Value> {
        self.post(
            "/_standin/lambda/subscribe",
            json!({"topic_arn": topic_arn, "timeout_ms": timeout_ms, "wait_delay_ms": delay_ms}),
        )
    }

    /// Every invocation so far, oldest first.
    pub fn invocations(&self) -> Result<Vec<Value>> {
        Ok(self
            .get("/_standin/lambda/invocations")?
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// Every invocation, once none is queued or running any more (waiting up to
    /// `limit` for the last ones to answer).
    pub async fn ended_invocations(&self, limit: Duration) -> Result<Vec<Value>> {
        self.wait_for(limit, |s| {
            let all = s.invocations()?;
            Ok(all
                .iter()
                .all(|i| i["status"] != "queued" && i["status"] != "running")
                .then_some(all))
        })
        .await
    }

    /// Polls `check` every 200 ms until it returns `Some`, or fails after `limit`.
    pub async fn wait_for<T>(
        &self,
        limit: Duration,
        mut check: impl FnMut(&Standin) -> Result<Option<T>>,
    ) -> Result<T> {
        let start = std::time::Instant::now();
        loop {
            if let Some(v) = check(self)? {
                return Ok(v);
            }
            if start.elapsed() > limit {
                return Err(format!("condition not met within {limit:?}"));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
