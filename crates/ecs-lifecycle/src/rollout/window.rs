//! The maintenance window (`ROLLOUT_WINDOW`): weekly time ranges in UTC inside
//! which a new rollout may start. A rollout already running carries on outside
//! it; rollbacks and restores never wait for it.
//!
//! Written as one or more `DAYS HH:MM-HH:MM` separated by `;`, e.g.
//! `Sat 02:00-06:00`, `Mon-Fri 22:00-02:00` (an end before the start runs past
//! midnight into the next day), `Sat,Sun 00:00-24:00`, `daily 03:00-04:00`.
//! `DAYS` are `Mon` .. `Sun` (any case), lists (`Sat,Sun`), ranges (`Mon-Fri`,
//! `Fri-Mon`) or `daily`.

use std::fmt;

const MINUTE_MS: u64 = 60_000;
const DAY_MINUTES: u64 = 24 * 60;
const WEEK_MINUTES: u64 = 7 * DAY_MINUTES;
const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// A weekly maintenance window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// `(start, length)` in minutes of the week (Monday 00:00 UTC is 0).
    ranges: Vec<(u64, u64)>,
    text: String,
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Minute of the week (Monday 00:00 UTC = 0) of an epoch time. 1970-01-01 was
/// a Thursday.
fn minute_of_week(epoch_ms: u64) -> u64 {
    let minutes = epoch_ms / MINUTE_MS;
    (minutes + 3 * DAY_MINUTES) % WEEK_MINUTES
}

fn parse_time(s: &str) -> Option<u64> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u64, u64) = (h.parse().ok()?, m.parse().ok()?);
    ((h < 24 && m < 60) || (h == 24 && m == 0)).then_some(h * 60 + m)
}

fn parse_day(s: &str) -> Option<u64> {
    let s = s.to_ascii_lowercase();
    DAYS.iter().position(|d| *d == s).map(|i| i as u64)
}

