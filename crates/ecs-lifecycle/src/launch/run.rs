//! launch-verify as a hook workflow: which work it takes (launch actions, and
//! `EC2 Instance Launch Successful` with no hook), how it plans an invocation
//! (registration and verdict deadlines), and its own steps (run the diagnostic,
//! terminate or report an orphan when no hook waits). The hook runtime
//! ([`crate::hook::runtime`]) holds the action around them.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tracing::{error, info, warn};

use crate::config::LaunchConfig;
use crate::error::Error;
use crate::hook::runtime::{self, Flow, Holder, HookWorkflow, OutcomeOf, Spec, Tally};
use crate::hook::{Accept, Job};
use crate::launch::claim::ChainMemo;
use crate::launch::decide::{Clocks, Mode, Observed, Policy, Step, StopReason, Verdict, decide};
use crate::launch::events::LaunchSuccessful;
use crate::model::{ActionResult, Cluster, CommandSent, InstanceId, LifecycleAction, Transition};
use crate::ports::{AutoScaling, Ec2, Ecs, Publisher, Ssm};
use crate::report::{Event, Notification, Record};
use crate::time::millis;

pub const FUNCTION_NAME: &str = "launch-verify";

/// Outcomes of the no-hook mode, where nothing waits to be completed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Finished {
    /// The orphan was terminated through its group.
    Terminated {
        instance_id: InstanceId,
        verdict: Verdict,
    },
    /// The verdict was logged; nothing to complete.
    Reported {
        instance_id: InstanceId,
        verdict: Verdict,
    },
}

/// How a launch verification ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Done {
    /// The action was completed with `result` (a `completed` outcome).
    Verdict {
        result: ActionResult,
        verdict: Verdict,
    },
    /// Nothing to verify (a `stopped` outcome).
    Stopped { reason: StopReason },
    /// The no-hook mode's own outcomes.
    Finished(Finished),
}

/// Carried in a continuation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchMemo {
    #[serde(default)]
    pub command_id: Option<String>,
    #[serde(default)]
    pub command_sent_at_ms: Option<u64>,
    /// SendCommand said SSM cannot reach the instance.
    #[serde(default)]
    pub ssm_unreachable: Option<String>,
    /// This chain's claim on the action (see [`crate::launch::claim`]).
    #[serde(default, skip_serializing_if = "ChainMemo::is_empty")]
    pub chain: ChainMemo,
    /// This invocation's part of the claim (never handed over).
    #[serde(skip)]
    pub claim: ClaimScratch,
}

/// One invocation's claim: its token (drawn at its first write), the claim
/// its chain held when it started, and whether its own write went through or
/// was refused for good.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClaimScratch {
    pub(super) token: Option<String>,
    pub(super) parent: Option<Option<String>>,
    pub(super) claimed: bool,
    pub(super) refused: bool,
}

/// One invocation's deadlines and policy, from its clocks.
#[derive(Debug, Clone, Copy)]
struct Plan {
    policy: Policy,
    /// The action says the instance goes to the warm pool.
    warm_pool: bool,
    /// When the instance was launched (the hook's clocks start there).
    launch_at_ms: u64,
    registration_deadline_ms: u64,
    verdict_deadline_ms: u64,
}

/// launch-verify's own acts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Act {
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
            hold: Holder::new(autoscaling, publisher, config.common.clone(), FUNCTION_NAME),
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
    pub fn with_reporter(mut self, reporter: crate::report::Reporter) -> Self {
        self.hold.reporter = reporter;
        self
    }

    fn default_cluster(&self) -> String {
        self.config
            .common
            .clusters
            .single()
            .map(Cluster::to_string)
            .unwrap_or_default()
    }
}

