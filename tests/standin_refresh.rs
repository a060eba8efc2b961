//! The stand-in's instance refresh and scaling activities through the Rust SDK
//! (aws-sdk-autoscaling, aws-sdk-ec2) over real HTTP. moto 5.2.5 has neither:
//! tests/standin/standin.py keeps the refreshes (each `refresh_step` plays one
//! batch), records the activities, and honours CreateLaunchTemplateVersion's
//! SourceVersion. These tests prove the SDK parses what it answers:
//! DescribeInstanceRefreshes (status, progress, desired configuration, rollback
//! details), DescribeScalingActivities, and the refresh errors' codes.

//!
//! Given / When / Then helpers: `tests/support/rollout.rs` (the next test of this
//! workflow takes them from there, and adds what it needs there).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed set-up is a failed test

use aws_sdk_autoscaling::error::ProvideErrorMetadata;
use aws_sdk_autoscaling::types::{
    AutoScalingGroup, InstanceRefresh, InstanceRefreshStatus, RefreshPreferences,
    ScalingActivityStatusCode,
};
use aws_sdk_ec2::types::InstanceType;
use ecs_lifecycle_suite::fleet_on;
use ecs_lifecycle_suite::rollout::{new_version, pin, scaling_activities, start_refresh};
use testkit::{Fleet, FleetSpec, Standin};

const NEW_AMI: &str = "ami-0a1b2c3d4e5f60718";
const LAUNCHING: &str = "autoscaling:EC2_INSTANCE_LAUNCHING";

/// Given a fleet `name` of two instances and version 2 of its launch template
/// (version 1 with [`NEW_AMI`]): an EC2 client, the fleet, and version 1's AMI.
async fn with_new_version(s: &Standin, name: &str) -> (aws_sdk_ec2::Client, Fleet, String) {
    let (sdk, fleet) = fleet_on(s, &FleetSpec::new(name, 2)).await;
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let (old_ami, _, _) = version_data(&ec2, &fleet, "1").await;
    assert_eq!(
        new_version(&ec2, &fleet, NEW_AMI, Some("new AMI")).await,
        Some(2)
    );
    (ec2, fleet, old_ami)
}

/// The AMI of a launch template version ("1", "$Latest", ...) and its instance type.
async fn version_data(
    ec2: &aws_sdk_ec2::Client,
    fleet: &Fleet,
    version: &str,
) -> (String, Option<InstanceType>, Option<String>) {
    let out = ec2
        .describe_launch_template_versions()
        .launch_template_name(fleet.launch_template_name())
        .versions(version)
        .send()
        .await
        .unwrap();
    let v = &out.launch_template_versions()[0];
    let data = v.launch_template_data().unwrap();
    (
        data.image_id().unwrap().to_owned(),
        data.instance_type().cloned(),
        v.version_description().map(str::to_owned),
    )
}

async fn latest(fleet: &Fleet) -> InstanceRefresh {
    fleet
        .refreshes()
        .await
        .unwrap()
        .first()
        .cloned()
        .expect("a refresh")
}

fn status_of(refresh: &InstanceRefresh) -> InstanceRefreshStatus {
    refresh.status().cloned().expect("a status")
}

/// The group, as DescribeAutoScalingGroups describes it.
async fn group(fleet: &Fleet) -> AutoScalingGroup {
    fleet
        .autoscaling
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(&fleet.asg)
        .send()
        .await
        .unwrap()
        .auto_scaling_groups()[0]
        .clone()
}

