//! ami-rollout's helpers, for `tests/ami_rollout.rs` (and the instance refresh
//! that `tests/standin_refresh.rs` and `tests/cli.rs` drive by hand):
//! - Given: [`setup`] (a fleet on its AMI and a new AMI), [`publish`] (the
//!   parameter names an AMI), [`started`] (a rollout started and played
//!   some batches), [`pin`], [`new_version`], [`desired`], [`start_refresh`]
//!   (a refresh set up by hand), [`cancel_refresh`] (an operator cancels);
//! - When: the workflow in process ([`roller`], [`roller_with`]), one
//!   invocation ([`invoke`], [`start`], [`watch`]); Auto Scaling's refresh
//!   played a batch at a time with the hooks' part ([`step`],
//!   [`step_until_over`], [`refresh_succeeds`], [`cancelled_then_restoring`]);
//! - Then: the group's report ([`group_report`], [`next_of`], [`next_step`],
//!   [`watch_succeeded`]), what was made ([`versions_made`], [`refreshes`],
//!   [`scaling_activities`]), what was not ([`MUTATING`], [`assert_not_refused`]).

use aws_sdk_autoscaling::error::SdkError;
use aws_sdk_autoscaling::operation::start_instance_refresh::StartInstanceRefreshError;
use aws_sdk_autoscaling::types::{
    Activity, DesiredConfiguration, InstanceRefresh, LaunchTemplateSpecification,
    RefreshPreferences,
};
use ecs_lifecycle::config::RolloutConfig;
use ecs_lifecycle::rollout::{REFUSED_AMI_TAG, Roller};
use serde_json::{Value, json};
use testkit::{ACTIVE_REFRESH, Fleet, FleetSpec, Standin, now_ms, put_parameter};

use crate::env_of;

/// The SSM parameter the tests' rollouts follow.
pub const PARAM: &str = "/ecs-lifecycle-test/ecs-ami";

/// The mutating calls ami-rollout can make; a refused AMI makes none.
pub const MUTATING: [&str; 6] = [
    "ec2:CreateLaunchTemplateVersion",
    "autoscaling:UpdateAutoScalingGroup",
    "autoscaling:StartInstanceRefresh",
    "autoscaling:RollbackInstanceRefresh",
    "autoscaling:CreateOrUpdateTags",
    "autoscaling:DeleteTags",
];

pub type TestRoller = Roller<
    aws_sdk_autoscaling::Client,
    aws_sdk_ec2::Client,
    aws_sdk_ecs::Client,
    aws_sdk_ssm::Client,
    aws_sdk_sns::Client,
>;

/// The rollout of `fleet`'s group following [`PARAM`], polling every second.
pub fn roller(sdk: &aws_config::SdkConfig, fleet: &Fleet) -> TestRoller {
    roller_with(sdk, fleet, &[])
}

/// [`roller`] with these variables on top.
pub fn roller_with(
    sdk: &aws_config::SdkConfig,
    fleet: &Fleet,
    extra: &[(&str, &str)],
) -> TestRoller {
    let vars = [
        ("AMI_PARAMETER_NAME", PARAM),
        ("AUTO_SCALING_GROUP_NAMES", fleet.asg.as_str()),
        ("CLUSTER_NAME", fleet.cluster.as_str()),
        ("POLL_INTERVAL_SECONDS", "1"),
        ("STABILITY_TIMEOUT_SECONDS", "600"),
    ];
    let config = RolloutConfig::from_env(&env_of(vars.iter().chain(extra)))
        .expect("valid test configuration");
    let all: Vec<(&str, &str)> = vars.iter().chain(extra).copied().collect();
    let sdk = &testkit::as_function(sdk, "ami-rollout", &all);
    Roller::new(
        aws_sdk_autoscaling::Client::new(sdk),
        aws_sdk_ec2::Client::new(sdk),
        aws_sdk_ecs::Client::new(sdk),
        aws_sdk_ssm::Client::new(sdk),
        config,
    )
    .with_publisher(aws_sdk_sns::Client::new(sdk))
}

