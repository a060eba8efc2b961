//! Request shapes, pagination, batch limits, `failures[]`, error-code mapping and
//! retry sequences of the SDK adapters, with aws-smithy-mocks: the calls of the
//! workflows, and (`operator_reads`) those of the operator CLI. (The flow itself
//! is tested against moto server in the suite's tests/.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed set-up is a failed test

use aws_sdk_autoscaling::operation::complete_lifecycle_action::CompleteLifecycleActionOutput;
use aws_sdk_autoscaling::operation::describe_auto_scaling_instances::DescribeAutoScalingInstancesOutput;
use aws_sdk_autoscaling::operation::describe_lifecycle_hooks::DescribeLifecycleHooksOutput;
use aws_sdk_autoscaling::types::{AutoScalingInstanceDetails, LifecycleHook};
use aws_sdk_ecs::operation::delete_attributes::DeleteAttributesOutput;
use aws_sdk_ecs::operation::describe_container_instances::DescribeContainerInstancesOutput;
use aws_sdk_ecs::operation::describe_services::DescribeServicesOutput;
use aws_sdk_ecs::operation::describe_tasks::DescribeTasksOutput;
use aws_sdk_ecs::operation::list_container_instances::ListContainerInstancesOutput;
use aws_sdk_ecs::operation::list_tasks::ListTasksOutput;
use aws_sdk_ecs::operation::put_attributes::PutAttributesOutput;
use aws_sdk_ecs::operation::update_container_instances_state::UpdateContainerInstancesStateOutput;
use aws_sdk_ecs::types::{
    ContainerInstance as SdkCi, Failure, SchedulingStrategy, Service as SdkService, Task as SdkTask,
};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::retry::RetryConfig;
use ecs_lifecycle::model::{
    ActionAck, ActionResult, DRAIN_ATTRIBUTE, EARLY_DRAIN_ATTRIBUTE, EarlyDrain, InstanceStatus,
    Scheduling,
};
use ecs_lifecycle::model::{InstanceId, LifecycleAction, TaskArn, Transition};
use ecs_lifecycle::ports::{AutoScaling, DesiredStatus, Ecs, EcsFailure, Registration, StopResult};

use aws_smithy_runtime_api::http::Response as HttpResponse;

fn json_error(status: u16, kind: &str, message: &str) -> HttpResponse {
    HttpResponse::new(
        status.try_into().unwrap(),
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

fn action(token: Option<&str>) -> LifecycleAction {
    LifecycleAction {
        asg: "fleet".into(),
        hook: Some("drain".into()),
        instance_id: "i-0123456789abcdef0".into(),
        transition: Transition::Terminating,
        token: token.map(str::to_owned),
        time: None,
        metadata: None,
        origin: None,
        destination: None,
        account_id: None,
    }
}

fn ci(n: usize, ec2: &str) -> SdkCi {
    SdkCi::builder()
        .container_instance_arn(format!(
            "arn:aws:ecs:us-east-1:123456789012:container-instance/prod/{n:032x}"
        ))
        .ec2_instance_id(ec2)
        .status("ACTIVE")
        .agent_connected(true)
        .running_tasks_count(3)
        .build()
}

#[tokio::test]
async fn find_container_instance_pages_and_matches_on_ec2_id() {
    // Two pages of 100 + 50 (as an emulator that ignores the filter would return),
    // described 100 at a time; the match is on ec2InstanceId.
    let list = mock!(aws_sdk_ecs::Client::list_container_instances)
        .match_requests(|r| r.filter().is_some_and(|f| f.starts_with("ec2InstanceId == i-")) && r.max_results() == Some(100))
        .then_compute_output(|r| {
            let (range, next) = if r.next_token().is_none() { (0..100, Some("p2")) } else { (100..150, None) };
            ListContainerInstancesOutput::builder()
                .set_container_instance_arns(Some(range.map(|n| format!("arn:aws:ecs:us-east-1:123456789012:container-instance/prod/{n:032x}")).collect()))
                .set_next_token(next.map(str::to_owned))
                .build()
        });
    let describe = mock!(aws_sdk_ecs::Client::describe_container_instances)
        .match_requests(|r| r.container_instances().len() <= 100)
        .then_compute_output(|r| {
            let cis = r.container_instances().iter().map(|arn| {
                let n = usize::from_str_radix(arn.rsplit('/').next().unwrap(), 16).unwrap();
                ci(
                    n,
                    if n == 120 {
                        "i-0123456789abcdef0"
                    } else {
                        "i-0fffffffffffffff0"
                    },
                )
            });
            DescribeContainerInstancesOutput::builder()
                .set_container_instances(Some(cis.collect()))
                .build()
        });
    let ecs = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&list, &describe]);
    let Registration::Registered(found) = ecs
        .find_container_instance(&"prod".into(), &"i-0123456789abcdef0".into())
        .await
        .unwrap()
    else {
        panic!("not found")
    };
    assert!(found.arn.ends_with(&format!("{:032x}", 120)));
    assert_eq!(found.status, InstanceStatus::Active);
    assert_eq!(list.num_calls(), 2);
    assert_eq!(
        describe.num_calls(),
        2,
        "150 ARNs -> two DescribeContainerInstances calls of <= 100"
    );

    let missing = ecs
        .find_container_instance(&"prod".into(), &"i-0aaaaaaaaaaaaaaa0".into())
        .await
        .unwrap();
    assert_eq!(missing, Registration::NotRegistered);
}

#[tokio::test]
async fn a_missing_cluster_and_a_task_already_gone_are_domain_results() {
    let no_cluster = mock!(aws_sdk_ecs::Client::list_container_instances)
        .then_http_response(|| json_error(400, "ClusterNotFoundException", "Cluster not found."));
    let gone = mock!(aws_sdk_ecs::Client::stop_task).then_http_response(|| {
        json_error(
            400,
            "InvalidParameterException",
            "The referenced task was not found.",
        )
    });
    let denied = mock!(aws_sdk_ecs::Client::stop_task)
        .then_http_response(|| json_error(400, "AccessDeniedException", "not authorized"));
    let ecs = mock_client!(
        aws_sdk_ecs,
        RuleMode::Sequential,
        [&no_cluster, &gone, &denied]
    );

    assert_eq!(
        ecs.find_container_instance(&"nope".into(), &"i-0123456789abcdef0".into())
            .await
            .unwrap(),
        Registration::NoSuchCluster
    );
    assert_eq!(
        ecs.stop(&"prod".into(), &"arn:task/1".into(), "r")
            .await
            .unwrap(),
        StopResult::NotFound("The referenced task was not found.".into())
    );
    // Anything else stays an error, with its code.
    let err = ecs
        .stop(&"prod".into(), &"arn:task/2".into(), "r")
        .await
        .unwrap_err();
    assert_eq!(err.code.as_deref(), Some("AccessDeniedException"));
}

#[tokio::test]
async fn the_drain_token_is_written_and_read_as_an_ecs_attribute() {
    let arn = "arn:aws:ecs:us-east-1:123456789012:container-instance/prod/0123";
    let put = mock!(aws_sdk_ecs::Client::put_attributes)
        .match_requests(move |r| {
            r.cluster() == Some("prod")
                && r.attributes().len() == 1
                && r.attributes()[0].name() == DRAIN_ATTRIBUTE
                && r.attributes()[0].value() == Some("tok-1")
                && r.attributes()[0].target_id() == Some(arn)
                && r.attributes()[0].target_type().is_none()
        })
        .then_output(|| PutAttributesOutput::builder().build());
    let describe =
        mock!(aws_sdk_ecs::Client::describe_container_instances).then_output(move || {
            let ci = SdkCi::builder()
                .container_instance_arn(arn)
                .ec2_instance_id("i-0123456789abcdef0")
                .status("DRAINING")
                .attributes(
                    aws_sdk_ecs::types::Attribute::builder()
                        .name("ecs.os-type")
                        .value("linux")
                        .build()
                        .unwrap(),
                )
                .attributes(
                    aws_sdk_ecs::types::Attribute::builder()
                        .name(DRAIN_ATTRIBUTE)
                        .value("tok-1")
                        .build()
                        .unwrap(),
                )
                .build();
            DescribeContainerInstancesOutput::builder()
                .container_instances(ci)
                .build()
        });
    let ecs = mock_client!(aws_sdk_ecs, RuleMode::Sequential, [&put, &describe]);
    ecs.set_attributes(&"prod".into(), &arn.into(), &[(DRAIN_ATTRIBUTE, "tok-1")])
        .await
        .unwrap();
    let ci = ecs
        .describe_container_instance(&"prod".into(), &arn.into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ci.drain_token.as_deref(), Some("tok-1"));
}

