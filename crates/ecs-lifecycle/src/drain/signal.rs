//! Early warnings that an instance will go away, before Auto Scaling knows:
//! EC2's Spot interruption warning (two minutes ahead) and rebalance
//! recommendation, and AWS Health's scheduled retirement and maintenance (days
//! ahead). No lifecycle action waits on them: terminate-drain acts at once and
//! answers, and the terminate hook, when it comes, finds the drain under way.
//!
//! - `drain`: set the container instance DRAINING now (ECS starts moving service
//!   tasks) and, with STANDALONE_TASKS=stop, stop its standalone tasks. The
//!   drain is marked as early ([`crate::model::EARLY_DRAIN_ATTRIBUTE`]), so
//!   that it is undone if the instance comes back ([`super::undo`]).
//! - `replace` (scheduled changes): mark the instance unhealthy in its group, so
//!   Auto Scaling replaces it through the terminate hook, drained as usual, long
//!   before the maintenance date.

use serde_json::{Value, json};
use tracing::{info, warn};

use crate::config::{SignalAction, StandalonePolicy};
use crate::drain::decide::Role;
use crate::drain::events::Signal;
use crate::drain::run::{DrainMemo, Drainer};
use crate::drain::undo;
use crate::error::Error;
use crate::hook::lookup::find_container_instance;
use crate::model::{
    ContainerInstance, EARLY_DRAIN_ATTRIBUTE, EarlyDrain, InstanceId, InstanceStatus, Transition,
};
use crate::ports::{AutoScaling, Ecs, Publisher, StopResult};
use crate::time::{epoch_ms, epoch_ms_of, rfc3339};

/// Two minutes: EC2's notice ahead of a Spot interruption.
const SPOT_NOTICE_MS: u64 = 120_000;

impl<E: Ecs, A: AutoScaling, P: Publisher> Drainer<E, A, P> {
    /// Handles one signal; the record's outcome lists what was done per instance.
    pub(super) async fn on_signal(&self, signal: Signal) -> Result<Value, Error> {
        let cfg = &self.config;
        let (kind, action, instances, detail) = match &signal {
            Signal::SpotInterruption {
                instance_id,
                instance_action,
                time,
            } => {
                let interruption_at = time
                    .as_deref()
                    .and_then(epoch_ms_of)
                    .map(|t| rfc3339(t.saturating_add(SPOT_NOTICE_MS)));
                (
                    "spot_interruption",
                    cfg.spot_interruption,
                    vec![instance_id.clone()],
                    json!({"instance_action": instance_action, "interruption_at": interruption_at}),
                )
            }
            Signal::Rebalance { instance_id } => (
                "rebalance_recommendation",
                cfg.rebalance,
                vec![instance_id.clone()],
                json!({}),
            ),
            Signal::ScheduledChange {
                event_type_code,
                start_time,
                end_time,
                instance_ids,
            } => (
                "scheduled_change",
                cfg.scheduled_event,
                instance_ids.clone(),
                json!({"event_type_code": event_type_code, "start_time": start_time, "end_time": end_time}),
            ),
        };
        if instances.is_empty() {
            info!(
                signal = kind,
                %detail,
                "the event names no EC2 instance (a Dedicated Host, a volume): nothing to do"
            );
        }
        let marker = undo::marker_for(&signal, epoch_ms());
        let mut results = Vec::new();
        for instance_id in &instances {
            let result = match action {
                SignalAction::Ignore => {
                    info!(signal = kind, %instance_id, "ignored by configuration");
                    json!({"instance_id": instance_id, "done": "ignored"})
                }
                SignalAction::Drain => {
                    self.drain_early(kind, instance_id, &detail, &marker)
                        .await?
                }
                SignalAction::Replace => self.replace(kind, instance_id, &detail).await?,
            };
            results.push(result);
        }
        Ok(json!({"outcome": "signal", "signal": kind, "detail": detail, "instances": results}))
    }