/// The group's launch template version and, per instance, the version it was
/// launched from and its AMI (from EC2).
async fn group_state(ec2: &aws_sdk_ec2::Client, fleet: &Fleet) -> (String, Vec<(String, String)>) {
    let group = group(fleet).await;
    let version = group
        .launch_template()
        .and_then(|t| t.version())
        .unwrap()
        .to_owned();
    let mut out = Vec::new();
    for i in group.instances() {
        let id = i.instance_id().unwrap();
        let described = ec2
            .describe_instances()
            .instance_ids(id)
            .send()
            .await
            .unwrap();
        let ami = described.reservations()[0].instances()[0]
            .image_id()
            .unwrap()
            .to_owned();
        let launched_from = i
            .launch_template()
            .and_then(|t| t.version())
            .unwrap()
            .to_owned();
        out.push((launched_from, ami));
    }
    out.sort();
    (version, out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_replaces_every_instance_and_the_sdk_reads_its_progress() {
    let s = Standin::start().unwrap();
    // Given version 2 made from version 1 with only the AMI changed
    let (ec2, fleet, old_ami) = with_new_version(&s, "refresh").await;
    let (ami, instance_type, description) = version_data(&ec2, &fleet, "$Latest").await;
    assert_eq!(
        (ami.as_str(), instance_type, description.as_deref()),
        (NEW_AMI, Some(InstanceType::M5Large), Some("new AMI")),
        "SourceVersion: the instance type is inherited"
    );

    // When a refresh towards it starts, a second one is refused
    let prefs = RefreshPreferences::builder()
        .skip_matching(true)
        .min_healthy_percentage(100)
        .build();
    let id = start_refresh(&fleet, Some("2"), Some(prefs)).await.unwrap();
    assert!(!id.is_empty());
    let err = start_refresh(&fleet, None, None).await.unwrap_err();
    assert_eq!(
        err.as_service_error().and_then(|e| e.code()),
        Some("InstanceRefreshInProgress"),
        "{err:?}"
    );
    let pending = latest(&fleet).await;
    assert_eq!(pending.instance_refresh_id(), Some(id.as_str()));
    assert_eq!(status_of(&pending), InstanceRefreshStatus::Pending);
    assert_eq!(pending.instances_to_update(), Some(2));
    assert_eq!(
        pending.preferences().and_then(|p| p.skip_matching()),
        Some(true)
    );
    assert!(pending.start_time().is_some());

    // Then each step replaces one instance, and the SDK reads the progress
    assert_eq!(s.refresh_step(&fleet.asg).unwrap()["status"], "InProgress");
    let out = s.refresh_step(&fleet.asg).unwrap();
    assert_eq!(out["launched"].as_array().map(Vec::len), Some(1), "{out}");
    assert_eq!(out["terminated"].as_array().map(Vec::len), Some(1), "{out}");
    let half = latest(&fleet).await;
    assert_eq!(status_of(&half), InstanceRefreshStatus::InProgress);
    assert_eq!(
        (half.percentage_complete(), half.instances_to_update()),
        (Some(50), Some(1))
    );
    assert_eq!(
        half.desired_configuration()
            .and_then(|d| d.launch_template())
            .map(|t| (t.launch_template_name(), t.version())),
        Some((Some(fleet.launch_template_name().as_str()), Some("2")))
    );
    assert!(half.end_time().is_none());

    assert_eq!(s.refresh_step(&fleet.asg).unwrap()["status"], "Successful");
    let done = latest(&fleet).await;
    assert_eq!(status_of(&done), InstanceRefreshStatus::Successful);
    assert_eq!(
        (done.percentage_complete(), done.instances_to_update()),
        (Some(100), Some(0))
    );
    assert!(done.end_time().is_some());

    // And the group took version 2; its instances run the new AMI
    let (version, instances) = group_state(&ec2, &fleet).await;
    assert_eq!(version, "2");
    assert_eq!(instances, vec![("2".to_owned(), NEW_AMI.to_owned()); 2]);
    assert_ne!(old_ami, NEW_AMI);

    // And the activities say so, newest first
    let activities = scaling_activities(&fleet).await;
    let seen: Vec<(Option<ScalingActivityStatusCode>, bool)> = activities
        .iter()
        .map(|a| {
            (
                a.status_code().cloned(),
                a.description()
                    .is_some_and(|d| d.starts_with("Terminating EC2 instance: ")),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (Some(ScalingActivityStatusCode::Successful), true),
            (Some(ScalingActivityStatusCode::Successful), false),
            (Some(ScalingActivityStatusCode::Successful), true),
            (Some(ScalingActivityStatusCode::Successful), false),
        ]
    );
    let newest = &activities[0];
    assert!(
        newest
            .cause()
            .is_some_and(|c| c.contains("in response to an instance refresh")),
        "{newest:?}"
    );
    assert_eq!(newest.progress(), Some(100));
    assert!(newest.start_time().is_some() && newest.end_time().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_refresh_rolls_back_and_an_abandoned_launch_is_cancelled() {
    let s = Standin::start().unwrap();
    let (ec2, fleet, old_ami) = with_new_version(&s, "rollback").await;

    // Given a group on $Latest: AWS refuses AutoRollback
    let rollback = RefreshPreferences::builder().auto_rollback(true).build();
    let refused = start_refresh(&fleet, Some("2"), Some(rollback))
        .await
        .unwrap_err();
    assert_eq!(
        refused.as_service_error().and_then(|e| e.code()),
        Some("ValidationError")
    );
    // ... so it is pinned to version 1 first
    pin(&fleet, "1").await;
    let prefs = RefreshPreferences::builder()
        .auto_rollback(true)
        .skip_matching(true)
        .build();
    start_refresh(&fleet, Some("2"), Some(prefs)).await.unwrap();

    // When it fails half way
    s.refresh_step(&fleet.asg).unwrap();
    s.refresh_step(&fleet.asg).unwrap();
    let failed = s
        .refresh_fail(&fleet.asg, "Instance failed health checks")
        .unwrap();
    assert_eq!(failed["Status"], "RollbackInProgress", "{failed}");

    // Then the SDK reads the rollback details
    let rolling = latest(&fleet).await;
    assert_eq!(
        status_of(&rolling),
        InstanceRefreshStatus::RollbackInProgress
    );
    let details = rolling.rollback_details().expect("rollback details");
    assert_eq!(
        details.rollback_reason(),
        Some("Instance failed health checks")
    );
    assert_eq!(details.percentage_complete_on_rollback(), Some(50));
    assert_eq!(details.instances_to_update_on_rollback(), Some(1));
    assert!(details.rollback_start_time().is_some());

    // And the rollback puts version 1 back on every instance
    let out = s.refresh_step(&fleet.asg).unwrap();
    assert_eq!(out["status"], "RollbackSuccessful", "{out}");
    assert_eq!(
        status_of(&latest(&fleet).await),
        InstanceRefreshStatus::RollbackSuccessful
    );
    let (version, instances) = group_state(&ec2, &fleet).await;
    assert_eq!(version, "1");
    assert_eq!(instances, vec![("1".to_owned(), old_ami); 2]);
    let none = fleet
        .autoscaling
        .rollback_instance_refresh()
        .auto_scaling_group_name(&fleet.asg)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        none.as_service_error().and_then(|e| e.code()),
        Some("ActiveInstanceRefreshNotFound")
    );

    // When a launch action is completed with ABANDON
    let instance = group(&fleet).await.instances()[0]
        .instance_id()
        .unwrap()
        .to_owned();
    let action = s
        .start_lifecycle_action(&fleet.asg, &fleet.launch_hook, &instance, LAUNCHING)
        .unwrap();
    let token = action["token"].as_str().unwrap().to_owned();
    fleet
        .autoscaling
        .complete_lifecycle_action()
        .auto_scaling_group_name(&fleet.asg)
        .lifecycle_hook_name(&fleet.launch_hook)
        .lifecycle_action_token(&token)
        .lifecycle_action_result("ABANDON")
        .send()
        .await
        .unwrap();

    // Then the launch activity is Cancelled with AWS's message
    let activities = fleet
        .autoscaling
        .describe_scaling_activities()
        .auto_scaling_group_name(&fleet.asg)
        .max_records(1)
        .send()
        .await
        .unwrap();
    assert!(activities.next_token().is_some());
    let cancelled = &activities.activities()[0];
    assert_eq!(
        cancelled.status_code(),
        Some(&ScalingActivityStatusCode::Cancelled)
    );
    assert_eq!(
        cancelled.description(),
        Some(format!("Launching a new EC2 instance: {instance}").as_str())
    );
    assert_eq!(
        cancelled.status_message(),
        Some(
            format!(
                "Instance failed to complete user's Lifecycle Action: Lifecycle Action with token {token} \
                 was abandoned: Lifecycle Action Completed with ABANDON Result"
            )
            .as_str()
        )
    );

    // And a test can record an activity of its own
    let posted = s
        .record_activity(
            &fleet.asg,
            "Failed",
            "Launching a new EC2 instance.  Status Reason: capacity",
            Some("We currently do not have sufficient m5.large capacity"),
            None,
        )
        .unwrap();
    let found = fleet
        .autoscaling
        .describe_scaling_activities()
        .activity_ids(posted["ActivityId"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(
        found
            .activities()
            .iter()
            .map(|a| (a.status_code().cloned(), a.auto_scaling_group_name()))
            .collect::<Vec<_>>(),
        vec![(
            Some(ScalingActivityStatusCode::Failed),
            Some(fleet.asg.as_str())
        )]
    );
}
