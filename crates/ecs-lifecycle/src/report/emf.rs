//! CloudWatch Embedded Metric Format: one JSON object per line on stdout, from
//! which CloudWatch Logs extracts the metrics (no PutMetricData call, no
//! latency, no extra permission).
//!
//! Kept to what the specification requires of a record: `_aws.Timestamp` (epoch
//! milliseconds), one `CloudWatchMetrics` directive with `Namespace`,
//! `Dimensions` (arrays of at most 30 dimension names, each a string member of the
//! root) and `Metrics` (at most 100, each a numeric member of the root, with a
//! `Unit`). Dimension values must not be empty; a metric value must be finite.
//!
//! Written here rather than taken from `metrique-writer-format-emf` or
//! `metrics_cloudwatch_embedded`: both bring a metrics framework (a global
//! recorder, or wide-event macros) for what is one small JSON object per held
//! action, with its own dimension values (cluster, group) among records that a
//! batch works on at once; the functions' size and cold-start budget (issue 10)
//! has no room for it, and an in-memory sink keeps the records testable.

use serde_json::{Map, Value, json};

/// Every metric goes to this namespace.
pub const NAMESPACE: &str = "EcsLifecycle";

/// The specification's limit of metrics in one directive.
const MAX_METRICS: usize = 100;

/// The units the functions use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Seconds,
    Count,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Seconds => "Seconds",
            Unit::Count => "Count",
        }
    }
}

/// One EMF record: its dimensions, values and free properties.
#[derive(Debug, Clone, Default)]
pub struct Record {
    /// Dimension name and value, in the order they are declared.
    dimensions: Vec<(&'static str, String)>,
    /// Sets of dimension names (each one aggregates the metrics once).
    sets: Vec<Vec<&'static str>>,
    metrics: Vec<(&'static str, f64, Unit)>,
    properties: Map<String, Value>,
}

impl Record {
    /// A record for `function` and `cluster`, aggregated by function alone, by
    /// cluster and function, and (when `group` is known) by group too.
    pub fn new(function: &str, cluster: &str, group: Option<&str>) -> Self {
        let mut r = Record::default();
        r.dimensions.push(("Function", non_empty(function)));
        r.dimensions.push(("Cluster", non_empty(cluster)));
        r.sets.push(vec!["Function"]);
        r.sets.push(vec!["Cluster", "Function"]);
        if let Some(g) = group.filter(|g| !g.is_empty()) {
            r.dimensions.push(("AutoScalingGroup", g.to_owned()));
            r.sets.push(vec!["AutoScalingGroup", "Cluster", "Function"]);
        }
        r
    }

    /// Adds a metric (a value that is not finite is left out).
    pub fn metric(mut self, name: &'static str, value: f64, unit: Unit) -> Self {
        if value.is_finite() && self.metrics.len() < MAX_METRICS {
            self.metrics.retain(|(n, _, _)| *n != name);
            self.metrics.push((name, value, unit));
        }
        self
    }

    pub fn count(self, name: &'static str, n: u64) -> Self {
        #[allow(clippy::cast_precision_loss)]
        self.metric(name, n as f64, Unit::Count)
    }

    pub fn seconds_from_ms(self, name: &'static str, ms: u64) -> Self {
        #[allow(clippy::cast_precision_loss)]
        self.metric(name, (ms as f64) / 1000.0, Unit::Seconds)
    }

    /// A property that is searchable in Logs Insights but is not a metric.
    pub fn property(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.properties.insert(key.to_owned(), value.into());
        self
    }

    pub fn is_empty(&self) -> bool {
        self.metrics.is_empty()
    }

    /// The record as the JSON object CloudWatch Logs reads.
    pub fn to_json(&self, timestamp_ms: u64) -> Value {
        let mut root = self.properties.clone();
        for (name, value) in &self.dimensions {
            root.insert((*name).to_owned(), Value::String(value.clone()));
        }
        for (name, value, _) in &self.metrics {
            root.insert((*name).to_owned(), json!(value));
        }
        let metrics: Vec<Value> = self
            .metrics
            .iter()
            .map(|(name, _, unit)| json!({ "Name": name, "Unit": unit.as_str() }))
            .collect();
        root.insert(
            "_aws".to_owned(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": self.sets,
                    "Metrics": metrics,
                }],
            }),
        );
        Value::Object(root)
    }
}

/// CloudWatch drops a record whose dimension value is empty.
fn non_empty(s: &str) -> String {
    if s.is_empty() {
        "unknown".to_owned()
    } else {
        s.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the specification asks of a record, checked on the JSON itself.
    fn check_against_spec(v: &Value) {
        let aws = &v["_aws"];
        assert!(aws["Timestamp"].is_u64(), "Timestamp: epoch ms");
        let directives = aws["CloudWatchMetrics"].as_array().unwrap();
        assert_eq!(directives.len(), 1);
        let d = &directives[0];
        let ns = d["Namespace"].as_str().unwrap();
        assert!(!ns.is_empty() && ns.len() <= 1024);
        for set in d["Dimensions"].as_array().unwrap() {
            let set = set.as_array().unwrap();
            assert!(!set.is_empty() && set.len() <= 30);
            for name in set {
                let value = v[name.as_str().unwrap()].as_str();
                assert!(value.is_some_and(|s| !s.is_empty()), "dimension {name}");
            }
        }
        let metrics = d["Metrics"].as_array().unwrap();
        assert!(metrics.len() <= 100);
        for m in metrics {
            let name = m["Name"].as_str().unwrap();
            assert!(!name.is_empty() && name.len() <= 1024);
            assert!(v[name].is_number(), "metric {name} has a number");
            assert!(
                ["Seconds", "Count"].contains(&m["Unit"].as_str().unwrap()),
                "unit of {name}"
            );
        }
    }

    #[test]
    fn a_record_follows_the_specification() {
        let r = Record::new("stack-TerminateDrain-1", "prod", Some("web-asg"))
            .seconds_from_ms("DrainSeconds", 12_345)
            .count("DrainsCompleted", 1)
            .property("instance_id", "i-0123");
        let v = r.to_json(1_765_000_000_000);
        check_against_spec(&v);
        assert_eq!(v["DrainSeconds"], 12.345);
        assert_eq!(v["DrainsCompleted"], 1.0);
        assert_eq!(v["Function"], "stack-TerminateDrain-1");
        assert_eq!(v["Cluster"], "prod");
        assert_eq!(v["AutoScalingGroup"], "web-asg");
        assert_eq!(v["instance_id"], "i-0123");
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([
                ["Function"],
                ["Cluster", "Function"],
                ["AutoScalingGroup", "Cluster", "Function"]
            ])
        );
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            "EcsLifecycle"
        );
    }

    #[test]
    fn without_a_group_two_dimension_sets_and_no_empty_value() {
        let v = Record::new("f", "", None).count("Orphans", 1).to_json(1);
        check_against_spec(&v);
        assert_eq!(v["Cluster"], "unknown");
        assert!(v.get("AutoScalingGroup").is_none());
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Function"], ["Cluster", "Function"]])
        );
    }

    #[test]
    fn values_that_are_not_numbers_are_left_out_and_names_are_unique() {
        let r = Record::new("f", "c", None)
            .metric("A", f64::NAN, Unit::Count)
            .count("B", 1)
            .count("B", 2);
        assert!(!r.is_empty());
        let v = r.to_json(1);
        check_against_spec(&v);
        assert!(v.get("A").is_none());
        assert_eq!(v["B"], 2.0);
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        assert!(Record::new("f", "c", None).is_empty());
    }
}
