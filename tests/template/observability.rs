//! The topic and the queue encrypted, and what is watched: the functions'
//! errors, the dead letters, and the functions' own metrics (drain timeouts,
//! orphans, ami-rollout's rollbacks and failed restores).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::cfn::{ACCOUNT, Stack, functions, identity_statements, strings};
use crate::code::METRIC_NAMESPACE;
use crate::{fleet, rollout_stack};

#[test]
fn topic_and_queue_are_encrypted_and_watched() {
    let stack = fleet();
    let r = stack.resources();
    let topic = &r["LifecycleTopic"]["Properties"];
    assert_eq!(topic["KmsMasterKeyId"], "<LifecycleTopicKey>");
    let key = &r["LifecycleTopicKey"]["Properties"];
    assert_eq!(r["LifecycleTopicKey"]["Type"], "AWS::KMS::Key");
    assert_eq!(key["EnableKeyRotation"], true);
    // The key policy only delegates to the account's IAM; no one else, no service.
    assert_eq!(
        key["KeyPolicy"]["Statement"],
        json!([{"Sid": "AccountAdministersTheKey", "Effect": "Allow",
                "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:root")},
                "Action": "kms:*", "Resource": "*"}])
    );
    assert_eq!(
        r["DeadLetterQueue"]["Properties"]["SqsManagedSseEnabled"],
        true
    );
    let queue_policy = &r["DeadLetterQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"];
    for s in queue_policy.as_array().unwrap() {
        if s["Effect"] == "Allow" {
            // The stack's own topic or rules only.
            let sources = strings(&s["Condition"]["ArnEquals"]["aws:SourceArn"]);
            assert!(
                !sources.is_empty() && sources.iter().all(|a| a.starts_with('<')),
                "{s}"
            );
        }
    }

    let alarms = stack.of_type("AWS::CloudWatch::Alarm");
    let watched = |namespace: &str, metric: &str, dimension: &str, value: &str| {
        alarms.values().any(|a| {
            let p = &a["Properties"];
            p["Namespace"] == namespace
                && p["MetricName"] == metric
                && p["Dimensions"] == json!([{ "Name": dimension, "Value": value }])
        })
    };
    for id in functions(&stack).keys() {
        assert!(
            watched("AWS/Lambda", "Errors", "FunctionName", &format!("<{id}>")),
            "no Errors alarm on {id}"
        );
    }
    assert!(watched(
        "AWS/SQS",
        "ApproximateNumberOfMessagesVisible",
        "QueueName",
        "<DeadLetterQueue.QueueName>"
    ));
    // Orphans and drain timeouts, from the functions' own metrics.
    assert!(watched(
        METRIC_NAMESPACE,
        "Orphans",
        "Function",
        "<LaunchVerifyFunction>"
    ));
    assert!(watched(
        METRIC_NAMESPACE,
        "DrainTimeouts",
        "Function",
        "<TerminateDrainFunction>"
    ));
    // Alarm actions only when a topic is given.
    assert!(
        alarms
            .values()
            .all(|a| a["Properties"].get("AlarmActions").is_none())
    );
    let notify = Stack::new(&[
        ("ClusterName", "prod"),
        ("AutoScalingGroupNames", "web-asg"),
        ("AlarmTopicArn", "arn:aws:sns:us-east-1:123456789012:ops"),
        ("EnableAmiRollout", "true"),
        ("InstanceRoleName", "ecsInstanceRole"),
    ]);
    for a in notify.of_type("AWS::CloudWatch::Alarm").values() {
        assert_eq!(
            a["Properties"]["AlarmActions"],
            json!(["arn:aws:sns:us-east-1:123456789012:ops"])
        );
    }
}

/// The alarms on the functions' own metrics (Embedded Metric Format lines,
/// namespace `EcsLifecycle`, the `Function` dimension set): which ones, on
/// which function, and that any one event raises them.
fn metric_alarms(stack: &Stack) -> BTreeMap<String, (String, String)> {
    stack
        .of_type("AWS::CloudWatch::Alarm")
        .into_iter()
        .filter(|(_, a)| a["Properties"]["Namespace"] == METRIC_NAMESPACE)
        .map(|(id, a)| {
            let p = &a["Properties"];
            assert_eq!(p["Statistic"], "Sum", "{id}");
            assert!(p["Period"] == 300 || p["Period"] == 60, "{id}");
            assert_eq!(p["EvaluationPeriods"], 1, "{id}");
            assert_eq!(p["Threshold"], 1, "{id}: one event is enough");
            assert_eq!(
                p["ComparisonOperator"], "GreaterThanOrEqualToThreshold",
                "{id}"
            );
            // No data is no event: the metric exists only once emitted.
            assert_eq!(p["TreatMissingData"], "notBreaching", "{id}");
            assert_eq!(p["Dimensions"].as_array().unwrap().len(), 1, "{id}");
            assert_eq!(p["Dimensions"][0]["Name"], "Function", "{id}");
            (
                id,
                (
                    p["MetricName"].as_str().unwrap().to_owned(),
                    p["Dimensions"][0]["Value"].as_str().unwrap().to_owned(),
                ),
            )
        })
        .collect()
}

