//! Configuration from the environment, read and validated once at cold start.
//!
//! The variable names are a contract with the SAM template. A bad value stops the
//! function at start-up with a message that names the variable, the value and what
//! was expected, instead of failing on every event.

use std::time::Duration;

use tracing::level_filters::LevelFilter;

use crate::drain::budget::DrainBudget;
use crate::error::ConfigError;
use crate::model::Cluster;
use crate::rollout::window::Window;

#[path = "config_env.rs"]
mod env;
pub use env::Env;

/// Where to look for the container instance of an EC2 instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterScope {
    /// Every cluster of the account and region (ListClusters, paginated).
    All,
    /// Only these clusters (names or ARNs), in this order.
    Named(Vec<Cluster>),
}

/// What to do with standalone tasks (started by RunTask/StartTask, not by a service):
/// ECS never moves or stops them when an instance drains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StandalonePolicy {
    /// Stop them as soon as the drain starts (they get their stopTimeout to exit).
    Stop,
    /// Wait for them to finish on their own, up to MAX_DRAIN_SECONDS. The default:
    /// a standalone task is usually a batch job or migration whose work is lost
    /// if it is killed, and the wait is bounded anyway.
    Wait,
    /// Do not wait for them: they end with the instance.
    Ignore,
}

/// What a drain does when `MAX_DRAIN_SECONDS` (capped by the hook's global
/// timeout) runs out with tasks still on the instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DrainTimeoutAction {
    /// Complete the action with CONTINUE: the instance is terminated with the
    /// tasks left on it (today's behaviour, the default).
    #[default]
    Continue,
    /// Complete the action with ABANDON and stop nothing more: with the group's
    /// instance lifecycle policy `TerminateHookAbandon: retain` the instance
    /// moves to `Terminating:Retained` and keeps running, out of desired
    /// capacity, until an operator releases it (`ecs-lifecycle release`).
    Retain,
}

impl DrainTimeoutAction {
    pub fn as_str(self) -> &'static str {
        match self {
            DrainTimeoutAction::Continue => "continue",
            DrainTimeoutAction::Retain => "retain",
        }
    }
}

/// Settings every lifecycle function shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommonConfig {
    /// `CLUSTER_NAME`: comma-separated cluster names or ARNs; empty or unset = all.
    pub clusters: ClusterScope,
    /// `POLL_INTERVAL_SECONDS` (1..=300, default 10).
    pub poll_interval: Duration,
    /// `CONTINUATION_TOPIC_ARN`: SNS topic the function re-publishes to when it runs
    /// out of invocation time; unset = the topic the event arrived on.
    pub continuation_topic: Option<String>,
    /// `DRY_RUN`: decide and log, change nothing.
    pub dry_run: bool,
    /// `NOTIFICATION_TOPIC_ARN`: SNS topic for operator notifications; unset = none.
    pub notification_topic: Option<String>,
    /// `LOG_LEVEL` = `TRACE` | `DEBUG` | `INFO` | `WARN` | `ERROR` (default
    /// `INFO`): the lowest level of the log lines the function writes. The
    /// function filters its own lines (the subscriber of
    /// `hook::serve::init_logging`), not Lambda: Lambda's log-level filter would
    /// also drop the metric lines, which carry no level.
    pub log_level: LevelFilter,
    /// `WAIT_MODE` = `in-invocation` | `queue` (default `in-invocation`; the
    /// template's default is `queue`): where a hook function waits between two
    /// looks at a piece of work. See [`WaitMode`].
    pub wait_mode: WaitMode,
}

/// Where a hook function waits between two looks at a piece of work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WaitMode {
    /// One invocation holds the work, sleeping between looks, and hands it over
    /// (SNS) only before the function's timeout.
    #[default]
    InInvocation,
    /// No invocation waits: it looks (a few quick looks within
    /// [`crate::hook::runtime::QUICK_LOOKS_MS`] at most), heartbeats if due,
    /// acts, and hands the work over at once; the continuation comes back
    /// through an SQS queue whose delivery delay is the pace (the template's
    /// queue, `DelaySeconds` = POLL_INTERVAL_SECONDS).
    Queue,
}

/// Settings of terminate-drain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrainConfig {
    pub common: CommonConfig,
    /// `MAX_DRAIN_SECONDS` (1..=172800, default 1800): after this the action is
    /// completed even with tasks left (they are logged). Also capped by the hook's
    /// global timeout.
    pub max_drain: Duration,
    /// `AGENT_DISCONNECTED_GRACE_SECONDS` (60..=172800, default 300): a DRAINING
    /// instance whose ECS agent stays disconnected this long can report no task
    /// as stopped; the action is completed CONTINUE with a WARN instead of being
    /// held until `MAX_DRAIN_SECONDS`.
    pub agent_disconnected_grace: Duration,
    /// `DRAIN_TIMEOUT_ACTION` = `continue` | `retain` (default `continue`):
    /// what happens when `max_drain` runs out with tasks still on the instance.
    pub timeout_action: DrainTimeoutAction,
    /// `STANDALONE_TASKS` = `stop` | `wait` | `ignore` (default `wait`).
    pub standalone: StandalonePolicy,
    /// `SERVICE_STABILITY_CHECK` (default false): once the instance is empty, also
    /// wait until every service that had tasks on it runs its desired count again.
    pub service_stability: bool,
    /// `SPOT_INTERRUPTION_ACTION` = `drain` | `ignore` (default `drain`).
    pub spot_interruption: SignalAction,
    /// `REBALANCE_ACTION` = `ignore` | `drain` (default `ignore`: Capacity
    /// Rebalancing, where enabled, replaces the instance through the terminate hook).
    pub rebalance: SignalAction,
    /// `SCHEDULED_EVENT_ACTION` = `replace` | `drain` | `ignore` (default `replace`).
    pub scheduled_event: SignalAction,
    /// `MAX_CONCURRENT_DRAINS` = `0` (no limit, the default) | a count | a
    /// percentage (`25%`) of the cluster's container instances: how many
    /// drains of one cluster run at once (`crate::drain::budget`).
    pub max_concurrent_drains: DrainBudget,
    /// `DRAIN_SLOTS_TABLE`: the DynamoDB table (name or ARN) that holds the
    /// budget; required when `max_concurrent_drains` limits.
    pub drain_slots_table: Option<String>,
}

