//! The undo of an early drain. A Spot warning, a rebalance recommendation or a
//! scheduled change sets an instance DRAINING ahead of Auto Scaling
//! ([`super::signal`]); when the warning does not end in termination (a Spot
//! `stop` or `hibernate`, a rebalance with no interruption after it, reboot
//! maintenance), the instance comes back, InService, and would stay DRAINING
//! for good: capacity nobody uses.
//!
//! Who started a drain is written down: the early drain puts the
//! [`EARLY_DRAIN_ATTRIBUTE`] on the container instance just before it sets
//! DRAINING (its reason, its time, and the end of the warning's window). Only
//! a drain with that marker is ever undone, and only while no terminate hook
//! claims the instance ([`crate::model::DRAIN_HOOK_ATTRIBUTE`]) and Auto
//! Scaling has it InService (or it is in no group). An operator's DRAINING has
//! no marker and is never touched.
//!
//! The instance is *back* when the window has ended: at the latest the
//! window's end ([`window_end_ms`]), at once when EC2 reports it `running`
//! after the drain (the `EC2 Instance State-change Notification`; the marker's
//! window is then closed in ECS too, so any later look undoes it). It is set
//! ACTIVE once its ECS agent is connected: the running event waits for the
//! agent a while ([`AGENT_WAIT`]), and ECS's own `ECS Container Instance State
//! Change` event of a drained instance (the agent connecting again, which ECS
//! also reports several times an hour) looks again.
//!
//! [`decide`] is the pure decision; [`Drainer::undo_early_drain`] carries it out.

use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};
use tracing::{debug, info, warn};

use crate::drain::events::{InstanceStateChange, Signal};
use crate::drain::run::Drainer;
use crate::error::Error;
use crate::hook::dispatch::ignored;
use crate::hook::lookup::find_container_instance;
use crate::model::{
    AsgInstance, ContainerInstance, EARLY_DRAIN_ATTRIBUTE, EarlyDrain, InstanceStatus,
    LifecycleState,
};
use crate::ports::{AutoScaling, Ecs, Publisher};
use crate::report::{Event, Notification};
use crate::time::{epoch_ms, epoch_ms_of};

/// A Spot interruption comes two minutes after its warning; ten more cover a
/// late interruption (and Auto Scaling's terminate hook, which then claims the
/// instance). Still in service after that, it was not interrupted.
pub const SPOT_WINDOW_MS: u64 = 12 * 60_000;

/// A rebalance recommendation comes ahead of an interruption (often 10-20
/// minutes) or of Capacity Rebalancing's replacement, or of nothing at all.
/// Still in service 30 minutes later, the risk did not materialise.
pub const REBALANCE_WINDOW_MS: u64 = 30 * 60_000;

/// After a scheduled change's window: its `endTime`, or two hours after its
/// `startTime` when it gives no end.
pub const SCHEDULED_WINDOW_MS: u64 = 2 * 3_600_000;

/// A scheduled change whose times cannot be read: a day.
pub const UNKNOWN_WINDOW_MS: u64 = 24 * 3_600_000;

/// How long the running event waits for the instance's ECS agent to connect
/// (it usually does within a minute of boot) before it leaves the undo to the
/// agent's connection event.
pub const AGENT_WAIT: Duration = Duration::from_secs(120);

/// The marker an early drain writes for `signal`, drained at `now_ms`.
pub fn marker_for(signal: &Signal, now_ms: u64) -> EarlyDrain {
    let (reason, until_ms) = match signal {
        Signal::SpotInterruption {
            instance_action, ..
        } => {
            let action = match instance_action.as_str() {
                a @ ("stop" | "hibernate") => a,
                _ => "terminate",
            };
            (format!("spot_{action}"), now_ms + SPOT_WINDOW_MS)
        }
        Signal::Rebalance { .. } => (
            "rebalance_recommendation".to_owned(),
            now_ms + REBALANCE_WINDOW_MS,
        ),
        Signal::ScheduledChange {
            event_type_code,
            start_time,
            end_time,
            ..
        } => {
            let code: String = event_type_code
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .take(80)
                .collect();
            (
                format!("scheduled_{}", code.to_ascii_lowercase()),
                window_end_ms(start_time.as_deref(), end_time.as_deref(), now_ms),
            )
        }
    };
    EarlyDrain {
        reason,
        since_ms: now_ms,
        until_ms,
    }
}

