//! The test library: starts the AWS stand-in (`tests/standin/standin.py`:
//! moto server, patched where moto falls short, plus a Lambda Runtime API) on
//! loopback, builds ECS fleets on it with the real SDK over real HTTP, and runs
//! the functions' binaries against it. The integration tests (`tests/`, through
//! `tests/support/`) use it; so do the demo and benchmarks (`crates/devtools`).
//!
//! What the stand-in emulates, and why: the docstring of tests/standin/standin.py (an index) and of each module of the tests/standin/standin/ package.

mod fleet;
mod function;
mod iam;
mod notes;
mod refresh;
mod rollout;
mod standin;

pub use fleet::{Fleet, FleetSpec, TaskInfo, TaskTags, last_stopped_at};
pub use function::LocalFunction;
pub use iam::{IAM_RECORD_ENV, as_function, function_credentials};
pub use notes::{
    NotificationQueue, metric_records, metric_sum, notification, notified_events, records_with,
};
pub use rollout::{ACTIVE_REFRESH, parameter_change_event, put_parameter};
pub use standin::{Standin, ThrottleReport, workspace_root};

/// Errors in test set-up are strings: they end a test with a message.
pub type Result<T> = std::result::Result<T, String>;

/// Turns any displayable error into the set-up error, with context.
pub(crate) fn ctx<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// A binary of the workspace, built next to the running test or demo
/// (`target/<profile>/<name>`).
pub fn binary(name: &str) -> Result<std::path::PathBuf> {
    let exe = std::env::current_exe().map_err(ctx("current_exe"))?;
    let mut dir = exe.parent().ok_or("no parent directory")?.to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "{} is not built: run `cargo build -p {name}` first",
            path.display()
        ))
    }
}

/// A log file for a local function, one per process: `<temp dir>/<name>-<pid>.log`.
pub fn temp_log(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("{name}-{}.log", std::process::id()))
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    ecs_lifecycle::time::epoch_ms()
}
