//! What operators look at, against what the functions really emit and log: the
//! dashboard (its body, resolved, is JSON; it shows only metrics the functions
//! emit, under the function that emits them), the alarms on the functions' own
//! metrics (CloudWatch Embedded Metric Format, namespace `EcsLifecycle`) and the
//! saved Logs Insights queries (they parse, and use only field names and values
//! the functions log, on the functions' log groups).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

use crate::cfn::{REGION, STACK, Stack, functions, root};
use crate::code::{METRIC_NAMES, METRIC_NAMESPACE};
use crate::{fleet, set};

// ---------------------------------------------------------------- what the functions emit and log

/// The functions' metrics and the functions that emit each (the contract of
/// crates/ecs-lifecycle's `report` module). The names must be
/// `ecs_lifecycle::report::METRIC_NAMES`, and each must be emitted from the
/// sources of the functions named here (both checked below).
const EMITTED_BY: &[(&str, &[&str])] = &[
    ("DrainSeconds", &["terminate-drain"]),
    ("CompletionLagSeconds", &["terminate-drain"]),
    ("TasksLeftAtCompletion", &["terminate-drain"]),
    ("DrainTimeouts", &["terminate-drain"]),
    ("DrainsRetained", &["terminate-drain"]),
    ("DrainsCompleted", &["terminate-drain"]),
    ("HandOffs", &["terminate-drain", "launch-verify"]),
    ("Heartbeats", &["terminate-drain", "launch-verify"]),
    ("EcsThrottles", &["terminate-drain", "launch-verify"]),
    ("RegistrationSeconds", &["launch-verify"]),
    ("Orphans", &["launch-verify"]),
    ("OrphansRefused", &["launch-verify"]),
    ("DiagnosticsRun", &["launch-verify"]),
    ("RolloutsStarted", &["ami-rollout"]),
    ("RolloutsCompleted", &["ami-rollout"]),
    ("RolloutsRolledBack", &["ami-rollout"]),
    ("RestoresFailed", &["ami-rollout"]),
    ("InstancesReplaced", &["ami-rollout"]),
];

/// The directories of crates/ecs-lifecycle/src whose code runs in each function
/// (`hook/` is the lifecycle-hook runtime both hook functions share).
const SOURCES_OF: &[(&str, &[&str])] = &[
    ("terminate-drain", &["drain", "hook"]),
    ("launch-verify", &["launch", "hook"]),
    ("ami-rollout", &["rollout"]),
];

/// The members of a log line's `fields` the functions log: the `message` and
/// the fields of the `tracing` events in crates/ecs-lifecycle/src (collected
/// from its `info!` / `warn!` / `error!` / `debug!` calls; each is checked to be
/// in the sources below). A query that names a field not here finds nothing.
const LOGGED_FIELDS: &[&str] = &[
    "message",
    "alarm",
    "asg",
    "attempt",
    "check",
    "cluster",
    "clusters_searched",
    "command_id",
    "container_instance",
    "count",
    "daemon",
    "decision",
    "desired",
    "detail",
    "diagnosis",
    "document",
    "ec2_state",
    "elapsed_s",
    "error",
    "error_type",
    "exit_code",
    "failures",
    "group",
    "heartbeat",
    "hook",
    "ignored",
    "instance_id",
    "instances_to_update",
    "kind",
    "latest_event",
    "launches",
    "left",
    "lifecycle_state",
    "log_group",
    "message_id",
    "mode",
    "next_attempt",
    "notification",
    "on_target",
    "opens",
    "orphan",
    "outcome",
    "pending",
    "percent",
    "percentage",
    "phase",
    "poll_ms",
    "problems",
    "reason",
    "refresh_id",
    "refresh_status",
    "result",
    "retry_in_ms",
    "retryable",
    "running",
    "seen",
    "service",
    "services",
    "signal",
    "since_launch_s",
    "sleep_ms",
    "ssm_status",
    "standalone",
    "standalone_stopped",
    "status",
    "step",
    "stuck",
    "tag",
    "target_ami",
    "task",
    "tasks_here",
    "tasks_left",
    "throttled",
    "time_left_ms",
    "timeout_ms",
    "topic",
    "total",
    "unsteady",
    "unsteady_since_ms",
    "value",
    "verdict",
    "version",
    "waited_s",
    "waiting_for",
    "was",
    "what",
    "why",
];

