//! `retained` and `release`: instances an Auto Scaling instance lifecycle policy
//! keeps (`Terminating:Retained`) after terminate-drain abandoned their drain
//! (`DRAIN_TIMEOUT_ACTION=retain`), and terminating one once an operator has
//! looked at it. The report and the release plan are pure; the I/O is in
//! `main.rs` through the ports.

use ecs_lifecycle::model::{AsgGroup, AsgInstance, LifecycleState};
use serde::Serialize;

/// Version of the `retained` and `release` JSON documents.
pub const VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RetainedReport {
    pub version: u32,
    pub kind: &'static str,
    pub region: String,
    pub generated_at: String,
    pub groups: Vec<String>,
    pub instances: Vec<RetainedRow>,
    /// Groups whose instance lifecycle policy does not retain an abandoned
    /// termination: a retain drain there ends with the instance terminated.
    pub groups_without_retention: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RetainedRow {
    pub ec2_instance_id: String,
    pub group: String,
    pub lifecycle_state: LifecycleState,
}

/// Every retained instance of `groups`, by group then instance id.
pub fn report(region: &str, generated_at: String, groups: &[AsgGroup]) -> RetainedReport {
    let mut instances: Vec<RetainedRow> = groups
        .iter()
        .flat_map(|g| {
            g.instances
                .iter()
                .filter(|(_, s)| s.is_retained())
                .map(|(id, s)| RetainedRow {
                    ec2_instance_id: id.to_string(),
                    group: g.name.clone(),
                    lifecycle_state: s.clone(),
                })
        })
        .collect();
    instances.sort_by(|a, b| (&a.group, &a.ec2_instance_id).cmp(&(&b.group, &b.ec2_instance_id)));
    let mut names: Vec<String> = groups.iter().map(|g| g.name.clone()).collect();
    names.sort();
    let mut without: Vec<String> = groups
        .iter()
        .filter(|g| !g.retains_abandoned_terminations())
        .map(|g| g.name.clone())
        .collect();
    without.sort();
    RetainedReport {
        version: VERSION,
        kind: "retained",
        region: region.to_owned(),
        generated_at,
        groups: names,
        instances,
        groups_without_retention: without,
    }
}

/// What `release` does (or would do) to an instance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Release {
    pub version: u32,
    pub kind: &'static str,
    pub ec2_instance_id: String,
    pub group: String,
    pub lifecycle_state: LifecycleState,
    /// `false`: a dry run, nothing changed.
    pub applied: bool,
    /// What it did, or would do with `--apply`.
    pub action: String,
}

/// Why `release` refuses an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    NotInAGroup,
    NotRetained {
        group: String,
        state: LifecycleState,
    },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::NotInAGroup => write!(
                f,
                "it is in no Auto Scaling group (already terminated, or never in one)"
            ),
            Refusal::NotRetained { group, state } => write!(
                f,
                "it is {state} in group {group}, not retained (Terminating:Retained): release only terminates instances an instance lifecycle policy kept"
            ),
        }
    }
}

/// The release of `instance_id`, given what Auto Scaling says of it.
pub fn plan(
    instance_id: &str,
    found: Option<&AsgInstance>,
    apply: bool,
) -> Result<Release, Refusal> {
    let Some(i) = found else {
        return Err(Refusal::NotInAGroup);
    };
    if !i.lifecycle_state.is_retained() {
        return Err(Refusal::NotRetained {
            group: i.asg.clone(),
            state: i.lifecycle_state.clone(),
        });
    }
    let call = format!(
        "TerminateInstanceInAutoScalingGroup {instance_id} (group {}, ShouldDecrementDesiredCapacity false: a retained instance is already out of desired capacity)",
        i.asg
    );
    Ok(Release {
        version: VERSION,
        kind: "release",
        ec2_instance_id: instance_id.to_owned(),
        group: i.asg.clone(),
        lifecycle_state: i.lifecycle_state.clone(),
        applied: apply,
        action: if apply {
            format!("terminated: {call}")
        } else {
            format!("dry run, nothing changed; with --apply: {call}")
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(name: &str, policy: Option<&str>, instances: &[(&str, &str)]) -> AsgGroup {
        AsgGroup {
            name: name.into(),
            desired_capacity: 1,
            launch_template: None,
            mixed_instances_policy: false,
            instances: instances
                .iter()
                .map(|(id, s)| ((*id).into(), LifecycleState::from(*s)))
                .collect(),
            tags: vec![],
            account_id: None,
            unhealthy: vec![],
            terminate_hook_abandon: policy.map(str::to_owned),
        }
    }

    #[test]
    fn lists_retained_instances_and_groups_without_the_policy() {
        let groups = [
            group(
                "web",
                Some("retain"),
                &[
                    ("i-2", "Terminating:Retained"),
                    ("i-1", "InService"),
                    ("i-0", "Warmed:Terminating:Retained"),
                ],
            ),
            group("batch", Some("terminate"), &[("i-9", "Terminating:Wait")]),
            group("api", None, &[]),
        ];
        let r = report("us-east-1", "now".into(), &groups);
        let ids: Vec<(&str, &str)> = r
            .instances
            .iter()
            .map(|i| (i.group.as_str(), i.ec2_instance_id.as_str()))
            .collect();
        assert_eq!(ids, [("web", "i-0"), ("web", "i-2")]);
        assert_eq!(r.groups, ["api", "batch", "web"]);
        assert_eq!(r.groups_without_retention, ["api", "batch"]);
    }

    #[test]
    fn release_is_a_dry_run_unless_applied_and_only_for_retained_instances() {
        let retained = AsgInstance {
            instance_id: "i-1".into(),
            asg: "web".into(),
            lifecycle_state: "Terminating:Retained".into(),
        };
        let dry = plan("i-1", Some(&retained), false).unwrap();
        assert!(!dry.applied && dry.action.starts_with("dry run"), "{dry:?}");
        let done = plan("i-1", Some(&retained), true).unwrap();
        assert!(
            done.applied && done.action.starts_with("terminated"),
            "{done:?}"
        );
        let serving = AsgInstance {
            lifecycle_state: "InService".into(),
            ..retained
        };
        assert_eq!(
            plan("i-1", Some(&serving), true),
            Err(Refusal::NotRetained {
                group: "web".into(),
                state: "InService".into()
            })
        );
        assert_eq!(plan("i-1", None, false), Err(Refusal::NotInAGroup));
    }
}