/// The end of a scheduled change's window: its end time, else its start time
/// plus [`SCHEDULED_WINDOW_MS`], else a day from now; never sooner than a Spot
/// window from now (a late event must not undo its own drain at once).
pub fn window_end_ms(start: Option<&str>, end: Option<&str>, now_ms: u64) -> u64 {
    let end = end.and_then(health_time).or_else(|| {
        start
            .and_then(health_time)
            .map(|s| s.saturating_add(SCHEDULED_WINDOW_MS))
    });
    end.unwrap_or(now_ms + UNKNOWN_WINDOW_MS)
        .max(now_ms + SPOT_WINDOW_MS)
}

/// AWS Health's times: `Mon, 30 Nov 2026 09:00:00 GMT` (HTTP date), or RFC 3339.
fn health_time(s: &str) -> Option<u64> {
    use aws_smithy_types::date_time::{DateTime, Format};
    DateTime::from_str(s, Format::HttpDate)
        .ok()
        .and_then(|t| t.to_millis().ok())
        .and_then(|ms| u64::try_from(ms).ok())
        .or_else(|| epoch_ms_of(s))
}

/// What an undo looks at: the container instance, and (once the cheap checks
/// pass) its Auto Scaling lifecycle state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Group {
    /// Not looked at yet.
    Unknown,
    /// In no Auto Scaling group: no terminate hook can ever claim it.
    None,
    In(AsgInstance),
}

/// Why an early drain is left as it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Leave {
    /// Not registered in the clusters of CLUSTER_NAME.
    NotRegistered,
    /// No early-drain marker: an operator's DRAINING, or a terminate hook's
    /// drain. Never undone.
    NotAnEarlyDrain,
    /// A terminate hook's drain has claimed the instance. Never undone.
    TerminateHookClaims,
    /// Neither ACTIVE nor DRAINING (registering, deregistering).
    NotDraining,
    /// The warning's window is still open: it may still end in termination.
    WindowOpen,
    /// Auto Scaling has it in another state than InService (leaving, in
    /// standby, waiting on a hook).
    NotInService,
}

/// The undo's decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Undo {
    /// Set ACTIVE, then remove the marker.
    SetActive,
    /// ACTIVE already (an operator, or an undo whose marker removal failed):
    /// remove the stale marker, so that a later DRAINING by hand is not taken
    /// for an early drain.
    ClearMarker,
    /// Look at the instance's Auto Scaling lifecycle state.
    LookAtGroup,
    /// Back, but its ECS agent is not connected yet.
    WaitForAgent,
    Leave(Leave),
}

/// The decision, from what was observed (`None`: not registered) at `now_ms`.
pub fn decide(ci: Option<&ContainerInstance>, group: &Group, now_ms: u64) -> Undo {
    let Some(ci) = ci else {
        return Undo::Leave(Leave::NotRegistered);
    };
    let Some(marker) = &ci.early_drain else {
        return Undo::Leave(Leave::NotAnEarlyDrain);
    };
    if ci.drain_hook.is_some() {
        return Undo::Leave(Leave::TerminateHookClaims);
    }
    match ci.status {
        InstanceStatus::Draining => {}
        InstanceStatus::Active => return Undo::ClearMarker,
        _ => return Undo::Leave(Leave::NotDraining),
    }
    if now_ms < marker.until_ms {
        return Undo::Leave(Leave::WindowOpen);
    }
    if !ci.agent_connected {
        return Undo::WaitForAgent;
    }
    match group {
        Group::Unknown => Undo::LookAtGroup,
        Group::In(member) if member.lifecycle_state != LifecycleState::InService => {
            Undo::Leave(Leave::NotInService)
        }
        Group::None | Group::In(_) => Undo::SetActive,
    }
}

/// The marker with its window closed at `running_at_ms`, when EC2 reports the
/// instance running after the drain (within the window); `None` otherwise (a
/// late delivery of an event from before the drain says nothing).
pub fn closed_at(marker: &EarlyDrain, running_at_ms: u64) -> Option<EarlyDrain> {
    (running_at_ms > marker.since_ms && running_at_ms < marker.until_ms).then(|| EarlyDrain {
        until_ms: running_at_ms,
        ..marker.clone()
    })
}

