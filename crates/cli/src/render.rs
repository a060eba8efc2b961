//! Output: JSON, or aligned tables for people (coloured only on a terminal,
//! and never with NO_COLOR set).

use std::ffi::OsStr;
use std::fmt::Write as _;

use serde::Serialize;

use crate::rollout::{RolloutReport, TemplateRow};
use crate::status::{Attention, StatusReport};

/// Colour when stdout is a terminal and NO_COLOR is unset or empty
/// (<https://no-color.org>).
pub fn use_color(stdout_is_terminal: bool, no_color: Option<&OsStr>) -> bool {
    stdout_is_terminal && no_color.is_none_or(OsStr::is_empty)
}

/// Epoch milliseconds as RFC 3339 UTC, to the second.
pub fn rfc3339(ms: u64) -> String {
    let secs = i64::try_from(ms / 1000).unwrap_or(i64::MAX);
    aws_smithy_types::DateTime::from_secs(secs)
        .fmt(aws_smithy_types::date_time::Format::DateTime)
        .unwrap_or_else(|_| format!("@{secs}"))
}

/// A report as one JSON document and a newline.
pub fn json<T: Serialize>(report: &T) -> String {
    match serde_json::to_string_pretty(report) {
        Ok(s) => s + "\n",
        // Plain structs of strings and numbers: cannot fail.
        Err(e) => format!("{{\"error\": {:?}}}\n", e.to_string()),
    }
}

/// A duration for people: `45s`, `4m12s`, `8h15m`, `2d3h`.
pub fn duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match secs {
        0..60 => format!("{s}s"),
        60..3600 => format!("{m}m{s:02}s"),
        3600..86_400 => format!("{h}h{m:02}m"),
        _ => format!("{d}d{h:02}h"),
    }
}