/// The members of a log line's `span`: the held action's span (`action_span!`
/// in hook/runtime.rs), ami-rollout's `rollout` and `group` spans, and the
/// span's `name`, which the JSON format adds.
const SPAN_FIELDS: &[&str] = &[
    "name",
    "asg",
    "hook",
    "instance_id",
    "attempt",
    "cluster",
    "container_instance",
    "intent",
    "clusters",
];

/// The values of `fields.decision` (drain/run.rs, launch/run.rs, rollout/run.rs).
const DECISIONS: &[&str] = &[
    // terminate-drain
    "set_draining",
    "stop_tasks",
    "wait",
    "hand_off",
    "complete",
    "stop",
    // launch-verify (and wait, hand_off, stop)
    "continue",
    "abandon",
    "terminate",
    "report",
    "diagnose",
    // ami-rollout (and wait)
    "rollback",
    "rollback_failed",
    "restore_failed",
    "refused_ami",
    "outside_window",
    "done",
    "not_blamed",
    "capacity_wait",
    "refused",
    "step",
];

/// The values of `fields.verdict` (launch/run.rs).
const VERDICTS: &[&str] = &["orphan", "registered", "warm_pool", "hop_limit"];

/// The fields of a log line outside `fields` and `span`, and Logs Insights' own.
const TOP_LEVEL_FIELDS: &[&str] = &["level", "@timestamp", "@message", "@log", "@logStream"];