/// What to do on an early warning that an instance will go away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalAction {
    /// Nothing (logged).
    Ignore,
    /// Set the container instance DRAINING now and apply STANDALONE_TASKS=stop.
    Drain,
    /// Mark the instance unhealthy in its group, so that Auto Scaling replaces it
    /// through the terminate hook (drained as usual), long before the date.
    Replace,
}

impl ClusterScope {
    /// The one cluster configured, if exactly one is.
    pub fn single(&self) -> Option<&Cluster> {
        match self {
            ClusterScope::Named(names) if names.len() == 1 => names.first(),
            _ => None,
        }
    }

    /// Whether a cluster (by ARN, as ECS events name it) is in scope: a configured
    /// name matches the ARN's `cluster/<name>`, a configured ARN the ARN itself.
    pub fn contains(&self, cluster_arn: &str) -> bool {
        match self {
            ClusterScope::All => true,
            ClusterScope::Named(names) => names.iter().any(|n| {
                n == cluster_arn
                    || cluster_arn
                        .rsplit_once(":cluster/")
                        .is_some_and(|(_, name)| name == n.as_str())
            }),
        }
    }
}

impl CommonConfig {
    /// The hook functions' settings (POLL_INTERVAL_SECONDS defaults to 10).
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let wait_mode = match env.get("WAIT_MODE").map(|v| v.to_ascii_lowercase()) {
            None => WaitMode::InInvocation,
            Some(v) if v == "in-invocation" => WaitMode::InInvocation,
            Some(v) if v == "queue" => WaitMode::Queue,
            Some(v) => {
                return Err(ConfigError {
                    var: "WAIT_MODE",
                    value: v,
                    expected: "in-invocation or queue".into(),
                });
            }
        };
        Ok(CommonConfig {
            continuation_topic: env.sns_topic_arn("CONTINUATION_TOPIC_ARN")?,
            wait_mode,
            ..Self::shared(env, 10)?
        })
    }

    /// What every function reads alike: `CLUSTER_NAME` (the same list, and the
    /// same "empty means every cluster", everywhere), `POLL_INTERVAL_SECONDS`
    /// with the function's default, `DRY_RUN`, `NOTIFICATION_TOPIC_ARN`,
    /// `LOG_LEVEL`. No continuation topic.
    pub fn shared<F: Fn(&str) -> Option<String>>(
        env: &Env<F>,
        poll_default_s: u64,
    ) -> Result<Self, ConfigError> {
        Ok(CommonConfig {
            clusters: env.clusters("CLUSTER_NAME")?,
            poll_interval: env.seconds("POLL_INTERVAL_SECONDS", poll_default_s, 1, 300)?,
            continuation_topic: None,
            dry_run: env.flag("DRY_RUN", false)?,
            notification_topic: env.sns_topic_arn("NOTIFICATION_TOPIC_ARN")?,
            log_level: env.log_level("LOG_LEVEL")?,
            wait_mode: WaitMode::InInvocation,
        })
    }
}

/// Variables every function reads (a contract with the SAM template).
pub const COMMON_VARS: &[&str] = &[
    "CLUSTER_NAME",
    "POLL_INTERVAL_SECONDS",
    "CONTINUATION_TOPIC_ARN",
    "DRY_RUN",
    "NOTIFICATION_TOPIC_ARN",
    "LOG_LEVEL",
];

impl DrainConfig {
    /// Every variable terminate-drain reads, besides the standard AWS ones.
    pub const VARS: &[&str] = &[
        "WAIT_MODE",
        "MAX_DRAIN_SECONDS",
        "AGENT_DISCONNECTED_GRACE_SECONDS",
        "STANDALONE_TASKS",
        "SERVICE_STABILITY_CHECK",
        "SPOT_INTERRUPTION_ACTION",
        "REBALANCE_ACTION",
        "SCHEDULED_EVENT_ACTION",
        "DRAIN_TIMEOUT_ACTION",
        "MAX_CONCURRENT_DRAINS",
        "DRAIN_SLOTS_TABLE",
    ];

    /// Reads the process environment.
    pub fn from_process_env() -> Result<Self, ConfigError> {
        Self::from_env(&Env::new(|k| std::env::var(k).ok()))
    }

    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let standalone = match env.get("STANDALONE_TASKS").map(|v| v.to_ascii_lowercase()) {
            None => StandalonePolicy::Wait,
            Some(v) if v == "stop" => StandalonePolicy::Stop,
            Some(v) if v == "wait" => StandalonePolicy::Wait,
            Some(v) if v == "ignore" => StandalonePolicy::Ignore,
            Some(v) => {
                return Err(ConfigError {
                    var: "STANDALONE_TASKS",
                    value: v,
                    expected: "stop, wait or ignore".into(),
                });
            }
        };
        let action = |var: &'static str, default: SignalAction, allowed: &[SignalAction]| {
            let name = |a: &SignalAction| match a {
                SignalAction::Ignore => "ignore",
                SignalAction::Drain => "drain",
                SignalAction::Replace => "replace",
            };
            match env.get(var).map(|v| v.to_ascii_lowercase()) {
                None => Ok(default),
                Some(v) => allowed
                    .iter()
                    .copied()
                    .find(|a| name(a) == v)
                    .ok_or_else(|| ConfigError {
                        var,
                        value: v,
                        expected: allowed.iter().map(name).collect::<Vec<_>>().join(", "),
                    }),
            }
        };
        let timeout_action = match env
            .get("DRAIN_TIMEOUT_ACTION")
            .map(|v| v.to_ascii_lowercase())
        {
            None => DrainTimeoutAction::Continue,
            Some(v) if v == "continue" => DrainTimeoutAction::Continue,
            Some(v) if v == "retain" => DrainTimeoutAction::Retain,
            Some(v) => {
                return Err(ConfigError {
                    var: "DRAIN_TIMEOUT_ACTION",
                    value: v,
                    expected: "continue or retain".into(),
                });
            }
        };
        let max_concurrent_drains = match env.get("MAX_CONCURRENT_DRAINS") {
            None => DrainBudget::Unlimited,
            Some(raw) => DrainBudget::parse(&raw).map_err(|expected| ConfigError {
                var: "MAX_CONCURRENT_DRAINS",
                value: raw,
                expected,
            })?,
        };
        let drain_slots_table = env.get("DRAIN_SLOTS_TABLE");
        if let Some(table) = &drain_slots_table
            && !is_dynamodb_table(table)
        {
            return Err(ConfigError {
                var: "DRAIN_SLOTS_TABLE",
                value: table.clone(),
                expected: "a DynamoDB table name (3 to 255 of a-z, A-Z, 0-9, _ . -) or a table ARN"
                    .into(),
            });
        }
        if max_concurrent_drains.is_limited() && drain_slots_table.is_none() {
            return Err(ConfigError {
                var: "DRAIN_SLOTS_TABLE",
                value: String::new(),
                expected: format!(
                    "the DynamoDB table that holds the drain budget: required with MAX_CONCURRENT_DRAINS={max_concurrent_drains} (the template creates it)"
                ),
            });
        }
        use SignalAction::{Drain, Ignore, Replace};
        Ok(DrainConfig {
            max_concurrent_drains,
            drain_slots_table,
            timeout_action,
            spot_interruption: action("SPOT_INTERRUPTION_ACTION", Drain, &[Drain, Ignore])?,
            rebalance: action("REBALANCE_ACTION", Ignore, &[Ignore, Drain])?,
            scheduled_event: action("SCHEDULED_EVENT_ACTION", Replace, &[Replace, Drain, Ignore])?,
            common: CommonConfig::from_env(env)?,
            max_drain: env.seconds("MAX_DRAIN_SECONDS", 1800, 1, 172_800)?,
            agent_disconnected_grace: env.seconds(
                "AGENT_DISCONNECTED_GRACE_SECONDS",
                300,
                60,
                172_800,
            )?,
            standalone,
            service_stability: env.flag("SERVICE_STABILITY_CHECK", false)?,
        })
    }
}

