//! ami-rollout: installed only when enabled, configured from the parameters,
//! started by the parameter's change and its schedules, and allowed to change
//! only the groups and what a launch template launches.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::cfn::{
    ACCOUNT, REGION, STACK, Stack, functions, identity_statements, matches, read_only, strings,
    template,
};
use crate::code::{
    BASELINE_TAG, ClusterScope, REFUSED_AMI_TAG, REPORTED_TAG, UNSTEADY_TAG, rollout_config,
};
use crate::{TWELVE_GROUPS, asg_arn, fleet, in_this_region, rollout_stack, set};

/// The ami-rollout function of a stack, resolved.
fn rollout_function(stack: &Stack) -> Value {
    let found: Vec<Value> = functions(stack)
        .into_values()
        .filter(|(b, _)| b == "ami-rollout")
        .map(|(_, f)| f)
        .collect();
    assert_eq!(found.len(), 1, "one ami-rollout function");
    found.into_iter().next().unwrap()
}

fn rollout_statements(stack: &Stack) -> Vec<Value> {
    identity_statements(stack)
        .into_iter()
        .filter(|(id, _)| id == "AmiRolloutRole")
        .map(|(_, s)| s)
        .collect()
}

/// Opt-in: with the default `EnableAmiRollout=false` none of its resources
/// exist, and with `true` exactly these come on top.
#[test]
fn ami_rollout_is_installed_only_when_enabled() {
    let template = template();
    assert_eq!(
        template["Parameters"]["EnableAmiRollout"]["Default"],
        "false"
    );
    let off = Stack::new(&[
        ("ClusterName", "prod"),
        ("AutoScalingGroupNames", "web-asg"),
        ("InstanceRoleName", "ecsInstanceRole"),
    ]);
    let on = Stack::new(&[
        ("ClusterName", "prod"),
        ("AutoScalingGroupNames", "web-asg"),
        ("EnableAmiRollout", "true"),
        ("InstanceRoleName", "ecsInstanceRole"),
    ]);
    let off_ids: BTreeSet<String> = off.resources().into_keys().collect();
    let on_ids: BTreeSet<String> = on.resources().into_keys().collect();
    assert!(off_ids.is_subset(&on_ids));
    assert_eq!(
        on_ids
            .difference(&off_ids)
            .cloned()
            .collect::<BTreeSet<_>>(),
        set([
            "AmiRolloutFunction",
            "AmiRolloutLogGroup",
            "AmiRolloutRole",
            "AmiParameterChangeRule",
            "AmiParameterChangePermission",
            "AmiRolloutWatchRule",
            "AmiRolloutWatchPermission",
            "AmiRolloutCheckRule",
            "AmiRolloutCheckPermission",
            "AmiRolloutErrorsAlarm",
            "AmiRolloutRollbackAlarm",
            "AmiRolloutRestoreFailedAlarm",
            "AmiRolloutThrottlesAlarm",
            "AmiParameterChangeFailedInvocationsAlarm",
            "AmiRolloutWatchFailedInvocationsAlarm",
            "AmiRolloutCheckFailedInvocationsAlarm",
            "RolloutHistoryQuery",
        ])
    );
    assert!(
        functions(&off)
            .values()
            .all(|(binary, _)| binary != "ami-rollout")
    );
    // No dead letters admitted from its rules without them (the queue policy's
    // statement of each rule follows the rule: tests/template/dead_letters.rs).
    let policy = &off.resources()["DeadLetterQueuePolicy"]["Properties"]["PolicyDocument"];
    assert!(policy["Statement"].as_array().unwrap().iter().all(|s| {
        !s.to_string().contains("AmiParameterChangeRule")
            && !s.to_string().contains("AmiRolloutWatchRule")
            && !s.to_string().contains("AmiRolloutCheckRule")
    }));
    // Its outputs follow the same condition.
    for output in ["AmiRolloutFunctionName", "AmiRolloutLogGroupName"] {
        assert_eq!(
            template["Outputs"][output]["Condition"], "UseAmiRollout",
            "{output}"
        );
    }
    assert_eq!(
        template["Outputs"]["AmiRolloutFunctionName"]["Value"],
        json!({"Ref": "AmiRolloutFunction"})
    );
}