/// The non-test sources of crates/ecs-lifecycle/src, by their first directory
/// (`lib.rs` and other top-level files under "").
fn sources() -> BTreeMap<String, String> {
    fn walk(dir: &Path, top: &str, out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_owned();
            if path.is_dir() {
                let top = if top.is_empty() { name.as_str() } else { top };
                walk(&path, top, out);
            } else if name.ends_with(".rs") && !name.ends_with("_tests.rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                out.entry(top.to_owned()).or_default().push_str(&text);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(&root().join("crates/ecs-lifecycle/src"), "", &mut out);
    out
}

fn emitters(metric: &str) -> BTreeSet<String> {
    let (_, by) = EMITTED_BY
        .iter()
        .find(|(m, _)| *m == metric)
        .unwrap_or_else(|| panic!("{metric} is not a metric the functions emit"));
    set(by.iter().copied())
}

/// The metrics, their emitters and the logged names above are the code's.
#[test]
fn the_metrics_and_log_fields_named_here_are_the_codes() {
    let named: BTreeSet<&str> = EMITTED_BY.iter().map(|(m, _)| *m).collect();
    assert_eq!(
        named.len(),
        EMITTED_BY.len(),
        "a metric twice in EMITTED_BY"
    );
    assert_eq!(
        named,
        METRIC_NAMES.iter().copied().collect(),
        "EMITTED_BY against ecs_lifecycle::report::METRIC_NAMES"
    );
    assert_eq!(METRIC_NAMESPACE, "EcsLifecycle");

    // Each metric is emitted (its name is a literal) in the sources of the
    // functions listed for it, and in no other function's.
    let sources = sources();
    let dirs_of = |binary: &str| -> BTreeSet<String> {
        let (_, dirs) = SOURCES_OF.iter().find(|(b, _)| *b == binary).unwrap();
        set(dirs.iter().copied())
    };
    for (metric, by) in EMITTED_BY {
        let literal = format!("\"{metric}\"");
        let found: BTreeSet<String> = sources
            .iter()
            .filter(|(dir, text)| !dir.is_empty() && *dir != "report" && text.contains(&literal))
            .map(|(dir, _)| dir.clone())
            .collect();
        for binary in *by {
            assert!(
                !found.is_disjoint(&dirs_of(binary)),
                "{metric}: not emitted in {binary}'s sources ({:?}); found in {found:?}",
                dirs_of(binary)
            );
        }
        // A function's own directory (not the shared hook/) names it.
        for (binary, dirs) in SOURCES_OF {
            for dir in dirs.iter().filter(|d| **d != "hook") {
                assert!(
                    !found.contains(*dir) || by.contains(binary),
                    "{metric} is emitted in {dir}/, by {binary}: add it to EMITTED_BY"
                );
            }
        }
        if found.contains("hook") {
            assert_eq!(
                emitters(metric),
                set(["terminate-drain", "launch-verify"]),
                "{metric} is emitted by the hook runtime, so by both hook functions"
            );
        }
    }

    // Every field, decision and verdict named here is in the sources.
    let all: String = sources.values().cloned().collect();
    let logged = |f: &str| {
        [format!("{f} ="), format!("%{f}"), format!("?{f}")]
            .iter()
            .any(|p| all.contains(p.as_str()))
            || all.lines().any(|l| l.trim() == format!("{f},"))
    };
    for f in LOGGED_FIELDS.iter().chain(SPAN_FIELDS) {
        if !["message", "name"].contains(f) {
            assert!(logged(f), "{f} is not a field the functions log");
        }
    }
    for v in DECISIONS.iter().chain(VERDICTS) {
        assert!(all.contains(&format!("\"{v}\"")), "{v} is never logged");
    }
}

// ---------------------------------------------------------------- Logs Insights queries

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Text(String),
    Number(String),
    Op(String),
    Punct(char),
}

/// One query (Logs Insights QL), read: its commands and what they name.
#[derive(Debug, Default)]
struct Query {
    /// Each `|`-separated command: its name and its tokens.
    commands: Vec<(String, Vec<Token>)>,
    /// `fields.X` and `span.X`, as written.
    fields: BTreeSet<String>,
    /// `field op value` comparisons.
    comparisons: Vec<(String, String, String)>,
}

impl Query {
    fn command(&self, name: &str) -> Vec<&Vec<Token>> {
        self.commands
            .iter()
            .filter(|(c, _)| c == name)
            .map(|(_, t)| t)
            .collect()
    }

    fn compares(&self, field: &str, op: &str, value: &str) -> bool {
        self.comparisons
            .iter()
            .any(|(f, o, v)| f == field && o == op && v == value)
    }
}

const COMMANDS: &[&str] = &[
    "SOURCE", "fields", "filter", "sort", "limit", "stats", "display", "dedup",
];
const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "not",
    "like",
    "in",
    "asc",
    "desc",
    "ispresent",
    "isempty",
    "by",
    "as",
    "count",
];

fn tokens(text: &str) -> Vec<Token> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '"' || c == '\'' {
            let mut s = String::new();
            i += 1;
            loop {
                assert!(i < chars.len(), "unclosed string in {text:?}");
                match chars[i] {
                    '\\' => {
                        s.push(chars[i + 1]);
                        i += 2;
                    }
                    q if q == c => {
                        i += 1;
                        break;
                    }
                    other => {
                        s.push(other);
                        i += 1;
                    }
                }
            }
            out.push(Token::Text(s));
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            out.push(Token::Number(chars[start..i].iter().collect()));
        } else if c.is_ascii_alphabetic() || c == '@' || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || "@_.".contains(chars[i]))
            {
                i += 1;
            }
            out.push(Token::Word(chars[start..i].iter().collect()));
        } else if "=!<>".contains(c) {
            let start = i;
            while i < chars.len() && "=!<>".contains(chars[i]) {
                i += 1;
            }
            let op: String = chars[start..i].iter().collect();
            assert!(
                ["=", "!=", "<", ">", "<=", ">="].contains(&op.as_str()),
                "operator {op} in {text:?}"
            );
            out.push(Token::Op(op));
        } else {
            assert!("(),|".contains(c), "{c:?} in {text:?}");
            out.push(Token::Punct(c));
            i += 1;
        }
    }
    out
}

