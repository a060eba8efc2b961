use super::*;
use crate::model::{Refresh, RefreshStatus};
use crate::rollout::decide::decide;
use crate::rollout::fixtures::*;
use crate::rollout::step::{Outcome, Phase};

#[test]
fn versions_of_ours_are_recognised_by_their_description() {
    let d = version_description(NEW, 4);
    assert_eq!(parse_version_description(&d), Some((NEW.to_owned(), 4)));
    assert_eq!(parse_version_description("made by terraform"), None);
    assert_eq!(
        parse_version_description("ecs-lifecycle ami-rollout: ami-zz from version 4"),
        None
    );
}

#[test]
fn the_refusal_tag_value() {
    let r = Refusal::new(NEW, 1_795_226_529_123);
    assert_eq!(r.value(), format!("{NEW} 2026-11-21T02:02:09Z"));
    assert_eq!(Refusal::parse(&r.value()).unwrap(), r);
    for bad in [
        "",
        NEW,
        "ami-zz 2026-11-21T02:02:09Z",
        &format!("{NEW} yesterday"),
    ] {
        let why = Refusal::parse(bad).unwrap_err();
        assert!(
            why.contains(REFUSED_AMI_TAG) && why.contains("force"),
            "{why}"
        );
    }
}

fn changes(
    g: &GroupView,
    cluster: &ClusterView,
    intent: &Intent,
    step: &Step,
    newer: bool,
) -> (Vec<TagChange>, Vec<TagChange>) {
    tag_changes(g, cluster, intent, step, NEW, newer, NOW)
}

fn refused_now() -> TagChange {
    TagChange::set(REFUSED_AMI_TAG, Refusal::new(NEW, NOW).value())
}

#[test]
fn a_rollback_is_recorded_on_the_group_and_lifted_by_force_or_a_newer_ami() {
    let c = ClusterView::default();
    let g = group(&[NEW, OLD, OLD]);
    // Rolling back or restoring records the refusal, after the call.
    for step in [
        Step::Rollback { reason: "x".into() },
        Step::Restore {
            version: 4,
            reason: "x".into(),
        },
    ] {
        assert_eq!(
            changes(&g, &c, &Intent::Watch, &step, false),
            (vec![], vec![refused_now()])
        );
    }
    // Seen ended badly (Auto Scaling's own rollback, a failed restore, a
    // start refused by the history): recorded too, once.
    let mut seen = group(&[OLD, OLD, OLD]);
    for history in [
        vec![ours(RefreshStatus::RollbackSuccessful)],
        vec![restore(RefreshStatus::Failed), ours(RefreshStatus::Failed)],
    ] {
        seen.refreshes = history;
        for intent in [Intent::Watch, start()] {
            let step = run(&seen, intent.clone());
            assert_eq!(
                changes(&seen, &c, &intent, &step, false).1,
                vec![refused_now()],
                "{step:?}"
            );
        }
    }
    let mut recorded = seen.clone();
    recorded.refused = Some(Ok(Refusal::new(NEW, NOW - 1000)));
    let step = run(&recorded, Intent::Watch);
    assert_eq!(
        changes(&recorded, &c, &Intent::Watch, &step, false),
        (vec![], vec![])
    );
    // A success, or an end for want of capacity, refuses nothing.
    let mut fine = group(&[NEW, NEW, NEW]);
    fine.refreshes = vec![ours(RefreshStatus::Successful)];
    let step = run(&fine, Intent::Watch);
    assert_eq!(
        changes(&fine, &c, &Intent::Watch, &step, false),
        (vec![], vec![])
    );
    let mut capacity = group(&[OLD, OLD, OLD]);
    capacity.refreshes = vec![Refresh {
        status_reason: Some("InsufficientInstanceCapacity - no m5.large".into()),
        ..ours(RefreshStatus::Failed)
    }];
    let step = run(&capacity, Intent::Watch);
    assert_eq!(
        changes(&capacity, &c, &Intent::Watch, &step, false),
        (vec![], vec![])
    );

    // Lifted before the first change of a forced start ...
    let create = Step::CreateVersion { from: 4 };
    let force = Intent::Start { force: true };
    let lift = (vec![TagChange::remove(REFUSED_AMI_TAG)], vec![]);
    assert_eq!(changes(&recorded, &c, &force, &create, false), lift);
    // ... but not by an unforced one (it cannot start: blocked) ...
    assert_eq!(
        changes(&recorded, &c, &start(), &create, false),
        (vec![], vec![])
    );
    // ... and by a rollout of a newer AMI, not an older one.
    let mut other = group(&[OLD, OLD]);
    other.refused = Some(Ok(Refusal::new("ami-0000000000000000c", NOW - 1000)));
    assert_eq!(changes(&other, &c, &start(), &create, true), lift);
    assert_eq!(
        changes(&other, &c, &start(), &create, false),
        (vec![], vec![])
    );
    // A tag that cannot be read: force lifts it.
    other.refused = Some(Refusal::parse("garbage"));
    assert_eq!(changes(&other, &c, &force, &create, false), lift);
}

