//! Every dead letter lands: each path that dead-letters to the queue (EventBridge
//! rules' `DeadLetterConfig`, SNS subscriptions' redrive policies, Lambda's
//! async on-failure destinations) is admitted by the queue's policy or by the
//! sender's role, under every combination of the template's conditions; and
//! what fails is watched (queue depth and age, Lambda throttles, EventBridge
//! failed invocations), with OK actions too.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::cfn::{Stack, functions, role_statements, strings};
use crate::set;

const QUEUE_ARN: &str = "<DeadLetterQueue.Arn>";
const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:ops";

/// Every combination of the parameters that decide which rules, functions and
/// subscriptions exist (the conditions UseEcsEvents, UseSpotWarnings,
/// UseRebalance, UseScheduledEvents, UseLaunchEvent / UseLaunchHook and
/// UseAmiRollout): 64 stacks.
fn every_combination() -> Vec<(String, Stack)> {
    let choices: [(&str, [&str; 2]); 6] = [
        ("DrainOnEcsEvents", ["true", "false"]),
        ("SpotInterruptionAction", ["drain", "ignore"]),
        ("RebalanceAction", ["drain", "ignore"]),
        ("ScheduledEventAction", ["replace", "ignore"]),
        ("LaunchTrigger", ["LifecycleHook", "LaunchEvent"]),
        ("EnableAmiRollout", ["true", "false"]),
    ];
    (0..1u32 << choices.len())
        .map(|bits| {
            let mut params = vec![
                ("ClusterName", "prod"),
                ("AutoScalingGroupNames", "web-asg,batch-asg"),
                ("InstanceRoleName", "ecsInstanceRole"),
            ];
            for (i, (name, values)) in choices.iter().enumerate() {
                params.push((name, values[((bits >> i) & 1) as usize]));
            }
            let label = format!("{:?}", &params[3..]);
            (label, Stack::new(&params))
        })
        .collect()
}

