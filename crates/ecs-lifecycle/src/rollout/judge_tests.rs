use super::*;
use crate::model::RefreshStatus;
use crate::rollout::decide::decide;
use crate::rollout::fixtures::*;
use crate::rollout::step::Outcome;
use crate::rollout::step::{Intent, Phase, Step};
use crate::rollout::tags::{Baseline, digest};
use crate::rollout::view::ServiceView;

#[test]
fn only_services_the_rollout_can_have_disturbed_count_against_it() {
    let mut g = group(&[NEW, OLD, OLD]);
    g.refreshes = vec![ours(RefreshStatus::InProgress)];
    g.unsteady_since_ms = Some(NOW - 3_600_000);
    g.baseline = Some(Baseline::of(&["crashloop".to_owned()]).unwrap());
    let fargate = ServiceView {
        instances: Some(vec![]),
        ..unsteady("fargate-api", 0, 1, &[])
    };
    let elsewhere = unsteady("other-group", 1, 1, &["i-elsewhere"]);
    let excused = cluster(vec![
        unsteady("deploying", 1, 2, &["i-0"]),
        unsteady("crashloop", 0, 1, &["i-1"]),
        fargate,
        elsewhere,
    ]);
    let j = judge(&g, &excused, NEW);
    assert!(j.blamed.is_empty(), "{j:?}");
    assert_eq!(j.excused.len(), 4, "{j:?}");
    for why in [
        "deploying for reasons of its own",
        "already unsteady when the rollout started",
        "no task on the group's instances",
    ] {
        assert!(j.excused.iter().any(|e| e.contains(why)), "{why}: {j:?}");
    }
    // None of them rolls the rollout back, however long it lasts; the
    // marker goes (nothing counts).
    assert_eq!(
        decide(&g, &excused, &Intent::Watch, NEW, LIMITS, NOW),
        wait(Phase::Rolling)
    );
    // A service of the group's instances that became unsteady during
    // the rollout does; so does one whose tasks were not looked up.
    for blamed in [
        unsteady("web", 1, 1, &["i-0"]),
        ServiceView {
            instances: None,
            ..unsteady("web", 1, 1, &[])
        },
    ] {
        let mut services = excused.services.clone();
        services.push(blamed);
        match decide(&g, &cluster(services), &Intent::Watch, NEW, LIMITS, NOW) {
            Step::Rollback { reason } => {
                assert!(reason.contains("web (1/2 running"), "{reason}");
                assert!(!reason.contains("crashloop"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }
    // A baseline of digests (the names did not fit) excuses the same.
    g.baseline = Some(Baseline::parse(&format!(
        "{} h:00000000",
        digest("crashloop")
    )));
    assert!(judge(&g, &excused, NEW).blamed.is_empty());
}

#[test]
fn capacity_failures_are_waited_out_not_blamed_on_the_ami() {
    for (message, capacity) in [
        (
            "Launching a new EC2 instance.  Status Reason: We currently do not have sufficient m5.large capacity in the Availability Zone you requested (us-east-1a). Our system will be working on provisioning additional capacity. Launching EC2 instance failed.",
            true,
        ),
        (
            "Launching a new EC2 instance: i-1: Could not launch On-Demand Instances. InsufficientInstanceCapacity - We currently do not have sufficient m5.large capacity.",
            true,
        ),
        (
            "Launching a new EC2 instance: i-1: Could not launch Spot Instances. InsufficientInstanceCapacity - There is no Spot capacity available that matches your request. Launching EC2 instance failed.",
            true,
        ),
        (
            "Launching a new EC2 instance: i-1: Could not launch On-Demand Instances. VcpuLimitExceeded - You have requested more vCPU capacity than your current vCPU limit of 32 allows.",
            true,
        ),
        (
            "Launching a new EC2 instance: i-1: Could not launch On-Demand Instances. InstanceLimitExceeded - Your quota allows for 0 more running instance(s).",
            true,
        ),
        (
            "Launching a new EC2 instance: i-9: Instance failed to complete user's Lifecycle Action: Lifecycle Action with token t was abandoned: Lifecycle Action Completed with ABANDON Result",
            false,
        ),
        (
            "Launching a new EC2 instance: i-1: The image id '[ami-1]' does not exist. Launching EC2 instance failed.",
            false,
        ),
    ] {
        assert_eq!(is_capacity_failure(message), capacity, "{message}");
    }
    let mut g = group(&[NEW, OLD, OLD]);
    g.refreshes = vec![ours(RefreshStatus::InProgress)];
    g.refused_launches = vec![
        "Launching a new EC2 instance: i-1: Could not launch On-Demand Instances. InsufficientInstanceCapacity - We currently do not have sufficient m5.large capacity.".into(),
    ];
    assert_eq!(run(&g, Intent::Watch), wait(Phase::Rolling));
    // Another refused launch among them still rolls back, naming it.
    g.refused_launches
        .push("i-9: Lifecycle Action Completed with ABANDON Result".into());
    match run(&g, Intent::Watch) {
        Step::Rollback { reason } => assert!(reason.contains("i-9"), "{reason}"),
        other => panic!("{other:?}"),
    }
    // A refresh that ended for capacity restores nothing and blocks no
    // later start.
    let mut ended = group(&[NEW, OLD, OLD]);
    ended.prepared = Some(5);
    ended.refreshes = vec![Refresh {
        status_reason: Some("VcpuLimitExceeded - You have requested more vCPU capacity".into()),
        ..ours(RefreshStatus::Failed)
    }];
    match run(&ended, Intent::Watch) {
        Step::Done {
            outcome: Outcome::Failed { reason },
        } => assert!(
            reason.contains("capacity") && reason.contains("next start"),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(run(&ended, start()), Step::StartRefresh { version: 5 });
}