impl<E: Ecs, A: AutoScaling, C: Ec2, S: Ssm, P: Publisher> Verifier<E, A, C, S, P> {
    /// Auto Scaling's clocks in hook mode (the global timeout); the event's time
    /// otherwise. Registration counts from the launch; the diagnosis gets its own
    /// time after that, but never past the hook's global timeout.
    fn plan(&self, job: &Job<LaunchMemo>, clocks: &runtime::Clocks) -> Plan {
        let cfg = &self.config;
        let action = &job.action;
        let started_at = clocks.started_at_ms;
        let poll_ms = millis(cfg.common.poll_interval);
        let diagnostic_ms = millis(cfg.diagnostic_timeout);
        let launch_at = match &clocks.hook {
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
        Plan {
            policy: Policy {
                mode: if job.held() { Mode::Hook } else { Mode::NoHook },
                terminate_orphans: cfg.terminate_orphans,
                can_diagnose: cfg.ssm_document.is_some(),
                diagnostic_timeout_ms: diagnostic_ms,
                // The poll interval as the runtime paces it (stretched while ECS throttles).
                poll_interval_ms: clocks.poll_ms,
                handoff_margin_ms: millis(self.hold.handoff_margin),
            },
            // Bound for the warm pool (the hook's action, or the launch event, says
            // so): it will not join ECS now.
            warm_pool: action.destination.as_deref() == Some("WarmPool"),
            launch_at_ms: launch_at,
            registration_deadline_ms: registration_deadline,
            verdict_deadline_ms: clocks.hook.map_or(own_verdict_deadline, |t| {
                own_verdict_deadline.min(t.global_deadline_ms)
            }),
        }
    }
}

impl<E: Ecs, A: AutoScaling, C: Ec2, S: Ssm, P: Publisher> HookWorkflow
    for Verifier<E, A, C, S, P>
{
    const SPEC: Spec = Spec {
        name: FUNCTION_NAME,
        work: "launch verification",
        transition: Transition::Launching,
    };
    type Event = LaunchSuccessful;
    type Memo = LaunchMemo;
    type Observed = Observed;
    type Act = Act;
    type Done = Done;

    fn holder(&self) -> &Holder<impl AutoScaling, impl Publisher> {
        &self.hold
    }

    /// `EC2 Instance Launch Successful`: the same check, held by no hook.
    async fn on_event(&self, l: LaunchSuccessful) -> Result<Accept<LaunchMemo>, Error> {
        let action = LifecycleAction {
            asg: l.asg,
            hook: None,
            instance_id: l.instance_id,
            transition: Transition::Launching,
            token: None,
            time: l.time,
            metadata: None,
            origin: l.origin,
            destination: l.destination,
            account_id: None,
        };
        Ok(Accept::Job(Box::new(Job::fresh(action, None))))
    }

    async fn observe(
        &self,
        job: &mut Job<LaunchMemo>,
        clocks: &runtime::Clocks,
    ) -> Result<Observed, Error> {
        let warm_pool = self.plan(job, clocks).warm_pool;
        self.look(job, warm_pool).await
    }

    fn decide(
        &self,
        job: &Job<LaunchMemo>,
        observed: &Observed,
        c: &runtime::Clocks,
    ) -> runtime::Step<Act, Done> {
        let plan = self.plan(job, c);
        let clocks = Clocks {
            now_ms: c.now_ms,
            registration_deadline_ms: plan.registration_deadline_ms,
            verdict_deadline_ms: plan.verdict_deadline_ms,
            invocation_deadline_ms: c.invocation_deadline_ms,
            heartbeat_base_ms: c.heartbeat_base_ms,
            heartbeat_every_ms: c.heartbeat_every_ms,
            attempt: c.attempt,
        };
        let step = decide(observed, &plan.policy, &clocks);
        log_decision(&step, observed, plan.launch_at_ms, c.now_ms);
        match step {
            Step::Stop(reason) => runtime::Step::Stop(Done::Stopped { reason }),
            Step::Complete { result, verdict } => runtime::Step::Complete {
                result,
                detail: Done::Verdict { result, verdict },
            },
            Step::Terminate { verdict } => runtime::Step::Act(Act::Terminate { verdict }),
            Step::Report { verdict } => runtime::Step::Act(Act::Report { verdict }),
            Step::Diagnose => runtime::Step::Act(Act::Diagnose),
            Step::Wait { sleep_ms, .. } => runtime::Step::Wait { sleep_ms },
            Step::HandOff { .. } => runtime::Step::HandOff,
        }
    }

    async fn act(
        &self,
        step: Act,
        _observed: &Observed,
        job: &mut Job<LaunchMemo>,
        clocks: &runtime::Clocks,
    ) -> Result<Flow<Done>, Error> {
        let now_ms = clocks.now_ms;
        let cfg = &self.config;
        let instance_id = job.action.instance_id.clone();
        match step {
            Act::Terminate { verdict } => {
                self.hold
                    .autoscaling
                    .terminate_instance(&instance_id)
                    .await?;
                warn!(
                    "terminated the orphan through its Auto Scaling group; the group launches a replacement"
                );
                Ok(Flow::Finish(Done::Finished(Finished::Terminated {
                    instance_id,
                    verdict,
                })))
            }
            Act::Report { verdict } => Ok(Flow::Finish(Done::Finished(Finished::Reported {
                instance_id,
                verdict,
            }))),
            Act::Diagnose => {
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

    fn cluster(&self, _job: &Job<LaunchMemo>) -> String {
        self.default_cluster()
    }

    async fn report(
        &self,
        outcome: &OutcomeOf<Self>,
        job: &Job<LaunchMemo>,
        tally: &Tally,
        record: Record,
    ) -> Record {
        let launch_at_ms = tally.action_start_ms.unwrap_or_else(|| {
            job.action
                .started_at_ms()
                .map_or(tally.started_at_ms, |t| t.min(tally.started_at_ms))
        });
        let (verdict, done) = match outcome {
            runtime::Outcome::Completed {
                detail: Done::Verdict { result, verdict },
                ..
            } => (
                verdict,
                if *result == ActionResult::Abandon {
                    "abandoned"
                } else {
                    "continued"
                },
            ),
            runtime::Outcome::Finished(Done::Finished(Finished::Terminated {
                verdict, ..
            })) => (verdict, "terminated"),
            runtime::Outcome::Finished(Done::Finished(Finished::Reported { verdict, .. })) => {
                (verdict, "reported")
            }
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
                            tally.ended_at_ms.saturating_sub(launch_at_ms),
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
fn log_decision(step: &Step, o: &Observed, launch_at: u64, now: u64) {
    let since_launch_s = now.saturating_sub(launch_at) / 1000;
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
    match step {
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
            since_launch_s, "not registered in time; running the diagnostic on the instance"
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
            "waiting"
        ),
        Step::HandOff { waiting_for } => info!(
            decision = "hand_off",
            ?waiting_for,
            since_launch_s,
            "invocation nearly over; continuing in a new invocation"
        ),
    }
}