#[tokio::test]
async fn set_draining_reports_failures() {
    let ok = mock!(aws_sdk_ecs::Client::update_container_instances_state)
        .match_requests(|r| {
            r.status() == Some(&aws_sdk_ecs::types::ContainerInstanceStatus::Draining)
                && r.container_instances() == ["ci-1"]
        })
        .then_output(|| UpdateContainerInstancesStateOutput::builder().build());
    let failed = mock!(aws_sdk_ecs::Client::update_container_instances_state).then_output(|| {
        UpdateContainerInstancesStateOutput::builder()
            .failures(
                Failure::builder()
                    .arn("ci-2")
                    .reason("MISSING")
                    .detail("not found")
                    .build(),
            )
            .build()
    });
    let ecs = mock_client!(aws_sdk_ecs, RuleMode::Sequential, [&ok, &failed]);
    assert_eq!(
        ecs.set_draining(&"prod".into(), &"ci-1".into())
            .await
            .unwrap(),
        Ok(())
    );
    assert_eq!(
        ecs.set_draining(&"prod".into(), &"ci-2".into())
            .await
            .unwrap(),
        Err(EcsFailure {
            reason: "MISSING".into(),
            detail: Some("not found".into())
        })
    );
}

/// The undo of an early drain: its marker read back, ACTIVE set (a
/// `failures[]` entry is an error), the marker deleted by name only.
#[tokio::test]
async fn an_early_drain_is_marked_set_active_and_its_marker_deleted_by_name() {
    let arn = "arn:aws:ecs:us-east-1:123456789012:container-instance/prod/0123";
    let marker = "spot_stop:1795327200000:1795327920000";
    let describe =
        mock!(aws_sdk_ecs::Client::describe_container_instances).then_output(move || {
            let ci = SdkCi::builder()
                .container_instance_arn(arn)
                .ec2_instance_id("i-0123456789abcdef0")
                .status("DRAINING")
                .attributes(
                    aws_sdk_ecs::types::Attribute::builder()
                        .name(EARLY_DRAIN_ATTRIBUTE)
                        .value(marker)
                        .build()
                        .unwrap(),
                )
                .build();
            DescribeContainerInstancesOutput::builder()
                .container_instances(ci)
                .build()
        });
    let active = mock!(aws_sdk_ecs::Client::update_container_instances_state)
        .match_requests(move |r| {
            r.status() == Some(&aws_sdk_ecs::types::ContainerInstanceStatus::Active)
                && r.container_instances() == [arn]
        })
        .then_output(|| UpdateContainerInstancesStateOutput::builder().build());
    let refused =
        mock!(aws_sdk_ecs::Client::update_container_instances_state).then_output(move || {
            UpdateContainerInstancesStateOutput::builder()
                .failures(Failure::builder().arn(arn).reason("MISSING").build())
                .build()
        });
    let delete = mock!(aws_sdk_ecs::Client::delete_attributes)
        .match_requests(move |r| {
            r.cluster() == Some("prod")
                && r.attributes().len() == 1
                && r.attributes()[0].name() == EARLY_DRAIN_ATTRIBUTE
                && r.attributes()[0].value().is_none()
                && r.attributes()[0].target_id() == Some(arn)
        })
        .then_output(|| DeleteAttributesOutput::builder().build());
    let ecs = mock_client!(
        aws_sdk_ecs,
        RuleMode::Sequential,
        [&describe, &active, &refused, &delete]
    );
    let ci = ecs
        .describe_container_instance(&"prod".into(), &arn.into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        ci.early_drain,
        Some(EarlyDrain {
            reason: "spot_stop".into(),
            since_ms: 1_795_327_200_000,
            until_ms: 1_795_327_920_000,
        })
    );
    assert_eq!(
        ecs.set_active(&"prod".into(), &arn.into()).await.unwrap(),
        Ok(())
    );
    assert_eq!(
        ecs.set_active(&"prod".into(), &arn.into()).await.unwrap(),
        Err(EcsFailure {
            reason: "MISSING".into(),
            detail: None
        })
    );
    // (The SDK client has an inherent `delete_attributes`: the port's, by name.)
    Ecs::delete_attributes(&ecs, &"prod".into(), &arn.into(), &[EARLY_DRAIN_ATTRIBUTE])
        .await
        .unwrap();
}

#[tokio::test]
async fn list_tasks_asks_for_the_desired_status_and_follows_next_token() {
    let rule = mock!(aws_sdk_ecs::Client::list_tasks)
        .match_requests(|r| r.container_instance() == Some("ci-1") && r.max_results() == Some(100))
        .then_compute_output(|r| {
            let prefix = format!("{:?}", r.desired_status().unwrap());
            match r.next_token() {
                None => ListTasksOutput::builder()
                    .task_arns(format!("{prefix}-1"))
                    .next_token("more")
                    .build(),
                Some(_) => ListTasksOutput::builder()
                    .task_arns(format!("{prefix}-2"))
                    .build(),
            }
        });
    let ecs = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&rule]);
    assert_eq!(
        ecs.task_arns(&"prod".into(), &"ci-1".into(), DesiredStatus::Running)
            .await
            .unwrap(),
        ["Running-1", "Running-2"]
    );
    assert_eq!(
        ecs.task_arns(&"prod".into(), &"ci-1".into(), DesiredStatus::Stopped)
            .await
            .unwrap(),
        ["Stopped-1", "Stopped-2"]
    );
    assert_eq!(rule.num_calls(), 4);
}

#[tokio::test]
async fn describe_tasks_and_services_respect_batch_limits() {
    let tasks = mock!(aws_sdk_ecs::Client::describe_tasks).then_compute_output(|r| {
        assert!(
            r.tasks().len() <= 100,
            "DescribeTasks takes at most 100 tasks"
        );
        DescribeTasksOutput::builder()
            .set_tasks(Some(
                r.tasks()
                    .iter()
                    .map(|a| {
                        SdkTask::builder()
                            .task_arn(a)
                            .last_status("RUNNING")
                            .desired_status("RUNNING")
                            .started_by("ecs-svc/1")
                            .group("service:api")
                            .build()
                    })
                    .collect(),
            ))
            .build()
    });
    let services = mock!(aws_sdk_ecs::Client::describe_services).then_compute_output(|r| {
        assert!(
            r.services().len() <= 10,
            "DescribeServices takes at most 10 services"
        );
        DescribeServicesOutput::builder()
            .set_services(Some(
                r.services()
                    .iter()
                    .map(|n| {
                        let daemon = n.starts_with("d");
                        SdkService::builder()
                            .service_name(n)
                            .scheduling_strategy(if daemon {
                                SchedulingStrategy::Daemon
                            } else {
                                SchedulingStrategy::Replica
                            })
                            .desired_count(2)
                            .running_count(1)
                            .build()
                    })
                    .collect(),
            ))
            .build()
    });
    let ecs = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&tasks, &services]);
    let arns: Vec<TaskArn> = (0..250).map(|n| format!("t{n}").into()).collect();
    let described = ecs.tasks(&"prod".into(), &arns).await.unwrap();
    assert_eq!(described.len(), 250);
    assert_eq!(described[7].service_name(), Some("api"));
    assert_eq!(tasks.num_calls(), 3);

    let names: Vec<String> = (0..23)
        .map(|n| {
            if n % 5 == 0 {
                format!("d{n}")
            } else {
                format!("s{n}")
            }
        })
        .collect();
    let svcs = ecs.services(&"prod".into(), &names).await.unwrap();
    assert_eq!(svcs.len(), 23);
    assert_eq!(services.num_calls(), 3);
    assert_eq!(svcs[0].scheduling, Scheduling::Daemon);
    assert_eq!(svcs[1].scheduling, Scheduling::Replica);
    assert!(!svcs[1].has_replacements_running());
}

