//! One typed parser for every way a lifecycle event reaches a function:
//! SNS (the hook's notification target), SQS (direct target, or an SNS topic's
//! subscriber queue), EventBridge (`EC2 Instance-* Lifecycle Action` and
//! `EC2 Instance Launch Successful`), the bare message (manual invoke), and the
//! functions' own continuation messages.
//!
//! Envelopes are parsed with `aws_lambda_events` types; the Auto Scaling message
//! inside them with [`LifecycleAction`]. Nothing here panics: every failure is an
//! [`EventError`] that says where in the event the problem is.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sns::SnsEvent;
use aws_lambda_events::event::sqs::SqsEvent;
use serde_json::Value;

use crate::error::EventError;
use crate::hook::continuation::{CONTINUATION_KIND, Continuation};
use crate::model::{InstanceStatus, LifecycleAction, TaskStatus, is_instance_id};

pub const TEST_NOTIFICATION: &str = "autoscaling:TEST_NOTIFICATION";
pub const TERMINATE_DETAIL_TYPE: &str = "EC2 Instance-terminate Lifecycle Action";
pub const LAUNCH_DETAIL_TYPE: &str = "EC2 Instance-launch Lifecycle Action";
pub const LAUNCH_SUCCESSFUL_DETAIL_TYPE: &str = "EC2 Instance Launch Successful";

/// How a message reached the function; decides where a continuation goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Sns {
        topic_arn: String,
    },
    /// `topic_arn` is set when the queue is subscribed to an SNS topic.
    Sqs {
        message_id: String,
        topic_arn: Option<String>,
    },
    EventBridge,
    Direct,
}

impl Source {
    /// The SNS topic the message came through, if any.
    pub fn topic_arn(&self) -> Option<&str> {
        match self {
            Source::Sns { topic_arn } => Some(topic_arn),
            Source::Sqs { topic_arn, .. } => topic_arn.as_deref(),
            Source::EventBridge | Source::Direct => None,
        }
    }
}

/// What a record says.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A lifecycle action to work on.
    Action(LifecycleAction),
    /// A function's own continuation of earlier work.
    Continuation(Continuation),
    /// Sent when a hook's target is set up: acknowledge and ignore.
    TestNotification { asg: Option<String> },
    /// EventBridge `EC2 Instance Launch Successful` (nothing waits on it).
    LaunchSuccessful(LaunchSuccessful),
    /// EventBridge `ECS Task State Change` / `ECS Container Instance State Change`.
    Ecs(EcsEvent),
    /// An early warning that instances will go away (Spot, rebalance, maintenance).
    Signal(Signal),
}

pub const SPOT_DETAIL_TYPE: &str = "EC2 Spot Instance Interruption Warning";
pub const REBALANCE_DETAIL_TYPE: &str = "EC2 Instance Rebalance Recommendation";
pub const HEALTH_DETAIL_TYPE: &str = "AWS Health Event";

/// EC2's and AWS Health's notices that instances will go away, before Auto Scaling
/// knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// `EC2 Spot Instance Interruption Warning`: two minutes ahead.
    SpotInterruption {
        instance_id: String,
        /// `terminate`, `stop` or `hibernate`.
        instance_action: String,
        /// The event's time (RFC 3339): the interruption comes two minutes later.
        time: Option<String>,
    },
    /// `EC2 Instance Rebalance Recommendation`: an elevated risk of interruption.
    Rebalance { instance_id: String },
    /// `AWS Health Event` of service EC2, category `scheduledChange` (retirement,
    /// stop, reboot maintenance), naming the instances affected.
    ScheduledChange {
        event_type_code: String,
        start_time: Option<String>,
        instance_ids: Vec<String>,
    },
}

pub const ECS_TASK_DETAIL_TYPE: &str = "ECS Task State Change";
pub const ECS_INSTANCE_DETAIL_TYPE: &str = "ECS Container Instance State Change";

