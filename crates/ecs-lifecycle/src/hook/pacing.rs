//! The clocks of a lifecycle action that a function keeps waiting: its deadline
//! (the function's own bound, capped by the hook's global timeout), when to
//! heartbeat, how long to sleep, and when to hand over to a new invocation.
//! Pure functions over epoch milliseconds.

use crate::model::HookTimeouts;

/// Deadlines and heartbeat cadence of one action, computed once per invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HookTiming {
    /// When Auto Scaling started the action (its clocks start there).
    pub action_start_ms: u64,
    /// The function's bound (`max` after the work started), capped by the hook's
    /// global timeout less a safety margin.
    pub deadline_ms: u64,
    /// A third of the heartbeat timeout: two chances before it runs out.
    pub heartbeat_every_ms: u64,
}

impl HookTiming {
    /// `action_start_ms` comes from the notification's `Time`, when it has one;
    /// `started_at_ms` is when this function started working on the action.
    pub fn new(
        hook: HookTimeouts,
        action_start_ms: Option<u64>,
        started_at_ms: u64,
        max_ms: u64,
        poll_ms: u64,
    ) -> Self {
        let action_start_ms = action_start_ms.map_or(started_at_ms, |t| t.min(started_at_ms));
        let global_deadline =
            action_start_ms.saturating_add(hook.global_timeout_s.saturating_mul(1000));
        let safety = poll_ms.saturating_mul(2).max(10_000);
        HookTiming {
            action_start_ms,
            deadline_ms: started_at_ms
                .saturating_add(max_ms)
                .min(global_deadline.saturating_sub(safety)),
            heartbeat_every_ms: (hook.heartbeat_timeout_s.saturating_mul(1000) / 3).max(1000),
        }
    }
}

/// How to wait before the next observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    /// A heartbeat is due now.
    pub heartbeat: bool,
    /// Sleep this long: the poll interval, or less when a heartbeat falls due first
    /// (never under a second, or under the poll interval if that is shorter).
    pub sleep_ms: u64,
    /// Another sleep and observation would not fit before the invocation deadline
    /// (less the margin kept for handing over): hand over now.
    pub hand_off: bool,
}

/// Paces a wait. `heartbeat_base_ms` is when Auto Scaling's heartbeat clock last
/// restarted (the last heartbeat, or the action start).
pub fn pace(
    now_ms: u64,
    heartbeat_base_ms: u64,
    heartbeat_every_ms: u64,
    poll_ms: u64,
    invocation_deadline_ms: u64,
    margin_ms: u64,
) -> Pace {
    let due_at = heartbeat_base_ms.saturating_add(heartbeat_every_ms);
    let heartbeat = now_ms >= due_at;
    let next_heartbeat_ms = if heartbeat {
        heartbeat_every_ms
    } else {
        due_at - now_ms
    };
    let sleep_ms = poll_ms.min(next_heartbeat_ms).max(1000.min(poll_ms));
    let time_left = invocation_deadline_ms.saturating_sub(now_ms);
    Pace {
        heartbeat,
        sleep_ms,
        hand_off: time_left < sleep_ms.saturating_add(margin_ms),
    }
}

/// Reads the hook's timeouts (Auto Scaling's defaults if the hook is gone) and
/// computes the timing of `action`.
pub async fn load_hook_timing<A: crate::ports::AutoScaling>(
    autoscaling: &A,
    action: &crate::model::LifecycleAction,
    started_at_ms: u64,
    max_ms: u64,
    poll_ms: u64,
) -> Result<HookTiming, crate::error::Error> {
    let hook = match autoscaling.hook_timeouts(&action.asg, &action.hook).await? {
        Some(h) => h,
        None => {
            tracing::warn!("lifecycle hook not found; assuming Auto Scaling's default timeouts");
            HookTimeouts::DEFAULT
        }
    };
    Ok(HookTiming::new(
        hook,
        action.started_at_ms(),
        started_at_ms,
        max_ms,
        poll_ms,
    ))
}

/// Warns when an invocation is too short to poll even once before handing over
/// (a misconfigured function timeout would otherwise hop every few seconds).
pub fn warn_if_too_short(now_ms: u64, invocation_deadline_ms: u64, poll_ms: u64, margin_ms: u64) {
    let left = invocation_deadline_ms.saturating_sub(now_ms);
    if left < poll_ms + margin_ms {
        tracing::warn!(
            time_left_ms = left,
            "the invocation has less time than one poll plus the hand-off margin; raise the function timeout (900 s recommended)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_is_capped_by_the_global_timeout() {
        let hook = HookTimeouts::from_heartbeat(60); // global 6000 s
        let t = HookTiming::new(hook, Some(1_000_000), 1_000_000, 10_000_000, 10_000);
        assert_eq!(t.deadline_ms, 1_000_000 + 6_000_000 - 20_000);
        assert_eq!(t.heartbeat_every_ms, 20_000);
        let t = HookTiming::new(hook, Some(1_000_000), 1_500_000, 60_000, 10_000);
        assert_eq!((t.deadline_ms, t.action_start_ms), (1_560_000, 1_000_000));
        // A start time later than our own start is not trusted.
        let t = HookTiming::new(hook, Some(2_000_000), 1_500_000, 60_000, 1_000);
        assert_eq!(t.action_start_ms, 1_500_000);
    }

    #[test]
    fn pacing() {
        // Not due: wake for the heartbeat if it comes before the poll.
        assert_eq!(
            pace(100_000, 4_000, 100_000, 10_000, 1_000_000, 10_000),
            Pace {
                heartbeat: false,
                sleep_ms: 4_000,
                hand_off: false
            }
        );
        // Due.
        assert_eq!(
            pace(100_000, 0, 100_000, 10_000, 1_000_000, 10_000),
            Pace {
                heartbeat: true,
                sleep_ms: 10_000,
                hand_off: false
            }
        );
        // Not enough time for sleep + margin.
        assert!(pace(100_000, 99_000, 100_000, 10_000, 119_999, 10_000).hand_off);
        assert!(!pace(100_000, 99_000, 100_000, 10_000, 120_000, 10_000).hand_off);
        // Never below a second.
        assert_eq!(
            pace(100_000, 90_001, 10_000, 10_000, 1_000_000, 0).sleep_ms,
            1_000
        );
    }
}
