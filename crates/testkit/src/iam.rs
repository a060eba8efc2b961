//! Function credentials for the IAM recording (tests/standin/standin/iam.py).
//!
//! moto enforces no IAM, so the integration tests cannot show that a role lacks
//! a grant. Instead, when `ECS_LIFECYCLE_IAM_RECORD` names a directory
//! (scripts/test sets it), the stand-in writes down what IAM would authorize for
//! every request signed with a function's credentials, and this module writes
//! which function each credential is and how it was configured
//! (`deployments-<pid>.jsonl`). tests/template/iam_simulation.rs resolves each
//! function's role from the template for that configuration and evaluates the
//! requests with a policy engine.

use std::io::Write;
use std::sync::atomic::{AtomicU32, Ordering};

use aws_config::SdkConfig;
use aws_sdk_ecs::config::{Credentials, SharedCredentialsProvider};
use serde_json::{Map, Value, json};

/// The environment variable naming the recording directory.
pub const IAM_RECORD_ENV: &str = "ECS_LIFECYCLE_IAM_RECORD";

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Test credentials of their own for `function` (`terminate-drain`,
/// `launch-verify`, `ami-rollout`) configured by `vars` (its environment):
/// an access key id `FN<pid>X<n>`, written down with the function and its
/// configuration when recording.
pub fn function_credentials(function: &str, vars: &[(&str, &str)]) -> Credentials {
    let key = format!(
        "FN{}X{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    if let Some(dir) = std::env::var_os(IAM_RECORD_ENV) {
        let config: Map<String, Value> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), json!(v)))
            .collect();
        let line = json!({"key": key, "function": function, "config": config}).to_string() + "\n";
        let dir = std::path::PathBuf::from(dir);
        let written = std::fs::create_dir_all(&dir).and_then(|()| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(format!("deployments-{}.jsonl", std::process::id())))?
                .write_all(line.as_bytes())
        });
        if let Err(e) = written {
            eprintln!("testkit: cannot record the deployment of {function}: {e}");
        }
    }
    Credentials::new(key, "testing", None, None, "ecs-lifecycle-function")
}

/// `sdk` with [`function_credentials`]: what a function's clients are built from.
pub fn as_function(sdk: &SdkConfig, function: &str, vars: &[(&str, &str)]) -> SdkConfig {
    sdk.to_builder()
        .credentials_provider(SharedCredentialsProvider::new(function_credentials(
            function, vars,
        )))
        .build()
}
