//! The ami-rollout function: reads its trigger, then looks at every group and
//! its cluster, takes the one next step [`crate::rollout::decide`] gives, and
//! looks again, every `POLL_INTERVAL_SECONDS`, until the rollouts are settled or
//! the invocation is about to end. An EventBridge schedule starts the next
//! invocation (`{"action": "watch"}`), so nothing republishes to itself and
//! Lambda's recursive-loop detection never applies; a crash or timeout loses
//! at most one schedule period, and every step is safe to take twice (Auto
//! Scaling refuses a second refresh, the launch template version is found again
//! by its description and created with an idempotency token).

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::config::{ClusterScope, RolloutConfig};
use crate::error::Error;
use crate::model::Refresh;
use crate::model::{InstanceStatus, RefreshPreferences};
use crate::ports::{AutoScaling, Ec2, Ecs, Ssm};
use crate::rollout::decide::{
    ClusterView, GroupView, Intent, Limits, Outcome, Phase, Step, UNSTEADY_TAG, ami_from_parameter,
    decide, max_healthy_percentage, replaced, version_description,
};
use crate::rollout::trigger::{Trigger, parse_trigger};
use crate::time::{Clock, millis};

/// The `alarm` field of the line logged when a rollout is rolled back (the SAM
/// template's metric filter matches it).
pub const ROLLBACK_ALARM: &str = "ami-rollout-rollback";

/// Time kept before the invocation deadline (a last look takes a few seconds).
const DEADLINE_MARGIN: Duration = Duration::from_secs(20);

/// Passes without sleeping in a row (after a step that changed something).
const MAX_QUICK_PASSES: u32 = 5;

/// One group's look and decision, as reported.
#[derive(Debug, Clone)]
struct GroupReport {
    view: GroupView,
    target: String,
    step: Step,
}

impl GroupReport {
    fn to_json(&self) -> Value {
        let (on_target, total) = replaced(&self.view, &self.target);
        let refresh = self.view.refreshes.first();
        json!({
            "group": self.view.name,
            "target_ami": self.target,
            "next": self.step,
            "instances_on_target": on_target,
            "instances": total,
            "refresh": refresh.map(|r| json!({
                "id": r.id,
                "status": r.status,
                "percentage": r.percentage,
                "instances_to_update": r.instances_to_update,
                "ours": r.ours.is_some(),
            })),
            "unsteady_since_ms": self.view.unsteady_since_ms,
        })
    }
}

/// The ami-rollout workflow.
#[derive(Debug)]
pub struct Roller<A, C, E, S> {
    pub(super) autoscaling: A,
    pub(super) ec2: C,
    pub(super) ecs: E,
    pub(super) ssm: S,
    pub(super) config: RolloutConfig,
}

impl<A: AutoScaling, C: Ec2, E: Ecs, S: Ssm> Roller<A, C, E, S> {
    pub fn new(autoscaling: A, ec2: C, ecs: E, ssm: S, config: RolloutConfig) -> Self {
        Roller {
            autoscaling,
            ec2,
            ecs,
            ssm,
            config,
        }
    }

    /// Handles one Lambda event.
    pub async fn handle(&self, event: &Value, deadline_ms: u64) -> Result<Value, Error> {
        let trigger = parse_trigger(event, &self.config.ami_parameter)
            .inspect_err(|e| error!(error = %e, "rejected event"))?;
        let (intent, ami) = match trigger {
            Trigger::Ignore(reason) => {
                info!(reason = %reason, "ignored event");
                return Ok(json!({ "outcome": "ignored", "reason": reason }));
            }
            Trigger::Run { intent, ami } => (intent, ami),
        };
        let span = info_span!("rollout", intent = ?intent, clusters = ?self.config.common.clusters);
        self.run(intent, ami, deadline_ms)
            .instrument(span)
            .await
            .inspect_err(|e| error!(error = %e, kind = e.kind(), "rollout pass failed"))
    }