/// A drain timeout, an orphan, a rollback and a failed restore each raise an
/// alarm (the log metric filters they replace are gone); ami-rollout's only
/// with it; each notifies AlarmTopicArn when it is set.
#[test]
fn drain_timeouts_orphans_rollbacks_and_failed_restores_raise_alarms() {
    let hooks = [
        (
            "DrainDeadlineAlarm",
            ("DrainTimeouts", "<TerminateDrainFunction>"),
        ),
        ("OrphanAlarm", ("Orphans", "<LaunchVerifyFunction>")),
        (
            "DrainRetainedAlarm",
            ("DrainsRetained", "<TerminateDrainFunction>"),
        ),
    ];
    let rollout = [
        (
            "AmiRolloutRollbackAlarm",
            ("RolloutsRolledBack", "<AmiRolloutFunction>"),
        ),
        (
            "AmiRolloutRestoreFailedAlarm",
            ("RestoresFailed", "<AmiRolloutFunction>"),
        ),
    ];
    let owned = |alarms: &[(&str, (&str, &str))]| -> BTreeMap<String, (String, String)> {
        alarms
            .iter()
            .map(|(id, (m, f))| (id.to_string(), (m.to_string(), f.to_string())))
            .collect()
    };
    let with_rollout = fleet();
    assert_eq!(
        metric_alarms(&with_rollout),
        owned(&[hooks.as_slice(), rollout.as_slice()].concat())
    );
    let without = Stack::new(&[
        ("ClusterName", "prod"),
        ("AutoScalingGroupNames", "web-asg"),
    ]);
    assert_eq!(metric_alarms(&without), owned(&hooks));
    for stack in [&with_rollout, &without] {
        assert!(
            stack.of_type("AWS::Logs::MetricFilter").is_empty(),
            "the functions' metrics replace the log metric filters"
        );
    }

    let notify = rollout_stack(&[("AlarmTopicArn", "arn:aws:sns:us-east-1:123456789012:ops")]);
    let alarms = notify.of_type("AWS::CloudWatch::Alarm");
    for id in metric_alarms(&notify).keys() {
        assert_eq!(
            alarms[id]["Properties"]["AlarmActions"],
            json!(["arn:aws:sns:us-east-1:123456789012:ops"]),
            "{id}"
        );
    }
    assert_eq!(metric_alarms(&notify).len(), 5);
    // The alarm topic is not the notification topic: each is its own parameter.
    let both = rollout_stack(&[
        ("AlarmTopicArn", "arn:aws:sns:us-east-1:123456789012:ops"),
        (
            "NotificationTopicArn",
            "arn:aws:sns:us-east-1:123456789012:events",
        ),
    ]);
    for (id, a) in both.of_type("AWS::CloudWatch::Alarm") {
        assert_eq!(
            a["Properties"]["AlarmActions"],
            json!(["arn:aws:sns:us-east-1:123456789012:ops"]),
            "{id}"
        );
    }
}

/// DrainTimeoutAction: the variable terminate-drain reads, the alarm on
/// `DrainsRetained` (always there: no retained drain is no data), and with
/// `retain` only, the read of the groups' instance lifecycle policy (its own
/// policy on the function's role, read-only) and the command that sets the
/// policy on the groups (CloudFormation cannot set it on groups it does not own).
#[test]
fn drain_timeout_action_retain_brings_its_read_and_its_command() {
    let drain_env = |stack: &Stack| {
        functions(stack)
            .values()
            .find(|(b, _)| b == "terminate-drain")
            .map(|(_, f)| f["Properties"]["Environment"]["Variables"].clone())
            .unwrap()
    };
    let default = fleet();
    assert_eq!(drain_env(&default)["DRAIN_TIMEOUT_ACTION"], "continue");
    let reads_groups = |stack: &Stack| -> Vec<Value> {
        identity_statements(stack)
            .into_iter()
            .filter(|(role, s)| {
                role == "TerminateDrainRole"
                    && strings(&s["Action"])
                        .contains(&"autoscaling:DescribeAutoScalingGroups".to_owned())
            })
            .map(|(_, s)| s)
            .collect()
    };
    assert!(reads_groups(&default).is_empty());
    assert!(!default.outputs().contains_key("RetentionPolicyCommand"));
    assert!(default.resources().contains_key("DrainRetainedAlarm"));

    let retain = Stack::new(&[
        ("ClusterName", "prod"),
        ("AutoScalingGroupNames", "web-asg,batch-asg"),
        ("DrainTimeoutAction", "retain"),
    ]);
    assert_eq!(drain_env(&retain)["DRAIN_TIMEOUT_ACTION"], "retain");
    // The read the check needs (it has no resource-level permissions), in
    // terminate-drain's own role, only with retain.
    let read = reads_groups(&retain);
    assert_eq!(read.len(), 1, "{read:?}");
    assert_eq!(
        strings(&read[0]["Action"]),
        ["autoscaling:DescribeAutoScalingGroups"]
    );
    assert_eq!(strings(&read[0]["Resource"]), ["*"]);
    let command = retain.outputs()["RetentionPolicyCommand"]["Value"]
        .as_str()
        .unwrap()
        .to_owned();
    for part in [
        "for g in web-asg batch-asg;",
        "update-auto-scaling-group",
        "--instance-lifecycle-policy",
        "TerminateHookAbandon=retain",
    ] {
        assert!(command.contains(part), "{part}: {command}");
    }
    let alarm = &retain.resources()["DrainRetainedAlarm"]["Properties"];
    assert_eq!(alarm["MetricName"], "DrainsRetained");
    assert_eq!(alarm["Dimensions"][0]["Value"], "<TerminateDrainFunction>");
}
