//! The launch-verification decision: pure, from what was observed (and the
//! clocks) to the next step. [`crate::verifier`] carries it out.

use serde::Serialize;

use crate::hook::continuation::MAX_HOPS;
use crate::hook::pacing::pace;
use crate::launch::diagnosis::{Findings, Outcome};
use crate::model::{
    ActionResult, AsgInstance, Cluster, ContainerInstance, ContainerInstanceArn, Ec2State,
    InstanceStatus, LifecycleState,
};

/// Whether a lifecycle hook waits on the verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Mode {
    /// A launch lifecycle action: complete it with CONTINUE or ABANDON.
    Hook,
    /// `EC2 Instance Launch Successful` (the orphan-check pattern): nothing waits;
    /// an orphan to refuse is terminated through its group.
    NoHook,
}

/// Where the diagnosis stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Diagnosis {
    NotStarted,
    Running { command_id: String, sent_at_ms: u64 },
    Finished(Findings),
}

/// One observation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// The action says the instance goes to the warm pool.
    pub warm_pool: bool,
    pub asg_instance: Option<AsgInstance>,
    /// `None`: EC2 does not know the instance.
    pub ec2_state: Option<Ec2State>,
    /// Its container instance in the clusters searched, if any.
    pub container_instance: Option<ContainerInstance>,
    pub diagnosis: Diagnosis,
    /// Another invocation carries the action (a newer chain, or a later hop of
    /// this one): what its claim said.
    pub superseded_by: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub mode: Mode,
    pub terminate_orphans: bool,
    /// A diagnostic document is configured.
    pub can_diagnose: bool,
    pub diagnostic_timeout_ms: u64,
    pub poll_interval_ms: u64,
    pub handoff_margin_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clocks {
    pub now_ms: u64,
    /// REGISTRATION_TIMEOUT_SECONDS after the launch (capped by the hook).
    pub registration_deadline_ms: u64,
    /// The last moment to decide before the hook's global timeout decides for us.
    pub verdict_deadline_ms: u64,
    pub invocation_deadline_ms: u64,
    pub heartbeat_base_ms: u64,
    pub heartbeat_every_ms: u64,
    pub attempt: u32,
}

/// Why the function stops without a verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum StopReason {
    /// Hook mode: the instance is no longer in `Pending:Wait` (completed
    /// elsewhere, expired, or not in a group).
    NotWaiting {
        lifecycle_state: Option<LifecycleState>,
    },
    /// The instance is terminated, stopping, or unknown to EC2: nothing to verify.
    InstanceGone { ec2_state: Option<Ec2State> },
    /// No-hook mode: the instance left its group or is leaving it.
    LeftGroup {
        lifecycle_state: Option<LifecycleState>,
    },
    /// Hook mode: another invocation carries the action (this one is a
    /// duplicate or late delivery): `by` names its claim.
    Superseded { by: String },
}

