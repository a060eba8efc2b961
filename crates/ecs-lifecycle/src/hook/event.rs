//! One typed parser for every way a lifecycle event reaches a function:
//! SNS (the hook's notification target), SQS (direct target, or an SNS topic's
//! subscriber queue), EventBridge (`EC2 Instance-* Lifecycle Action`), the bare
//! message (manual invoke), and the functions' own continuation messages. Other
//! EventBridge events belong to the workflow that registered for them
//! ([`WorkflowEvent`]): drain's ECS, Spot and Health events live in
//! `drain/events.rs`, launch-verify's `EC2 Instance Launch Successful` in
//! `launch/events.rs`.
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
use crate::model::LifecycleAction;

pub const TEST_NOTIFICATION: &str = "autoscaling:TEST_NOTIFICATION";
pub const TERMINATE_DETAIL_TYPE: &str = "EC2 Instance-terminate Lifecycle Action";
pub const LAUNCH_DETAIL_TYPE: &str = "EC2 Instance-launch Lifecycle Action";

/// The EventBridge events a workflow takes besides lifecycle actions.
pub trait WorkflowEvent: Sized + Send + Sync + Clone + std::fmt::Debug + PartialEq {
    /// Reads `event` if it is one of the workflow's (`None` when it is not:
    /// the record is then refused, naming its detail-type).
    fn parse(event: &EventBridgeEvent<Value>) -> Option<Result<Self, EventError>>;
}

/// A workflow that takes no events of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoEvents {}

impl WorkflowEvent for NoEvents {
    fn parse(_: &EventBridgeEvent<Value>) -> Option<Result<Self, EventError>> {
        None
    }
}

/// The envelope's time as RFC 3339, when it has one.
pub fn event_time(event: &EventBridgeEvent<Value>) -> Option<String> {
    event
        .time
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
}

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
pub enum Message<E> {
    /// A lifecycle action to work on.
    Action(LifecycleAction),
    /// A function's own continuation of earlier work.
    Continuation(Continuation),
    /// Sent when a hook's target is set up: acknowledge and ignore.
    TestNotification { asg: Option<String> },
    /// One of the workflow's own EventBridge events.
    Event(E),
}

/// One record of an event; SQS batches carry several.
#[derive(Debug, Clone, PartialEq)]
pub struct Record<E> {
    pub source: Source,
    /// The record's message, or why it could not be read. Kept per record so one
    /// bad message in an SQS batch does not fail the others.
    pub message: Result<Message<E>, EventError>,
}

/// Splits a Lambda event into its records. Fails as a whole only when the event
/// has no recognisable shape at all.
pub fn parse_event<E: WorkflowEvent>(event: &Value) -> Result<Vec<Record<E>>, EventError> {
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

fn parse_records<E: WorkflowEvent>(
    event: &Value,
    records: &Value,
) -> Result<Vec<Record<E>>, EventError> {
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

fn sqs_record<E>(i: usize, message_id: Option<String>, body: Option<String>) -> Record<E> {
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

fn parse_eventbridge<E: WorkflowEvent>(event: &Value) -> Result<Record<E>, EventError> {
    let eb: EventBridgeEvent<Value> = serde_json::from_value(event.clone())
        .map_err(|e| EventError::new("EventBridge event", e.to_string()))?;
    let detail_type = eb.detail_type.as_str();
    if matches!(detail_type, TERMINATE_DETAIL_TYPE | LAUNCH_DETAIL_TYPE) {
        if eb.source != "aws.autoscaling" {
            return Err(EventError::new(
                "source",
                format!(
                    "unsupported EventBridge source {:?} for {detail_type:?} (expected aws.autoscaling)",
                    eb.source
                ),
            ));
        }
        // The detail has no `Time`: the envelope's time is when Auto Scaling
        // started the action, and the hook's clocks count from it.
        let message = parse_message_value(&eb.detail, "detail").map(|m| match m {
            Message::Action(mut a) => {
                a.time = a.time.or_else(|| event_time(&eb));
                Message::Action(a)
            }
            other => other,
        });
        return Ok(Record {
            source: Source::EventBridge,
            message,
        });
    }
    match E::parse(&eb) {
        Some(message) => Ok(Record {
            source: Source::EventBridge,
            message: message.map(Message::Event),
        }),
        None => Err(EventError::new(
            "detail-type",
            format!(
                "unsupported {detail_type:?} from {:?}: not an event this function handles; check the EventBridge rule's target",
                eb.source
            ),
        )),
    }
}

fn parse_message_str<E>(text: &str, context: &str) -> Result<Message<E>, EventError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| EventError::new(context, format!("is not JSON: {e}")))?;
    parse_message_value(&value, context)
}

/// Reads one message: a lifecycle action, a test notification or a continuation.
pub fn parse_message_value<E>(value: &Value, context: &str) -> Result<Message<E>, EventError> {
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
        let mut action = c.action.clone();
        if !c.held {
            // Unheld work of releases that named a placeholder hook.
            action.hook = None;
        }
        let action = action.validate(&format!("{context}.action"), c.held)?;
        return Ok(Message::Continuation(Continuation { action, ..c }));
    }
    if obj.contains_key("LifecycleHookName")
        || obj.contains_key("LifecycleTransition")
        || obj.contains_key("LifecycleActionToken")
    {
        let action: LifecycleAction = serde_json::from_value(value.clone())
            .map_err(|e| EventError::new(context, serde_problem(&e)))?;
        return Ok(Message::Action(action.validate(context, true)?));
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
#[path = "event_tests.rs"]
mod tests;
