//! [`Env`]: the typed readers of configuration variables (seconds, flags,
//! names, ARNs, ...), each failing with a [`ConfigError`] that names the
//! variable, the value and what was expected.

use std::time::Duration;

use tracing::level_filters::LevelFilter;

use crate::config::ClusterScope;
use crate::error::ConfigError;

/// Reads variables through a lookup function so tests need not touch the process
/// environment.
#[derive(Debug)]
pub struct Env<F>(F);

impl<F: Fn(&str) -> Option<String>> Env<F> {
    pub fn new(lookup: F) -> Self {
        Env(lookup)
    }

    /// The trimmed value, `None` when unset or blank.
    pub fn get(&self, var: &str) -> Option<String> {
        (self.0)(var)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    pub fn seconds(
        &self,
        var: &'static str,
        default: u64,
        min: u64,
        max: u64,
    ) -> Result<Duration, ConfigError> {
        let Some(raw) = self.get(var) else {
            return Ok(Duration::from_secs(default));
        };
        match raw.parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(Duration::from_secs(n)),
            _ => Err(ConfigError {
                var,
                value: raw,
                expected: format!("a whole number of seconds from {min} to {max}"),
            }),
        }
    }

    pub fn flag(&self, var: &'static str, default: bool) -> Result<bool, ConfigError> {
        let Some(raw) = self.get(var) else {
            return Ok(default);
        };
        match raw.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err(ConfigError {
                var,
                value: raw,
                expected: "true or false".into(),
            }),
        }
    }

    /// A log level (`TRACE`, `DEBUG`, `INFO`, `WARN`, `ERROR`, any case);
    /// `INFO` when unset.
    pub fn log_level(&self, var: &'static str) -> Result<LevelFilter, ConfigError> {
        let Some(raw) = self.get(var) else {
            return Ok(LevelFilter::INFO);
        };
        match raw.to_ascii_uppercase().as_str() {
            "TRACE" => Ok(LevelFilter::TRACE),
            "DEBUG" => Ok(LevelFilter::DEBUG),
            "INFO" => Ok(LevelFilter::INFO),
            "WARN" => Ok(LevelFilter::WARN),
            "ERROR" => Ok(LevelFilter::ERROR),
            _ => Err(ConfigError {
                var,
                value: raw,
                expected: "TRACE, DEBUG, INFO, WARN or ERROR".into(),
            }),
        }
    }

    pub fn sns_topic_arn(&self, var: &'static str) -> Result<Option<String>, ConfigError> {
        let Some(raw) = self.get(var) else {
            return Ok(None);
        };
        let parts: Vec<&str> = raw.split(':').collect();
        let valid = parts.len() == 6
            && parts[0] == "arn"
            && parts[2] == "sns"
            && parts[5]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            && !parts[5].is_empty();
        if valid {
            Ok(Some(raw))
        } else {
            Err(ConfigError {
                var,
                value: raw,
                expected: "an SNS topic ARN (arn:aws:sns:<region>:<account>:<name>)".into(),
            })
        }
    }

    pub fn clusters(&self, var: &'static str) -> Result<ClusterScope, ConfigError> {
        let Some(raw) = self.get(var) else {
            return Ok(ClusterScope::All);
        };
        let mut names = Vec::new();
        for item in raw.split(',').map(str::trim) {
            let ok = !item.is_empty()
                && (item.starts_with("arn:") && item.contains(":cluster/")
                    || item.len() <= 255
                        && item
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
            if !ok {
                return Err(ConfigError {
                    var,
                    value: raw.clone(),
                    expected: format!(
                        "comma-separated cluster names or ARNs ({item:?} is neither)"
                    ),
                });
            }
            if !names.iter().any(|n| n == item) {
                names.push(item.into());
            }
        }
        Ok(ClusterScope::Named(names))
    }
}
