use super::*;
use crate::model::InstanceStatus;
use crate::rollout::fixtures::*;
use crate::rollout::tags::{REFUSED_AMI_TAG, Refusal};
use crate::rollout::view::{Member, target_for};

#[test]
fn start_walks_pin_create_start() {
    let mut g = group(&[OLD, OLD, OLD]);
    if let Ok(t) = &mut g.template {
        t.version = "$Latest".into();
    }
    assert_eq!(run(&g, start()), Step::Pin { version: 4 });
    g = group(&[OLD, OLD, OLD]);
    assert_eq!(run(&g, start()), Step::CreateVersion { from: 4 });
    g.prepared = Some(5);
    assert_eq!(run(&g, start()), Step::StartRefresh { version: 5 });
}

#[test]
fn floating_template_already_on_our_version_pins_its_source() {
    let mut g = group(&[OLD, OLD]);
    if let Ok(t) = &mut g.template {
        t.version = "$Latest".into();
        t.number = 5;
        t.ours = Some((NEW.into(), 4));
    }
    assert_eq!(run(&g, start()), Step::Pin { version: 4 });
}

#[test]
fn nothing_to_do_when_every_instance_runs_the_target() {
    let mut g = group(&[NEW, NEW]);
    g.members.push(Member {
        lifecycle_state: "Terminating:Wait".into(),
        ..member("i-old", OLD)
    });
    assert_eq!(run(&g, start()), Step::UpToDate);
    assert_eq!(run(&g, Intent::Watch), Step::UpToDate);
    assert_eq!(run(&g, Intent::Status), Step::UpToDate);
}

#[test]
fn watch_starts_nothing_new_but_resumes_a_prepared_version() {
    let mut g = group(&[OLD, OLD]);
    assert_eq!(run(&g, Intent::Watch), Step::Idle);
    // Crash between "new launch template version" and "start refresh".
    g.prepared = Some(5);
    assert_eq!(run(&g, Intent::Watch), Step::StartRefresh { version: 5 });
    assert_eq!(run(&g, Intent::Status), Step::Idle);
}

#[test]
fn a_running_refresh_is_watched_and_never_started_twice() {
    let mut g = group(&[NEW, OLD, OLD]);
    g.prepared = Some(5);
    for status in [
        RefreshStatus::Pending,
        RefreshStatus::InProgress,
        RefreshStatus::Baking,
    ] {
        g.refreshes = vec![ours(status)];
        assert_eq!(run(&g, start()), wait(Phase::Rolling));
        assert_eq!(run(&g, Intent::Watch), wait(Phase::Rolling));
    }
    g.refreshes = vec![ours(RefreshStatus::RollbackInProgress)];
    assert_eq!(run(&g, start()), wait(Phase::RollingBack));
    g.refreshes = vec![ours(RefreshStatus::Cancelling)];
    assert_eq!(run(&g, Intent::Watch), wait(Phase::Cancelling));
}

#[test]
fn a_refresh_that_is_not_ours_is_waited_for_not_rolled_back() {
    let mut g = group(&[OLD, OLD]);
    g.refreshes = vec![Refresh {
        ours: None,
        desired_version: Some(9),
        ..ours(RefreshStatus::InProgress)
    }];
    assert_eq!(run(&g, start()), wait(Phase::Foreign));
    assert_eq!(
        run(&g, Intent::Rollback { reason: "x".into() }),
        wait(Phase::Foreign)
    );
}

