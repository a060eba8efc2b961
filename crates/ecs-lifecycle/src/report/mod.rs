//! What the functions tell operators besides their log lines: CloudWatch
//! metrics as Embedded Metric Format lines ([`emf`]) and, when
//! `NOTIFICATION_TOPIC_ARN` is set, one SNS message per event an operator cares
//! about ([`notify`]). Neither can fail the work: a metric is a line on stdout,
//! and a notification that cannot be published is logged and dropped.

pub mod emf;
pub mod notify;

use std::sync::{Arc, Mutex};

use serde_json::Value;

pub use emf::{NAMESPACE, Record, Unit};
pub use notify::{Event, Notification};

use crate::ports::Publisher;
use crate::time::epoch_ms;

/// Every metric a function emits (the template's dashboard and alarms name only these).
pub const METRIC_NAMES: &[&str] = &[
    // terminate-drain
    "DrainSeconds",
    "CompletionLagSeconds",
    "TasksLeftAtCompletion",
    "DrainTimeouts",
    "DrainsRetained",
    "DrainsCompleted",
    // both hooks (the hook runtime)
    "HandOffs",
    "Heartbeats",
    "EcsThrottles",
    // launch-verify
    "RegistrationSeconds",
    "Orphans",
    "OrphansRefused",
    "DiagnosticsRun",
    // ami-rollout
    "RolloutsStarted",
    "RolloutsCompleted",
    "RolloutsRolledBack",
    "RestoresFailed",
    "InstancesReplaced",
];

/// Where metric lines go.
#[derive(Debug, Clone)]
enum Sink {
    /// Standard output, where Lambda hands them to CloudWatch Logs.
    Stdout,
    /// Kept in memory (tests).
    Memory(Arc<Mutex<Vec<Value>>>),
}

/// Emits a function's metrics and notifications.
#[derive(Debug, Clone)]
pub struct Reporter {
    function: String,
    topic: Option<String>,
    sink: Sink,
}

impl Reporter {
    /// The `Function` dimension is the deployed name (`AWS_LAMBDA_FUNCTION_NAME`),
    /// or `default_name` outside Lambda; `topic` is `NOTIFICATION_TOPIC_ARN`.
    pub fn new(default_name: &str, topic: Option<String>) -> Self {
        let function = std::env::var("AWS_LAMBDA_FUNCTION_NAME")
            .ok()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| default_name.to_owned());
        Reporter {
            function,
            topic,
            sink: Sink::Stdout,
        }
    }

    /// A reporter that keeps its metric records (as JSON) in memory.
    pub fn in_memory(function: &str, topic: Option<String>) -> (Self, Arc<Mutex<Vec<Value>>>) {
        let kept = Arc::new(Mutex::new(Vec::new()));
        let r = Reporter {
            function: function.to_owned(),
            topic,
            sink: Sink::Memory(Arc::clone(&kept)),
        };
        (r, kept)
    }

    pub fn function(&self) -> &str {
        &self.function
    }

    /// A new metric record of this function for `cluster` (and `group`).
    pub fn record(&self, cluster: &str, group: Option<&str>) -> Record {
        Record::new(&self.function, cluster_name(cluster), group)
    }

    /// Writes the record as one line (nothing when it has no metric).
    pub fn emit(&self, record: &Record) {
        if record.is_empty() {
            return;
        }
        let json = record.to_json(epoch_ms());
        match &self.sink {
            Sink::Stdout => {
                // One call for the whole line (it holds stdout's lock), so it never
                // interleaves with a log line; `println!` so that a test harness
                // captures it like any other output.
                println!("{json}");
            }
            Sink::Memory(kept) => {
                if let Ok(mut kept) = kept.lock() {
                    kept.push(json);
                }
            }
        }
    }

    /// Publishes `n` when a notification topic is set; a failure is logged,
    /// never returned (a notification must not fail the work it reports).
    pub async fn notify<P: Publisher>(&self, publisher: &P, n: Notification) {
        let Some(topic) = self.topic.as_deref() else {
            return;
        };
        let now = epoch_ms();
        let message = n.message(&self.function, now).to_string();
        let event = n.event.as_str();
        let cluster = cluster_name(&n.cluster).to_owned();
        let attributes = [
            ("event", event),
            ("cluster", cluster.as_str()),
            ("schema_version", notify::SCHEMA_VERSION_STR),
        ];
        match publisher
            .publish_notification(topic, &n.subject(), &message, &attributes)
            .await
        {
            Ok(message_id) => {
                tracing::info!(notification = event, %message_id, "published the notification")
            }
            Err(e) => tracing::warn!(
                notification = event,
                error = %e,
                "could not publish the notification; the work goes on without it"
            ),
        }
    }
}

/// A cluster's name from its name or ARN (`...:cluster/<name>`).
pub fn cluster_name(cluster: &str) -> &str {
    cluster
        .rsplit_once(":cluster/")
        .map_or(cluster, |(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_dimension_is_the_name_not_the_arn() {
        let (r, kept) = Reporter::in_memory("f", None);
        r.emit(
            &r.record("arn:aws:ecs:us-east-1:123456789012:cluster/prod", None)
                .count("Orphans", 1),
        );
        r.emit(&r.record("prod", None));
        let kept = kept.lock().unwrap();
        assert_eq!(kept.len(), 1, "a record without metrics is not written");
        assert_eq!(kept[0]["Cluster"], "prod");
        assert_eq!(kept[0]["Function"], "f");
    }

    #[test]
    fn every_metric_name_is_listed_once() {
        let mut names = METRIC_NAMES.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), METRIC_NAMES.len());
    }
}
