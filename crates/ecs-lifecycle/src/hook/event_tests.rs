//! The hook layer's parser over the fixtures: envelopes, lifecycle actions,
//! test notifications, continuations, and what it refuses.

#![allow(clippy::unwrap_used, clippy::panic)]

use super::*;
use crate::model::Transition;
use crate::testing::fixtures::fixture;
use serde_json::json;

type R = Record<NoEvents>;

/// The `time` of fixtures/eventbridge-terminate.json.
const ENVELOPE_TIME: &str = "2026-11-22T05:10:42.000Z";

fn parse(event: &Value) -> Result<Vec<R>, EventError> {
    parse_event::<NoEvents>(event)
}

fn only(records: Vec<R>) -> R {
    assert_eq!(records.len(), 1);
    records.into_iter().next().unwrap()
}

fn action_of(r: &R) -> &LifecycleAction {
    match &r.message {
        Ok(Message::Action(a)) => a,
        other => panic!("expected an action, got {other:?}"),
    }
}

#[test]
fn sns_lifecycle_action() {
    let r = only(parse(&fixture("sns-terminate")).unwrap());
    assert_eq!(
        r.source,
        Source::Sns {
            topic_arn: "arn:aws:sns:us-east-1:123456789012:ecs-lifecycle".into()
        }
    );
    let a = action_of(&r);
    assert_eq!(a.asg, "ecs-fleet-asg");
    assert_eq!(a.hook.as_deref(), Some("ecs-drain"));
    assert_eq!(a.instance_id, "i-0a1b2c3d4e5f60718");
    assert_eq!(a.transition, Transition::Terminating);
    assert_eq!(
        a.token.as_deref(),
        Some("3f8e1c2d-7b6a-4e59-8d3c-2a1b0c9d8e7f")
    );
    assert_eq!(a.metadata.as_deref(), Some("{\"team\":\"platform\"}"));
    // 2026-11-22T05:10:42.118Z
    assert_eq!(a.started_at_ms(), Some(1_795_324_242_118));
}

#[test]
fn eventbridge_lifecycle_action() {
    let r = only(parse(&fixture("eventbridge-terminate")).unwrap());
    assert_eq!(r.source, Source::EventBridge);
    let a = action_of(&r);
    assert_eq!(
        (a.asg.as_str(), a.instance_id.as_str()),
        ("ecs-fleet-asg", "i-0a1b2c3d4e5f60718")
    );
    assert_eq!(a.origin.as_deref(), Some("AutoScalingGroup"));
    assert_eq!(a.destination.as_deref(), Some("EC2"));
    // The detail carries no Time: the envelope's is the action's start, so the
    // hook's clocks count from Auto Scaling's start, not from the invocation.
    assert_eq!(a.time.as_deref(), Some(ENVELOPE_TIME));
    assert!(a.started_at_ms().is_some());
}

#[test]
fn sqs_direct_and_sqs_via_sns() {
    let r = only(parse(&fixture("sqs-terminate")).unwrap());
    assert!(
        matches!(&r.source, Source::Sqs { topic_arn: None, message_id } if message_id.ends_with("e270"))
    );
    assert_eq!(action_of(&r).instance_id, "i-0a1b2c3d4e5f60718");

    let records = parse(&fixture("sqs-batch-mixed")).unwrap();
    assert_eq!(records.len(), 3);
    assert_eq!(
        records[0].source.topic_arn(),
        Some("arn:aws:sns:us-east-1:123456789012:ecs-lifecycle")
    );
    assert_eq!(action_of(&records[0]).instance_id, "i-0a1b2c3d4e5f60718");
    let bad = records[1].message.as_ref().unwrap_err();
    assert_eq!(bad.context, "Records[1].body");
    assert!(bad.problem.contains("is not JSON"), "{bad}");
    assert_eq!(action_of(&records[2]).instance_id, "i-0fedcba9876543210");
}

