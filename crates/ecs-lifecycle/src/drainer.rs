//! Carries drain decisions out: observes ECS and Auto Scaling, asks
//! [`crate::drain::decide`] for the next step, executes it, and repeats until the
//! action is completed, the function must stop, or the invocation is nearly over
//! (then it hands the work to a new invocation through SNS).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::{Instrument, Span, error, info, info_span, warn};

use crate::config::{ClusterScope, DrainConfig};
use crate::dispatch::{Job, Work, Workflow, handle_event, ignored};
use crate::drain::{
    Clocks, Completion, Decision, LiveTask, Observed, Policy, Role, Step, StopReason, decide,
};
use crate::error::{AwsError, Error, EventError};
use crate::event::Transition;
use crate::handoff::hand_off;
use crate::lookup::find_container_instance;
use crate::model::{ActionAck, ActionResult, ContainerInstance, InstanceStatus, Scheduling};
use crate::pacing::{load_hook_timing, warn_if_too_short};
use crate::ports::{AutoScaling, DesiredStatus, Ecs, Publisher};
use crate::time::{Clock, millis};

pub const FUNCTION_NAME: &str = "terminate-drain";

/// What happened to one record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// The action was completed with CONTINUE by this invocation.
    Completed {
        instance_id: String,
        reason: Completion,
    },
    /// Auto Scaling said the action is no longer active (completed elsewhere or expired).
    AlreadyCompleted { instance_id: String, detail: String },
    /// Nothing to complete: the instance is not waiting on a terminate action.
    Stopped {
        instance_id: String,
        reason: StopReason,
    },
    /// The drain goes on in a new invocation.
    HandedOff {
        instance_id: String,
        attempt: u32,
        topic_arn: String,
        message_id: String,
    },
    /// DRY_RUN: the decision was logged, nothing changed.
    DryRun {
        instance_id: String,
        decision: Decision,
    },
}

/// Memo carried in a continuation: hints that save lookups, never trusted blindly.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainMemo {
    #[serde(default)]
    pub cluster: Option<String>,
    #[serde(default)]
    pub container_instance_arn: Option<String>,
    /// Services that had tasks on the instance (for the stability check).
    #[serde(default)]
    pub services: BTreeSet<String>,
}

/// The terminate-drain workflow over any ECS, Auto Scaling and SNS implementation.
#[derive(Debug)]
pub struct Drainer<E, A, P> {
    ecs: E,
    autoscaling: A,
    publisher: P,
    config: DrainConfig,
    handoff_margin: Duration,
}

impl<E: Ecs, A: AutoScaling, P: Publisher> Drainer<E, A, P> {
    pub fn new(ecs: E, autoscaling: A, publisher: P, config: DrainConfig) -> Self {
        Drainer {
            ecs,
            autoscaling,
            publisher,
            config,
            handoff_margin: Duration::from_secs(10),
        }
    }

    /// Time kept before the invocation deadline to hand off (default 10 s).
    pub fn with_handoff_margin(mut self, margin: Duration) -> Self {
        self.handoff_margin = margin;
        self
    }

    pub fn config(&self) -> &DrainConfig {
        &self.config
    }

    /// Handles one Lambda event (see [`crate::dispatch::handle_event`]).
    pub async fn handle(&self, event: &Value, deadline_ms: u64) -> Result<Value, Error> {
        handle_event(self, event, deadline_ms).await
    }