/// Reads a query as Logs Insights would: `#` lines are comments, commands are
/// separated by `|`; every command is one it knows, strings are closed,
/// parentheses balanced; every field is a top-level one, or a member of
/// `fields` or `span` the functions log; a decision or verdict compared is one
/// they log.
fn parse_query(text: &str) -> Query {
    let code: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    let mut query = Query::default();
    let mut current: Vec<Token> = Vec::new();
    let mut all = tokens(&code);
    all.push(Token::Punct('|'));
    for t in all {
        if t != Token::Punct('|') {
            current.push(t);
            continue;
        }
        let command = match current.first() {
            Some(Token::Word(w)) if COMMANDS.contains(&w.as_str()) => w.clone(),
            other => panic!("{other:?} does not start a command in {text:?}"),
        };
        let depth = current.iter().try_fold(0i32, |d, t| {
            let d = match t {
                Token::Punct('(') => d + 1,
                Token::Punct(')') => d - 1,
                _ => d,
            };
            (d >= 0).then_some(d)
        });
        assert_eq!(depth, Some(0), "parentheses of {command} in {text:?}");
        query
            .commands
            .push((command, std::mem::take(&mut current)[1..].to_vec()));
    }
    assert!(!query.commands.is_empty(), "an empty query");
    for (i, (command, args)) in query.commands.iter().enumerate() {
        match command.as_str() {
            "SOURCE" => {
                assert!(
                    query.commands[..i].iter().all(|(c, _)| c == "SOURCE"),
                    "SOURCE comes first"
                );
                assert!(
                    matches!(args.as_slice(), [Token::Text(_)]),
                    "SOURCE 'group'"
                );
            }
            "limit" => {
                let [Token::Number(n)] = args.as_slice() else {
                    panic!("limit N in {text:?}")
                };
                let n: u32 = n.parse().unwrap();
                assert!((1..=10_000).contains(&n), "limit {n}");
            }
            "sort" => assert!(
                matches!(
                    args.as_slice(),
                    [Token::Word(_), Token::Word(order)] if order == "asc" || order == "desc"
                ),
                "sort FIELD asc|desc in {text:?}"
            ),
            _ => assert!(!args.is_empty(), "{command} without arguments"),
        }
    }
    for (_, args) in &query.commands {
        for (i, t) in args.iter().enumerate() {
            let Token::Word(w) = t else { continue };
            if let Some((scope, name)) = w.split_once('.') {
                let known = match scope {
                    "fields" => LOGGED_FIELDS,
                    "span" => SPAN_FIELDS,
                    other => panic!("{w}: {other} is neither fields nor span"),
                };
                assert!(
                    known.contains(&name),
                    "{w} is not logged by the functions (see LOGGED_FIELDS, SPAN_FIELDS)"
                );
                query.fields.insert(w.clone());
            } else {
                assert!(
                    TOP_LEVEL_FIELDS.contains(&w.as_str()) || KEYWORDS.contains(&w.as_str()),
                    "{w}: not a field of the log lines nor a keyword, in {text:?}"
                );
            }
            let op = match args.get(i + 1) {
                Some(Token::Op(op)) => op.clone(),
                Some(Token::Word(like)) if like == "like" => "like".to_owned(),
                _ => continue,
            };
            let value = match args.get(i + 2) {
                Some(Token::Text(v) | Token::Number(v)) => v.clone(),
                other => panic!("{w} {op} {other:?} in {text:?}"),
            };
            match w.as_str() {
                "fields.decision" => {
                    assert!(DECISIONS.contains(&value.as_str()), "no decision {value}")
                }
                "fields.verdict" => {
                    assert!(VERDICTS.contains(&value.as_str()), "no verdict {value}")
                }
                "level" => assert!(
                    ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].contains(&value.as_str()),
                    "level {value}"
                ),
                _ => {}
            }
            query.comparisons.push((w.clone(), op, value));
        }
    }
    query
}

