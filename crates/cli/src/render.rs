//! Output: JSON, or aligned tables for people (coloured only on a terminal,
//! and never with NO_COLOR set).

use std::ffi::OsStr;
use std::fmt::Write as _;

use ecs_lifecycle::model::{InstanceStatus, RefreshStatus};
use serde::Serialize;

use crate::retained::{Release, RetainedReport};
use crate::rollout::{GroupRow, RefreshRow, RefusedAmi, RolloutReport, TemplateRow};
use crate::status::{
    Attention, HookRow, InstanceRow, OrphanRow, SlotRow, SlotWaitRow, StatusReport, WaitingRow,
};

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

/// A section: its title with the count of `rows`, then (when there are any)
/// what `body` makes of them.
fn section<T>(
    out: &mut String,
    title: &str,
    rows: &[T],
    color: bool,
    body: impl FnOnce(&[T]) -> String,
) {
    let heading = format!("{title} ({})", rows.len());
    let _ = writeln!(out, "\n{}", paint(&heading, Paint::Bold, color));
    if !rows.is_empty() {
        out.push_str(&body(rows));
    }
}

/// A table of `columns` with one row per item (`row` may give several).
fn table_of<T, R: IntoIterator<Item = Vec<(String, Paint)>>>(
    columns: &[(&'static str, bool)],
    items: &[T],
    row: impl Fn(&T) -> R,
    color: bool,
) -> String {
    let mut t = Table::new(columns);
    for cells in items.iter().flat_map(row) {
        t.row(cells);
    }
    t.render(color)
}

pub fn status_text(r: &StatusReport, now_ms: u64, color: bool) -> String {
    let mut out = status_heading(r);
    section(
        &mut out,
        "Container instances",
        &r.container_instances,
        color,
        |rows| table_of(INSTANCE_COLUMNS, rows, |i| [instance_row(i, now_ms)], color),
    );
    section(
        &mut out,
        "Waiting on a lifecycle hook",
        &r.waiting,
        color,
        |rows| table_of(WAITING_COLUMNS, rows, waiting_rows, color) + TIME_LEFT_NOTE,
    );
    section(
        &mut out,
        "Orphans: InService in a group, not registered in the cluster",
        &r.orphans,
        color,
        |rows| table_of(ORPHAN_COLUMNS, rows, |o| [orphan_row(o, now_ms)], color),
    );
    if let Some(b) = &r.drain_budget {
        section(
            &mut out,
            "Drain budget (MAX_CONCURRENT_DRAINS): holding a slot",
            &b.holding,
            color,
            |rows| table_of(SLOT_COLUMNS, rows, |h| [slot_row(h, now_ms)], color),
        );
        section(
            &mut out,
            "Drain budget: waiting for a slot, in the order they start",
            &b.waiting_for_slot,
            color,
            |rows| {
                table_of(
                    SLOT_WAIT_COLUMNS,
                    rows,
                    |w| [slot_wait_row(w, now_ms)],
                    color,
                )
            },
        );
    }
    attention_text(&mut out, &r.attention, color);
    out
}

const SLOT_COLUMNS: &[(&str, bool)] = &[("EC2 INSTANCE", false), ("SINCE", true), ("KIND", false)];

fn slot_row(h: &SlotRow, now_ms: u64) -> Vec<(String, Paint)> {
    vec![
        plain(&h.ec2_instance_id),
        plain(ago(h.since_ms, now_ms)),
        if h.urgent {
            ("urgent (bypassed the budget)".to_owned(), Paint::Yellow)
        } else {
            plain("budgeted")
        },
    ]
}

const SLOT_WAIT_COLUMNS: &[(&str, bool)] = &[
    ("#", true),
    ("EC2 INSTANCE", false),
    ("WAITING", true),
    ("ACTION STARTED", false),
];

fn slot_wait_row(w: &SlotWaitRow, now_ms: u64) -> Vec<(String, Paint)> {
    vec![
        plain(w.position.to_string()),
        (w.ec2_instance_id.clone(), Paint::Yellow),
        plain(ago(w.waiting_since_ms, now_ms)),
        plain(&w.action_started_at),
    ]
}

fn status_heading(r: &StatusReport) -> String {
    let groups = if r.groups.is_empty() {
        "none (no instance of the cluster is in a group; name some with --group)".to_owned()
    } else {
        r.groups.join(", ")
    };
    format!(
        "Cluster {} in {} at {}; groups: {groups}\n",
        r.cluster, r.region, r.generated_at
    )
}

const INSTANCE_COLUMNS: &[(&str, bool)] = &[
    ("EC2 INSTANCE", false),
    ("GROUP", false),
    ("LIFECYCLE", false),
    ("ECS", false),
    ("AGENT", false),
    ("RUNNING", true),
    ("PENDING", true),
    ("AMI", false),
    ("DRAINING SINCE", false),
];

fn instance_row(i: &InstanceRow, now_ms: u64) -> Vec<(String, Paint)> {
    vec![
        plain(&i.ec2_instance_id),
        or_dash(i.group.as_deref()),
        or_dash(i.lifecycle_state.as_ref().map(|s| s.as_str())),
        ecs_status_cell(&i.ecs_status),
        agent_cell(i.agent_connected),
        plain(i.running_tasks.to_string()),
        plain(i.pending_tasks.to_string()),
        or_dash(i.ami.as_deref()),
        plain(draining_since(i, now_ms)),
    ]
}

fn ecs_status_cell(status: &InstanceStatus) -> (String, Paint) {
    let p = match status {
        InstanceStatus::Active => Paint::Green,
        InstanceStatus::Draining => Paint::Yellow,
        _ => Paint::Red,
    };
    (status.to_string(), p)
}

fn agent_cell(connected: bool) -> (String, Paint) {
    if connected {
        plain("connected")
    } else {
        ("disconnected".to_owned(), Paint::Red)
    }
}

/// How long ago it began draining; `?` when DRAINING since a time not known.
fn draining_since(i: &InstanceRow, now_ms: u64) -> String {
    match (&i.ecs_status, i.draining_since_ms) {
        (_, Some(ms)) => ago(ms, now_ms),
        (InstanceStatus::Draining, None) => "?".to_owned(),
        _ => "-".to_owned(),
    }
}

const WAITING_COLUMNS: &[(&str, bool)] = &[
    ("EC2 INSTANCE", false),
    ("GROUP", false),
    ("STATE", false),
    ("IN CLUSTER", false),
    ("HOOK", false),
    ("DEFAULT", false),
    ("HEARTBEAT", true),
    ("TIME LEFT", true),
];

const TIME_LEFT_NOTE: &str = "TIME LEFT: until the hook's global timeout, from the start of the scaling activity (? when\n\
     there is none); the action ends sooner if it is completed or not heartbeated in HEARTBEAT.\n";

/// One row per hook of the waiting transition; one row of `?` when none is known.
fn waiting_rows(w: &WaitingRow) -> Vec<Vec<(String, Paint)>> {
    let head = [
        plain(&w.ec2_instance_id),
        plain(&w.group),
        (w.lifecycle_state.to_string(), Paint::Yellow),
        plain(if w.registered { "yes" } else { "no" }),
    ];
    let hooks: Vec<[(String, Paint); 4]> = if w.hooks.is_empty() {
        vec![[plain("?"), plain("-"), plain("-"), plain("?")]]
    } else {
        w.hooks.iter().map(hook_cells).collect()
    };
    hooks
        .into_iter()
        .map(|hook| head.iter().cloned().chain(hook).collect())
        .collect()
}

fn hook_cells(h: &HookRow) -> [(String, Paint); 4] {
    [
        plain(&h.name),
        plain(&h.default_result),
        plain(duration(h.heartbeat_timeout_s)),
        plain(h.time_left_s.map_or_else(|| "?".to_owned(), duration)),
    ]
}

const ORPHAN_COLUMNS: &[(&str, bool)] = &[
    ("EC2 INSTANCE", false),
    ("GROUP", false),
    ("EC2 STATE", false),
    ("AMI", false),
    ("LAUNCHED", false),
];

fn orphan_row(o: &OrphanRow, now_ms: u64) -> Vec<(String, Paint)> {
    vec![
        (o.ec2_instance_id.clone(), Paint::Red),
        plain(&o.group),
        or_dash(o.ec2_state.as_deref()),
        or_dash(o.ami.as_deref()),
        plain(
            o.launched_ms
                .map_or_else(|| "-".to_owned(), |ms| ago(ms, now_ms)),
        ),
    ]
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
    let mut out = format!(
        "Auto Scaling groups in {} at {}\n",
        r.region, r.generated_at
    );
    section(&mut out, "Instance refreshes", &r.groups, color, |rows| {
        table_of(REFRESH_COLUMNS, rows, |g| [refresh_row(g)], color)
    });
    attention_text(&mut out, &r.attention, color);
    out
}

const REFRESH_COLUMNS: &[(&str, bool)] = &[
    ("GROUP", false),
    ("REFRESH", false),
    ("STATUS", false),
    ("DONE", true),
    ("TARGET", false),
    ("CURRENT", false),
    ("REFUSED AMI", false),
];

fn refresh_row(g: &GroupRow) -> Vec<(String, Paint)> {
    let refresh = g.refresh.as_ref();
    vec![
        plain(&g.group),
        or_dash(refresh.map(|x| x.id.as_str())),
        refresh_status_cell(refresh),
        plain(
            refresh
                .and_then(|x| x.percentage)
                .map_or_else(|| "-".to_owned(), |p| format!("{p}%")),
        ),
        plain(
            g.target
                .as_ref()
                .map_or_else(|| "-".to_owned(), |x| ami_at_version(&x.template)),
        ),
        plain(
            g.launch_template
                .as_ref()
                .map_or_else(|| "-".to_owned(), ami_at_version),
        ),
        refused_cell(&g.refused_amis),
    ]
}

fn refresh_status_cell(refresh: Option<&RefreshRow>) -> (String, Paint) {
    let Some(r) = refresh else {
        return plain("-");
    };
    let p = match r.status {
        RefreshStatus::Successful => Paint::Green,
        RefreshStatus::Failed
        | RefreshStatus::RollbackFailed
        | RefreshStatus::RollbackSuccessful => Paint::Red,
        _ => Paint::Yellow,
    };
    (r.status.to_string(), p)
}

/// The refused AMIs, each with when it was refused if known.
fn refused_cell(refused: &[RefusedAmi]) -> (String, Paint) {
    if refused.is_empty() {
        return plain("-");
    }
    let amis: Vec<String> = refused
        .iter()
        .map(|x| match &x.refused_at {
            Some(at) => format!("{} ({at})", x.ami),
            None => x.ami.clone(),
        })
        .collect();
    (amis.join(", "), Paint::Red)
}

const RETAINED_COLUMNS: &[(&str, bool)] = &[
    ("EC2 INSTANCE", false),
    ("GROUP", false),
    ("LIFECYCLE", false),
];

/// `retained` as text: the retained instances, then the groups whose policy
/// would not retain one.
pub fn retained_text(r: &RetainedReport, color: bool) -> String {
    let groups = if r.groups.is_empty() {
        "none".to_owned()
    } else {
        r.groups.join(", ")
    };
    let mut out = format!("Groups in {} at {}: {groups}\n", r.region, r.generated_at);
    section(
        &mut out,
        "Retained instances",
        &r.instances,
        color,
        |rows| {
            table_of(
                RETAINED_COLUMNS,
                rows,
                |i| {
                    [vec![
                        plain(i.ec2_instance_id.clone()),
                        plain(i.group.clone()),
                        (i.lifecycle_state.to_string(), Paint::Yellow),
                    ]]
                },
                color,
            )
        },
    );
    if !r.instances.is_empty() {
        out.push_str(
            "\nEach keeps running and billing, out of desired capacity: look at it (terminate-drain's WARN `reason=retained` says what still ran and why), then `ecs-lifecycle release <instance> --apply`.\n",
        );
    }
    if !r.groups_without_retention.is_empty() {
        let _ = writeln!(
            out,
            "\nGroups whose instance lifecycle policy does not retain an abandoned termination (TerminateHookAbandon is not retain): {}",
            r.groups_without_retention.join(", ")
        );
    }
    out
}

/// `release` as text: what was done, or what `--apply` would do.
pub fn release_text(r: &Release) -> String {
    format!(
        "{} ({} in group {}): {}\n",
        r.ec2_instance_id, r.lifecycle_state, r.group, r.action
    )
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