/// The environment comes from the parameters, and the code's own configuration
/// accepts it: with the defaults, and with every numeric parameter at its
/// MinValue and at its MaxValue (a value the template allows but the code
/// refuses would stop the function at cold start).
#[test]
fn ami_rollout_environment_is_what_its_configuration_accepts() {
    let template = template();
    let stack = rollout_stack(&[
        ("RegistrationTimeoutSeconds", "420"),
        ("PollIntervalSeconds", "5"),
    ]);
    let env = rollout_function(&stack)["Properties"]["Environment"]["Variables"].clone();
    assert_eq!(
        env["AMI_PARAMETER_NAME"],
        "/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id"
    );
    // The real names only, not the padded list the hooks are addressed with.
    assert_eq!(env["AUTO_SCALING_GROUP_NAMES"], "web-asg,batch-asg");
    assert_eq!(env["CLUSTER_NAME"], "prod");
    assert_eq!(env["STABILITY_TIMEOUT_SECONDS"], "1800");
    // launch-verify's parameter, shared.
    assert_eq!(env["REGISTRATION_TIMEOUT_SECONDS"], "420");
    let launch = functions(&stack)
        .into_values()
        .find(|(b, _)| b == "launch-verify")
        .unwrap()
        .1;
    assert_eq!(
        launch["Properties"]["Environment"]["Variables"]["REGISTRATION_TIMEOUT_SECONDS"],
        "420"
    );
    // Its own poll interval (30 s), not the lifecycle functions' one.
    assert_eq!(env["POLL_INTERVAL_SECONDS"], "30");
    assert_eq!(env["ROLLOUT_BATCH_SIZE"], "1");
    assert_eq!(env["DRY_RUN"], "false");
    assert!(env.get("CONTINUATION_TOPIC_ARN").is_none());

    let config = rollout_config(&env).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(
        config.common.clusters,
        ClusterScope::Named(vec!["prod".into()])
    );
    assert_eq!(config.groups, ["web-asg", "batch-asg"]);
    assert_eq!(config.common.poll_interval.as_secs(), 30);
    assert_eq!(config.batch_size, 1);

    let vars = env.as_object().unwrap();
    for (var, value) in vars {
        let Some(name) =
            template["Resources"]["AmiRolloutFunction"]["Properties"]["Environment"]["Variables"]
                [var]["Ref"]
                .as_str()
        else {
            continue;
        };
        let param = &template["Parameters"][name];
        assert!(!param.is_null(), "{var}: {value} is not from a parameter");
        if param["Type"] != "Number" {
            continue;
        }
        for bound in ["MinValue", "MaxValue"] {
            let n = param[bound]
                .as_i64()
                .unwrap_or_else(|| panic!("{name} has no {bound}"));
            let stack = rollout_stack(&[(name, &n.to_string())]);
            let env = rollout_function(&stack)["Properties"]["Environment"]["Variables"].clone();
            assert!(
                rollout_config(&env).is_ok(),
                "{name}={n} ({var}) is refused by RolloutConfig"
            );
        }
    }
}