/// `<LogicalId>` (a resolved Ref) -> LogicalId.
fn logical(reference: &str) -> &str {
    reference
        .strip_prefix('<')
        .and_then(|r| r.strip_suffix('>'))
        .unwrap_or_else(|| panic!("{reference} is not a reference to a resource of the stack"))
}

/// Each function's log group (its LoggingConfig's), by binary.
fn function_log_groups(stack: &Stack) -> BTreeMap<String, String> {
    functions(stack)
        .into_values()
        .map(|(binary, f)| {
            let group = f["Properties"]["LoggingConfig"]["LogGroup"]
                .as_str()
                .unwrap();
            (binary, logical(group).to_owned())
        })
        .collect()
}

/// A stack without ami-rollout, with the launch event instead of the hook.
fn without_rollout() -> Stack {
    Stack::new(&[
        ("ClusterName", "prod"),
        ("AutoScalingGroupNames", "web-asg"),
        ("LaunchTrigger", "LaunchEvent"),
    ])
}

#[test]
fn saved_queries_parse_and_use_only_what_the_functions_log() {
    for (stack, rollout) in [(fleet(), true), (without_rollout(), false)] {
        let resources = stack.resources();
        let groups = function_log_groups(&stack);
        let queries = stack.of_type("AWS::Logs::QueryDefinition");
        let mut expected = set([
            "SlowDrainsQuery",
            "InstanceDecisionsQuery",
            "OrphanDiagnosesQuery",
        ]);
        if rollout {
            expected.insert("RolloutHistoryQuery".into());
        }
        assert_eq!(queries.keys().cloned().collect::<BTreeSet<_>>(), expected);
        let mut parsed = BTreeMap::new();
        for (id, q) in &queries {
            let p = &q["Properties"];
            // In the console's folder of the stack.
            let name = p["Name"].as_str().unwrap();
            let folder = format!("ecs-lifecycle/{STACK}/");
            assert!(
                name.starts_with(&folder) && name.len() > folder.len() && name.len() <= 255,
                "{id}: {name}"
            );
            // The functions' log groups, created by the stack.
            let on: BTreeSet<String> = p["LogGroupNames"]
                .as_array()
                .unwrap_or_else(|| panic!("{id}: LogGroupNames"))
                .iter()
                .map(|g| logical(g.as_str().unwrap()).to_owned())
                .collect();
            assert!(!on.is_empty(), "{id}");
            for g in &on {
                assert_eq!(resources[g]["Type"], "AWS::Logs::LogGroup", "{id}: {g}");
                assert!(
                    groups.values().any(|f| f == g),
                    "{id}: {g} is no function's"
                );
            }
            assert!(p.get("QueryLanguage").is_none_or(|l| l == "CWLI"), "{id}");
            let query = parse_query(p["QueryString"].as_str().unwrap());
            parsed.insert(id.clone(), (on, query));
        }
        let group_of = |binary: &str| set([groups[binary].clone()]);

        // Drains slower than 10 minutes: the completion lines of terminate-drain.
        let (on, q) = &parsed["SlowDrainsQuery"];
        assert_eq!(on, &group_of("terminate-drain"));
        assert!(q.compares("fields.decision", "=", "complete"), "{q:?}");
        assert!(q.compares("fields.elapsed_s", ">", "600"), "{q:?}");
        assert!(q.fields.contains("span.instance_id"));

        // Every decision for one instance, in every function's log group.
        let (on, q) = &parsed["InstanceDecisionsQuery"];
        assert_eq!(on, &groups.values().cloned().collect::<BTreeSet<_>>());
        assert_eq!(on.contains("AmiRolloutLogGroup"), rollout);
        let placeholder = q
            .comparisons
            .iter()
            .find(|(f, op, _)| f == "span.instance_id" && op == "=")
            .map(|(_, _, v)| v.clone())
            .expect("filter span.instance_id = \"i-...\"");
        assert!(
            placeholder.len() == 19
                && placeholder.starts_with("i-")
                && placeholder[2..].chars().all(|c| c.is_ascii_hexdigit()),
            "{placeholder}: an instance id to edit"
        );
        assert!(q.fields.contains("fields.decision"));
        assert!(
            q.command("sort")
                .iter()
                .any(|s| s.first() == Some(&Token::Word("@timestamp".into()))
                    && s.last() == Some(&Token::Word("asc".into()))),
            "in order"
        );

        // Orphans with what the diagnostic found: launch-verify's orphan line.
        let (on, q) = &parsed["OrphanDiagnosesQuery"];
        assert_eq!(on, &group_of("launch-verify"));
        assert!(q.compares("fields.verdict", "=", "orphan"), "{q:?}");
        for f in [
            "fields.why",
            "fields.diagnosis",
            "fields.problems",
            "fields.ssm_status",
            "fields.exit_code",
            "span.instance_id",
        ] {
            assert!(q.fields.contains(f), "OrphanDiagnosesQuery shows {f}");
        }

        // The rollout history: ami-rollout's decisions.
        if rollout {
            let (on, q) = &parsed["RolloutHistoryQuery"];
            assert_eq!(on, &group_of("ami-rollout"));
            for f in ["fields.decision", "span.asg", "fields.target_ami"] {
                assert!(q.fields.contains(f), "RolloutHistoryQuery shows {f}");
            }
        }
    }
}