/// What an ECS state-change event says about a container instance (the fields a
/// drain acts on; delivery is at least once and unordered, so it only says where
/// to look: the drain observes again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcsEvent {
    pub cluster_arn: String,
    pub container_instance_arn: String,
    pub kind: EcsEventKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EcsEventKind {
    /// A task on the container instance changed; `last_status` is its new status.
    Task {
        task_arn: String,
        last_status: TaskStatus,
    },
    /// The container instance changed (status, task counts).
    Instance {
        ec2_instance_id: Option<String>,
        status: InstanceStatus,
        running_tasks: i64,
        pending_tasks: i64,
    },
}

impl EcsEvent {
    /// Whether the event can mean that a drain just ended: a task reached STOPPED,
    /// or a DRAINING container instance has no task left running or pending.
    pub fn may_end_a_drain(&self) -> bool {
        match &self.kind {
            EcsEventKind::Task { last_status, .. } => last_status.is_stopped(),
            EcsEventKind::Instance {
                status,
                running_tasks,
                pending_tasks,
                ..
            } => *status == InstanceStatus::Draining && *running_tasks == 0 && *pending_tasks == 0,
        }
    }
}

fn parse_signal(
    detail_type: &str,
    detail: &Value,
    time: Option<String>,
) -> Result<Signal, EventError> {
    let text = |k: &str| detail.get(k).and_then(Value::as_str).map(str::to_owned);
    let instance = |k: &str| match text(k) {
        Some(id) if is_instance_id(&id) => Ok(id),
        Some(id) => Err(EventError::new(
            "detail",
            format!("field {k} is not an EC2 instance id: {id:?}"),
        )),
        None => Err(EventError::new("detail", format!("missing field {k}"))),
    };
    match detail_type {
        SPOT_DETAIL_TYPE => Ok(Signal::SpotInterruption {
            instance_id: instance("instance-id")?,
            instance_action: text("instance-action").unwrap_or_else(|| "terminate".into()),
            time,
        }),
        REBALANCE_DETAIL_TYPE => Ok(Signal::Rebalance {
            instance_id: instance("instance-id")?,
        }),
        _ => {
            let service = text("service").unwrap_or_default();
            let category = text("eventTypeCategory").unwrap_or_default();
            if service != "EC2" || category != "scheduledChange" {
                return Err(EventError::new(
                    "detail",
                    format!(
                        "service {service:?} / eventTypeCategory {category:?}: only EC2 scheduledChange events are handled"
                    ),
                ));
            }
            let instance_ids: Vec<String> = detail
                .get("affectedEntities")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|e| e.get("entityValue").and_then(Value::as_str))
                        .filter(|v| is_instance_id(v))
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            if instance_ids.is_empty() {
                return Err(EventError::new(
                    "detail.affectedEntities",
                    "names no EC2 instance",
                ));
            }
            Ok(Signal::ScheduledChange {
                event_type_code: text("eventTypeCode").unwrap_or_default(),
                start_time: text("startTime"),
                instance_ids,
            })
        }
    }
}

fn parse_ecs_event(detail_type: &str, detail: &Value) -> Result<EcsEvent, EventError> {
    let text = |k: &str| detail.get(k).and_then(Value::as_str).map(str::to_owned);
    let need =
        |k: &str| text(k).ok_or_else(|| EventError::new("detail", format!("missing field {k}")));
    match detail_type {
        ECS_TASK_DETAIL_TYPE => Ok(EcsEvent {
            cluster_arn: need("clusterArn")?,
            // Fargate tasks have none: nothing of ours to drain.
            container_instance_arn: need("containerInstanceArn")?,
            kind: EcsEventKind::Task {
                task_arn: need("taskArn")?,
                last_status: TaskStatus::parse(&need("lastStatus")?),
            },
        }),
        ECS_INSTANCE_DETAIL_TYPE => {
            let count = |k: &str| {
                detail
                    .get(k)
                    .and_then(Value::as_i64)
                    .ok_or_else(|| EventError::new("detail", format!("missing number {k}")))
            };
            Ok(EcsEvent {
                cluster_arn: need("clusterArn")?,
                container_instance_arn: need("containerInstanceArn")?,
                kind: EcsEventKind::Instance {
                    ec2_instance_id: text("ec2InstanceId"),
                    status: InstanceStatus::parse(&need("status")?),
                    running_tasks: count("runningTasksCount")?,
                    pending_tasks: count("pendingTasksCount")?,
                },
            })
        }
        other => Err(EventError::new(
            "detail-type",
            format!(
                "unsupported {other:?} from aws.ecs (expected {ECS_TASK_DETAIL_TYPE:?} or {ECS_INSTANCE_DETAIL_TYPE:?})"
            ),
        )),
    }
}

