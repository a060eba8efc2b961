//! Wall-clock time for one invocation: epoch milliseconds that advance with
//! tokio's clock, so tests can pause and advance time.

use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy)]
pub struct Clock {
    epoch_ms_at_start: u64,
    start: tokio::time::Instant,
}

impl Clock {
    pub fn start() -> Self {
        Clock {
            epoch_ms_at_start: epoch_ms(),
            start: tokio::time::Instant::now(),
        }
    }

    pub fn now_ms(&self) -> u64 {
        self.epoch_ms_at_start
            + u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX / 2)
    }
}

/// Milliseconds since the Unix epoch (0 if the system clock is before it).
pub fn epoch_ms() -> u64 {
    #[cfg(any(test, feature = "test-util"))]
    if let Some(ms) = simulated::epoch_ms() {
        return ms;
    }
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX / 2))
}

/// A duration in whole milliseconds (saturating).
pub fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Epoch milliseconds as RFC 3339 (`2026-12-06T01:02:03.456Z`).
pub fn rfc3339(epoch_ms: u64) -> String {
    let dt = aws_smithy_types::DateTime::from_millis(i64::try_from(epoch_ms).unwrap_or(i64::MAX));
    dt.fmt(aws_smithy_types::date_time::Format::DateTime)
        .unwrap_or_default()
}

/// Epoch milliseconds as RFC 3339 to the whole second, the milliseconds
/// dropped (`2026-12-06T01:02:03Z`): what a tag value or a message shows.
pub fn rfc3339_secs(epoch_ms: u64) -> String {
    aws_smithy_types::DateTime::from_secs(i64::try_from(epoch_ms / 1000).unwrap_or(0))
        .fmt(aws_smithy_types::date_time::Format::DateTime)
        .unwrap_or_default()
}

/// An RFC 3339 time (`2026-12-06T01:02:03Z`, with or without a fraction) as
/// milliseconds since the Unix epoch (negative before it); `None` when it is
/// not one.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    aws_smithy_types::DateTime::from_str(s, aws_smithy_types::date_time::Format::DateTime)
        .ok()?
        .to_millis()
        .ok()
}

/// An RFC 3339 time as epoch milliseconds; `None` when it is not one or is
/// before 1970.
pub fn epoch_ms_of(s: &str) -> Option<u64> {
    u64::try_from(parse_rfc3339(s)?).ok()
}

/// A deterministic world for simulation tests (feature `test-util`; production
/// builds do not have it): on the calling thread, the wall clock follows tokio's
/// (paused) clock from a fixed epoch, so that the times one invocation hands to
/// the next (a continuation's start and last heartbeat, a notification's `Time`)
/// agree with the virtual minutes between them, and
/// [`crate::hook::pacing::random_u64`] draws from a seeded generator, so that a
/// seed replays the same run.
#[cfg(any(test, feature = "test-util"))]
pub mod simulated {
    use std::cell::Cell;

    thread_local! {
        static ANCHOR: Cell<Option<(u64, std::time::Instant)>> = const { Cell::new(None) };
        static RANDOM: Cell<Option<u64>> = const { Cell::new(None) };
    }

    /// From now on, on this thread, the wall clock reads `epoch_ms` now and
    /// advances with tokio's clock; random numbers come from `seed`. Call it
    /// inside the runtime whose clock the world follows.
    pub fn start(epoch_ms: u64, seed: u64) {
        ANCHOR.set(Some((epoch_ms, tokio::time::Instant::now().into_std())));
        RANDOM.set(Some(seed));
    }

    /// Back to the system clock and the system's randomness.
    pub fn stop() {
        ANCHOR.set(None);
        RANDOM.set(None);
    }

    pub(crate) fn epoch_ms() -> Option<u64> {
        ANCHOR.get().map(|(epoch, at)| {
            let now = tokio::time::Instant::now().into_std();
            epoch.saturating_add(super::millis(now.saturating_duration_since(at)))
        })
    }

    /// The next number of the seeded generator (splitmix64), if one is set.
    pub(crate) fn random_u64() -> Option<u64> {
        RANDOM.get().map(|state| {
            let state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            RANDOM.set(Some(state));
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        })
    }
}