/// The query reader refuses what Logs Insights would not find.
#[test]
fn the_query_reader_refuses_unknown_fields_and_values() {
    let ok = parse_query("# c\nfilter fields.decision = \"complete\" | limit 5");
    assert!(ok.compares("fields.decision", "=", "complete"));
    for bad in [
        "filter fields.elapsed = 1",
        "filter span.instance = \"i-0\"",
        "filter fields.decision = \"completed\"",
        "filter fields.verdict = \"orphaned\"",
        "filter feilds.decision = \"complete\"",
        "fitler fields.decision = \"complete\"",
        "filter (fields.decision = \"complete\"",
        "filter fields.decision = \"complete",
        "sort fields.elapsed_s",
    ] {
        assert!(
            std::panic::catch_unwind(|| parse_query(bad)).is_err(),
            "accepted: {bad}"
        );
    }
}

// ---------------------------------------------------------------- the dashboard

/// A metric a dashboard widget shows.
#[derive(Debug)]
struct Shown {
    widget: String,
    namespace: String,
    metric: String,
    dimensions: Vec<(String, String)>,
    stat: String,
}

/// The dashboard's body, resolved and read as JSON.
fn dashboard(stack: &Stack) -> Value {
    let dashboards = stack.of_type("AWS::CloudWatch::Dashboard");
    assert_eq!(dashboards.len(), 1, "one dashboard");
    let (_, d) = dashboards.into_iter().next().unwrap();
    assert_eq!(
        d["Properties"]["DashboardName"],
        format!("{STACK}-{REGION}"),
        "dashboards are global to the account: one per stack and region"
    );
    let body = d["Properties"]["DashboardBody"].as_str().unwrap();
    serde_json::from_str(body).unwrap_or_else(|e| panic!("DashboardBody is not JSON: {e}\n{body}"))
}

/// The metrics of the body's metric widgets (a `"."` repeats the row above).
fn shown(body: &Value) -> Vec<Shown> {
    let mut out = Vec::new();
    for w in body["widgets"].as_array().unwrap() {
        if w["type"] != "metric" {
            continue;
        }
        let p = &w["properties"];
        let title = p["title"].as_str().unwrap().to_owned();
        let mut previous: Vec<String> = Vec::new();
        for row in p["metrics"].as_array().unwrap() {
            let row = row.as_array().unwrap();
            let (names, options) = match row.last() {
                Some(Value::Object(o)) => (&row[..row.len() - 1], Some(o)),
                _ => (&row[..], None),
            };
            let names: Vec<String> = names
                .iter()
                .enumerate()
                .map(|(i, n)| match n.as_str().unwrap() {
                    "." => previous[i].clone(),
                    n => n.to_owned(),
                })
                .collect();
            assert!(
                names.len() >= 2 && names.len().is_multiple_of(2),
                "{title}: [namespace, metric, dimension, value, ...]: {names:?}"
            );
            let stat = options
                .and_then(|o| o.get("stat"))
                .or(p.get("stat"))
                .and_then(Value::as_str)
                .unwrap_or("Average")
                .to_owned();
            out.push(Shown {
                widget: title.clone(),
                namespace: names[0].clone(),
                metric: names[1].clone(),
                dimensions: names[2..]
                    .chunks(2)
                    .map(|c| (c[0].clone(), c[1].clone()))
                    .collect(),
                stat,
            });
            previous = names;
        }
    }
    out
}