/// A DynamoDB table name (3..=255 of `[a-zA-Z0-9_.-]`) or a table ARN.
fn is_dynamodb_table(value: &str) -> bool {
    let is_name = |n: &str| {
        (3..=255).contains(&n.len())
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    };
    match value.strip_prefix("arn:") {
        Some(rest) => {
            let parts: Vec<&str> = rest.splitn(5, ':').collect();
            matches!(parts.as_slice(), [_, "dynamodb", _, _, resource]
                if resource.strip_prefix("table/").is_some_and(is_name))
        }
        None => is_name(value),
    }
}

/// The diagnostic's own worst case with its default timeouts is about 3 minutes
/// (crates/launch-verify/diagnostic/ecs-orphan-diagnostic.sh, its header): the
/// default wait covers it with a minute for SSM's delivery.
pub const DIAGNOSTIC_TIMEOUT_DEFAULT_S: u64 = 240;

/// Settings of launch-verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchConfig {
    pub common: CommonConfig,
    /// `REGISTRATION_TIMEOUT_SECONDS` (30..=7200, default 300): how long after
    /// the launch the instance has to be ACTIVE with its agent connected.
    pub registration_timeout: Duration,
    /// `SSM_DOCUMENT_NAME`: the diagnostic document; unset = no diagnosis (the
    /// orphan is still reported).
    pub ssm_document: Option<String>,
    /// `DIAGNOSTICS_LOG_GROUP`: CloudWatch Logs group for the diagnostic's output.
    pub diagnostics_log_group: Option<String>,
    /// `DIAGNOSTIC_TIMEOUT_SECONDS` (30..=900, default [`DIAGNOSTIC_TIMEOUT_DEFAULT_S`]): how long to wait for
    /// the diagnostic to finish.
    pub diagnostic_timeout: Duration,
    /// `TERMINATE_ORPHANS` (default false): refuse an orphan (ABANDON, or
    /// terminate it through its group in the no-hook mode) instead of letting it
    /// stay with a warning.
    pub terminate_orphans: bool,
}

impl LaunchConfig {
    /// Every variable launch-verify reads, besides [`COMMON_VARS`] and the standard AWS ones.
    pub const VARS: &[&str] = &[
        "WAIT_MODE",
        "REGISTRATION_TIMEOUT_SECONDS",
        "SSM_DOCUMENT_NAME",
        "DIAGNOSTICS_LOG_GROUP",
        "DIAGNOSTIC_TIMEOUT_SECONDS",
        "TERMINATE_ORPHANS",
    ];

    pub fn from_process_env() -> Result<Self, ConfigError> {
        Self::from_env(&Env::new(|k| std::env::var(k).ok()))
    }

    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let ssm_document = env.get("SSM_DOCUMENT_NAME");
        if let Some(doc) = &ssm_document {
            let name_ok = (3..=128).contains(&doc.len())
                && doc
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
            let arn_ok = doc.starts_with("arn:") && doc.contains(":document/");
            if !name_ok && !arn_ok {
                return Err(ConfigError {
                    var: "SSM_DOCUMENT_NAME",
                    value: doc.clone(),
                    expected: "an SSM document name ([a-zA-Z0-9_.-], 3 to 128 characters) or ARN"
                        .into(),
                });
            }
        }
        let diagnostics_log_group = env.get("DIAGNOSTICS_LOG_GROUP");
        if let Some(group) = &diagnostics_log_group {
            let ok = (1..=512).contains(&group.len())
                && group
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-/.#".contains(c));
            if !ok {
                return Err(ConfigError {
                    var: "DIAGNOSTICS_LOG_GROUP",
                    value: group.clone(),
                    expected:
                        "a CloudWatch Logs group name ([a-zA-Z0-9_-/.#], up to 512 characters)"
                            .into(),
                });
            }
        }
        Ok(LaunchConfig {
            common: CommonConfig::from_env(env)?,
            registration_timeout: env.seconds("REGISTRATION_TIMEOUT_SECONDS", 300, 30, 7200)?,
            ssm_document,
            diagnostics_log_group,
            diagnostic_timeout: env.seconds(
                "DIAGNOSTIC_TIMEOUT_SECONDS",
                DIAGNOSTIC_TIMEOUT_DEFAULT_S,
                30,
                900,
            )?,
            terminate_orphans: env.flag("TERMINATE_ORPHANS", false)?,
        })
    }
}

