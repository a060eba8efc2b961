//! The message a function publishes to itself (through SNS) when one invocation
//! is not enough. It carries the original action unchanged plus what the next
//! invocation cannot observe: how many hops so far, when the work started, when
//! the last heartbeat went out, and a few hints that save lookups.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::{HookTimeouts, LifecycleAction};

/// Marks a continuation among other messages on the same topic.
pub const CONTINUATION_KIND: &str = "ecs-lifecycle.continuation";
pub const CONTINUATION_VERSION: u32 = 1;

/// A hard bound on hops, independent of clocks: a chain longer than this is a bug
/// (at one hop per poll interval and the 48 h global timeout it cannot happen).
pub const MAX_HOPS: u32 = 2000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Continuation {
    /// Always [`CONTINUATION_KIND`].
    pub kind: String,
    pub version: u32,
    /// The function that wrote it (`terminate-drain`, ...); another function refuses it.
    pub function: String,
    /// The lifecycle action, as Auto Scaling sent it.
    pub action: LifecycleAction,
    /// 1 for the first continuation, incremented at every hop.
    pub attempt: u32,
    /// When the work started (epoch ms).
    pub started_at_ms: u64,
    /// When the last heartbeat was recorded (epoch ms), if any.
    #[serde(default)]
    pub last_heartbeat_ms: Option<u64>,
    /// Function-specific memo (e.g. the cluster and container instance found).
    #[serde(default)]
    pub state: Value,
    /// Whether a lifecycle action waits on the work (absent in continuations
    /// written before this field: they all held one, but launch-verify's no-hook
    /// work, which its memo's `no_hook` names).
    #[serde(default = "held_by_default")]
    pub held: bool,
    /// The hook's timeouts, read by an earlier invocation (absent before that).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook_timeouts: Option<HookTimeouts>,
    /// `queue` when the next look is to wait in the function's wait queue
    /// (WAIT_MODE=queue; the template routes such a continuation there, by this
    /// field); absent, the continuation is delivered at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<Wait>,
}

/// Where a continuation waits before it is delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Wait {
    /// In the function's wait queue, for its delay (the poll interval).
    Queue,
}

fn held_by_default() -> bool {
    true
}

impl Continuation {
    pub fn new(
        function: &str,
        action: LifecycleAction,
        attempt: u32,
        started_at_ms: u64,
        last_heartbeat_ms: Option<u64>,
        state: Value,
    ) -> Self {
        Continuation {
            held: true,
            hook_timeouts: None,
            wait: None,
            kind: CONTINUATION_KIND.to_owned(),
            version: CONTINUATION_VERSION,
            function: function.to_owned(),
            action,
            attempt,
            started_at_ms,
            last_heartbeat_ms,
            state,
        }
    }
}