#[tokio::test]
async fn throttling_is_retried_by_the_sdk_then_succeeds() {
    let rule = mock!(aws_sdk_ecs::Client::describe_tasks)
        .sequence()
        .http_response(|| json_error(400, "ThrottlingException", "Rate exceeded"))
        .times(2)
        .output(|| {
            DescribeTasksOutput::builder()
                .tasks(
                    SdkTask::builder()
                        .task_arn("t1")
                        .last_status("STOPPED")
                        .build(),
                )
                .build()
        })
        .build();
    let ecs = mock_client!(aws_sdk_ecs, RuleMode::Sequential, [&rule], |c| c
        .retry_config(RetryConfig::standard().with_max_attempts(3)));
    let tasks = ecs.tasks(&"prod".into(), &["t1".into()]).await.unwrap();
    assert!(tasks[0].is_stopped());
    assert_eq!(rule.num_calls(), 3);
}

#[tokio::test]
async fn throttling_past_the_retry_budget_keeps_the_code() {
    let rule = mock!(aws_sdk_ecs::Client::describe_tasks)
        .sequence()
        .http_response(|| json_error(400, "ThrottlingException", "Rate exceeded"))
        .times(3)
        .build();
    let ecs = mock_client!(aws_sdk_ecs, RuleMode::Sequential, [&rule], |c| c
        .retry_config(RetryConfig::standard().with_max_attempts(3)));
    let err = ecs.tasks(&"prod".into(), &["t1".into()]).await.unwrap_err();
    assert_eq!(err.code.as_deref(), Some("ThrottlingException"));
    assert_eq!((err.service, err.operation), ("ecs", "DescribeTasks"));
    assert!(err.is_retryable());
    assert_eq!(
        err.to_string(),
        "ecs:DescribeTasks failed with ThrottlingException: Rate exceeded"
    );
}

#[tokio::test]
async fn a_503_is_transient_whatever_its_code_says() {
    // ECS shedding load with HTTP 503 ServiceUnavailableException for longer than
    // the SDK's retries: the drain must wait it out, not give up.
    let rule = mock!(aws_sdk_ecs::Client::describe_tasks)
        .sequence()
        .http_response(|| json_error(503, "ServiceUnavailableException", "Service Unavailable"))
        .times(3)
        .build();
    let ecs = mock_client!(aws_sdk_ecs, RuleMode::Sequential, [&rule], |c| c
        .retry_config(RetryConfig::standard().with_max_attempts(3)));
    let err = ecs.tasks(&"prod".into(), &["t1".into()]).await.unwrap_err();
    assert_eq!(err.code.as_deref(), Some("ServiceUnavailableException"));
    assert!(err.is_retryable() && !err.is_throttle(), "{err:?}");
    // A refusal of the request itself is not.
    let rule = mock!(aws_sdk_ecs::Client::describe_tasks)
        .then_http_response(|| json_error(400, "AccessDeniedException", "not allowed"));
    let ecs = mock_client!(aws_sdk_ecs, RuleMode::Sequential, [&rule]);
    let err = ecs.tasks(&"prod".into(), &["t1".into()]).await.unwrap_err();
    assert!(!err.is_retryable(), "{err:?}");
}

#[tokio::test]
async fn describe_tasks_failures_other_than_missing_never_drop_a_task() {
    let rule = mock!(aws_sdk_ecs::Client::describe_tasks)
        .sequence()
        .output(|| {
            DescribeTasksOutput::builder()
                .failures(Failure::builder().arn("t1").reason("MISSING").build())
                .build()
        })
        .output(|| {
            DescribeTasksOutput::builder()
                .failures(
                    Failure::builder()
                        .arn("t2")
                        .reason("UNAVAILABLE")
                        .detail("try later")
                        .build(),
                )
                .build()
        })
        .build();
    let ecs = mock_client!(aws_sdk_ecs, RuleMode::Sequential, [&rule]);
    // MISSING: gone, nothing to wait for.
    assert!(
        ecs.tasks(&"prod".into(), &["t1".into()])
            .await
            .unwrap()
            .is_empty()
    );
    // Anything else: unknown, so an error the drain waits out (never "stopped").
    let err = ecs.tasks(&"prod".into(), &["t2".into()]).await.unwrap_err();
    assert_eq!(err.code.as_deref(), Some("UNAVAILABLE"));
    assert!(err.is_retryable());
    assert!(err.message.contains("t2"), "{err}");
}

#[tokio::test]
async fn no_active_lifecycle_action_is_final_not_an_error() {
    let rule = mock!(aws_sdk_autoscaling::Client::complete_lifecycle_action)
        .match_requests(|r| {
            r.lifecycle_action_result() == Some("CONTINUE")
                && r.lifecycle_action_token() == Some("tok")
                && r.instance_id() == Some("i-0123456789abcdef0")
                && r.auto_scaling_group_name() == Some("fleet")
                && r.lifecycle_hook_name() == Some("drain")
        })
        .sequence()
        .output(|| CompleteLifecycleActionOutput::builder().build())
        .http_response(|| {
            query_error(
                "ValidationError",
                "No active Lifecycle Action found with instance ID i-0123456789abcdef0",
            )
        })
        .build();
    let asg = mock_client!(aws_sdk_autoscaling, RuleMode::Sequential, [&rule], |c| c
        .retry_config(RetryConfig::standard().with_max_attempts(3)));
    assert_eq!(
        asg.complete(&action(Some("tok")), ActionResult::Continue)
            .await
            .unwrap(),
        ActionAck::Accepted
    );
    let again = asg
        .complete(&action(Some("tok")), ActionResult::Continue)
        .await
        .unwrap();
    assert!(
        matches!(again, ActionAck::NoActiveAction(m) if m.contains("No active Lifecycle Action"))
    );
    assert_eq!(rule.num_calls(), 2, "the ValidationError is not retried");
}