/// The dashboard is JSON with and without ami-rollout, every widget in the
/// grid; every metric it shows is one the functions emit, under a function of
/// the stack that emits it (or Lambda's own metrics of a function); its log
/// widget reads the functions' log groups with a query that parses.
#[test]
fn the_dashboard_is_json_and_shows_only_what_the_functions_emit() {
    for (stack, rollout) in [(fleet(), true), (without_rollout(), false)] {
        let body = dashboard(&stack);
        let fns = functions(&stack);
        let binary_of = |value: &str| -> String {
            let id = logical(value);
            fns.get(id)
                .unwrap_or_else(|| panic!("{id} is not a function of the stack"))
                .0
                .clone()
        };
        let widgets = body["widgets"].as_array().unwrap();
        assert!(widgets.len() > 5);
        let mut logs = Vec::new();
        for w in widgets {
            for k in ["x", "y", "width", "height"] {
                assert!(w[k].as_u64().is_some(), "{w}: {k}");
            }
            assert!(
                w["x"].as_u64().unwrap() + w["width"].as_u64().unwrap() <= 24,
                "{w}: the grid is 24 wide"
            );
            let p = &w["properties"];
            match w["type"].as_str().unwrap() {
                "text" => assert!(p["markdown"].as_str().is_some()),
                "metric" => {
                    assert_eq!(p["region"], REGION, "{w}");
                    assert!(p["title"].as_str().is_some_and(|t| !t.is_empty()));
                    assert!(!p["metrics"].as_array().unwrap().is_empty());
                }
                "log" => {
                    assert_eq!(p["region"], REGION, "{w}");
                    logs.push(p["query"].as_str().unwrap().to_owned());
                }
                other => panic!("widget type {other}"),
            }
        }

        let mut emf: BTreeSet<(String, String)> = BTreeSet::new();
        let mut lambda: BTreeSet<(String, String, String)> = BTreeSet::new();
        let mut stats: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for s in shown(&body) {
            let [(dimension, value)] = s.dimensions.as_slice() else {
                panic!("{}: {} by one dimension", s.widget, s.metric)
            };
            let binary = binary_of(value);
            match s.namespace.as_str() {
                ns if ns == METRIC_NAMESPACE => {
                    assert_eq!(dimension, "Function", "{}: {}", s.widget, s.metric);
                    assert!(
                        METRIC_NAMES.contains(&s.metric.as_str()),
                        "{}: {} is not a metric the functions emit",
                        s.widget,
                        s.metric
                    );
                    assert!(
                        emitters(&s.metric).contains(&binary),
                        "{}: {} is not emitted by {binary}",
                        s.widget,
                        s.metric
                    );
                    stats
                        .entry(s.metric.clone())
                        .or_default()
                        .insert(s.stat.clone());
                    emf.insert((s.metric, binary));
                }
                "AWS/Lambda" => {
                    assert_eq!(dimension, "FunctionName", "{}", s.widget);
                    lambda.insert((s.metric, s.stat, binary));
                }
                other => panic!("{}: namespace {other}", s.widget),
            }
        }

        // Every metric of every function of the stack, and only those.
        let binaries: BTreeSet<String> = fns.values().map(|(b, _)| b.clone()).collect();
        assert_eq!(binaries.contains("ami-rollout"), rollout);
        let want: BTreeSet<(String, String)> = EMITTED_BY
            .iter()
            .flat_map(|(m, by)| by.iter().map(move |b| (m.to_string(), b.to_string())))
            .filter(|(_, b)| binaries.contains(b))
            .collect();
        assert_eq!(emf, want, "the functions' metrics on the dashboard");
        for (metric, want) in [
            ("DrainSeconds", set(["Average", "p90", "Maximum"])),
            ("CompletionLagSeconds", set(["Average", "Maximum"])),
            ("DrainsCompleted", set(["Sum"])),
            ("DrainTimeouts", set(["Sum"])),
            ("Orphans", set(["Sum"])),
            ("OrphansRefused", set(["Sum"])),
            ("HandOffs", set(["Sum"])),
            ("EcsThrottles", set(["Sum"])),
        ] {
            assert_eq!(stats[metric], want, "{metric}");
        }
        assert!(stats["RegistrationSeconds"].contains("Average"));
        for b in &binaries {
            for (metric, stat) in [
                ("Errors", "Sum"),
                ("Throttles", "Sum"),
                ("Duration", "Average"),
                ("Duration", "Maximum"),
            ] {
                assert!(
                    lambda.contains(&(metric.into(), stat.into(), b.clone())),
                    "{b}: Lambda {metric} ({stat})"
                );
            }
        }

        // The latest ERROR lines of every function's log group.
        let [query] = logs.as_slice() else {
            panic!("one log widget: {logs:?}")
        };
        let q = parse_query(query);
        let sources: BTreeSet<String> = q
            .command("SOURCE")
            .iter()
            .map(|args| match args.as_slice() {
                [Token::Text(g)] => logical(g).to_owned(),
                other => panic!("SOURCE {other:?}"),
            })
            .collect();
        assert_eq!(
            sources,
            function_log_groups(&stack).into_values().collect(),
            "the log widget reads every function's log group"
        );
        assert!(q.compares("level", "=", "ERROR"), "{q:?}");
        assert!(
            q.command("sort")
                .iter()
                .any(|s| s.last() == Some(&Token::Word("desc".into()))),
            "latest first"
        );
    }
}

