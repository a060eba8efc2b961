//! The read-only inventory adapters (`ecs_lifecycle::inventory`, behind the
//! operator CLI) with aws-smithy-mocks: request shapes, pagination, batch
//! limits, the shapes AWS answers in, and the error codes that mean "no such
//! thing" rather than failure.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed set-up is a failed test

use aws_sdk_autoscaling::operation::describe_auto_scaling_groups::DescribeAutoScalingGroupsOutput;
use aws_sdk_autoscaling::operation::describe_auto_scaling_instances::DescribeAutoScalingInstancesOutput;
use aws_sdk_autoscaling::operation::describe_instance_refreshes::DescribeInstanceRefreshesOutput;
use aws_sdk_autoscaling::operation::describe_lifecycle_hooks::DescribeLifecycleHooksOutput;
use aws_sdk_autoscaling::operation::describe_scaling_activities::DescribeScalingActivitiesOutput;
use aws_sdk_autoscaling::types::{
    Activity as SdkActivity, AutoScalingGroup, AutoScalingInstanceDetails, DesiredConfiguration,
    Instance, InstanceRefresh, InstanceRefreshStatus, LaunchTemplate, LaunchTemplateSpecification,
    LifecycleHook, LifecycleState as SdkLifecycleState, MixedInstancesPolicy,
    ScalingActivityStatusCode, TagDescription,
};
use aws_sdk_ec2::operation::describe_launch_template_versions::DescribeLaunchTemplateVersionsOutput;
use aws_sdk_ec2::types::{LaunchTemplateVersion, ResponseLaunchTemplateData};
use aws_sdk_ecs::operation::describe_container_instances::DescribeContainerInstancesOutput;
use aws_sdk_ecs::operation::list_container_instances::ListContainerInstancesOutput;
use aws_sdk_ecs::types::ContainerInstance as SdkCi;
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use aws_smithy_runtime_api::http::Response as HttpResponse;
use aws_smithy_types::DateTime;
use aws_smithy_types::body::SdkBody;
use ecs_lifecycle::inventory::{
    AutoScalingInventory, Ec2Inventory, EcsInventory, LaunchTemplateRef, TemplateImage,
};
use ecs_lifecycle::model::{InstanceStatus, LifecycleState, RefreshStatus, Transition};

const T0: i64 = 1_800_000_000; // epoch seconds

