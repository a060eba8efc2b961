//! Handing work over to a new invocation: publish a continuation to the
//! configured topic, or to the topic the work came through.

use serde::Serialize;
use std::time::Duration;

use tracing::{info, warn};

use crate::error::{AwsError, Error};
use crate::hook::continuation::{Continuation, Wait};
use crate::hook::job::Job;
use crate::ports::Publisher;
use crate::time::Clock;

/// Where the continuation went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HandedOff {
    pub attempt: u32,
    pub topic_arn: String,
    pub message_id: String,
}

/// What the next invocation needs besides the job: when the work started,
/// when the action was last heartbeated, and whether it waits in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Next {
    pub started_at_ms: u64,
    pub heartbeat_base_ms: u64,
    pub wait: Option<Wait>,
}

/// Publishes the continuation of `job` (attempt + 1, same start, the given
/// heartbeat base, its memo and hook timeouts). A publish that fails for a
/// reason that can heal (throttling, 5xx, timeouts) is tried again until
/// `give_up_at_ms`.
pub async fn hand_off<P: Publisher, M: Serialize>(
    publisher: &P,
    function: &str,
    configured_topic: Option<&str>,
    job: &Job<M>,
    to: Next,
    clock: &Clock,
    give_up_at_ms: u64,
) -> Result<HandedOff, Error> {
    let Next {
        started_at_ms,
        heartbeat_base_ms,
        wait,
    } = to;
    let state = serde_json::to_value(&job.memo)
        .map_err(|e| Error::Internal(format!("continuation state as JSON: {e}")))?;
    let mut next = Continuation::new(
        function,
        job.action.clone(),
        job.attempt.saturating_add(1),
        started_at_ms,
        job.held().then_some(heartbeat_base_ms),
        state,
    );
    next.held = job.held();
    next.hook_timeouts = job.hook_timeouts;
    next.wait = wait;
    let topic = configured_topic
        .map(str::to_owned)
        .or_else(|| job.reply_topic.clone())
        .ok_or_else(|| Error::NoContinuationTopic {
            instance_id: job.action.instance_id.clone(),
        })?;
    let body = serde_json::to_string(&next)
        .map_err(|e| Error::Internal(format!("continuation as JSON: {e}")))?;
    let subject = format!("{function} continuation {}", job.action.instance_id);
    let mut pause_ms = 500;
    let message_id = loop {
        // Each attempt is bounded by the time left: the SDK's own retries (backing
        // off up to 20 s a try) must not carry one past the invocation's end.
        let left = give_up_at_ms.saturating_sub(clock.now_ms()).max(1);
        let attempt = tokio::time::timeout(
            Duration::from_millis(left),
            publisher.publish_message(&topic, &subject, &body),
        )
        .await
        .unwrap_or_else(|_| {
            Err(AwsError::new(
                "sns",
                "Publish",
                None,
                format!("no answer within the {left} ms left before the deadline"),
            ))
        });
        match attempt {
            Ok(id) => break id,
            Err(e)
                if e.is_retryable() && clock.now_ms().saturating_add(pause_ms) < give_up_at_ms =>
            {
                warn!(topic = %topic, error = %e, retry_in_ms = pause_ms, "publishing the continuation failed; trying again");
                tokio::time::sleep(Duration::from_millis(pause_ms)).await;
                pause_ms = (pause_ms * 2).min(4000);
            }
            Err(e) => return Err(e.into()),
        }
    };
    info!(topic = %topic, %message_id, next_attempt = next.attempt, "handed the work over to a new invocation");
    Ok(HandedOff {
        attempt: next.attempt,
        topic_arn: topic,
        message_id,
    })
}
