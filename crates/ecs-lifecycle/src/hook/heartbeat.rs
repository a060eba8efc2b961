//! The heartbeater: a task beside the runtime's loop that keeps a held action
//! alive whatever the loop is doing (a slow or failing ECS call never holds a
//! heartbeat back), and the last heartbeat an invocation sends before it ends in
//! an error.

use std::time::Duration;

use tracing::{debug, info, warn};

use crate::hook::pacing::Beat;
use crate::model::{ActionAck, LifecycleAction};
use crate::ports::AutoScaling;
use crate::time::Clock;

/// How long the heartbeater waits, once Auto Scaling says the action is over
/// while our completion is in flight, before it looks again (the completion may
/// still fail and leave the action to it).
const WHILE_COMPLETING_MS: u64 = 1_000;

/// Sends the heartbeats of a held action when they fall due. Returns only when
/// Auto Scaling says the action is over without us completing it. It never
/// switches itself off, not even while CompleteLifecycleAction is in flight: a
/// completion can take as long as the SDK's operation timeout (45 s), longer than
/// a short HeartbeatTimeout, and may fail; a "No active Lifecycle Action" then is
/// the completion's own doing, and it looks again a second later.
pub async fn keep_alive<A: AutoScaling>(
    autoscaling: &A,
    action: &LifecycleAction,
    beat: &Beat,
    clock: &Clock,
) -> String {
    loop {
        let due = beat.due();
        let now = clock.now_ms();
        if due > now {
            tokio::time::sleep(Duration::from_millis(due - now)).await;
            continue;
        }
        // One attempt may not outlast the cadence: a hung call is abandoned and
        // tried again while the action still has two thirds of its window.
        let every = beat.every();
        let attempt =
            tokio::time::timeout(Duration::from_millis(every), autoscaling.heartbeat(action)).await;
        match attempt {
            Ok(Ok(ActionAck::Accepted)) => {
                beat.accepted(clock.now_ms());
                debug!("recorded a lifecycle action heartbeat");
            }
            Ok(Ok(ActionAck::NoActiveAction(detail))) => {
                if beat.completing() {
                    // Our own completion was accepted meanwhile: the loop reports it.
                    tokio::time::sleep(Duration::from_millis(WHILE_COMPLETING_MS)).await;
                    continue;
                }
                return detail;
            }
            Ok(Err(e)) => {
                warn!(error = %e, "heartbeat failed; trying again in 2 s");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(_) => warn!(timeout_ms = every, "heartbeat call timed out; trying again"),
        }
    }
}

/// One heartbeat before an invocation lets go of an action without completing it
/// (an error, or a hand-off), so that the next invocation (a continuation, or
/// Lambda's retry a minute or more later) finds the action still alive.
pub async fn last_heartbeat<A: AutoScaling>(
    autoscaling: &A,
    action: &LifecycleAction,
    beat: &Beat,
    clock: &Clock,
    until_ms: u64,
) {
    // A failure that waiting can heal (Auto Scaling throttling or failing for
    // a moment) is tried again, 1 s later, then 2, 4 and 8 s apart: the next
    // invocation may come only after the action would expire (a queue's delay,
    // Lambda's retry a minute or two later), so this heartbeat is worth the
    // wait. Never past `until_ms`, however slow Auto Scaling answers.
    let mut pause_ms = 1_000;
    loop {
        let left = until_ms.saturating_sub(clock.now_ms()).saturating_sub(500);
        match tokio::time::timeout(Duration::from_millis(left), autoscaling.heartbeat(action)).await
        {
            Ok(Ok(ActionAck::Accepted)) => {
                beat.accepted(clock.now_ms());
                info!("recorded a last heartbeat before letting go of the action");
                return;
            }
            Ok(Ok(ActionAck::NoActiveAction(detail))) => {
                info!(%detail, "no active lifecycle action any more");
                return;
            }
            Ok(Err(e))
                if e.is_retryable()
                    && clock.now_ms().saturating_add(pause_ms + 1_000) < until_ms =>
            {
                warn!(error = %e, retry_in_ms = pause_ms, "the last heartbeat failed; trying again");
                tokio::time::sleep(Duration::from_millis(pause_ms)).await;
                pause_ms = (pause_ms * 2).min(8_000);
            }
            Ok(Err(e)) => {
                warn!(error = %e, "the last heartbeat failed too");
                return;
            }
            Err(_) => {
                warn!("no time left for a last heartbeat");
                return;
            }
        }
    }
}
