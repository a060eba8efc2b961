use super::*;
use crate::rollout::fixtures::*;
use crate::rollout::tags::Refusal;
use crate::rollout::view::GroupView;

#[test]
fn parameter_values() {
    assert_eq!(ami_from_parameter(NEW).unwrap(), NEW);
    let json = format!(
        r#"{{"schema_version":1,"image_name":"al2023-ami-ecs-hvm","image_id":"{NEW}","os":"Amazon Linux 2023"}}"#
    );
    assert_eq!(ami_from_parameter(&json).unwrap(), NEW);
    assert!(ami_from_parameter("{}").unwrap_err().contains("image_id"));
    assert!(
        ami_from_parameter("latest")
            .unwrap_err()
            .contains("neither")
    );
    assert!(
        ami_from_parameter(r#"{"image_id":"ami-nothex"}"#)
            .unwrap_err()
            .contains("not an AMI id")
    );
}

#[test]
fn a_newer_ami_is_one_created_after_the_refused_one_or_with_it_gone() {
    let refused = "ami-0000000000000000c";
    let mut g = group(&[OLD]);
    g.refused = Some(Ok(Refusal::new(refused, NOW)));
    let facts = |images: Vec<Image>| ImageFacts {
        images,
        instance_types: vec![],
    };
    assert!(newer_than_refused(
        &g,
        NEW,
        &facts(vec![image(NEW, 2_000), image(refused, 1_000)])
    ));
    assert!(!newer_than_refused(
        &g,
        NEW,
        &facts(vec![image(NEW, 1_000), image(refused, 2_000)])
    ));
    assert!(newer_than_refused(&g, NEW, &facts(vec![image(NEW, 1_000)])));
    assert!(!newer_than_refused(
        &g,
        refused,
        &facts(vec![image(refused, 1)])
    ));
    g.refused = None;
    assert!(!newer_than_refused(
        &g,
        NEW,
        &facts(vec![image(NEW, 2_000)])
    ));
}

/// Every check of the AMI before a rollout changes anything, failing and
/// passing; a refusal names the AMI, the check and the value seen.
#[test]
fn the_ami_is_checked_before_anything_changes() {
    let g = group(&[OLD, OLD]);
    let allowed = ["444455556666".to_owned()];
    let vet_with = |image: Option<Image>, types: Vec<InstanceTypeInfo>, g: &GroupView| {
        vet(
            g,
            NEW,
            &ImageFacts {
                images: image.into_iter().collect(),
                instance_types: types,
            },
            &allowed,
        )
    };
    let ok = image(NEW, 1);
    // Owned by the account itself, by Amazon, by an allowed owner.
    assert_eq!(vet_with(Some(ok.clone()), x86(), &g), None);
    let amazon = Image {
        owner_id: Some("591542846629".into()),
        owner_alias: Some("amazon".into()),
        ..ok.clone()
    };
    assert_eq!(vet_with(Some(amazon), x86(), &g), None);
    let partner = Image {
        owner_id: Some("444455556666".into()),
        ..ok.clone()
    };
    assert_eq!(vet_with(Some(partner), x86(), &g), None);

    let mut no_type = g.clone();
    if let Ok(t) = &mut no_type.template {
        t.instance_type = None;
    }
    let mut no_account = g.clone();
    no_account.account_id = None;
    for (image, types, view, check, seen) in [
        (None, x86(), &g, "exists", "not found"),
        (
            Some(Image {
                state: "pending".into(),
                ..ok.clone()
            }),
            x86(),
            &g,
            "state",
            "pending",
        ),
        (
            Some(Image {
                state: "deregistered".into(),
                ..ok.clone()
            }),
            x86(),
            &g,
            "state",
            "deregistered",
        ),
        (
            Some(Image {
                owner_id: Some("999988887777".into()),
                owner_alias: Some("aws-marketplace".into()),
                ..ok.clone()
            }),
            x86(),
            &g,
            "owner",
            "999988887777 (aws-marketplace)",
        ),
        // Without the group's account known, its own images are not
        // taken for granted.
        (Some(ok.clone()), x86(), &no_account, "owner", ACCOUNT),
        (
            Some(Image {
                architecture: Some("arm64".into()),
                ..ok.clone()
            }),
            x86(),
            &g,
            "architecture",
            "arm64",
        ),
        (Some(ok.clone()), vec![], &g, "instance type", "m5.large"),
        (Some(ok.clone()), x86(), &no_type, "instance type", "none"),
    ] {
        match vet_with(image, types, view) {
            Some(Rejection {
                check: c,
                seen: s,
                why,
            }) => {
                assert_eq!((c.as_str(), s.as_str()), (check, seen));
                assert!(why.contains(NEW) && why.contains(check), "{why}");
                assert!(why.contains(seen), "{why}");
                assert!(why.contains("nothing was changed"), "{why}");
            }
            other => panic!("{check}: {other:?}"),
        }
    }
    let refused = Step::Refused {
        check: Check::State,
        seen: "pending".into(),
        why: String::new(),
    };
    assert!(refused.is_settled() && !refused.changes_something());
    // Checked: the steps that start changing things, never a rollback.
    for (step, checked) in [
        (Step::Pin { version: 4 }, true),
        (Step::CreateVersion { from: 4 }, true),
        (Step::StartRefresh { version: 5 }, true),
        (Step::Rollback { reason: "x".into() }, false),
        (
            Step::Restore {
                version: 4,
                reason: "x".into(),
            },
            false,
        ),
    ] {
        assert_eq!(step.starts_rollout(), checked, "{step:?}");
    }
}

/// A refusal names its check in the answer's JSON and in its log line as
/// it always did.
#[test]
fn a_refused_check_keeps_its_name() {
    for (check, name) in [
        (Check::Exists, "exists"),
        (Check::State, "state"),
        (Check::Owner, "owner"),
        (Check::InstanceType, "instance type"),
        (Check::Architecture, "architecture"),
    ] {
        assert_eq!(check.to_string(), name);
        let step = Rejection {
            check,
            seen: "s".into(),
            why: "w".into(),
        }
        .into_step();
        assert_eq!(
            serde_json::to_value(&step).unwrap(),
            serde_json::json!({"step": "refused", "check": name, "seen": "s", "why": "w"})
        );
    }
}
