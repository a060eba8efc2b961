//! Handing work over to a new invocation: publish a continuation to the
//! configured topic, or to the topic the work came through.

use serde::Serialize;
use tracing::info;

use crate::error::{Error, EventError};
use crate::hook::continuation::Continuation;
use crate::hook::dispatch::Job;
use crate::ports::Publisher;

/// Where the continuation went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HandedOff {
    pub attempt: u32,
    pub topic_arn: String,
    pub message_id: String,
}

/// Publishes the continuation of `job` (attempt + 1, same start, the given
/// heartbeat base and memo).
pub async fn hand_off<P: Publisher, M: Serialize>(
    publisher: &P,
    function: &str,
    configured_topic: Option<&str>,
    job: &Job<M>,
    started_at_ms: u64,
    heartbeat_base_ms: u64,
    memo: &M,
) -> Result<HandedOff, Error> {
    let state = serde_json::to_value(memo)
        .map_err(|e| EventError::new("continuation.state", e.to_string()))?;
    let next = Continuation::new(
        function,
        job.action.clone(),
        job.attempt + 1,
        started_at_ms,
        Some(heartbeat_base_ms),
        state,
    );
    let topic = configured_topic
        .map(str::to_owned)
        .or_else(|| job.reply_topic.clone())
        .ok_or_else(|| Error::NoContinuationTopic {
            instance_id: job.action.instance_id.clone(),
        })?;
    let body =
        serde_json::to_string(&next).map_err(|e| EventError::new("continuation", e.to_string()))?;
    let subject = format!("{function} continuation {}", job.action.instance_id);
    let message_id = publisher.publish_message(&topic, &subject, &body).await?;
    info!(topic = %topic, %message_id, next_attempt = next.attempt, "handed the work over to a new invocation");
    Ok(HandedOff {
        attempt: next.attempt,
        topic_arn: topic,
        message_id,
    })
}
