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
