//! What every lifecycle function does with an event before its own workflow:
//! split it into records, acknowledge test notifications, reject what cannot be
//! read (naming the problem), check continuations are addressed to this
//! function, run the records concurrently, and answer as the event source needs
//! (`batchItemFailures` for SQS, an error otherwise so Lambda's retries and the
//! DLQ keep the event).

use std::future::Future;

use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tracing::{error, info};

use crate::continuation::Continuation;
use crate::error::{Error, EventError};
use crate::event::{LifecycleAction, Message, Record, Source, parse_event};

/// One unit of work for a workflow, from one record.
#[derive(Debug, Clone, PartialEq)]
pub enum Work {
    /// A lifecycle action, fresh from Auto Scaling.
    Action(LifecycleAction),
    /// An earlier invocation's continuation (already checked to be ours).
    Resume(Continuation),
    /// EventBridge `EC2 Instance Launch Successful`.
    LaunchSuccessful {
        asg: String,
        instance_id: String,
        time: Option<String>,
    },
}

/// A function's workflow over one record.
pub trait Workflow: Sync {
    /// The function's name; continuations carry it.
    const NAME: &'static str;

    /// Runs one unit of work; the value is the record's outcome (an object with
    /// an `outcome` key).
    fn run(
        &self,
        work: Work,
        reply_topic: Option<String>,
        deadline_ms: u64,
    ) -> impl Future<Output = Result<Value, Error>> + Send;
}

/// Handles one Lambda event for a workflow.
pub async fn handle_event<W: Workflow>(
    workflow: &W,
    event: &Value,
    deadline_ms: u64,
) -> Result<Value, Error> {
    let records = parse_event(event).inspect_err(|e| error!(error = %e, "rejected event"))?;
    let results = futures_util::future::join_all(
        records
            .iter()
            .map(|r| handle_record(workflow, r, deadline_ms)),
    )
    .await;

    let is_sqs = records
        .iter()
        .any(|r| matches!(r.source, Source::Sqs { .. }));
    let mut outcomes = Vec::new();
    let mut failures = Vec::new();
    let mut first_error = None;
    for (record, result) in records.iter().zip(results) {
        match result {
            Ok(o) => outcomes.push(o),
            Err(e) => {
                if let Source::Sqs { message_id, .. } = &record.source {
                    failures.push(json!({ "itemIdentifier": message_id }));
                }
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) if !is_sqs => Err(e),
        _ => Ok(json!({ "batchItemFailures": failures, "outcomes": outcomes })),
    }
}

async fn handle_record<W: Workflow>(
    workflow: &W,
    record: &Record,
    deadline_ms: u64,
) -> Result<Value, Error> {
    let reply_topic = record.source.topic_arn().map(str::to_owned);
    let work = match &record.message {
        Err(e) => {
            error!(error = %e, "rejected message");
            return Err(e.clone().into());
        }
        Ok(Message::TestNotification { asg }) => {
            info!(
                asg = asg.as_deref().unwrap_or(""),
                "acknowledged autoscaling:TEST_NOTIFICATION; nothing to do"
            );
            return Ok(ignored("test notification"));
        }
        Ok(Message::Continuation(c)) if c.function != W::NAME => {
            let e = EventError::new(
                "continuation.function",
                format!("is {:?}; this is {}", c.function, W::NAME),
            );
            error!(error = %e, "rejected continuation");
            return Err(e.into());
        }
        Ok(Message::Continuation(c)) => Work::Resume(c.clone()),
        Ok(Message::Action(a)) => Work::Action(a.clone()),
        Ok(Message::LaunchSuccessful {
            asg,
            instance_id,
            time,
        }) => Work::LaunchSuccessful {
            asg: asg.clone(),
            instance_id: instance_id.clone(),
            time: time.clone(),
        },
    };
    workflow.run(work, reply_topic, deadline_ms).await
}

/// The outcome of a record that was acknowledged and dropped.
pub fn ignored(reason: &str) -> Value {
    json!({ "outcome": "ignored", "reason": reason })
}

/// A lifecycle action being worked on, with what earlier invocations handed over.
#[derive(Debug, Clone)]
pub struct Job<M> {
    pub action: LifecycleAction,
    /// Hops so far (0 for the original event).
    pub attempt: u32,
    /// When the work started (epoch ms), if an earlier invocation started it.
    pub started_at_ms: Option<u64>,
    pub last_heartbeat_ms: Option<u64>,
    /// The workflow's memo from the continuation.
    pub memo: M,
    /// The SNS topic the record came through, for the hand-off fallback.
    pub reply_topic: Option<String>,
}

impl<M: DeserializeOwned + Default> Job<M> {
    pub fn fresh(action: LifecycleAction, reply_topic: Option<String>) -> Self {
        Job {
            action,
            attempt: 0,
            started_at_ms: None,
            last_heartbeat_ms: None,
            memo: M::default(),
            reply_topic,
        }
    }

    pub fn resume(c: Continuation, reply_topic: Option<String>) -> Result<Self, EventError> {
        let memo = if c.state.is_null() {
            M::default()
        } else {
            serde_json::from_value(c.state)
                .map_err(|e| EventError::new("continuation.state", e.to_string()))?
        };
        Ok(Job {
            action: c.action,
            attempt: c.attempt,
            started_at_ms: Some(c.started_at_ms),
            last_heartbeat_ms: c.last_heartbeat_ms,
            memo,
            reply_topic,
        })
    }
}
