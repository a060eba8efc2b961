//! launch-verify as a hook workflow: which work it takes (launch actions, and
//! `EC2 Instance Launch Successful` with no hook), how it plans an invocation
//! (registration and verdict deadlines), and its own steps (run the diagnostic,
//! terminate or report an orphan when no hook waits). The hook runtime
//! ([`crate::hook::runtime`]) holds the action around them.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tracing::{Span, error, info, warn};

use crate::config::{CommonConfig, LaunchConfig};
use crate::error::Error;
use crate::hook::dispatch::{Job, Work, ignored};
use crate::hook::pacing::load_hook_timing;
use crate::hook::runtime::{
    Accept, Flow, Holder, HookClocks, HookWorkflow, Next, Outcome, Prepared, Tally,
};
use crate::launch::decide::{
    Clocks, Decision, Mode, Observed, Policy, Step, StopReason, Verdict, decide,
};
use crate::model::{ActionResult, CommandSent, LifecycleAction, Transition};
use crate::ports::{AutoScaling, Ec2, Ecs, Publisher, Ssm};
use crate::report::{Event, Notification, Record, Reporter};
use crate::time::millis;

pub const FUNCTION_NAME: &str = "launch-verify";

/// The hook name recorded for work that came from `EC2 Instance Launch
/// Successful` (no lifecycle hook waits on it).
pub const NO_HOOK: &str = "(none: EC2 Instance Launch Successful)";

/// The result and verdict of a `completed` outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Completed {
    pub result: ActionResult,
    pub verdict: Verdict,
}

/// Outcomes of the no-hook mode, where nothing waits to be completed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Finished {
    /// The orphan was terminated through its group.
    Terminated {
        instance_id: String,
        verdict: Verdict,
    },
    /// The verdict was logged; nothing to complete.
    Reported {
        instance_id: String,
        verdict: Verdict,
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

/// One invocation's plan.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub policy: Policy,
    /// The action says the instance goes to the warm pool.
    pub warm_pool: bool,
    /// When the instance was launched (the hook's clocks start there).
    pub launch_at_ms: u64,
    pub registration_deadline_ms: u64,
    pub verdict_deadline_ms: u64,
}

/// launch-verify's own steps.
#[derive(Debug)]
pub enum Own {
    Diagnose,
    Terminate { verdict: Verdict },
    Report { verdict: Verdict },
}

/// The launch-verify workflow.
#[derive(Debug)]
pub struct Verifier<E, A, C, S, P> {
    pub(super) ecs: E,
    pub(super) hold: Holder<A, P>,
    pub(super) ec2: C,
    pub(super) ssm: S,
    pub(super) config: LaunchConfig,
    region: String,
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
            hold: Holder::new(
                autoscaling,
                publisher,
                Reporter::new(FUNCTION_NAME, config.common.notification_topic.clone()),
            ),
            ec2,
            ssm,
            config,
            region: region.to_owned(),
        }
    }

    /// Time kept before the invocation deadline to hand off (default 10 s).
    pub fn with_handoff_margin(mut self, margin: Duration) -> Self {
        self.hold.handoff_margin = margin;
        self
    }

    /// Where metrics and notifications go (stdout and NOTIFICATION_TOPIC_ARN by default).
    pub fn with_reporter(mut self, reporter: Reporter) -> Self {
        self.hold.reporter = reporter;
        self
    }

    fn default_cluster(&self) -> String {
        self.config
            .common
            .clusters
            .single()
            .unwrap_or_default()
            .to_owned()
    }
}