/// Settings of ami-rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutConfig {
    /// `CLUSTER_NAME` (the clusters the groups' instances join; empty or unset =
    /// every cluster), `POLL_INTERVAL_SECONDS` (1..=300, default 30, between two
    /// looks inside one invocation) and `DRY_RUN`, as every function reads them.
    pub common: CommonConfig,
    /// `AMI_PARAMETER_NAME` (required): the SSM parameter naming the AMI, either
    /// AWS's public ECS-optimized `.../recommended` (JSON with `image_id`), its
    /// `.../image_id` child, or a parameter of the account holding a plain AMI id.
    pub ami_parameter: String,
    /// `AUTO_SCALING_GROUP_NAMES` (required): the groups to roll, comma-separated.
    pub groups: Vec<String>,
    /// `STABILITY_TIMEOUT_SECONDS` (60..=86400, default 1800): how long the cluster
    /// may stay unsteady during a rollout before it is rolled back.
    pub stability_timeout: Duration,
    /// `REGISTRATION_TIMEOUT_SECONDS` (30..=7200, default 300): how long a new
    /// instance may be InService without being ACTIVE in the cluster before it
    /// counts as an orphan.
    pub registration_timeout: Duration,
    /// `ROLLOUT_BATCH_SIZE` (1..=100, default 1): instances replaced at a time.
    pub batch_size: u32,
    /// `ALLOWED_AMI_OWNERS`: comma-separated account ids whose AMIs may be
    /// rolled out, besides Amazon's and the account's own. Unset, empty or
    /// `none`: none.
    pub allowed_ami_owners: Vec<String>,
    /// `ROLLOUT_WINDOW`: when a new rollout may start (UTC, e.g.
    /// `Sat 02:00-06:00`); unset, empty or `always`: any time. A running
    /// rollout carries on.
    pub window: Option<Window>,
    /// `ROLLOUT_CHECKPOINT_PERCENTAGES`: the refresh's `CheckpointPercentages`
    /// (comma-separated, ascending, 1..=100, the last 100). Unset, empty or
    /// `none`: no checkpoints.
    pub checkpoint_percentages: Vec<i32>,
    /// `ROLLOUT_CHECKPOINT_DELAY_SECONDS` (0..=172800, default 3600): the
    /// refresh's `CheckpointDelay`, with checkpoints only.
    pub checkpoint_delay: Duration,
    /// `ROLLOUT_ALARM_NAMES`: CloudWatch alarms (up to 10, comma-separated)
    /// Auto Scaling watches during a rollout's refresh (`AlarmSpecification`):
    /// one in ALARM rolls it back. Unset, empty or `none`: none.
    pub alarms: Vec<String>,
}

impl RolloutConfig {
    /// Every variable ami-rollout reads, besides the standard AWS ones (it shares
    /// `CLUSTER_NAME`, `POLL_INTERVAL_SECONDS` and `DRY_RUN` with the others, not
    /// `CONTINUATION_TOPIC_ARN`: an EventBridge schedule re-arms it).
    pub const VARS: &[&str] = &[
        "AMI_PARAMETER_NAME",
        "AUTO_SCALING_GROUP_NAMES",
        "CLUSTER_NAME",
        "STABILITY_TIMEOUT_SECONDS",
        "REGISTRATION_TIMEOUT_SECONDS",
        "POLL_INTERVAL_SECONDS",
        "ROLLOUT_BATCH_SIZE",
        "DRY_RUN",
        "NOTIFICATION_TOPIC_ARN",
        "LOG_LEVEL",
        "ALLOWED_AMI_OWNERS",
        "ROLLOUT_WINDOW",
        "ROLLOUT_CHECKPOINT_PERCENTAGES",
        "ROLLOUT_CHECKPOINT_DELAY_SECONDS",
        "ROLLOUT_ALARM_NAMES",
    ];

    pub fn from_process_env() -> Result<Self, ConfigError> {
        Self::from_env(&Env::new(|k| std::env::var(k).ok()))
    }

    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let required = |var: &'static str, expected: &str| {
            env.get(var).ok_or_else(|| ConfigError {
                var,
                value: String::new(),
                expected: expected.into(),
            })
        };
        let ami_parameter = required("AMI_PARAMETER_NAME", "an SSM parameter name")?;
        let name_ok = ami_parameter.len() <= 2048
            && ami_parameter
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-/".contains(c));
        if !name_ok {
            return Err(ConfigError {
                var: "AMI_PARAMETER_NAME",
                value: ami_parameter,
                expected: "an SSM parameter name ([a-zA-Z0-9_.-/])".into(),
            });
        }
        let raw_groups = required(
            "AUTO_SCALING_GROUP_NAMES",
            "comma-separated Auto Scaling group names",
        )?;
        let mut groups: Vec<String> = Vec::new();
        for item in raw_groups
            .split(',')
            .map(str::trim)
            .filter(|g| !g.is_empty())
        {
            if item.len() > 255 || item.chars().any(|c| c.is_control()) {
                return Err(ConfigError {
                    var: "AUTO_SCALING_GROUP_NAMES",
                    value: raw_groups.clone(),
                    expected: format!("group names of up to 255 characters ({item:?} is not)"),
                });
            }
            if !groups.iter().any(|g| g == item) {
                groups.push(item.to_owned());
            }
        }
        if groups.is_empty() {
            return Err(ConfigError {
                var: "AUTO_SCALING_GROUP_NAMES",
                value: raw_groups,
                expected: "at least one Auto Scaling group name".into(),
            });
        }
        let batch_size = match env.get("ROLLOUT_BATCH_SIZE") {
            None => 1,
            Some(raw) => match raw.parse::<u32>() {
                Ok(n) if (1..=100).contains(&n) => n,
                _ => {
                    return Err(ConfigError {
                        var: "ROLLOUT_BATCH_SIZE",
                        value: raw,
                        expected: "a whole number of instances from 1 to 100".into(),
                    });
                }
            },
        };
        Ok(RolloutConfig {
            common: CommonConfig::shared(env, 30)?,
            ami_parameter,
            groups,
            stability_timeout: env.seconds("STABILITY_TIMEOUT_SECONDS", 1800, 60, 86_400)?,
            registration_timeout: env.seconds("REGISTRATION_TIMEOUT_SECONDS", 300, 30, 7200)?,
            batch_size,
            allowed_ami_owners: allowed_ami_owners(env)?,
            window: match env.get("ROLLOUT_WINDOW") {
                None => None,
                Some(raw) if raw.eq_ignore_ascii_case("always") => None,
                Some(raw) => Some(Window::parse(&raw).map_err(|why| ConfigError {
                    var: "ROLLOUT_WINDOW",
                    value: raw.clone(),
                    expected: format!(
                        "DAYS HH:MM-HH:MM in UTC, several separated by ';' (e.g. \"Sat 02:00-06:00\"): {why}"
                    ),
                })?),
            },
            checkpoint_percentages: checkpoint_percentages(env)?,
            checkpoint_delay: env.seconds("ROLLOUT_CHECKPOINT_DELAY_SECONDS", 3600, 0, 172_800)?,
            alarms: alarm_names(env)?,
        })
    }
}