/// The verdict on a launch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Verdict {
    /// Bound for the warm pool: it will not join ECS now.
    WarmPool,
    /// ACTIVE with its agent connected.
    Registered {
        cluster: Cluster,
        container_instance: ContainerInstanceArn,
    },
    /// Not registered in time: an orphan, with what the diagnosis found.
    Orphan { why: String, findings: Findings },
    /// A continuation chain longer than any real verification: stop it.
    HopLimit { attempt: u32 },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum WaitingFor {
    Ec2Running,
    Registration,
    Diagnosis,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Step {
    Stop(StopReason),
    /// Hook mode: complete the action.
    Complete {
        result: ActionResult,
        verdict: Verdict,
    },
    /// No-hook mode: terminate the orphan through its group (a replacement launches).
    Terminate {
        verdict: Verdict,
    },
    /// No-hook mode: nothing to complete; log the verdict.
    Report {
        verdict: Verdict,
    },
    /// Send the diagnostic command.
    Diagnose,
    Wait {
        waiting_for: WaitingFor,
        sleep_ms: u64,
    },
    HandOff {
        waiting_for: WaitingFor,
    },
}

/// Decides the next step of a launch verification: first whether the verdict
/// is already clear ([`settled`]), then wait for the registration, then judge
/// the orphan ([`judge_orphan`]).
pub fn decide(o: &Observed, p: &Policy, c: &Clocks) -> Step {
    if let Some(step) = settled(o, p, c) {
        return step;
    }
    let registration_over = c.now_ms >= c.registration_deadline_ms;
    let out_of_time = c.now_ms >= c.verdict_deadline_ms;
    if !registration_over && !out_of_time {
        let pending = o.ec2_state.as_ref().is_some_and(Ec2State::is_pending);
        return wait(
            p,
            c,
            if pending {
                WaitingFor::Ec2Running
            } else {
                WaitingFor::Registration
            },
        );
    }
    judge_orphan(o, p, c, out_of_time)
}

/// The verdict as a step: complete the action in hook mode (ABANDON to refuse),
/// terminate or report without a hook.
fn conclude(p: &Policy, verdict: Verdict, refuse: bool) -> Step {
    match (p.mode == Mode::Hook, refuse) {
        (true, true) => Step::Complete {
            result: ActionResult::Abandon,
            verdict,
        },
        (true, false) => Step::Complete {
            result: ActionResult::Continue,
            verdict,
        },
        (false, true) => Step::Terminate { verdict },
        (false, false) => Step::Report { verdict },
    }
}

/// The steps that need no waiting: the warm pool, nothing (or no one) waiting,
/// the instance gone, the hop limit, or registered. `None`: not registered yet.
fn settled(o: &Observed, p: &Policy, c: &Clocks) -> Option<Step> {
    let hook = p.mode == Mode::Hook;
    let lifecycle_state = || o.asg_instance.as_ref().map(|i| i.lifecycle_state.clone());
    // Another invocation carries the action (a superseded look reads nothing more).
    if let Some(by) = &o.superseded_by {
        return Some(Step::Stop(StopReason::Superseded { by: by.clone() }));
    }
    // Bound for the warm pool, in either mode: it will not join ECS now.
    if o.warm_pool
        || (hook
            && o.asg_instance
                .as_ref()
                .is_some_and(|i| i.lifecycle_state.is_warmed()))
    {
        return Some(conclude(p, Verdict::WarmPool, false));
    }
    if hook
        && o.asg_instance
            .as_ref()
            .is_none_or(|i| i.lifecycle_state != LifecycleState::PendingWait)
    {
        return Some(Step::Stop(StopReason::NotWaiting {
            lifecycle_state: lifecycle_state(),
        }));
    }
    if !hook
        && o.asg_instance
            .as_ref()
            .is_none_or(|i| i.lifecycle_state.is_leaving())
    {
        return Some(Step::Stop(StopReason::LeftGroup {
            lifecycle_state: lifecycle_state(),
        }));
    }
    match &o.ec2_state {
        Some(s) if s.is_running() || s.is_pending() => {}
        other => {
            return Some(Step::Stop(StopReason::InstanceGone {
                ec2_state: other.clone(),
            }));
        }
    }
    if c.attempt > MAX_HOPS {
        return Some(conclude(p, Verdict::HopLimit { attempt: c.attempt }, false));
    }
    match &o.container_instance {
        Some(ci) if ci.status == InstanceStatus::Active && ci.agent_connected => Some(conclude(
            p,
            Verdict::Registered {
                cluster: ci.cluster.clone(),
                container_instance: ci.arn.clone(),
            },
            false,
        )),
        _ => None,
    }
}

/// Wait (or hand off when another poll would not fit) for `waiting_for`.
fn wait(p: &Policy, c: &Clocks, waiting_for: WaitingFor) -> Step {
    let pace = pace(
        c.now_ms,
        c.heartbeat_base_ms,
        c.heartbeat_every_ms,
        p.poll_interval_ms,
        c.invocation_deadline_ms,
        p.handoff_margin_ms,
    );
    if pace.hand_off {
        Step::HandOff { waiting_for }
    } else {
        Step::Wait {
            waiting_for,
            sleep_ms: pace.sleep_ms,
        }
    }
}

/// Not registered in time: diagnose it, wait for the diagnosis, or give the
/// orphan verdict with what the diagnosis found.
fn judge_orphan(o: &Observed, p: &Policy, c: &Clocks, out_of_time: bool) -> Step {
    let why = why_not_registered(o);
    let orphan = |findings: Findings| {
        conclude(
            p,
            Verdict::Orphan {
                why: why.clone(),
                findings,
            },
            p.terminate_orphans,
        )
    };
    match &o.diagnosis {
        Diagnosis::Finished(findings) => orphan(findings.clone()),
        _ if out_of_time => orphan(Findings::timed_out(p.diagnostic_timeout_ms / 1000)),
        Diagnosis::NotStarted if !p.can_diagnose => orphan(Findings::not_configured()),
        Diagnosis::NotStarted if o.ec2_state.as_ref().is_some_and(Ec2State::is_pending) => {
            orphan(Findings {
                outcome: Outcome::NotRunning,
                problems: vec!["the instance never reached running".into()],
                ssm_status: None,
                exit_code: None,
                registered_on_host: None,
            })
        }
        Diagnosis::NotStarted => Step::Diagnose,
        Diagnosis::Running { sent_at_ms, .. }
            if c.now_ms.saturating_sub(*sent_at_ms) >= p.diagnostic_timeout_ms =>
        {
            orphan(Findings::timed_out(p.diagnostic_timeout_ms / 1000))
        }
        Diagnosis::Running { .. } => wait(p, c, WaitingFor::Diagnosis),
    }
}

/// What ECS shows, in words.
fn why_not_registered(o: &Observed) -> String {
    match &o.container_instance {
        None => "no container instance registered for it in the clusters searched".into(),
        Some(ci) if ci.status == InstanceStatus::Active => format!(
            "container instance {} is ACTIVE but its agent is disconnected",
            ci.arn
        ),
        Some(ci) => format!("container instance {} is {}, not ACTIVE", ci.arn, ci.status),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 10_000_000;

    fn policy(mode: Mode, terminate_orphans: bool) -> Policy {
        Policy {
            mode,
            terminate_orphans,
            can_diagnose: true,
            diagnostic_timeout_ms: 120_000,
            poll_interval_ms: 5_000,
            handoff_margin_ms: 10_000,
        }
    }

    fn clocks() -> Clocks {
        Clocks {
            now_ms: NOW,
            registration_deadline_ms: NOW + 100_000,
            verdict_deadline_ms: NOW + 500_000,
            invocation_deadline_ms: NOW + 600_000,
            heartbeat_base_ms: NOW,
            heartbeat_every_ms: 100_000,
            attempt: 0,
        }
    }

    fn late() -> Clocks {
        Clocks {
            now_ms: NOW + 100_000,
            ..clocks()
        }
    }

    fn observed(state: &str, ec2: &str, ci: Option<(InstanceStatus, bool)>) -> Observed {
        Observed {
            warm_pool: false,
            asg_instance: Some(AsgInstance {
                instance_id: "i-12345678".into(),
                asg: "g".into(),
                lifecycle_state: state.into(),
            }),
            ec2_state: Some(Ec2State::parse(ec2)),
            container_instance: ci.map(|(status, agent_connected)| ContainerInstance {
                cluster: "prod".into(),
                arn: "ci-1".into(),
                ec2_instance_id: "i-12345678".into(),
                status,
                agent_connected,
                running_tasks_count: 0,
                pending_tasks_count: 0,
                registered_ms: None,
                drain_token: None,
                drain_hook: None,
                drain_started_ms: None,
                drain_hop: None,
                early_drain: None,
            }),
            diagnosis: Diagnosis::NotStarted,
            superseded_by: None,
        }
    }

    fn findings() -> Findings {
        Findings {
            outcome: Outcome::Completed,
            problems: vec!["agent_container fail: OOMKilled".into()],
            ssm_status: Some("Failed".into()),
            exit_code: Some(8),
            registered_on_host: Some(false),
        }
    }

    fn step(o: &Observed, p: &Policy, c: &Clocks) -> Step {
        decide(o, p, c)
    }

    #[test]
    fn warm_pool_continues_at_once() {
        let p = policy(Mode::Hook, true);
        let o = Observed {
            warm_pool: true,
            asg_instance: None,
            ec2_state: None,
            container_instance: None,
            diagnosis: Diagnosis::NotStarted,
            superseded_by: None,
        };
        assert_eq!(
            step(&o, &p, &clocks()),
            Step::Complete {
                result: ActionResult::Continue,
                verdict: Verdict::WarmPool
            }
        );
        let o = observed("Warmed:Pending:Wait", "running", None);
        assert_eq!(
            step(&o, &p, &late()),
            Step::Complete {
                result: ActionResult::Continue,
                verdict: Verdict::WarmPool
            }
        );

        // No hook (EC2 Instance Launch Successful with Destination WarmPool):
        // reported, never an orphan, never terminated, even after the deadline.
        let o = Observed {
            warm_pool: true,
            asg_instance: None,
            ec2_state: None,
            container_instance: None,
            diagnosis: Diagnosis::NotStarted,
            superseded_by: None,
        };
        assert_eq!(
            step(&o, &policy(Mode::NoHook, true), &late()),
            Step::Report {
                verdict: Verdict::WarmPool
            }
        );
    }

    #[test]
    fn registered_means_active_and_connected() {
        let p = policy(Mode::Hook, true);
        let registered = Verdict::Registered {
            cluster: "prod".into(),
            container_instance: "ci-1".into(),
        };
        let o = observed(
            "Pending:Wait",
            "running",
            Some((InstanceStatus::Active, true)),
        );
        assert_eq!(
            step(&o, &p, &clocks()),
            Step::Complete {
                result: ActionResult::Continue,
                verdict: registered.clone()
            }
        );
        // Even late, and even while a diagnosis runs.
        let mut o2 = o.clone();
        o2.diagnosis = Diagnosis::Running {
            command_id: "c".into(),
            sent_at_ms: NOW,
        };
        assert!(matches!(
            step(&o2, &p, &late()),
            Step::Complete {
                result: ActionResult::Continue,
                ..
            }
        ));
        // No-hook mode: nothing to complete, just report.
        assert_eq!(
            step(&o, &policy(Mode::NoHook, true), &clocks()),
            Step::Report {
                verdict: registered
            }
        );
        // Disconnected agent or not ACTIVE: not registered, keep waiting.
        for ci in [
            Some((InstanceStatus::Active, false)),
            Some((InstanceStatus::Registering, true)),
            Some((InstanceStatus::Draining, true)),
            None,
        ] {
            let o = observed("Pending:Wait", "running", ci.clone());
            assert_eq!(
                step(&o, &p, &clocks()),
                Step::Wait {
                    waiting_for: WaitingFor::Registration,
                    sleep_ms: 5_000
                },
                "{ci:?}"
            );
        }
    }

    #[test]
    fn stops_when_nothing_waits_or_the_instance_is_gone() {
        let p = policy(Mode::Hook, false);
        for state in ["InService", "Terminating:Wait", "Pending:Proceed"] {
            assert_eq!(
                step(&observed(state, "running", None), &p, &clocks()),
                Step::Stop(StopReason::NotWaiting {
                    lifecycle_state: Some(state.into())
                })
            );
        }
        for ec2 in ["terminated", "shutting-down", "stopped"] {
            assert_eq!(
                step(&observed("Pending:Wait", ec2, None), &p, &clocks()),
                Step::Stop(StopReason::InstanceGone {
                    ec2_state: Some(ec2.into())
                })
            );
        }
        let mut unknown = observed("Pending:Wait", "running", None);
        unknown.ec2_state = None;
        assert_eq!(
            step(&unknown, &p, &clocks()),
            Step::Stop(StopReason::InstanceGone { ec2_state: None })
        );
        // No-hook mode: gone from (or leaving) the group.
        let nohook = policy(Mode::NoHook, true);
        assert_eq!(
            step(&observed("Terminating", "running", None), &nohook, &late()),
            Step::Stop(StopReason::LeftGroup {
                lifecycle_state: Some("Terminating".into())
            })
        );
        let mut gone = observed("InService", "running", None);
        gone.asg_instance = None;
        assert_eq!(
            step(&gone, &nohook, &late()),
            Step::Stop(StopReason::LeftGroup {
                lifecycle_state: None
            })
        );
    }

    /// Another invocation carries the action: stop, even with a verdict at
    /// hand (the other one gives it).
    #[test]
    fn a_superseded_invocation_stops_without_a_verdict() {
        let p = policy(Mode::Hook, true);
        for ci in [None, Some((InstanceStatus::Active, true))] {
            let mut o = observed("Pending:Wait", "running", ci);
            o.superseded_by = Some("hop 4".into());
            for c in [clocks(), late()] {
                assert_eq!(
                    step(&o, &p, &c),
                    Step::Stop(StopReason::Superseded { by: "hop 4".into() })
                );
            }
        }
        // The look stopped at the claim: Auto Scaling was not asked.
        let mut o = observed("Pending:Wait", "running", None);
        o.asg_instance = None;
        o.superseded_by = Some("0123456789abcdef".into());
        assert_eq!(
            step(&o, &p, &clocks()),
            Step::Stop(StopReason::Superseded {
                by: "0123456789abcdef".into()
            })
        );
    }

    #[test]
    fn waits_for_ec2_then_registration() {
        let p = policy(Mode::Hook, false);
        assert_eq!(
            step(&observed("Pending:Wait", "pending", None), &p, &clocks()),
            Step::Wait {
                waiting_for: WaitingFor::Ec2Running,
                sleep_ms: 5_000
            }
        );
        let c = Clocks {
            invocation_deadline_ms: NOW + 14_999,
            ..clocks()
        };
        assert_eq!(
            step(&observed("Pending:Wait", "running", None), &p, &c),
            Step::HandOff {
                waiting_for: WaitingFor::Registration
            }
        );
        // A heartbeat falling due wakes the verification early (the heartbeater
        // sends it; the next look follows it).
        assert_eq!(
            step(
                &observed("Pending:Wait", "running", None),
                &p,
                &Clocks {
                    heartbeat_base_ms: NOW - 97_000,
                    ..clocks()
                },
            ),
            Step::Wait {
                waiting_for: WaitingFor::Registration,
                sleep_ms: 3_000
            }
        );
    }

    #[test]
    fn orphan_is_diagnosed_then_judged() {
        let o = observed("Pending:Wait", "running", None);
        let p = policy(Mode::Hook, false);
        assert_eq!(step(&o, &p, &late()), Step::Diagnose);
        let mut running = o.clone();
        running.diagnosis = Diagnosis::Running {
            command_id: "c".into(),
            sent_at_ms: NOW + 90_000,
        };
        assert_eq!(
            step(&running, &p, &late()),
            Step::Wait {
                waiting_for: WaitingFor::Diagnosis,
                sleep_ms: 5_000
            }
        );
        let mut done = o.clone();
        done.diagnosis = Diagnosis::Finished(findings());
        let why = "no container instance registered for it in the clusters searched".to_owned();
        let orphan = Verdict::Orphan {
            why: why.clone(),
            findings: findings(),
        };
        let table = [
            (
                Mode::Hook,
                false,
                Step::Complete {
                    result: ActionResult::Continue,
                    verdict: orphan.clone(),
                },
            ),
            (
                Mode::Hook,
                true,
                Step::Complete {
                    result: ActionResult::Abandon,
                    verdict: orphan.clone(),
                },
            ),
            (
                Mode::NoHook,
                false,
                Step::Report {
                    verdict: orphan.clone(),
                },
            ),
            (
                Mode::NoHook,
                true,
                Step::Terminate {
                    verdict: orphan.clone(),
                },
            ),
        ];
        for (mode, terminate, expected) in table {
            assert_eq!(
                step(&done, &policy(mode, terminate), &late()),
                expected,
                "{mode:?} {terminate}"
            );
        }
    }

    #[test]
    fn diagnosis_is_bounded() {
        let p = policy(Mode::Hook, true);
        let mut o = observed(
            "Pending:Wait",
            "running",
            Some((InstanceStatus::Active, false)),
        );
        o.diagnosis = Diagnosis::Running {
            command_id: "c".into(),
            sent_at_ms: NOW - 20_000,
        };
        let Step::Complete {
            result,
            verdict: Verdict::Orphan { why, findings },
        } = step(&o, &p, &late())
        else {
            panic!()
        };
        assert_eq!(result, ActionResult::Abandon);
        assert!(why.contains("agent is disconnected"), "{why}");
        assert_eq!(findings.outcome, Outcome::TimedOut);
        // Out of hook time: judge with what we have, even before diagnosing.
        let o = observed("Pending:Wait", "running", None);
        let c = Clocks {
            now_ms: NOW + 500_000,
            registration_deadline_ms: NOW + 500_000,
            ..clocks()
        };
        assert!(matches!(
            step(&o, &p, &c),
            Step::Complete {
                result: ActionResult::Abandon,
                verdict: Verdict::Orphan { .. }
            }
        ));
        // No document configured: judged without a diagnosis.
        let p = Policy {
            can_diagnose: false,
            ..policy(Mode::Hook, false)
        };
        let Step::Complete {
            verdict: Verdict::Orphan { findings, .. },
            ..
        } = step(&o, &p, &late())
        else {
            panic!()
        };
        assert_eq!(findings.outcome, Outcome::NotConfigured);
        // Never reached running: no diagnosis possible.
        let o = observed("Pending:Wait", "pending", None);
        let Step::Complete {
            verdict: Verdict::Orphan { findings, .. },
            ..
        } = step(&o, &policy(Mode::Hook, false), &late())
        else {
            panic!()
        };
        assert_eq!(findings.outcome, Outcome::NotRunning);
    }

    #[test]
    fn hop_limit() {
        let o = observed("Pending:Wait", "running", None);
        let c = Clocks {
            attempt: MAX_HOPS + 1,
            ..clocks()
        };
        assert_eq!(
            step(&o, &policy(Mode::Hook, true), &c),
            Step::Complete {
                result: ActionResult::Continue,
                verdict: Verdict::HopLimit {
                    attempt: MAX_HOPS + 1
                }
            }
        );
    }
}