fn json_error(kind: &str, message: &str) -> HttpResponse {
    HttpResponse::new(
        400.try_into().unwrap(),
        SdkBody::from(format!(r#"{{"__type":"{kind}","message":"{message}"}}"#)),
    )
}

fn query_error(code: &str, message: &str) -> HttpResponse {
    HttpResponse::new(
        400.try_into().unwrap(),
        SdkBody::from(format!(
            "<ErrorResponse xmlns=\"https://autoscaling.amazonaws.com/doc/2011-01-01/\"><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>r-1</RequestId></ErrorResponse>"
        )),
    )
}

fn ec2_error(code: &str, message: &str) -> HttpResponse {
    HttpResponse::new(
        400.try_into().unwrap(),
        SdkBody::from(format!(
            "<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors><RequestID>r</RequestID></Response>"
        )),
    )
}

fn ci_arn(n: usize) -> String {
    format!("arn:aws:ecs:us-east-1:123456789012:container-instance/prod/{n:032x}")
}

fn instance_id(n: usize) -> String {
    format!("i-{n:017x}")
}

#[tokio::test]
async fn cluster_instances_page_and_describe_100_at_a_time() {
    let list = mock!(aws_sdk_ecs::Client::list_container_instances)
        .match_requests(|r| {
            r.cluster() == Some("prod") && r.max_results() == Some(100) && r.filter().is_none()
        })
        .then_compute_output(|r| {
            let (range, next) = if r.next_token().is_none() {
                (0..100, Some("p2"))
            } else {
                (100..150, None)
            };
            ListContainerInstancesOutput::builder()
                .set_container_instance_arns(Some(range.map(ci_arn).collect()))
                .set_next_token(next.map(str::to_owned))
                .build()
        });
    let describe = mock!(aws_sdk_ecs::Client::describe_container_instances)
        .match_requests(|r| r.cluster() == Some("prod") && r.container_instances().len() <= 100)
        .then_compute_output(|r| {
            let cis = r.container_instances().iter().map(|arn| {
                let n = usize::from_str_radix(arn.rsplit('/').next().unwrap(), 16).unwrap();
                SdkCi::builder()
                    .container_instance_arn(arn)
                    .ec2_instance_id(instance_id(n))
                    .status(if n == 7 { "DRAINING" } else { "ACTIVE" })
                    .agent_connected(n != 8)
                    .running_tasks_count(2)
                    .pending_tasks_count(1)
                    .registered_at(DateTime::from_secs(T0))
                    .build()
            });
            DescribeContainerInstancesOutput::builder()
                .set_container_instances(Some(cis.collect()))
                .build()
        });
    let ecs = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&list, &describe]);
    let all = ecs.cluster_instances("prod").await.unwrap().unwrap();
    assert_eq!(all.len(), 150);
    assert_eq!((list.num_calls(), describe.num_calls()), (2, 2));
    let seven = all
        .iter()
        .find(|c| c.ec2_instance_id == instance_id(7))
        .unwrap();
    assert_eq!(seven.status, InstanceStatus::Draining);
    assert_eq!((seven.running_tasks, seven.pending_tasks), (2, 1));
    assert_eq!(seven.registered_ms, Some(1_800_000_000_000));
    assert!(
        !all.iter()
            .find(|c| c.ec2_instance_id == instance_id(8))
            .unwrap()
            .agent_connected
    );
}

#[tokio::test]
async fn an_unknown_cluster_is_none_and_other_errors_keep_their_code() {
    let missing = mock!(aws_sdk_ecs::Client::list_container_instances)
        .then_http_response(|| json_error("ClusterNotFoundException", "Cluster not found."));
    let denied = mock!(aws_sdk_ecs::Client::list_container_instances)
        .then_http_response(|| json_error("AccessDeniedException", "not authorized"));
    let ecs = mock_client!(aws_sdk_ecs, RuleMode::Sequential, [&missing, &denied]);
    assert_eq!(ecs.cluster_instances("nope").await.unwrap(), None);
    let err = ecs.cluster_instances("prod").await.unwrap_err();
    assert_eq!(
        (err.operation, err.code.as_deref()),
        ("ListContainerInstances", Some("AccessDeniedException"))
    );
}

#[tokio::test]
async fn memberships_ask_50_ids_a_call_and_follow_pages() {
    let rule = mock!(aws_sdk_autoscaling::Client::describe_auto_scaling_instances)
        .match_requests(|r| r.instance_ids().len() <= 50 && r.max_records() == Some(50))
        .then_compute_output(|r| {
            // The first id of each batch comes on a second page; ids divisible
            // by 10 are in no group (Auto Scaling ignores them).
            let ids: Vec<&String> = r.instance_ids().iter().collect();
            let page: Vec<&String> = match r.next_token() {
                None => ids[1..].to_vec(),
                Some(_) => ids[..1].to_vec(),
            };
            let details = page
                .into_iter()
                .filter(|id| usize::from_str_radix(&id[2..], 16).unwrap() % 10 != 0)
                .map(|id| {
                    AutoScalingInstanceDetails::builder()
                        .instance_id(id)
                        .auto_scaling_group_name("fleet")
                        .lifecycle_state("Terminating:Wait")
                        .availability_zone("us-east-1a")
                        .health_status("HEALTHY")
                        .protected_from_scale_in(false)
                        .build()
                });
            DescribeAutoScalingInstancesOutput::builder()
                .set_auto_scaling_instances(Some(details.collect()))
                .set_next_token(r.next_token().is_none().then(|| "p2".to_owned()))
                .build()
        });
    let asg = mock_client!(aws_sdk_autoscaling, RuleMode::MatchAny, [&rule]);
    let ids: Vec<String> = (1..=120).map(instance_id).collect();
    let found = asg.memberships(&ids).await.unwrap();
    assert_eq!(rule.num_calls(), 6, "3 batches (50, 50, 20) of 2 pages");
    assert_eq!(found.len(), 120 - 12);
    assert!(
        found.iter().any(|m| m.instance_id == instance_id(51)),
        "a second page's id"
    );
    assert!(
        found
            .iter()
            .all(|m| m.group == "fleet" && m.lifecycle_state == LifecycleState::TerminatingWait)
    );
    assert!(asg.memberships(&[]).await.unwrap().is_empty());
    assert_eq!(rule.num_calls(), 6, "no ids, no call");
}

