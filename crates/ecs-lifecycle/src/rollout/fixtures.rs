//! What the rollout's unit tests build their looks from: a group of three
//! on launch template version 4 running OLD, our refresh to NEW, a restore
//! back to version 4.

use crate::model::{Image, InstanceStatus, InstanceTypeInfo, Refresh, RefreshStatus};
use crate::rollout::decide::decide;
use crate::rollout::step::{Intent, Limits, Phase, Step};
use crate::rollout::view::{ClusterView, GroupView, Member, ServiceView, TemplateRef, target_for};

pub(super) const ACCOUNT: &str = "123456789012";

pub(super) const OLD: &str = "ami-0000000000000000a";

pub(super) const NEW: &str = "ami-0000000000000000b";

pub(super) const NOW: u64 = 10_000_000;

pub(super) const LIMITS: Limits = Limits {
    stability_timeout_ms: 600_000,
    registration_timeout_ms: 300_000,
    window_opens_ms: None,
};

pub(super) fn member(id: &str, ami: &str) -> Member {
    Member {
        id: id.into(),
        lifecycle_state: "InService".into(),
        ami: Some(ami.into()),
        launched_ms: Some(1_000),
        ecs: Some((InstanceStatus::Active, true)),
        healthy: true,
    }
}

/// A service of the cluster not running its desired count, with tasks on
/// these instances.
pub(super) fn unsteady(name: &str, running: i32, deployments: usize, on: &[&str]) -> ServiceView {
    ServiceView {
        name: name.into(),
        running,
        desired: 2,
        deployments,
        instances: Some(on.iter().map(|s| s.to_string()).collect()),
    }
}

pub(super) fn cluster(services: Vec<ServiceView>) -> ClusterView {
    ClusterView { services }
}

/// A group of three on version 4 (OLD), pinned.
pub(super) fn group(amis: &[&str]) -> GroupView {
    GroupView {
        name: "web".into(),
        desired_capacity: 3,
        template: Ok(TemplateRef {
            id: "lt-1".into(),
            version: "4".into(),
            number: 4,
            ami: Some(OLD.into()),
            ours: None,
            instance_type: Some("m5.large".into()),
        }),
        prepared: None,
        members: amis
            .iter()
            .enumerate()
            .map(|(i, ami)| member(&format!("i-{i}"), ami))
            .collect(),
        refreshes: vec![],
        refused_launches: vec![],
        unsteady_since_ms: None,
        reported: None,
        refused: None,
        baseline: None,
        account_id: Some(ACCOUNT.into()),
    }
}

pub(super) fn ours(status: RefreshStatus) -> Refresh {
    Refresh {
        id: "r-1".into(),
        status,
        status_reason: None,
        started_ms: Some(500),
        ended_ms: None,
        percentage: Some(33),
        instances_to_update: Some(2),
        desired_template: None,
        desired_version: Some(5),
        ours: Some((NEW.into(), 4)),
        rollback_reason: None,
    }
}

pub(super) fn restore(status: RefreshStatus) -> Refresh {
    Refresh {
        id: "r-2".into(),
        desired_version: Some(4),
        ours: None,
        ..ours(status)
    }
}

pub(super) fn run(view: &GroupView, intent: Intent) -> Step {
    let target = target_for(view, &intent, NEW).to_owned();
    decide(view, &ClusterView::default(), &intent, &target, LIMITS, NOW)
}

pub(super) fn start() -> Intent {
    Intent::Start { force: false }
}

pub(super) fn wait(phase: Phase) -> Step {
    Step::Wait {
        phase,
        unsteady_since: None,
    }
}

pub(super) fn image(id: &str, created_ms: u64) -> Image {
    Image {
        id: id.into(),
        state: "available".into(),
        architecture: Some("x86_64".into()),
        owner_id: Some(ACCOUNT.into()),
        owner_alias: None,
        created_ms: Some(created_ms),
    }
}

pub(super) fn x86() -> Vec<InstanceTypeInfo> {
    vec![InstanceTypeInfo {
        instance_type: "m5.large".into(),
        architectures: vec!["i386".into(), "x86_64".into()],
    }]
}