impl<E: Ecs, A: AutoScaling, P: Publisher> Drainer<E, A, P> {
    /// `EC2 Instance State-change Notification`: a `running` instance that an
    /// early drain left DRAINING is back. Its marker's window is closed (one
    /// PutAttributes, so that any later look undoes it), then it is undone,
    /// waiting up to [`AGENT_WAIT`] for its ECS agent.
    pub(super) async fn on_instance_state(
        &self,
        change: InstanceStateChange,
    ) -> Result<Value, Error> {
        let instance_id = &change.instance_id;
        if !change.state.is_running() {
            debug!(%instance_id, state = %change.state, "EC2 state change other than running: nothing to undo");
            return Ok(ignored("EC2 state change other than running"));
        }
        let now = epoch_ms();
        let running_at = change
            .time
            .as_deref()
            .and_then(epoch_ms_of)
            .unwrap_or(now)
            .min(now);
        let Some(mut ci) =
            find_container_instance(&self.ecs, &self.config.common.clusters, instance_id).await?
        else {
            debug!(%instance_id, "running again, but not registered in the clusters searched");
            return Ok(
                json!({"outcome": "undo", "instance_id": instance_id, "done": "not_registered"}),
            );
        };
        let closed = ci
            .early_drain
            .as_ref()
            .filter(|_| ci.drain_hook.is_none() && ci.status == InstanceStatus::Draining)
            .and_then(|m| closed_at(m, running_at));
        if let Some(marker) = closed {
            if !self.config.common.dry_run {
                self.ecs
                    .set_attributes(
                        &ci.cluster,
                        &ci.arn,
                        &[(EARLY_DRAIN_ATTRIBUTE, &marker.to_value())],
                    )
                    .await?;
            }
            ci.early_drain = Some(marker);
        }
        self.undo_early_drain(ci, AGENT_WAIT).await
    }

    /// Undoes the early drain of `ci` if [`decide`] says so, looking again
    /// every poll interval (at most 5 s) while only the agent is missing, for
    /// up to `agent_wait`. The outcome says what was done.
    pub(super) async fn undo_early_drain(
        &self,
        mut ci: ContainerInstance,
        agent_wait: Duration,
    ) -> Result<Value, Error> {
        let give_up = tokio::time::Instant::now() + agent_wait;
        let instance_id = ci.ec2_instance_id.clone();
        let mut group = Group::Unknown;
        let poll = self.config.common.poll_interval.min(Duration::from_secs(5));
        let outcome = |done: &str, ci: &ContainerInstance| {
            json!({
                "outcome": "undo",
                "instance_id": instance_id,
                "container_instance": ci.arn,
                "done": done,
                "early_drain": ci.early_drain,
            })
        };
        loop {
            let now = epoch_ms();
            match decide(Some(&ci), &group, now) {
                Undo::LookAtGroup => {
                    group = match self.hold.autoscaling.instance(&instance_id).await? {
                        Some(member) => Group::In(member),
                        None => Group::None,
                    };
                }
                Undo::WaitForAgent if tokio::time::Instant::now() + poll <= give_up => {
                    tokio::time::sleep(poll).await;
                    match self
                        .ecs
                        .describe_container_instance(&ci.cluster, &ci.arn)
                        .await?
                    {
                        Some(again) => ci = again,
                        None => {
                            info!(%instance_id, container_instance = %ci.arn, "deregistered while waiting for its agent: nothing to undo");
                            return Ok(outcome("not_registered", &ci));
                        }
                    }
                }
                Undo::WaitForAgent if agent_wait.is_zero() => {
                    info!(
                        %instance_id,
                        container_instance = %ci.arn,
                        undo = "agent_not_connected",
                        "an early-drained instance whose ECS agent is not connected: left DRAINING until the agent connects"
                    );
                    return Ok(outcome("agent_not_connected", &ci));
                }
                Undo::WaitForAgent => {
                    warn!(
                        %instance_id,
                        cluster = %ci.cluster,
                        container_instance = %ci.arn,
                        undo = "agent_not_connected",
                        waited_s = agent_wait.as_secs(),
                        "an early-drained instance is back but its ECS agent is not connected yet: left DRAINING; the agent's connection event (ECS Container Instance State Change) undoes it"
                    );
                    return Ok(outcome("agent_not_connected", &ci));
                }
                Undo::Leave(why) => {
                    let reason = ci.early_drain.as_ref().map(|m| m.reason.as_str());
                    let done = serde_json::to_value(&why)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default();
                    match why {
                        Leave::NotAnEarlyDrain if ci.status == InstanceStatus::Draining => info!(
                            %instance_id,
                            container_instance = %ci.arn,
                            undo = "left",
                            why = done,
                            "DRAINING without an early-drain marker (an operator's or a terminate hook's drain): never undone"
                        ),
                        _ => info!(
                            %instance_id,
                            container_instance = %ci.arn,
                            undo = "left",
                            why = done,
                            early_drain = reason,
                            "early drain left as it is"
                        ),
                    }
                    return Ok(outcome(&done, &ci));
                }
                Undo::ClearMarker if self.config.common.dry_run => {
                    info!(%instance_id, container_instance = %ci.arn, "DRY_RUN: ACTIVE again already; would remove its early-drain marker");
                    return Ok(outcome("dry_run", &ci));
                }
                Undo::ClearMarker => {
                    self.ecs
                        .delete_attributes(&ci.cluster, &ci.arn, &[EARLY_DRAIN_ATTRIBUTE])
                        .await?;
                    info!(%instance_id, container_instance = %ci.arn, "ACTIVE again already: removed its early-drain marker");
                    return Ok(outcome("marker_removed", &ci));
                }
                Undo::SetActive => return self.set_active_again(&ci, &group, now).await,
            }
        }
    }

