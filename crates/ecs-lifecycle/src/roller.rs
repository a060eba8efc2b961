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

use crate::config::RolloutConfig;
use crate::error::{Error, EventError};
use crate::model::{InstanceStatus, RefreshPreferences, TemplateVersion};
use crate::ports::{AutoScaling, Ec2, Ecs, Ssm};
use crate::rollout::{
    ClusterView, GroupView, Intent, Limits, Member, Outcome, Phase, Refresh, Step, TemplateRef,
    UNSTEADY_TAG, ami_from_parameter, decide, is_ami_id, max_healthy_percentage,
    parse_version_description, replaced, target_for, version_description,
};
use crate::time::{Clock, millis};

/// The `alarm` field of the line logged when a rollout is rolled back (the SAM
/// template's metric filter matches it).
pub const ROLLBACK_ALARM: &str = "ami-rollout-rollback";

/// Time kept before the invocation deadline (a last look takes a few seconds).
const DEADLINE_MARGIN: Duration = Duration::from_secs(20);

/// Passes without sleeping in a row (after a step that changed something).
const MAX_QUICK_PASSES: u32 = 5;

/// What an event asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    Run {
        intent: Intent,
        /// An AMI given by hand instead of the parameter's.
        ami: Option<String>,
    },
    /// Acknowledged, nothing to do (why).
    Ignore(String),
}

