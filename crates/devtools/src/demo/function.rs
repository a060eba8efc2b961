//! A Lambda binary of the workspace running as a function for a scenario, its
//! JSON log going to a file of its own and echoed in short form.

use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::Value;
use testkit::{LocalFunction, Standin};

use crate::say;

#[derive(Debug)]
pub struct DemoFunction {
    pub binary: PathBuf,
    /// The function's log (JSON, as CloudWatch Logs would get it).
    pub log: PathBuf,
    /// How far [`DemoFunction::echo_log`] has read the log.
    log_pos: u64,
    _process: LocalFunction,
}

impl DemoFunction {
    /// Starts the workspace binary `name` with `env`, logging to
    /// `<temp dir>/<log_name>-<pid>.log`.
    pub fn start(
        s: &Standin,
        name: &str,
        log_name: &str,
        env: &[(&str, &str)],
    ) -> testkit::Result<DemoFunction> {
        let log = testkit::temp_log(log_name);
        let binary = testkit::binary(name)?;
        let process = LocalFunction::start_logging_to(s, &binary, name, env, &log)?;
        Ok(DemoFunction {
            binary,
            log,
            log_pos: 0,
            _process: process,
        })
    }

    /// Prints the log lines written since the last call.
    pub fn echo_log(&mut self, t0: Instant) {
        self.log_pos = echo_function_log(t0, &self.log, self.log_pos);
    }
}

/// Prints the function's new log lines (JSON, as CloudWatch Logs would get
/// them) in short form; returns the new file offset.
fn echo_function_log(t0: Instant, path: &Path, from: u64) -> u64 {
    let Ok(mut file) = std::fs::File::open(path) else {
        return from;
    };
    if file.seek(SeekFrom::Start(from)).is_err() {
        return from;
    }
    let mut reader = BufReader::new(file);
    let mut pos = from;
    let mut line = String::new();
    while reader.read_line(&mut line).unwrap_or(0) > 0 {
        if !line.ends_with('\n') {
            break;
        }
        pos += line.len() as u64;
        if let Ok(v) = serde_json::from_str::<Value>(&line) {
            if let Some(metrics) = v["_aws"]["CloudWatchMetrics"][0]["Metrics"].as_array() {
                // A metric record (CloudWatch Embedded Metric Format): its values.
                let values: Vec<String> = metrics
                    .iter()
                    .filter_map(|m| m["Name"].as_str())
                    .map(|name| format!("{name}={}", v[name]))
                    .collect();
                say(
                    t0,
                    &format!(
                        "  [metrics {}] {}",
                        v["instance_id"].as_str().unwrap_or(""),
                        values.join(" ")
                    ),
                );
                line.clear();
                continue;
            }
            let f = &v["fields"];
            let attempt = v["span"]["attempt"]
                .as_u64()
                .map(|a| format!(" #{a}"))
                .unwrap_or_default();
            let who = format!(
                "{} {}",
                v["span"]["name"].as_str().unwrap_or("fn"),
                v["span"]["instance_id"].as_str().unwrap_or("")
            );
            let mut extra = Vec::new();
            for key in [
                "decision",
                "service",
                "daemon",
                "standalone",
                "why",
                "count",
                "reason",
                "result",
                "next_attempt",
                "error",
                "waiting_for",
                "verdict",
                "diagnosis",
                "problems",
                "command_id",
                "phase",
                "on_target",
                "total",
                "refresh_status",
                "step",
                "outcome",
                "alarm",
                "version",
                "refresh_id",
            ] {
                if !f[key].is_null() {
                    extra.push(format!("{key}={}", f[key].to_string().trim_matches('"')));
                }
            }
            say(
                t0,
                &format!(
                    "  [{}{attempt}] {}: {} {}",
                    who.trim(),
                    v["level"].as_str().unwrap_or(""),
                    f["message"].as_str().unwrap_or(""),
                    extra.join(" ")
                ),
            );
        }
        line.clear();
    }
    pos
}
