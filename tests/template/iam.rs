//! What each role may do: the hook role, the functions' roles, the instances'
//! optional policy (ami-rollout's own role in detail: `ami_rollout`).

use std::collections::BTreeSet;

use serde_json::json;

use crate::cfn::{
    ACCOUNT, REGION, Stack, identity_statements, read_only, role_statements, statements_with,
    strings,
};
use crate::{TWELVE_GROUPS, asg_arn, fleet, in_this_region, rollout_stack, set};

#[test]
fn the_hook_role_may_publish_to_the_topic_only() {
    let stack = fleet();
    let role = &stack.resources()["LifecycleHookRole"]["Properties"];
    assert_eq!(
        role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]["Service"],
        "autoscaling.amazonaws.com"
    );
    let statements = role_statements(role);
    let actions: BTreeSet<String> = statements
        .iter()
        .flat_map(|s| strings(&s["Action"]))
        .collect();
    assert_eq!(
        actions,
        set(["sns:Publish", "kms:GenerateDataKey*", "kms:Decrypt"])
    );
}

#[test]
fn no_mutating_action_on_everything_without_a_condition() {
    for stack in [
        fleet(),
        Stack::new(&[
            ("ClusterName", "prod"),
            ("AutoScalingGroupNames", "a,b,c,d,e"),
            ("LaunchTrigger", "LaunchEvent"),
            ("InstanceRoleName", "ecsInstanceRole"),
            ("EnableAmiRollout", "true"),
        ]),
    ] {
        let statements = identity_statements(&stack);
        assert!(statements.len() > 10);
        for (id, s) in &statements {
            assert_eq!(s["Effect"], "Allow", "{id}: {s}");
            assert!(s.get("NotAction").is_none() && s.get("NotResource").is_none());
            let actions = strings(&s["Action"]);
            for a in &actions {
                assert!(
                    !a.contains('*') || a == "kms:GenerateDataKey*",
                    "{id}: wildcard action {a}"
                );
            }
            let everything = strings(&s["Resource"]).iter().any(|r| r == "*");
            let mutating: Vec<&String> = actions.iter().filter(|a| !read_only(a)).collect();
            if everything && !mutating.is_empty() {
                assert!(
                    s.get("Condition").is_some(),
                    "{id}: {mutating:?} on * without a condition"
                );
            }
        }
    }
}

/// Each role may do what its function calls (crates/ecs-lifecycle/src/aws/), and
/// nothing else. A list by hand, so it says what the roles are; that each grant is
/// used, and each call allowed, the policy engine proves over the integration
/// tests' requests (`iam_simulation`).
#[test]
fn each_role_has_exactly_the_actions_its_function_calls() {
    let stack = Stack::new(&[
        ("ClusterName", "prod"),
        ("AutoScalingGroupNames", "web-asg"),
        ("InstanceRoleName", "ecsInstanceRole"),
        ("EnableAmiRollout", "true"),
    ]);
    let statements = identity_statements(&stack);
    let actions = |role: &str| -> BTreeSet<String> {
        statements
            .iter()
            .filter(|(id, _)| id == role)
            .flat_map(|(_, s)| strings(&s["Action"]))
            .collect()
    };
    let both = [
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "autoscaling:DescribeAutoScalingInstances",
        "autoscaling:DescribeLifecycleHooks",
        "autoscaling:CompleteLifecycleAction",
        "autoscaling:RecordLifecycleActionHeartbeat",
        "ecs:ListContainerInstances",
        "ecs:DescribeContainerInstances",
        "sns:Publish",
        "kms:GenerateDataKey*",
        "kms:Decrypt",
        "sqs:SendMessage",
        // WaitMode=queue (the default): the wait queue's event source mapping.
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
    ];
    assert_eq!(
        actions("TerminateDrainRole"),
        set(both.into_iter().chain([
            "ecs:ListTasks",
            "ecs:DescribeTasks",
            "ecs:DescribeServices",
            "ecs:UpdateContainerInstancesState",
            "ecs:StopTask",
            "ecs:PutAttributes",
            "ecs:DeleteAttributes",
            "autoscaling:SetInstanceHealth",
        ]))
    );
    assert_eq!(
        actions("LaunchVerifyRole"),
        set(both.into_iter().chain([
            "ec2:DescribeInstances",
            // The launch-chain claim (one tag key, the groups' instances).
            "ec2:CreateTags",
            "autoscaling:TerminateInstanceInAutoScalingGroup",
            "ssm:SendCommand",
            "ssm:GetCommandInvocation",
        ]))
    );
    // ami-rollout: reads (the AMI and the instance types' architectures
    // before a rollout; where the services' tasks are while judging one),
    // refreshes and its marker tags on the groups, new launch template
    // versions, and what Auto Scaling checks on the caller when a group is
    // updated with a launch template (RunInstances, CreateTags at launch,
    // PassRole).
    assert_eq!(
        actions("AmiRolloutRole"),
        set([
            "logs:CreateLogStream",
            "logs:PutLogEvents",
            "ssm:GetParameter",
            "autoscaling:DescribeAutoScalingGroups",
            "autoscaling:DescribeInstanceRefreshes",
            "autoscaling:DescribeScalingActivities",
            "autoscaling:StartInstanceRefresh",
            "autoscaling:RollbackInstanceRefresh",
            "autoscaling:UpdateAutoScalingGroup",
            "autoscaling:CreateOrUpdateTags",
            "autoscaling:DeleteTags",
            "ec2:DescribeLaunchTemplateVersions",
            "ec2:DescribeInstances",
            "ec2:DescribeImages",
            "ec2:DescribeInstanceTypes",
            "ec2:CreateLaunchTemplateVersion",
            "ec2:RunInstances",
            "ec2:CreateTags",
            "iam:PassRole",
            "ecs:ListContainerInstances",
            "ecs:DescribeContainerInstances",
            "ecs:ListTasks",
            "ecs:DescribeTasks",
            "ecs:ListServices",
            "ecs:DescribeServices",
            "sqs:SendMessage",
        ])
    );
    // The optional policy on the instances' role: the SSM agent writes the
    // diagnostic's output to the diagnostics log group.
    assert_eq!(
        actions("DiagnosticsOutputPolicy"),
        set([
            "logs:CreateLogStream",
            "logs:PutLogEvents",
            "logs:DescribeLogStreams",
            "logs:DescribeLogGroups",
        ])
    );
    for (id, s) in &statements {
        if id == "DiagnosticsOutputPolicy"
            && strings(&s["Action"]).contains(&"logs:PutLogEvents".into())
        {
            assert_eq!(strings(&s["Resource"]), ["<DiagnosticsLogGroup.Arn>"]);
        }
    }
}