fn ago(then_ms: u64, now_ms: u64) -> String {
    format!("{} ago", duration(now_ms.saturating_sub(then_ms) / 1000))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paint {
    Plain,
    Bold,
    Green,
    Yellow,
    Red,
}

fn paint(text: &str, p: Paint, color: bool) -> String {
    let code = match p {
        _ if !color => return text.to_owned(),
        Paint::Plain => return text.to_owned(),
        Paint::Bold => "1",
        Paint::Green => "32",
        Paint::Yellow => "33",
        Paint::Red => "31",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

/// A table whose columns are as wide as their widest cell, two spaces apart;
/// numbers right-aligned. Widths count characters of the plain text, so the
/// colour codes do not disturb the alignment.
#[derive(Debug)]
pub struct Table {
    headers: Vec<&'static str>,
    right: Vec<bool>,
    rows: Vec<Vec<(String, Paint)>>,
}

impl Table {
    /// Columns as `(header, right-aligned)`.
    pub fn new(columns: &[(&'static str, bool)]) -> Self {
        Table {
            headers: columns.iter().map(|c| c.0).collect(),
            right: columns.iter().map(|c| c.1).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<(String, Paint)>) {
        self.rows.push(cells);
    }

    pub fn render(&self, color: bool) -> String {
        let width = |i: usize| {
            self.rows
                .iter()
                .filter_map(|r| r.get(i))
                .map(|(t, _)| t.chars().count())
                .chain([self.headers[i].chars().count()])
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..self.headers.len()).map(width).collect();
        let mut out = String::new();
        let header: Vec<(String, Paint)> = self
            .headers
            .iter()
            .map(|h| ((*h).to_owned(), Paint::Bold))
            .collect();
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            let last = row.len().saturating_sub(1);
            for (i, (text, p)) in row.iter().enumerate() {
                let pad = widths
                    .get(i)
                    .copied()
                    .unwrap_or(0)
                    .saturating_sub(text.chars().count());
                let right = self.right.get(i).copied().unwrap_or(false);
                if i > 0 {
                    line.push_str("  ");
                }
                if right {
                    line.push_str(&" ".repeat(pad));
                }
                line.push_str(&paint(text, *p, color));
                if !right && i < last {
                    line.push_str(&" ".repeat(pad));
                }
            }
            out.push_str(&line);
            out.push('\n');
        }
        out
    }
}

fn plain(s: impl Into<String>) -> (String, Paint) {
    (s.into(), Paint::Plain)
}

fn or_dash(s: Option<&str>) -> (String, Paint) {
    plain(s.unwrap_or("-"))
}

fn attention_text(out: &mut String, attention: &[Attention], color: bool) {
    if attention.is_empty() {
        out.push_str("\nNothing needs attention.\n");
        return;
    }
    let _ = writeln!(
        out,
        "\n{}",
        paint(
            &format!("Needs attention ({}):", attention.len()),
            Paint::Red,
            color
        )
    );
    for a in attention {
        let _ = writeln!(out, "  {}: {}", a.kind, a.message);
    }
}

fn section(out: &mut String, title: &str, count: usize, color: bool) {
    let _ = writeln!(
        out,
        "\n{}",
        paint(&format!("{title} ({count})"), Paint::Bold, color)
    );
}

pub fn status_text(r: &StatusReport, now_ms: u64, color: bool) -> String {
    let mut out = String::new();
    let groups = if r.groups.is_empty() {
        "none (no instance of the cluster is in a group; name some with --group)".to_owned()
    } else {
        r.groups.join(", ")
    };
    let _ = writeln!(
        out,
        "Cluster {} in {} at {}; groups: {groups}",
        r.cluster, r.region, r.generated_at
    );

    section(
        &mut out,
        "Container instances",
        r.container_instances.len(),
        color,
    );
    if !r.container_instances.is_empty() {
        let mut t = Table::new(&[
            ("EC2 INSTANCE", false),
            ("GROUP", false),
            ("LIFECYCLE", false),
            ("ECS", false),
            ("AGENT", false),
            ("RUNNING", true),
            ("PENDING", true),
            ("AMI", false),
            ("DRAINING SINCE", false),
        ]);
        for i in &r.container_instances {
            let ecs_paint = match i.ecs_status.as_str() {
                "ACTIVE" => Paint::Green,
                "DRAINING" => Paint::Yellow,
                _ => Paint::Red,
            };
            let draining = match (i.ecs_status.as_str(), i.draining_since_ms) {
                (_, Some(ms)) => ago(ms, now_ms),
                ("DRAINING", None) => "?".to_owned(),
                _ => "-".to_owned(),
            };
            t.row(vec![
                plain(&i.ec2_instance_id),
                or_dash(i.group.as_deref()),
                or_dash(i.lifecycle_state.as_ref().map(|s| s.as_str())),
                (i.ecs_status.to_string(), ecs_paint),
                if i.agent_connected {
                    plain("connected")
                } else {
                    ("disconnected".to_owned(), Paint::Red)
                },
                plain(i.running_tasks.to_string()),
                plain(i.pending_tasks.to_string()),
                or_dash(i.ami.as_deref()),
                plain(draining),
            ]);
        }
        out.push_str(&t.render(color));
    }

    section(
        &mut out,
        "Waiting on a lifecycle hook",
        r.waiting.len(),
        color,
    );
    if !r.waiting.is_empty() {
        let mut t = Table::new(&[
            ("EC2 INSTANCE", false),
            ("GROUP", false),
            ("STATE", false),
            ("IN CLUSTER", false),
            ("HOOK", false),
            ("DEFAULT", false),
            ("HEARTBEAT", true),
            ("TIME LEFT", true),
        ]);
        for w in &r.waiting {
            let head = || {
                vec![
                    plain(&w.ec2_instance_id),
                    plain(&w.group),
                    (w.lifecycle_state.to_string(), Paint::Yellow),
                    plain(if w.registered { "yes" } else { "no" }),
                ]
            };
            if w.hooks.is_empty() {
                let mut row = head();
                row.extend([plain("?"), plain("-"), plain("-"), plain("?")]);
                t.row(row);
            }
            for h in &w.hooks {
                let mut row = head();
                row.extend([
                    plain(&h.name),
                    plain(&h.default_result),
                    plain(duration(h.heartbeat_timeout_s)),
                    plain(h.time_left_s.map_or_else(|| "?".to_owned(), duration)),
                ]);
                t.row(row);
            }
        }
        out.push_str(&t.render(color));
        out.push_str(
            "TIME LEFT: until the hook's global timeout, from the start of the scaling activity (? when\n\
             there is none); the action ends sooner if it is completed or not heartbeated in HEARTBEAT.\n",
        );
    }

    section(
        &mut out,
        "Orphans: InService in a group, not registered in the cluster",
        r.orphans.len(),
        color,
    );
    if !r.orphans.is_empty() {
        let mut t = Table::new(&[
            ("EC2 INSTANCE", false),
            ("GROUP", false),
            ("EC2 STATE", false),
            ("AMI", false),
            ("LAUNCHED", false),
        ]);
        for o in &r.orphans {
            t.row(vec![
                (o.ec2_instance_id.clone(), Paint::Red),
                plain(&o.group),
                or_dash(o.ec2_state.as_deref()),
                or_dash(o.ami.as_deref()),
                plain(
                    o.launched_ms
                        .map_or_else(|| "-".to_owned(), |ms| ago(ms, now_ms)),
                ),
            ]);
        }
        out.push_str(&t.render(color));
    }
    attention_text(&mut out, &r.attention, color);
    out
}

/// `ami-0123 (v4)`, or `ami-0123 ($Latest = v4)` for a symbolic version.
fn ami_at_version(t: &TemplateRow) -> String {
    let ami = t.ami.as_deref().unwrap_or("?");
    match t.version_number {
        Some(n) if t.version == n.to_string() => format!("{ami} (v{n})"),
        Some(n) => format!("{ami} ({} = v{n})", t.version),
        None => format!("{ami} ({}: no such version)", t.version),
    }
}

pub fn rollout_text(r: &RolloutReport, color: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Auto Scaling groups in {} at {}",
        r.region, r.generated_at
    );
    section(&mut out, "Instance refreshes", r.groups.len(), color);
    if !r.groups.is_empty() {
        let mut t = Table::new(&[
            ("GROUP", false),
            ("REFRESH", false),
            ("STATUS", false),
            ("DONE", true),
            ("TARGET", false),
            ("CURRENT", false),
            ("REFUSED AMI", false),
        ]);
        for g in &r.groups {
            let status_paint = match g.refresh.as_ref().map(|x| x.status.as_str()) {
                Some("Successful") => Paint::Green,
                Some("Failed" | "RollbackFailed" | "RollbackSuccessful") => Paint::Red,
                Some(_) => Paint::Yellow,
                None => Paint::Plain,
            };
            let refused: Vec<String> = g
                .refused_amis
                .iter()
                .map(|x| match &x.refused_at {
                    Some(at) => format!("{} ({at})", x.ami),
                    None => x.ami.clone(),
                })
                .collect();
            let target = g.target.as_ref().map(|x| &x.template);
            let current = g.launch_template.as_ref();
            t.row(vec![
                plain(&g.group),
                or_dash(g.refresh.as_ref().map(|x| x.id.as_str())),
                (
                    g.refresh
                        .as_ref()
                        .map_or_else(|| "-".to_owned(), |x| x.status.to_string()),
                    status_paint,
                ),
                plain(
                    g.refresh
                        .as_ref()
                        .and_then(|x| x.percentage)
                        .map_or_else(|| "-".to_owned(), |p| format!("{p}%")),
                ),
                plain(target.map_or_else(|| "-".to_owned(), ami_at_version)),
                plain(current.map_or_else(|| "-".to_owned(), ami_at_version)),
                if refused.is_empty() {
                    plain("-")
                } else {
                    (refused.join(", "), Paint::Red)
                },
            ]);
        }
        out.push_str(&t.render(color));
    }
    attention_text(&mut out, &r.attention, color);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        for (tty, no_color, expected) in [
            (true, None, true),
            (true, Some(""), true),
            (true, Some("1"), false),
            (false, None, false),
            (false, Some("1"), false),
        ] {
            assert_eq!(
                use_color(tty, no_color.map(OsStr::new)),
                expected,
                "{tty} {no_color:?}"
            );
        }
    }

    #[test]
    fn durations_and_times() {
        for (secs, text) in [
            (0, "0s"),
            (59, "59s"),
            (60, "1m00s"),
            (252, "4m12s"),
            (3600, "1h00m"),
            (29_880, "8h18m"),
            (86_400, "1d00h"),
            (172_800, "2d00h"),
        ] {
            assert_eq!(duration(secs), text, "{secs}");
        }
        assert_eq!(rfc3339(1_800_000_000_999), "2027-01-15T08:00:00Z");
        assert_eq!(ago(1_000, 61_500), "1m00s ago");
    }

    #[test]
    fn amis_with_their_versions() {
        let t = |version: &str, number: Option<i64>, ami: Option<&str>| TemplateRow {
            launch_template: "lt-0abc".into(),
            version: version.into(),
            version_number: number,
            ami: ami.map(str::to_owned),
        };
        assert_eq!(
            ami_at_version(&t("4", Some(4), Some("ami-1"))),
            "ami-1 (v4)"
        );
        assert_eq!(
            ami_at_version(&t("$Latest", Some(4), Some("ami-1"))),
            "ami-1 ($Latest = v4)"
        );
        assert_eq!(
            ami_at_version(&t("9", None, None)),
            "? (9: no such version)"
        );
    }

    #[test]
    fn tables_align_on_the_text_not_on_the_colour_codes() {
        let mut t = Table::new(&[("NAME", false), ("N", true), ("LAST", false)]);
        t.row(vec![plain("a"), plain("100"), ("x".to_owned(), Paint::Red)]);
        t.row(vec![
            ("longer".to_owned(), Paint::Green),
            plain("7"),
            plain("yy"),
        ]);
        assert_eq!(
            t.render(false),
            "NAME      N  LAST\n\
             a       100  x\n\
             longer    7  yy\n"
        );
        let coloured = t.render(true);
        assert!(
            coloured.contains("\x1b[32mlonger\x1b[0m    7"),
            "{coloured:?}"
        );
        let stripped: String = coloured
            .split("\x1b[")
            .enumerate()
            .map(|(i, part)| {
                if i == 0 {
                    part
                } else {
                    part.split_once('m').map_or(part, |(_, rest)| rest)
                }
            })
            .collect();
        assert_eq!(stripped, t.render(false));
    }
}