/// The queue policy's Allow statements for a service principal, each checked
/// to be `sqs:SendMessage` on the queue with one `aws:SourceArn`: the sources.
fn admitted(stack: &Stack, service: &str) -> Vec<String> {
    let policy = &stack.resources()["DeadLetterQueuePolicy"]["Properties"];
    assert_eq!(policy["Queues"], json!(["<DeadLetterQueue>"]));
    policy["PolicyDocument"]["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["Effect"] == "Allow" && s["Principal"]["Service"] == service)
        .map(|s| {
            assert_eq!(s["Action"], "sqs:SendMessage", "{s}");
            assert_eq!(s["Resource"], QUEUE_ARN, "{s}");
            let sources = strings(&s["Condition"]["ArnEquals"]["aws:SourceArn"]);
            assert_eq!(sources.len(), 1, "one statement per source: {s}");
            sources[0].clone()
        })
        .collect()
}

#[test]
fn every_path_that_dead_letters_is_admitted_under_every_combination() {
    for (label, stack) in every_combination() {
        // EventBridge: every rule target dead-letters to the queue, and the
        // policy admits exactly the rules that exist, one statement each.
        let mut rules = BTreeSet::new();
        for (id, rule) in stack.of_type("AWS::Events::Rule") {
            for target in rule["Properties"]["Targets"].as_array().unwrap() {
                assert_eq!(
                    target["DeadLetterConfig"]["Arn"], QUEUE_ARN,
                    "{label}: {id} drops what it cannot deliver"
                );
            }
            rules.insert(format!("<{id}.Arn>"));
        }
        let from_events = admitted(&stack, "events.amazonaws.com");
        assert_eq!(from_events.len(), rules.len(), "{label}: {from_events:?}");
        assert_eq!(set(from_events), rules, "{label}");

        // SNS: each subscription's redrive policy, from its topic.
        let mut topics = BTreeSet::new();
        for (id, (_, f)) in functions(&stack) {
            let events = f["Properties"]["Events"].as_object().cloned();
            for e in events.into_iter().flat_map(|m| m.into_values()) {
                if e["Type"] != "SNS" {
                    continue;
                }
                let redrive = &e["Properties"]["RedrivePolicy"]["deadLetterTargetArn"];
                assert_eq!(redrive, QUEUE_ARN, "{label}: {id}'s subscription");
                topics.insert(e["Properties"]["Topic"].as_str().unwrap().to_owned());
            }
        }
        assert!(!topics.is_empty());
        assert_eq!(
            set(admitted(&stack, "sns.amazonaws.com")),
            topics,
            "{label}"
        );

        // Lambda's on-failure destination is sent with the function's role.
        let resources = stack.resources();
        for (id, (_, f)) in functions(&stack) {
            let p = &f["Properties"];
            let dest = &p["EventInvokeConfig"]["DestinationConfig"]["OnFailure"];
            assert_eq!(dest["Destination"], QUEUE_ARN, "{label}: {id}");
            let role = p["Role"].as_str().unwrap();
            let role = role.trim_start_matches('<').trim_end_matches(".Arn>");
            let granted = role_statements(&resources[role]["Properties"])
                .iter()
                .any(|s| {
                    s["Effect"] == "Allow"
                        && strings(&s["Action"]).contains(&"sqs:SendMessage".to_owned())
                        && strings(&s["Resource"]).contains(&QUEUE_ARN.to_owned())
                        && s.get("Condition").is_none()
                });
            assert!(granted, "{label}: {role} may not send {id}'s failures");
        }
    }
}

/// The queue keeps its messages as long as SQS allows (14 days), and its depth
/// and the age of its oldest message are alarmed.
#[test]
fn the_queue_keeps_its_messages_14_days_and_is_watched() {
    let stack = crate::fleet();
    let r = stack.resources();
    assert_eq!(
        r["DeadLetterQueue"]["Properties"]["MessageRetentionPeriod"],
        1_209_600
    );
    let alarms = stack.of_type("AWS::CloudWatch::Alarm");
    let on_queue = |metric: &str| -> Vec<Value> {
        alarms
            .values()
            .map(|a| a["Properties"].clone())
            .filter(|p| {
                p["Namespace"] == "AWS/SQS"
                    && p["MetricName"] == metric
                    && p["Dimensions"]
                        == json!([{"Name": "QueueName", "Value": "<DeadLetterQueue.QueueName>"}])
            })
            .collect()
    };
    let depth = on_queue("ApproximateNumberOfMessagesVisible");
    assert_eq!(depth.len(), 1);
    // Any message (> 0).
    assert_eq!(depth[0]["Threshold"], 1);
    assert_eq!(
        depth[0]["ComparisonOperator"],
        "GreaterThanOrEqualToThreshold"
    );
    let age = on_queue("ApproximateAgeOfOldestMessage");
    assert_eq!(age.len(), 1);
    assert_eq!(age[0]["Statistic"], "Maximum");
    let threshold = age[0]["Threshold"].as_i64().unwrap();
    assert!(
        threshold > 0 && threshold < 1_209_600,
        "before SQS deletes the message"
    );
}

/// Throttles of each function and failed invocations of each rule are alarmed,
/// under every combination; those alarms and the queue's notify AlarmTopicArn
/// both ways (ALARM and OK) when it is set, and have no actions otherwise.
#[test]
fn throttles_and_failed_invocations_are_alarmed_with_ok_actions() {
    let watched = |stack: &Stack, namespace: &str, metric: &str, dimension: &str| {
        stack
            .of_type("AWS::CloudWatch::Alarm")
            .into_values()
            .map(|a| a["Properties"].clone())
            .filter(|p| p["Namespace"] == namespace && p["MetricName"] == metric)
            .map(|p| {
                assert_eq!(p["Dimensions"][0]["Name"], dimension, "{p}");
                assert_eq!(p["Statistic"], "Sum", "{p}");
                assert_eq!(p["Threshold"], 1, "{p}");
                assert_eq!(p["ComparisonOperator"], "GreaterThanOrEqualToThreshold");
                assert_eq!(p["TreatMissingData"], "notBreaching", "{p}");
                p["Dimensions"][0]["Value"].as_str().unwrap().to_owned()
            })
            .collect::<BTreeSet<String>>()
    };
    for (label, stack) in every_combination() {
        let fns: BTreeSet<String> = functions(&stack)
            .keys()
            .map(|id| format!("<{id}>"))
            .collect();
        assert_eq!(
            watched(&stack, "AWS/Lambda", "Throttles", "FunctionName"),
            fns,
            "{label}"
        );
        let rules: BTreeSet<String> = stack
            .of_type("AWS::Events::Rule")
            .keys()
            .map(|id| format!("<{id}>"))
            .collect();
        assert_eq!(
            watched(&stack, "AWS/Events", "FailedInvocations", "RuleName"),
            rules,
            "{label}"
        );
    }

    let with_actions = |stack: &Stack| -> Vec<(String, Value)> {
        stack
            .of_type("AWS::CloudWatch::Alarm")
            .into_iter()
            .filter(|(_, a)| {
                let p = &a["Properties"];
                p["MetricName"] == "Throttles"
                    || p["MetricName"] == "FailedInvocations"
                    || p["Namespace"] == "AWS/SQS"
            })
            .collect()
    };
    let quiet = crate::rollout_stack(&[("LaunchTrigger", "LaunchEvent")]);
    let loud = crate::rollout_stack(&[("LaunchTrigger", "LaunchEvent"), ("AlarmTopicArn", TOPIC)]);
    // 3 functions, 10 rules (RebalanceAction=ignore: 9), the queue's 2.
    assert_eq!(with_actions(&loud).len(), 3 + 9 + 2);
    for (id, a) in with_actions(&loud) {
        assert_eq!(a["Properties"]["AlarmActions"], json!([TOPIC]), "{id}");
        assert_eq!(a["Properties"]["OKActions"], json!([TOPIC]), "{id}");
    }
    for (id, a) in with_actions(&quiet) {
        assert!(a["Properties"].get("AlarmActions").is_none(), "{id}");
        assert!(a["Properties"].get("OKActions").is_none(), "{id}");
    }
}