    async fn run(
        &self,
        intent: Intent,
        ami: Option<String>,
        deadline_ms: u64,
    ) -> Result<Value, Error> {
        let clock = Clock::start();
        let requested = match ami {
            Some(ami) => ami,
            None => self.parameter_ami().await?,
        };
        let acting = !matches!(intent, Intent::Status) && !self.config.common.dry_run;
        let mut quick_passes = 0;
        // The steps that changed something, in order, for the answer.
        let mut actions: Vec<Value> = Vec::new();
        loop {
            let (reports, changed) = self.pass(&intent, &requested, acting, &clock).await?;
            if acting {
                actions.extend(
                    reports
                        .iter()
                        .filter(|r| r.step.changes_something())
                        .map(|r| json!({ "group": r.view.name, "step": r.step })),
                );
            }
            let settled = reports.iter().all(|r| r.step.is_settled());
            let groups: Vec<Value> = reports.iter().map(GroupReport::to_json).collect();
            let outcome = if matches!(intent, Intent::Status) {
                Some("status")
            } else if self.config.common.dry_run {
                Some("dry_run")
            } else if settled {
                Some("settled")
            } else {
                None
            };
            if let Some(outcome) = outcome {
                return Ok(json!({
                    "outcome": outcome,
                    "requested_ami": requested,
                    "groups": groups,
                    "actions": actions,
                }));
            }
            if changed && quick_passes < MAX_QUICK_PASSES {
                quick_passes += 1;
                continue;
            }
            quick_passes = 0;
            let poll = self.config.common.poll_interval;
            let left = deadline_ms.saturating_sub(clock.now_ms());
            if left < millis(poll + DEADLINE_MARGIN) {
                info!("still rolling; the schedule's next watch carries on");
                return Ok(json!({
                    "outcome": "watching",
                    "requested_ami": requested,
                    "groups": groups,
                    "actions": actions,
                }));
            }
            tokio::time::sleep(poll).await;
        }
    }

    /// The AMI the parameter names now.
    async fn parameter_ami(&self) -> Result<String, Error> {
        let name = &self.config.ami_parameter;
        let value = self
            .ssm
            .parameter(name)
            .await?
            .ok_or_else(|| Error::AmiParameter {
                name: name.clone(),
                problem: "does not exist".into(),
            })?;
        ami_from_parameter(&value).map_err(|problem| Error::AmiParameter {
            name: name.clone(),
            problem,
        })
    }