#[test]
fn the_baseline_is_taken_as_the_refresh_starts_and_shrinks_as_services_recover() {
    let g = group(&[OLD, OLD]);
    let crash = cluster(vec![
        unsteady("crashloop", 0, 1, &["i-0"]),
        unsteady("api", 1, 1, &["i-1"]),
    ]);
    let start_refresh = Step::StartRefresh { version: 5 };
    let (before, after) = changes(&g, &crash, &start(), &start_refresh, false);
    assert_eq!(
        before,
        vec![TagChange::set(BASELINE_TAG, "api crashloop".into())]
    );
    assert!(after.is_empty());
    // Taken: the same again writes nothing; a steady cluster removes it.
    let mut taken = g.clone();
    taken.baseline = Some(Baseline::parse("api crashloop"));
    assert_eq!(
        changes(&taken, &crash, &start(), &start_refresh, false),
        (vec![], vec![])
    );
    assert_eq!(
        changes(
            &taken,
            &ClusterView::default(),
            &start(),
            &start_refresh,
            false
        )
        .0,
        vec![TagChange::remove(BASELINE_TAG)]
    );
    // While waiting, a service that recovered leaves it.
    let w = wait(Phase::Rolling);
    let api_only = cluster(vec![unsteady("api", 1, 1, &["i-1"])]);
    assert_eq!(
        changes(&taken, &api_only, &Intent::Watch, &w, false),
        (vec![], vec![TagChange::set(BASELINE_TAG, "api".into())])
    );
    assert_eq!(
        changes(&taken, &ClusterView::default(), &Intent::Watch, &w, false),
        (vec![], vec![TagChange::remove(BASELINE_TAG)])
    );
    // Over: removed.
    let done = Step::Done {
        outcome: Outcome::Succeeded,
    };
    assert_eq!(
        changes(&taken, &crash, &Intent::Watch, &done, false).1,
        vec![TagChange::remove(BASELINE_TAG)]
    );
    // The unsteady marker, as before: set while waiting, removed after.
    let marked = Step::Wait {
        phase: Phase::Rolling,
        unsteady_since: Some(NOW),
    };
    assert_eq!(
        changes(&g, &ClusterView::default(), &Intent::Watch, &marked, false).1,
        vec![TagChange::set(UNSTEADY_TAG, NOW.to_string())]
    );
    let mut was = g.clone();
    was.unsteady_since_ms = Some(NOW);
    assert_eq!(
        changes(&was, &ClusterView::default(), &Intent::Watch, &done, false).1,
        vec![TagChange::remove(UNSTEADY_TAG)]
    );
}

#[test]
fn a_baseline_too_long_for_a_tag_is_digested_or_refused() {
    let names: Vec<String> = (0..12)
        .map(|i| format!("service-with-a-long-name-{i:02}"))
        .collect();
    let b = Baseline::of(&names).unwrap();
    assert!(b.value().len() <= 256, "{}", b.value());
    assert!(b.value().starts_with("h:"), "{}", b.value());
    assert!(names.iter().all(|n| b.contains(n)));
    assert!(!b.contains("another"));
    let many: Vec<String> = (0..30).map(|i| format!("s{i}")).collect();
    assert!(Baseline::of(&many).is_ok());
    let too_many: Vec<String> = (0..40)
        .map(|i| format!("service-{i:02}-of-a-big-cluster"))
        .collect();
    let why = Baseline::of(&too_many).unwrap_err();
    assert!(
        why.contains("40 services") && why.contains(BASELINE_TAG),
        "{why}"
    );
    // A start into such a cluster is refused, not started blind.
    let mut g = group(&[OLD, OLD]);
    g.prepared = Some(5);
    let crowded = cluster(too_many.iter().map(|n| unsteady(n, 0, 1, &[])).collect());
    assert!(matches!(
        decide(&g, &crowded, &start(), NEW, LIMITS, NOW),
        Step::Blocked { why } if why.contains("40 services")
    ));
}
