//! The one line logged per group and look: what was seen and what is done
//! about it (`decision` names it; a rollback carries [`ROLLBACK_ALARM`]).

use tracing::{debug, error, info, warn};

use crate::model::Refresh;
use crate::rollout::judge::{is_capacity_failure, judge};
use crate::rollout::run::{GroupReport, ROLLBACK_ALARM};
use crate::rollout::step::{Outcome, Phase, Step};
use crate::rollout::view::{ClusterView, replaced};

/// One line per group and look: what was seen and what is done about it.
pub(super) fn log_step(report: &GroupReport, cluster: &ClusterView, acting: bool) {
    let view = &report.view;
    let (on_target, total) = replaced(view, &report.target);
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
        } => log_wait(report, cluster, *phase, *unsteady_since),
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

/// The lines of a rollout under way: what is not blamed on it, launches
/// Auto Scaling retries for capacity, and how far it is.
fn log_wait(
    report: &GroupReport,
    cluster: &ClusterView,
    phase: Phase,
    unsteady_since: Option<u64>,
) {
    let view = &report.view;
    let (on_target, total) = replaced(view, &report.target);
    let percent = (on_target * 100).checked_div(total).unwrap_or(100);
    let refresh = view.refreshes.first();
    let refresh_id = refresh.map_or("", |r: &Refresh| r.id.as_str());
    let refresh_status = refresh.map(|r| r.status.to_string()).unwrap_or_default();
    let target_ami = report.target.as_str();
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
        if phase == Phase::Foreign { " (a refresh not started by ami-rollout is running)" } else { "" }
    )
}