    /// One look at every group, and the step each needs (taken when `acting`).
    /// Returns the reports and whether a step changed something that the next
    /// look should see at once.
    async fn pass(
        &self,
        intent: &Intent,
        requested: &str,
        acting: bool,
        clock: &Clock,
    ) -> Result<(Vec<GroupReport>, bool), Error> {
        let clusters = match &self.config.common.clusters {
            ClusterScope::Named(names) => names.clone(),
            ClusterScope::All => self.ecs.cluster_arns().await?,
        };
        let mut registered: HashMap<String, (InstanceStatus, bool)> = HashMap::new();
        let mut unsteady_services = Vec::new();
        for cluster in &clusters {
            registered.extend(
                self.ecs
                    .container_instances(cluster)
                    .await?
                    .into_iter()
                    .map(|ci| (ci.ec2_instance_id, (ci.status, ci.agent_connected))),
            );
            let service_arns = self.ecs.service_arns(cluster).await?;
            let in_cluster = |name: &str| {
                if clusters.len() > 1 {
                    format!("{cluster}/{name}")
                } else {
                    name.to_owned()
                }
            };
            unsteady_services.extend(
                self.ecs
                    .services(cluster, &service_arns)
                    .await?
                    .into_iter()
                    .filter(|s| s.running_count != s.desired_count || s.deployments > 1)
                    .map(|s| {
                        format!(
                            "{} ({}/{} running, {} deployments)",
                            in_cluster(&s.name),
                            s.running_count,
                            s.desired_count,
                            s.deployments
                        )
                    }),
            );
        }
        let cluster_view = ClusterView { unsteady_services };
        let limits = Limits {
            stability_timeout_ms: millis(self.config.stability_timeout),
            registration_timeout_ms: millis(self.config.registration_timeout),
        };

        let mut reports = Vec::new();
        let mut changed = false;
        let mut first_error = None;
        for group in &self.config.groups {
            let span = info_span!("group", asg = %group);
            let result = async {
                let (view, target) = self.observe(group, intent, requested, &registered).await?;
                let step = decide(
                    &view,
                    &cluster_view,
                    intent,
                    &target,
                    limits,
                    clock.now_ms(),
                );
                let report = GroupReport { view, target, step };
                let did = if acting {
                    self.act(&report).await?
                } else {
                    log_step(&report, false);
                    false
                };
                Ok::<_, Error>((report, did))
            }
            .instrument(span)
            .await;
            match result {
                Ok((report, did)) => {
                    changed |= did;
                    reports.push(report);
                }
                Err(e) => {
                    error!(asg = %group, error = %e, "could not look at or step the group");
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok((reports, changed)),
        }
    }

    /// Takes the step; returns whether the next look should come at once.
    async fn act(&self, report: &GroupReport) -> Result<bool, Error> {
        let view = &report.view;
        let group = view.name.as_str();
        log_step(report, true);
        let template_id = view
            .template
            .as_ref()
            .map(|t| t.id.clone())
            .unwrap_or_default();
        let tag_wanted = match &report.step {
            Step::Wait { unsteady_since, .. } => *unsteady_since,
            _ => None,
        };
        if tag_wanted != view.unsteady_since_ms {
            let value = tag_wanted.map(|ms| ms.to_string());
            self.autoscaling
                .set_group_tag(group, UNSTEADY_TAG, value.as_deref())
                .await?;
        }
        let preferences = RefreshPreferences {
            min_healthy_percentage: 100,
            max_healthy_percentage: max_healthy_percentage(
                self.config.batch_size,
                view.desired_capacity,
            ),
            auto_rollback: matches!(report.step, Step::StartRefresh { .. }),
        };
        match &report.step {
            Step::Pin { version } => {
                self.autoscaling
                    .pin_template(group, &template_id, *version)
                    .await?;
                Ok(true)
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
                Ok(true)
            }
            Step::StartRefresh { version } | Step::Restore { version, .. } => {
                match self
                    .autoscaling
                    .start_refresh(group, &template_id, *version, preferences)
                    .await?
                {
                    Some(id) => info!(refresh_id = %id, version, "started instance refresh"),
                    None => warn!(
                        version,
                        "Auto Scaling says a refresh is already in progress; watching it"
                    ),
                }
                Ok(true)
            }
            Step::Rollback { .. } => {
                match self.autoscaling.rollback_refresh(group).await? {
                    Some(id) => info!(refresh_id = %id, "rolling back instance refresh"),
                    None => warn!("no refresh in progress to roll back (it ended meanwhile)"),
                }
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

/// One line per group and look: what was seen and what is done about it.
fn log_step(report: &GroupReport, acting: bool) {
    let view = &report.view;
    let (on_target, total) = replaced(view, &report.target);
    let percent = (on_target * 100).checked_div(total).unwrap_or(100);
    let refresh = view.refreshes.first();
    let refresh_id = refresh.map_or("", |r: &Refresh| r.id.as_str());
    let refresh_status = refresh.map(|r| r.status.to_string()).unwrap_or_default();
    let target_ami = report.target.as_str();
    let mode = if acting { "act" } else { "report" };
    match &report.step {
        Step::Rollback { reason } | Step::Restore { reason, .. } => error!(
            alarm = ROLLBACK_ALARM,
            decision = "rollback",
            reason = %reason,
            target_ami,
            refresh_id,
            refresh_status,
            on_target,
            total,
            mode,
            "rolling back the AMI rollout"
        ),
        Step::Done {
            outcome: Outcome::RollbackFailed { reason },
        } => error!(
            alarm = ROLLBACK_ALARM,
            decision = "rollback_failed",
            reason = %reason,
            target_ami,
            refresh_id,
            "Auto Scaling could not roll the refresh back: an operator must look"
        ),
        Step::Done { outcome } => info!(
            decision = "done",
            outcome = ?outcome,
            target_ami,
            refresh_id,
            on_target,
            total,
            "rollout over"
        ),
        Step::Wait {
            phase,
            unsteady_since,
        } => info!(
            decision = "wait",
            phase = ?phase,
            target_ami,
            refresh_id,
            refresh_status,
            percentage = refresh.and_then(|r| r.percentage),
            instances_to_update = refresh.and_then(|r| r.instances_to_update),
            on_target,
            total,
            percent,
            unsteady_since_ms = unsteady_since,
            "rollout in progress: {on_target} of {total} instances on {target_ami}{}",
            if *phase == Phase::Foreign { " (a refresh not started by ami-rollout is running)" } else { "" }
        ),
        Step::Blocked { why } | Step::Unsupported { why } => warn!(
            decision = "refused",
            target_ami,
            why = %why,
            "not rolling this group"
        ),
        Step::Idle => debug!(target_ami, on_target, total, "no rollout in progress"),
        step => info!(
            decision = "step",
            step = ?step,
            target_ami,
            on_target,
            total,
            mode,
            "rollout step"
        ),
    }
}