#[tokio::test]
async fn other_validation_errors_are_errors() {
    let rule = mock!(aws_sdk_autoscaling::Client::record_lifecycle_action_heartbeat)
        .match_requests(|r| {
            r.lifecycle_action_token().is_none() && r.instance_id() == Some("i-0123456789abcdef0")
        })
        .then_http_response(|| {
            query_error("ValidationError", "Unable to find lifecycle hook drain")
        });
    let asg = mock_client!(aws_sdk_autoscaling, RuleMode::Sequential, [&rule]);
    let err = asg.heartbeat(&action(None)).await.unwrap_err();
    assert_eq!(err.code.as_deref(), Some("ValidationError"));
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn lifecycle_state_and_hook_timeouts() {
    let instances = mock!(aws_sdk_autoscaling::Client::describe_auto_scaling_instances)
        .then_output(|| {
            DescribeAutoScalingInstancesOutput::builder()
                .auto_scaling_instances(
                    AutoScalingInstanceDetails::builder()
                        .instance_id("i-0123456789abcdef0")
                        .auto_scaling_group_name("fleet")
                        .lifecycle_state("Terminating:Wait")
                        .availability_zone("us-east-1a")
                        .health_status("HEALTHY")
                        .protected_from_scale_in(false)
                        .build(),
                )
                .build()
        });
    let hooks = mock!(aws_sdk_autoscaling::Client::describe_lifecycle_hooks).then_output(|| {
        DescribeLifecycleHooksOutput::builder()
            .lifecycle_hooks(
                LifecycleHook::builder()
                    .lifecycle_hook_name("drain")
                    .heartbeat_timeout(300)
                    .build(),
            )
            .build()
    });
    let asg = mock_client!(
        aws_sdk_autoscaling,
        RuleMode::MatchAny,
        [&instances, &hooks]
    );
    let i = asg
        .instance(&"i-0123456789abcdef0".into())
        .await
        .unwrap()
        .unwrap();
    assert!(i.is_terminate_wait());
    let t = asg.hook_timeouts("fleet", "drain").await.unwrap().unwrap();
    assert_eq!((t.heartbeat_timeout_s, t.global_timeout_s), (300, 30_000));
    assert_eq!(asg.hook_timeouts("fleet", "other").await.unwrap(), None);
}

mod ssm_and_ec2 {
    use super::*;
    use aws_sdk_ec2::operation::create_tags::CreateTagsOutput;
    use aws_sdk_ec2::operation::describe_instances::DescribeInstancesOutput;
    use aws_sdk_ec2::types::{Instance, InstanceState, InstanceStateName, Reservation, Tag};
    use aws_sdk_ssm::operation::get_command_invocation::GetCommandInvocationOutput;
    use aws_sdk_ssm::operation::send_command::SendCommandOutput;
    use aws_sdk_ssm::types::{Command, CommandInvocationStatus};
    use ecs_lifecycle::model::{CommandSent, Ec2State, Ec2Status, LAUNCH_CHAIN_TAG};
    use ecs_lifecycle::ports::{Ec2, Ssm};

    fn ssm_error(kind: &str, message: &str) -> HttpResponse {
        json_error(400, kind, message)
    }

    #[tokio::test]
    async fn send_command_shape_and_unreachable_instances() {
        let ok = mock!(aws_sdk_ssm::Client::send_command)
            .match_requests(|r| {
                let cw = r.cloud_watch_output_config();
                r.document_name() == Some("Diag")
                    && r.instance_ids() == ["i-0123456789abcdef0"]
                    && r.timeout_seconds() == Some(120)
                    && r.parameters()
                        .and_then(|p| p.get("Region"))
                        .map(Vec::as_slice)
                        == Some(&["us-east-1".to_owned()][..])
                    && cw.is_some_and(|c| {
                        c.cloud_watch_output_enabled()
                            && c.cloud_watch_log_group_name() == Some("/diag")
                    })
            })
            .then_output(|| {
                SendCommandOutput::builder()
                    .command(Command::builder().command_id("cmd-1").build())
                    .build()
            });
        let unreachable = mock!(aws_sdk_ssm::Client::send_command).then_http_response(|| {
            ssm_error(
                "InvalidInstanceId",
                "Instances [[i-0fffffffffffffff0]] not in a valid state for account 123456789012",
            )
        });
        let ssm = mock_client!(aws_sdk_ssm, RuleMode::Sequential, [&ok, &unreachable]);
        let params = [
            ("InstanceId", "i-0123456789abcdef0"),
            ("Region", "us-east-1"),
        ];
        assert_eq!(
            ssm.run_document(
                "Diag",
                &"i-0123456789abcdef0".into(),
                &params,
                Some("/diag"),
                120
            )
            .await
            .unwrap(),
            CommandSent::Sent {
                command_id: "cmd-1".into()
            }
        );
        let sent = ssm
            .run_document("Diag", &"i-0fffffffffffffff0".into(), &params, None, 120)
            .await
            .unwrap();
        assert!(matches!(sent, CommandSent::Unreachable(m) if m.contains("not in a valid state")));
    }

    #[tokio::test]
    async fn command_invocation_not_yet_registered_running_and_finished() {
        let rule = mock!(aws_sdk_ssm::Client::get_command_invocation)
            .match_requests(|r| {
                r.command_id() == Some("cmd-1") && r.instance_id() == Some("i-0123456789abcdef0")
            })
            .sequence()
            .http_response(|| ssm_error("InvocationDoesNotExist", ""))
            .output(|| {
                GetCommandInvocationOutput::builder()
                    .status(CommandInvocationStatus::InProgress)
                    .response_code(-1)
                    .build()
            })
            .output(|| {
                GetCommandInvocationOutput::builder()
                    .status(CommandInvocationStatus::Failed)
                    .response_code(8)
                    .standard_output_content("{\"schema\":\"ecs-orphan-diagnostic/1\"}")
                    .build()
            })
            .build();
        let ssm = mock_client!(aws_sdk_ssm, RuleMode::Sequential, [&rule]);
        assert_eq!(
            ssm.command_invocation("cmd-1", &"i-0123456789abcdef0".into())
                .await
                .unwrap(),
            None
        );
        let running = ssm
            .command_invocation("cmd-1", &"i-0123456789abcdef0".into())
            .await
            .unwrap()
            .unwrap();
        assert!(!running.is_finished());
        let done = ssm
            .command_invocation("cmd-1", &"i-0123456789abcdef0".into())
            .await
            .unwrap()
            .unwrap();
        assert!(done.is_finished());
        assert_eq!((done.status.as_str(), done.response_code), ("Failed", 8));
    }

    /// The launch-chain claim is one CreateTags of one tag on one instance;
    /// EC2's refusal keeps its code (the claim then goes on unclaimed).
    #[tokio::test]
    async fn the_launch_chain_tag_is_one_create_tags() {
        let ok = mock!(aws_sdk_ec2::Client::create_tags)
            .match_requests(|r| {
                r.resources() == ["i-0123456789abcdef0"]
                    && r.tags().len() == 1
                    && r.tags()[0].key() == Some(LAUNCH_CHAIN_TAG)
                    && r.tags()[0].value() == Some("0:00ff:-:launch")
            })
            .then_output(|| CreateTagsOutput::builder().build());
        let full = mock!(aws_sdk_ec2::Client::create_tags).then_http_response(|| {
            HttpResponse::new(
                400.try_into().unwrap(),
                SdkBody::from("<Response><Errors><Error><Code>TagLimitExceeded</Code><Message>The maximum number of Tags for a resource has been reached.</Message></Error></Errors><RequestID>r</RequestID></Response>"),
            )
        });
        let ec2 = mock_client!(aws_sdk_ec2, RuleMode::Sequential, [&ok, &full]);
        let id: InstanceId = "i-0123456789abcdef0".into();
        ec2.tag_instance(&id, LAUNCH_CHAIN_TAG, "0:00ff:-:launch")
            .await
            .unwrap();
        let e = ec2
            .tag_instance(&id, LAUNCH_CHAIN_TAG, "1:0a0a:00ff:launch")
            .await
            .unwrap_err();
        assert_eq!(e.code.as_deref(), Some("TagLimitExceeded"));
        assert!(!e.is_retryable(), "{e}");
    }

    #[tokio::test]
    async fn ec2_state_and_unknown_instances() {
        let found = mock!(aws_sdk_ec2::Client::describe_instances)
            .match_requests(|r| r.instance_ids() == ["i-0123456789abcdef0"])
            .then_output(|| {
                DescribeInstancesOutput::builder()
                    .reservations(
                        Reservation::builder()
                            .instances(
                                Instance::builder()
                                    .instance_id("i-0123456789abcdef0")
                                    .state(
                                        InstanceState::builder()
                                            .name(InstanceStateName::Pending)
                                            .build(),
                                    )
                                    .tags(Tag::builder().key("Name").value("web").build())
                                    .tags(
                                        Tag::builder()
                                            .key(LAUNCH_CHAIN_TAG)
                                            .value("3:00ff:-:launch")
                                            .build(),
                                    )
                                    .build(),
                            )
                            .build(),
                    )
                    .build()
            });
        let missing = mock!(aws_sdk_ec2::Client::describe_instances).then_http_response(|| {
            HttpResponse::new(
                400.try_into().unwrap(),
                SdkBody::from("<Response><Errors><Error><Code>InvalidInstanceID.NotFound</Code><Message>The instance ID 'i-0fffffffffffffff0' does not exist</Message></Error></Errors><RequestID>r</RequestID></Response>"),
            )
        });
        let ec2 = mock_client!(aws_sdk_ec2, RuleMode::Sequential, [&found, &missing]);
        let state = ec2
            .instance_state(&"i-0123456789abcdef0".into())
            .await
            .unwrap();
        assert_eq!(
            state,
            Some(Ec2Status {
                state: Ec2State::Pending,
                launch_chain: Some("3:00ff:-:launch".into()),
            })
        );
        assert_eq!(
            ec2.instance_state(&"i-0fffffffffffffff0".into())
                .await
                .unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn terminate_through_the_group_keeps_capacity() {
        use aws_sdk_autoscaling::operation::terminate_instance_in_auto_scaling_group::TerminateInstanceInAutoScalingGroupOutput;
        let rule = mock!(aws_sdk_autoscaling::Client::terminate_instance_in_auto_scaling_group)
            .match_requests(|r| {
                r.instance_id() == Some("i-0123456789abcdef0")
                    && r.should_decrement_desired_capacity() == Some(false)
            })
            .then_output(|| TerminateInstanceInAutoScalingGroupOutput::builder().build());
        let asg = mock_client!(aws_sdk_autoscaling, RuleMode::Sequential, [&rule]);
        asg.terminate_instance(&"i-0123456789abcdef0".into())
            .await
            .unwrap();
        assert_eq!(rule.num_calls(), 1);
    }
}

/// The AMI rollout's calls: request shapes and the error codes that mean
/// "already so" rather than failure.
mod rollout {
    use super::*;
    use aws_sdk_autoscaling::operation::rollback_instance_refresh::RollbackInstanceRefreshOutput;
    use aws_sdk_autoscaling::operation::start_instance_refresh::StartInstanceRefreshOutput;
    use aws_sdk_ec2::operation::create_launch_template_version::CreateLaunchTemplateVersionOutput;
    use aws_sdk_ec2::types::LaunchTemplateVersion;
    use ecs_lifecycle::model::RefreshPreferences;
    use ecs_lifecycle::ports::{Ec2, Ssm};

    const PREFS: RefreshPreferences = RefreshPreferences {
        min_healthy_percentage: 100,
        max_healthy_percentage: 134,
        auto_rollback: true,
        checkpoint_percentages: Vec::new(),
        checkpoint_delay_s: Some(3600),
        alarms: Vec::new(),
    };

    #[tokio::test]
    async fn start_refresh_asks_for_launch_before_terminate_and_treats_in_progress_as_none() {
        let started = mock!(aws_sdk_autoscaling::Client::start_instance_refresh)
            .match_requests(|r| {
                let p = r.preferences().unwrap();
                let t = r
                    .desired_configuration()
                    .unwrap()
                    .launch_template()
                    .unwrap();
                r.auto_scaling_group_name() == Some("web")
                    && t.launch_template_id() == Some("lt-0abc")
                    && t.version() == Some("7")
                    && p.min_healthy_percentage() == Some(100)
                    && p.max_healthy_percentage() == Some(134)
                    && p.skip_matching() == Some(true)
                    && p.auto_rollback() == Some(true)
                    // Without checkpoints or alarms configured, none are sent.
                    && p.checkpoint_percentages().is_empty()
                    && p.checkpoint_delay().is_none()
                    && p.alarm_specification().is_none()
            })
            .then_output(|| {
                StartInstanceRefreshOutput::builder()
                    .instance_refresh_id("r-1")
                    .build()
            });
        let busy = mock!(aws_sdk_autoscaling::Client::start_instance_refresh).then_http_response(
            || {
                query_error(
                    "InstanceRefreshInProgress",
                    "An Instance Refresh is already in progress and blocks the execution of this Instance Refresh.",
                )
            },
        );
        let denied = mock!(aws_sdk_autoscaling::Client::start_instance_refresh)
            .then_http_response(|| query_error("AccessDenied", "not authorized"));
        let asg = mock_client!(
            aws_sdk_autoscaling,
            RuleMode::Sequential,
            [&started, &busy, &denied]
        );
        let start = || asg.start_refresh("web", "lt-0abc", 7, PREFS);
        assert_eq!(start().await.unwrap(), Some("r-1".to_owned()));
        assert_eq!(start().await.unwrap(), None);
        assert_eq!(
            start().await.unwrap_err().code.as_deref(),
            Some("AccessDenied")
        );
    }

    #[tokio::test]
    async fn checkpoints_and_alarms_are_passed_to_the_refresh() {
        let started = mock!(aws_sdk_autoscaling::Client::start_instance_refresh)
            .match_requests(|r| {
                let p = r.preferences().unwrap();
                p.checkpoint_percentages() == [20, 50, 100]
                    && p.checkpoint_delay() == Some(600)
                    && p.alarm_specification().map(|a| a.alarms())
                        == Some(&["p99".to_owned(), "5xx".to_owned()][..])
            })
            .then_output(|| {
                StartInstanceRefreshOutput::builder()
                    .instance_refresh_id("r-2")
                    .build()
            });
        let asg = mock_client!(aws_sdk_autoscaling, RuleMode::Sequential, [&started]);
        let prefs = RefreshPreferences {
            checkpoint_percentages: vec![20, 50, 100],
            checkpoint_delay_s: Some(600),
            alarms: vec!["p99".into(), "5xx".into()],
            ..PREFS
        };
        assert_eq!(
            asg.start_refresh("web", "lt-0abc", 7, prefs).await.unwrap(),
            Some("r-2".to_owned())
        );
        assert_eq!(started.num_calls(), 1);
    }

    #[tokio::test]
    async fn the_group_says_its_account_and_unhealthy_instances() {
        use aws_sdk_autoscaling::operation::describe_auto_scaling_groups::DescribeAutoScalingGroupsOutput;
        use aws_sdk_autoscaling::types::{
            AutoScalingGroup, Instance as AsgMember, LifecycleState as AsgState,
        };
        let member = |id: &str, health: &str| {
            AsgMember::builder()
                .instance_id(id)
                .lifecycle_state(AsgState::InService)
                .health_status(health)
                .build()
        };
        let rule = mock!(aws_sdk_autoscaling::Client::describe_auto_scaling_groups).then_output(
            move || {
                DescribeAutoScalingGroupsOutput::builder()
                    .auto_scaling_groups(
                        AutoScalingGroup::builder()
                            .auto_scaling_group_name("web")
                            .auto_scaling_group_arn("arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:0d3c-11:autoScalingGroupName/web")
                            .launch_template(
                                aws_sdk_autoscaling::types::LaunchTemplateSpecification::builder()
                                    .launch_template_id("lt-0abc")
                                    .version("4")
                                    .build(),
                            )
                            .instances(member("i-0000000000000000a", "Healthy"))
                            .instances(member("i-0000000000000000b", "Unhealthy"))
                            .build(),
                    )
                    .build()
            },
        );
        let asg = mock_client!(aws_sdk_autoscaling, RuleMode::Sequential, [&rule]);
        let g = asg.group("web").await.unwrap().unwrap();
        assert_eq!(g.account_id.as_deref(), Some("123456789012"));
        assert_eq!(
            g.template(),
            Ok(ecs_lifecycle::model::TemplateSpec {
                id: "lt-0abc".into(),
                version: "4".into()
            })
        );
        assert_eq!(g.unhealthy, ["i-0000000000000000b"]);
        assert_eq!(g.instances.len(), 2);
    }

    /// The group's instance lifecycle policy (`TerminateHookAbandon`), and a
    /// retained instance's state, as the SDK in Cargo.lock reads them.
    #[tokio::test]
    async fn the_group_says_whether_it_retains_abandoned_terminations() {
        use aws_sdk_autoscaling::operation::describe_auto_scaling_groups::DescribeAutoScalingGroupsOutput;
        use aws_sdk_autoscaling::types::{
            AutoScalingGroup, Instance as AsgMember, InstanceLifecyclePolicy,
            LifecycleState as AsgState, RetentionAction, RetentionTriggers,
        };
        let group = |name: &str, policy: Option<RetentionAction>| {
            let mut g = AutoScalingGroup::builder().auto_scaling_group_name(name);
            if let Some(action) = policy {
                g = g.instance_lifecycle_policy(
                    InstanceLifecyclePolicy::builder()
                        .retention_triggers(
                            RetentionTriggers::builder()
                                .terminate_hook_abandon(action)
                                .build(),
                        )
                        .build(),
                );
            }
            g.instances(
                AsgMember::builder()
                    .instance_id(format!("i-{name}"))
                    .lifecycle_state(AsgState::TerminatingRetained)
                    .build(),
            )
            .build()
        };
        let rule = mock!(aws_sdk_autoscaling::Client::describe_auto_scaling_groups).then_output(
            move || {
                DescribeAutoScalingGroupsOutput::builder()
                    .auto_scaling_groups(group("keeps", Some(RetentionAction::Retain)))
                    .auto_scaling_groups(group("ends", Some(RetentionAction::Terminate)))
                    .auto_scaling_groups(group("none", None))
                    .build()
            },
        );
        let asg = mock_client!(aws_sdk_autoscaling, RuleMode::Sequential, [&rule]);
        let groups = asg
            .groups(&["keeps".into(), "ends".into(), "none".into()])
            .await
            .unwrap();
        let seen: Vec<(&str, Option<&str>, bool)> = groups
            .iter()
            .map(|g| {
                (
                    g.name.as_str(),
                    g.terminate_hook_abandon.as_deref(),
                    g.retains_abandoned_terminations(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("keeps", Some("retain"), true),
                ("ends", Some("terminate"), false),
                ("none", None, false)
            ]
        );
        assert!(groups.iter().all(|g| g.instances[0].1.is_retained()));
    }

    #[tokio::test]
    async fn images_leave_out_unknown_ids_and_keep_state_owner_and_architecture() {
        use aws_sdk_ec2::operation::describe_images::DescribeImagesOutput;
        use aws_sdk_ec2::types::{ArchitectureValues, Image as SdkImage, ImageState};
        const KNOWN: &str = "ami-0123456789abcdef0";
        const GONE: &str = "ami-0fffffffffffffff0";
        let image = || {
            SdkImage::builder()
                .image_id(KNOWN)
                .state(ImageState::Pending)
                .architecture(ArchitectureValues::Arm64)
                .owner_id("591542846629")
                .image_owner_alias("amazon")
                .creation_date("2026-11-20T12:00:00.000Z")
                .build()
        };
        // Both asked at once, with deprecated images included: EC2 refuses
        // the whole call for the unknown one; then one by one.
        let both = mock!(aws_sdk_ec2::Client::describe_images)
            .match_requests(|r| r.image_ids().len() == 2 && r.include_deprecated() == Some(true))
            .then_http_response(|| {
                HttpResponse::new(
                    400.try_into().unwrap(),
                    SdkBody::from("<Response><Errors><Error><Code>InvalidAMIID.NotFound</Code><Message>The image id '[ami-0fffffffffffffff0]' does not exist</Message></Error></Errors><RequestID>r</RequestID></Response>"),
                )
            });
        let known = mock!(aws_sdk_ec2::Client::describe_images)
            .match_requests(|r| r.image_ids() == [KNOWN])
            .then_output(move || DescribeImagesOutput::builder().images(image()).build());
        let gone = mock!(aws_sdk_ec2::Client::describe_images)
            .match_requests(|r| r.image_ids() == [GONE])
            .then_http_response(|| {
                HttpResponse::new(
                    400.try_into().unwrap(),
                    SdkBody::from("<Response><Errors><Error><Code>InvalidAMIID.NotFound</Code><Message>nope</Message></Error></Errors><RequestID>r</RequestID></Response>"),
                )
            });
        let denied = mock!(aws_sdk_ec2::Client::describe_images).then_http_response(|| {
            HttpResponse::new(
                403.try_into().unwrap(),
                SdkBody::from("<Response><Errors><Error><Code>UnauthorizedOperation</Code><Message>no</Message></Error></Errors><RequestID>r</RequestID></Response>"),
            )
        });
        let ec2 = mock_client!(
            aws_sdk_ec2,
            RuleMode::Sequential,
            [&both, &known, &gone, &denied]
        );
        let found = ec2
            .images(&[KNOWN.to_owned(), GONE.to_owned()])
            .await
            .unwrap();
        assert_eq!(found.len(), 1);
        let i = &found[0];
        assert_eq!(i.id, KNOWN);
        assert!(!i.state.is_available());
        assert_eq!(i.state.as_str(), "pending");
        assert_eq!(i.architecture.as_deref(), Some("arm64"));
        assert_eq!(i.owner_id.as_deref(), Some("591542846629"));
        assert_eq!(i.owner_alias.as_deref(), Some("amazon"));
        assert_eq!(i.created_ms, Some(1_795_176_000_000));
        assert_eq!(
            ec2.images(&[KNOWN.to_owned()])
                .await
                .unwrap_err()
                .code
                .as_deref(),
            Some("UnauthorizedOperation")
        );
        assert!(ec2.images(&[]).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn instance_types_say_their_architectures() {
        use aws_sdk_ec2::operation::describe_instance_types::DescribeInstanceTypesOutput;
        use aws_sdk_ec2::types::{ArchitectureType, InstanceType, InstanceTypeInfo, ProcessorInfo};
        let info = |t: InstanceType, archs: &[ArchitectureType]| {
            InstanceTypeInfo::builder()
                .instance_type(t)
                .processor_info(
                    ProcessorInfo::builder()
                        .set_supported_architectures(Some(archs.to_vec()))
                        .build(),
                )
                .build()
        };
        let both = mock!(aws_sdk_ec2::Client::describe_instance_types)
            .match_requests(|r| r.instance_types().len() == 2)
            .then_output(move || {
                DescribeInstanceTypesOutput::builder()
                    .instance_types(info(
                        InstanceType::M5Large,
                        &[ArchitectureType::I386, ArchitectureType::X8664],
                    ))
                    .instance_types(info(InstanceType::M6gLarge, &[ArchitectureType::Arm64]))
                    .build()
            });
        let unknown = mock!(aws_sdk_ec2::Client::describe_instance_types).then_http_response(|| {
            HttpResponse::new(
                400.try_into().unwrap(),
                SdkBody::from("<Response><Errors><Error><Code>InvalidInstanceType</Code><Message>The following supplied instance types do not exist: [m9.huge]</Message></Error></Errors><RequestID>r</RequestID></Response>"),
            )
        });
        let ec2 = mock_client!(aws_sdk_ec2, RuleMode::Sequential, [&both, &unknown]);
        let found = ec2
            .instance_types(&["m5.large".to_owned(), "m6g.large".to_owned()])
            .await
            .unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].instance_type, "m5.large");
        assert_eq!(found[0].architectures, ["i386", "x86_64"]);
        assert_eq!(found[1].architectures, ["arm64"]);
        // Unknown to EC2: left out, not an error.
        assert!(
            ec2.instance_types(&["m9.huge".to_owned()])
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(unknown.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_service_s_tasks_are_listed_by_service_name_and_status() {
        let rule = mock!(aws_sdk_ecs::Client::list_tasks)
            .match_requests(|r| {
                r.service_name() == Some("web")
                    && r.cluster() == Some("prod")
                    && r.container_instance().is_none()
            })
            .then_compute_output(|r| {
                let prefix = format!("{:?}", r.desired_status().unwrap());
                match r.next_token() {
                    None => ListTasksOutput::builder()
                        .task_arns(format!("{prefix}-1"))
                        .next_token("more")
                        .build(),
                    Some(_) => ListTasksOutput::builder()
                        .task_arns(format!("{prefix}-2"))
                        .build(),
                }
            });
        let ecs = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&rule]);
        assert_eq!(
            ecs.service_task_arns(&"prod".into(), "web", DesiredStatus::Stopped)
                .await
                .unwrap(),
            ["Stopped-1", "Stopped-2"]
        );
        assert_eq!(rule.num_calls(), 2);
    }

    #[tokio::test]
    async fn rollback_without_an_active_refresh_is_none() {
        let ok = mock!(aws_sdk_autoscaling::Client::rollback_instance_refresh).then_output(|| {
            RollbackInstanceRefreshOutput::builder()
                .instance_refresh_id("r-1")
                .build()
        });
        let none = mock!(aws_sdk_autoscaling::Client::rollback_instance_refresh)
            .then_http_response(|| {
                query_error(
                    "ActiveInstanceRefreshNotFound",
                    "No in progress or pending Instance Refresh found for Auto Scaling group web",
                )
            });
        let asg = mock_client!(aws_sdk_autoscaling, RuleMode::Sequential, [&ok, &none]);
        assert_eq!(
            asg.rollback_refresh("web").await.unwrap(),
            Some("r-1".to_owned())
        );
        assert_eq!(asg.rollback_refresh("web").await.unwrap(), None);
    }

    #[tokio::test]
    async fn new_version_copies_the_source_with_an_idempotency_token() {
        let rule = mock!(aws_sdk_ec2::Client::create_launch_template_version)
            .match_requests(|r| {
                r.launch_template_id() == Some("lt-0abc")
                    && r.source_version() == Some("4")
                    && r.launch_template_data().and_then(|d| d.image_id())
                        == Some("ami-0123456789abcdef0")
                    && r.client_token() == Some("ecs-lifecycle-lt-0abc-4-ami-0123456789abcdef0")
                    && r.version_description() == Some("made by the test")
            })
            .then_output(|| {
                CreateLaunchTemplateVersionOutput::builder()
                    .launch_template_version(
                        LaunchTemplateVersion::builder().version_number(5).build(),
                    )
                    .build()
            });
        let ec2 = mock_client!(aws_sdk_ec2, RuleMode::Sequential, [&rule]);
        assert_eq!(
            ec2.create_template_version("lt-0abc", 4, "ami-0123456789abcdef0", "made by the test")
                .await
                .unwrap(),
            5
        );
    }

    #[tokio::test]
    async fn template_versions_say_what_they_launch() {
        use aws_sdk_ec2::operation::describe_launch_template_versions::DescribeLaunchTemplateVersionsOutput;
        use aws_sdk_ec2::types::{InstanceType, ResponseLaunchTemplateData};
        let rule = mock!(aws_sdk_ec2::Client::describe_launch_template_versions)
            .match_requests(|r| r.launch_template_id() == Some("lt-0abc") && r.versions() == ["4"])
            .then_output(|| {
                DescribeLaunchTemplateVersionsOutput::builder()
                    .launch_template_versions(
                        LaunchTemplateVersion::builder()
                            .version_number(4)
                            .version_description("made by terraform")
                            .default_version(true)
                            .launch_template_data(
                                ResponseLaunchTemplateData::builder()
                                    .image_id("ami-0123456789abcdef0")
                                    .instance_type(InstanceType::M6gLarge)
                                    .build(),
                            )
                            .build(),
                    )
                    .build()
            });
        let ec2 = mock_client!(aws_sdk_ec2, RuleMode::Sequential, [&rule]);
        let v = ec2
            .template_versions("lt-0abc", &["4".to_owned()])
            .await
            .unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].number, 4);
        assert_eq!(v[0].image_id.as_deref(), Some("ami-0123456789abcdef0"));
        assert_eq!(v[0].instance_type.as_deref(), Some("m6g.large"));
        assert!(v[0].is_default);
    }

    #[tokio::test]
    async fn a_missing_parameter_is_none() {
        let rule = mock!(aws_sdk_ssm::Client::get_parameter)
            .then_http_response(|| json_error(400, "ParameterNotFound", ""));
        let ssm = mock_client!(aws_sdk_ssm, RuleMode::Sequential, [&rule]);
        assert_eq!(ssm.parameter("/ami/ecs/latest").await.unwrap(), None);
    }
}

/// The reads of the operator CLI (`ecs-lifecycle status`, `rollout status`):
/// request shapes, pagination, batch limits, the shapes AWS answers in, and
/// the error codes that mean "no such thing" rather than failure.
mod operator_reads {
    use super::*;
    use aws_sdk_autoscaling::operation::describe_auto_scaling_groups::DescribeAutoScalingGroupsOutput;
    use aws_sdk_autoscaling::operation::describe_auto_scaling_instances::DescribeAutoScalingInstancesOutput;
    use aws_sdk_autoscaling::operation::describe_instance_refreshes::DescribeInstanceRefreshesOutput;
    use aws_sdk_autoscaling::operation::describe_lifecycle_hooks::DescribeLifecycleHooksOutput;
    use aws_sdk_autoscaling::operation::describe_scaling_activities::DescribeScalingActivitiesOutput;
    use aws_sdk_autoscaling::types::{
        Activity as SdkActivity, AutoScalingGroup, AutoScalingInstanceDetails,
        DesiredConfiguration, Instance, InstanceRefresh, InstanceRefreshStatus, LaunchTemplate,
        LaunchTemplateSpecification, LifecycleHook, LifecycleState as SdkLifecycleState,
        MixedInstancesPolicy, ScalingActivityStatusCode, TagDescription,
    };
    use aws_sdk_ec2::operation::describe_launch_template_versions::DescribeLaunchTemplateVersionsOutput;
    use aws_sdk_ec2::types::{LaunchTemplateVersion, ResponseLaunchTemplateData};
    use aws_sdk_ecs::operation::describe_container_instances::DescribeContainerInstancesOutput;
    use aws_sdk_ecs::operation::list_container_instances::ListContainerInstancesOutput;
    use aws_sdk_ecs::types::ContainerInstance as SdkCi;
    use aws_smithy_types::DateTime;
    use ecs_lifecycle::model::{
        LaunchTemplateRef, LifecycleState, RefreshStatus, TemplateSpec, TemplateVersion,
    };
    use ecs_lifecycle::ports::{Ec2, is_no_such_cluster};

    const T0: i64 = 1_800_000_000; // epoch seconds

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
    async fn container_instances_page_and_describe_100_at_a_time() {
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
        let all = ecs.container_instances(&"prod".into()).await.unwrap();
        assert_eq!(all.len(), 150);
        assert_eq!((list.num_calls(), describe.num_calls()), (2, 2));
        let seven = all
            .iter()
            .find(|c| c.ec2_instance_id == instance_id(7))
            .unwrap();
        assert_eq!(seven.status, InstanceStatus::Draining);
        assert_eq!(
            (seven.running_tasks_count, seven.pending_tasks_count),
            (2, 1)
        );
        assert_eq!(seven.registered_ms, Some(1_800_000_000_000));
        assert!(
            !all.iter()
                .find(|c| c.ec2_instance_id == instance_id(8))
                .unwrap()
                .agent_connected
        );
    }

    #[tokio::test]
    async fn an_unknown_cluster_is_told_apart_and_other_errors_keep_their_code() {
        let missing =
            mock!(aws_sdk_ecs::Client::list_container_instances).then_http_response(|| {
                json_error(400, "ClusterNotFoundException", "Cluster not found.")
            });
        let denied = mock!(aws_sdk_ecs::Client::list_container_instances)
            .then_http_response(|| json_error(400, "AccessDeniedException", "not authorized"));
        let ecs = mock_client!(aws_sdk_ecs, RuleMode::Sequential, [&missing, &denied]);
        let missing = ecs.container_instances(&"nope".into()).await.unwrap_err();
        assert!(is_no_such_cluster(&missing), "{missing}");
        let err = ecs.container_instances(&"prod".into()).await.unwrap_err();
        assert_eq!(
            (err.operation, err.code.as_deref()),
            ("ListContainerInstances", Some("AccessDeniedException"))
        );
        assert!(!is_no_such_cluster(&err));
    }

    #[tokio::test]
    async fn instances_ask_50_ids_a_call_and_follow_pages() {
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
        let ids: Vec<InstanceId> = (1..=120).map(|n| instance_id(n).into()).collect();
        let found = asg.instances(&ids).await.unwrap();
        assert_eq!(rule.num_calls(), 6, "3 batches (50, 50, 20) of 2 pages");
        assert_eq!(found.len(), 120 - 12);
        assert!(
            found.iter().any(|m| m.instance_id == instance_id(51)),
            "a second page's id"
        );
        assert!(
            found
                .iter()
                .all(|m| m.asg == "fleet" && m.lifecycle_state == LifecycleState::TerminatingWait)
        );
        assert!(asg.instances(&[]).await.unwrap().is_empty());
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
            .match_requests(|r| {
                r.auto_scaling_group_names().is_empty() && r.max_records() == Some(100)
            })
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
            vec![(instance_id(1).into(), LifecycleState::PendingWait)]
        );
        assert_eq!(web.tags[0].0, "ecs-lifecycle:refused-ami");
        let mixed = by("mixed").launch_template.clone().unwrap();
        assert_eq!(
            (mixed.label(), mixed.version.as_str()),
            ("mixed-lt", "$Default")
        );
        assert_eq!(by("legacy").launch_template, None);
        // What the AMI rollout can change: a plain launch template, by id.
        assert_eq!(
            web.template(),
            Ok(TemplateSpec {
                id: "lt-0abc".into(),
                version: "7".into()
            })
        );
        assert!(by("mixed").mixed_instances_policy && !web.mixed_instances_policy);
        assert!(
            by("mixed")
                .template()
                .is_err_and(|why| why.contains("mixed instances policy"))
        );
        assert!(
            by("legacy")
                .template()
                .is_err_and(|why| why.contains("launch configuration"))
        );
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
    async fn template_versions_by_id_or_name_and_unknown_ones() {
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
        let unknown = mock!(aws_sdk_ec2::Client::describe_launch_template_versions)
            .then_http_response(|| {
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
            ec2.template_version(&t(Some("lt-0abc"), Some("web-lt"), "$Latest"))
                .await
                .unwrap(),
            Some(TemplateVersion {
                number: 9,
                image_id: Some("ami-0123456789abcdef0".into()),
                description: None,
                is_default: false,
                instance_type: None,
            })
        );
        assert_eq!(
            ec2.template_version(&t(None, Some("web-lt"), "3"))
                .await
                .unwrap(),
            Some(TemplateVersion {
                number: 3,
                image_id: None,
                description: None,
                is_default: false,
                instance_type: None,
            })
        );
        assert_eq!(
            ec2.template_version(&t(Some("lt-0abc"), None, "99"))
                .await
                .unwrap(),
            None
        );
        let err = ec2
            .template_version(&t(Some("lt-0abc"), None, "1"))
            .await
            .unwrap_err();
        assert_eq!(err.code.as_deref(), Some("UnauthorizedOperation"));
        assert_eq!(
            ec2.template_version(&t(None, None, "1")).await.unwrap(),
            None,
            "nothing to ask"
        );
        assert_eq!(denied.num_calls(), 1);
    }
}

// ------------------------------------------------------------ the drain budget's table

mod drain_slots {
    use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
    use aws_sdk_dynamodb::operation::put_item::PutItemOutput;
    use aws_sdk_dynamodb::types::AttributeValue;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use ecs_lifecycle::aws::SlotTable;
    use ecs_lifecycle::drain::budget::{DrainSlots, SlotBook, SlotWaiter};
    use ecs_lifecycle::model::Cluster;

    use super::json_error;

    fn book() -> SlotBook {
        SlotBook {
            waiters: [(
                "i-0123456789abcdef0".to_owned(),
                SlotWaiter {
                    action_start_ms: 1,
                    since_ms: 2,
                    lease_until_ms: 3,
                },
            )]
            .into(),
            ..SlotBook::default()
        }
    }

    #[tokio::test]
    async fn a_read_is_consistent_and_decodes_the_book_and_its_version() {
        let json = serde_json::to_string(&book()).unwrap();
        let found = mock!(aws_sdk_dynamodb::Client::get_item)
            .match_requests(|r| {
                r.table_name() == Some("slots")
                    && r.consistent_read() == Some(true)
                    && r.key().and_then(|k| k.get("cluster"))
                        == Some(&AttributeValue::S("prod".into()))
            })
            .then_output(move || {
                GetItemOutput::builder()
                    .item("cluster", AttributeValue::S("prod".into()))
                    .item("version", AttributeValue::N("7".into()))
                    .item("book", AttributeValue::S(json.clone()))
                    .build()
            });
        let none = mock!(aws_sdk_dynamodb::Client::get_item)
            .then_output(|| GetItemOutput::builder().build());
        let db = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&found, &none]);
        let table = SlotTable::new(db, "slots");
        let v = table.read(&Cluster::from("prod")).await.unwrap().unwrap();
        assert_eq!((v.version, v.book), (7, book()));
        assert_eq!(table.read(&Cluster::from("prod")).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_malformed_item_is_an_error_naming_the_table_and_the_cluster() {
        let bad = mock!(aws_sdk_dynamodb::Client::get_item).then_output(|| {
            GetItemOutput::builder()
                .item("version", AttributeValue::N("1".into()))
                .item("book", AttributeValue::S("{not json".into()))
                .build()
        });
        let db = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&bad]);
        let err = SlotTable::new(db, "slots")
            .read(&Cluster::from("prod"))
            .await
            .unwrap_err();
        assert!(!err.is_retryable(), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("slots") && msg.contains("prod") && msg.contains("book"),
            "{msg}"
        );
    }

    #[tokio::test]
    async fn a_write_is_conditioned_on_the_version_read_and_a_lost_race_is_false() {
        let first = mock!(aws_sdk_dynamodb::Client::put_item)
            .match_requests(|r| {
                let item = r.item().unwrap();
                r.condition_expression() == Some("attribute_not_exists(#key)")
                    && r.expression_attribute_names()
                        .and_then(|n| n.get("#key"))
                        .map(String::as_str)
                        == Some("cluster")
                    && item.get("version") == Some(&AttributeValue::N("1".into()))
                    && item.get("cluster") == Some(&AttributeValue::S("prod".into()))
            })
            .then_output(|| PutItemOutput::builder().build());
        let next = mock!(aws_sdk_dynamodb::Client::put_item)
            .match_requests(|r| {
                r.condition_expression() == Some("#version = :version")
                    && r.expression_attribute_values()
                        .and_then(|v| v.get(":version"))
                        == Some(&AttributeValue::N("7".into()))
                    && r.item().and_then(|i| i.get("version"))
                        == Some(&AttributeValue::N("8".into()))
            })
            .then_output(|| PutItemOutput::builder().build());
        let lost = mock!(aws_sdk_dynamodb::Client::put_item).then_http_response(|| {
            json_error(
                400,
                "ConditionalCheckFailedException",
                "The conditional request failed",
            )
        });
        let denied = mock!(aws_sdk_dynamodb::Client::put_item)
            .then_http_response(|| json_error(400, "AccessDeniedException", "not authorized"));
        let db = mock_client!(
            aws_sdk_dynamodb,
            RuleMode::Sequential,
            [&first, &next, &lost, &denied]
        );
        let table = SlotTable::new(db, "slots");
        let prod = Cluster::from("prod");
        assert!(table.write(&prod, &book(), None).await.unwrap());
        assert!(table.write(&prod, &book(), Some(7)).await.unwrap());
        assert!(!table.write(&prod, &book(), Some(7)).await.unwrap());
        let err = table.write(&prod, &book(), Some(7)).await.unwrap_err();
        assert_eq!(err.code.as_deref(), Some("AccessDeniedException"));
        assert!(!err.is_retryable());
    }
}