/// An `EC2 Instance Launch Successful` event: no lifecycle hook waits on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchSuccessful {
    pub asg: String,
    pub instance_id: String,
    /// When the launch succeeded (the event's `time`, RFC 3339).
    pub time: Option<String>,
    /// `EC2`, or `WarmPool` when the instance leaves the warm pool.
    pub origin: Option<String>,
    /// `AutoScalingGroup`, or `WarmPool` when the instance launches into the warm
    /// pool (it will not join ECS now: not an orphan).
    pub destination: Option<String>,
}

/// One record of an event; SQS batches carry several.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub source: Source,
    /// The record's message, or why it could not be read. Kept per record so one
    /// bad message in an SQS batch does not fail the others.
    pub message: Result<Message, EventError>,
}

/// Splits a Lambda event into its records. Fails as a whole only when the event
/// has no recognisable shape at all.
pub fn parse_event(event: &Value) -> Result<Vec<Record>, EventError> {
    let Some(obj) = event.as_object() else {
        return Err(EventError::new(
            "event",
            format!("expected a JSON object, got {}", json_kind(event)),
        ));
    };
    if let Some(records) = obj.get("Records") {
        return parse_records(event, records);
    }
    if obj.contains_key("detail-type") {
        return Ok(vec![parse_eventbridge(event)?]);
    }
    Ok(vec![Record {
        source: Source::Direct,
        message: parse_message_value(event, "event"),
    }])
}

fn parse_records(event: &Value, records: &Value) -> Result<Vec<Record>, EventError> {
    let list = records
        .as_array()
        .ok_or_else(|| EventError::new("Records", "is not an array"))?;
    let first = list
        .first()
        .ok_or_else(|| EventError::new("Records", "is empty"))?;
    let source = first
        .get("EventSource")
        .or_else(|| first.get("eventSource"))
        .and_then(Value::as_str)
        .ok_or_else(|| EventError::new("Records[0]", "has no EventSource/eventSource"))?;
    match source {
        "aws:sns" => {
            let sns: SnsEvent = serde_json::from_value(event.clone())
                .map_err(|e| EventError::new("SNS event", e.to_string()))?;
            Ok(sns
                .records
                .into_iter()
                .enumerate()
                .map(|(i, r)| Record {
                    source: Source::Sns {
                        topic_arn: r.sns.topic_arn.clone(),
                    },
                    message: parse_message_str(
                        &r.sns.message,
                        &format!("Records[{i}].Sns.Message"),
                    ),
                })
                .collect())
        }
        "aws:sqs" => {
            let sqs: SqsEvent = serde_json::from_value(event.clone())
                .map_err(|e| EventError::new("SQS event", e.to_string()))?;
            Ok(sqs
                .records
                .into_iter()
                .enumerate()
                .map(|(i, r)| sqs_record(i, r.message_id, r.body))
                .collect())
        }
        other => Err(EventError::new(
            "Records[0].EventSource",
            format!("unsupported source {other:?} (expected aws:sns or aws:sqs)"),
        )),
    }
}

fn sqs_record(i: usize, message_id: Option<String>, body: Option<String>) -> Record {
    let context = format!("Records[{i}].body");
    let message_id = message_id.unwrap_or_default();
    let Some(body) = body else {
        return Record {
            source: Source::Sqs {
                message_id,
                topic_arn: None,
            },
            message: Err(EventError::new(context, "is missing")),
        };
    };
    // A queue subscribed to an SNS topic without raw delivery receives the SNS
    // notification document; the Auto Scaling message is its `Message`.
    let parsed: Result<Value, _> = serde_json::from_str(&body);
    if let Ok(Value::Object(doc)) = &parsed
        && doc.get("Type").and_then(Value::as_str) == Some("Notification")
        && let Some(inner) = doc.get("Message").and_then(Value::as_str)
    {
        let topic_arn = doc
            .get("TopicArn")
            .and_then(Value::as_str)
            .map(str::to_owned);
        return Record {
            source: Source::Sqs {
                message_id,
                topic_arn,
            },
            message: parse_message_str(inner, &format!("{context}.Message")),
        };
    }
    Record {
        source: Source::Sqs {
            message_id,
            topic_arn: None,
        },
        message: parse_message_str(&body, &context),
    }
}

