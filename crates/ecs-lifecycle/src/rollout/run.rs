//! The ami-rollout function: reads its trigger, then looks at every group and
//! its cluster, takes the one next step [`crate::rollout::decide()`] gives, and
//! looks again, every `POLL_INTERVAL_SECONDS`, until the rollouts are settled or
//! the invocation is about to end. An EventBridge schedule starts the next
//! invocation (`{"action": "watch"}`), so nothing republishes to itself and
//! Lambda's recursive-loop detection never applies; a crash or timeout loses
//! at most one schedule period, and every step is safe to take twice (Auto
//! Scaling refuses a second refresh, the launch template version is found again
//! by its description and created with an idempotency token).

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};
use tracing::{Instrument, error, info, info_span, warn};

use crate::config::{ClusterScope, RolloutConfig};
use crate::error::{AwsError, Error};
use crate::hook::pacing::Pacer;
use crate::model::{ContainerInstance, InstanceId, InstanceStatus, RefreshStatus};
use crate::ports::{AutoScaling, Ec2, Ecs, Publisher, Ssm};
use crate::report::Reporter;
use crate::rollout::ami::{ami_from_parameter, newer_than_refused, vet};
use crate::rollout::decide::decide;
use crate::rollout::log::log_step;
use crate::rollout::step::{Intent, Limits, Step};
use crate::rollout::tags::{TagChange, tag_changes};
use crate::rollout::trigger::{Trigger, ignored, parse_trigger};
use crate::rollout::view::{ClusterView, GroupView, replaced};
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
pub(super) struct GroupReport {
    pub view: GroupView,
    pub target: String,
    pub step: Step,
    pub tags_before: Vec<TagChange>,
    pub tags_after: Vec<TagChange>,
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
    pub(super) publisher: P,
    pub(super) reporter: Reporter,
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
    AwsError::new(
        "sns",
        "Publish",
        None,
        "ami-rollout was built without an SNS client".into(),
    )
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
        let mut failures = 0_u32;
        loop {
            let pass_started = clock.now_ms();
            let (reports, changed) = match self.pass(&intent, &requested, acting, &clock).await {
                Ok(done) => done,
                // A throttle or a 5xx on one group: look again within the
                // invocation, after a back-off, while there is time.
                Err(e) if e.is_transient() => {
                    failures = failures.saturating_add(1);
                    let pause = Duration::from_millis(
                        Pacer::new(millis(self.config.common.poll_interval))
                            .failed(e.is_throttle()),
                    )
                    .saturating_mul(failures.min(4));
                    let left = deadline_ms.saturating_sub(clock.now_ms());
                    if left < millis(pause + DEADLINE_MARGIN) {
                        return Err(e);
                    }
                    warn!(error = %e, error_type = e.kind(), failures, retry_in_ms = millis(pause), "a pass failed; looking again after a pause");
                    tokio::time::sleep(pause).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            failures = 0;
            let pass_ms = clock.now_ms().saturating_sub(pass_started);
            // An AMI refused by its checks is an error for the invocation
            // (after every other group has had its step), unless it only
            // asked for the status.
            if refusal.is_none() && !matches!(intent, Intent::Status) {
                refusal = refused(&reports);
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
            let outcome = if matches!(intent, Intent::Status) {
                Some(Ending::Status)
            } else if self.config.common.dry_run {
                Some(Ending::DryRun)
            } else if settled {
                Some(Ending::Settled)
            } else {
                None
            };
            if let Some(outcome) = outcome {
                return answer(outcome, &requested, &reports, actions, refusal);
            }
            let poll = self.config.common.poll_interval;
            let left = deadline_ms.saturating_sub(clock.now_ms());
            // A quick pass starts only while twice the last pass's length (and
            // half a second) still fits before the deadline.
            let fits = left >= pass_ms.saturating_mul(2).saturating_add(500);
            if changed && quick_passes < MAX_QUICK_PASSES && fits {
                quick_passes += 1;
                continue;
            }
            quick_passes = 0;
            if left < millis(poll + DEADLINE_MARGIN) {
                info!("still rolling; the schedule's next watch carries on");
                return answer(Ending::Watching, &requested, &reports, actions, refusal);
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
        let (mut cluster_view, service_refs) = self.services(&clusters).await?;
        let (views, mut first_error) = self
            .observe_groups(intent, requested, &container_instances)
            .await;
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
        let pass = Pass {
            intent,
            requested,
            acting,
            limits: Limits {
                stability_timeout_ms: millis(self.config.stability_timeout),
                registration_timeout_ms: millis(self.config.registration_timeout),
                window_opens_ms: self.config.window.as_ref().and_then(|w| w.opens_at(now_ms)),
            },
            now_ms,
        };
        let mut reports = Vec::new();
        let mut changed = false;
        for (view, target) in views {
            let span = info_span!("group", asg = %view.name);
            match self
                .step_group(view, target, &cluster_view, &pass)
                .instrument(span)
                .await
            {
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

    /// One look at every group, with its target; the first error of a group
    /// that could not be looked at (the others are still stepped).
    async fn observe_groups(
        &self,
        intent: &Intent,
        requested: &str,
        container_instances: &[ContainerInstance],
    ) -> (Vec<(GroupView, String)>, Option<Error>) {
        let registered: HashMap<InstanceId, (InstanceStatus, bool)> = container_instances
            .iter()
            .map(|ci| {
                (
                    ci.ec2_instance_id.clone(),
                    (ci.status.clone(), ci.agent_connected),
                )
            })
            .collect();
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
        (views, first_error)
    }

    /// The group's step, taken when the pass is acting (only logged
    /// otherwise); whether it changed something.
    async fn step_group(
        &self,
        view: GroupView,
        target: String,
        cluster: &ClusterView,
        pass: &Pass<'_>,
    ) -> Result<(GroupReport, bool), Error> {
        let report = self.step_for(view, target, cluster, pass).await?;
        let did = if pass.acting {
            self.act(&report, cluster).await?
        } else {
            log_step(&report, cluster, false);
            false
        };
        Ok((report, did))
    }

    /// The decision for one group, with the AMI checked when the step would
    /// start changing things for a rollout.
    async fn step_for(
        &self,
        view: GroupView,
        target: String,
        cluster: &ClusterView,
        pass: &Pass<'_>,
    ) -> Result<GroupReport, Error> {
        let Pass { limits, now_ms, .. } = *pass;
        let (mut target, mut intent) = (target, pass.intent.clone());
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
            target = pass.requested.to_owned();
            step = decide(&view, cluster, &intent, &target, limits, now_ms);
        }
        let mut newer = false;
        if step.starts_rollout() {
            let facts = self.image_facts(&view, &target).await?;
            if let Some(rejection) = vet(&view, &target, &facts, &self.config.allowed_ami_owners) {
                step = rejection.into_step();
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
}

/// What every group of one pass is decided with.
#[derive(Debug, Clone, Copy)]
struct Pass<'a> {
    intent: &'a Intent,
    requested: &'a str,
    /// Steps are taken, not only logged.
    acting: bool,
    limits: Limits,
    now_ms: u64,
}

/// How an invocation ended, as its answer's `outcome` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Ending {
    /// It only reported (`{"action": "status"}`).
    Status,
    /// DRY_RUN: it decided and changed nothing.
    DryRun,
    /// Every group's rollout is settled.
    Settled,
    /// Still rolling at the deadline: the schedule's next watch carries on.
    Watching,
}

/// The invocation's answer; the AMI's refusal instead, if one was seen.
fn answer(
    outcome: Ending,
    requested: &str,
    reports: &[GroupReport],
    actions: Vec<Value>,
    refusal: Option<Error>,
) -> Result<Value, Error> {
    if let Some(e) = refusal {
        return Err(e);
    }
    let groups: Vec<Value> = reports.iter().map(GroupReport::to_json).collect();
    Ok(json!({
        "outcome": outcome,
        "requested_ami": requested,
        "groups": groups,
        "actions": actions,
    }))
}

/// An AMI refused by its checks, as the invocation's error.
fn refused(reports: &[GroupReport]) -> Option<Error> {
    reports.iter().find_map(|r| match &r.step {
        Step::Refused { check, seen, why } => Some(Error::AmiRefused {
            ami: r.target.clone(),
            check: *check,
            seen: seen.clone(),
            why: why.clone(),
        }),
        _ => None,
    })
}

/// Whether a look at the group judges the cluster's steadiness: its newest
/// refresh is ours and running, or has just succeeded.
fn judged(view: &GroupView) -> bool {
    view.refreshes.first().is_some_and(|r| {
        r.ours.is_some() && (r.status.is_rolling() || r.status == RefreshStatus::Successful)
    })
}
