//! The runtime's one error policy (kube-rs's `error_policy`): what to do when a
//! step of a held action fails. Waiting heals throttling, 5xx and timeouts; the
//! hand-off point ends the wait; anything else ends the invocation after a last
//! heartbeat so that Lambda's retry finds the action alive.

use tracing::warn;

use crate::error::Error;
use crate::hook::pacing::Pacer;

/// The shortest wait worth taking before the hand-off point; closer to it, a
/// failure hands over at once.
const MIN_WAIT_MS: u64 = 1_000;

/// What the runtime does after a failed step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// Back off this long, then observe again.
    RetryAfter(u64),
    /// Too close to the invocation's end to wait: continue in a new invocation.
    HandOff,
    /// Waiting cannot heal it: heartbeat once, then end with the error.
    GiveUp,
}

/// Decides what follows a failure of `what` at `now_ms`, and logs it. `pacer`
/// stretches the poll while AWS throttles.
pub fn error_policy(
    e: &Error,
    what: &'static str,
    pacer: &mut Pacer,
    now_ms: u64,
    handoff_at_ms: u64,
) -> Recovery {
    if !e.is_transient() {
        return Recovery::GiveUp;
    }
    let pause = pacer.failed(e.is_throttle());
    if now_ms.saturating_add(pause) >= handoff_at_ms {
        let left = handoff_at_ms.saturating_sub(now_ms);
        if left >= MIN_WAIT_MS {
            // Handing over at once would hop as fast as SNS delivers: while AWS
            // fails (an ECS throttle stretches the pause past a short
            // invocation), every new invocation would fail at its start and hand
            // over again, a storm of invocations and ECS calls (and duplicated
            // continuations multiply). Wait out this invocation instead: the
            // hand-off point ends the wait, so a chain hops once per invocation.
            warn!(error = %e, error_type = e.kind(), what, retry_in_ms = left, "failed; the pause reaches the hand-off point: waiting until then");
            return Recovery::RetryAfter(left);
        }
        warn!(error = %e, error_type = e.kind(), what, "failed at the end of the invocation; handing the work over");
        return Recovery::HandOff;
    }
    warn!(
        error = %e,
        error_type = e.kind(),
        throttled = e.is_throttle(),
        failures = pacer.failures(),
        poll_ms = pacer.poll_ms(),
        retry_in_ms = pause,
        what,
        "failed; the action is kept alive and the world observed again after a pause"
    );
    Recovery::RetryAfter(pause)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::AwsError;

    fn aws(code: Option<&str>) -> Error {
        Error::Aws(AwsError::new(
            "ecs",
            "DescribeTasks",
            code.map(str::to_owned),
            "m".into(),
        ))
    }

    #[test]
    fn transient_errors_back_off_until_the_hand_off_point() {
        let mut pacer = Pacer::new(10_000);
        let e = aws(Some("ThrottlingException"));
        let Recovery::RetryAfter(pause) = error_policy(&e, "observing", &mut pacer, 0, 900_000)
        else {
            panic!("a throttle far from the end is waited out")
        };
        assert!((10_000..30_000).contains(&pause), "{pause}");
        assert_eq!(pacer.poll_ms(), 20_000);
        // A pause past the hand-off point waits until it, not handing over at
        // once (a hop per SNS delivery while ECS throttles is a storm).
        assert_eq!(
            error_policy(&e, "observing", &mut pacer, 890_000, 900_000),
            Recovery::RetryAfter(10_000)
        );
        assert_eq!(
            error_policy(&e, "observing", &mut pacer, 899_500, 900_000),
            Recovery::HandOff
        );
    }

    #[test]
    fn what_waiting_cannot_heal_gives_up() {
        let mut pacer = Pacer::new(10_000);
        for e in [
            aws(Some("AccessDeniedException")),
            Error::Internal("bug".into()),
        ] {
            assert_eq!(
                error_policy(&e, "observing", &mut pacer, 0, 900_000),
                Recovery::GiveUp
            );
        }
        assert_eq!(pacer.failures(), 0, "no back-off counted for a give-up");
    }
}
