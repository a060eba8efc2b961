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

/// How the diagnosis ended; its name (Display, and the JSON) is the snake_case
/// word the log line's `diagnosis` field carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The script ran and printed its report.
    Completed,
    /// The script ran but printed no report this reads.
    Unreadable,
    /// SSM could not run the script to its end (timed out, cancelled, undeliverable).
    FailedToRun,
    /// The script did not finish in the time allowed.
    TimedOut,
    /// SSM cannot reach the instance.
    SsmUnreachable,
    /// No diagnostic document is configured.
    NotConfigured,
    /// The instance never reached `running`: there is nothing to diagnose.
    NotRunning,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::Unreadable => "unreadable",
            Outcome::FailedToRun => "failed_to_run",
            Outcome::TimedOut => "timed_out",
            Outcome::SsmUnreachable => "ssm_unreachable",
            Outcome::NotConfigured => "not_configured",
            Outcome::NotRunning => "not_running",
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What is known about why an instance did not join, for the log line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Findings {
    /// How the diagnosis ended.
    pub outcome: Outcome,
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
    fn note(outcome: Outcome, problem: String) -> Self {
        Findings {
            outcome,
            problems: vec![problem],
            ssm_status: None,
            exit_code: None,
            registered_on_host: None,
        }
    }

    pub fn ssm_unreachable(reason: &str) -> Self {
        Findings::note(
            Outcome::SsmUnreachable,
            format!(
                "SSM cannot run commands on the instance (SSM agent down, no instance profile with AmazonSSMManagedInstanceCore, or no route to SSM): {reason}"
            ),
        )
    }

    pub fn not_configured() -> Self {
        Findings::note(
            Outcome::NotConfigured,
            "no diagnostic document configured (SSM_DOCUMENT_NAME)".into(),
        )
    }

    pub fn timed_out(seconds: u64) -> Self {
        Findings::note(
            Outcome::TimedOut,
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
        let base = |outcome: Outcome, problems: Vec<String>, registered| Findings {
            outcome,
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
                base(Outcome::Completed, problems, Some(r.registered))
            }
            None if matches!(inv.status, CommandStatus::Success | CommandStatus::Failed) => {
                let head: String = inv.stdout.chars().take(300).collect();
                let err: String = inv.stderr.chars().take(300).collect();
                base(
                    Outcome::Unreadable,
                    vec![format!(
                        "diagnostic output is not a {SCHEMA} report: stdout {head:?} stderr {err:?}"
                    )],
                    None,
                )
            }
            None => {
                let err: String = inv.stderr.chars().take(300).collect();
                base(
                    Outcome::FailedToRun,
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
        assert_eq!(f.outcome, Outcome::Completed);
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
        assert_eq!(f.outcome, Outcome::Unreadable);
        assert!(f.problems[0].contains("\"hello\""));
        let f = Findings::from_invocation(&inv("TimedOut", -1, ""));
        assert_eq!(f.outcome, Outcome::FailedToRun);
        assert!(f.problems[0].contains("TimedOut"));
        let f = Findings::from_invocation(&inv("Failed", 8, r#"{"schema":"other/1"}"#));
        assert_eq!(f.outcome, Outcome::Unreadable);
    }

    #[test]
    fn outcomes_keep_their_names_in_the_log_and_the_json() {
        for (outcome, name) in [
            (Outcome::Completed, "completed"),
            (Outcome::Unreadable, "unreadable"),
            (Outcome::FailedToRun, "failed_to_run"),
            (Outcome::TimedOut, "timed_out"),
            (Outcome::SsmUnreachable, "ssm_unreachable"),
            (Outcome::NotConfigured, "not_configured"),
            (Outcome::NotRunning, "not_running"),
        ] {
            assert_eq!(outcome.to_string(), name);
            assert_eq!(serde_json::to_value(outcome).ok(), Some(name.into()));
            assert_eq!(
                serde_json::from_value::<Outcome>(name.into()).ok(),
                Some(outcome)
            );
        }
        let f = Findings::timed_out(90);
        assert_eq!(
            serde_json::to_value(&f).ok().map(|v| v["outcome"].clone()),
            Some("timed_out".into())
        );
    }
}
