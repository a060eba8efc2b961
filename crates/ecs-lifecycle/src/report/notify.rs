//! Operator notifications: one JSON message per event, on the topic
//! `NOTIFICATION_TOPIC_ARN` names. The schema is versioned (`schema_version`,
//! also a message attribute) and documented in docs/operating.md; fields are
//! only ever added within a version.

use serde::Serialize;
use serde_json::{Value, json};

use crate::time::rfc3339;

pub const SCHEMA_VERSION: u32 = 1;
pub(super) const SCHEMA_VERSION_STR: &str = "1";

/// The events an operator is told of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// terminate-drain set the container instance DRAINING.
    DrainStarted,
    /// The drain ended with the instance empty and the action completed.
    DrainCompleted,
    /// MAX_DRAIN_SECONDS ran out: completed with tasks left.
    DrainTimedOut,
    /// MAX_DRAIN_SECONDS ran out with DRAIN_TIMEOUT_ACTION=retain: completed
    /// ABANDON with the tasks still running, the instance kept for an operator.
    DrainRetained,
    /// terminate-drain set an early-drained container instance ACTIVE again:
    /// the warning that drained it did not end in termination.
    DrainUndone,
    /// launch-verify found an instance that did not join its cluster.
    OrphanFound,
    /// ami-rollout started an instance refresh to a new AMI.
    RolloutStarted,
    /// Every instance runs the new AMI and the cluster is steady.
    RolloutCompleted,
    /// The rollout was rolled back (or refreshed back to the previous version).
    RolloutRolledBack,
    /// The refresh back to the previous version failed: an operator must look.
    RolloutRestoreFailed,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::DrainStarted => "drain_started",
            Event::DrainCompleted => "drain_completed",
            Event::DrainTimedOut => "drain_timed_out",
            Event::DrainRetained => "drain_retained",
            Event::DrainUndone => "drain_undone",
            Event::OrphanFound => "orphan_found",
            Event::RolloutStarted => "rollout_started",
            Event::RolloutCompleted => "rollout_completed",
            Event::RolloutRolledBack => "rollout_rolled_back",
            Event::RolloutRestoreFailed => "rollout_restore_failed",
        }
    }

    /// Every event, for the documentation and the template's filter policies.
    pub const ALL: &[Event] = &[
        Event::DrainStarted,
        Event::DrainCompleted,
        Event::DrainTimedOut,
        Event::DrainRetained,
        Event::DrainUndone,
        Event::OrphanFound,
        Event::RolloutStarted,
        Event::RolloutCompleted,
        Event::RolloutRolledBack,
        Event::RolloutRestoreFailed,
    ];
}

/// One notification.
#[derive(Debug, Clone)]
pub struct Notification {
    pub event: Event,
    /// The cluster's name (or ARN; the message carries the name).
    pub cluster: String,
    pub group: Option<String>,
    pub instance_id: Option<String>,
    /// What happened, per event (documented with the schema).
    pub detail: Value,
}

impl Notification {
    pub fn new(event: Event, cluster: &str) -> Self {
        Notification {
            event,
            cluster: cluster.to_owned(),
            group: None,
            instance_id: None,
            detail: json!({}),
        }
    }

    pub fn group(mut self, group: &str) -> Self {
        self.group = Some(group.to_owned());
        self
    }

    pub fn instance(mut self, instance_id: &str) -> Self {
        self.instance_id = Some(instance_id.to_owned());
        self
    }

    pub fn detail(mut self, detail: Value) -> Self {
        self.detail = detail;
        self
    }

    /// The message body (schema version 1).
    pub fn message(&self, function: &str, now_ms: u64) -> Value {
        json!({
            "schema_version": SCHEMA_VERSION,
            "event": self.event.as_str(),
            "time": rfc3339(now_ms),
            "function": function,
            "cluster": super::cluster_name(&self.cluster),
            "auto_scaling_group": self.group,
            "instance_id": self.instance_id,
            "detail": self.detail,
        })
    }

    /// A short subject for e-mail subscribers (SNS allows 100 ASCII characters).
    pub fn subject(&self) -> String {
        let what = self
            .instance_id
            .as_deref()
            .or(self.group.as_deref())
            .unwrap_or_default();
        let mut s = format!(
            "ecs-lifecycle {} {} {}",
            self.event.as_str(),
            super::cluster_name(&self.cluster),
            what
        );
        s.retain(|c| c.is_ascii() && !c.is_ascii_control());
        s.truncate(100);
        s.trim_end().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_of_schema_version_1() {
        let n = Notification::new(
            Event::DrainCompleted,
            "arn:aws:ecs:us-east-1:123456789012:cluster/prod",
        )
        .group("web")
        .instance("i-0abc")
        .detail(json!({"drain_seconds": 42.5}));
        let m = n.message("stack-TerminateDrain", 1_765_000_000_000);
        assert_eq!(m["schema_version"], 1);
        assert_eq!(m["event"], "drain_completed");
        assert_eq!(m["cluster"], "prod");
        assert_eq!(m["auto_scaling_group"], "web");
        assert_eq!(m["instance_id"], "i-0abc");
        assert_eq!(m["function"], "stack-TerminateDrain");
        assert_eq!(m["detail"]["drain_seconds"], 42.5);
        assert!(m["time"].as_str().unwrap().starts_with("2025-12-06T"));
        assert_eq!(n.subject(), "ecs-lifecycle drain_completed prod i-0abc");
    }

    #[test]
    fn subject_is_short_ascii() {
        let n = Notification::new(Event::RolloutStarted, &"é".repeat(80)).group(&"g".repeat(120));
        let s = n.subject();
        assert!(s.len() <= 100 && s.is_ascii());
        let names: Vec<&str> = Event::ALL.iter().map(|e| e.as_str()).collect();
        assert_eq!(names.len(), 10);
    }
}