/// One invocation with a deadline close enough that it looks, acts, looks
/// again after a change, and returns instead of sleeping.
pub async fn invoke(r: &TestRoller, event: Value) -> Value {
    r.handle(&event, now_ms() + 2_000).await.unwrap()
}

/// [`invoke`] with `{"action": "start"}`.
pub async fn start(r: &TestRoller) -> Value {
    invoke(r, json!({"action": "start"})).await
}

/// [`invoke`] with `{"action": "watch"}` (the schedule's).
pub async fn watch(r: &TestRoller) -> Value {
    invoke(r, json!({"action": "watch"})).await
}

/// The report of the one group.
pub fn group_report(result: &Value) -> Value {
    let groups = result["groups"].as_array().cloned().unwrap_or_default();
    assert_eq!(groups.len(), 1, "{result}");
    groups[0].clone()
}

/// The step the group's report says comes next (`wait`, `up_to_date`, ...).
pub fn next_step(result: &Value) -> String {
    group_report(result)["next"]["step"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Launch template versions ami-rollout made.
pub async fn versions_made(sdk: &aws_config::SdkConfig, fleet: &Fleet) -> usize {
    aws_sdk_ec2::Client::new(sdk)
        .describe_launch_template_versions()
        .launch_template_name(fleet.launch_template_name())
        .send()
        .await
        .unwrap()
        .launch_template_versions()
        .iter()
        .filter(|v| {
            v.version_description()
                .is_some_and(|d| d.starts_with("ecs-lifecycle ami-rollout:"))
        })
        .count()
}

/// The group's instance refreshes, newest first.
pub async fn refreshes(fleet: &Fleet) -> Vec<InstanceRefresh> {
    fleet.refreshes().await.unwrap()
}

/// Plays one batch of the refresh (the stand-in's) with the hooks' part (new
/// instances join the cluster, terminated ones leave it); returns the status.
pub async fn step(s: &Standin, fleet: &Fleet) -> String {
    let out = fleet.refresh_batch(s).await.unwrap();
    out["status"].as_str().unwrap_or_default().to_owned()
}

/// [`step`] until the refresh has ended; its last status.
pub async fn step_until_over(s: &Standin, fleet: &Fleet) -> String {
    for _ in 0..20 {
        let status = step(s, fleet).await;
        if !ACTIVE_REFRESH.contains(&status.as_str()) {
            return status;
        }
    }
    panic!("the refresh did not end in 20 steps");
}

/// Given a fleet `name` of `size` instances on the group's AMI (`old`) and a
/// new AMI (`new`): `(sdk, fleet, old, new)`.
pub async fn setup(
    s: &Standin,
    name: &str,
    size: i32,
) -> (aws_config::SdkConfig, Fleet, String, String) {
    let sdk = s.sdk_config().await;
    let fleet = Fleet::create(&sdk, &FleetSpec::new(name, size))
        .await
        .unwrap();
    let (_, old) = fleet.group_template(&sdk).await.unwrap();
    let new = fleet
        .new_ami(&sdk, &format!("{name}-al2023-ecs-next"))
        .await
        .unwrap();
    assert_ne!(old, new);
    (sdk, fleet, old, new)
}

/// The parameter names `ami`.
pub async fn publish(sdk: &aws_config::SdkConfig, ami: &str) {
    put_parameter(sdk, PARAM, ami).await.unwrap();
}

/// Given a rollout to `ami`: published, started (`{"action": "start"}`), and
/// `batches` batches of its refresh played.
pub async fn started(
    s: &Standin,
    sdk: &aws_config::SdkConfig,
    fleet: &Fleet,
    r: &TestRoller,
    ami: &str,
    batches: usize,
) {
    publish(sdk, ami).await;
    start(r).await;
    for _ in 0..batches {
        step(s, fleet).await;
    }
}

/// An operator cancels the group's refresh.
pub async fn cancel_refresh(fleet: &Fleet) {
    fleet
        .autoscaling
        .cancel_instance_refresh()
        .auto_scaling_group_name(&fleet.asg)
        .send()
        .await
        .unwrap();
}

/// No refusal is recorded on the group.
pub async fn assert_not_refused(fleet: &Fleet) {
    let tags = fleet.group_tags().await.unwrap();
    assert!(!tags.contains_key(REFUSED_AMI_TAG), "{tags:?}");
}

/// The group's launch template at `version` ("1", "$Latest", ...).
pub fn template_version(fleet: &Fleet, version: &str) -> LaunchTemplateSpecification {
    LaunchTemplateSpecification::builder()
        .launch_template_name(fleet.launch_template_name())
        .version(version)
        .build()
}

/// A refresh's desired configuration: the group's launch template at `version`.
pub fn desired(fleet: &Fleet, version: &str) -> DesiredConfiguration {
    DesiredConfiguration::builder()
        .launch_template(template_version(fleet, version))
        .build()
}

/// The group is pinned to its launch template's `version`, as an operator (or
/// ami-rollout) does before a refresh with AutoRollback.
pub async fn pin(fleet: &Fleet, version: &str) {
    fleet
        .autoscaling
        .update_auto_scaling_group()
        .auto_scaling_group_name(&fleet.asg)
        .launch_template(template_version(fleet, version))
        .send()
        .await
        .unwrap();
}

/// A new version of the group's launch template: version 1 with `ami`;
/// returns its number.
pub async fn new_version(
    ec2: &aws_sdk_ec2::Client,
    fleet: &Fleet,
    ami: &str,
    description: Option<&str>,
) -> Option<i64> {
    ec2.create_launch_template_version()
        .launch_template_name(fleet.launch_template_name())
        .source_version("1")
        .set_version_description(description.map(str::to_owned))
        .launch_template_data(
            aws_sdk_ec2::types::RequestLaunchTemplateData::builder()
                .image_id(ami)
                .build(),
        )
        .send()
        .await
        .unwrap()
        .launch_template_version()
        .and_then(|v| v.version_number())
}

/// What the group's report says comes next (`step`, `phase`, `outcome`, `why`, ...).
pub fn next_of(result: &Value) -> Value {
    group_report(result)["next"].clone()
}

/// Then the next watch finds the rollout over, succeeded; its answer.
pub async fn watch_succeeded(r: &TestRoller) -> Value {
    let out = watch(r).await;
    assert_eq!(next_of(&out)["outcome"], "succeeded", "{out}");
    out
}

/// When Auto Scaling plays the refresh to its end, then it is `Successful` and
/// the next watch finds the rollout succeeded; that watch's answer.
pub async fn refresh_succeeds(s: &Standin, fleet: &Fleet, r: &TestRoller) -> Value {
    assert_eq!(step_until_over(s, fleet).await, "Successful");
    watch_succeeded(r).await
}

/// When an operator cancels the refresh, then it ends `Cancelled` and the next
/// watch restores the group; that watch's answer.
pub async fn cancelled_then_restoring(s: &Standin, fleet: &Fleet, r: &TestRoller) -> Value {
    cancel_refresh(fleet).await;
    assert_eq!(step_until_over(s, fleet).await, "Cancelled");
    let out = watch(r).await;
    assert_eq!(next_of(&out)["phase"], "restoring", "{out}");
    out
}

/// StartInstanceRefresh on `fleet`'s group, towards `version` of its launch
/// template (none: the group's own) with `preferences`: the refresh's id.
pub async fn start_refresh(
    fleet: &Fleet,
    version: Option<&str>,
    preferences: Option<RefreshPreferences>,
) -> Result<String, SdkError<StartInstanceRefreshError>> {
    fleet
        .autoscaling
        .start_instance_refresh()
        .auto_scaling_group_name(&fleet.asg)
        .set_desired_configuration(version.map(|v| desired(fleet, v)))
        .set_preferences(preferences)
        .send()
        .await
        .map(|out| out.instance_refresh_id().unwrap_or_default().to_owned())
}

/// The group's scaling activities, newest first (one page).
pub async fn scaling_activities(fleet: &Fleet) -> Vec<Activity> {
    fleet
        .autoscaling
        .describe_scaling_activities()
        .auto_scaling_group_name(&fleet.asg)
        .send()
        .await
        .unwrap()
        .activities()
        .to_vec()
}