fn parse_eventbridge(event: &Value) -> Result<Record, EventError> {
    let eb: EventBridgeEvent<Value> = serde_json::from_value(event.clone())
        .map_err(|e| EventError::new("EventBridge event", e.to_string()))?;
    let signal = match (eb.source.as_str(), eb.detail_type.as_str()) {
        ("aws.ec2", SPOT_DETAIL_TYPE | REBALANCE_DETAIL_TYPE)
        | ("aws.health", HEALTH_DETAIL_TYPE) => Some(parse_signal(
            &eb.detail_type,
            &eb.detail,
            eb.time
                .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()),
        )),
        _ => None,
    };
    if let Some(message) = signal {
        return Ok(Record {
            source: Source::EventBridge,
            message: message.map(Message::Signal),
        });
    }
    if eb.source == "aws.ecs" {
        return Ok(Record {
            source: Source::EventBridge,
            message: parse_ecs_event(&eb.detail_type, &eb.detail).map(Message::Ecs),
        });
    }
    if eb.source != "aws.autoscaling" {
        return Err(EventError::new(
            "source",
            format!(
                "unsupported EventBridge source {:?} (expected aws.autoscaling)",
                eb.source
            ),
        ));
    }
    let message = match eb.detail_type.as_str() {
        TERMINATE_DETAIL_TYPE | LAUNCH_DETAIL_TYPE => parse_message_value(&eb.detail, "detail"),
        LAUNCH_SUCCESSFUL_DETAIL_TYPE => {
            let field = |k: &str| eb.detail.get(k).and_then(Value::as_str).map(str::to_owned);
            match (field("AutoScalingGroupName"), field("EC2InstanceId")) {
                (Some(asg), Some(id)) if is_instance_id(&id) => {
                    Ok(Message::LaunchSuccessful(LaunchSuccessful {
                        asg,
                        instance_id: id,
                        time: eb
                            .time
                            .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()),
                        origin: field("Origin"),
                        destination: field("Destination"),
                    }))
                }
                (None, _) => Err(EventError::new(
                    "detail",
                    "missing field AutoScalingGroupName",
                )),
                (_, None) => Err(EventError::new("detail", "missing field EC2InstanceId")),
                (_, Some(id)) => Err(EventError::new(
                    "detail",
                    format!("field EC2InstanceId is not an EC2 instance id: {id:?}"),
                )),
            }
        }
        other => {
            return Err(EventError::new(
                "detail-type",
                format!("unsupported {other:?}"),
            ));
        }
    };
    Ok(Record {
        source: Source::EventBridge,
        message,
    })
}

fn parse_message_str(text: &str, context: &str) -> Result<Message, EventError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| EventError::new(context, format!("is not JSON: {e}")))?;
    parse_message_value(&value, context)
}

/// Reads one message: a lifecycle action, a test notification or a continuation.
pub fn parse_message_value(value: &Value, context: &str) -> Result<Message, EventError> {
    let Some(obj) = value.as_object() else {
        return Err(EventError::new(
            context,
            format!("expected a JSON object, got {}", json_kind(value)),
        ));
    };
    if obj.get("Event").and_then(Value::as_str) == Some(TEST_NOTIFICATION) {
        let asg = obj
            .get("AutoScalingGroupName")
            .and_then(Value::as_str)
            .map(str::to_owned);
        return Ok(Message::TestNotification { asg });
    }
    if obj.get("kind").and_then(Value::as_str) == Some(CONTINUATION_KIND) {
        let c: Continuation = serde_json::from_value(value.clone())
            .map_err(|e| EventError::new(context, format!("bad continuation: {e}")))?;
        let action = c.action.clone().validate(&format!("{context}.action"))?;
        return Ok(Message::Continuation(Continuation { action, ..c }));
    }
    if obj.contains_key("LifecycleHookName")
        || obj.contains_key("LifecycleTransition")
        || obj.contains_key("LifecycleActionToken")
    {
        let action: LifecycleAction = serde_json::from_value(value.clone())
            .map_err(|e| EventError::new(context, serde_problem(&e)))?;
        return Ok(Message::Action(action.validate(context)?));
    }
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    Err(EventError::new(
        context,
        format!(
            "not a lifecycle action (no LifecycleHookName/LifecycleTransition), test notification or continuation; keys: {keys:?}"
        ),
    ))
}