fn lt_spec(
    id: Option<&str>,
    name: Option<&str>,
    version: Option<&str>,
) -> LaunchTemplateSpecification {
    LaunchTemplateSpecification::builder()
        .set_launch_template_id(id.map(str::to_owned))
        .set_launch_template_name(name.map(str::to_owned))
        .set_version(version.map(str::to_owned))
        .build()
}

fn sdk_group(name: &str) -> AutoScalingGroup {
    AutoScalingGroup::builder()
        .auto_scaling_group_name(name)
        .min_size(0)
        .max_size(4)
        .desired_capacity(2)
        .build()
}

#[tokio::test]
async fn groups_by_name_in_batches_of_100_or_every_group_page_by_page() {
    let named = mock!(aws_sdk_autoscaling::Client::describe_auto_scaling_groups)
        .match_requests(|r| {
            !r.auto_scaling_group_names().is_empty()
                && r.auto_scaling_group_names().len() <= 100
                && r.max_records() == Some(100)
        })
        .then_compute_output(|r| {
            DescribeAutoScalingGroupsOutput::builder()
                .set_auto_scaling_groups(Some(
                    r.auto_scaling_group_names()
                        .iter()
                        .filter(|n| *n != "gone")
                        .map(|n| sdk_group(n))
                        .collect(),
                ))
                .build()
        });
    let every = mock!(aws_sdk_autoscaling::Client::describe_auto_scaling_groups)
        .match_requests(|r| r.auto_scaling_group_names().is_empty() && r.max_records() == Some(100))
        .then_compute_output(|r| {
            let page_one = r.next_token().is_none();
            let groups = if page_one {
                vec![
                    AutoScalingGroup::builder()
                        .auto_scaling_group_name("web")
                        .desired_capacity(3)
                        .launch_template(lt_spec(Some("lt-0abc"), Some("web-lt"), Some("7")))
                        .instances(
                            Instance::builder()
                                .instance_id(instance_id(1))
                                .lifecycle_state(SdkLifecycleState::from("Pending:Wait"))
                                .build(),
                        )
                        .tags(
                            TagDescription::builder()
                                .key("ecs-lifecycle:refused-ami")
                                .value("ami-0123456789abcdef0 2026-11-20T12:00:00Z")
                                .build(),
                        )
                        .build(),
                    AutoScalingGroup::builder()
                        .auto_scaling_group_name("mixed")
                        .mixed_instances_policy(
                            MixedInstancesPolicy::builder()
                                .launch_template(
                                    LaunchTemplate::builder()
                                        .launch_template_specification(lt_spec(
                                            None,
                                            Some("mixed-lt"),
                                            None,
                                        ))
                                        .build(),
                                )
                                .build(),
                        )
                        .build(),
                ]
            } else {
                vec![
                    AutoScalingGroup::builder()
                        .auto_scaling_group_name("legacy")
                        .launch_configuration_name("old-lc")
                        .build(),
                ]
            };
            DescribeAutoScalingGroupsOutput::builder()
                .set_auto_scaling_groups(Some(groups))
                .set_next_token(page_one.then(|| "p2".to_owned()))
                .build()
        });
    let asg = mock_client!(aws_sdk_autoscaling, RuleMode::MatchAny, [&named, &every]);

    let mut names: Vec<String> = (0..150).map(|n| format!("g{n}")).collect();
    names.push("gone".into());
    let found = asg.groups(&names).await.unwrap();
    assert_eq!(
        (found.len(), named.num_calls()),
        (150, 2),
        "151 names: 100 + 51"
    );

    let all = asg.groups(&[]).await.unwrap();
    assert_eq!(every.num_calls(), 2);
    let by = |n: &str| all.iter().find(|g| g.name == n).unwrap();
    let web = by("web");
    assert_eq!(
        web.launch_template,
        Some(LaunchTemplateRef {
            id: Some("lt-0abc".into()),
            name: Some("web-lt".into()),
            version: "7".into()
        })
    );
    assert_eq!(
        web.instances,
        vec![(instance_id(1), LifecycleState::PendingWait)]
    );
    assert_eq!(web.tags[0].0, "ecs-lifecycle:refused-ami");
    let mixed = by("mixed").launch_template.clone().unwrap();
    assert_eq!(
        (mixed.label(), mixed.version.as_str()),
        ("mixed-lt", "$Default")
    );
    assert_eq!(by("legacy").launch_template, None);
}

