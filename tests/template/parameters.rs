//! The parameters: bad values refused at deploy where CloudFormation can
//! express it (AllowedPattern, AllowedValues, MinValue / MaxValue, Rules), and
//! by the function's configuration at cold start, naming the variable, where
//! it cannot; the log level never silences the metric lines; docs/deploying.md
//! documents every parameter with the template's default.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::cfn::{Stack, functions, read, template};
use crate::code::{config_refuses, log_level};
use crate::rollout_stack;

/// What happens to a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Deployed, and the functions' configuration accepts it.
    Good,
    /// Refused by the template (pattern, allowed values, bounds, Rules).
    Template,
    /// The template cannot express it: the function that reads it refuses it
    /// at cold start with an error naming this variable.
    Code(&'static str),
}
use Verdict::{Code, Good, Template};

/// Whether CloudFormation accepts `value` for `name`: the parameter's
/// constraints (AllowedPattern against the whole value, as CloudFormation
/// matches it), then the template's Rules.
fn template_accepts(name: &str, value: &str) -> bool {
    let t = template();
    let p = &t["Parameters"][name];
    assert!(!p.is_null(), "no parameter {name}");
    if let Some(allowed) = p.get("AllowedValues") {
        let allowed: Vec<String> = allowed
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .collect();
        if !allowed.iter().any(|a| a == value) {
            return false;
        }
    }
    if let Some(pattern) = p.get("AllowedPattern").and_then(Value::as_str) {
        let re = regex_lite::Regex::new(&format!("^(?:{pattern})$"))
            .unwrap_or_else(|e| panic!("{name}: AllowedPattern does not compile: {e}"));
        // A list parameter's pattern is matched against each item.
        let list = p["Type"] == "CommaDelimitedList";
        let items: Vec<&str> = if list {
            value.split(',').collect()
        } else {
            vec![value]
        };
        if !items.iter().all(|item| re.is_match(item)) {
            return false;
        }
    }
    if p["Type"] == "Number" {
        let Ok(n) = value.parse::<f64>() else {
            return false;
        };
        if p.get("MinValue").is_some_and(|m| n < m.as_f64().unwrap())
            || p.get("MaxValue").is_some_and(|m| n > m.as_f64().unwrap())
        {
            return false;
        }
    }
    Stack::try_new(&with_rollout(name, value)).is_ok()
}

/// ami-rollout installed (so that every function exists), and the value.
fn with_rollout<'a>(name: &'a str, value: &'a str) -> Vec<(&'a str, &'a str)> {
    let mut params = crate::ROLLOUT_PARAMS.to_vec();
    params.push((name, value));
    params
}

/// The numeric parameters the functions read: the variable, and the code's
/// bounds, which the template's MinValue / MaxValue must be.
const NUMBERS: &[(&str, &str, u64, u64)] = &[
    ("DrainPollIntervalSeconds", "POLL_INTERVAL_SECONDS", 1, 300),
    ("PollIntervalSeconds", "POLL_INTERVAL_SECONDS", 1, 300),
    ("MaxDrainSeconds", "MAX_DRAIN_SECONDS", 1, 172_800),
    (
        "AgentDisconnectedGraceSeconds",
        "AGENT_DISCONNECTED_GRACE_SECONDS",
        60,
        172_800,
    ),
    (
        "RegistrationTimeoutSeconds",
        "REGISTRATION_TIMEOUT_SECONDS",
        30,
        7200,
    ),
    (
        "DiagnosticTimeoutSeconds",
        "DIAGNOSTIC_TIMEOUT_SECONDS",
        30,
        900,
    ),
    (
        "StabilityTimeoutSeconds",
        "STABILITY_TIMEOUT_SECONDS",
        60,
        86_400,
    ),
    ("RolloutBatchSize", "ROLLOUT_BATCH_SIZE", 1, 100),
    (
        "RolloutPollIntervalSeconds",
        "POLL_INTERVAL_SECONDS",
        1,
        300,
    ),
    (
        "RolloutCheckpointDelaySeconds",
        "ROLLOUT_CHECKPOINT_DELAY_SECONDS",
        0,
        172_800,
    ),
];