/// serde's message without the line/column noise of a single-line document.
fn serde_problem(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.find(" at line ") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Transition;
    use serde_json::json;

    fn fixture(name: &str) -> Value {
        let text = match name {
            "sns-terminate" => include_str!("../../fixtures/sns-terminate.json"),
            "sns-launch" => include_str!("../../fixtures/sns-launch.json"),
            "sns-test-notification" => include_str!("../../fixtures/sns-test-notification.json"),
            "sns-continuation" => include_str!("../../fixtures/sns-continuation.json"),
            "eventbridge-terminate" => include_str!("../../fixtures/eventbridge-terminate.json"),
            "eventbridge-launch-successful" => {
                include_str!("../../fixtures/eventbridge-launch-successful.json")
            }
            "eventbridge-spot-interruption" => {
                include_str!("../../fixtures/eventbridge-spot-interruption.json")
            }
            "eventbridge-rebalance" => include_str!("../../fixtures/eventbridge-rebalance.json"),
            "eventbridge-health-retirement" => {
                include_str!("../../fixtures/eventbridge-health-retirement.json")
            }
            "eventbridge-ecs-task-stopped" => {
                include_str!("../../fixtures/eventbridge-ecs-task-stopped.json")
            }
            "eventbridge-ecs-instance-drained" => {
                include_str!("../../fixtures/eventbridge-ecs-instance-drained.json")
            }
            "eventbridge-launch-successful-warm-pool" => {
                include_str!("../../fixtures/eventbridge-launch-successful-warm-pool.json")
            }
            "sqs-terminate" => include_str!("../../fixtures/sqs-terminate.json"),
            "sqs-batch-mixed" => include_str!("../../fixtures/sqs-batch-mixed.json"),
            "eventbridge-launch-warm-pool" => {
                include_str!("../../fixtures/eventbridge-launch-warm-pool.json")
            }
            "sns-continuation-launch-verify" => {
                include_str!("../../fixtures/sns-continuation-launch-verify.json")
            }
            other => panic!("no fixture {other}"),
        };
        serde_json::from_str(text).unwrap()
    }

    fn only(records: Vec<Record>) -> Record {
        assert_eq!(records.len(), 1);
        records.into_iter().next().unwrap()
    }

    fn action_of(r: &Record) -> &LifecycleAction {
        match &r.message {
            Ok(Message::Action(a)) => a,
            other => panic!("expected an action, got {other:?}"),
        }
    }

    #[test]
    fn sns_lifecycle_action() {
        let r = only(parse_event(&fixture("sns-terminate")).unwrap());
        assert_eq!(
            r.source,
            Source::Sns {
                topic_arn: "arn:aws:sns:us-east-1:123456789012:ecs-lifecycle".into()
            }
        );
        let a = action_of(&r);
        assert_eq!(a.asg, "ecs-fleet-asg");
        assert_eq!(a.hook, "ecs-drain");
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
        let r = only(parse_event(&fixture("eventbridge-terminate")).unwrap());
        assert_eq!(r.source, Source::EventBridge);
        let a = action_of(&r);
        assert_eq!(
            (a.asg.as_str(), a.instance_id.as_str()),
            ("ecs-fleet-asg", "i-0a1b2c3d4e5f60718")
        );
        assert_eq!(a.origin.as_deref(), Some("AutoScalingGroup"));
        assert_eq!(a.destination.as_deref(), Some("EC2"));
        assert_eq!(a.time, None);
    }

    #[test]
    fn sqs_direct_and_sqs_via_sns() {
        let r = only(parse_event(&fixture("sqs-terminate")).unwrap());
        assert!(
            matches!(&r.source, Source::Sqs { topic_arn: None, message_id } if message_id.ends_with("e270"))
        );
        assert_eq!(action_of(&r).instance_id, "i-0a1b2c3d4e5f60718");

        let records = parse_event(&fixture("sqs-batch-mixed")).unwrap();
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
        let r = only(parse_event(&fixture("sns-test-notification")).unwrap());
        assert_eq!(
            r.message,
            Ok(Message::TestNotification {
                asg: Some("ecs-fleet-asg".into())
            })
        );
    }

    #[test]
    fn early_warnings() {
        let signal = |name: &str| {
            let r = only(parse_event(&fixture(name)).unwrap());
            match r.message {
                Ok(Message::Signal(s)) => s,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(
            signal("eventbridge-spot-interruption"),
            Signal::SpotInterruption {
                instance_id: "i-0123456789abcdef0".into(),
                instance_action: "terminate".into(),
                time: Some("2026-11-22T06:00:00.000Z".into()),
            }
        );
        assert_eq!(
            signal("eventbridge-rebalance"),
            Signal::Rebalance {
                instance_id: "i-0123456789abcdef0".into()
            }
        );
        assert_eq!(
            signal("eventbridge-health-retirement"),
            Signal::ScheduledChange {
                event_type_code: "AWS_EC2_INSTANCE_RETIREMENT_SCHEDULED".into(),
                start_time: Some("Mon, 30 Nov 2026 09:00:00 GMT".into()),
                instance_ids: vec!["i-0123456789abcdef0".into()],
            }
        );
        // Malformed ones name the field.
        let mut bad = fixture("eventbridge-spot-interruption");
        bad["detail"]["instance-id"] = json!("web-1");
        let r = only(parse_event(&bad).unwrap());
        assert!(
            matches!(&r.message, Err(e) if e.problem.contains("instance-id")),
            "{:?}",
            r.message
        );
        let mut other = fixture("eventbridge-health-retirement");
        other["detail"]["eventTypeCategory"] = json!("issue");
        let r = only(parse_event(&other).unwrap());
        assert!(matches!(&r.message, Err(e) if e.problem.contains("scheduledChange")));
        let mut nobody = fixture("eventbridge-health-retirement");
        nobody["detail"]["affectedEntities"] = json!([]);
        let r = only(parse_event(&nobody).unwrap());
        assert!(matches!(&r.message, Err(e) if e.context == "detail.affectedEntities"));
    }

    #[test]
    fn ecs_state_changes() {
        let r = only(parse_event(&fixture("eventbridge-ecs-task-stopped")).unwrap());
        let Ok(Message::Ecs(e)) = &r.message else {
            panic!("{:?}", r.message)
        };
        assert_eq!(
            e.cluster_arn,
            "arn:aws:ecs:us-east-1:123456789012:cluster/prod"
        );
        assert!(
            e.container_instance_arn
                .ends_with("/0123456789abcdef0123456789abcdef")
        );
        assert!(matches!(
            &e.kind,
            EcsEventKind::Task { last_status: TaskStatus::Stopped, task_arn } if task_arn.ends_with("9dbd6f1cebef")
        ));
        assert!(e.may_end_a_drain());

        let r = only(parse_event(&fixture("eventbridge-ecs-instance-drained")).unwrap());
        let Ok(Message::Ecs(e)) = &r.message else {
            panic!("{:?}", r.message)
        };
        assert_eq!(
            e.kind,
            EcsEventKind::Instance {
                ec2_instance_id: Some("i-0a1b2c3d4e5f60718".into()),
                status: InstanceStatus::Draining,
                running_tasks: 0,
                pending_tasks: 0,
            }
        );
        assert!(e.may_end_a_drain());

        // A task still running, or an instance with tasks left, cannot end a drain.
        let mut running = fixture("eventbridge-ecs-task-stopped");
        running["detail"]["lastStatus"] = json!("RUNNING");
        let r = only(parse_event(&running).unwrap());
        assert!(matches!(&r.message, Ok(Message::Ecs(e)) if !e.may_end_a_drain()));
        let mut busy = fixture("eventbridge-ecs-instance-drained");
        busy["detail"]["runningTasksCount"] = json!(2);
        let r = only(parse_event(&busy).unwrap());
        assert!(matches!(&r.message, Ok(Message::Ecs(e)) if !e.may_end_a_drain()));

        // Malformed: the field is named.
        let mut bad = fixture("eventbridge-ecs-task-stopped");
        bad["detail"]
            .as_object_mut()
            .unwrap()
            .remove("containerInstanceArn");
        let r = only(parse_event(&bad).unwrap());
        assert!(
            matches!(&r.message, Err(e) if e.problem.contains("containerInstanceArn")),
            "{:?}",
            r.message
        );
        let mut other = fixture("eventbridge-ecs-task-stopped");
        other["detail-type"] = json!("ECS Deployment State Change");
        let r = only(parse_event(&other).unwrap());
        assert!(matches!(&r.message, Err(e) if e.context == "detail-type"));
    }

    #[test]
    fn launch_transition_and_launch_successful() {
        let r = only(parse_event(&fixture("sns-launch")).unwrap());
        assert_eq!(action_of(&r).transition, Transition::Launching);
        let r = only(parse_event(&fixture("eventbridge-launch-successful")).unwrap());
        assert_eq!(
            r.message,
            Ok(Message::LaunchSuccessful(LaunchSuccessful {
                asg: "ecs-fleet-asg".into(),
                instance_id: "i-0a1b2c3d4e5f60718".into(),
                time: Some("2026-11-22T05:02:11.000Z".into()),
                origin: None,
                destination: None,
            }))
        );
        let r = only(parse_event(&fixture("eventbridge-launch-successful-warm-pool")).unwrap());
        let Ok(Message::LaunchSuccessful(l)) = &r.message else {
            panic!("{:?}", r.message)
        };
        assert_eq!(
            (l.origin.as_deref(), l.destination.as_deref()),
            (Some("EC2"), Some("WarmPool"))
        );
    }

    #[test]
    fn continuation_round_trips() {
        let r = only(parse_event(&fixture("sns-continuation")).unwrap());
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
            parse_message_str(&text, "m"),
            Ok(Message::Continuation(c.clone()))
        );
    }

    #[test]
    fn direct_invoke_of_the_bare_message() {
        let event = json!({"LifecycleHookName": "h", "AutoScalingGroupName": "g", "EC2InstanceId": "i-12345678", "LifecycleTransition": "autoscaling:EC2_INSTANCE_TERMINATING"});
        let r = only(parse_event(&event).unwrap());
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
            let e = parse_event(&event).unwrap_err();
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
            let e = parse_message_value(&message, "Records[0].Sns.Message").unwrap_err();
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
        let r = only(parse_event(&event).unwrap());
        let e = r.message.unwrap_err();
        assert_eq!(e.context, "Records[0].Sns.Message");
        assert!(e.problem.starts_with("is not JSON"));
    }

    #[test]
    fn launch_verify_inputs() {
        let r = only(parse_event(&fixture("eventbridge-launch-warm-pool")).unwrap());
        let a = action_of(&r);
        assert_eq!(a.transition, Transition::Launching);
        assert_eq!(a.destination.as_deref(), Some("WarmPool"));
        let r = only(parse_event(&fixture("sns-continuation-launch-verify")).unwrap());
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
        let body: Value =
            serde_json::from_str(sqs["Records"][0]["body"].as_str().unwrap()).unwrap();
        let mut body = body.as_object().unwrap().clone();
        body.insert(
            "LifecycleTransition".into(),
            json!("autoscaling:EC2_INSTANCE_LAUNCHING"),
        );
        sqs["Records"][0]["body"] = json!(Value::Object(body).to_string());
        assert_eq!(
            action_of(&only(parse_event(&sqs).unwrap())).transition,
            Transition::Launching
        );
    }
}
