//! The topic and the queue encrypted, and what is watched: the functions'
//! errors, the dead letters, the orphan warning and ami-rollout's rollback line.

use serde_json::{Value, json};

use crate::cfn::{ACCOUNT, Stack, functions, strings};
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
    // The orphan warning becomes a metric with an alarm on it.
    let filters = stack.of_type("AWS::Logs::MetricFilter");
    let orphan = filters
        .values()
        .find(|f| f["Properties"]["LogGroupName"] == "<LaunchVerifyLogGroup>")
        .expect("a metric filter on launch-verify's log group");
    let metric = &orphan["Properties"]["MetricTransformations"][0];
    assert!(alarms.values().any(|a| {
        a["Properties"]["Namespace"] == metric["MetricNamespace"]
            && a["Properties"]["MetricName"] == metric["MetricName"]
    }));
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

/// `{ $.a.b = "v" }` -> (["a", "b"], "v"): the one filter pattern shape used here.
fn json_equality_pattern(pattern: &str) -> (Vec<String>, String) {
    let inner = pattern
        .trim()
        .strip_prefix('{')
        .and_then(|p| p.strip_suffix('}'))
        .expect("{ ... }")
        .trim();
    let (selector, value) = inner.split_once(" = ").expect("$.path = \"value\"");
    let path = selector
        .strip_prefix("$.")
        .expect("$.")
        .split('.')
        .map(str::to_owned)
        .collect();
    let value = value
        .trim()
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .expect("a quoted value");
    (path, value.to_owned())
}

/// The rollback line (lambda_runtime's JSON shape: event fields under
/// `fields`) becomes a metric with an alarm on it, beside the Errors alarm.
#[test]
fn a_rollback_raises_an_alarm() {
    let stack = fleet();
    let filters = stack.of_type("AWS::Logs::MetricFilter");
    let rollback: Vec<&Value> = filters
        .values()
        .filter(|f| f["Properties"]["LogGroupName"] == "<AmiRolloutLogGroup>")
        .collect();
    assert_eq!(rollback.len(), 1);
    let p = &rollback[0]["Properties"];
    assert_eq!(
        p["FilterPattern"],
        r#"{ $.fields.alarm = "ami-rollout-rollback" }"#
    );
    let (path, value) = json_equality_pattern(p["FilterPattern"].as_str().unwrap());
    let line = json!({
        "timestamp": "2026-03-01T12:00:00.000Z",
        "level": "ERROR",
        "fields": {
            "message": "rolled back: the cluster did not stay steady",
            "alarm": "ami-rollout-rollback",
            "group": "web-asg",
        },
        "target": "ami_rollout",
    });
    let mut at = &line;
    for key in &path {
        at = &at[key.as_str()];
    }
    assert_eq!(at, &json!(value), "the filter selects the rollback line");
    let metric = &p["MetricTransformations"][0];
    assert_eq!(metric["MetricValue"], "1");
    let alarms = stack.of_type("AWS::CloudWatch::Alarm");
    assert!(alarms.values().any(|a| {
        let a = &a["Properties"];
        a["Namespace"] == metric["MetricNamespace"]
            && a["MetricName"] == metric["MetricName"]
            && a["Threshold"] == 1
            && a["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    }));
    let notify = rollout_stack(&[("AlarmTopicArn", "arn:aws:sns:us-east-1:123456789012:ops")]);
    let alarms = notify.of_type("AWS::CloudWatch::Alarm");
    for id in ["AmiRolloutErrorsAlarm", "AmiRolloutRollbackAlarm"] {
        assert_eq!(
            alarms[id]["Properties"]["AlarmActions"],
            json!(["arn:aws:sns:us-east-1:123456789012:ops"]),
            "{id}"
        );
    }
}