#[test]
fn lifecycle_actions_and_termination_only_on_the_given_groups() {
    for groups in ["web-asg,batch-asg", "only-one", "a,b,c,d,e", TWELVE_GROUPS] {
        let stack = Stack::new(&[("ClusterName", "prod"), ("AutoScalingGroupNames", groups)]);
        let statements = identity_statements(&stack);
        let want: BTreeSet<String> = groups.split(',').map(asg_arn).collect();
        for (action, roles) in [
            (
                "autoscaling:CompleteLifecycleAction",
                set(["TerminateDrainRole", "LaunchVerifyRole"]),
            ),
            (
                "autoscaling:RecordLifecycleActionHeartbeat",
                set(["TerminateDrainRole", "LaunchVerifyRole"]),
            ),
            (
                "autoscaling:TerminateInstanceInAutoScalingGroup",
                set(["LaunchVerifyRole"]),
            ),
        ] {
            let found = statements_with(&statements, action);
            assert_eq!(
                found
                    .iter()
                    .map(|(id, _)| id.clone())
                    .collect::<BTreeSet<_>>(),
                roles,
                "{action}"
            );
            for (id, s) in found {
                assert_eq!(
                    set(strings(&s["Resource"])),
                    want,
                    "{id}: {action} for groups {groups}"
                );
                assert!(in_this_region(&s), "{id}: {action} outside {REGION}");
            }
        }
    }
}

#[test]
fn ecs_changes_only_in_the_given_cluster() {
    let stack = fleet();
    let cluster = format!("arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/prod");
    let statements = identity_statements(&stack);
    for action in [
        "ecs:UpdateContainerInstancesState",
        "ecs:StopTask",
        "ecs:PutAttributes",
        "ecs:DeleteAttributes",
    ] {
        let found = statements_with(&statements, action);
        assert_eq!(found.len(), 1, "{action}");
        assert_eq!(found[0].0, "TerminateDrainRole");
        assert_eq!(
            found[0].1["Condition"],
            json!({"ArnEquals": {"ecs:cluster": cluster}}),
            "{action}"
        );
    }
    // Every ECS permission is tied to the cluster: by condition or by the ARN.
    for (id, s) in &statements {
        if !strings(&s["Action"]).iter().any(|a| a.starts_with("ecs:")) {
            continue;
        }
        let by_condition = s["Condition"]["ArnEquals"]["ecs:cluster"] == cluster;
        let by_arn = strings(&s["Resource"]).iter().all(|r| {
            r == &cluster || r.starts_with(&format!("arn:aws:ecs:{REGION}:{ACCOUNT}:service/prod/"))
        });
        assert!(by_condition || by_arn, "{id}: {s}");
    }
}