    async fn drain(&self, job: Job<DrainMemo>, deadline_ms: u64) -> Result<Outcome, Error> {
        let clock = Clock::start();
        let action = &job.action;
        let instance_id = action.instance_id.clone();
        let cfg = &self.config;
        let now = clock.now_ms();
        let started_at = job.started_at_ms.unwrap_or(now);

        let poll_ms = millis(cfg.common.poll_interval);
        let timing = load_hook_timing(
            &self.autoscaling,
            action,
            started_at,
            millis(cfg.max_drain),
            poll_ms,
        )
        .await?;
        let mut heartbeat_base = job.last_heartbeat_ms.unwrap_or(timing.action_start_ms);
        let policy = Policy {
            standalone: cfg.standalone,
            service_stability: cfg.service_stability,
            poll_interval_ms: poll_ms,
            handoff_margin_ms: millis(self.handoff_margin),
        };
        warn_if_too_short(now, deadline_ms, poll_ms, policy.handoff_margin_ms);

        let mut eyes = Eyes::new(&self.ecs, &cfg.common.clusters, job.memo.clone());
        loop {
            let observed = self.observe(&mut eyes, &instance_id).await?;
            let clocks = Clocks {
                now_ms: clock.now_ms(),
                drain_deadline_ms: timing.deadline_ms,
                invocation_deadline_ms: deadline_ms,
                heartbeat_base_ms: heartbeat_base,
                heartbeat_every_ms: timing.heartbeat_every_ms,
                attempt: job.attempt,
            };
            let decision = decide(&observed, &policy, &clocks);
            log_decision(&decision, &observed, started_at, clocks.now_ms);

            if cfg.common.dry_run {
                info!("DRY_RUN: nothing was changed");
                return Ok(Outcome::DryRun {
                    instance_id,
                    decision,
                });
            }
            if decision.heartbeat {
                match self.autoscaling.heartbeat(action).await? {
                    ActionAck::Accepted => heartbeat_base = clock.now_ms(),
                    ActionAck::NoActiveAction(detail) => return Ok(no_active(instance_id, detail)),
                }
            }
            match decision.step {
                Step::Stop(reason) => {
                    return Ok(Outcome::Stopped {
                        instance_id,
                        reason,
                    });
                }
                Step::Complete(reason) => {
                    return Ok(
                        match self
                            .autoscaling
                            .complete(action, ActionResult::Continue)
                            .await?
                        {
                            ActionAck::Accepted => {
                                info!(
                                    result = "CONTINUE",
                                    drain_seconds = (clock.now_ms() - started_at) / 1000,
                                    "completed the lifecycle action"
                                );
                                Outcome::Completed {
                                    instance_id,
                                    reason,
                                }
                            }
                            ActionAck::NoActiveAction(detail) => no_active(instance_id, detail),
                        },
                    );
                }
                Step::SetDraining => {
                    let ci = observed
                        .container_instance
                        .as_ref()
                        .ok_or_else(|| missing_instance(&instance_id))?;
                    if let Err((reason, detail)) =
                        self.ecs.set_draining(&ci.cluster, &ci.arn).await?
                    {
                        return Err(Error::EcsItemFailure {
                            operation: "UpdateContainerInstancesState",
                            arn: ci.arn.clone(),
                            reason,
                            detail,
                        });
                    }
                    info!("set the container instance to DRAINING");
                    // Observe again at once: ECS has already started stopping PENDING tasks.
                }
                Step::StopTasks { arns, why } => {
                    let ci = observed
                        .container_instance
                        .as_ref()
                        .ok_or_else(|| missing_instance(&instance_id))?;
                    let reason = format!(
                        "{FUNCTION_NAME}: instance {instance_id} is being terminated by Auto Scaling"
                    );
                    for arn in &arns {
                        match self.ecs.stop(&ci.cluster, arn, &reason).await {
                            Ok(()) => info!(task = %arn, ?why, "stopped task"),
                            // Already gone: exactly what we wanted.
                            Err(e) if e.code.as_deref() == Some("InvalidParameterException") => {
                                warn!(task = %arn, error = %e, "task to stop was not found")
                            }
                            Err(e) => return Err(e.into()),
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(poll_ms)).await;
                }
                Step::Wait { sleep_ms, .. } => {
                    tokio::time::sleep(Duration::from_millis(sleep_ms)).await
                }
                Step::HandOff { .. } => {
                    let configured = cfg.common.continuation_topic.as_deref();
                    let h = hand_off(
                        &self.publisher,
                        FUNCTION_NAME,
                        configured,
                        &job,
                        started_at,
                        heartbeat_base,
                        eyes.memo(),
                    )
                    .await?;
                    return Ok(Outcome::HandedOff {
                        instance_id,
                        attempt: h.attempt,
                        topic_arn: h.topic_arn,
                        message_id: h.message_id,
                    });
                }
            }
        }
    }

    async fn observe(&self, eyes: &mut Eyes<'_, E>, instance_id: &str) -> Result<Observed, Error> {
        let asg_instance = self.autoscaling.instance(instance_id).await?;
        let mut observed = Observed {
            asg_instance,
            ..Observed::default()
        };
        if !observed
            .asg_instance
            .as_ref()
            .is_some_and(|i| i.is_terminate_wait())
        {
            return Ok(observed);
        }
        let Some(ci) = eyes.container_instance(instance_id).await? else {
            return Ok(observed);
        };
        if ci.status == InstanceStatus::Draining {
            observed.live_tasks = eyes.live_tasks(&ci).await?;
            let waited_on = observed.live_tasks.iter().any(|t| {
                t.role != Role::Standalone
                    || self.config.standalone != crate::config::StandalonePolicy::Ignore
            });
            if self.config.service_stability && !waited_on {
                observed.unsteady_services = eyes.unsteady_services(&ci.cluster).await?;
            }
        }
        observed.container_instance = Some(ci);
        Ok(observed)
    }
}

impl<E: Ecs, A: AutoScaling, P: Publisher> Workflow for Drainer<E, A, P> {
    const NAME: &'static str = FUNCTION_NAME;

