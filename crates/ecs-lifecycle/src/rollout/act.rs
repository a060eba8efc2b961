//! Taking a group's step: its AWS call between the tag writes that go with it
//! ([`crate::rollout::tags::tag_changes`]), then the metrics and notification
//! of a rollout that started or ended.

use serde_json::json;
use tracing::{info, warn};

use crate::error::Error;
use crate::model::{Cluster, RefreshPreferences};
use crate::ports::{AutoScaling, Ec2, Ecs, Publisher, Ssm};
use crate::report::{Event, Notification};
use crate::rollout::log::log_step;
use crate::rollout::run::{GroupReport, Roller};
use crate::rollout::step::{Outcome, Step};
use crate::rollout::tags::{REPORTED_TAG, TagChange, version_description};
use crate::rollout::view::{ClusterView, replaced};

/// Auto Scaling's MaxHealthyPercentage for `batch` instances at a time with
/// MinHealthyPercentage 100 (launch before terminate, full capacity kept).
pub fn max_healthy_percentage(batch: u32, desired: i32) -> i32 {
    let desired = u32::try_from(desired.max(1)).unwrap_or(1);
    let extra = (batch.saturating_mul(100) / desired).clamp(1, 100);
    100 + i32::try_from(extra).unwrap_or(100)
}

impl<A: AutoScaling, C: Ec2, E: Ecs, S: Ssm, P: Publisher> Roller<A, C, E, S, P> {
    async fn write_tags(&self, group: &str, changes: &[TagChange]) -> Result<(), Error> {
        for c in changes {
            self.autoscaling
                .set_group_tag(group, c.key, c.value.as_deref())
                .await?;
            match &c.value {
                Some(v) => info!(tag = c.key, value = %v, "set the group's tag {}", c.key),
                None => info!(tag = c.key, "removed the group's tag {}", c.key),
            }
        }
        Ok(())
    }

    /// The preferences of a refresh to `desired` instances: a rollout's
    /// (`rollout`) with Auto Scaling's rollback, checkpoints and alarms; a
    /// restore goes back as fast as it can, and must not fail on the alarm
    /// that made it necessary.
    fn preferences(&self, desired: i32, rollout: bool) -> RefreshPreferences {
        let config = &self.config;
        RefreshPreferences {
            min_healthy_percentage: 100,
            max_healthy_percentage: max_healthy_percentage(config.batch_size, desired),
            auto_rollback: rollout,
            checkpoint_percentages: if rollout {
                config.checkpoint_percentages.clone()
            } else {
                Vec::new()
            },
            checkpoint_delay_s: Some(
                i32::try_from(config.checkpoint_delay.as_secs()).unwrap_or(i32::MAX),
            ),
            alarms: if rollout {
                config.alarms.clone()
            } else {
                Vec::new()
            },
        }
    }

    /// Takes the step; returns whether the next look should come at once.
    pub(super) async fn act(
        &self,
        report: &GroupReport,
        cluster: &ClusterView,
    ) -> Result<bool, Error> {
        let view = &report.view;
        let group = view.name.as_str();
        log_step(report, cluster, true);
        let template_id = view
            .template
            .as_ref()
            .map(|t| t.id.clone())
            .unwrap_or_default();
        self.write_tags(group, &report.tags_before).await?;
        let mut started = None;
        let quick = match &report.step {
            Step::Pin { version } => {
                self.autoscaling
                    .pin_template(group, &template_id, *version)
                    .await?;
                true
            }
            Step::CreateVersion { from } => {
                let number = self
                    .ec2
                    .create_template_version(
                        &template_id,
                        *from,
                        &report.target,
                        &version_description(&report.target, *from),
                    )
                    .await?;
                info!(version = number, "made launch template version");
                true
            }
            Step::StartRefresh { version } | Step::Restore { version, .. } => {
                let rollout = matches!(report.step, Step::StartRefresh { .. });
                let preferences = self.preferences(view.desired_capacity, rollout);
                started = self
                    .autoscaling
                    .start_refresh(group, &template_id, *version, preferences)
                    .await?;
                match &started {
                    Some(id) => info!(refresh_id = %id, version, "started instance refresh"),
                    None => warn!(
                        version,
                        "Auto Scaling says a refresh is already in progress; watching it"
                    ),
                }
                true
            }
            Step::Rollback { .. } => {
                match self.autoscaling.rollback_refresh(group).await? {
                    Some(id) => info!(refresh_id = %id, "rolling back instance refresh"),
                    None => warn!("no refresh in progress to roll back (it ended meanwhile)"),
                }
                true
            }
            _ => false,
        };
        if started.is_some() {
            self.report_start(report).await;
        }
        self.write_tags(group, &report.tags_after).await?;
        self.report_done(report).await?;
        Ok(quick)
    }