    /// ACTIVE, then the marker removed (a failure between the two leaves an
    /// ACTIVE instance with a marker, which the next look removes).
    async fn set_active_again(
        &self,
        ci: &ContainerInstance,
        group: &Group,
        now_ms: u64,
    ) -> Result<Value, Error> {
        let instance_id = &ci.ec2_instance_id;
        let marker = ci.early_drain.clone();
        let (reason, drained_s) = marker.as_ref().map_or(("", 0), |m| {
            (m.reason.as_str(), now_ms.saturating_sub(m.since_ms) / 1000)
        });
        let group_name = match group {
            Group::In(member) => Some(member.asg.clone()),
            Group::None | Group::Unknown => None,
        };
        if self.config.common.dry_run {
            info!(%instance_id, container_instance = %ci.arn, early_drain = reason, "DRY_RUN: would set the early-drained instance ACTIVE again");
            return Ok(json!({"outcome": "undo", "instance_id": instance_id, "done": "dry_run"}));
        }
        if let Err(failure) = self.ecs.set_active(&ci.cluster, &ci.arn).await? {
            return Err(failure.of_state_update(&ci.arn));
        }
        // ECS has no conditional write: a terminate action that started between
        // the look and the write must find the instance DRAINING again. Look
        // once more; the terminate drain also sets DRAINING at its next look.
        if let Some(why) = self.taken_meanwhile(ci, group).await? {
            if let Err(failure) = self.ecs.set_draining(&ci.cluster, &ci.arn).await? {
                return Err(failure.of_state_update(&ci.arn));
            }
            warn!(
                %instance_id,
                container_instance = %ci.arn,
                undo = "reverted",
                why,
                "a terminate action took the instance while its early drain was being undone: DRAINING again"
            );
            return Ok(json!({
                "outcome": "undo",
                "instance_id": instance_id,
                "container_instance": ci.arn,
                "done": "reverted",
                "early_drain": marker,
            }));
        }
        self.ecs
            .delete_attributes(&ci.cluster, &ci.arn, &[EARLY_DRAIN_ATTRIBUTE])
            .await?;
        // The urgent drain counted in the cluster's drain budget
        // (MAX_CONCURRENT_DRAINS) is over: its slot goes back now, not when
        // its lease runs out.
        self.release_slot(&ci.cluster, instance_id, now_ms).await;
        info!(
            %instance_id,
            cluster = %ci.cluster,
            container_instance = %ci.arn,
            undo = "set_active",
            early_drain = reason,
            drained_s,
            asg = group_name.as_deref().unwrap_or(""),
            "an early drain did not end in termination: the instance is back, in service, its agent connected; set ACTIVE again"
        );
        let mut note = Notification::new(Event::DrainUndone, &ci.cluster)
            .instance(instance_id)
            .detail(json!({
                "reason": reason,
                "drained_seconds": drained_s,
                "container_instance": ci.arn,
            }));
        note.group = group_name;
        self.hold.reporter.notify(&self.hold.publisher, note).await;
        Ok(json!({
            "outcome": "undo",
            "instance_id": instance_id,
            "container_instance": ci.arn,
            "done": "set_active",
            "early_drain": marker,
        }))
    }
}