    async fn run(
        &self,
        work: Work,
        reply_topic: Option<String>,
        deadline_ms: u64,
    ) -> Result<Value, Error> {
        let job = match work {
            Work::LaunchSuccessful {
                asg, instance_id, ..
            } => {
                warn!(%asg, %instance_id, "skipped an EC2 Instance Launch Successful event: terminate-drain handles terminate actions only");
                return Ok(ignored("launch event"));
            }
            Work::Action(action) if action.transition == Transition::Launching => {
                warn!(asg = %action.asg, hook = %action.hook, instance_id = %action.instance_id, "skipped a launch lifecycle action: terminate-drain handles terminate actions only; check the hook's notification target");
                return Ok(ignored("launch transition"));
            }
            Work::Action(action) => Job::fresh(action, reply_topic),
            Work::Resume(c) => Job::resume(c, reply_topic)?,
        };
        let span = info_span!(
            "drain",
            asg = %job.action.asg,
            hook = %job.action.hook,
            instance_id = %job.action.instance_id,
            attempt = job.attempt,
            cluster = tracing::field::Empty,
            container_instance = tracing::field::Empty,
        );
        let outcome = self.drain(job, deadline_ms).instrument(span).await.inspect_err(|e| {
            error!(error = %e, retryable = e.is_retryable(), "drain failed; the action is not completed, the event will be retried")
        })?;
        serde_json::to_value(outcome).map_err(|e| EventError::new("outcome", e.to_string()).into())
    }
}

/// What one invocation has learned so far, so that each poll costs
/// O(tasks / 100) calls: where the instance is, which tasks are known to be
/// STOPPED (never described again), and how each service is scheduled.
struct Eyes<'a, E> {
    ecs: &'a E,
    scope: &'a ClusterScope,
    memo: DrainMemo,
    known_stopped: HashSet<String>,
    scheduling: HashMap<String, Scheduling>,
}

impl<'a, E: Ecs> Eyes<'a, E> {
    fn new(ecs: &'a E, scope: &'a ClusterScope, memo: DrainMemo) -> Self {
        Eyes {
            ecs,
            scope,
            memo,
            known_stopped: HashSet::new(),
            scheduling: HashMap::new(),
        }
    }

    fn memo(&self) -> &DrainMemo {
        &self.memo
    }

    async fn container_instance(
        &mut self,
        instance_id: &str,
    ) -> Result<Option<ContainerInstance>, Error> {
        let hinted = match (&self.memo.cluster, &self.memo.container_instance_arn) {
            (Some(cluster), Some(arn)) => self
                .ecs
                .describe_container_instance(cluster, arn)
                .await?
                .filter(|ci| ci.ec2_instance_id == instance_id),
            _ => None,
        };
        // No hint, or a stale one: search.
        let found = match hinted {
            Some(ci) => Some(ci),
            None => find_container_instance(self.ecs, self.scope, instance_id).await?,
        };
        if let Some(ci) = &found {
            Span::current()
                .record("cluster", ci.cluster.as_str())
                .record("container_instance", ci.arn.as_str());
            self.memo.cluster = Some(ci.cluster.clone());
            self.memo.container_instance_arn = Some(ci.arn.clone());
        }
        Ok(found)
    }