/// Good and bad values of the parameters whose values the code (or
/// EventBridge, or Auto Scaling) checks.
fn table() -> Vec<(&'static str, String, Verdict)> {
    let eleven_alarms = "a,b,c,d,e,f,g,h,i,j,k";
    let ten_alarms = "a,b,c,d,e,f,g,h,i,j";
    let rows: Vec<(&str, &str, Verdict)> = vec![
        // WAIT_MODE: the code's two values, as the template spells them.
        ("WaitMode", "queue", Good),
        ("WaitMode", "in-invocation", Good),
        ("WaitMode", "sqs", Template),
        ("WaitMode", "Queue", Template),
        // The event source mapping's maximum concurrency: 2..1000.
        ("WaitConcurrency", "2", Good),
        ("WaitConcurrency", "1000", Good),
        ("WaitConcurrency", "1", Template),
        ("WaitConcurrency", "1001", Template),
        // DRAIN_TIMEOUT_ACTION: the code's two values, as the template spells them.
        ("DrainTimeoutAction", "continue", Good),
        ("DrainTimeoutAction", "retain", Good),
        ("DrainTimeoutAction", "abandon", Template),
        ("DrainTimeoutAction", "Retain", Template),
        ("DrainTimeoutAction", "", Template),
        // MAX_CONCURRENT_DRAINS: 0, a count, or a percentage (drain/budget.rs);
        // not 0 brings the table (DRAIN_SLOTS_TABLE) the code then requires.
        ("MaxConcurrentDrains", "0", Good),
        ("MaxConcurrentDrains", "2", Good),
        ("MaxConcurrentDrains", "25%", Good),
        ("MaxConcurrentDrains", "100%", Good),
        ("MaxConcurrentDrains", "0%", Template),
        ("MaxConcurrentDrains", "101%", Template),
        ("MaxConcurrentDrains", "02", Template),
        ("MaxConcurrentDrains", "-1", Template),
        ("MaxConcurrentDrains", "2.5", Template),
        ("MaxConcurrentDrains", "", Template),
        // ROLLOUT_WINDOW: ami-rollout's grammar (rollout/window.rs).
        ("RolloutWindow", "always", Good),
        ("RolloutWindow", "Sat 02:00-06:00", Good),
        (
            "RolloutWindow",
            "Mon-Fri 22:00-02:00; Sun 03:00-05:00",
            Good,
        ),
        ("RolloutWindow", "Mon-Fri 22:00-02:00;Sun 03:00-05:00", Good),
        ("RolloutWindow", "sat,SUN 00:00-24:00", Good),
        ("RolloutWindow", "daily 03:00-04:00", Good),
        ("RolloutWindow", "Fri-Mon 00:00-01:00", Good),
        ("RolloutWindow", "Mon,Wed-Fri 23:30-00:30", Good),
        ("RolloutWindow", "Xyz 25:00-99:99", Template),
        ("RolloutWindow", "Saturday 02:00-06:00", Template),
        ("RolloutWindow", "Sat 2:00-6:00", Template),
        ("RolloutWindow", "Sat 02:00-25:00", Template),
        ("RolloutWindow", "Sat 02:60-03:00", Template),
        ("RolloutWindow", "Sat 24:00-02:00", Template),
        ("RolloutWindow", "Sat 02:00", Template),
        ("RolloutWindow", "Sat 02:00-06:00;", Template),
        ("RolloutWindow", "Sat", Template),
        ("RolloutWindow", "daily,Sat 01:00-02:00", Template),
        ("RolloutWindow", "Mon-Funday 02:00-06:00", Template),
        ("RolloutWindow", "", Template),
        // An empty range: a regular pattern cannot compare the two times.
        ("RolloutWindow", "Sat 02:00-02:00", Code("ROLLOUT_WINDOW")),
        // ROLLOUT_CHECKPOINT_PERCENTAGES: ascending, 1..100, the last 100.
        ("RolloutCheckpointPercentages", "none", Good),
        ("RolloutCheckpointPercentages", "100", Good),
        ("RolloutCheckpointPercentages", "20,50,100", Good),
        ("RolloutCheckpointPercentages", "1,99,100", Good),
        ("RolloutCheckpointPercentages", "20,50", Template),
        ("RolloutCheckpointPercentages", "0,100", Template),
        ("RolloutCheckpointPercentages", "20,50,101", Template),
        ("RolloutCheckpointPercentages", "100,100", Template),
        ("RolloutCheckpointPercentages", "20, 50,100", Template),
        ("RolloutCheckpointPercentages", "", Template),
        // Ascending order: not a regular pattern of reasonable size.
        (
            "RolloutCheckpointPercentages",
            "50,20,100",
            Code("ROLLOUT_CHECKPOINT_PERCENTAGES"),
        ),
        (
            "RolloutCheckpointPercentages",
            "20,20,100",
            Code("ROLLOUT_CHECKPOINT_PERCENTAGES"),
        ),
        // EventBridge's schedule expressions: a bad one rolls the stack back.
        ("AmiCheckSchedule", "rate(1 day)", Good),
        ("AmiCheckSchedule", "rate(1 minute)", Good),
        ("AmiCheckSchedule", "rate(1 hour)", Good),
        ("AmiCheckSchedule", "rate(5 minutes)", Good),
        ("AmiCheckSchedule", "rate(12 hours)", Good),
        ("AmiCheckSchedule", "rate(10 days)", Good),
        ("AmiCheckSchedule", "cron(0 3 ? * MON-FRI *)", Good),
        ("AmiCheckSchedule", "cron(0/15 * * * ? *)", Good),
        ("AmiCheckSchedule", "cron(0 2 1 * ? *)", Good),
        ("AmiCheckSchedule", "cron(30 4 ? * 7#1 *)", Good),
        ("AmiCheckSchedule", "cron(0 0 L * ? 2027)", Good),
        (
            "AmiCheckSchedule",
            "cron(15 10 ? JAN,JUL 6L 2026-2030)",
            Good,
        ),
        ("AmiCheckSchedule", "cron(0 8 15W * ? *)", Good),
        ("AmiCheckSchedule", "cron(0 8 ? * L *)", Good),
        ("AmiCheckSchedule", "rate(1 minutes)", Template),
        ("AmiCheckSchedule", "rate(2 minute)", Template),
        ("AmiCheckSchedule", "rate(0 days)", Template),
        ("AmiCheckSchedule", "rate(01 days)", Template),
        ("AmiCheckSchedule", "rate(1 week)", Template),
        ("AmiCheckSchedule", "rate(5  minutes)", Template),
        ("AmiCheckSchedule", "cron(0 3 * * *)", Template),
        ("AmiCheckSchedule", "cron(0 3 * * * *)", Template),
        ("AmiCheckSchedule", "cron(0 3 ? * ? *)", Template),
        ("AmiCheckSchedule", "cron(60 3 ? * MON *)", Template),
        ("AmiCheckSchedule", "cron(0 24 ? * MON *)", Template),
        ("AmiCheckSchedule", "cron(0 3 32 * ? *)", Template),
        ("AmiCheckSchedule", "cron(0 3 ? * 8 *)", Template),
        ("AmiCheckSchedule", "daily", Template),
        // One Lambda async retry waits 1 to 2 minutes.
        ("HeartbeatTimeout", "120", Good),
        ("HeartbeatTimeout", "300", Good),
        ("HeartbeatTimeout", "7200", Good),
        ("HeartbeatTimeout", "30", Template),
        ("HeartbeatTimeout", "119", Template),
        ("HeartbeatTimeout", "7201", Template),
        // ROLLOUT_ALARM_NAMES: up to 10 names of 1 to 255 characters.
        ("RolloutAlarmNames", "none", Good),
        ("RolloutAlarmNames", "p99-latency,5xx rate", Good),
        ("RolloutAlarmNames", ten_alarms, Good),
        ("RolloutAlarmNames", eleven_alarms, Template),
        ("RolloutAlarmNames", "a,,b", Template),
        ("RolloutAlarmNames", "a\tb", Template),
        ("RolloutAlarmNames", "", Template),
        // Blank once trimmed: the pattern does not trim.
        ("RolloutAlarmNames", "a, ,b", Code("ROLLOUT_ALARM_NAMES")),
        // ALLOWED_AMI_OWNERS: 12-digit account ids.
        ("AllowedAmiOwners", "none", Good),
        ("AllowedAmiOwners", "111122223333,444455556666", Good),
        ("AllowedAmiOwners", "amazon", Template),
        ("AllowedAmiOwners", "1111222233334", Template),
        ("AllowedAmiOwners", "111122223333, 444455556666", Template),
        // CLUSTER_NAME: a name (the IAM scope is built from it).
        ("ClusterName", "prod", Good),
        ("ClusterName", "my_cluster-1", Good),
        ("ClusterName", "bad name", Template),
        ("ClusterName", "prod,dev", Template),
        ("ClusterName", "", Template),
        // AUTO_SCALING_GROUP_NAMES: any number of names (each checked).
        ("AutoScalingGroupNames", "web-asg", Good),
        ("AutoScalingGroupNames", "a,b,c,d,e", Good),
        ("AutoScalingGroupNames", "a,b,c,d,e,f", Good),
        ("AutoScalingGroupNames", crate::TWELVE_GROUPS, Good),
        ("AutoScalingGroupNames", "a, b", Template),
        ("AutoScalingGroupNames", "a,,b", Template),
        ("AutoScalingGroupNames", "web-*", Template),
        ("AutoScalingGroupNames", "", Template),
        // The roles' permissions boundary: empty, or a managed policy's ARN.
        ("PermissionsBoundaryArn", "", Good),
        (
            "PermissionsBoundaryArn",
            "arn:aws:iam::123456789012:policy/org/boundary",
            Good,
        ),
        (
            "PermissionsBoundaryArn",
            "arn:aws-us-gov:iam::123456789012:policy/boundary",
            Good,
        ),
        (
            "PermissionsBoundaryArn",
            "arn:aws:iam::aws:policy/PowerUserAccess",
            Good,
        ),
        ("PermissionsBoundaryArn", "boundary", Template),
        (
            "PermissionsBoundaryArn",
            "arn:aws:iam::123456789012:role/boundary",
            Template,
        ),
        (
            "PermissionsBoundaryArn",
            "arn:aws:iam::12345:policy/boundary",
            Template,
        ),
        // AMI_PARAMETER_NAME
        ("AmiParameterName", "/my/ami", Good),
        ("AmiParameterName", "ami-latest", Good),
        ("AmiParameterName", "/a b", Template),
        ("AmiParameterName", "", Template),
        // NOTIFICATION_TOPIC_ARN: empty, or a standard topic.
        ("NotificationTopicArn", "", Good),
        (
            "NotificationTopicArn",
            "arn:aws:sns:us-east-1:123456789012:ops",
            Good,
        ),
        (
            "NotificationTopicArn",
            "arn:aws:sqs:us-east-1:123456789012:q",
            Template,
        ),
        (
            "NotificationTopicArn",
            "arn:aws:sns:us-east-1:123456789012:ops.fifo",
            Template,
        ),
        // LOG_LEVEL
        ("LogLevel", "TRACE", Good),
        ("LogLevel", "WARN", Good),
        ("LogLevel", "ERROR", Good),
        ("LogLevel", "FATAL", Template),
        ("LogLevel", "warning", Template),
        // The template's Rules: ami-rollout needs the instances' role.
        ("InstanceRoleName", "ecsInstanceRole", Good),
        ("InstanceRoleName", "", Template),
        ("InstanceRoleName", "bad role!", Template),
    ];
    let mut out: Vec<(&'static str, String, Verdict)> = rows
        .into_iter()
        .map(|(p, v, verdict)| (p, v.to_owned(), verdict))
        .collect();
    // Numbers: the code's bounds are the template's; CloudFormation's Number
    // takes decimals, which the code refuses.
    for &(param, var, min, max) in NUMBERS {
        out.push((param, min.to_string(), Good));
        out.push((param, max.to_string(), Good));
        if min > 0 {
            out.push((param, (min - 1).to_string(), Template));
        }
        out.push((param, (max + 1).to_string(), Template));
        out.push((param, "ten".into(), Template));
        out.push((param, format!("{min}.5"), Code(var)));
    }
    out
}

/// An environment as Lambda gets it: the stack's own resources by what their
/// `Ref` returns (the resolver leaves `<Logical>`).
fn deployed(env: &Value) -> Value {
    let mut env = env.clone();
    for (k, v) in env.as_object_mut().unwrap() {
        let real = match v.as_str().unwrap() {
            "<LifecycleTopic>" => {
                "arn:aws:sns:us-east-1:123456789012:ecs-lifecycle-LifecycleTopic-1A2B"
            }
            "<OrphanDiagnosticDocument>" => "ecs-lifecycle-OrphanDiagnosticDocument-1A2B",
            "<DiagnosticsLogGroup>" => "/ecs-lifecycle/ecs-lifecycle/diagnostics",
            "<DrainSlotsTable>" => "ecs-lifecycle-DrainSlotsTable-1A2B",
            s if s.starts_with('<') => panic!("{k}: what does {s} resolve to?"),
            _ => continue,
        };
        *v = Value::String(real.to_owned());
    }
    env
}

#[test]
fn bad_values_are_refused_at_deploy_or_named_at_cold_start() {
    let mut failures = Vec::new();
    for (param, value, verdict) in table() {
        let accepted = template_accepts(param, &value);
        let want_accepted = verdict != Template;
        if accepted != want_accepted {
            failures.push(format!(
                "{param}={value:?}: the template {} it",
                if accepted { "accepts" } else { "refuses" }
            ));
            continue;
        }
        if !accepted {
            continue;
        }
        // Deployed: what each function's configuration says of its environment.
        let stack = Stack::new(&with_rollout(param, &value));
        let said: BTreeMap<String, Result<(), &str>> = functions(&stack)
            .into_values()
            .map(|(binary, f)| {
                let env = deployed(&f["Properties"]["Environment"]["Variables"]);
                let r = config_refuses(&binary, &env);
                (binary, r)
            })
            .collect();
        match verdict {
            Good => {
                for (binary, r) in &said {
                    if let Err(var) = r {
                        failures.push(format!("{param}={value:?}: {binary} refuses {var}"));
                    }
                }
            }
            Code(var) => {
                let refusing: Vec<&String> = said
                    .iter()
                    .filter(|(_, r)| **r == Err(var))
                    .map(|(b, _)| b)
                    .collect();
                let wrong: Vec<_> = said
                    .iter()
                    .filter(|(_, r)| matches!(r, Err(v) if *v != var))
                    .collect();
                if refusing.is_empty() || !wrong.is_empty() {
                    failures.push(format!(
                        "{param}={value:?}: no function refuses {var} ({said:?})"
                    ));
                }
            }
            Template => unreachable!(),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The numeric parameters' MinValue / MaxValue are the code's bounds, and the
/// table covers every parameter that a function reads (or that configures
/// what checks a value: the schedule, the hooks' timeout).
#[test]
fn the_table_covers_the_checked_parameters() {
    let t = template();
    for &(param, _, min, max) in NUMBERS {
        let p = &t["Parameters"][param];
        assert_eq!(p["MinValue"].as_u64(), Some(min), "{param}");
        assert_eq!(p["MaxValue"].as_u64(), Some(max), "{param}");
    }
    let covered: std::collections::BTreeSet<&str> = table().iter().map(|(p, _, _)| *p).collect();
    for (name, p) in t["Parameters"].as_object().unwrap() {
        let constrained = p.get("AllowedPattern").is_some() || p.get("MinValue").is_some();
        if constrained && name != "AlarmTopicArn" {
            assert!(
                covered.contains(name.as_str()),
                "{name}: no row in the table"
            );
        }
    }
}

/// Whatever `LogLevel` is, Lambda's own filter drops no line without a level
/// (it gives such a line INFO and drops it at WARN or ERROR: the EMF metric
/// lines carry none), and the functions filter their own lines at that level.
#[test]
fn no_log_level_silences_the_metric_lines() {
    let t = template();
    let levels: Vec<String> = t["Parameters"]["LogLevel"]["AllowedValues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert!(levels.contains(&"ERROR".to_owned()));
    for level in &levels {
        let stack = rollout_stack(&[("LogLevel", level)]);
        let fns = functions(&stack);
        assert_eq!(fns.len(), 3);
        for (id, (_, f)) in fns {
            let logging = &f["Properties"]["LoggingConfig"];
            assert_eq!(logging["LogFormat"], "JSON", "{id}");
            // A line without a level is INFO to Lambda: only a filter above
            // INFO drops it. Absent is no filter.
            let filter = logging.get("ApplicationLogLevel").and_then(Value::as_str);
            assert!(
                matches!(filter, None | Some("TRACE" | "DEBUG" | "INFO")),
                "{id} with LogLevel={level}: ApplicationLogLevel {filter:?} drops the metric lines"
            );
            let env = &f["Properties"]["Environment"]["Variables"];
            assert_eq!(env["LOG_LEVEL"], level.as_str(), "{id}");
            assert_eq!(&log_level(env), level, "{id}");
        }
    }
}

/// docs/deploying.md's parameter table: every parameter of the template, each
/// with the template's default ("(required)": none; "empty": '').
#[test]
fn the_deploying_guide_documents_every_parameter_with_its_default() {
    let t = template();
    let params = t["Parameters"].as_object().unwrap();
    let doc = read("docs/deploying.md");
    let section = doc
        .split("\n## Parameters\n")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("a Parameters section");
    let mut documented = BTreeMap::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split(" | ").collect();
        let name = cells[0].trim_start_matches("| ").trim_matches('`');
        let default = cells[1].trim();
        assert!(
            documented
                .insert(name.to_owned(), default.to_owned())
                .is_none(),
            "{name} twice"
        );
    }
    let mut failures = Vec::new();
    for (name, p) in params {
        let Some(doc_default) = documented.remove(name) else {
            failures.push(format!("{name}: not in docs/deploying.md's table"));
            continue;
        };
        let want = match p.get("Default") {
            None => "(required)".to_owned(),
            Some(Value::String(s)) if s.is_empty() => "empty".to_owned(),
            Some(Value::String(s)) => format!("`{s}`"),
            Some(other) => format!("`{other}`"),
        };
        if doc_default != want {
            failures.push(format!(
                "{name}: the docs say {doc_default}, the template {want}"
            ));
        }
    }
    for name in documented.keys() {
        failures.push(format!("{name}: documented, not a parameter"));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
