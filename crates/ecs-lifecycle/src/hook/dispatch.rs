//! What every lifecycle function does with an event before its own workflow:
//! split it into records, acknowledge test notifications, reject what cannot be
//! read (naming the problem), check continuations are addressed to this
//! function, run the records concurrently, and answer as the event source needs
//! (`batchItemFailures` for SQS, an error otherwise so Lambda's retries and the
//! DLQ keep the event).

use std::future::Future;

use aws_lambda_events::event::sqs::SqsBatchResponse;
use serde::Serialize;
use serde_json::{Value, json};
use tracing::{error, info, warn};

use crate::error::{Error, EventError};
use crate::hook::continuation::Continuation;
use crate::hook::event::{Message, Record, Source, parse_event};
pub use crate::hook::event::{NoEvents, WorkflowEvent};
use crate::hook::job::{Accept, Job};
use crate::hook::runtime::{HookWorkflow, execute};
use crate::model::{LifecycleAction, Transition};

/// What a hook function answers Lambda: the SQS batch response (the records to
/// return to their queue; empty for other sources) and each record's outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Answer {
    #[serde(flatten)]
    pub batch: SqsBatchResponse,
    pub outcomes: Vec<Value>,
}

impl Answer {
    /// The answer as Lambda receives it (`batchItemFailures`, `outcomes`).
    pub fn to_json(&self) -> Value {
        // Only strings, lists and JSON values: serializing cannot fail.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// One unit of work for a workflow, from one record.
#[derive(Debug, Clone, PartialEq)]
pub enum Work<E> {
    /// A lifecycle action, fresh from Auto Scaling.
    Action(LifecycleAction),
    /// An earlier invocation's continuation (already checked to be ours).
    Resume(Continuation),
    /// One of the workflow's own events.
    Event(E),
}

/// Handles one Lambda event for a hook workflow.
pub async fn handle_event<W: HookWorkflow>(
    workflow: &W,
    event: &Value,
    deadline_ms: u64,
) -> Result<Answer, Error> {
    answer::<W::Event, _, _>(W::SPEC.name, event, |work, reply_topic| {
        run(workflow, work, reply_topic, deadline_ms)
    })
    .await
}

/// Turns a unit of work into a job (or answers it at once) and holds the job.
pub async fn run<W: HookWorkflow>(
    workflow: &W,
    work: Work<W::Event>,
    reply_topic: Option<String>,
    deadline_ms: u64,
) -> Result<Value, Error> {
    let job = match work {
        Work::Action(action) if action.transition != W::SPEC.transition => {
            let (theirs, ours) = match action.transition {
                Transition::Launching => ("launch transition", "terminate"),
                Transition::Terminating => ("terminate transition", "launch"),
            };
            warn!(asg = %action.asg, hook = action.hook_name(), instance_id = %action.instance_id, "skipped a lifecycle action of the wrong transition: {} handles {ours} actions only; check the hook's notification target", W::SPEC.name);
            return Ok(ignored(theirs));
        }
        Work::Action(action) => Job::fresh(action, reply_topic),
        Work::Resume(c) => Job::resume(c, reply_topic)?,
        Work::Event(event) => match on_event(workflow, event, deadline_ms).await? {
            Accept::Job(job) => *job,
            Accept::Answered(outcome) => return Ok(outcome),
        },
    };
    // Boxed: the held action's future nests every step of the workflow and the
    // SDK calls under it; on the heap, the record futures that run side by side
    // stay small (and within the compiler's layout depth for every workflow).
    Box::pin(execute(workflow, job, deadline_ms)).await
}

/// The workflow's own event, answered before the hand-off point: its calls (an
/// ECS event's look, a Spot warning's drain) hold no action, so a slow or
/// failing AWS ends the invocation with a retryable error rather than past the
/// deadline, where Lambda would kill it.
async fn on_event<W: HookWorkflow>(
    workflow: &W,
    event: W::Event,
    deadline_ms: u64,
) -> Result<Accept<W::Memo>, Error> {
    let margin_ms = crate::time::millis(workflow.holder().handoff_margin);
    let left = deadline_ms
        .saturating_sub(crate::time::epoch_ms())
        .saturating_sub(margin_ms);
    tokio::time::timeout(
        std::time::Duration::from_millis(left.max(1)),
        workflow.on_event(event),
    )
    .await
    .unwrap_or_else(|_| {
        Err(Error::Aws(crate::error::AwsError::new(
            "ecs-lifecycle",
            "event",
            None,
            "not answered before the invocation's hand-off point".into(),
        )))
    })
}

/// Splits an event into records, answers what needs no workflow (test
/// notifications, unreadable records, continuations addressed to another
/// function) and hands each unit of work to `run`, all records concurrently.
/// `run` is called only for real work, so a workflow built lazily is never built
/// for a test notification.
pub async fn answer<E, F, Fut>(function: &str, event: &Value, run: F) -> Result<Answer, Error>
where
    E: WorkflowEvent,
    F: Fn(Work<E>, Option<String>) -> Fut,
    Fut: Future<Output = Result<Value, Error>>,
{
    let records = parse_event::<E>(event).inspect_err(|e| error!(error = %e, "rejected event"))?;
    let results = futures_util::future::join_all(
        records
            .iter()
            .map(|r| handle_record(function, r.clone(), &run)),
    )
    .await;

    let is_sqs = records
        .iter()
        .any(|r| matches!(r.source, Source::Sqs { .. }));
    let mut outcomes = Vec::new();
    let mut failures = SqsBatchResponse::default();
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
                        failures.add_failure(message_id.as_str());
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
        _ => Ok(Answer {
            batch: failures,
            outcomes,
        }),
    }
}

async fn handle_record<E, F, Fut>(
    function: &str,
    record: Record<E>,
    run: &F,
) -> Result<Value, Error>
where
    E: WorkflowEvent,
    F: Fn(Work<E>, Option<String>) -> Fut,
    Fut: Future<Output = Result<Value, Error>>,
{
    let reply_topic = record.source.topic_arn().map(str::to_owned);
    let work = match record.message {
        Err(e) => {
            error!(error = %e, "rejected message");
            return Err(e.into());
        }
        Ok(Message::TestNotification { asg }) => {
            info!(
                asg = asg.as_deref().unwrap_or(""),
                "acknowledged autoscaling:TEST_NOTIFICATION; nothing to do"
            );
            return Ok(ignored("test notification"));
        }
        Ok(Message::Continuation(c)) if c.function != function => {
            let e = EventError::new(
                "continuation.function",
                format!("is {:?}; this is {function}", c.function),
            );
            error!(error = %e, "rejected continuation");
            return Err(e.into());
        }
        Ok(Message::Continuation(c)) => Work::Resume(c),
        Ok(Message::Action(a)) => Work::Action(a),
        Ok(Message::Event(e)) => Work::Event(e),
    };
    run(work, reply_topic).await
}

/// The outcome of a record that was acknowledged and dropped.
pub fn ignored(reason: &str) -> Value {
    json!({ "outcome": "ignored", "reason": reason })
}