impl<E: Ecs, A: AutoScaling, P: Publisher> Drainer<E, A, P> {
    /// Whether a terminate action took the instance since the undo looked:
    /// it left InService, or a terminate hook's drain claimed it.
    async fn taken_meanwhile(
        &self,
        ci: &ContainerInstance,
        group: &Group,
    ) -> Result<Option<&'static str>, Error> {
        if let Group::In(_) = group {
            let state = self
                .hold
                .autoscaling
                .instance(&ci.ec2_instance_id)
                .await?
                .map(|m| m.lifecycle_state);
            if state.is_some_and(|s| s != LifecycleState::InService) {
                return Ok(Some("not_in_service"));
            }
        }
        let claimed = self
            .ecs
            .describe_container_instance(&ci.cluster, &ci.arn)
            .await?
            .is_some_and(|again| again.drain_hook.is_some());
        Ok(claimed.then_some("terminate_hook_claims"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::model::InstanceId;

    const T: u64 = 1_764_396_000_000;

    fn ci(status: InstanceStatus, marker: Option<EarlyDrain>) -> ContainerInstance {
        ContainerInstance {
            cluster: "c1".into(),
            arn: "arn:aws:ecs:us-east-1:123456789012:container-instance/c1/abc".into(),
            ec2_instance_id: "i-0123456789abcdef0".into(),
            status,
            agent_connected: true,
            running_tasks_count: 0,
            pending_tasks_count: 0,
            registered_ms: None,
            drain_token: None,
            drain_hook: None,
            drain_started_ms: None,
            drain_hop: None,
            early_drain: marker,
        }
    }

    fn member(state: LifecycleState) -> Group {
        Group::In(AsgInstance {
            instance_id: "i-0123456789abcdef0".into(),
            asg: "fleet".into(),
            lifecycle_state: state,
        })
    }

    fn spot(action: &str) -> EarlyDrain {
        marker_for(
            &Signal::SpotInterruption {
                instance_id: InstanceId::from("i-0123456789abcdef0"),
                instance_action: action.into(),
                time: None,
            },
            T,
        )
    }

    #[test]
    fn the_marker_reads_back_what_was_written() {
        let m = spot("stop");
        assert_eq!(m.reason, "spot_stop");
        assert_eq!((m.since_ms, m.until_ms), (T, T + SPOT_WINDOW_MS));
        assert_eq!(
            m.to_value(),
            format!("spot_stop:{T}:{}", T + SPOT_WINDOW_MS)
        );
        assert_eq!(EarlyDrain::parse(&m.to_value()), Some(m));
        for bad in [
            "",
            "spot_stop",
            "spot_stop:1",
            ":1:2",
            "spot:x:2",
            "spot:1:-2",
        ] {
            assert_eq!(EarlyDrain::parse(bad), None, "{bad:?}");
        }
        // Within ECS's limits: at most 128 characters of the allowed set.
        let long = marker_for(
            &Signal::ScheduledChange {
                event_type_code: "AWS_EC2_INSTANCE_REBOOT_MAINTENANCE_SCHEDULED".repeat(4),
                start_time: None,
                end_time: None,
                instance_ids: vec![],
            },
            T,
        );
        let v = long.to_value();
        assert!(v.len() <= 128, "{v}");
        assert!(
            v.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_:".contains(c)),
            "{v}"
        );
        assert_eq!(spot("hibernate").reason, "spot_hibernate");
        assert_eq!(spot("terminate").reason, "spot_terminate");
        assert_eq!(spot("anything else").reason, "spot_terminate");
    }

    #[test]
    fn each_warning_has_its_window() {
        let rebalance = marker_for(
            &Signal::Rebalance {
                instance_id: "i-0123456789abcdef0".into(),
            },
            T,
        );
        assert_eq!(rebalance.reason, "rebalance_recommendation");
        assert_eq!(rebalance.until_ms, T + REBALANCE_WINDOW_MS);
        let scheduled = |start: Option<&str>, end: Option<&str>| {
            marker_for(
                &Signal::ScheduledChange {
                    event_type_code: "AWS_EC2_INSTANCE_REBOOT_MAINTENANCE_SCHEDULED".into(),
                    start_time: start.map(str::to_owned),
                    end_time: end.map(str::to_owned),
                    instance_ids: vec![],
                },
                T,
            )
        };
        // T is 2025-11-29T06:00:00Z; the maintenance a day later.
        let start = "Sun, 30 Nov 2025 06:00:00 GMT";
        let start_ms = T + 24 * 3_600_000;
        let m = scheduled(Some(start), None);
        assert_eq!(
            m.reason,
            "scheduled_aws_ec2_instance_reboot_maintenance_scheduled"
        );
        assert_eq!(m.until_ms, start_ms + SCHEDULED_WINDOW_MS);
        let m = scheduled(Some(start), Some("2025-11-30T09:00:00Z"));
        assert_eq!(
            m.until_ms,
            start_ms + 3 * 3_600_000,
            "the end time when given"
        );
        assert_eq!(scheduled(None, None).until_ms, T + UNKNOWN_WINDOW_MS);
        assert_eq!(
            scheduled(Some("soon"), None).until_ms,
            T + UNKNOWN_WINDOW_MS
        );
        // A late event (its window over already) still gives the warning a Spot window.
        let m = scheduled(Some("Mon, 01 Jan 2024 00:00:00 GMT"), None);
        assert_eq!(m.until_ms, T + SPOT_WINDOW_MS);
    }

    #[test]
    fn only_an_early_drain_whose_window_ended_is_undone() {
        let back = T + SPOT_WINDOW_MS;
        let drained = ci(InstanceStatus::Draining, Some(spot("stop")));
        let in_service = member(LifecycleState::InService);
        // The whole path: look at the group, then set ACTIVE.
        assert_eq!(
            decide(Some(&drained), &Group::Unknown, back),
            Undo::LookAtGroup
        );
        assert_eq!(decide(Some(&drained), &in_service, back), Undo::SetActive);
        assert_eq!(decide(Some(&drained), &Group::None, back), Undo::SetActive);
        // The window still open: it may yet be interrupted (no group call).
        assert_eq!(
            decide(Some(&drained), &Group::Unknown, back - 1),
            Undo::Leave(Leave::WindowOpen)
        );
        // The agent not connected: wait (before asking Auto Scaling).
        let mut away = drained.clone();
        away.agent_connected = false;
        assert_eq!(
            decide(Some(&away), &Group::Unknown, back),
            Undo::WaitForAgent
        );
        // Not in service: leaving, in standby, waiting on a hook.
        for state in [
            LifecycleState::TerminatingWait,
            LifecycleState::TerminatingRetained,
            LifecycleState::Standby,
            LifecycleState::PendingWait,
        ] {
            assert_eq!(
                decide(Some(&drained), &member(state.clone()), back),
                Undo::Leave(Leave::NotInService),
                "{state}"
            );
        }
        assert_eq!(
            decide(None, &in_service, back),
            Undo::Leave(Leave::NotRegistered)
        );
    }

    #[test]
    fn never_an_operators_or_a_terminate_hooks_drain() {
        let late = T + 10 * UNKNOWN_WINDOW_MS;
        let in_service = member(LifecycleState::InService);
        // An operator's DRAINING: no marker.
        let by_hand = ci(InstanceStatus::Draining, None);
        assert_eq!(
            decide(Some(&by_hand), &in_service, late),
            Undo::Leave(Leave::NotAnEarlyDrain)
        );
        // A terminate hook claimed the early-drained instance.
        let mut claimed = ci(InstanceStatus::Draining, Some(spot("terminate")));
        claimed.drain_hook = Some("fleet-drain".into());
        assert_eq!(
            decide(Some(&claimed), &in_service, late),
            Undo::Leave(Leave::TerminateHookClaims)
        );
        // ACTIVE again with its marker: the marker goes, nothing else.
        let active = ci(InstanceStatus::Active, Some(spot("stop")));
        assert_eq!(decide(Some(&active), &in_service, T), Undo::ClearMarker);
        let leaving = ci(InstanceStatus::Deregistering, Some(spot("stop")));
        assert_eq!(
            decide(Some(&leaving), &in_service, late),
            Undo::Leave(Leave::NotDraining)
        );
    }

    #[test]
    fn a_running_event_after_the_drain_closes_the_window() {
        let m = spot("stop");
        let closed = closed_at(&m, T + 300_000).unwrap();
        assert_eq!(closed.until_ms, T + 300_000);
        assert_eq!((closed.reason.as_str(), closed.since_ms), ("spot_stop", T));
        // An event from before the drain (a late delivery) says nothing; one
        // after the window has nothing left to close.
        assert_eq!(closed_at(&m, T), None);
        assert_eq!(closed_at(&m, T - 1), None);
        assert_eq!(closed_at(&m, m.until_ms), None);
    }
}