#[test]
fn send_command_only_with_the_diagnostic_document_on_instances_of_the_groups() {
    let stack = fleet();
    let found = statements_with(&identity_statements(&stack), "ssm:SendCommand");
    assert_eq!(found.len(), 2);
    let document = format!("arn:aws:ssm:{REGION}:{ACCOUNT}:document/<OrphanDiagnosticDocument>");
    let instances = format!("arn:aws:ec2:{REGION}:{ACCOUNT}:instance/*");
    let mut seen = BTreeSet::new();
    for (id, s) in found {
        assert_eq!(id, "LaunchVerifyRole");
        assert_eq!(
            strings(&s["Action"]),
            ["ssm:SendCommand"],
            "alone in its statement"
        );
        let resources = strings(&s["Resource"]);
        assert_eq!(resources.len(), 1);
        let r = resources[0].clone();
        if r == document {
            assert!(s.get("Condition").is_none());
        } else {
            assert_eq!(r, instances);
            assert_eq!(
                s["Condition"],
                json!({"StringEquals": {"ssm:resourceTag/aws:autoscaling:groupName": ["web-asg", "batch-asg"]}})
            );
        }
        seen.insert(r);
    }
    assert_eq!(seen, set([document, instances]));
}

#[test]
fn publish_only_to_the_topic_and_the_rest_where_it_belongs() {
    let stack = fleet();
    let statements = identity_statements(&stack);
    let publishes = statements_with(&statements, "sns:Publish");
    assert_eq!(publishes.len(), 3, "both functions and the hook role");
    for (id, s) in publishes {
        assert_eq!(strings(&s["Resource"]), ["<LifecycleTopic>"], "{id}");
    }
    for (id, s) in statements_with(&statements, "kms:Decrypt") {
        assert_eq!(strings(&s["Resource"]), ["<LifecycleTopicKey.Arn>"], "{id}");
        assert_eq!(
            s["Condition"]["StringEquals"]["kms:ViaService"],
            format!("sns.{REGION}.amazonaws.com")
        );
    }
    for (id, s) in statements_with(&statements, "sqs:SendMessage") {
        assert_eq!(strings(&s["Resource"]), ["<DeadLetterQueue.Arn>"], "{id}");
    }
    for (id, s) in statements_with(&statements, "logs:PutLogEvents") {
        let r = strings(&s["Resource"]);
        assert_eq!(r.len(), 1);
        assert!(r[0].ends_with("LogGroup.Arn>"), "{id}: {r:?}");
    }
    // terminate-drain can neither run commands nor terminate instances.
    let drain: BTreeSet<String> = statements
        .iter()
        .filter(|(id, _)| id == "TerminateDrainRole")
        .flat_map(|(_, s)| strings(&s["Action"]))
        .collect();
    for a in [
        "ssm:SendCommand",
        "autoscaling:TerminateInstanceInAutoScalingGroup",
        "ec2:TerminateInstances",
    ] {
        assert!(!drain.contains(a), "terminate-drain has {a}");
    }
    // Function roles trust Lambda only.
    for role in ["TerminateDrainRole", "LaunchVerifyRole", "AmiRolloutRole"] {
        assert_eq!(
            stack.resources()[role]["Properties"]["AssumeRolePolicyDocument"]["Statement"],
            json!([{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}])
        );
    }
}

/// With NotificationTopicArn set, each function's role may publish to that
/// topic, alone in its statement and without a wildcard; without it, no role
/// may (ami-rollout then publishes nothing at all). The hook role never may.
#[test]
fn notifications_only_to_the_given_topic_and_only_when_it_is_set() {
    let topic = "arn:aws:sns:us-east-1:123456789012:ecs-events";
    let roles = set(["TerminateDrainRole", "LaunchVerifyRole", "AmiRolloutRole"]);
    let actions = |statements: &[(String, serde_json::Value)], role: &str| -> BTreeSet<String> {
        statements
            .iter()
            .filter(|(id, _)| id == role)
            .flat_map(|(_, s)| strings(&s["Action"]))
            .collect()
    };
    let without = identity_statements(&rollout_stack(&[]));
    let with = identity_statements(&rollout_stack(&[("NotificationTopicArn", topic)]));
    for (id, s) in statements_with(&without, "sns:Publish") {
        assert_eq!(strings(&s["Resource"]), ["<LifecycleTopic>"], "{id}");
    }
    assert!(!actions(&without, "AmiRolloutRole").contains("sns:Publish"));
    let to_topic: Vec<(String, serde_json::Value)> = statements_with(&with, "sns:Publish")
        .into_iter()
        .filter(|(_, s)| strings(&s["Resource"]) != ["<LifecycleTopic>"])
        .collect();
    assert_eq!(
        to_topic
            .iter()
            .map(|(id, _)| id.clone())
            .collect::<BTreeSet<_>>(),
        roles,
        "one statement per function role"
    );
    assert_eq!(to_topic.len(), 3);
    for (id, s) in &to_topic {
        assert_eq!(strings(&s["Action"]), ["sns:Publish"], "{id}");
        assert_eq!(strings(&s["Resource"]), [topic], "{id}");
        assert!(s.get("Condition").is_none(), "{id}");
    }
    // Nothing else changes.
    for role in &roles {
        let mut grown = actions(&with, role);
        grown.remove("sns:Publish");
        let mut before = actions(&without, role);
        before.remove("sns:Publish");
        assert_eq!(grown, before, "{role}");
    }
}
