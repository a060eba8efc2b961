//! A piece of work a hook workflow holds: the lifecycle action, with what earlier
//! invocations handed over, and what a workflow makes of a unit of work.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::EventError;
use crate::hook::continuation::Continuation;
use crate::model::{HookTimeouts, LifecycleAction};

/// What a workflow makes of a unit of work.
#[derive(Debug)]
pub enum Accept<M> {
    /// Hold this job.
    Job(Box<Job<M>>),
    /// Answered without holding an action: acknowledged and dropped (with the
    /// reason), or handled at once (e.g. a Spot warning drained early).
    Answered(Value),
}

/// A lifecycle action being worked on, with what earlier invocations handed over.
#[derive(Debug, Clone)]
pub struct Job<M> {
    /// The lifecycle action; its `hook` is `None` for work that no hook holds
    /// (launch-verify's `EC2 Instance Launch Successful` mode).
    pub action: LifecycleAction,
    /// The hook's timeouts, once read (a continuation carries them, so that the
    /// next invocation heartbeats on the right cadence from its first moment).
    pub hook_timeouts: Option<HookTimeouts>,
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

impl<M> Job<M> {
    /// Whether a lifecycle action waits on the work: the runtime then reads the
    /// hook's timeouts, heartbeats and completes it.
    pub fn held(&self) -> bool {
        self.action.hook.is_some()
    }
}

impl<M: DeserializeOwned + Default> Job<M> {
    /// A lifecycle action, fresh from Auto Scaling.
    pub fn fresh(action: LifecycleAction, reply_topic: Option<String>) -> Self {
        Job {
            action,
            hook_timeouts: None,
            attempt: 0,
            started_at_ms: None,
            last_heartbeat_ms: None,
            memo: M::default(),
            reply_topic,
        }
    }

    /// An earlier invocation's work, from its continuation.
    pub fn resume(c: Continuation, reply_topic: Option<String>) -> Result<Self, EventError> {
        // Continuations of earlier releases mark unheld work in launch-verify's memo.
        let mut action = c.action;
        if !c.held || c.state.get("no_hook") == Some(&Value::Bool(true)) {
            action.hook = None;
        }
        let memo = if c.state.is_null() {
            M::default()
        } else {
            serde_json::from_value(c.state)
                .map_err(|e| EventError::new("continuation.state", e.to_string()))?
        };
        Ok(Job {
            action,
            hook_timeouts: c.hook_timeouts,
            attempt: c.attempt,
            started_at_ms: Some(c.started_at_ms),
            last_heartbeat_ms: c.last_heartbeat_ms,
            memo,
            reply_topic,
        })
    }
}