/// Started by the parameter's change event (passed on unchanged), re-armed by a
/// 15-minute schedule; no topic, no self-invocation, so no RecursiveLoop.
#[test]
fn ami_rollout_is_invoked_by_the_parameter_change_and_the_watch_schedule() {
    let stack = fleet();
    let f = rollout_function(&stack);
    let p = &f["Properties"];
    assert_eq!(f["Metadata"]["BuildProperties"]["Binary"], "ami-rollout");
    assert_eq!(p["CodeUri"], "crates/ami-rollout");
    assert_eq!(p["Timeout"], 900);
    assert!(p.get("RecursiveLoop").is_none());
    assert!(
        p.get("Events").is_none(),
        "its rules are explicit resources"
    );
    assert_eq!(p["LoggingConfig"]["LogGroup"], "<AmiRolloutLogGroup>");
    let group = &stack.resources()["AmiRolloutLogGroup"]["Properties"];
    assert_eq!(
        group["LogGroupName"],
        format!("/ecs-lifecycle/{STACK}/ami-rollout")
    );
    assert_eq!(group["RetentionInDays"], "14");

    let rules = stack.of_type("AWS::Events::Rule");
    let target = |id: &str| {
        rules[id]["Properties"]["Targets"]
            .as_array()
            .unwrap()
            .clone()
    };

    // The parameter's change: Create and Update of this parameter only.
    let change = &rules["AmiParameterChangeRule"]["Properties"];
    let name = "/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id";
    let event = |name: &str, operation: &str| {
        json!({
            "version": "0",
            "id": "7a4a7c9e-1f07-4c61-a6b2-7c3d0e8b1f22",
            "detail-type": "Parameter Store Change",
            "source": "aws.ssm",
            "account": ACCOUNT,
            "time": "2026-03-01T12:00:00Z",
            "region": REGION,
            "resources": [format!("arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{name}")],
            "detail": {"operation": operation, "name": name, "type": "String", "description": ""}
        })
    };
    let pattern = &change["EventPattern"];
    assert!(matches(pattern, &event(name, "Update")));
    assert!(matches(pattern, &event(name, "Create")));
    assert!(!matches(pattern, &event(name, "Delete")));
    assert!(!matches(pattern, &event("/some/other/parameter", "Update")));
    let mut elsewhere = event(name, "Update");
    elsewhere["source"] = json!("aws.ec2");
    assert!(!matches(pattern, &elsewhere));
    let own = rollout_stack(&[("AmiParameterName", "/fleet/ecs-ami")]);
    let own_pattern =
        &own.of_type("AWS::Events::Rule")["AmiParameterChangeRule"]["Properties"]["EventPattern"];
    assert!(matches(own_pattern, &event("/fleet/ecs-ami", "Update")));
    assert!(!matches(own_pattern, &event(name, "Update")));
    let targets = target("AmiParameterChangeRule");
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0]["Arn"], "<AmiRolloutFunction.Alias>");
    for transform in ["Input", "InputPath", "InputTransformer"] {
        assert!(
            targets[0].get(transform).is_none(),
            "the event is passed unchanged"
        );
    }

    // The watch: every 15 minutes, {"action": "watch"}.
    let watch = &rules["AmiRolloutWatchRule"]["Properties"];
    assert_eq!(watch["ScheduleExpression"], "rate(15 minutes)");
    assert!(watch.get("EventPattern").is_none());
    let targets = target("AmiRolloutWatchRule");
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0]["Arn"], "<AmiRolloutFunction.Alias>");
    let input: Value = serde_json::from_str(targets[0]["Input"].as_str().unwrap()).unwrap();
    assert_eq!(input, json!({"action": "watch"}));

    // The scheduled start: daily by default, {"action": "start"}.
    let check = &rules["AmiRolloutCheckRule"]["Properties"];
    assert_eq!(check["ScheduleExpression"], "rate(1 day)");
    let targets = target("AmiRolloutCheckRule");
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0]["Arn"], "<AmiRolloutFunction.Alias>");
    let input: Value = serde_json::from_str(targets[0]["Input"].as_str().unwrap()).unwrap();
    assert_eq!(input, json!({"action": "start"}));

    // Each rule may invoke it, and dead-letters to the queue, which admits it.
    let permissions = stack.of_type("AWS::Lambda::Permission");
    let queue_policy = &stack.resources()["DeadLetterQueuePolicy"]["Properties"]["PolicyDocument"];
    let sources: BTreeSet<String> = queue_policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["Principal"]["Service"] == "events.amazonaws.com")
        .flat_map(|s| strings(&s["Condition"]["ArnEquals"]["aws:SourceArn"]))
        .collect();
    for rule in [
        "AmiParameterChangeRule",
        "AmiRolloutWatchRule",
        "AmiRolloutCheckRule",
    ] {
        let arn = format!("<{rule}.Arn>");
        assert!(
            permissions.values().any(|p| {
                let p = &p["Properties"];
                p["Principal"] == "events.amazonaws.com"
                    && p["FunctionName"] == "<AmiRolloutFunction.Alias>"
                    && p["SourceArn"] == arn
                    && p["Action"] == "lambda:InvokeFunction"
            }),
            "{rule} may not invoke ami-rollout"
        );
        assert_eq!(
            target(rule)[0]["DeadLetterConfig"]["Arn"],
            "<DeadLetterQueue.Arn>"
        );
        assert!(sources.contains(&arn), "{rule}: {sources:?}");
    }
    // Both triggers, with the launch event rule too (and terminate-drain's
    // rules: ECS events, Spot warnings, scheduled changes, and instances
    // running again, as Spot warnings drain early, by default).
    let both = rollout_stack(&[("LaunchTrigger", "LaunchEvent")]);
    let policy = &both.resources()["DeadLetterQueuePolicy"]["Properties"]["PolicyDocument"];
    let sources: BTreeSet<String> = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["Principal"]["Service"] == "events.amazonaws.com")
        .flat_map(|s| strings(&s["Condition"]["ArnEquals"]["aws:SourceArn"]))
        .collect();
    assert_eq!(
        sources,
        set([
            "<EcsTaskStoppedRule.Arn>",
            "<EcsInstanceDrainedRule.Arn>",
            "<SpotWarningRule.Arn>",
            "<ScheduledChangeRule.Arn>",
            "<InstanceRunningRule.Arn>",
            "<LaunchSuccessfulRule.Arn>",
            "<AmiParameterChangeRule.Arn>",
            "<AmiRolloutWatchRule.Arn>",
            "<AmiRolloutCheckRule.Arn>"
        ])
    );
}