#[test]
fn test_notification_is_recognised() {
    let r = only(parse(&fixture("sns-test-notification")).unwrap());
    assert_eq!(
        r.message,
        Ok(Message::TestNotification {
            asg: Some("ecs-fleet-asg".into())
        })
    );
}

#[test]
fn continuation_round_trips() {
    let r = only(parse(&fixture("sns-continuation")).unwrap());
    let Ok(Message::Continuation(c)) = &r.message else {
        panic!("{:?}", r.message)
    };
    assert_eq!(
        (c.function.as_str(), c.attempt, c.started_at_ms),
        ("terminate-drain", 3, 1_795_324_242_311)
    );
    assert_eq!(c.action.instance_id, "i-0a1b2c3d4e5f60718");
    // What the function publishes is what it accepts.
    let text = serde_json::to_string(c).unwrap();
    assert_eq!(
        parse_message_str::<NoEvents>(&text, "m"),
        Ok(Message::Continuation(c.clone()))
    );
}

/// Work no hook holds (launch-verify's `EC2 Instance Launch Successful` mode)
/// names no hook; releases before this one wrote a placeholder name with
/// `held: false`, and the parser drops it. A held continuation must name one.
#[test]
fn unheld_continuations_name_no_hook() {
    let r = only(parse(&fixture("sns-continuation")).unwrap());
    let Ok(Message::Continuation(mut c)) = r.message else {
        panic!("{:?}", r.message)
    };
    c.held = false;
    c.action.hook = Some("(none: EC2 Instance Launch Successful)".into());
    let old = serde_json::to_string(&c).unwrap();
    let Ok(Message::Continuation(parsed)) = parse_message_str::<NoEvents>(&old, "m") else {
        panic!("{old}")
    };
    assert_eq!(parsed.action.hook, None);
    let new = serde_json::to_value(&parsed).unwrap();
    assert!(new["action"].get("LifecycleHookName").is_none(), "{new}");
    assert_eq!(
        parse_message_value::<NoEvents>(&new, "m"),
        Ok(Message::Continuation(parsed.clone()))
    );
    let mut held = new.clone();
    held["held"] = json!(true);
    let e = parse_message_value::<NoEvents>(&held, "m").unwrap_err();
    assert!(e.problem.contains("LifecycleHookName is missing"), "{e}");
}

#[test]
fn direct_invoke_of_the_bare_message() {
    let event = json!({"LifecycleHookName": "h", "AutoScalingGroupName": "g", "EC2InstanceId": "i-12345678", "LifecycleTransition": "autoscaling:EC2_INSTANCE_TERMINATING"});
    let r = only(parse(&event).unwrap());
    assert_eq!(r.source, Source::Direct);
    assert_eq!(action_of(&r).token, None);
}

