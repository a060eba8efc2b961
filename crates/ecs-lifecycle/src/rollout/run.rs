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
use crate::error::{AwsError, Error};
use crate::model::Refresh;
use crate::model::{InstanceStatus, RefreshPreferences, RefreshStatus};
use crate::ports::{AutoScaling, Ec2, Ecs, Publisher, Ssm};
use crate::report::{Event, Notification, Reporter};
use crate::rollout::decide::{
    ClusterView, GroupView, Intent, Limits, Outcome, Phase, REPORTED_TAG, Step, TagChange,
    ami_from_parameter, decide, is_capacity_failure, judge, max_healthy_percentage,
    newer_than_refused, replaced, tag_changes, version_description, vet,
};
use crate::rollout::trigger::{Trigger, ignored, parse_trigger};
use crate::time::{Clock, millis};

pub const FUNCTION_NAME: &str = "ami-rollout";

/// The `alarm` field of the line logged when a rollout is rolled back, or its
/// restore fails (a Logs Insights filter for people; the template's alarms
/// watch the metrics `RolloutsRolledBack` and `RestoresFailed`).
pub const ROLLBACK_ALARM: &str = "ami-rollout-rollback";

/// Time kept before the invocation deadline (a last look takes a few seconds).
const DEADLINE_MARGIN: Duration = Duration::from_secs(20);

/// Passes without sleeping in a row (after a step that changed something).
const MAX_QUICK_PASSES: u32 = 5;

/// One group's look and decision, as reported, with the tag writes that go
/// with the step (before and after its own call).
#[derive(Debug, Clone)]
struct GroupReport {
    view: GroupView,
    target: String,
    step: Step,
    tags_before: Vec<TagChange>,
    tags_after: Vec<TagChange>,
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
            "refused_ami": self.view.refused.as_ref().map(|r| match r {
                Ok(r) => json!({"ami": r.ami, "at": r.at}),
                Err(why) => json!({"malformed": why}),
            }),
            "baseline": self.view.baseline.as_ref().map(|b| b.value()),
        })
    }
}

/// The ami-rollout workflow.
#[derive(Debug)]
pub struct Roller<A, C, E, S, P = Silent> {
    pub(super) autoscaling: A,
    pub(super) ec2: C,
    pub(super) ecs: E,
    pub(super) ssm: S,
    pub(super) config: RolloutConfig,
    publisher: P,
    reporter: Reporter,
}

/// A publisher for a roller without SNS: it never publishes (its reporter
/// has no topic to publish to).
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl crate::ports::Publisher for Silent {
    async fn publish_message(&self, _: &str, _: &str, _: &str) -> Result<String, AwsError> {
        Err(silent())
    }

    async fn publish_notification(
        &self,
        _: &str,
        _: &str,
        _: &str,
        _: &[(&str, &str)],
    ) -> Result<String, AwsError> {
        Err(silent())
    }
}

fn silent() -> AwsError {
    AwsError {
        service: "sns",
        operation: "Publish",
        code: None,
        message: "ami-rollout was built without an SNS client".into(),
    }
}

impl<A: AutoScaling, C: Ec2, E: Ecs, S: Ssm> Roller<A, C, E, S, Silent> {
    pub fn new(autoscaling: A, ec2: C, ecs: E, ssm: S, config: RolloutConfig) -> Self {
        let reporter = Reporter::new(FUNCTION_NAME, config.common.notification_topic.clone());
        Roller {
            autoscaling,
            ec2,
            ecs,
            ssm,
            config,
            publisher: Silent,
            reporter,
        }
    }
}

impl<A: AutoScaling, C: Ec2, E: Ecs, S: Ssm, P: Publisher> Roller<A, C, E, S, P> {
    /// Publishes notifications through `publisher` (to NOTIFICATION_TOPIC_ARN).
    pub fn with_publisher<Q: Publisher>(self, publisher: Q) -> Roller<A, C, E, S, Q> {
        Roller {
            autoscaling: self.autoscaling,
            ec2: self.ec2,
            ecs: self.ecs,
            ssm: self.ssm,
            config: self.config,
            publisher,
            reporter: self.reporter,
        }
    }

    /// Where metrics and notifications go (stdout and NOTIFICATION_TOPIC_ARN by default).
    pub fn with_reporter(mut self, reporter: Reporter) -> Self {
        self.reporter = reporter;
        self
    }