/// Reads an event: the EventBridge `Parameter Store Change` of the AMI
/// parameter, an EventBridge `Scheduled Event`, or `{"action": ...}` (`start`
/// with optional `ami_id` and `force`, `watch`, `status`, `rollback` with
/// optional `reason`).
pub fn parse_trigger(event: &Value, parameter: &str) -> Result<Trigger, EventError> {
    let Some(obj) = event.as_object() else {
        return Err(EventError::new("event", "is not a JSON object"));
    };
    if let Some(detail_type) = obj.get("detail-type") {
        let detail_type = detail_type.as_str().unwrap_or_default();
        return match detail_type {
            "Parameter Store Change" => {
                let detail = obj
                    .get("detail")
                    .ok_or_else(|| EventError::new("detail", "is missing"))?;
                let name = detail
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| EventError::new("detail.name", "is missing"))?;
                let operation = detail
                    .get("operation")
                    .and_then(Value::as_str)
                    .unwrap_or("Update");
                if name != parameter {
                    Ok(Trigger::Ignore(format!(
                        "parameter {name} is not AMI_PARAMETER_NAME ({parameter})"
                    )))
                } else if operation == "Delete" {
                    Ok(Trigger::Ignore(format!("parameter {name} was deleted")))
                } else {
                    Ok(Trigger::Run {
                        intent: Intent::Start { force: false },
                        ami: None,
                    })
                }
            }
            "Scheduled Event" => Ok(Trigger::Run {
                intent: Intent::Watch,
                ami: None,
            }),
            other => Err(EventError::new(
                "detail-type",
                format!(
                    "is {other:?}; ami-rollout takes \"Parameter Store Change\" or \"Scheduled Event\""
                ),
            )),
        };
    }
    let action = obj
        .get("action")
        .ok_or_else(|| {
            EventError::new(
                "action",
                "is missing (expected an EventBridge event or {\"action\": \"start\" | \"watch\" | \"status\" | \"rollback\"})",
            )
        })?
        .as_str()
        .ok_or_else(|| EventError::new("action", "is not a string"))?;
    let flag = |key: &str| -> Result<bool, EventError> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(EventError::new(key, "is not true or false")),
        }
    };
    match action {
        "start" => {
            let ami = match obj.get("ami_id") {
                None | Some(Value::Null) => None,
                Some(Value::String(id)) if is_ami_id(id) => Some(id.clone()),
                Some(other) => {
                    return Err(EventError::new(
                        "ami_id",
                        format!("{other} is not an AMI id (ami- and 8 or 17 hex digits)"),
                    ));
                }
            };
            Ok(Trigger::Run {
                intent: Intent::Start {
                    force: flag("force")?,
                },
                ami,
            })
        }
        "watch" => Ok(Trigger::Run {
            intent: Intent::Watch,
            ami: None,
        }),
        "status" => Ok(Trigger::Run {
            intent: Intent::Status,
            ami: None,
        }),
        "rollback" => Ok(Trigger::Run {
            intent: Intent::Rollback {
                reason: match obj.get("reason") {
                    None | Some(Value::Null) => "manual rollback".to_owned(),
                    Some(Value::String(s)) => s.clone(),
                    Some(_) => return Err(EventError::new("reason", "is not a string")),
                },
            },
            ami: None,
        }),
        other => Err(EventError::new(
            "action",
            format!("is {other:?}; expected start, watch, status or rollback"),
        )),
    }
}

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
    autoscaling: A,
    ec2: C,
    ecs: E,
    ssm: S,
    config: RolloutConfig,
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
        let span = info_span!("rollout", intent = ?intent, cluster = %self.config.cluster);
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
        let acting = !matches!(intent, Intent::Status) && !self.config.dry_run;
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
            } else if self.config.dry_run {
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
            let poll = self.config.poll_interval;
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
        let cluster = &self.config.cluster;
        let registered: HashMap<String, (InstanceStatus, bool)> = self
            .ecs
            .container_instances(cluster)
            .await?
            .into_iter()
            .map(|ci| (ci.ec2_instance_id, (ci.status, ci.agent_connected)))
            .collect();
        let service_arns = self.ecs.service_arns(cluster).await?;
        let unsteady_services = self
            .ecs
            .services(cluster, &service_arns)
            .await?
            .into_iter()
            .filter(|s| s.running_count != s.desired_count || s.deployments > 1)
            .map(|s| {
                format!(
                    "{} ({}/{} running, {} deployments)",
                    s.name, s.running_count, s.desired_count, s.deployments
                )
            })
            .collect();
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

    /// Everything [`decide`] needs about one group, and its target AMI.
    async fn observe(
        &self,
        name: &str,
        intent: &Intent,
        requested: &str,
        registered: &HashMap<String, (InstanceStatus, bool)>,
    ) -> Result<(GroupView, String), Error> {
        let Some(group) = self.autoscaling.group(name).await? else {
            let view = GroupView {
                name: name.to_owned(),
                desired_capacity: 0,
                template: Err("no Auto Scaling group has this name".into()),
                prepared: None,
                members: vec![],
                refreshes: vec![],
                refused_launches: vec![],
                unsteady_since_ms: None,
            };
            return Ok((view, requested.to_owned()));
        };
        let unsteady_since_ms = group
            .tags
            .iter()
            .find(|(k, _)| k == UNSTEADY_TAG)
            .and_then(|(_, v)| v.parse().ok());
        let mut refreshes = self.autoscaling.refreshes(name).await?;

        let template = match &group.template {
            Err(why) => Err(why.clone()),
            Ok(spec) => {
                // The group's version and every version a refresh went to, in
                // one call.
                let mut wanted = vec![spec.version.clone()];
                wanted.extend(
                    refreshes
                        .iter()
                        .filter_map(|r| r.desired_version)
                        .map(|v| v.to_string()),
                );
                wanted.sort();
                wanted.dedup();
                let versions = self.ec2.template_versions(&spec.id, &wanted).await?;
                for r in &mut refreshes {
                    r.ours = r
                        .desired_version
                        .and_then(|n| versions.iter().find(|v| v.number == n))
                        .and_then(|v| v.description.as_deref())
                        .and_then(parse_version_description);
                }
                let current = match spec.version.as_str() {
                    "$Latest" => versions.iter().max_by_key(|v| v.number),
                    "$Default" => versions.iter().find(|v| v.is_default),
                    n => n
                        .parse::<i64>()
                        .ok()
                        .and_then(|n| versions.iter().find(|v| v.number == n)),
                };
                match current {
                    Some(v) => Ok(TemplateRef {
                        id: spec.id.clone(),
                        version: spec.version.clone(),
                        number: v.number,
                        ami: v.image_id.clone(),
                        ours: v.description.as_deref().and_then(parse_version_description),
                    }),
                    None => Err(format!(
                        "its launch template {} has no version {}",
                        spec.id, spec.version
                    )),
                }
            }
        };

        let ids: Vec<String> = group.instances.iter().map(|(id, _)| id.clone()).collect();
        let ec2: HashMap<String, _> = self
            .ec2
            .instances(&ids)
            .await?
            .into_iter()
            .map(|i| (i.id.clone(), i))
            .collect();
        let members = group
            .instances
            .iter()
            .map(|(id, state)| Member {
                id: id.clone(),
                lifecycle_state: state.clone(),
                ami: ec2.get(id).and_then(|i| i.image_id.clone()),
                launched_ms: ec2.get(id).and_then(|i| i.launched_ms),
                ecs: registered.get(id).cloned(),
            })
            .collect();

        let mut view = GroupView {
            name: name.to_owned(),
            desired_capacity: group.desired_capacity,
            template,
            prepared: None,
            members,
            refreshes,
            refused_launches: vec![],
            unsteady_since_ms,
        };
        let target = target_for(&view, intent, requested).to_owned();

        if let Ok(template) = &view.template {
            let newest = view.refreshes.first();
            if newest.is_some_and(|r| r.status.is_active()) {
                // Launches a hook refused while our refresh runs.
                if let Some(r) = newest.filter(|r| r.ours.is_some()) {
                    view.refused_launches = self
                        .autoscaling
                        .refused_launches(name, r.started_ms.unwrap_or(0))
                        .await?;
                }
            } else {
                // Our version for the target made from where a rollout starts,
                // if a start already made it.
                let from = template.rollout_source();
                let newer: Vec<TemplateVersion> =
                    self.ec2.template_versions_after(&template.id, from).await?;
                view.prepared = newer
                    .iter()
                    .filter(|v| {
                        v.description
                            .as_deref()
                            .and_then(parse_version_description)
                            .is_some_and(|(ami, f)| ami == target && f == from)
                    })
                    .map(|v| v.number)
                    .max();
            }
        }
        Ok((view, target))
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
    let refresh_status = refresh
        .map(|r| format!("{:?}", r.status))
        .unwrap_or_default();
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

#[cfg(test)]
mod tests {
    use super::*;

    const PARAM: &str = "/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended";

    #[test]
    fn parameter_store_change_of_our_parameter_starts() {
        let event = json!({
            "version": "0", "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
            "detail-type": "Parameter Store Change", "source": "aws.ssm",
            "account": "123456789012", "time": "2026-11-20T12:00:00Z", "region": "us-east-1",
            "resources": ["arn:aws:ssm:us-east-1::parameter/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended"],
            "detail": { "name": PARAM, "type": "String", "operation": "Update" }
        });
        assert_eq!(
            parse_trigger(&event, PARAM).unwrap(),
            Trigger::Run {
                intent: Intent::Start { force: false },
                ami: None
            }
        );
        assert!(matches!(
            parse_trigger(&event, "/other").unwrap(),
            Trigger::Ignore(_)
        ));
        let mut deleted = event.clone();
        deleted["detail"]["operation"] = json!("Delete");
        assert!(matches!(
            parse_trigger(&deleted, PARAM).unwrap(),
            Trigger::Ignore(_)
        ));
        let mut nameless = event;
        nameless["detail"] = json!({});
        assert_eq!(
            parse_trigger(&nameless, PARAM).unwrap_err().context,
            "detail.name"
        );
    }

    #[test]
    fn manual_actions() {
        let t = |v: Value| parse_trigger(&v, PARAM);
        assert_eq!(
            t(json!({"action": "start", "ami_id": "ami-0123456789abcdef0", "force": true}))
                .unwrap(),
            Trigger::Run {
                intent: Intent::Start { force: true },
                ami: Some("ami-0123456789abcdef0".into())
            }
        );
        assert_eq!(
            t(json!({"action": "watch"})).unwrap(),
            Trigger::Run {
                intent: Intent::Watch,
                ami: None
            }
        );
        assert_eq!(
            t(json!({"action": "status"})).unwrap(),
            Trigger::Run {
                intent: Intent::Status,
                ami: None
            }
        );
        assert_eq!(
            t(json!({"action": "rollback", "reason": "p99 latency"})).unwrap(),
            Trigger::Run {
                intent: Intent::Rollback {
                    reason: "p99 latency".into()
                },
                ami: None
            }
        );
        assert_eq!(
            t(json!({"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}))
                .unwrap(),
            Trigger::Run {
                intent: Intent::Watch,
                ami: None
            }
        );
    }

    #[test]
    fn bad_input_names_the_field() {
        let t = |v: Value| parse_trigger(&v, PARAM).unwrap_err().context;
        assert_eq!(t(json!([1])), "event");
        assert_eq!(t(json!({})), "action");
        assert_eq!(t(json!({"action": 3})), "action");
        assert_eq!(t(json!({"action": "deploy"})), "action");
        assert_eq!(t(json!({"action": "start", "ami_id": "ubuntu"})), "ami_id");
        assert_eq!(t(json!({"action": "start", "force": "yes"})), "force");
        assert_eq!(t(json!({"action": "rollback", "reason": 1})), "reason");
        assert_eq!(
            t(json!({"detail-type": "EC2 Instance State-change Notification"})),
            "detail-type"
        );
    }
}