#[test]
fn a_refused_launch_rolls_back() {
    let mut g = group(&[NEW, OLD, OLD]);
    g.refreshes = vec![ours(RefreshStatus::InProgress)];
    g.refused_launches = vec!["i-9: Lifecycle Action Completed with ABANDON Result".into()];
    match run(&g, Intent::Watch) {
        Step::Rollback { reason } => assert!(reason.contains("i-9"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_orphan_rolls_back_after_the_registration_timeout() {
    let mut g = group(&[OLD, OLD]);
    g.refreshes = vec![ours(RefreshStatus::InProgress)];
    let mut new = member("i-new", NEW);
    new.ecs = None;
    new.launched_ms = Some(NOW - 200_000);
    g.members.push(new.clone());
    assert_eq!(run(&g, Intent::Watch), wait(Phase::Rolling));
    g.members.pop();
    new.launched_ms = Some(NOW - 400_000);
    g.members.push(new.clone());
    match run(&g, Intent::Watch) {
        Step::Rollback { reason } => {
            assert!(reason.contains("i-new is an orphan"), "{reason}");
            assert!(reason.contains("not registered"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    // Still in Pending:Wait (launch-verify holds it): not yet an orphan.
    g.members.pop();
    new.lifecycle_state = "Pending:Wait".into();
    g.members.push(new);
    assert_eq!(run(&g, Intent::Watch), wait(Phase::Rolling));
}

#[test]
fn unsteady_cluster_is_marked_then_rolled_back_past_the_timeout() {
    let mut g = group(&[NEW, OLD, OLD]);
    g.refreshes = vec![ours(RefreshStatus::InProgress)];
    // (A service with two deployments counted before; now it is deploying
    // for reasons of its own: see below.)
    let cluster = cluster(vec![unsteady("web", 1, 1, &["i-0"])]);
    let step = |g: &GroupView| decide(g, &cluster, &Intent::Watch, NEW, LIMITS, NOW);
    assert_eq!(
        step(&g),
        Step::Wait {
            phase: Phase::Rolling,
            unsteady_since: Some(NOW)
        }
    );
    g.unsteady_since_ms = Some(NOW - 60_000);
    assert_eq!(
        step(&g),
        Step::Wait {
            phase: Phase::Rolling,
            unsteady_since: Some(NOW - 60_000)
        }
    );
    g.unsteady_since_ms = Some(NOW - 700_000);
    match step(&g) {
        Step::Rollback { reason } => assert!(reason.contains("web (1/2"), "{reason}"),
        other => panic!("{other:?}"),
    }
    // Steady again: the marker goes.
    g.unsteady_since_ms = Some(NOW - 60_000);
    assert_eq!(run(&g, Intent::Watch), wait(Phase::Rolling));
}

#[test]
fn a_new_instance_with_its_agent_disconnected_is_unsteady() {
    let mut g = group(&[OLD, OLD]);
    g.refreshes = vec![ours(RefreshStatus::InProgress)];
    let mut new = member("i-new", NEW);
    new.ecs = Some((InstanceStatus::Active, false));
    g.members.push(new);
    assert_eq!(
        run(&g, Intent::Watch),
        Step::Wait {
            phase: Phase::Rolling,
            unsteady_since: Some(NOW)
        }
    );
}

#[test]
fn success_waits_for_a_steady_cluster_then_is_done() {
    let mut g = group(&[NEW, NEW, NEW]);
    g.refreshes = vec![ours(RefreshStatus::Successful)];
    assert_eq!(
        run(&g, Intent::Watch),
        Step::Done {
            outcome: Outcome::Succeeded
        }
    );
    let cluster = cluster(vec![unsteady("web", 1, 1, &["i-1"])]);
    assert_eq!(
        decide(&g, &cluster, &Intent::Watch, NEW, LIMITS, NOW),
        Step::Wait {
            phase: Phase::Settling,
            unsteady_since: Some(NOW)
        }
    );
    g.unsteady_since_ms = Some(NOW - 700_000);
    match decide(&g, &cluster, &Intent::Watch, NEW, LIMITS, NOW) {
        Step::Restore { version, reason } => {
            assert_eq!(version, 4);
            assert!(reason.contains("unsteady"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn failed_or_cancelled_refresh_restores_what_it_replaced() {
    for status in [RefreshStatus::Failed, RefreshStatus::Cancelled] {
        let mut g = group(&[NEW, OLD, OLD]);
        g.refreshes = vec![Refresh {
            status_reason: Some("health checks failed".into()),
            ..ours(status.clone())
        }];
        match run(&g, Intent::Watch) {
            Step::Restore { version, reason } => {
                assert_eq!(version, 4);
                assert!(reason.contains("health checks failed"), "{reason}");
            }
            other => panic!("{status:?}: {other:?}"),
        }
        // Nothing replaced: nothing to restore.
        let mut g = group(&[OLD, OLD, OLD]);
        g.refreshes = vec![ours(status.clone())];
        assert!(
            matches!(
                run(&g, Intent::Watch),
                Step::Done {
                    outcome: Outcome::Failed { .. }
                }
            ),
            "{status:?}"
        );
    }
}

#[test]
fn rollback_outcomes() {
    let mut g = group(&[OLD, OLD, OLD]);
    g.refreshes = vec![Refresh {
        rollback_reason: Some("orphan".into()),
        ..ours(RefreshStatus::RollbackSuccessful)
    }];
    assert_eq!(
        run(&g, Intent::Watch),
        Step::Done {
            outcome: Outcome::RolledBack {
                reason: "orphan".into()
            }
        }
    );
    g.refreshes = vec![ours(RefreshStatus::RollbackFailed)];
    assert!(matches!(
        run(&g, Intent::Watch),
        Step::Done {
            outcome: Outcome::RollbackFailed { .. }
        }
    ));
    // A restore running, then done.
    g.refreshes = vec![
        restore(RefreshStatus::InProgress),
        ours(RefreshStatus::Failed),
    ];
    assert_eq!(run(&g, Intent::Watch), wait(Phase::Restoring));
    g.refreshes[0] = restore(RefreshStatus::Successful);
    assert!(matches!(
        run(&g, Intent::Watch),
        Step::Done {
            outcome: Outcome::RolledBack { .. }
        }
    ));
}

#[test]
fn a_rolled_back_ami_needs_force_to_start_again() {
    let mut g = group(&[OLD, OLD, OLD]);
    g.prepared = Some(5);
    for history in [
        vec![ours(RefreshStatus::RollbackSuccessful)],
        vec![ours(RefreshStatus::Failed)],
        vec![
            restore(RefreshStatus::Successful),
            ours(RefreshStatus::Successful),
        ],
    ] {
        g.refreshes = history;
        match run(&g, start()) {
            Step::Blocked { why } => assert!(why.contains("force"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            run(&g, Intent::Start { force: true }),
            Step::StartRefresh { version: 5 }
        );
    }
}

#[test]
fn manual_rollback() {
    let reason = || Intent::Rollback {
        reason: "bad latency".into(),
    };
    let mut g = group(&[NEW, OLD, OLD]);
    g.refreshes = vec![ours(RefreshStatus::InProgress)];
    assert!(matches!(run(&g, reason()), Step::Rollback { .. }));
    // After success: a refresh back to where it started.
    let mut g = group(&[NEW, NEW, NEW]);
    g.refreshes = vec![ours(RefreshStatus::Successful)];
    assert!(matches!(
        run(&g, reason()),
        Step::Restore { version: 4, .. }
    ));
    // Nothing of ours: refused.
    let g = group(&[OLD, OLD, OLD]);
    assert!(matches!(run(&g, reason()), Step::Blocked { .. }));
}

#[test]
fn a_newer_ami_waits_for_the_running_rollout() {
    let newer = "ami-0000000000000000c";
    let mut g = group(&[NEW, OLD, OLD]);
    g.refreshes = vec![ours(RefreshStatus::InProgress)];
    let intent = start();
    let target = target_for(&g, &intent, newer).to_owned();
    assert_eq!(target, newer);
    assert_eq!(
        decide(&g, &ClusterView::default(), &intent, &target, LIMITS, NOW),
        wait(Phase::Rolling)
    );
    // Once it is over, the newer AMI starts.
    g.refreshes = vec![ours(RefreshStatus::Successful)];
    g.members = vec![member("i-0", NEW), member("i-1", NEW)];
    assert_eq!(
        decide(&g, &ClusterView::default(), &intent, &target, LIMITS, NOW),
        Step::CreateVersion { from: 4 }
    );
}

#[test]
fn groups_that_cannot_be_rolled_say_why() {
    let mut g = group(&[OLD]);
    g.template = Err("uses a launch configuration".into());
    assert_eq!(
        run(&g, start()),
        Step::Unsupported {
            why: "uses a launch configuration".into()
        }
    );
}

// ---------------------------------------------------------------- issue 12

fn outcome_name(step: &Step) -> String {
    match step {
        Step::Done { outcome } => match outcome {
            Outcome::Succeeded => "succeeded",
            Outcome::RolledBack { .. } => "rolled_back",
            Outcome::Failed { .. } => "failed",
            Outcome::RollbackFailed { .. } => "rollback_failed",
            Outcome::RestoreFailed { .. } => "restore_failed",
        }
        .to_owned(),
        Step::Wait { phase, .. } => format!("wait {phase:?}"),
        Step::Restore { version, .. } => format!("restore {version}"),
        Step::StartRefresh { version } => format!("start {version}"),
        Step::Blocked { .. } => "blocked".to_owned(),
        Step::Idle => "idle".to_owned(),
        Step::UpToDate => "up_to_date".to_owned(),
        other => format!("{other:?}"),
    }
}

/// Every status of the rollout's own refresh (the newest), for a watch
/// and a status look (the same) and a start, with one instance replaced
/// and with none.
#[test]
fn every_refresh_status_of_the_rollout_refresh() {
    for (status, watch_some, watch_none, start_some) in [
        ("Pending", "wait Rolling", "wait Rolling", "wait Rolling"),
        ("InProgress", "wait Rolling", "wait Rolling", "wait Rolling"),
        ("Baking", "wait Rolling", "wait Rolling", "wait Rolling"),
        (
            "Cancelling",
            "wait Cancelling",
            "wait Cancelling",
            "wait Cancelling",
        ),
        (
            "RollbackInProgress",
            "wait RollingBack",
            "wait RollingBack",
            "wait RollingBack",
        ),
        // Succeeded but instances were left on the old AMI: a watch
        // starts nothing, a start replaces them.
        ("Successful", "idle", "idle", "start 5"),
        ("Failed", "restore 4", "failed", "blocked"),
        ("Cancelled", "restore 4", "failed", "blocked"),
        (
            "RollbackSuccessful",
            "rolled_back",
            "rolled_back",
            "blocked",
        ),
        (
            "RollbackFailed",
            "rollback_failed",
            "rollback_failed",
            "blocked",
        ),
        ("SomethingNew", "failed", "failed", "blocked"),
    ] {
        let s = RefreshStatus::parse(status);
        let mut some = group(&[NEW, OLD, OLD]);
        some.refreshes = vec![ours(s.clone())];
        some.prepared = (!s.is_active()).then_some(5);
        let mut none = group(&[OLD, OLD, OLD]);
        none.refreshes = vec![ours(s.clone())];
        assert_eq!(
            outcome_name(&run(&some, Intent::Watch)),
            watch_some,
            "{status}"
        );
        assert_eq!(
            outcome_name(&run(&some, Intent::Status)),
            watch_some,
            "{status}"
        );
        assert_eq!(
            outcome_name(&run(&none, Intent::Watch)),
            watch_none,
            "{status}"
        );
        assert_eq!(outcome_name(&run(&some, start())), start_some, "{status}");
    }
    // Succeeded with every instance replaced: done.
    let mut all = group(&[NEW, NEW, NEW]);
    all.refreshes = vec![ours(RefreshStatus::Successful)];
    assert_eq!(outcome_name(&run(&all, Intent::Watch)), "succeeded");
}

/// Every status of the restore (a refresh back to version 4 after our
/// rollout failed): only a Successful restore is a rollback; any other end
/// is restore_failed, which no start retries without force.
#[test]
fn every_refresh_status_of_the_restore_refresh() {
    for (status, watch) in [
        ("Pending", "wait Restoring"),
        ("InProgress", "wait Restoring"),
        ("Baking", "wait Restoring"),
        ("Cancelling", "wait Cancelling"),
        ("RollbackInProgress", "wait RollingBack"),
        ("Successful", "rolled_back"),
        ("Failed", "restore_failed"),
        ("Cancelled", "restore_failed"),
        ("RollbackSuccessful", "restore_failed"),
        ("RollbackFailed", "restore_failed"),
        ("SomethingNew", "restore_failed"),
    ] {
        let s = RefreshStatus::parse(status);
        let mut g = group(&[NEW, OLD, OLD]);
        g.refreshes = vec![
            Refresh {
                status_reason: Some("instances failed to launch".into()),
                ..restore(s.clone())
            },
            ours(RefreshStatus::Failed),
        ];
        g.prepared = (!s.is_active()).then_some(5);
        let step = run(&g, Intent::Watch);
        assert_eq!(outcome_name(&step), watch, "{status}");
        assert_eq!(run(&g, Intent::Status), step, "{status}");
        if s.is_active() {
            continue;
        }
        if watch == "restore_failed" {
            match &step {
                Step::Done {
                    outcome: Outcome::RestoreFailed { reason },
                } => {
                    assert!(
                        reason.contains("r-2") && reason.contains(status),
                        "{reason}"
                    );
                    assert!(reason.contains("instances failed to launch"), "{reason}");
                    assert!(reason.contains(NEW), "{reason}");
                }
                other => panic!("{other:?}"),
            }
            assert!(step.is_settled() && !step.changes_something());
            // An operator's rollback tries the restore again.
            match run(&g, Intent::Rollback { reason: "x".into() }) {
                Step::Restore { version, reason } => {
                    assert_eq!(version, 4);
                    assert!(reason.contains("again"), "{reason}");
                }
                other => panic!("{status}: {other:?}"),
            }
        }
        // No start without force, whatever the restore did.
        assert_eq!(outcome_name(&run(&g, start())), "blocked", "{status}");
        assert_eq!(
            run(&g, Intent::Start { force: true }),
            Step::StartRefresh { version: 5 },
            "{status}"
        );
    }
}

#[test]
fn a_refusal_outlives_the_refresh_history() {
    // The history has aged out; the group's tag still names the AMI, and
    // the version made for it is still in the template.
    let mut g = group(&[OLD, OLD, OLD]);
    g.prepared = Some(5);
    g.refused = Some(Ok(Refusal::new(NEW, NOW - 1_000)));
    for intent in [start(), Intent::Watch] {
        match run(&g, intent.clone()) {
            Step::Blocked { why } => {
                assert!(
                    why.contains(REFUSED_AMI_TAG) && why.contains("force"),
                    "{why}"
                );
            }
            other => panic!("{intent:?}: {other:?}"),
        }
    }
    assert_eq!(run(&g, Intent::Status), Step::Idle);
    assert_eq!(
        run(&g, Intent::Start { force: true }),
        Step::StartRefresh { version: 5 }
    );
    // Another AMI is not refused by it.
    g.prepared = None;
    let other = "ami-0000000000000000c";
    assert_eq!(
        decide(&g, &ClusterView::default(), &start(), other, LIMITS, NOW),
        Step::CreateVersion { from: 4 }
    );
    // A tag that cannot be read refuses every start but a forced one.
    g.refused = Some(Refusal::parse("garbage"));
    assert!(matches!(
        decide(&g, &ClusterView::default(), &start(), other, LIMITS, NOW),
        Step::Blocked { why } if why.contains("garbage") && why.contains(REFUSED_AMI_TAG)
    ));
    assert_eq!(
        run(&g, Intent::Start { force: true }),
        Step::CreateVersion { from: 4 }
    );
}

#[test]
fn an_ami_that_boots_but_never_becomes_healthy_rolls_back() {
    let mut g = group(&[OLD, OLD]);
    g.refreshes = vec![ours(RefreshStatus::InProgress)];
    let mut sick = member("i-new", NEW);
    sick.healthy = false;
    sick.launched_ms = Some(NOW - 200_000);
    g.members.push(sick.clone());
    assert_eq!(run(&g, Intent::Watch), wait(Phase::Rolling));
    g.members.pop();
    sick.launched_ms = Some(NOW - 400_000);
    g.members.push(sick);
    match run(&g, Intent::Watch) {
        Step::Rollback { reason } => {
            assert!(reason.contains("i-new never became healthy"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    // An unhealthy instance on the old AMI is not the new AMI's.
    let mut g = group(&[OLD, OLD]);
    g.refreshes = vec![ours(RefreshStatus::InProgress)];
    g.members[0].healthy = false;
    assert_eq!(run(&g, Intent::Watch), wait(Phase::Rolling));
}

#[test]
fn outside_the_window_nothing_new_starts_and_a_running_rollout_carries_on() {
    let closed = Limits {
        window_opens_ms: Some(1_795_226_400_000),
        ..LIMITS
    };
    let step = |g: &GroupView, intent: Intent| {
        let target = target_for(g, &intent, NEW).to_owned();
        decide(g, &ClusterView::default(), &intent, &target, closed, NOW)
    };
    let opens = Step::OutsideWindow {
        opens: "2026-11-21T02:00:00Z".into(),
    };
    let mut g = group(&[OLD, OLD]);
    assert_eq!(step(&g, start()), opens);
    assert_eq!(step(&g, Intent::Start { force: true }), opens);
    g.prepared = Some(5);
    assert_eq!(step(&g, Intent::Watch), opens);
    assert!(opens.is_settled() && !opens.changes_something());
    // Under way: watched, rolled back, restored as ever.
    g.members[0] = member("i-0", NEW);
    g.refreshes = vec![ours(RefreshStatus::InProgress)];
    assert_eq!(step(&g, Intent::Watch), wait(Phase::Rolling));
    assert!(matches!(
        step(&g, Intent::Rollback { reason: "x".into() }),
        Step::Rollback { .. }
    ));
    g.refreshes = vec![ours(RefreshStatus::Failed)];
    assert!(matches!(step(&g, Intent::Watch), Step::Restore { .. }));
    // Nothing to do is still nothing to do.
    let done = group(&[NEW, NEW]);
    assert_eq!(step(&done, start()), Step::UpToDate);
}

/// Where a rollout stands ([`Stage`]), read from the refreshes alone: each
/// row of the decision table.
#[test]
fn the_stage_is_read_from_the_refreshes() {
    let name = |s: Stage| match s {
        Stage::Busy(phase) => format!("busy {phase:?}"),
        Stage::Rolling { refresh, ami } => format!("rolling {} to {ami}", refresh.id),
        Stage::Succeeded(r) => format!("succeeded {}", r.id),
        Stage::Ended(r) => format!("ended {}", r.id),
        Stage::Restored { rollout, restore } => {
            format!("restored {} by {}", rollout.id, restore.id)
        }
        Stage::Quiet => "quiet".to_owned(),
    };
    let foreign = |status| Refresh {
        id: "r-9".into(),
        ours: None,
        desired_version: Some(9),
        ..ours(status)
    };
    let other = "ami-0000000000000000c";
    for (history, target, stage) in [
        (vec![], NEW, "quiet".to_owned()),
        (
            vec![ours(RefreshStatus::InProgress)],
            other,
            format!("rolling r-1 to {NEW}"),
        ),
        (
            vec![ours(RefreshStatus::RollbackInProgress)],
            NEW,
            "busy RollingBack".into(),
        ),
        (
            vec![ours(RefreshStatus::Cancelling)],
            NEW,
            "busy Cancelling".into(),
        ),
        (
            vec![
                restore(RefreshStatus::InProgress),
                ours(RefreshStatus::Failed),
            ],
            NEW,
            "busy Restoring".into(),
        ),
        (
            vec![foreign(RefreshStatus::InProgress)],
            NEW,
            "busy Foreign".into(),
        ),
        (
            vec![ours(RefreshStatus::Successful)],
            NEW,
            "succeeded r-1".into(),
        ),
        (vec![ours(RefreshStatus::Successful)], other, "quiet".into()),
        (vec![ours(RefreshStatus::Failed)], NEW, "ended r-1".into()),
        (
            vec![ours(RefreshStatus::RollbackSuccessful)],
            NEW,
            "ended r-1".into(),
        ),
        (
            vec![
                restore(RefreshStatus::Successful),
                ours(RefreshStatus::Failed),
            ],
            NEW,
            "restored r-1 by r-2".into(),
        ),
        (
            vec![restore(RefreshStatus::Failed), ours(RefreshStatus::Failed)],
            NEW,
            "restored r-1 by r-2".into(),
        ),
        // A later refresh elsewhere undoes the rollout but is no restore.
        (
            vec![
                foreign(RefreshStatus::Successful),
                ours(RefreshStatus::Successful),
            ],
            NEW,
            "quiet".into(),
        ),
    ] {
        let mut g = group(&[NEW, OLD, OLD]);
        g.refreshes = history;
        assert_eq!(name(Stage::of(&g, target)), stage, "{:?}", g.refreshes);
    }
}