/// A list variable's value; `None` when unset, empty or `none` (the
/// template's default: a Lambda environment variable is never left empty).
fn list_value<F: Fn(&str) -> Option<String>>(env: &Env<F>, var: &str) -> Option<String> {
    env.get(var).filter(|v| !v.eq_ignore_ascii_case("none"))
}

/// `ALLOWED_AMI_OWNERS`: 12-digit account ids.
fn allowed_ami_owners<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
) -> Result<Vec<String>, ConfigError> {
    let var = "ALLOWED_AMI_OWNERS";
    let Some(raw) = list_value(env, var) else {
        return Ok(Vec::new());
    };
    let mut owners: Vec<String> = Vec::new();
    for item in raw.split(',').map(str::trim) {
        if item.len() != 12 || !item.chars().all(|c| c.is_ascii_digit()) {
            return Err(ConfigError {
                var,
                value: raw.clone(),
                expected: format!(
                    "comma-separated 12-digit AWS account ids ({item:?} is not one; Amazon's images and the account's own are always allowed)"
                ),
            });
        }
        if !owners.iter().any(|o| o == item) {
            owners.push(item.to_owned());
        }
    }
    Ok(owners)
}

/// `ROLLOUT_CHECKPOINT_PERCENTAGES`: ascending whole percentages, the last 100
/// (Auto Scaling ends a refresh at its last checkpoint: below 100, instances
/// would be left on the old AMI).
fn checkpoint_percentages<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
) -> Result<Vec<i32>, ConfigError> {
    let var = "ROLLOUT_CHECKPOINT_PERCENTAGES";
    let Some(raw) = list_value(env, var) else {
        return Ok(Vec::new());
    };
    let bad = |why: String| ConfigError {
        var,
        value: raw.clone(),
        expected: format!(
            "comma-separated percentages from 1 to 100 in ascending order, the last one 100 (e.g. 20,50,100): {why}"
        ),
    };
    let mut out: Vec<i32> = Vec::new();
    for item in raw.split(',').map(str::trim) {
        let n: i32 = item
            .parse()
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| bad(format!("{item:?} is not a whole number from 1 to 100")))?;
        if out.last().is_some_and(|last| *last >= n) {
            return Err(bad(format!(
                "{n} does not come after {}",
                out[out.len() - 1]
            )));
        }
        out.push(n);
    }
    if out.last() != Some(&100) {
        return Err(bad("the last one is not 100".into()));
    }
    Ok(out)
}