    fn cluster(&self) -> &str {
        self.config
            .common
            .clusters
            .single()
            .map_or("", Cluster::as_str)
    }

    /// A refresh this look started: a rollout (RolloutsStarted).
    async fn report_start(&self, report: &GroupReport) {
        let Step::StartRefresh { version } = &report.step else {
            return;
        };
        let group = report.view.name.as_str();
        let r = &self.reporter;
        r.emit(
            &r.record(self.cluster(), Some(group))
                .count("RolloutsStarted", 1),
        );
        r.notify(
            &self.publisher,
            Notification::new(Event::RolloutStarted, self.cluster())
                .group(group)
                .detail(json!({
                    "target_ami": report.target,
                    "launch_template_version": version,
                    "instances": report.view.members.len(),
                })),
        )
        .await;
    }

    /// The outcome of the group's newest refresh, once: the group's
    /// [`REPORTED_TAG`] names the refresh whose outcome was reported (written
    /// before the metric and the notification go out), so every later look at
    /// the same outcome says nothing.
    async fn report_done(&self, report: &GroupReport) -> Result<(), Error> {
        let Step::Done { outcome } = &report.step else {
            return Ok(());
        };
        let view = &report.view;
        let Some(refresh) = view.refreshes.first() else {
            return Ok(());
        };
        if view.reported.as_deref() == Some(refresh.id.as_str()) {
            return Ok(());
        }
        let group = view.name.as_str();
        // The tag first: if it cannot be written the outcome is not reported
        // now (the next look tries again), so Lambda's retries of a failed
        // invocation never report one outcome twice. At most once, then: a
        // crash between the tag and the report loses that one report.
        self.write_tags(group, &[TagChange::set(REPORTED_TAG, refresh.id.clone())])
            .await?;
        let (replaced, total) = replaced(view, &report.target);
        let record = self.reporter.record(self.cluster(), Some(group));
        let (record, event, reason) = match outcome {
            Outcome::Succeeded => (
                record
                    .count("RolloutsCompleted", 1)
                    .count("InstancesReplaced", replaced as u64),
                Some(Event::RolloutCompleted),
                None,
            ),
            Outcome::RolledBack { reason } => (
                record.count("RolloutsRolledBack", 1),
                Some(Event::RolloutRolledBack),
                Some(reason),
            ),
            Outcome::RestoreFailed { reason } | Outcome::RollbackFailed { reason } => (
                record.count("RestoresFailed", 1),
                Some(Event::RolloutRestoreFailed),
                Some(reason),
            ),
            Outcome::Failed { .. } => (record, None, None),
        };
        self.reporter.emit(&record);
        if let Some(event) = event {
            self.reporter
                .notify(
                    &self.publisher,
                    Notification::new(event, self.cluster())
                        .group(group)
                        .detail(json!({
                            "target_ami": report.target,
                            "refresh_id": refresh.id,
                            "refresh_status": refresh.status,
                            "on_target": replaced,
                            "instances": total,
                            "reason": reason,
                        })),
                )
                .await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_size_becomes_max_healthy_percentage() {
        assert_eq!(max_healthy_percentage(1, 3), 133);
        assert_eq!(max_healthy_percentage(1, 200), 101);
        assert_eq!(max_healthy_percentage(2, 4), 150);
        assert_eq!(max_healthy_percentage(10, 4), 200);
        assert_eq!(max_healthy_percentage(1, 0), 200);
    }
}