    /// Handles one Lambda event.
    pub async fn handle(&self, event: &Value, deadline_ms: u64) -> Result<Value, Error> {
        let trigger = parse_trigger(event, &self.config.ami_parameter)
            .inspect_err(|e| error!(error = %e, "rejected event"))?;
        let (intent, ami) = match trigger {
            Trigger::Ignore(reason) => return Ok(ignored(&reason)),
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
        let mut refusal: Option<Error> = None;
        loop {
            let (reports, changed) = self.pass(&intent, &requested, acting, &clock).await?;
            // An AMI refused by its checks is an error for the invocation
            // (after every other group has had its step), unless it only
            // asked for the status.
            if refusal.is_none() && !matches!(intent, Intent::Status) {
                refusal = reports.iter().find_map(|r| match &r.step {
                    Step::Refused { check, seen, why } => Some(Error::AmiRefused {
                        ami: r.target.clone(),
                        check: check.clone(),
                        seen: seen.clone(),
                        why: why.clone(),
                    }),
                    _ => None,
                });
            }
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
                if let Some(e) = refusal {
                    return Err(e);
                }
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
                if let Some(e) = refusal {
                    return Err(e);
                }
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
        let mut container_instances = Vec::new();
        for cluster in &clusters {
            container_instances.extend(self.ecs.container_instances(cluster).await?);
        }
        let registered: HashMap<String, (InstanceStatus, bool)> = container_instances
            .iter()
            .map(|ci| {
                (
                    ci.ec2_instance_id.clone(),
                    (ci.status.clone(), ci.agent_connected),
                )
            })
            .collect();
        let (mut cluster_view, service_refs) = self.services(&clusters).await?;

        let mut first_error = None;
        let mut views = Vec::new();
        for group in &self.config.groups {
            match self
                .observe(group, intent, requested, &registered)
                .instrument(info_span!("group", asg = %group))
                .await
            {
                Ok(v) => views.push(v),
                Err(e) => {
                    error!(asg = %group, error = %e, "could not look at the group");
                    first_error.get_or_insert(e);
                }
            }
        }
        // Where the unsteady services' tasks are, only when a rollout is
        // being judged (its refresh runs, or has just succeeded), and not for
        // a service that every such rollout's baseline excuses anyway.
        let judged: Vec<&GroupView> = views.iter().map(|(v, _)| v).filter(|v| judged(v)).collect();
        if !judged.is_empty() {
            let excused = |name: &str| {
                judged
                    .iter()
                    .all(|v| v.baseline.as_ref().is_some_and(|b| b.contains(name)))
            };
            self.place_services(
                &mut cluster_view,
                &service_refs,
                &container_instances,
                excused,
            )
            .await?;
        }

        let now_ms = clock.now_ms();
        let limits = Limits {
            stability_timeout_ms: millis(self.config.stability_timeout),
            registration_timeout_ms: millis(self.config.registration_timeout),
            window_opens_ms: self.config.window.as_ref().and_then(|w| w.opens_at(now_ms)),
        };
        let mut reports = Vec::new();
        let mut changed = false;
        for (view, target) in views {
            let span = info_span!("group", asg = %view.name);
            let result = async {
                let report = self
                    .step_for(
                        view,
                        target,
                        &cluster_view,
                        intent,
                        requested,
                        limits,
                        now_ms,
                    )
                    .await?;
                let did = if acting {
                    self.act(&report, &cluster_view).await?
                } else {
                    log_step(&report, &cluster_view, false);
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
                    error!(error = %e, "could not step the group");
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok((reports, changed)),
        }
    }

    /// The decision for one group, with the AMI checked when the step would
    /// start changing things for a rollout.
    #[allow(clippy::too_many_arguments)]
    async fn step_for(
        &self,
        view: GroupView,
        target: String,
        cluster: &ClusterView,
        intent: &Intent,
        requested: &str,
        limits: Limits,
        now_ms: u64,
    ) -> Result<GroupReport, Error> {
        let (mut target, mut intent) = (target, intent.clone());
        let mut step = decide(&view, cluster, &intent, &target, limits, now_ms);
        // With a maintenance window, a watch inside it with nothing under way
        // starts what the scheduled check would: a rollout the window held
        // back starts when it opens.
        if step == Step::Idle
            && intent == Intent::Watch
            && self.config.window.is_some()
            && limits.window_opens_ms.is_none()
        {
            intent = Intent::Start { force: false };
            target = requested.to_owned();
            step = decide(&view, cluster, &intent, &target, limits, now_ms);
        }
        let mut newer = false;
        if step.starts_rollout() {
            let facts = self.image_facts(&view, &target).await?;
            if let Err(refused) = vet(&view, &target, &facts, &self.config.allowed_ami_owners) {
                step = refused;
            }
            newer = newer_than_refused(&view, &target, &facts);
        }
        let (tags_before, tags_after) =
            tag_changes(&view, cluster, &intent, &step, &target, newer, now_ms);
        Ok(GroupReport {
            view,
            target,
            step,
            tags_before,
            tags_after,
        })
    }

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

    /// Takes the step; returns whether the next look should come at once.
    async fn act(&self, report: &GroupReport, cluster: &ClusterView) -> Result<bool, Error> {
        let view = &report.view;
        let group = view.name.as_str();
        log_step(report, cluster, true);
        let template_id = view
            .template
            .as_ref()
            .map(|t| t.id.clone())
            .unwrap_or_default();
        self.write_tags(group, &report.tags_before).await?;
        let rollout = matches!(report.step, Step::StartRefresh { .. });
        let preferences = RefreshPreferences {
            min_healthy_percentage: 100,
            max_healthy_percentage: max_healthy_percentage(
                self.config.batch_size,
                view.desired_capacity,
            ),
            auto_rollback: rollout,
            // A restore goes back as fast as it can, and must not fail on the
            // alarm that made it necessary.
            checkpoint_percentages: if rollout {
                self.config.checkpoint_percentages.clone()
            } else {
                Vec::new()
            },
            checkpoint_delay_s: Some(
                i32::try_from(self.config.checkpoint_delay.as_secs()).unwrap_or(i32::MAX),
            ),
            alarms: if rollout {
                self.config.alarms.clone()
            } else {
                Vec::new()
            },
        };
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
        self.config.common.clusters.single().unwrap_or_default()
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
    /// [`REPORTED_TAG`] names the refresh whose outcome was reported, so every
    /// later look at the same outcome says nothing.
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
        self.write_tags(group, &[TagChange::set(REPORTED_TAG, refresh.id.clone())])
            .await
    }
}

/// Whether a look at the group judges the cluster's steadiness: its newest
/// refresh is ours and running, or has just succeeded.
fn judged(view: &GroupView) -> bool {
    view.refreshes.first().is_some_and(|r| {
        r.ours.is_some() && (r.status.is_rolling() || r.status == RefreshStatus::Successful)
    })
}

/// One line per group and look: what was seen and what is done about it.
fn log_step(report: &GroupReport, cluster: &ClusterView, acting: bool) {
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
        Step::Done {
            outcome: Outcome::RestoreFailed { reason },
        } => error!(
            alarm = ROLLBACK_ALARM,
            decision = "restore_failed",
            reason = %reason,
            target_ami,
            refresh_id,
            refresh_status,
            on_target,
            total,
            "the refresh back to the previous version failed: instances may still run the refused AMI; an operator must look (\"action\": \"rollback\" tries again)"
        ),
        Step::Refused { check, seen, why } => error!(
            decision = "refused_ami",
            check = %check,
            seen = %seen,
            why = %why,
            target_ami,
            "AMI refused before any change"
        ),
        Step::OutsideWindow { opens } => info!(
            decision = "outside_window",
            opens = %opens,
            target_ami,
            on_target,
            total,
            "a new rollout waits for the maintenance window (ROLLOUT_WINDOW)"
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
        } => {
            // What is not blamed on the rollout, and launches Auto Scaling is
            // retrying for capacity, are said, not acted on.
            let excused = judge(view, cluster, target_ami).excused;
            if !excused.is_empty() {
                info!(
                    decision = "not_blamed",
                    services = ?excused,
                    target_ami,
                    "unsteady services that do not count against the rollout"
                );
            }
            let capacity: Vec<&String> = view
                .refused_launches
                .iter()
                .filter(|l| is_capacity_failure(l))
                .collect();
            if !capacity.is_empty() {
                warn!(
                    decision = "capacity_wait",
                    launches = ?capacity,
                    target_ami,
                    "EC2 had no capacity for some launches: Auto Scaling retries them; not blamed on the AMI"
                );
            }
            info!(
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
            )
        }
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