#[tokio::test]
async fn hooks_with_their_transitions_and_timeouts() {
    let rule = mock!(aws_sdk_autoscaling::Client::describe_lifecycle_hooks)
        .match_requests(|r| {
            r.auto_scaling_group_name() == Some("fleet") && r.lifecycle_hook_names().is_empty()
        })
        .then_output(|| {
            DescribeLifecycleHooksOutput::builder()
                .lifecycle_hooks(
                    LifecycleHook::builder()
                        .lifecycle_hook_name("drain")
                        .lifecycle_transition("autoscaling:EC2_INSTANCE_TERMINATING")
                        .heartbeat_timeout(300)
                        .global_timeout(30_000)
                        .default_result("CONTINUE")
                        .build(),
                )
                .lifecycle_hooks(
                    LifecycleHook::builder()
                        .lifecycle_hook_name("verify")
                        .lifecycle_transition("autoscaling:EC2_INSTANCE_LAUNCHING")
                        .build(),
                )
                .lifecycle_hooks(
                    LifecycleHook::builder()
                        .lifecycle_hook_name("future")
                        .lifecycle_transition("autoscaling:EC2_INSTANCE_HIBERNATING")
                        .heartbeat_timeout(60)
                        .build(),
                )
                .build()
        });
    let asg = mock_client!(aws_sdk_autoscaling, RuleMode::MatchAny, [&rule]);
    let hooks = asg.lifecycle_hooks("fleet").await.unwrap();
    let view: Vec<_> = hooks
        .iter()
        .map(|h| {
            (
                h.name.as_str(),
                h.transition,
                h.timeouts.heartbeat_timeout_s,
                h.timeouts.global_timeout_s,
                h.default_result.as_str(),
            )
        })
        .collect();
    assert_eq!(
        view,
        [
            (
                "drain",
                Some(Transition::Terminating),
                300,
                30_000,
                "CONTINUE"
            ),
            // Auto Scaling's defaults: 3600 s, the global timeout capped at 48 h, ABANDON.
            (
                "verify",
                Some(Transition::Launching),
                3600,
                172_800,
                "ABANDON"
            ),
            ("future", None, 60, 6000, "ABANDON"),
        ]
    );
}

fn sdk_activity(n: i64, code: &str, started: i64) -> SdkActivity {
    SdkActivity::builder()
        .activity_id(format!("a-{n}"))
        .auto_scaling_group_name("fleet")
        .description(format!(
            "Terminating EC2 instance: {}",
            instance_id(usize::try_from(n).unwrap())
        ))
        .cause("At 2027-01-15T08:00:00Z an instance was taken out of service")
        .start_time(DateTime::from_secs(started))
        .status_code(ScalingActivityStatusCode::from(code))
        .build()
}

