//! The clocks of a lifecycle action that a function keeps waiting: its deadline
//! (the hook's global timeout, less a safety margin), when to heartbeat, how long
//! to sleep, when to hand over to a new invocation, and how far to stretch the
//! poll while the account's API budget is spent. Pure functions and small state
//! over epoch milliseconds.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::model::HookTimeouts;

/// Auto Scaling's clocks of one action, computed once per invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HookTiming {
    /// When Auto Scaling started the action (its clocks start there).
    pub action_start_ms: u64,
    /// The hook's global timeout from the action start, less a safety margin:
    /// no work may hold the action past this.
    pub global_deadline_ms: u64,
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
        poll_ms: u64,
    ) -> Self {
        let action_start_ms = action_start_ms.map_or(started_at_ms, |t| t.min(started_at_ms));
        let global_deadline =
            action_start_ms.saturating_add(hook.global_timeout_s.saturating_mul(1000));
        let safety = poll_ms.saturating_mul(2).max(10_000);
        HookTiming {
            action_start_ms,
            global_deadline_ms: global_deadline.saturating_sub(safety),
            heartbeat_every_ms: heartbeat_every_ms(hook),
        }
    }

    /// The work's own bound (`max_ms` after it started), capped by the global deadline.
    pub fn deadline(&self, started_at_ms: u64, max_ms: u64) -> u64 {
        started_at_ms
            .saturating_add(max_ms)
            .min(self.global_deadline_ms)
    }
}

/// How often to heartbeat an action of this hook: a third of its timeout.
pub fn heartbeat_every_ms(hook: HookTimeouts) -> u64 {
    (hook.heartbeat_timeout_s.saturating_mul(1000) / 3).max(1000)
}

/// The heartbeat cadence used while a hook's timeouts are not known yet: a third
/// of the smallest HeartbeatTimeout Auto Scaling allows (30 s).
pub const PROVISIONAL_HEARTBEAT_EVERY_MS: u64 = 10_000;

/// How to wait before the next observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    /// Sleep this long: the poll interval, or less when a heartbeat falls due first
    /// (never under a second, or under the poll interval if that is shorter), so
    /// the next look sees the world the heartbeat keeps alive.
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
    let next_heartbeat_ms = if now_ms >= due_at {
        heartbeat_every_ms
    } else {
        due_at - now_ms
    };
    let sleep_ms = poll_ms.min(next_heartbeat_ms).max(1000.min(poll_ms));
    let time_left = invocation_deadline_ms.saturating_sub(now_ms);
    Pace {
        sleep_ms,
        hand_off: time_left < sleep_ms.saturating_add(margin_ms),
    }
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

/// The longest a drain stretches its poll interval while ECS throttles.
pub const MAX_STRETCHED_POLL_MS: u64 = 60_000;

/// The poll interval, stretched while AWS throttles and shrunk back as calls
/// succeed: N drains of one account converge on what its ECS budget sustains.
#[derive(Debug, Clone, Copy)]
pub struct Pacer {
    configured_ms: u64,
    current_ms: u64,
    failures: u32,
}

impl Pacer {
    pub fn new(configured_ms: u64) -> Self {
        Pacer {
            configured_ms,
            current_ms: configured_ms,
            failures: 0,
        }
    }

    /// The poll interval now.
    pub fn poll_ms(&self) -> u64 {
        self.current_ms
    }

    /// Failures in a row.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    pub fn succeeded(&mut self) {
        self.failures = 0;
        // Halve it at each success: from the 60 s cap back to a 10 s poll in three
        // polls (about two minutes), gently enough not to re-trigger the throttle.
        self.current_ms = (self.current_ms / 2).max(self.configured_ms);
    }

    /// Records a transient failure; returns how long to back off.
    pub fn failed(&mut self, throttled: bool) -> u64 {
        self.failures = self.failures.saturating_add(1);
        if throttled {
            self.current_ms = self
                .current_ms
                .saturating_mul(2)
                .min(MAX_STRETCHED_POLL_MS.max(self.configured_ms));
        }
        // Random jitter (0.5x..1.5x) so that drains that failed together do not
        // come back together.
        let base = self.current_ms.max(1000);
        base / 2 + jitter(base)
    }
}

/// A random number in `0..bound`.
pub fn jitter(bound: u64) -> u64 {
    random_u64() % bound.max(1)
}

/// A random 64-bit number, from the standard library's randomly keyed hasher
/// (fresh keys each time; nothing here needs a cryptographic generator).
pub fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    #[cfg(any(test, feature = "test-util"))]
    if let Some(n) = crate::time::simulated::random_u64() {
        return n;
    }
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(crate::time::epoch_ms());
    h.finish()
}

