//! How a lifecycle event reaches its function: the hooks on every group, the
//! topic's filter policies, and the launch event rule that can replace the
//! launch hook.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::cfn::{Stack, functions, matches, read};
use crate::{fleet, set};

fn sns_message(fixture: &str) -> Value {
    let envelope: Value =
        serde_json::from_str(&read(&format!("crates/ecs-lifecycle/fixtures/{fixture}"))).unwrap();
    serde_json::from_str(envelope["Records"][0]["Sns"]["Message"].as_str().unwrap()).unwrap()
}

/// Who gets what from the topic: the functions' own SNS subscriptions, and
/// (WaitMode=queue) each wait queue's subscription, named by the function its
/// event source mapping invokes.
fn subscribers(stack: &Stack) -> Vec<(String, Value)> {
    let binaries: Vec<(String, String)> = functions(stack)
        .into_iter()
        .map(|(id, (binary, _))| (format!("<{id}.Alias>"), binary))
        .collect();
    let mappings = stack.of_type("AWS::Lambda::EventSourceMapping");
    let waits = stack
        .of_type("AWS::SNS::Subscription")
        .into_values()
        .filter(|s| s["Properties"]["Protocol"] == "sqs")
        .map(|s| {
            let p = &s["Properties"];
            assert_eq!(p["TopicArn"], "<LifecycleTopic>");
            assert_eq!(p["FilterPolicyScope"], "MessageBody");
            let mapping = mappings
                .values()
                .find(|m| m["Properties"]["EventSourceArn"] == p["Endpoint"])
                .unwrap_or_else(|| panic!("no function reads {}", p["Endpoint"]));
            let function = &mapping["Properties"]["FunctionName"];
            let (_, binary) = binaries
                .iter()
                .find(|(alias, _)| function == alias.as_str())
                .unwrap_or_else(|| panic!("{function} is no function's alias"));
            (binary.clone(), p["FilterPolicy"].clone())
        });
    own_subscribers(stack).into_iter().chain(waits).collect()
}

#[test]
fn filter_policies_deliver_each_message_to_the_function_that_handles_it() {
    for mode in ["queue", "in-invocation"] {
        let mut stack = fleet();
        if mode == "in-invocation" {
            stack = Stack::new(&[
                ("ClusterName", "prod"),
                ("AutoScalingGroupNames", "web-asg,batch-asg"),
                ("WaitMode", "in-invocation"),
            ]);
        }
        delivers_each_message_to_its_function(&stack, mode);
    }
}