#[tokio::test]
async fn activities_are_read_back_to_the_horizon_and_no_further() {
    // Newest first, 100 a page, one a minute: page 1 is all newer than the
    // horizon, page 2 reaches back past it, so page 3 is never asked for.
    let rule = mock!(aws_sdk_autoscaling::Client::describe_scaling_activities)
        .match_requests(|r| {
            r.auto_scaling_group_name() == Some("fleet") && r.max_records() == Some(100)
        })
        .then_compute_output(|r| {
            let page: i64 = r.next_token().map_or(0, |t| t.parse().unwrap());
            let activities = (page * 100..page * 100 + 100).map(|n| {
                sdk_activity(
                    n,
                    if n == 0 {
                        "MidLifecycleAction"
                    } else {
                        "Successful"
                    },
                    T0 - 60 * n,
                )
            });
            DescribeScalingActivitiesOutput::builder()
                .set_activities(Some(activities.collect()))
                .next_token((page + 1).to_string())
                .build()
        });
    let asg = mock_client!(aws_sdk_autoscaling, RuleMode::MatchAny, [&rule]);
    let since_ms = u64::try_from((T0 - 60 * 150) * 1000).unwrap();
    let found = asg.activities_since("fleet", since_ms).await.unwrap();
    assert_eq!(rule.num_calls(), 2);
    assert_eq!(
        found.len(),
        151,
        "activities 0..=150 started at or after the horizon"
    );
    assert!(
        found
            .iter()
            .all(|a| a.started_ms.is_some_and(|t| t >= since_ms))
    );
    assert!(!found[0].is_finished() && found[1].is_finished());
    assert_eq!(found[0].status_code, "MidLifecycleAction");
    assert_eq!(
        found[0].description,
        format!("Terminating EC2 instance: {}", instance_id(0))
    );
}

fn sdk_refresh(
    id: &str,
    status: &str,
    started: i64,
    desired: Option<DesiredConfiguration>,
) -> InstanceRefresh {
    InstanceRefresh::builder()
        .instance_refresh_id(id)
        .auto_scaling_group_name("fleet")
        .status(InstanceRefreshStatus::from(status))
        .start_time(DateTime::from_secs(started))
        .percentage_complete(40)
        .instances_to_update(3)
        .set_desired_configuration(desired)
        .build()
}

#[tokio::test]
async fn the_newest_refresh_by_start_time_with_its_desired_template() {
    let rule = mock!(aws_sdk_autoscaling::Client::describe_instance_refreshes)
        .match_requests(|r| {
            r.auto_scaling_group_name() == Some("fleet") && r.max_records() == Some(100)
        })
        .then_output(|| {
            DescribeInstanceRefreshesOutput::builder()
                .instance_refreshes(sdk_refresh("old", "Successful", T0 - 86_400, None))
                .instance_refreshes(sdk_refresh(
                    "new",
                    "InProgress",
                    T0,
                    Some(
                        DesiredConfiguration::builder()
                            .launch_template(lt_spec(Some("lt-0abc"), None, Some("8")))
                            .build(),
                    ),
                ))
                .instance_refreshes(sdk_refresh("older", "Cancelled", T0 - 2 * 86_400, None))
                .build()
        });
    let none = mock!(aws_sdk_autoscaling::Client::describe_instance_refreshes)
        .then_output(|| DescribeInstanceRefreshesOutput::builder().build());
    let asg = mock_client!(aws_sdk_autoscaling, RuleMode::Sequential, [&rule, &none]);
    let r = asg.newest_refresh("fleet").await.unwrap().unwrap();
    assert_eq!(
        (r.id.as_str(), r.status.clone()),
        ("new", RefreshStatus::InProgress)
    );
    assert_eq!(
        (r.percentage, r.instances_to_update, r.started_ms),
        (Some(40), Some(3), Some(1_800_000_000_000))
    );
    assert_eq!(
        r.desired_template,
        Some(LaunchTemplateRef {
            id: Some("lt-0abc".into()),
            name: None,
            version: "8".into()
        })
    );
    assert_eq!(asg.newest_refresh("fleet").await.unwrap(), None);
}

