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

use crate::error::{Error, EventError};
use crate::hook::continuation::Continuation;
use crate::hook::event::{
    EcsEvent, LaunchSuccessful, Message, Record, Signal, Source, parse_event,
};
use crate::hook::runtime::{HookWorkflow, execute};
use crate::model::LifecycleAction;

/// One unit of work for a workflow, from one record.
#[derive(Debug, Clone, PartialEq)]
pub enum Work {
    /// A lifecycle action, fresh from Auto Scaling.
    Action(LifecycleAction),
    /// An earlier invocation's continuation (already checked to be ours).
    Resume(Continuation),
    /// EventBridge `EC2 Instance Launch Successful`.
    LaunchSuccessful(LaunchSuccessful),
    /// EventBridge `ECS Task State Change` / `ECS Container Instance State Change`.
    Ecs(EcsEvent),
    /// Spot interruption, rebalance recommendation, scheduled maintenance.
    Signal(Signal),
}

/// Handles one Lambda event for a hook workflow.
pub async fn handle_event<W: HookWorkflow>(
    workflow: &W,
    event: &Value,
    deadline_ms: u64,
) -> Result<Value, Error> {
    answer::<W, _, _>(event, |work, reply_topic| {
        execute(workflow, work, reply_topic, deadline_ms)
    })
    .await
}

/// Splits an event into records, answers what needs no workflow (test
/// notifications, unreadable records, continuations addressed to another
/// function) and hands each unit of work to `run`, all records concurrently.
/// `run` is called only for real work, so a workflow built lazily is never built
/// for a test notification.
pub async fn answer<W, F, Fut>(event: &Value, run: F) -> Result<Value, Error>
where
    W: HookWorkflow,
    F: Fn(Work, Option<String>) -> Fut,
    Fut: Future<Output = Result<Value, Error>>,
{
    let records = parse_event(event).inspect_err(|e| error!(error = %e, "rejected event"))?;
    let results =
        futures_util::future::join_all(records.iter().map(|r| handle_record::<W, _, _>(r, &run)))
            .await;

    let is_sqs = records
        .iter()
        .any(|r| matches!(r.source, Source::Sqs { .. }));
    let mut outcomes = Vec::new();
    let mut failures = Vec::new();
    let mut first_error = None;
    // A failed SQS record without a messageId cannot be named in
    // batchItemFailures (Lambda would take an empty identifier as the whole batch
    // failing, silently): fail the invocation instead, so the batch is retried.
    let mut unnamed_failure = false;
    for (record, result) in records.iter().zip(results) {
        match result {
            Ok(o) => outcomes.push(o),
            Err(e) => {
                if let Source::Sqs { message_id, .. } = &record.source {
                    if message_id.is_empty() {
                        unnamed_failure = true;
                    } else {
                        failures.push(json!({ "itemIdentifier": message_id }));
                    }
                }
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) if !is_sqs => Err(e),
        Some(e) if unnamed_failure => {
            error!(error = %e, "an SQS record without messageId failed: it cannot be reported alone, so the whole batch is returned to the queue");
            Err(e)
        }
        _ => Ok(json!({ "batchItemFailures": failures, "outcomes": outcomes })),
    }
}

async fn handle_record<W, F, Fut>(record: &Record, run: &F) -> Result<Value, Error>
where
    W: HookWorkflow,
    F: Fn(Work, Option<String>) -> Fut,
    Fut: Future<Output = Result<Value, Error>>,
{
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
        Ok(Message::LaunchSuccessful(l)) => Work::LaunchSuccessful(l.clone()),
        Ok(Message::Ecs(e)) => Work::Ecs(e.clone()),
        Ok(Message::Signal(s)) => Work::Signal(s.clone()),
    };
    run(work, reply_topic).await
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
