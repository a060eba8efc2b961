//! Carries launch-verification decisions out: observes Auto Scaling, EC2, ECS
//! and the diagnostic command, asks [`crate::launch::decide`] for the next step,
//! executes it, and repeats until a verdict, a stop, or the hand-off to a new
//! invocation.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::{Instrument, Span, error, info, info_span, warn};

use crate::config::LaunchConfig;
use crate::diagnosis::Findings;
use crate::dispatch::{Job, Work, Workflow, handle_event, ignored};
use crate::error::{Error, EventError};
use crate::event::{LifecycleAction, Transition};
use crate::handoff::hand_off;
use crate::launch::{
    Clocks, Decision, Diagnosis, Mode, Observed, Policy, Step, StopReason, Verdict, decide,
};
use crate::lookup::find_container_instance;
use crate::model::{ActionAck, ActionResult, CommandSent};
use crate::pacing::{load_hook_timing, warn_if_too_short};
use crate::ports::{AutoScaling, Ec2, Ecs, Publisher, Ssm};
use crate::time::{Clock, millis};

pub const FUNCTION_NAME: &str = "launch-verify";

/// The hook name recorded for work that came from `EC2 Instance Launch
/// Successful` (no lifecycle hook waits on it).
pub const NO_HOOK: &str = "(none: EC2 Instance Launch Successful)";

/// What happened to one record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Hook mode: the action was completed with `result`.
    Completed {
        instance_id: String,
        result: ActionResult,
        verdict: Verdict,
    },
    /// Auto Scaling said the action is no longer active.
    AlreadyCompleted { instance_id: String, detail: String },
    /// No-hook mode: the orphan was terminated through its group.
    Terminated {
        instance_id: String,
        verdict: Verdict,
    },
    /// No-hook mode: the verdict was logged; nothing to complete.
    Reported {
        instance_id: String,
        verdict: Verdict,
    },
    Stopped {
        instance_id: String,
        reason: StopReason,
    },
    HandedOff {
        instance_id: String,
        attempt: u32,
        topic_arn: String,
        message_id: String,
    },
    DryRun {
        instance_id: String,
        decision: Decision,
    },
}

/// Carried in a continuation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchMemo {
    /// Started from `EC2 Instance Launch Successful`: no hook to complete.
    #[serde(default)]
    pub no_hook: bool,
    #[serde(default)]
    pub command_id: Option<String>,
    #[serde(default)]
    pub command_sent_at_ms: Option<u64>,
    /// SendCommand said SSM cannot reach the instance.
    #[serde(default)]
    pub ssm_unreachable: Option<String>,
}

/// The launch-verify workflow.
#[derive(Debug)]
pub struct Verifier<E, A, C, S, P> {
    ecs: E,
    autoscaling: A,
    ec2: C,
    ssm: S,
    publisher: P,
    config: LaunchConfig,
    region: String,
    handoff_margin: Duration,
}

impl<E: Ecs, A: AutoScaling, C: Ec2, S: Ssm, P: Publisher> Verifier<E, A, C, S, P> {
    /// `region` is passed to the diagnostic (it probes `ecs.<region>.amazonaws.com`).
    pub fn new(
        ecs: E,
        autoscaling: A,
        ec2: C,
        ssm: S,
        publisher: P,
        config: LaunchConfig,
        region: &str,
    ) -> Self {
        Verifier {
            ecs,
            autoscaling,
            ec2,
            ssm,
            publisher,
            config,
            region: region.to_owned(),
            handoff_margin: Duration::from_secs(10),
        }
    }

    /// Time kept before the invocation deadline to hand off (default 10 s).
    pub fn with_handoff_margin(mut self, margin: Duration) -> Self {
        self.handoff_margin = margin;
        self
    }

    /// Handles one Lambda event (see [`crate::dispatch::handle_event`]).
    pub async fn handle(&self, event: &Value, deadline_ms: u64) -> Result<Value, Error> {
        handle_event(self, event, deadline_ms).await
    }