#[tokio::test]
async fn group_calls_keep_their_error_codes() {
    let rule = mock!(aws_sdk_autoscaling::Client::describe_lifecycle_hooks)
        .then_http_response(|| query_error("AccessDenied", "not authorized"));
    let asg = mock_client!(aws_sdk_autoscaling, RuleMode::Sequential, [&rule]);
    let err = asg.lifecycle_hooks("fleet").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "autoscaling:DescribeLifecycleHooks failed with AccessDenied: not authorized"
    );
}

#[tokio::test]
async fn template_images_by_id_or_name_and_unknown_ones() {
    let by_id = mock!(aws_sdk_ec2::Client::describe_launch_template_versions)
        .match_requests(|r| {
            r.launch_template_id() == Some("lt-0abc")
                && r.launch_template_name().is_none()
                && r.versions() == ["$Latest"]
        })
        .then_output(|| {
            DescribeLaunchTemplateVersionsOutput::builder()
                .launch_template_versions(
                    LaunchTemplateVersion::builder()
                        .version_number(9)
                        .launch_template_data(
                            ResponseLaunchTemplateData::builder()
                                .image_id("ami-0123456789abcdef0")
                                .build(),
                        )
                        .build(),
                )
                .build()
        });
    let by_name = mock!(aws_sdk_ec2::Client::describe_launch_template_versions)
        .match_requests(|r| {
            r.launch_template_id().is_none()
                && r.launch_template_name() == Some("web-lt")
                && r.versions() == ["3"]
        })
        .then_output(|| {
            DescribeLaunchTemplateVersionsOutput::builder()
                .launch_template_versions(
                    LaunchTemplateVersion::builder().version_number(3).build(),
                )
                .build()
        });
    let unknown =
        mock!(aws_sdk_ec2::Client::describe_launch_template_versions).then_http_response(|| {
            ec2_error(
                "InvalidLaunchTemplateId.VersionNotFound",
                "Could not find launch template version 99",
            )
        });
    let denied = mock!(aws_sdk_ec2::Client::describe_launch_template_versions)
        .then_http_response(|| ec2_error("UnauthorizedOperation", "You are not authorized"));
    let ec2 = mock_client!(
        aws_sdk_ec2,
        RuleMode::Sequential,
        [&by_id, &by_name, &unknown, &denied]
    );
    let t = |id: Option<&str>, name: Option<&str>, version: &str| LaunchTemplateRef {
        id: id.map(str::to_owned),
        name: name.map(str::to_owned),
        version: version.into(),
    };
    assert_eq!(
        ec2.template_image(&t(Some("lt-0abc"), Some("web-lt"), "$Latest"))
            .await
            .unwrap(),
        Some(TemplateImage {
            number: 9,
            image_id: Some("ami-0123456789abcdef0".into())
        })
    );
    assert_eq!(
        ec2.template_image(&t(None, Some("web-lt"), "3"))
            .await
            .unwrap(),
        Some(TemplateImage {
            number: 3,
            image_id: None
        })
    );
    assert_eq!(
        ec2.template_image(&t(Some("lt-0abc"), None, "99"))
            .await
            .unwrap(),
        None
    );
    let err = ec2
        .template_image(&t(Some("lt-0abc"), None, "1"))
        .await
        .unwrap_err();
    assert_eq!(err.code.as_deref(), Some("UnauthorizedOperation"));
    assert_eq!(
        ec2.template_image(&t(None, None, "1")).await.unwrap(),
        None,
        "nothing to ask"
    );
    assert_eq!(denied.num_calls(), 1);
}