/// Every alarm on the functions' own metrics names a metric they emit, by the
/// `Function` dimension of a function of the stack that emits it; no alarm
/// watches a namespace nothing writes to.
#[test]
fn alarms_watch_only_metrics_that_are_emitted() {
    for stack in [
        fleet(),
        without_rollout(),
        Stack::new(&[("ClusterName", "prod"), ("AutoScalingGroupNames", "a,b,c")]),
    ] {
        let fns = functions(&stack);
        let mut watched = BTreeSet::new();
        for (id, a) in stack.of_type("AWS::CloudWatch::Alarm") {
            let p = &a["Properties"];
            let namespace = p["Namespace"].as_str().unwrap();
            let metric = p["MetricName"].as_str().unwrap();
            let dims = p["Dimensions"].as_array().unwrap();
            assert_eq!(dims.len(), 1, "{id}");
            let (name, value) = (
                dims[0]["Name"].as_str().unwrap(),
                dims[0]["Value"].as_str().unwrap(),
            );
            match namespace {
                "AWS/Lambda" | "AWS/SQS" => {}
                // A rule of the stack (its name).
                "AWS/Events" => {
                    assert_eq!(name, "RuleName", "{id}");
                    let rule = &stack.resources()[logical(value)];
                    assert_eq!(rule["Type"], "AWS::Events::Rule", "{id}");
                }
                ns if ns == METRIC_NAMESPACE => {
                    assert_eq!(name, "Function", "{id}");
                    let (binary, _) = fns
                        .get(logical(value))
                        .unwrap_or_else(|| panic!("{id}: {value} is not a function"));
                    assert!(
                        METRIC_NAMES.contains(&metric),
                        "{id}: {metric} is not emitted"
                    );
                    assert!(
                        emitters(metric).contains(binary),
                        "{id}: {binary} does not emit {metric}"
                    );
                    watched.insert((metric.to_owned(), binary.clone()));
                }
                other => panic!("{id}: namespace {other}: nothing writes to it"),
            }
        }
        assert!(!watched.is_empty());
    }
}