    /// DRAINING now, marked as an early drain, and the standalone policy applied.
    /// The marker is written first: a drain this function started is always
    /// one it can undo (a failure in between leaves an ACTIVE instance with a
    /// marker, which the next look removes). An instance DRAINING already is
    /// someone else's drain (a terminate hook's, an operator's) and gets no
    /// marker, unless an earlier early drain marked it: that marker then takes
    /// the later warning's reason and the later of the two windows.
    async fn drain_early(
        &self,
        kind: &str,
        instance_id: &InstanceId,
        detail: &Value,
        marker: &EarlyDrain,
    ) -> Result<Value, Error> {
        let Some(ci) =
            find_container_instance(&self.ecs, &self.config.common.clusters, instance_id).await?
        else {
            info!(signal = kind, %instance_id, "not registered in the clusters searched; nothing to drain");
            return Ok(json!({"instance_id": instance_id, "done": "not_registered"}));
        };
        if self.config.common.dry_run {
            info!(signal = kind, %instance_id, status = %ci.status, "DRY_RUN: would drain early");
            return Ok(json!({"instance_id": instance_id, "done": "dry_run"}));
        }
        let ours = ci.drain_hook.is_none();
        match (&ci.status, &ci.early_drain) {
            (InstanceStatus::Active, _) => {
                self.mark_early(&ci, marker).await?;
                self.set_draining(
                    &ci,
                    None,
                    instance_id,
                    json!({"reason": kind, "early_drain": marker.reason}),
                )
                .await?;
            }
            (InstanceStatus::Draining, Some(earlier)) if ours => {
                let later = EarlyDrain {
                    until_ms: marker.until_ms.max(earlier.until_ms),
                    ..marker.clone()
                };
                self.mark_early(&ci, &later).await?;
            }
            _ => {}
        }
        // Urgent: it bypasses MAX_CONCURRENT_DRAINS, but counts against it.
        self.count_urgent(&ci.cluster, instance_id).await;
        let mut stopped = 0;
        if self.config.standalone == StandalonePolicy::Stop {
            let tasks = self.live_tasks(&mut DrainMemo::default(), &ci).await?;
            let reason = format!("terminate-drain: {kind} for instance {instance_id}");
            for t in tasks
                .iter()
                .filter(|t| t.role == Role::Standalone && !t.task.is_stopping())
            {
                match self.ecs.stop(&ci.cluster, &t.task.arn, &reason).await? {
                    StopResult::Stopped => stopped += 1,
                    StopResult::NotFound(_) => {}
                }
            }
        }
        warn!(
            signal = kind,
            %instance_id,
            cluster = %ci.cluster,
            container_instance = %ci.arn,
            was = %ci.status,
            standalone_stopped = stopped,
            detail = %detail,
            "the instance will go away: set DRAINING ahead of Auto Scaling"
        );
        Ok(json!({
            "instance_id": instance_id,
            "done": "draining",
            "container_instance": ci.arn,
            "standalone_stopped": stopped,
        }))
    }

    /// Writes the early-drain marker on the container instance.
    async fn mark_early(&self, ci: &ContainerInstance, marker: &EarlyDrain) -> Result<(), Error> {
        self.ecs
            .set_attributes(
                &ci.cluster,
                &ci.arn,
                &[(EARLY_DRAIN_ATTRIBUTE, &marker.to_value())],
            )
            .await?;
        Ok(())
    }

    /// Whether `asg` is a group of this deployment: it has a terminate hook that
    /// notifies CONTINUATION_TOPIC_ARN (any terminate hook when that is unset).
    async fn manages(&self, asg: &str) -> Result<bool, Error> {
        let topic = self.config.common.continuation_topic.as_deref();
        Ok(self
            .hold
            .autoscaling
            .lifecycle_hooks(asg)
            .await?
            .iter()
            .any(|h| {
                h.transition == Some(Transition::Terminating)
                    && topic.is_none_or(|t| h.notification_target.as_deref() == Some(t))
            }))
    }

    /// Unhealthy in its group: Auto Scaling replaces it through the terminate hook.
    async fn replace(
        &self,
        kind: &str,
        instance_id: &InstanceId,
        detail: &Value,
    ) -> Result<Value, Error> {
        let Some(member) = self.hold.autoscaling.instance(instance_id).await? else {
            info!(signal = kind, %instance_id, "in no Auto Scaling group; nothing to replace");
            return Ok(json!({"instance_id": instance_id, "done": "not_in_a_group"}));
        };
        if member.lifecycle_state.is_leaving() {
            info!(signal = kind, %instance_id, lifecycle_state = %member.lifecycle_state, "already leaving its group");
            return Ok(json!({"instance_id": instance_id, "done": "already_leaving"}));
        }
        // Only the fleet's own instances: registered in the clusters of CLUSTER_NAME.
        if find_container_instance(&self.ecs, &self.config.common.clusters, instance_id)
            .await?
            .is_none()
        {
            info!(signal = kind, %instance_id, asg = %member.asg, "not registered in the clusters searched; left alone");
            return Ok(json!({"instance_id": instance_id, "done": "not_registered"}));
        }
        // Only the groups of this deployment: a terminate hook that notifies this
        // function's topic (the template puts one on each of its groups). A group
        // of another stack in the same cluster is that stack's to replace; this
        // role may not mark its instances unhealthy.
        if !self.manages(&member.asg).await? {
            info!(signal = kind, %instance_id, asg = %member.asg, "its group has no terminate hook to this function's topic; left to the stack that manages it");
            return Ok(
                json!({"instance_id": instance_id, "done": "not_managed", "asg": member.asg}),
            );
        }
        if self.config.common.dry_run {
            info!(signal = kind, %instance_id, "DRY_RUN: would mark it unhealthy");
            return Ok(json!({"instance_id": instance_id, "done": "dry_run"}));
        }
        self.hold.autoscaling.mark_unhealthy(instance_id).await?;
        warn!(
            signal = kind,
            %instance_id,
            asg = %member.asg,
            detail = %detail,
            "scheduled maintenance: marked the instance unhealthy; Auto Scaling replaces it through the terminate hook"
        );
        Ok(json!({"instance_id": instance_id, "done": "marked_unhealthy", "asg": member.asg}))
    }
}
