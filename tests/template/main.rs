//! The SAM template (`template.yaml`) against the code and the rules it must keep.
//!
//! The template is read and resolved for given parameter values by the
//! CloudFormation reader in `tests/support/cfn.rs` (a reference to a resource
//! resolves to `<Logical>`, an attribute to `<Logical.Attr>`). Checked, a module
//! a topic:
//! - `functions`: every Lambda binary of the workspace is a function, with
//!   exactly the environment variables its configuration reads (`COMMON_VARS` +
//!   `VARS`, or ami-rollout's own complete `RolloutConfig::VARS`), built and
//!   logged alike (samconfig.toml opting in to the beta build method);
//! - `routing`: hooks on every group, and filter policies and rules that route
//!   each message to its function;
//! - `iam`: no mutating action on `*` without a condition, lifecycle actions and
//!   termination only on the given groups, ECS changes only in the cluster,
//!   SendCommand only with the diagnostic document on instances of the groups,
//!   Publish only to the topic (and to `NotificationTopicArn` when it is set);
//! - `ami_rollout`: it exists only with `EnableAmiRollout=true`, with its
//!   parameter change rule and its watch schedule; its refreshes, group updates
//!   and marker tags only on the given groups, new versions of and launches
//!   through the tagged launch templates only, PassRole of the named instance
//!   role only, to EC2 (and that role required by the template's Rules);
//! - `observability`: the topic and queue encrypted, alarms on the functions'
//!   errors, the queue, and their own metrics: drain timeouts, orphans,
//!   ami-rollout's rollbacks and failed restores;
//! - `dashboard`: the dashboard, the alarms and the saved Logs Insights queries
//!   against what the functions emit (`METRIC_NAMES`) and log (field names,
//!   decisions): the body is JSON, every metric is emitted by the function it is
//!   shown or alarmed under, every query parses and reads the functions' log
//!   groups;
//! - `dead_letters`: every path that dead-letters to the queue (each
//!   EventBridge rule, the SNS subscriptions, Lambda's on-failure destinations)
//!   is admitted, under each of the 64 combinations of the conditions that
//!   decide which exist; the queue keeps messages 14 days; alarms on its depth
//!   and age, Lambda throttles and each rule's failed invocations, with OK
//!   actions;
//! - `parameters`: a table of good and bad values per parameter, refused by
//!   the template (AllowedPattern compiled, AllowedValues, bounds, Rules) or,
//!   where it cannot express them, by the function's configuration naming the
//!   variable; no `LogLevel` lets Lambda drop the metric lines; the parameter
//!   table of docs/deploying.md has every parameter with its default;
//! - `org`: org-wide deployment and safe upgrades: the permissions boundary on
//!   every role (SAM's output included), any number of groups in one stack
//!   (hooks by `Fn::ForEach`, grants built from the list), the alias every
//!   invoker calls, the propagated tags, and the packaged template a
//!   StackSet deploys (`scripts/package-offline.py`, linted by cfn-lint and
//!   translated by SAM's own translator: `scripts/sam-translate.py`);
//! - `diagnostic`: the diagnostic document's copy of the script.
//!
//! `code` holds what is read from the ecs-lifecycle crate itself.
//!
//! The script is embedded verbatim; after editing
//! `crates/launch-verify/diagnostic/ecs-orphan-diagnostic.sh`, refresh the copy
//! with `UPDATE_TEMPLATE=1 cargo test --test template`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed set-up is a failed test

use ecs_lifecycle_suite::cfn;

mod code;

mod ami_rollout;
mod dashboard;
mod dead_letters;
mod diagnostic;
mod functions;
mod iam;
mod observability;
mod org;
mod parameters;
mod routing;

use std::collections::BTreeSet;

use cfn::{REGION, Stack};

/// Two groups, hooks on both, ami-rollout installed: the default case of
/// these tests.
fn fleet() -> Stack {
    Stack::new(&[
        ("ClusterName", "prod"),
        ("AutoScalingGroupNames", "web-asg,batch-asg"),
        ("LogRetentionDays", "14"),
        ("EnableAmiRollout", "true"),
        ("InstanceRoleName", "ecsInstanceRole"),
    ])
}

/// More groups than the template once held (five): one stack per cluster.
const TWELVE_GROUPS: &str =
    "web-1,web-2,web-3,api-a,api-b,batch-spot,batch-od,gpu,arm64,edge,canary,legacy.v1";

/// ami-rollout needs the instances' role named (the template's Rules).
const ROLLOUT_PARAMS: [(&str, &str); 4] = [
    ("ClusterName", "prod"),
    ("AutoScalingGroupNames", "web-asg,batch-asg"),
    ("EnableAmiRollout", "true"),
    ("InstanceRoleName", "ecsInstanceRole"),
];

/// Two groups with ami-rollout installed, and these values on top.
fn rollout_stack(extra: &[(&str, &str)]) -> Stack {
    let params: Vec<(&str, &str)> = ROLLOUT_PARAMS.iter().chain(extra).copied().collect();
    Stack::new(&params)
}

fn set<I: IntoIterator<Item = S>, S: Into<String>>(items: I) -> BTreeSet<String> {
    items.into_iter().map(Into::into).collect()
}

/// A group as the roles name it: built from the list (any number of groups),
/// so partition, Region and account are wildcards, and every statement that
/// names groups holds the Region with [`in_this_region`].
fn asg_arn(name: &str) -> String {
    format!("arn:*:autoscaling:*:*:autoScalingGroup:*:autoScalingGroupName/{name}")
}

/// A statement that names groups holds its requests to the stack's Region
/// (Auto Scaling has no resource policies: another account's group is out of
/// reach anyway).
fn in_this_region(statement: &serde_json::Value) -> bool {
    statement["Condition"]["StringEquals"]["aws:RequestedRegion"] == REGION
}