/// The heartbeat clock of a held action, shared by the loop (which reads it for
/// its decisions and hands it over in a continuation) and the heartbeater (which
/// restarts it).
#[derive(Debug)]
pub struct Beat {
    base_ms: AtomicU64,
    every_ms: AtomicU64,
    /// Set while CompleteLifecycleAction is in flight: "No active Lifecycle
    /// Action" is then the completion's own doing, not an expiry.
    completing: AtomicBool,
    /// Heartbeats accepted, and ECS calls throttled, in this invocation.
    heartbeats: AtomicU64,
    throttles: AtomicU64,
}

impl Beat {
    pub fn new(base_ms: u64, every_ms: u64) -> Self {
        Beat {
            base_ms: AtomicU64::new(base_ms),
            every_ms: AtomicU64::new(every_ms),
            completing: AtomicBool::new(false),
            heartbeats: AtomicU64::new(0),
            throttles: AtomicU64::new(0),
        }
    }

    /// When Auto Scaling's heartbeat clock last restarted.
    pub fn base(&self) -> u64 {
        self.base_ms.load(Ordering::Relaxed)
    }

    pub fn every(&self) -> u64 {
        self.every_ms.load(Ordering::Relaxed)
    }

    /// The cadence once the hook's timeouts are known.
    pub fn set_every(&self, ms: u64) {
        self.every_ms.store(ms, Ordering::Relaxed);
    }

    /// When the next heartbeat is due.
    pub fn due(&self) -> u64 {
        self.base().saturating_add(self.every())
    }

    pub fn accepted(&self, at_ms: u64) {
        self.base_ms.store(at_ms, Ordering::Relaxed);
        self.heartbeats.fetch_add(1, Ordering::Relaxed);
    }

    pub fn completing(&self) -> bool {
        self.completing.load(Ordering::Relaxed)
    }

    pub fn set_completing(&self, on: bool) {
        self.completing.store(on, Ordering::Relaxed);
    }

    pub fn throttled(&self) {
        self.throttles.fetch_add(1, Ordering::Relaxed);
    }

    pub fn heartbeats(&self) -> u64 {
        self.heartbeats.load(Ordering::Relaxed)
    }

    pub fn throttles(&self) -> u64 {
        self.throttles.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_is_capped_by_the_global_timeout() {
        let hook = HookTimeouts::from_heartbeat(60); // global 6000 s
        let t = HookTiming::new(hook, Some(1_000_000), 1_000_000, 10_000);
        assert_eq!(
            t.deadline(1_000_000, 10_000_000),
            1_000_000 + 6_000_000 - 20_000
        );
        assert_eq!(t.heartbeat_every_ms, 20_000);
        let t = HookTiming::new(hook, Some(1_000_000), 1_500_000, 10_000);
        assert_eq!(
            (t.deadline(1_500_000, 60_000), t.action_start_ms),
            (1_560_000, 1_000_000)
        );
        // A start time later than our own start is not trusted.
        let t = HookTiming::new(hook, Some(2_000_000), 1_500_000, 1_000);
        assert_eq!(t.action_start_ms, 1_500_000);
    }

    #[test]
    fn pacing() {
        // Not due: wake for the heartbeat if it comes before the poll.
        assert_eq!(
            pace(100_000, 4_000, 100_000, 10_000, 1_000_000, 10_000),
            Pace {
                sleep_ms: 4_000,
                hand_off: false
            }
        );
        // Due.
        assert_eq!(
            pace(100_000, 0, 100_000, 10_000, 1_000_000, 10_000),
            Pace {
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

    #[test]
    fn the_pacer_stretches_on_throttles_and_shrinks_back() {
        let mut p = Pacer::new(10_000);
        for _ in 0..5 {
            let pause = p.failed(true);
            assert!(pause >= p.poll_ms() / 2 && pause < p.poll_ms() * 3 / 2);
        }
        assert_eq!(p.poll_ms(), MAX_STRETCHED_POLL_MS);
        assert_eq!(p.failures(), 5);
        p.succeeded();
        p.succeeded();
        assert_eq!(p.poll_ms(), 15_000);
        p.succeeded();
        assert_eq!((p.poll_ms(), p.failures()), (10_000, 0));
        // A failure that is not a throttle backs off without stretching.
        p.failed(false);
        assert_eq!(p.poll_ms(), 10_000);
    }

    #[test]
    fn the_beat_restarts_on_each_accepted_heartbeat() {
        let b = Beat::new(1_000, PROVISIONAL_HEARTBEAT_EVERY_MS);
        assert_eq!(b.due(), 11_000);
        b.set_every(20_000);
        b.accepted(5_000);
        assert_eq!((b.due(), b.heartbeats()), (25_000, 1));
    }
}