impl<E: Ecs, A: AutoScaling, C: Ec2, S: Ssm, P: Publisher> HookWorkflow
    for Verifier<E, A, C, S, P>
{
    const NAME: &'static str = FUNCTION_NAME;
    const WORK: &'static str = "launch verification";

    type AutoScaling = A;
    type Publisher = P;
    type Memo = LaunchMemo;
    type Plan = Plan;
    type Scratch = ();
    type Observed = Observed;
    type Decision = Decision;
    type Own = Own;
    type Completed = Completed;
    type Stopped = StopReason;
    type Finished = Finished;

    fn holder(&self) -> &Holder<A, P> {
        &self.hold
    }

    fn common(&self) -> &CommonConfig {
        &self.config.common
    }

    async fn accept(
        &self,
        work: Work,
        reply_topic: Option<String>,
    ) -> Result<Accept<LaunchMemo>, Error> {
        Ok(Accept::Job(Box::new(match work {
            Work::Ecs(_) | Work::Signal(_) => {
                warn!(
                    "skipped an ECS, EC2 or AWS Health event: terminate-drain handles them, not launch-verify; check the EventBridge rule's target"
                );
                return Ok(Accept::Answered(ignored("not a launch event")));
            }
            Work::Action(action) if action.transition == Transition::Terminating => {
                warn!(asg = %action.asg, hook = %action.hook, instance_id = %action.instance_id, "skipped a terminate lifecycle action: launch-verify handles launch actions only; check the hook's notification target");
                return Ok(Accept::Answered(ignored("terminate transition")));
            }
            Work::Action(action) => Job::fresh(action, reply_topic),
            Work::LaunchSuccessful(l) => {
                let action = LifecycleAction {
                    asg: l.asg,
                    hook: NO_HOOK.to_owned(),
                    instance_id: l.instance_id,
                    transition: Transition::Launching,
                    token: None,
                    time: l.time,
                    metadata: None,
                    origin: l.origin,
                    destination: l.destination,
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
        })))
    }

    fn span(&self, job: &Job<LaunchMemo>) -> Span {
        crate::action_span!("verify", job)
    }

    /// Auto Scaling's clocks in hook mode (heartbeats, the global timeout); the
    /// event's time otherwise. Registration counts from the launch; the diagnosis
    /// gets its own time after that, but never past the hook's global timeout.
    async fn prepare(
        &self,
        job: &Job<LaunchMemo>,
        started_at: u64,
    ) -> Result<Prepared<Plan>, Error> {
        let cfg = &self.config;
        let action = &job.action;
        let mode = if job.memo.no_hook {
            Mode::NoHook
        } else {
            Mode::Hook
        };
        let poll_ms = millis(cfg.common.poll_interval);
        let diagnostic_ms = millis(cfg.diagnostic_timeout);
        // Bound for the warm pool (the hook's action, or the launch event, says so):
        // it will not join ECS now.
        let warm_pool = action.destination.as_deref() == Some("WarmPool");
        let hook_timing = if mode == Mode::Hook && !warm_pool {
            Some(
                load_hook_timing(
                    &self.hold.autoscaling,
                    action,
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
        let registration_deadline = launch_at.saturating_add(millis(cfg.registration_timeout));
        let own_verdict_deadline = registration_deadline
            .max(started_at)
            .saturating_add(diagnostic_ms)
            .saturating_add(poll_ms.saturating_mul(3));
        let verdict_deadline = hook_timing.map_or(own_verdict_deadline, |t| {
            own_verdict_deadline.min(t.deadline_ms)
        });
        Ok(Prepared {
            plan: Plan {
                policy: Policy {
                    mode,
                    terminate_orphans: cfg.terminate_orphans,
                    can_diagnose: cfg.ssm_document.is_some(),
                    diagnostic_timeout_ms: diagnostic_ms,
                    poll_interval_ms: poll_ms,
                    handoff_margin_ms: millis(self.hold.handoff_margin),
                },
                warm_pool,
                launch_at_ms: launch_at,
                registration_deadline_ms: registration_deadline,
                verdict_deadline_ms: verdict_deadline,
            },
            heartbeat_every_ms: hook_timing.map_or(u64::MAX / 4, |t| t.heartbeat_every_ms),
            heartbeat_base_ms: launch_at,
        })
    }

    async fn observe(
        &self,
        job: &mut Job<LaunchMemo>,
        _scratch: &mut (),
        plan: &Plan,
        _now_ms: u64,
    ) -> Result<Observed, Error> {
        self.look(&job.memo, &job.action, plan.warm_pool).await
    }

    fn decide(&self, observed: &Observed, plan: &Plan, c: &HookClocks) -> Decision {
        let clocks = Clocks {
            now_ms: c.now_ms,
            registration_deadline_ms: plan.registration_deadline_ms,
            verdict_deadline_ms: plan.verdict_deadline_ms,
            invocation_deadline_ms: c.invocation_deadline_ms,
            heartbeat_base_ms: c.heartbeat_base_ms,
            heartbeat_every_ms: c.heartbeat_every_ms,
            attempt: c.attempt,
        };
        // The poll interval as the runtime paces it (stretched while ECS throttles).
        let policy = Policy {
            poll_interval_ms: c.poll_ms,
            ..plan.policy
        };
        decide(observed, &policy, &clocks)
    }

    fn log_decision(
        &self,
        decision: &Decision,
        observed: &Observed,
        plan: &Plan,
        _started_at_ms: u64,
        now_ms: u64,
    ) {
        log_decision(decision, observed, plan.launch_at_ms, now_ms);
    }

    fn next(decision: Decision) -> (bool, Next<Own, Completed, StopReason>) {
        let next = match decision.step {
            Step::Stop(reason) => Next::Stop(reason),
            Step::Complete { result, verdict } => Next::Complete {
                result,
                detail: Completed { result, verdict },
            },
            Step::Terminate { verdict } => Next::Own(Own::Terminate { verdict }),
            Step::Report { verdict } => Next::Own(Own::Report { verdict }),
            Step::Diagnose => Next::Own(Own::Diagnose),
            Step::Wait { sleep_ms, .. } => Next::Wait { sleep_ms },
            Step::HandOff { .. } => Next::HandOff,
        };
        (decision.heartbeat, next)
    }

    async fn act(
        &self,
        step: Own,
        _observed: &Observed,
        job: &mut Job<LaunchMemo>,
        now_ms: u64,
    ) -> Result<Flow<Finished>, Error> {
        let cfg = &self.config;
        let instance_id = job.action.instance_id.clone();
        match step {
            Own::Terminate { verdict } => {
                self.hold
                    .autoscaling
                    .terminate_instance(&instance_id)
                    .await?;
                warn!(
                    "terminated the orphan through its Auto Scaling group; the group launches a replacement"
                );
                Ok(Flow::Finish(Finished::Terminated {
                    instance_id,
                    verdict,
                }))
            }
            Own::Report { verdict } => Ok(Flow::Finish(Finished::Reported {
                instance_id,
                verdict,
            })),
            Own::Diagnose => {
                let document = cfg.ssm_document.as_deref().ok_or_else(|| {
                    Error::Internal("a diagnosis was decided without SSM_DOCUMENT_NAME".into())
                })?;
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
                        let reporter = &self.hold.reporter;
                        reporter.emit(
                            &reporter
                                .record(&self.default_cluster(), Some(&job.action.asg))
                                .count("DiagnosticsRun", 1)
                                .property("instance_id", instance_id.as_str()),
                        );
                        job.memo.command_id = Some(command_id);
                        job.memo.command_sent_at_ms = Some(now_ms);
                    }
                    CommandSent::Unreachable(reason) => {
                        warn!(%reason, "SSM cannot reach the instance");
                        job.memo.ssm_unreachable = Some(reason);
                    }
                }
                Ok(Flow::Observe)
            }
        }
    }

    fn metrics_cluster(&self, _job: &Job<LaunchMemo>) -> String {
        self.default_cluster()
    }

    async fn report(
        &self,
        outcome: &Outcome<Self>,
        job: &Job<LaunchMemo>,
        plan: &Plan,
        _scratch: &(),
        tally: &Tally,
        record: Record,
    ) -> Record {
        let (verdict, done) = match outcome {
            Outcome::Completed { detail, .. } => (
                &detail.verdict,
                if detail.result == ActionResult::Abandon {
                    "abandoned"
                } else {
                    "continued"
                },
            ),
            Outcome::Finished(Finished::Terminated { verdict, .. }) => (verdict, "terminated"),
            Outcome::Finished(Finished::Reported { verdict, .. }) => (verdict, "reported"),
            _ => return record,
        };
        match verdict {
            Verdict::Registered { cluster, .. } => {
                // Counted under the cluster it joined (the record's is the configured one).
                let reporter = &self.hold.reporter;
                reporter.emit(
                    &reporter
                        .record(cluster, Some(&job.action.asg))
                        .seconds_from_ms(
                            "RegistrationSeconds",
                            tally.ended_at_ms.saturating_sub(plan.launch_at_ms),
                        )
                        .property("instance_id", job.action.instance_id.as_str()),
                );
                record
            }
            Verdict::Orphan { why, findings } => {
                let refused = matches!(done, "abandoned" | "terminated");
                self.hold
                    .reporter
                    .notify(
                        &self.hold.publisher,
                        Notification::new(Event::OrphanFound, &self.default_cluster())
                            .group(&job.action.asg)
                            .instance(&job.action.instance_id)
                            .detail(json!({
                                "why": why,
                                "done": done,
                                "diagnosis": findings,
                            })),
                    )
                    .await;
                record
                    .count("Orphans", 1)
                    .count("OrphansRefused", u64::from(refused))
            }
            Verdict::WarmPool | Verdict::HopLimit { .. } => record,
        }
    }
}

/// One structured line per decision; the orphan verdict is the line to alarm on.
fn log_decision(decision: &Decision, o: &Observed, launch_at: u64, now: u64) {
    let since_launch_s = now.saturating_sub(launch_at) / 1000;
    let heartbeat = decision.heartbeat;
    let ec2_state = o.ec2_state.as_ref().map_or("unknown", |s| s.as_str());
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