/// Everything ami-rollout may change: its refreshes, the group update and its
/// marker tags only on the given groups; new versions only of the launch
/// templates tagged for this stack (`ecs-lifecycle:ami-rollout = <stack>`), a
/// launch only through such a template, tags only at launch; the named
/// instance role only, to EC2 only.
#[test]
fn ami_rollout_changes_only_the_groups_and_what_a_launch_template_launches() {
    let lt_arns = format!("arn:aws:ec2:{REGION}:{ACCOUNT}:launch-template/*");
    let tagged = json!({"StringEquals": {"aws:ResourceTag/ecs-lifecycle:ami-rollout": STACK}});
    for groups in ["web-asg,batch-asg", "only-one", "a,b,c,d,e", TWELVE_GROUPS] {
        let stack = Stack::new(&[
            ("ClusterName", "prod"),
            ("AutoScalingGroupNames", groups),
            ("EnableAmiRollout", "true"),
            ("InstanceRoleName", "ecsInstanceRole"),
        ]);
        let want: BTreeSet<String> = groups.split(',').map(asg_arn).collect();
        let statements = rollout_statements(&stack);
        let mut seen = BTreeSet::new();
        let (mut launch_through_tagged, mut launch_uses) = (0, 0);
        for s in &statements {
            let actions = strings(&s["Action"]);
            let resources = strings(&s["Resource"]);
            for a in actions.iter().filter(|a| !read_only(a)) {
                seen.insert(a.clone());
                match a.as_str() {
                    "autoscaling:StartInstanceRefresh"
                    | "autoscaling:RollbackInstanceRefresh"
                    | "autoscaling:UpdateAutoScalingGroup" => {
                        assert_eq!(set(resources.clone()), want, "{a} for {groups}");
                        assert!(in_this_region(s), "{a} outside {REGION}");
                    }
                    "autoscaling:CreateOrUpdateTags" | "autoscaling:DeleteTags" => {
                        assert_eq!(set(resources.clone()), want, "{a} for {groups}");
                        assert_eq!(
                            s["Condition"],
                            json!({
                                "StringEquals": {"aws:RequestedRegion": REGION},
                                "ForAllValues:StringEquals": {"aws:TagKeys": [UNSTEADY_TAG, BASELINE_TAG, REFUSED_AMI_TAG, REPORTED_TAG]},
                                "Null": {"aws:TagKeys": "false"}
                            }),
                            "{a}: the marker tags only"
                        );
                    }
                    "ec2:CreateLaunchTemplateVersion" => {
                        assert_eq!(actions, [a.as_str()], "alone in its statement");
                        assert_eq!(resources, [lt_arns.as_str()]);
                        assert_eq!(s["Condition"], tagged, "{a}: the tagged templates only");
                    }
                    "ec2:RunInstances" => {
                        assert_eq!(actions, [a.as_str()], "alone in its statement");
                        if resources == [lt_arns.as_str()] {
                            // The launch template of the launch: a tagged one.
                            assert_eq!(s["Condition"], tagged);
                            launch_through_tagged += 1;
                        } else {
                            // The launch's other resources, through a launch
                            // template only, and never a launch template itself
                            // (that would let any template through).
                            assert_eq!(
                                s["Condition"],
                                json!({"ArnLike": {"ec2:LaunchTemplate": lt_arns}}),
                            );
                            for r in &resources {
                                assert!(
                                    r.starts_with(&format!("arn:aws:ec2:{REGION}:"))
                                        && !r.contains(":launch-template/")
                                        && r != "*",
                                    "{r}"
                                );
                            }
                            launch_uses += 1;
                        }
                    }
                    "ec2:CreateTags" => {
                        assert_eq!(actions, [a.as_str()], "alone in its statement");
                        assert_eq!(
                            s["Condition"],
                            json!({"StringEquals": {"ec2:CreateAction": "RunInstances"}})
                        );
                        for r in &resources {
                            assert!(
                                r.starts_with(&format!("arn:aws:ec2:{REGION}:{ACCOUNT}:")),
                                "{r}"
                            );
                        }
                    }
                    "iam:PassRole" => {
                        assert_eq!(actions, [a.as_str()], "alone in its statement");
                        assert_eq!(
                            s["Condition"],
                            json!({"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}})
                        );
                        // The instances' role only (any path).
                        assert_eq!(
                            set(resources.clone()),
                            set([
                                format!("arn:aws:iam::{ACCOUNT}:role/ecsInstanceRole"),
                                format!("arn:aws:iam::{ACCOUNT}:role/*/ecsInstanceRole"),
                            ])
                        );
                    }
                    "logs:CreateLogStream" | "logs:PutLogEvents" => {
                        assert_eq!(resources, ["<AmiRolloutLogGroup.Arn>"]);
                    }
                    "sqs:SendMessage" => assert_eq!(resources, ["<DeadLetterQueue.Arn>"]),
                    other => panic!("ami-rollout may {other}: unexpected"),
                }
            }
        }
        assert_eq!(seen.len(), 12, "{seen:?}");
        assert_eq!((launch_through_tagged, launch_uses), (1, 1), "RunInstances");
        // Reads without a resource scope are the Describe calls only.
        for s in &statements {
            if strings(&s["Resource"]).iter().any(|r| r == "*") && s.get("Condition").is_none() {
                for a in strings(&s["Action"]) {
                    assert!(a.contains(":Describe"), "{a} on * without a condition");
                }
            }
        }
    }
    // The instances' role is required with ami-rollout (the template's Rules),
    // and optional without it.
    let refused = Stack::try_new(&[
        ("ClusterName", "prod"),
        ("AutoScalingGroupNames", "web-asg"),
        ("EnableAmiRollout", "true"),
    ])
    .unwrap_err();
    assert_eq!(refused.len(), 1);
    assert!(refused[0].contains("InstanceRoleName"), "{refused:?}");
    assert!(
        Stack::try_new(&[
            ("ClusterName", "prod"),
            ("AutoScalingGroupNames", "web-asg")
        ])
        .is_ok()
    );
    // ami-rollout can neither terminate instances nor touch lifecycle actions,
    // ECS state, the topic, or a launch template's default version.
    let fleet = fleet();
    let all: BTreeSet<String> = rollout_statements(&fleet)
        .iter()
        .flat_map(|s| strings(&s["Action"]))
        .collect();
    for a in [
        "ec2:TerminateInstances",
        "ec2:ModifyLaunchTemplate",
        "autoscaling:TerminateInstanceInAutoScalingGroup",
        "autoscaling:CompleteLifecycleAction",
        "ecs:UpdateContainerInstancesState",
        "ecs:StopTask",
        "sns:Publish",
        "ssm:SendCommand",
    ] {
        assert!(!all.contains(a), "ami-rollout has {a}");
    }
}

/// The new variables: their template defaults mean "nothing extra", and the
/// examples the parameters document are what the configuration accepts.
#[test]
fn ami_rollout_guards_and_controls_come_from_the_parameters() {
    let env = |extra: &[(&str, &str)]| {
        rollout_function(&rollout_stack(extra))["Properties"]["Environment"]["Variables"].clone()
    };
    let defaults = env(&[]);
    assert_eq!(defaults["ALLOWED_AMI_OWNERS"], "none");
    assert_eq!(defaults["ROLLOUT_WINDOW"], "always");
    assert_eq!(defaults["ROLLOUT_CHECKPOINT_PERCENTAGES"], "none");
    assert_eq!(defaults["ROLLOUT_CHECKPOINT_DELAY_SECONDS"], "3600");
    assert_eq!(defaults["ROLLOUT_ALARM_NAMES"], "none");
    let config = rollout_config(&defaults).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(config.allowed_ami_owners.is_empty() && config.window.is_none());
    assert!(config.checkpoint_percentages.is_empty() && config.alarms.is_empty());

    let set_ = env(&[
        ("AllowedAmiOwners", "111122223333,444455556666"),
        ("RolloutWindow", "Mon-Fri 22:00-02:00; Sun 03:00-05:00"),
        ("RolloutCheckpointPercentages", "20,50,100"),
        ("RolloutCheckpointDelaySeconds", "600"),
        ("RolloutAlarmNames", "p99-latency,5xx-rate"),
    ]);
    let config = rollout_config(&set_).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(config.allowed_ami_owners, ["111122223333", "444455556666"]);
    assert!(config.window.is_some());
    assert_eq!(config.checkpoint_percentages, [20, 50, 100]);
    assert_eq!(config.checkpoint_delay.as_secs(), 600);
    assert_eq!(config.alarms, ["p99-latency", "5xx-rate"]);
    let template = template();
    let description = |name: &str| {
        template["Parameters"][name]["Description"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    for (param, example) in [
        ("RolloutWindow", "Sat 02:00-06:00"),
        ("RolloutWindow", "Mon-Fri 22:00-02:00; Sun 03:00-05:00"),
        ("RolloutCheckpointPercentages", "20,50,100"),
    ] {
        assert!(description(param).contains(example), "{param}: {example}");
    }
}

/// GetParameter on the one parameter: AWS's public parameters have no account
/// in their ARN, and the ARN holds the name without its leading slash.
#[test]
fn ami_rollout_reads_the_ami_parameter_only() {
    for (name, arn) in [
        (
            "/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id",
            format!(
                "arn:aws:ssm:{REGION}::parameter/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id"
            ),
        ),
        (
            "/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended",
            format!(
                "arn:aws:ssm:{REGION}::parameter/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended"
            ),
        ),
        (
            "/fleet/ecs-ami",
            format!("arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/fleet/ecs-ami"),
        ),
        (
            "fleet-ecs-ami",
            format!("arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/fleet-ecs-ami"),
        ),
        (
            "/fleet/aws/service/ami",
            format!("arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/fleet/aws/service/ami"),
        ),
    ] {
        let stack = rollout_stack(&[("AmiParameterName", name)]);
        let reads: Vec<Value> = rollout_statements(&stack)
            .into_iter()
            .filter(|s| strings(&s["Action"]).iter().any(|a| a.starts_with("ssm:")))
            .collect();
        assert_eq!(reads.len(), 1, "{name}");
        assert_eq!(strings(&reads[0]["Action"]), ["ssm:GetParameter"]);
        assert_eq!(strings(&reads[0]["Resource"]), [arn], "{name}");
        assert_eq!(
            rollout_function(&stack)["Properties"]["Environment"]["Variables"]["AMI_PARAMETER_NAME"],
            name
        );
    }
}