/// WaitMode=queue: each hook function's continuations wait in its own queue,
/// delayed by its poll interval, read by the function's alias with a bounded
/// concurrency and batch failures reported; in-invocation mode has none.
#[test]
fn in_queue_mode_continuations_wait_in_a_queue_paced_by_the_poll_interval() {
    let stack = fleet();
    let queues = stack.of_type("AWS::SQS::Queue");
    let mappings = stack.of_type("AWS::Lambda::EventSourceMapping");
    for (function, binary) in [
        ("TerminateDrainFunction", "terminate-drain"),
        ("LaunchVerifyFunction", "launch-verify"),
    ] {
        let name = function.trim_end_matches("Function");
        let queue = &queues[&format!("{name}WaitQueue")]["Properties"];
        let env = &functions(&stack)[function].1["Properties"]["Environment"]["Variables"];
        assert_eq!(env["WAIT_MODE"], "queue", "{function}");
        assert_eq!(
            queue["DelaySeconds"], env["POLL_INTERVAL_SECONDS"],
            "{function}: the queue's delay is the poll interval"
        );
        assert!(
            queue["VisibilityTimeout"].as_u64().unwrap() >= 900,
            "{function}"
        );
        assert!(queue["RedrivePolicy"]["deadLetterTargetArn"].is_string());
        let mapping = &mappings[&format!("{name}WaitMapping")]["Properties"];
        assert_eq!(mapping["FunctionName"], format!("<{function}.Alias>"));
        assert_eq!(
            mapping["EventSourceArn"],
            format!("<{name}WaitQueue.Arn>"),
            "{binary}"
        );
        assert_eq!(
            mapping["FunctionResponseTypes"],
            json!(["ReportBatchItemFailures"])
        );
        assert!(
            mapping["ScalingConfig"]["MaximumConcurrency"].is_string()
                || mapping["ScalingConfig"]["MaximumConcurrency"].is_number()
        );
        // Lambda's rules: 1 to 10,000 records a batch; over 10 (standard
        // queue) only with a batching window, which must stay well inside the
        // hand-off slack (10 s) the queue's use is checked against.
        let batch = mapping["BatchSize"].as_u64().unwrap();
        let window = mapping["MaximumBatchingWindowInSeconds"]
            .as_u64()
            .unwrap_or(0);
        assert!((1..=10_000).contains(&batch), "{function}: {batch}");
        assert!(batch <= 10 || window >= 1, "{function}: {batch} {window}");
        assert!(window <= 2, "{function}: {window}");
    }
    // terminate-drain's looks of one cluster coalesce within a batch
    // (DescribeContainerInstances takes 100): its batches are that large.
    assert_eq!(
        mappings["TerminateDrainWaitMapping"]["Properties"]["BatchSize"],
        100
    );
    let in_invocation = Stack::new(&[
        ("ClusterName", "prod"),
        ("AutoScalingGroupNames", "web-asg"),
        ("WaitMode", "in-invocation"),
    ]);
    assert!(
        in_invocation
            .of_type("AWS::Lambda::EventSourceMapping")
            .is_empty()
    );
    assert!(
        !in_invocation
            .of_type("AWS::SQS::Queue")
            .keys()
            .any(|k| k.ends_with("WaitQueue"))
    );
}