    /// Tasks on the instance that are not STOPPED, looking at desired RUNNING and
    /// STOPPED alike: `runningTasksCount` and a plain ListTasks miss the tasks
    /// that are still shutting down.
    async fn live_tasks(&mut self, ci: &ContainerInstance) -> Result<Vec<LiveTask>, Error> {
        let mut arns = self
            .ecs
            .task_arns(&ci.cluster, &ci.arn, DesiredStatus::Running)
            .await?;
        arns.extend(
            self.ecs
                .task_arns(&ci.cluster, &ci.arn, DesiredStatus::Stopped)
                .await?,
        );
        let mut seen = HashSet::new();
        arns.retain(|a| !self.known_stopped.contains(a) && seen.insert(a.clone()));
        let tasks = self.ecs.tasks(&ci.cluster, &arns).await?;

        let mut live = Vec::new();
        for task in tasks {
            // ListTasks' containerInstance filter is exact on AWS; check anyway.
            if task
                .container_instance_arn
                .as_deref()
                .is_some_and(|a| a != ci.arn)
            {
                continue;
            }
            if task.is_stopped() {
                self.known_stopped.insert(task.arn.clone());
            } else {
                live.push(task);
            }
        }
        let services: BTreeSet<String> = live
            .iter()
            .filter_map(|t| t.service_name().map(str::to_owned))
            .collect();
        let unknown: Vec<String> = services
            .iter()
            .filter(|s| !self.scheduling.contains_key(*s))
            .cloned()
            .collect();
        if !unknown.is_empty() {
            for s in self.ecs.services(&ci.cluster, &unknown).await? {
                self.scheduling.insert(s.name, s.scheduling);
            }
        }
        let roles = live
            .into_iter()
            .map(|task| {
                let role = match task.service_name() {
                    None => Role::Standalone,
                    Some(name) if self.scheduling.get(name) == Some(&Scheduling::Daemon) => {
                        Role::Daemon
                    }
                    Some(name) => {
                        self.memo.services.insert(name.to_owned());
                        Role::Service
                    }
                };
                LiveTask { task, role }
            })
            .collect();
        Ok(roles)
    }

    async fn unsteady_services(&self, cluster: &str) -> Result<Vec<String>, AwsError> {
        let names: Vec<String> = self.memo.services.iter().cloned().collect();
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let services = self.ecs.services(cluster, &names).await?;
        Ok(services
            .into_iter()
            .filter(|s| !s.has_replacements_running())
            .map(|s| s.name)
            .collect())
    }
}

fn missing_instance(instance_id: &str) -> Error {
    EventError::new(
        "drain",
        format!("no container instance observed for {instance_id}"),
    )
    .into()
}

fn no_active(instance_id: String, detail: String) -> Outcome {
    info!(%detail, "Auto Scaling has no active lifecycle action for the instance (completed elsewhere or expired); final, not retried");
    Outcome::AlreadyCompleted {
        instance_id,
        detail,
    }
}

/// One structured line per decision.
fn log_decision(decision: &Decision, observed: &Observed, started_at: u64, now: u64) {
    let status = observed
        .container_instance
        .as_ref()
        .map(|c| format!("{:?}", c.status).to_uppercase());
    let lifecycle_state = observed
        .asg_instance
        .as_ref()
        .map(|i| i.lifecycle_state.as_str())
        .unwrap_or("none");
    let elapsed_s = now.saturating_sub(started_at) / 1000;
    let heartbeat = decision.heartbeat;
    match &decision.step {
        Step::Stop(reason) => info!(
            decision = "stop",
            ?reason,
            lifecycle_state,
            "the instance is not waiting on a terminate action; stopping without completing or continuing"
        ),
        Step::Complete(Completion::DeadlineReached { left }) => warn!(
            decision = "complete",
            reason = "deadline_reached",
            tasks_left = left.len(),
            left = ?left.iter().take(20).collect::<Vec<_>>(),
            elapsed_s,
            "drain deadline reached with tasks still on the instance; completing CONTINUE, they end with the instance"
        ),
        Step::Complete(reason) => info!(
            decision = "complete",
            ?reason,
            elapsed_s,
            "completing the lifecycle action with CONTINUE"
        ),
        Step::SetDraining => info!(
            decision = "set_draining",
            status = status.as_deref().unwrap_or(""),
            heartbeat,
            "the container instance is ACTIVE; setting DRAINING"
        ),
        Step::StopTasks { arns, why } => info!(
            decision = "stop_tasks",
            ?why,
            count = arns.len(),
            heartbeat,
            "stopping tasks the scheduler will not stop"
        ),
        Step::Wait {
            remaining,
            sleep_ms,
        } => info!(
            decision = "wait",
            service = remaining.service,
            daemon = remaining.daemon,
            standalone = remaining.standalone,
            ignored = remaining.ignored,
            unsteady = ?remaining.unsteady_services,
            sleep_ms,
            elapsed_s,
            heartbeat,
            "tasks still on the instance; waiting"
        ),
        Step::HandOff { remaining } => info!(
            decision = "hand_off",
            service = remaining.service,
            daemon = remaining.daemon,
            standalone = remaining.standalone,
            elapsed_s,
            heartbeat,
            "invocation nearly over; continuing in a new invocation"
        ),
    }
}