fn parse_days(s: &str) -> Result<Vec<u64>, String> {
    if s.eq_ignore_ascii_case("daily") {
        return Ok((0..7).collect());
    }
    let mut days = Vec::new();
    for item in s.split(',') {
        let bad = || format!("{item:?} is not a day (Mon .. Sun), a range (Mon-Fri) or daily");
        match item.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (parse_day(a).ok_or_else(bad)?, parse_day(b).ok_or_else(bad)?);
                let mut d = a;
                loop {
                    days.push(d);
                    if d == b {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => days.push(parse_day(item).ok_or_else(bad)?),
        }
    }
    days.sort_unstable();
    days.dedup();
    Ok(days)
}

impl Window {
    /// Parses the variable's value; the error says what is wrong with it.
    pub fn parse(value: &str) -> Result<Window, String> {
        let mut ranges = Vec::new();
        for entry in value.split(';').map(str::trim) {
            let (days, times) = entry
                .split_once(char::is_whitespace)
                .ok_or_else(|| format!("{entry:?} is not DAYS HH:MM-HH:MM"))?;
            let days = parse_days(days.trim())?;
            let times = times.trim();
            let (from, to) = times
                .split_once('-')
                .and_then(|(a, b)| Some((parse_time(a.trim())?, parse_time(b.trim())?)))
                .ok_or_else(|| {
                    format!("{times:?} is not a time range HH:MM-HH:MM (00:00 to 24:00)")
                })?;
            if from == to || from == DAY_MINUTES {
                return Err(format!(
                    "{times:?} is empty: the end must differ from the start"
                ));
            }
            let length = (to + DAY_MINUTES - from) % DAY_MINUTES;
            let length = if length == 0 { DAY_MINUTES } else { length };
            for day in days {
                ranges.push((day * DAY_MINUTES + from, length));
            }
        }
        Ok(Window {
            ranges,
            text: value.trim().to_owned(),
        })
    }

    /// Whether a new rollout may start at `now_ms`.
    pub fn is_open(&self, now_ms: u64) -> bool {
        let now = minute_of_week(now_ms);
        self.ranges
            .iter()
            .any(|(start, length)| (now + WEEK_MINUTES - start) % WEEK_MINUTES < *length)
    }

    /// `None` when open at `now_ms`; otherwise when it next opens (epoch ms).
    pub fn opens_at(&self, now_ms: u64) -> Option<u64> {
        if self.is_open(now_ms) {
            return None;
        }
        let now = minute_of_week(now_ms);
        let wait = self
            .ranges
            .iter()
            .map(|(start, _)| (start + WEEK_MINUTES - now) % WEEK_MINUTES)
            .min()?;
        Some((now_ms / MINUTE_MS + wait) * MINUTE_MS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-21 is a Saturday; 00:00 UTC that day, in epoch ms.
    const SAT: u64 = 1_795_219_200_000;
    const H: u64 = 3_600_000;

    #[test]
    fn saturday_two_to_six() {
        let w = Window::parse("Sat 02:00-06:00").unwrap();
        assert_eq!(w.to_string(), "Sat 02:00-06:00");
        for (at, open) in [
            (SAT, false),
            (SAT + 2 * H - 1, false),
            (SAT + 2 * H, true),
            (SAT + 5 * H + 59 * 60_000, true),
            (SAT + 6 * H, false),
            (SAT + 26 * H, false),             // Sunday 02:00
            (SAT - 5 * 24 * H + 3 * H, false), // Monday 03:00
        ] {
            assert_eq!(w.is_open(at), open, "{at}");
        }
        assert_eq!(w.opens_at(SAT + 3 * H), None);
        assert_eq!(w.opens_at(SAT + H), Some(SAT + 2 * H));
        // After it closed: next Saturday.
        assert_eq!(w.opens_at(SAT + 7 * H), Some(SAT + 7 * 24 * H + 2 * H));
    }

    #[test]
    fn past_midnight_ranges_lists_and_daily() {
        let w = Window::parse("Fri 22:00-02:00").unwrap();
        assert!(w.is_open(SAT - H)); // Friday 23:00
        assert!(w.is_open(SAT + H)); // Saturday 01:00
        assert!(!w.is_open(SAT + 3 * H));
        let w = Window::parse("sat,SUN 00:00-24:00").unwrap();
        assert!(w.is_open(SAT) && w.is_open(SAT + 47 * H) && !w.is_open(SAT + 48 * H));
        let w = Window::parse("Mon-Fri 12:00-13:00; Sun 01:00-02:00").unwrap();
        assert!(w.is_open(SAT + 24 * H + H)); // Sunday 01:00
        assert!(w.is_open(SAT + 2 * 24 * H + 12 * H)); // Monday 12:00
        assert!(!w.is_open(SAT + 12 * H)); // Saturday 12:00
        let w = Window::parse("Fri-Mon 00:00-01:00").unwrap();
        assert!(w.is_open(SAT) && w.is_open(SAT + 2 * 24 * H) && !w.is_open(SAT + 3 * 24 * H));
        let w = Window::parse("daily 03:00-04:00").unwrap();
        assert_eq!(w.opens_at(SAT + 5 * H), Some(SAT + 27 * H));
    }

    #[test]
    fn bad_windows_say_what_is_wrong() {
        for (value, expect) in [
            ("Sat", "DAYS HH:MM-HH:MM"),
            ("Caturday 02:00-06:00", "not a day"),
            ("Sat 2:00-6:00", "time range"),
            ("Sat 02:00-25:00", "time range"),
            ("Sat 02:00-02:00", "empty"),
            ("Sat 02:00-06:00;", "DAYS HH:MM-HH:MM"),
            ("Mon-Funday 02:00-06:00", "not a day"),
        ] {
            let err = Window::parse(value).unwrap_err();
            assert!(err.contains(expect), "{value}: {err}");
        }
    }
}