fn own_subscribers(stack: &Stack) -> Vec<(String, Value)> {
    functions(stack)
        .into_values()
        .flat_map(|(binary, f)| {
            // ami-rollout has no events of its own (its rules are resources).
            f["Properties"]["Events"]
                .as_object()
                .into_iter()
                .flat_map(|events| events.values())
                .filter(|e| e["Type"] == "SNS")
                .map(|e| {
                    assert_eq!(e["Properties"]["Topic"], "<LifecycleTopic>");
                    assert_eq!(e["Properties"]["FilterPolicyScope"], "MessageBody");
                    (binary.clone(), e["Properties"]["FilterPolicy"].clone())
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

fn delivers_each_message_to_its_function(stack: &Stack, mode: &str) {
    let subscribers = subscribers(stack);
    let delivered = |fixture: &str| -> BTreeSet<String> {
        let message = sns_message(fixture);
        subscribers
            .iter()
            .filter(|(_, policy)| matches(policy, &message))
            .map(|(b, _)| b.clone())
            .collect()
    };
    // One subscriber per message, whatever the mode.
    assert_eq!(
        delivered("sns-terminate.json"),
        set(["terminate-drain"]),
        "{mode}"
    );
    // A continuation that asks to wait: in queue mode its function's wait
    // queue is the one subscriber that takes it (and in-invocation mode
    // writes none).
    let mut waits = sns_message("sns-continuation.json");
    waits["wait"] = json!("queue");
    let takers: Vec<&String> = subscribers
        .iter()
        .filter(|(_, policy)| matches(policy, &waits))
        .map(|(b, _)| b)
        .collect();
    assert_eq!(takers, ["terminate-drain"], "{mode}");
    if mode == "queue" {
        assert!(
            own_subscribers(stack)
                .iter()
                .all(|(_, policy)| !matches(policy, &waits)),
            "the function itself does not take a waiting continuation"
        );
    }
    assert_eq!(delivered("sns-launch.json"), set(["launch-verify"]));
    assert_eq!(delivered("sns-continuation.json"), set(["terminate-drain"]));
    assert_eq!(
        delivered("sns-continuation-launch-verify.json"),
        set(["launch-verify"])
    );
    // The test notification carries no transition: both acknowledge it.
    assert_eq!(
        delivered("sns-test-notification.json"),
        set(["launch-verify", "terminate-drain"])
    );
    // Anything else on the topic reaches no function.
    assert!(
        subscribers
            .iter()
            .all(|(_, p)| !matches(p, &json!({"kind": "something-else"})))
    );
}

#[test]
fn launch_successful_rule_exists_only_as_the_alternative_trigger() {
    let to_launch_verify = |stack: &Stack| -> Vec<Value> {
        stack
            .of_type("AWS::Events::Rule")
            .into_values()
            .filter(|r| r["Properties"]["Targets"][0]["Arn"] == "<LaunchVerifyFunction.Alias>")
            .collect()
    };
    let hooks = fleet();
    assert!(to_launch_verify(&hooks).is_empty());

    let event: Value = serde_json::from_str(&read(
        "crates/ecs-lifecycle/fixtures/eventbridge-launch-successful.json",
    ))
    .unwrap();
    let group = event["detail"]["AutoScalingGroupName"].as_str().unwrap();
    let stack = Stack::new(&[
        ("ClusterName", "prod"),
        ("AutoScalingGroupNames", &format!("other-asg,{group}")),
        ("LaunchTrigger", "LaunchEvent"),
    ]);
    let rules = to_launch_verify(&stack);
    assert_eq!(rules.len(), 1);
    let rule = &rules[0]["Properties"];
    assert!(matches(&rule["EventPattern"], &event));
    let mut elsewhere = event.clone();
    elsewhere["detail"]["AutoScalingGroupName"] = json!("not-ours");
    assert!(!matches(&rule["EventPattern"], &elsewhere));
    assert_eq!(rule["Targets"][0]["Arn"], "<LaunchVerifyFunction.Alias>");
    let permissions = stack.of_type("AWS::Lambda::Permission");
    assert!(permissions.values().any(|p| {
        p["Properties"]["Principal"] == "events.amazonaws.com"
            && p["Properties"]["FunctionName"] == "<LaunchVerifyFunction.Alias>"
    }));
    // No launch hook then: nothing should wait on a verification that follows the launch.
    let launch_hooks = stack
        .of_type("AWS::AutoScaling::LifecycleHook")
        .into_values()
        .filter(|h| h["Properties"]["LifecycleTransition"] == "autoscaling:EC2_INSTANCE_LAUNCHING")
        .count();
    assert_eq!(launch_hooks, 0);
}

#[test]
fn hooks_on_every_group_notify_the_topic() {
    let names = ["g-one", "g-two", "g-three", "g-four", "g-five"];
    for n in 1..=names.len() {
        let groups = names[..n].join(",");
        let stack = Stack::new(&[
            ("ClusterName", "prod"),
            ("AutoScalingGroupNames", &groups),
            ("HeartbeatTimeout", "600"),
        ]);
        let hooks = stack.of_type("AWS::AutoScaling::LifecycleHook");
        assert_eq!(hooks.len(), 2 * n, "{groups}");
        for transition in [
            "autoscaling:EC2_INSTANCE_TERMINATING",
            "autoscaling:EC2_INSTANCE_LAUNCHING",
        ] {
            let on: BTreeSet<String> = hooks
                .values()
                .map(|h| &h["Properties"])
                .filter(|p| p["LifecycleTransition"] == transition)
                .map(|p| {
                    assert_eq!(p["NotificationTargetARN"], "<LifecycleTopic>");
                    assert_eq!(p["RoleARN"], "<LifecycleHookRole.Arn>");
                    assert_eq!(p["HeartbeatTimeout"], "600");
                    assert_eq!(p["DefaultResult"], "CONTINUE");
                    p["AutoScalingGroupName"].as_str().unwrap().to_owned()
                })
                .collect();
            assert_eq!(
                on,
                set(names[..n].iter().copied()),
                "{transition} hooks for {groups}"
            );
        }
    }
}

#[test]
fn ecs_events_that_can_end_a_drain_reach_terminate_drain_unless_turned_off() {
    let to_terminate_drain = |stack: &Stack| -> Vec<Value> {
        stack
            .of_type("AWS::Events::Rule")
            .into_values()
            .filter(|r| {
                r["Properties"]["Targets"][0]["Arn"] == "<TerminateDrainFunction.Alias>"
                    && r["Properties"]["EventPattern"]["source"] == json!(["aws.ecs"])
            })
            .collect()
    };
    let fixture = |name: &str| -> Value {
        serde_json::from_str(&read(&format!("crates/ecs-lifecycle/fixtures/{name}.json"))).unwrap()
    };
    let stack = fleet();
    let rules = to_terminate_drain(&stack);
    assert_eq!(rules.len(), 2);
    let matched_by = |event: &Value| {
        rules
            .iter()
            .filter(|r| matches(&r["Properties"]["EventPattern"], event))
            .count()
    };
    let stopped = fixture("eventbridge-ecs-task-stopped");
    let drained = fixture("eventbridge-ecs-instance-drained");
    assert_eq!(matched_by(&stopped), 1);
    assert_eq!(matched_by(&drained), 1);
    // Not for another cluster, a task still running, a Fargate task (no container
    // instance), or an instance with tasks left.
    let mut other = stopped.clone();
    other["detail"]["clusterArn"] = json!("arn:aws:ecs:us-east-1:123456789012:cluster/dev");
    let mut running = stopped.clone();
    running["detail"]["lastStatus"] = json!("RUNNING");
    let mut fargate = stopped.clone();
    fargate["detail"]
        .as_object_mut()
        .unwrap()
        .remove("containerInstanceArn");
    let mut busy = drained.clone();
    busy["detail"]["runningTasksCount"] = json!(3);
    let mut starting = drained.clone();
    starting["detail"]["pendingTasksCount"] = json!(1);
    for event in [&other, &running, &fargate, &busy, &starting] {
        assert_eq!(matched_by(event), 0, "{}", event["detail"]);
    }
    for rule in &rules {
        assert!(rule["Properties"]["Targets"][0]["DeadLetterConfig"]["Arn"].is_string());
    }
    let permissions = stack.of_type("AWS::Lambda::Permission");
    for rule in ["<EcsTaskStoppedRule.Arn>", "<EcsInstanceDrainedRule.Arn>"] {
        assert!(permissions.values().any(|p| {
            p["Properties"]["FunctionName"] == "<TerminateDrainFunction.Alias>"
                && p["Properties"]["Principal"] == "events.amazonaws.com"
                && p["Properties"]["SourceArn"] == rule
        }));
    }

    let off = Stack::new(&[
        ("ClusterName", "prod"),
        ("AutoScalingGroupNames", "web-asg,batch-asg"),
        ("DrainOnEcsEvents", "false"),
    ]);
    assert!(to_terminate_drain(&off).is_empty());
}

#[test]
fn early_warnings_reach_terminate_drain_as_their_actions_say() {
    let fixture = |name: &str| -> Value {
        serde_json::from_str(&read(&format!("crates/ecs-lifecycle/fixtures/{name}.json"))).unwrap()
    };
    let spot = fixture("eventbridge-spot-interruption");
    let rebalance = fixture("eventbridge-rebalance");
    let retirement = fixture("eventbridge-health-retirement");
    let routed = |stack: &Stack, event: &Value| {
        stack
            .of_type("AWS::Events::Rule")
            .into_values()
            .filter(|r| {
                r["Properties"]["Targets"][0]["Arn"] == "<TerminateDrainFunction.Alias>"
                    && matches(&r["Properties"]["EventPattern"], event)
            })
            .count()
    };
    // Defaults: Spot drain, rebalance ignored (no rule), scheduled changes replaced.
    let stack = fleet();
    assert_eq!(routed(&stack, &spot), 1);
    assert_eq!(routed(&stack, &rebalance), 0);
    assert_eq!(routed(&stack, &retirement), 1);
    let mut issue = retirement.clone();
    issue["detail"]["eventTypeCategory"] = json!("issue");
    assert_eq!(routed(&stack, &issue), 0, "only scheduled changes");
    let env =
        &functions(&stack)["TerminateDrainFunction"].1["Properties"]["Environment"]["Variables"];
    assert_eq!(env["SPOT_INTERRUPTION_ACTION"], "drain");
    assert_eq!(env["REBALANCE_ACTION"], "ignore");
    assert_eq!(env["SCHEDULED_EVENT_ACTION"], "replace");

    let turned = Stack::new(&[
        ("ClusterName", "prod"),
        ("AutoScalingGroupNames", "web-asg,batch-asg"),
        ("SpotInterruptionAction", "ignore"),
        ("RebalanceAction", "drain"),
        ("ScheduledEventAction", "ignore"),
    ]);
    assert_eq!(routed(&turned, &spot), 0);
    assert_eq!(routed(&turned, &rebalance), 1);
    assert_eq!(routed(&turned, &retirement), 0);
}

#[test]
fn instances_running_again_reach_terminate_drain_while_a_warning_drains_early() {
    let running: Value = serde_json::from_str(&read(
        "crates/ecs-lifecycle/fixtures/eventbridge-ec2-running.json",
    ))
    .unwrap();
    let rules = |stack: &Stack, event: &Value| -> Vec<String> {
        stack
            .of_type("AWS::Events::Rule")
            .into_iter()
            .filter(|(_, r)| {
                r["Properties"]["Targets"][0]["Arn"] == "<TerminateDrainFunction.Alias>"
                    && matches(&r["Properties"]["EventPattern"], event)
            })
            .map(|(id, r)| {
                assert!(
                    r["Properties"]["Targets"][0]["DeadLetterConfig"]["Arn"].is_string(),
                    "{id}"
                );
                id
            })
            .collect()
    };
    // The defaults drain on Spot warnings: `running` comes, nothing else.
    let stack = fleet();
    assert_eq!(rules(&stack, &running), ["InstanceRunningRule"]);
    for state in [
        "pending",
        "stopping",
        "stopped",
        "shutting-down",
        "terminated",
    ] {
        let mut other = running.clone();
        other["detail"]["state"] = json!(state);
        assert!(rules(&stack, &other).is_empty(), "{state}");
    }
    assert!(stack.of_type("AWS::Lambda::Permission").values().any(
        |p| p["Properties"]["SourceArn"] == "<InstanceRunningRule.Arn>"
            && p["Properties"]["FunctionName"] == "<TerminateDrainFunction.Alias>"
            && p["Properties"]["Principal"] == "events.amazonaws.com"
    ));
    // Each warning that drains early brings the rule; none, no rule.
    let with = |spot: &str, rebalance: &str, scheduled: &str| {
        Stack::new(&[
            ("ClusterName", "prod"),
            ("AutoScalingGroupNames", "web-asg,batch-asg"),
            ("SpotInterruptionAction", spot),
            ("RebalanceAction", rebalance),
            ("ScheduledEventAction", scheduled),
        ])
    };
    assert!(rules(&with("ignore", "ignore", "replace"), &running).is_empty());
    assert!(rules(&with("ignore", "ignore", "ignore"), &running).is_empty());
    for stack in [
        with("ignore", "drain", "replace"),
        with("ignore", "ignore", "drain"),
        with("drain", "drain", "drain"),
    ] {
        assert_eq!(rules(&stack, &running), ["InstanceRunningRule"]);
    }
}