#[test]
fn malformed_input_names_the_problem() {
    let cases: Vec<(Value, &str, &str)> = vec![
        (json!([1]), "event", "expected a JSON object, got an array"),
        (json!({"Records": []}), "Records", "is empty"),
        (
            json!({"Records": [{"foo": 1}]}),
            "Records[0]",
            "no EventSource",
        ),
        (
            json!({"Records": [{"eventSource": "aws:kinesis"}]}),
            "Records[0].EventSource",
            "aws:kinesis",
        ),
        (
            json!({"Records": [{"EventSource": "aws:sns"}]}),
            "SNS event",
            "missing field",
        ),
        (
            json!({"detail-type": "EC2 Instance-terminate Lifecycle Action", "source": "aws.ec2", "detail": {}}),
            "source",
            "aws.ec2",
        ),
        (
            json!({"detail-type": "Something Else", "source": "aws.autoscaling", "detail": {}}),
            "detail-type",
            "Something Else",
        ),
    ];
    for (event, context, problem) in cases {
        let e = parse(&event).unwrap_err();
        assert_eq!(e.context, context, "{e}");
        assert!(e.problem.contains(problem), "{e}");
    }
    let message_cases: Vec<(Value, &str)> = vec![
        (
            json!({"LifecycleHookName": "h", "AutoScalingGroupName": "g", "LifecycleTransition": "autoscaling:EC2_INSTANCE_TERMINATING"}),
            "missing field `EC2InstanceId`",
        ),
        (
            json!({"LifecycleHookName": "h", "AutoScalingGroupName": "g", "EC2InstanceId": "i-12345678"}),
            "missing field `LifecycleTransition`",
        ),
        (
            json!({"LifecycleHookName": "h", "AutoScalingGroupName": "g", "EC2InstanceId": "i-12345678", "LifecycleTransition": "autoscaling:EC2_INSTANCE_REBOOTING"}),
            "unknown variant",
        ),
        (
            json!({"LifecycleHookName": "h", "AutoScalingGroupName": "g", "EC2InstanceId": "web-1", "LifecycleTransition": "autoscaling:EC2_INSTANCE_TERMINATING"}),
            "EC2InstanceId is not an EC2 instance id",
        ),
        (
            json!({"LifecycleHookName": "", "AutoScalingGroupName": "g", "EC2InstanceId": "i-12345678", "LifecycleTransition": "autoscaling:EC2_INSTANCE_TERMINATING"}),
            "LifecycleHookName is empty",
        ),
        (
            json!({"AutoScalingGroupName": "g", "EC2InstanceId": "i-12345678", "LifecycleTransition": "autoscaling:EC2_INSTANCE_TERMINATING"}),
            "LifecycleHookName is missing",
        ),
        (
            json!({"LifecycleHookName": "h", "AutoScalingGroupName": 7, "EC2InstanceId": "i-12345678", "LifecycleTransition": "autoscaling:EC2_INSTANCE_TERMINATING"}),
            "invalid type",
        ),
        (
            json!({"kind": "ecs-lifecycle.continuation", "version": 1}),
            "bad continuation: missing field",
        ),
        (json!({"hello": "world"}), "keys: [\"hello\"]"),
    ];
    for (message, problem) in message_cases {
        let e = parse_message_value::<NoEvents>(&message, "Records[0].Sns.Message").unwrap_err();
        assert!(e.problem.contains(problem), "{e}");
        assert!(
            e.to_string()
                .starts_with("bad event at Records[0].Sns.Message"),
            "{e}"
        );
    }
}

#[test]
fn sns_message_that_is_not_json() {
    let mut event = fixture("sns-terminate");
    event["Records"][0]["Sns"]["Message"] = json!("hello");
    let r = only(parse(&event).unwrap());
    let e = r.message.unwrap_err();
    assert_eq!(e.context, "Records[0].Sns.Message");
    assert!(e.problem.starts_with("is not JSON"));
}

#[test]
fn launch_verify_inputs() {
    let r = only(parse(&fixture("sns-launch")).unwrap());
    assert_eq!(action_of(&r).transition, Transition::Launching);
    let r = only(parse(&fixture("eventbridge-launch-warm-pool")).unwrap());
    let a = action_of(&r);
    assert_eq!(a.transition, Transition::Launching);
    assert_eq!(a.destination.as_deref(), Some("WarmPool"));
    let r = only(parse(&fixture("sns-continuation-launch-verify")).unwrap());
    let Ok(Message::Continuation(c)) = &r.message else {
        panic!("{:?}", r.message)
    };
    assert_eq!((c.function.as_str(), c.attempt), ("launch-verify", 2));
    assert_eq!(
        c.state["command_id"],
        "4f7a1c2e-0000-4000-8000-00000000000c"
    );
    // The launch transition also arrives over SQS (direct hook target).
    let mut sqs = fixture("sqs-terminate");
    let body: Value = serde_json::from_str(sqs["Records"][0]["body"].as_str().unwrap()).unwrap();
    let mut body = body.as_object().unwrap().clone();
    body.insert(
        "LifecycleTransition".into(),
        json!("autoscaling:EC2_INSTANCE_LAUNCHING"),
    );
    sqs["Records"][0]["body"] = json!(Value::Object(body).to_string());
    assert_eq!(
        action_of(&only(parse(&sqs).unwrap())).transition,
        Transition::Launching
    );
}
