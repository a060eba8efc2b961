//! What the template is checked against in the ecs-lifecycle crate itself: the
//! variable lists each function's configuration reads, the configuration's own
//! parsing, ami-rollout's marker tag, and the metrics the functions emit. Every
//! `ecs_lifecycle::` path of these tests is here.

use std::collections::BTreeSet;

use ecs_lifecycle::config::{
    COMMON_VARS, CommonConfig, DrainConfig, Env, LaunchConfig, RolloutConfig,
};
use serde_json::Value;

pub use ecs_lifecycle::config::ClusterScope;
pub use ecs_lifecycle::report::{METRIC_NAMES, NAMESPACE as METRIC_NAMESPACE};
pub use ecs_lifecycle::rollout::{BASELINE_TAG, REFUSED_AMI_TAG, REPORTED_TAG, UNSTEADY_TAG};

use crate::set;

/// What each function's configuration reads, from the code's own lists.
pub fn vars_read_by(binary: &str) -> BTreeSet<String> {
    let own: &[&str] = match binary {
        "terminate-drain" => DrainConfig::VARS,
        "launch-verify" => LaunchConfig::VARS,
        // Its own complete list: CLUSTER_NAME, POLL_INTERVAL_SECONDS and DRY_RUN,
        // but not CONTINUATION_TOPIC_ARN (a schedule re-arms it, not a topic).
        "ami-rollout" => return set(RolloutConfig::VARS.iter().copied()),
        other => panic!(
            "{other} is a new Lambda binary: give it a function in template.yaml and its variable list here"
        ),
    };
    COMMON_VARS
        .iter()
        .chain(own)
        .map(|s| s.to_string())
        .collect()
}

/// ami-rollout's configuration from a resolved `Environment.Variables`, as its
/// cold start reads it.
pub fn rollout_config(env: &Value) -> Result<RolloutConfig, impl std::fmt::Debug> {
    let vars = env.as_object().unwrap().clone();
    RolloutConfig::from_env(&Env::new(move |k: &str| {
        vars.get(k).and_then(|v| v.as_str()).map(str::to_owned)
    }))
}

/// `NOTIFICATION_TOPIC_ARN` from a resolved `Environment.Variables`, as every
/// function's configuration reads it (`CommonConfig::shared`): `None` is no
/// notifications.
pub fn notification_topic(env: &Value) -> Result<Option<String>, impl std::fmt::Debug> {
    let vars = env.as_object().unwrap().clone();
    CommonConfig::shared(
        &Env::new(move |k: &str| vars.get(k).and_then(|v| v.as_str()).map(str::to_owned)),
        10,
    )
    .map(|c| c.notification_topic)
}

/// The variables of a resolved `Environment.Variables`, as a lookup.
fn env_of(env: &Value) -> Env<impl Fn(&str) -> Option<String>> {
    let vars = env.as_object().unwrap().clone();
    Env::new(move |k: &str| vars.get(k).and_then(|v| v.as_str()).map(str::to_owned))
}

/// What a function's configuration says of a resolved `Environment.Variables`
/// at cold start: `Err(variable)` names the variable it refuses.
pub fn config_refuses(binary: &str, env: &Value) -> Result<(), &'static str> {
    let env = env_of(env);
    match binary {
        "terminate-drain" => DrainConfig::from_env(&env).map(drop),
        "launch-verify" => LaunchConfig::from_env(&env).map(drop),
        "ami-rollout" => RolloutConfig::from_env(&env).map(drop),
        other => panic!("{other}: no configuration known here"),
    }
    .map_err(|e| e.var)
}

/// The level of the lines a function writes, from `LOG_LEVEL` as every
/// function's configuration reads it (`CommonConfig::shared`).
pub fn log_level(env: &Value) -> String {
    CommonConfig::shared(&env_of(env), 10)
        .unwrap()
        .log_level
        .to_string()
        .to_ascii_uppercase()
}