/// `ROLLOUT_ALARM_NAMES`: up to 10 CloudWatch alarm names.
fn alarm_names<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Vec<String>, ConfigError> {
    let var = "ROLLOUT_ALARM_NAMES";
    let Some(raw) = list_value(env, var) else {
        return Ok(Vec::new());
    };
    let mut names: Vec<String> = Vec::new();
    for item in raw.split(',').map(str::trim) {
        if item.is_empty() || item.len() > 255 || item.chars().any(char::is_control) {
            return Err(ConfigError {
                var,
                value: raw.clone(),
                expected: format!(
                    "comma-separated CloudWatch alarm names of 1 to 255 characters ({item:?} is not one)"
                ),
            });
        }
        if !names.iter().any(|n| n == item) {
            names.push(item.to_owned());
        }
    }
    if names.len() > 10 {
        return Err(ConfigError {
            var,
            value: raw,
            expected: format!(
                "at most 10 alarm names (Auto Scaling's limit), not {}",
                names.len()
            ),
        });
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn rollout(vars: &[(&str, &str)]) -> Result<RolloutConfig, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        RolloutConfig::from_env(&Env::new(move |k| map.get(k).cloned()))
    }

    const ROLLOUT_MIN: &[(&str, &str)] = &[
        (
            "AMI_PARAMETER_NAME",
            "/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended",
        ),
        ("AUTO_SCALING_GROUP_NAMES", " web-asg, batch-asg ,web-asg"),
        ("CLUSTER_NAME", "prod"),
    ];

    #[test]
    fn rollout_defaults_and_lists() {
        let c = rollout(ROLLOUT_MIN).unwrap();
        assert_eq!(c.groups, vec!["web-asg", "batch-asg"]);
        assert_eq!(c.common.clusters, ClusterScope::Named(vec!["prod".into()]));
        assert_eq!(c.stability_timeout, Duration::from_secs(1800));
        assert_eq!(c.registration_timeout, Duration::from_secs(300));
        assert_eq!(c.common.poll_interval, Duration::from_secs(30));
        assert_eq!(c.batch_size, 1);
        assert!(!c.common.dry_run);
        assert_eq!(c.common.continuation_topic, None);
        assert!(c.allowed_ami_owners.is_empty());
        assert_eq!(c.window, None);
        assert!(c.checkpoint_percentages.is_empty());
        assert_eq!(c.checkpoint_delay, Duration::from_secs(3600));
        assert!(c.alarms.is_empty());
    }

    #[test]
    fn rollout_guards_and_controls() {
        let mut vars = ROLLOUT_MIN.to_vec();
        vars.extend([
            (
                "ALLOWED_AMI_OWNERS",
                "111122223333, 444455556666,111122223333",
            ),
            ("ROLLOUT_WINDOW", "Sat 02:00-06:00"),
            ("ROLLOUT_CHECKPOINT_PERCENTAGES", "20, 50,100"),
            ("ROLLOUT_CHECKPOINT_DELAY_SECONDS", "600"),
            ("ROLLOUT_ALARM_NAMES", "p99-latency,5xx-rate"),
        ]);
        let c = rollout(&vars).unwrap();
        assert_eq!(c.allowed_ami_owners, ["111122223333", "444455556666"]);
        assert_eq!(
            c.window.map(|w| w.to_string()).as_deref(),
            Some("Sat 02:00-06:00")
        );
        assert_eq!(c.checkpoint_percentages, [20, 50, 100]);
        assert_eq!(c.checkpoint_delay, Duration::from_secs(600));
        assert_eq!(c.alarms, ["p99-latency", "5xx-rate"]);
        // The template's defaults mean "none" and "any time".
        let mut vars = ROLLOUT_MIN.to_vec();
        vars.extend([
            ("ALLOWED_AMI_OWNERS", "none"),
            ("ROLLOUT_WINDOW", "always"),
            ("ROLLOUT_CHECKPOINT_PERCENTAGES", "None"),
            ("ROLLOUT_ALARM_NAMES", "none"),
        ]);
        let c = rollout(&vars).unwrap();
        assert!(c.allowed_ami_owners.is_empty() && c.checkpoint_percentages.is_empty());
        assert!(c.alarms.is_empty() && c.window.is_none());
    }

    #[test]
    fn rollout_guard_errors_name_the_variable_and_value() {
        let eleven = "a,b,c,d,e,f,g,h,i,j,k";
        for (var, value, expect) in [
            ("ALLOWED_AMI_OWNERS", "amazon", "\"amazon\" is not one"),
            ("ALLOWED_AMI_OWNERS", "1111222233334", "12-digit"),
            ("ROLLOUT_WINDOW", "Saturday 02:00-06:00", "not a day"),
            ("ROLLOUT_WINDOW", "Sat 02:00", "time range"),
            // What the template's AllowedPatterns cannot express (tests/template/
            // parameters.rs): an empty range, the order of the checkpoints, a
            // name blank once trimmed, a decimal Number.
            ("ROLLOUT_WINDOW", "Sat 02:00-02:00", "is empty"),
            (
                "ROLLOUT_CHECKPOINT_PERCENTAGES",
                "20,20,100",
                "20 does not come after 20",
            ),
            ("ROLLOUT_ALARM_NAMES", "a, ,b", "\"\" is not one"),
            ("STABILITY_TIMEOUT_SECONDS", "60.5", "whole number"),
            (
                "ROLLOUT_CHECKPOINT_PERCENTAGES",
                "50,20,100",
                "20 does not come after 50",
            ),
            (
                "ROLLOUT_CHECKPOINT_PERCENTAGES",
                "20,50",
                "the last one is not 100",
            ),
            (
                "ROLLOUT_CHECKPOINT_PERCENTAGES",
                "0,100",
                "\"0\" is not a whole number",
            ),
            (
                "ROLLOUT_CHECKPOINT_DELAY_SECONDS",
                "172801",
                "from 0 to 172800",
            ),
            ("ROLLOUT_ALARM_NAMES", "a,,b", "\"\" is not one"),
            ("ROLLOUT_ALARM_NAMES", eleven, "at most 10"),
        ] {
            let mut vars = ROLLOUT_MIN.to_vec();
            vars.push((var, value));
            let err = rollout(&vars).unwrap_err();
            assert_eq!(err.var, var);
            let msg = err.to_string();
            assert!(msg.contains(value) && msg.contains(expect), "{msg}");
        }
    }

    #[test]
    fn cluster_scope_matches_event_cluster_arns() {
        let arn = "arn:aws:ecs:us-east-1:123456789012:cluster/prod";
        assert!(ClusterScope::All.contains(arn));
        assert!(ClusterScope::Named(vec!["prod".into()]).contains(arn));
        assert!(ClusterScope::Named(vec![arn.into()]).contains(arn));
        assert!(!ClusterScope::Named(vec!["pro".into()]).contains(arn));
        assert!(!ClusterScope::Named(vec!["dev".into(), "batch".into()]).contains(arn));
    }

    #[test]
    fn cluster_name_means_the_same_in_every_function() {
        for value in [
            None,
            Some("prod, arn:aws:ecs:us-east-1:123456789012:cluster/batch"),
        ] {
            let mut vars: Vec<_> = ROLLOUT_MIN
                .iter()
                .copied()
                .filter(|(k, _)| *k != "CLUSTER_NAME")
                .collect();
            if let Some(v) = value {
                vars.push(("CLUSTER_NAME", v));
            }
            let map: HashMap<String, String> = vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let env = Env::new(move |k| map.get(k).cloned());
            let rollout = RolloutConfig::from_env(&env).unwrap();
            let drain = DrainConfig::from_env(&env).unwrap();
            let launch = LaunchConfig::from_env(&env).unwrap();
            assert_eq!(rollout.common.clusters, drain.common.clusters);
            assert_eq!(rollout.common.clusters, launch.common.clusters);
        }
    }

    #[test]
    fn rollout_names_what_is_missing_or_wrong() {
        for missing in ["AMI_PARAMETER_NAME", "AUTO_SCALING_GROUP_NAMES"] {
            let vars: Vec<_> = ROLLOUT_MIN
                .iter()
                .copied()
                .filter(|(k, _)| *k != missing)
                .collect();
            assert_eq!(rollout(&vars).unwrap_err().var, missing);
        }
        let with = |k: &'static str, v: &'static str| {
            let mut vars: Vec<_> = ROLLOUT_MIN
                .iter()
                .copied()
                .filter(|(n, _)| *n != k)
                .collect();
            vars.push((k, v));
            rollout(&vars).unwrap_err()
        };
        assert_eq!(with("CLUSTER_NAME", "a,,b").var, "CLUSTER_NAME");
        assert_eq!(with("ROLLOUT_BATCH_SIZE", "0").var, "ROLLOUT_BATCH_SIZE");
        assert_eq!(
            with("STABILITY_TIMEOUT_SECONDS", "5").var,
            "STABILITY_TIMEOUT_SECONDS"
        );
        assert_eq!(with("AMI_PARAMETER_NAME", "/a b").var, "AMI_PARAMETER_NAME");
        assert_eq!(
            with("AUTO_SCALING_GROUP_NAMES", " , ").var,
            "AUTO_SCALING_GROUP_NAMES"
        );
    }

    fn drain(vars: &[(&str, &str)]) -> Result<DrainConfig, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        DrainConfig::from_env(&Env::new(move |k| map.get(k).cloned()))
    }

    #[test]
    fn defaults() {
        let c = drain(&[]).unwrap();
        assert_eq!(c.common.clusters, ClusterScope::All);
        assert_eq!(c.common.poll_interval, Duration::from_secs(10));
        assert_eq!(c.common.continuation_topic, None);
        assert!(!c.common.dry_run);
        assert_eq!(c.max_drain, Duration::from_secs(1800));
        assert_eq!(c.standalone, StandalonePolicy::Wait);
        assert!(!c.service_stability);
        assert_eq!(c.spot_interruption, SignalAction::Drain);
        assert_eq!(c.rebalance, SignalAction::Ignore);
        assert_eq!(c.scheduled_event, SignalAction::Replace);
        assert_eq!(c.timeout_action, DrainTimeoutAction::Continue);
        assert_eq!(c.max_concurrent_drains, DrainBudget::Unlimited);
        assert_eq!(c.drain_slots_table, None);
    }

    #[test]
    fn max_concurrent_drains() {
        const TABLE: (&str, &str) = ("DRAIN_SLOTS_TABLE", "stack-DrainSlots-1AB2");
        for (value, want) in [
            ("0", DrainBudget::Unlimited),
            ("", DrainBudget::Unlimited),
            ("2", DrainBudget::Count(2)),
            ("25%", DrainBudget::Percent(25)),
        ] {
            let c = drain(&[("MAX_CONCURRENT_DRAINS", value), TABLE]).unwrap();
            assert_eq!(c.max_concurrent_drains, want, "{value:?}");
        }
        let arn = "arn:aws:dynamodb:eu-west-1:123456789012:table/drain-slots";
        let c = drain(&[("MAX_CONCURRENT_DRAINS", "3"), ("DRAIN_SLOTS_TABLE", arn)]).unwrap();
        assert_eq!(c.drain_slots_table.as_deref(), Some(arn));
        // No limit needs no table.
        assert!(drain(&[("MAX_CONCURRENT_DRAINS", "0")]).is_ok());
        for bad in ["-2", "0%", "150%", "1.5", "two", "25 percent"] {
            let err = drain(&[("MAX_CONCURRENT_DRAINS", bad), TABLE]).unwrap_err();
            assert_eq!(err.var, "MAX_CONCURRENT_DRAINS");
            let msg = err.to_string();
            assert!(msg.contains(bad) && msg.contains("percentage"), "{msg}");
        }
        // A limit without its table fails at cold start, naming both.
        let err = drain(&[("MAX_CONCURRENT_DRAINS", "25%")]).unwrap_err();
        assert_eq!(err.var, "DRAIN_SLOTS_TABLE");
        assert!(
            err.to_string().contains("MAX_CONCURRENT_DRAINS=25%"),
            "{err}"
        );
        for bad in [
            "ab",
            "has space",
            "arn:aws:s3:::bucket",
            "arn:aws:dynamodb:r:1:table/x",
        ] {
            let err =
                drain(&[("MAX_CONCURRENT_DRAINS", "2"), ("DRAIN_SLOTS_TABLE", bad)]).unwrap_err();
            assert_eq!(err.var, "DRAIN_SLOTS_TABLE", "{bad}");
        }
    }

    #[test]
    fn drain_timeout_action() {
        for (value, want) in [
            ("continue", DrainTimeoutAction::Continue),
            ("retain", DrainTimeoutAction::Retain),
            (" Retain ", DrainTimeoutAction::Retain),
            ("CONTINUE", DrainTimeoutAction::Continue),
            ("", DrainTimeoutAction::Continue),
        ] {
            let c = drain(&[("DRAIN_TIMEOUT_ACTION", value)]).unwrap();
            assert_eq!(c.timeout_action, want, "{value:?}");
        }
        for bad in ["abandon", "keep", "terminate", "1"] {
            let err = drain(&[("DRAIN_TIMEOUT_ACTION", bad)]).unwrap_err();
            assert_eq!(err.var, "DRAIN_TIMEOUT_ACTION");
            let msg = err.to_string();
            assert!(
                msg.contains("DRAIN_TIMEOUT_ACTION")
                    && msg.contains(bad)
                    && msg.contains("continue or retain"),
                "{msg}"
            );
        }
    }

    #[test]
    fn signal_actions() {
        let c = drain(&[
            ("SPOT_INTERRUPTION_ACTION", "ignore"),
            ("REBALANCE_ACTION", "Drain"),
            ("SCHEDULED_EVENT_ACTION", "drain"),
        ])
        .unwrap();
        assert_eq!(
            (c.spot_interruption, c.rebalance, c.scheduled_event),
            (
                SignalAction::Ignore,
                SignalAction::Drain,
                SignalAction::Drain
            )
        );
        for (var, value, expected) in [
            ("SPOT_INTERRUPTION_ACTION", "replace", "drain, ignore"),
            ("REBALANCE_ACTION", "stop", "ignore, drain"),
            ("SCHEDULED_EVENT_ACTION", "later", "replace, drain, ignore"),
        ] {
            let e = drain(&[(var, value)]).unwrap_err();
            assert_eq!((e.var, e.expected.as_str()), (var, expected));
        }
    }

    #[test]
    fn parses_every_variable() {
        let c = drain(&[
            (
                "CLUSTER_NAME",
                " prod , arn:aws:ecs:us-east-1:123456789012:cluster/batch,prod",
            ),
            ("POLL_INTERVAL_SECONDS", "5"),
            (
                "CONTINUATION_TOPIC_ARN",
                "arn:aws:sns:us-east-1:123456789012:drain-topic",
            ),
            ("DRY_RUN", "TRUE"),
            ("MAX_DRAIN_SECONDS", "600"),
            ("STANDALONE_TASKS", "Stop"),
            ("SERVICE_STABILITY_CHECK", "yes"),
        ])
        .unwrap();
        assert_eq!(
            c.common.clusters,
            ClusterScope::Named(vec![
                "prod".into(),
                "arn:aws:ecs:us-east-1:123456789012:cluster/batch".into()
            ])
        );
        assert_eq!(c.common.poll_interval, Duration::from_secs(5));
        assert!(c.common.dry_run && c.service_stability);
        assert_eq!(c.max_drain, Duration::from_secs(600));
        assert_eq!(c.standalone, StandalonePolicy::Stop);
    }

    #[test]
    fn errors_name_the_variable_and_value() {
        for (var, value, expect) in [
            ("POLL_INTERVAL_SECONDS", "0", "from 1 to 300"),
            ("POLL_INTERVAL_SECONDS", "ten", "whole number"),
            ("MAX_DRAIN_SECONDS", "-5", "from 1 to 172800"),
            ("STANDALONE_TASKS", "kill", "stop, wait or ignore"),
            ("DRY_RUN", "maybe", "true or false"),
            ("SERVICE_STABILITY_CHECK", "2", "true or false"),
            (
                "CONTINUATION_TOPIC_ARN",
                "arn:aws:sqs:us-east-1:1:q",
                "SNS topic ARN",
            ),
            ("CLUSTER_NAME", "prod,,dev", "\"\" is neither"),
            ("CLUSTER_NAME", "bad name", "\"bad name\" is neither"),
        ] {
            let err = drain(&[(var, value)]).unwrap_err();
            assert_eq!(err.var, var);
            let msg = err.to_string();
            assert!(msg.contains(var) && msg.contains(expect), "{msg}");
        }
    }

    /// `LOG_LEVEL`, read alike by every function: the template's values (any
    /// case), INFO when unset, anything else refused with an error naming it.
    #[test]
    fn log_level_is_read_by_every_function_and_checked() {
        assert_eq!(drain(&[]).unwrap().common.log_level, LevelFilter::INFO);
        for (value, want) in [
            ("TRACE", LevelFilter::TRACE),
            ("DEBUG", LevelFilter::DEBUG),
            ("INFO", LevelFilter::INFO),
            ("warn", LevelFilter::WARN),
            ("ERROR", LevelFilter::ERROR),
        ] {
            assert_eq!(
                drain(&[("LOG_LEVEL", value)]).unwrap().common.log_level,
                want
            );
            assert_eq!(
                launch(&[("LOG_LEVEL", value)]).unwrap().common.log_level,
                want
            );
            let mut vars = ROLLOUT_MIN.to_vec();
            vars.push(("LOG_LEVEL", value));
            assert_eq!(rollout(&vars).unwrap().common.log_level, want);
        }
        for bad in ["WARNING", "verbose", "0"] {
            let err = drain(&[("LOG_LEVEL", bad)]).unwrap_err();
            assert_eq!(err.var, "LOG_LEVEL");
            let msg = err.to_string();
            assert!(msg.contains("LOG_LEVEL") && msg.contains(bad), "{msg}");
        }
    }

    fn launch(vars: &[(&str, &str)]) -> Result<LaunchConfig, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        LaunchConfig::from_env(&Env::new(move |k| map.get(k).cloned()))
    }

    #[test]
    fn launch_defaults_and_values() {
        let c = launch(&[]).unwrap();
        assert_eq!(c.registration_timeout, Duration::from_secs(300));
        assert_eq!(c.diagnostic_timeout, Duration::from_secs(240));
        assert_eq!(
            (
                c.ssm_document.as_deref(),
                c.diagnostics_log_group.as_deref(),
                c.terminate_orphans
            ),
            (None, None, false)
        );
        let c = launch(&[
            ("REGISTRATION_TIMEOUT_SECONDS", "600"),
            ("SSM_DOCUMENT_NAME", "ecs-lifecycle-OrphanDiagnostic-1A2B"),
            ("DIAGNOSTICS_LOG_GROUP", "/ecs-lifecycle/diagnostics"),
            ("DIAGNOSTIC_TIMEOUT_SECONDS", "60"),
            ("TERMINATE_ORPHANS", "true"),
            ("POLL_INTERVAL_SECONDS", "3"),
        ])
        .unwrap();
        assert_eq!(c.registration_timeout, Duration::from_secs(600));
        assert_eq!(
            c.ssm_document.as_deref(),
            Some("ecs-lifecycle-OrphanDiagnostic-1A2B")
        );
        assert!(c.terminate_orphans);
        assert_eq!(c.common.poll_interval, Duration::from_secs(3));
    }

    #[test]
    fn launch_errors_name_the_variable() {
        for (var, value, expect) in [
            ("REGISTRATION_TIMEOUT_SECONDS", "10", "from 30 to 7200"),
            ("DIAGNOSTIC_TIMEOUT_SECONDS", "1000", "from 30 to 900"),
            ("SSM_DOCUMENT_NAME", "bad name;rm", "SSM document name"),
            (
                "DIAGNOSTICS_LOG_GROUP",
                "bad group!",
                "CloudWatch Logs group",
            ),
            ("TERMINATE_ORPHANS", "sometimes", "true or false"),
        ] {
            let err = launch(&[(var, value)]).unwrap_err();
            assert_eq!(err.var, var);
            assert!(err.to_string().contains(expect), "{err}");
        }
    }

    /// The variable lists are what the parsers really read: the SAM template test
    /// relies on them.
    #[test]
    fn variable_lists_match_what_is_read() {
        use std::cell::RefCell;
        use std::collections::BTreeSet;
        type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;
        let read = |parse: &dyn Fn(&Env<Lookup>)| {
            let seen = RefCell::new(BTreeSet::new());
            let lookup = |k: &str| {
                seen.borrow_mut().insert(k.to_owned());
                None
            };
            parse(&Env::new(&lookup));
            seen.into_inner()
        };
        let expected = |own: &[&str]| {
            COMMON_VARS
                .iter()
                .chain(own)
                .map(|s| s.to_string())
                .collect::<BTreeSet<_>>()
        };
        assert_eq!(
            read(&|e| drop(DrainConfig::from_env(e))),
            expected(DrainConfig::VARS)
        );
        assert_eq!(
            read(&|e| drop(LaunchConfig::from_env(e))),
            expected(LaunchConfig::VARS)
        );
        // ami-rollout reads on only with its required variables set.
        let seen = RefCell::new(BTreeSet::new());
        let lookup = |k: &str| {
            seen.borrow_mut().insert(k.to_owned());
            ROLLOUT_MIN
                .iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| v.to_string())
        };
        RolloutConfig::from_env(&Env::new(lookup)).unwrap();
        assert_eq!(
            seen.into_inner(),
            RolloutConfig::VARS
                .iter()
                .map(|s| s.to_string())
                .collect::<BTreeSet<_>>()
        );
    }
}