    async fn verify(&self, mut job: Job<LaunchMemo>, deadline_ms: u64) -> Result<Outcome, Error> {
        let clock = Clock::start();
        let cfg = &self.config;
        let action = job.action.clone();
        let instance_id = action.instance_id.clone();
        let mode = if job.memo.no_hook {
            Mode::NoHook
        } else {
            Mode::Hook
        };
        let now = clock.now_ms();
        let started_at = job.started_at_ms.unwrap_or(now);
        let poll_ms = millis(cfg.common.poll_interval);
        let registration_ms = millis(cfg.registration_timeout);
        let diagnostic_ms = millis(cfg.diagnostic_timeout);
        let warm_pool = mode == Mode::Hook && action.destination.as_deref() == Some("WarmPool");

        // Timing: the hook's clocks in hook mode; our own start otherwise.
        // Auto Scaling's clocks in hook mode (heartbeats, the global timeout); the
        // event's time otherwise. Registration counts from the launch; the
        // diagnosis gets its own time after that, but never past the hook's
        // global timeout.
        let hook_timing = if mode == Mode::Hook && !warm_pool {
            Some(
                load_hook_timing(
                    &self.autoscaling,
                    &action,
                    started_at,
                    u64::MAX / 4,
                    poll_ms,
                )
                .await?,
            )
        } else {
            None
        };
        let launch_at = match &hook_timing {
            Some(t) => t.action_start_ms,
            None => action
                .started_at_ms()
                .map_or(started_at, |t| t.min(started_at)),
        };
        let registration_deadline = launch_at + registration_ms;
        let own_verdict_deadline =
            registration_deadline.max(started_at) + diagnostic_ms + 3 * poll_ms;
        let verdict_deadline = hook_timing.map_or(own_verdict_deadline, |t| {
            own_verdict_deadline.min(t.deadline_ms)
        });
        let heartbeat_every = hook_timing.map_or(u64::MAX / 4, |t| t.heartbeat_every_ms);
        let mut heartbeat_base = job.last_heartbeat_ms.unwrap_or(launch_at);
        let policy = Policy {
            mode,
            terminate_orphans: cfg.terminate_orphans,
            can_diagnose: cfg.ssm_document.is_some(),
            diagnostic_timeout_ms: diagnostic_ms,
            poll_interval_ms: poll_ms,
            handoff_margin_ms: millis(self.handoff_margin),
        };
        warn_if_too_short(now, deadline_ms, poll_ms, policy.handoff_margin_ms);

        loop {
            let observed = self.observe(&job.memo, &action, warm_pool).await?;
            let clocks = Clocks {
                now_ms: clock.now_ms(),
                registration_deadline_ms: registration_deadline,
                verdict_deadline_ms: verdict_deadline,
                invocation_deadline_ms: deadline_ms,
                heartbeat_base_ms: heartbeat_base,
                heartbeat_every_ms: heartbeat_every,
                attempt: job.attempt,
            };
            let decision = decide(&observed, &policy, &clocks);
            log_decision(&decision, &observed, launch_at, clocks.now_ms);

            if cfg.common.dry_run {
                info!("DRY_RUN: nothing was changed");
                return Ok(Outcome::DryRun {
                    instance_id,
                    decision,
                });
            }
            if decision.heartbeat {
                match self.autoscaling.heartbeat(&action).await? {
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
                Step::Complete { result, verdict } => {
                    return Ok(match self.autoscaling.complete(&action, result).await? {
                        ActionAck::Accepted => {
                            info!(result = result.as_str(), "completed the lifecycle action");
                            Outcome::Completed {
                                instance_id,
                                result,
                                verdict,
                            }
                        }
                        ActionAck::NoActiveAction(detail) => no_active(instance_id, detail),
                    });
                }
                Step::Terminate { verdict } => {
                    self.autoscaling.terminate_instance(&instance_id).await?;
                    warn!(
                        "terminated the orphan through its Auto Scaling group; the group launches a replacement"
                    );
                    return Ok(Outcome::Terminated {
                        instance_id,
                        verdict,
                    });
                }
                Step::Report { verdict } => {
                    return Ok(Outcome::Reported {
                        instance_id,
                        verdict,
                    });
                }
                Step::Diagnose => {
                    let document = cfg
                        .ssm_document
                        .as_deref()
                        .ok_or_else(|| EventError::new("diagnose", "no SSM_DOCUMENT_NAME"))?;
                    let params = [
                        ("InstanceId", instance_id.as_str()),
                        ("Region", self.region.as_str()),
                    ];
                    let timeout_s = i32::try_from(cfg.diagnostic_timeout.as_secs()).unwrap_or(120);
                    match self
                        .ssm
                        .run_document(
                            document,
                            &instance_id,
                            &params,
                            cfg.diagnostics_log_group.as_deref(),
                            timeout_s,
                        )
                        .await?
                    {
                        CommandSent::Sent { command_id } => {
                            info!(%command_id, document, log_group = cfg.diagnostics_log_group.as_deref().unwrap_or(""), "sent the diagnostic command");
                            job.memo.command_id = Some(command_id);
                            job.memo.command_sent_at_ms = Some(clock.now_ms());
                        }
                        CommandSent::Unreachable(reason) => {
                            warn!(%reason, "SSM cannot reach the instance");
                            job.memo.ssm_unreachable = Some(reason);
                        }
                    }
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
                        &job.memo,
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

    async fn observe(
        &self,
        memo: &LaunchMemo,
        action: &LifecycleAction,
        warm_pool: bool,
    ) -> Result<Observed, Error> {
        let mut o = Observed {
            warm_pool,
            asg_instance: None,
            ec2_state: None,
            container_instance: None,
            diagnosis: Diagnosis::NotStarted,
        };
        if warm_pool {
            // It will not join ECS now: no ECS (or any) calls.
            return Ok(o);
        }
        let id = &action.instance_id;
        o.asg_instance = self.autoscaling.instance(id).await?;
        o.ec2_state = self.ec2.instance_state(id).await?;
        if !o.ec2_state.as_ref().is_some_and(|s| s.is_running()) {
            return Ok(o);
        }
        o.container_instance =
            find_container_instance(&self.ecs, &self.config.common.clusters, id).await?;
        if let Some(ci) = &o.container_instance {
            Span::current()
                .record("cluster", ci.cluster.as_str())
                .record("container_instance", ci.arn.as_str());
        }
        o.diagnosis = match (
            &memo.ssm_unreachable,
            &memo.command_id,
            memo.command_sent_at_ms,
        ) {
            (Some(reason), _, _) => Diagnosis::Finished(Findings::ssm_unreachable(reason)),
            (None, Some(command_id), Some(sent_at_ms)) => {
                match self.ssm.command_invocation(command_id, id).await? {
                    Some(inv) if inv.is_finished() => {
                        Diagnosis::Finished(Findings::from_invocation(&inv))
                    }
                    _ => Diagnosis::Running {
                        command_id: command_id.clone(),
                        sent_at_ms,
                    },
                }
            }
            _ => Diagnosis::NotStarted,
        };
        Ok(o)
    }
}

impl<E: Ecs, A: AutoScaling, C: Ec2, S: Ssm, P: Publisher> Workflow for Verifier<E, A, C, S, P> {
    const NAME: &'static str = FUNCTION_NAME;

    async fn run(
        &self,
        work: Work,
        reply_topic: Option<String>,
        deadline_ms: u64,
    ) -> Result<Value, Error> {
        let job = match work {
            Work::Action(action) if action.transition == Transition::Terminating => {
                warn!(asg = %action.asg, hook = %action.hook, instance_id = %action.instance_id, "skipped a terminate lifecycle action: launch-verify handles launch actions only; check the hook's notification target");
                return Ok(ignored("terminate transition"));
            }
            Work::Action(action) => Job::fresh(action, reply_topic),
            Work::LaunchSuccessful {
                asg,
                instance_id,
                time,
            } => {
                let action = LifecycleAction {
                    asg,
                    hook: NO_HOOK.to_owned(),
                    instance_id,
                    transition: Transition::Launching,
                    token: None,
                    time,
                    metadata: None,
                    origin: None,
                    destination: None,
                    account_id: None,
                };
                let mut job = Job::fresh(action, reply_topic);
                job.memo = LaunchMemo {
                    no_hook: true,
                    ..LaunchMemo::default()
                };
                job
            }
            Work::Resume(c) => Job::resume(c, reply_topic)?,
        };
        let span = info_span!(
            "verify",
            asg = %job.action.asg,
            hook = %job.action.hook,
            instance_id = %job.action.instance_id,
            attempt = job.attempt,
            cluster = tracing::field::Empty,
            container_instance = tracing::field::Empty,
        );
        let outcome = self.verify(job, deadline_ms).instrument(span).await.inspect_err(|e| {
            error!(error = %e, retryable = e.is_retryable(), "launch verification failed; the action is not completed, the event will be retried")
        })?;
        serde_json::to_value(outcome).map_err(|e| EventError::new("outcome", e.to_string()).into())
    }
}

fn no_active(instance_id: String, detail: String) -> Outcome {
    info!(%detail, "Auto Scaling has no active lifecycle action for the instance (completed elsewhere or expired); final, not retried");
    Outcome::AlreadyCompleted {
        instance_id,
        detail,
    }
}

/// One structured line per decision; the orphan verdict is the line to alarm on.
fn log_decision(decision: &Decision, o: &Observed, launch_at: u64, now: u64) {
    let since_launch_s = now.saturating_sub(launch_at) / 1000;
    let heartbeat = decision.heartbeat;
    let ec2_state = o
        .ec2_state
        .as_ref()
        .map(|s| s.0.as_str())
        .unwrap_or("unknown");
    let verdict_line = |v: &Verdict, action: &str| match v {
        Verdict::Orphan { why, findings } => warn!(
            decision = action,
            verdict = "orphan",
            orphan = true,
            why = %why,
            diagnosis = %findings.outcome,
            problems = ?findings.problems,
            ssm_status = findings.ssm_status.as_deref().unwrap_or(""),
            exit_code = findings.exit_code.unwrap_or(-1),
            since_launch_s,
            "ORPHAN: the instance did not join its ECS cluster"
        ),
        Verdict::Registered {
            cluster,
            container_instance,
        } => {
            info!(decision = action, verdict = "registered", %cluster, %container_instance, since_launch_s, "the instance joined its ECS cluster (ACTIVE, agent connected)")
        }
        Verdict::WarmPool => info!(
            decision = action,
            verdict = "warm_pool",
            "bound for the warm pool: it will not join ECS now"
        ),
        Verdict::HopLimit { attempt } => error!(
            decision = action,
            verdict = "hop_limit",
            attempt,
            "continuation chain too long; stopping it"
        ),
    };
    match &decision.step {
        Step::Stop(reason) => info!(
            decision = "stop",
            ?reason,
            ec2_state,
            "nothing to verify; stopping without completing or continuing"
        ),
        Step::Complete { result, verdict } => verdict_line(
            verdict,
            if *result == ActionResult::Abandon {
                "abandon"
            } else {
                "continue"
            },
        ),
        Step::Terminate { verdict } => verdict_line(verdict, "terminate"),
        Step::Report { verdict } => verdict_line(verdict, "report"),
        Step::Diagnose => info!(
            decision = "diagnose",
            since_launch_s,
            heartbeat,
            "not registered in time; running the diagnostic on the instance"
        ),
        Step::Wait {
            waiting_for,
            sleep_ms,
        } => info!(
            decision = "wait",
            ?waiting_for,
            ec2_state,
            sleep_ms,
            since_launch_s,
            heartbeat,
            "waiting"
        ),
        Step::HandOff { waiting_for } => info!(
            decision = "hand_off",
            ?waiting_for,
            since_launch_s,
            heartbeat,
            "invocation nearly over; continuing in a new invocation"
        ),
    }
}
