//! What the on-instance diagnostic found, read from its output. The script
//! (crates/launch-verify/diagnostic/ecs-orphan-diagnostic.sh) prints one JSON
//! object on its first line, then a human summary; SSM returns the first 24000
//! characters of stdout.

use serde::{Deserialize, Serialize};

use crate::model::{CommandInvocation, CommandStatus};

pub const SCHEMA: &str = "ecs-orphan-diagnostic/1";

/// One check of the diagnostic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    /// `pass`, `fail`, `warn` or `skipped`.
    pub status: String,
    #[serde(default)]
    pub detail: String,
}

/// The diagnostic's JSON report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub schema: String,
    #[serde(default)]
    pub registered: bool,
    #[serde(default)]
    pub cluster: Option<String>,
    #[serde(default)]
    pub checks: Vec<Check>,
    #[serde(default)]
    pub failed: Vec<String>,
}

/// What is known about why an instance did not join, for the log line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Findings {
    /// How the diagnosis ended: `completed`, `failed_to_run`, `timed_out`,
    /// `ssm_unreachable`, `not_configured`, `unreadable`.
    pub outcome: String,
    /// The failed (and warned) checks, `name: detail`.
    pub problems: Vec<String>,
    /// SSM's status and the script's exit code, when it ran.
    #[serde(default)]
    pub ssm_status: Option<String>,
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// What the script saw of the agent's registration.
    #[serde(default)]
    pub registered_on_host: Option<bool>,
}

impl Findings {
    fn note(outcome: &str, problem: String) -> Self {
        Findings {
            outcome: outcome.into(),
            problems: vec![problem],
            ssm_status: None,
            exit_code: None,
            registered_on_host: None,
        }
    }

    pub fn ssm_unreachable(reason: &str) -> Self {
        Findings::note(
            "ssm_unreachable",
            format!(
                "SSM cannot run commands on the instance (SSM agent down, no instance profile with AmazonSSMManagedInstanceCore, or no route to SSM): {reason}"
            ),
        )
    }

    pub fn not_configured() -> Self {
        Findings::note(
            "not_configured",
            "no diagnostic document configured (SSM_DOCUMENT_NAME)".into(),
        )
    }

    pub fn timed_out(seconds: u64) -> Self {
        Findings::note(
            "timed_out",
            format!("the diagnostic did not finish within {seconds} s"),
        )
    }

    /// Reads a finished invocation.
    pub fn from_invocation(inv: &CommandInvocation) -> Self {
        let report = inv
            .stdout
            .lines()
            .find(|l| !l.trim().is_empty())
            .and_then(|l| serde_json::from_str::<Report>(l.trim()).ok())
            .filter(|r| r.schema == SCHEMA);
        let base = |outcome: &str, problems: Vec<String>, registered| Findings {
            outcome: outcome.into(),
            problems,
            ssm_status: Some(inv.status.to_string()),
            exit_code: Some(inv.response_code),
            registered_on_host: registered,
        };
        match report {
            Some(r) => {
                let problems = r
                    .checks
                    .iter()
                    .filter(|c| c.status == "fail" || c.status == "warn")
                    .map(|c| format!("{} {}: {}", c.name, c.status, c.detail))
                    .collect();
                base("completed", problems, Some(r.registered))
            }
            None if matches!(inv.status, CommandStatus::Success | CommandStatus::Failed) => {
                let head: String = inv.stdout.chars().take(300).collect();
                let err: String = inv.stderr.chars().take(300).collect();
                base(
                    "unreadable",
                    vec![format!(
                        "diagnostic output is not a {SCHEMA} report: stdout {head:?} stderr {err:?}"
                    )],
                    None,
                )
            }
            None => {
                let err: String = inv.stderr.chars().take(300).collect();
                base(
                    "failed_to_run",
                    vec![format!("the diagnostic ended {}: {err:?}", inv.status)],
                    None,
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv(status: &str, code: i32, stdout: &str) -> CommandInvocation {
        CommandInvocation {
            status: status.into(),
            response_code: code,
            stdout: stdout.into(),
            stderr: String::new(),
        }
    }

    #[test]
    fn reads_the_report_line() {
        let out = concat!(
            r#"{"schema":"ecs-orphan-diagnostic/1","instance_id":"i-0123456789abcdef0","region":"us-east-1","registered":false,"cluster":"prod","container_instance_arn":null,"#,
            r#""checks":[{"name":"agent_introspection","status":"fail","detail":"no answer on localhost:51678"},{"name":"docker_service","status":"pass","detail":"active"},{"name":"agent_container","status":"fail","detail":"OOMKilled, exit code 137"}],"failed":["agent_introspection","agent_container"]}"#,
            "\n\nECS agent is not registered.\n"
        );
        let f = Findings::from_invocation(&inv("Failed", 8, out));
        assert_eq!(f.outcome, "completed");
        assert_eq!(f.exit_code, Some(8));
        assert_eq!(f.registered_on_host, Some(false));
        assert_eq!(
            f.problems,
            [
                "agent_introspection fail: no answer on localhost:51678",
                "agent_container fail: OOMKilled, exit code 137"
            ]
        );
    }

    #[test]
    fn unreadable_and_failed_runs() {
        let f = Findings::from_invocation(&inv("Success", 0, "hello"));
        assert_eq!(f.outcome, "unreadable");
        assert!(f.problems[0].contains("\"hello\""));
        let f = Findings::from_invocation(&inv("TimedOut", -1, ""));
        assert_eq!(f.outcome, "failed_to_run");
        assert!(f.problems[0].contains("TimedOut"));
        let f = Findings::from_invocation(&inv("Failed", 8, r#"{"schema":"other/1"}"#));
        assert_eq!(f.outcome, "unreadable");
    }
}
