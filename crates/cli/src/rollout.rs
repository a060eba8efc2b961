//! `rollout status`: per group, the newest instance refresh, the AMI it moves
//! to, the group's current AMI and the AMIs ami-rollout refused, as a report.
//! Pure: [`report`] reads only [`Observed`] (gathered by `gather::rollout`).

use ecs_lifecycle::model::{AsgGroup, LaunchTemplateRef, Refresh, RefreshStatus, TemplateVersion};
use serde::Serialize;

use crate::render::rfc3339;
use crate::status::{Attention, SCHEMA_VERSION};

/// The refusal record ami-rollout keeps on the group (one definition, ami-rollout's).
pub use ecs_lifecycle::rollout::decide::REFUSED_AMI_TAG;

/// One group as `rollout status` read it.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupObserved {
    pub info: AsgGroup,
    pub refresh: Option<Refresh>,
    /// The group's own launch template version, resolved.
    pub current: Option<TemplateVersion>,
    /// The version the newest refresh moves to, resolved.
    pub target: Option<TemplateVersion>,
}

impl GroupObserved {
    /// The launch template the newest refresh moves the group to: its desired
    /// configuration's, or the group's own when it has none.
    pub fn target_template(
        info: &AsgGroup,
        refresh: Option<&Refresh>,
    ) -> Option<(LaunchTemplateRef, &'static str)> {
        let r = refresh?;
        match &r.desired_template {
            Some(t) => Some((t.clone(), "refresh")),
            None => info.launch_template.clone().map(|t| (t, "group")),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    pub region: String,
    pub now_ms: u64,
    pub groups: Vec<GroupObserved>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RolloutReport {
    pub version: u32,
    pub kind: &'static str,
    pub region: String,
    pub generated_at: String,
    pub groups: Vec<GroupRow>,
    pub attention: Vec<Attention>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupRow {
    pub group: String,
    /// The group's launch template as it names it, resolved; `None` for a
    /// launch configuration.
    pub launch_template: Option<TemplateRow>,
    pub refresh: Option<RefreshRow>,
    /// What the newest refresh moves the group to; `None` without a refresh.
    pub target: Option<TargetRow>,
    pub refused_amis: Vec<RefusedAmi>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TemplateRow {
    /// Its id, or its name when only the name is given.
    pub launch_template: String,
    /// As written: a number, `$Latest` or `$Default`.
    pub version: String,
    /// What that resolves to; `None` if the version does not exist.
    pub version_number: Option<i64>,
    pub ami: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetRow {
    #[serde(flatten)]
    pub template: TemplateRow,
    /// `refresh` (its desired configuration) or `group` (a refresh without
    /// one moves instances to the group's own launch template).
    pub source: &'static str,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RefreshRow {
    pub id: String,
    pub status: RefreshStatus,
    pub status_reason: Option<String>,
    pub percentage: Option<i32>,
    pub instances_to_update: Option<i32>,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefusedAmi {
    pub ami: String,
    /// `None` when the tag's time is missing or not RFC 3339.
    pub refused_at: Option<String>,
}

/// The refusal tag's value: `<ami-id> <RFC 3339 UTC time>`. A value with no
/// time (or a bad one) still names the AMI; an empty one names nothing.
pub fn parse_refusal(value: &str) -> Option<RefusedAmi> {
    let mut words = value.split_whitespace();
    let ami = words.next()?.to_owned();
    let refused_at = words
        .next()
        .filter(|t| ecs_lifecycle::time::parse_rfc3339(t).is_some());
    Some(RefusedAmi {
        ami,
        refused_at: refused_at.map(str::to_owned),
    })
}

fn template_row(t: &LaunchTemplateRef, resolved: Option<&TemplateVersion>) -> TemplateRow {
    TemplateRow {
        launch_template: t.label().to_owned(),
        version: t.version.clone(),
        version_number: resolved.map(|r| r.number),
        ami: resolved.and_then(|r| r.image_id.clone()),
    }
}

pub fn report(o: &Observed) -> RolloutReport {
    let mut groups: Vec<GroupRow> = o.groups.iter().map(group_row).collect();
    let mut attention: Vec<Attention> = groups
        .iter()
        .flat_map(|g| {
            let refusals = g
                .refused_amis
                .iter()
                .map(|r| refusal_attention(&g.group, r));
            refusals.chain(
                g.refresh
                    .as_ref()
                    .and_then(|r| refresh_attention(&g.group, r)),
            )
        })
        .collect();
    groups.sort_by(|a, b| a.group.cmp(&b.group));
    attention.sort_by(|a, b| (&a.subject, a.kind).cmp(&(&b.subject, b.kind)));
    RolloutReport {
        version: SCHEMA_VERSION,
        kind: "rollout-status",
        region: o.region.clone(),
        generated_at: rfc3339(o.now_ms),
        groups,
        attention,
    }
}

fn group_row(g: &GroupObserved) -> GroupRow {
    let target =
        GroupObserved::target_template(&g.info, g.refresh.as_ref()).map(|(t, source)| TargetRow {
            template: template_row(&t, g.target.as_ref()),
            source,
        });
    GroupRow {
        group: g.info.name.clone(),
        launch_template: g
            .info
            .launch_template
            .as_ref()
            .map(|t| template_row(t, g.current.as_ref())),
        refresh: g.refresh.as_ref().map(refresh_row),
        target,
        refused_amis: g
            .info
            .tags
            .iter()
            .filter(|(k, _)| k == REFUSED_AMI_TAG)
            .filter_map(|(_, v)| parse_refusal(v))
            .collect(),
    }
}

fn refresh_row(r: &Refresh) -> RefreshRow {
    RefreshRow {
        id: r.id.clone(),
        status: r.status.clone(),
        status_reason: r.status_reason.clone(),
        percentage: r.percentage,
        instances_to_update: r.instances_to_update,
        started_at: r.started_ms.map(rfc3339),
        ended_at: r.ended_ms.map(rfc3339),
    }
}

fn refusal_attention(group: &str, r: &RefusedAmi) -> Attention {
    let at = r.refused_at.as_deref().map(|t| format!(" at {t}"));
    Attention {
        kind: "refused_ami",
        subject: group.to_owned(),
        message: format!(
            "ami-rollout refused {} for group {group}{}: it is not rolled out again unless forced",
            r.ami,
            at.unwrap_or_default()
        ),
    }
}

/// A newest refresh that failed or was rolled back.
fn refresh_attention(group: &str, r: &RefreshRow) -> Option<Attention> {
    let kind = match r.status {
        RefreshStatus::Failed | RefreshStatus::RollbackFailed => "refresh_failed",
        RefreshStatus::RollbackSuccessful => "refresh_rolled_back",
        _ => return None,
    };
    let reason = r.status_reason.as_deref().map(|s| format!(": {s}"));
    Some(Attention {
        kind,
        subject: group.to_owned(),
        message: format!(
            "the newest instance refresh of group {group} ({}) ended {}{}",
            r.id,
            r.status,
            reason.unwrap_or_default()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000_000;

    fn lt(version: &str) -> LaunchTemplateRef {
        LaunchTemplateRef {
            id: Some("lt-0123456789abcdef0".into()),
            name: Some("fleet-lt".into()),
            version: version.into(),
        }
    }

    fn info(name: &str, tags: &[(&str, &str)]) -> AsgGroup {
        AsgGroup {
            name: name.into(),
            desired_capacity: 2,
            launch_template: Some(lt("3")),
            mixed_instances_policy: false,
            instances: vec![],
            tags: tags
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            account_id: None,
            unhealthy: vec![],
            terminate_hook_abandon: None,
        }
    }

    fn refresh(status: RefreshStatus, desired: Option<LaunchTemplateRef>) -> Refresh {
        Refresh {
            id: "r-1".into(),
            status,
            status_reason: Some("why".into()),
            percentage: Some(50),
            instances_to_update: Some(1),
            started_ms: Some(NOW - 60_000),
            ended_ms: None,
            desired_template: desired,
            desired_version: None,
            ours: None,
            rollback_reason: None,
        }
    }

    fn image(number: i64, ami: &str) -> TemplateVersion {
        TemplateVersion {
            number,
            image_id: Some(ami.into()),
            description: None,
            is_default: false,
            instance_type: None,
        }
    }

    #[test]
    fn refusal_tag_values() {
        let r = |ami: &str, at: Option<&str>| {
            Some(RefusedAmi {
                ami: ami.into(),
                refused_at: at.map(str::to_owned),
            })
        };
        for (value, expected) in [
            (
                "ami-0123456789abcdef0 2026-11-20T12:00:00Z",
                r("ami-0123456789abcdef0", Some("2026-11-20T12:00:00Z")),
            ),
            (
                "  ami-0123456789abcdef0   2026-11-20T12:00:00.250Z ",
                r("ami-0123456789abcdef0", Some("2026-11-20T12:00:00.250Z")),
            ),
            ("ami-0123456789abcdef0", r("ami-0123456789abcdef0", None)),
            (
                "ami-0123456789abcdef0 yesterday",
                r("ami-0123456789abcdef0", None),
            ),
            ("", None),
            ("   ", None),
        ] {
            assert_eq!(parse_refusal(value), expected, "{value:?}");
        }
    }

    #[test]
    fn refresh_target_current_and_refusals() {
        let o = Observed {
            region: "us-east-1".into(),
            now_ms: NOW,
            groups: vec![
                GroupObserved {
                    info: info(
                        "web",
                        &[
                            (
                                REFUSED_AMI_TAG,
                                "ami-0bad0bad0bad0bad0 2026-11-20T12:00:00Z",
                            ),
                            ("team", "x"),
                        ],
                    ),
                    refresh: Some(refresh(RefreshStatus::InProgress, Some(lt("4")))),
                    current: Some(image(3, "ami-0aaaaaaaaaaaaaaaa")),
                    target: Some(image(4, "ami-0cccccccccccccccc")),
                },
                GroupObserved {
                    info: info("batch", &[]),
                    refresh: None,
                    current: Some(image(3, "ami-0aaaaaaaaaaaaaaaa")),
                    target: None,
                },
            ],
        };
        let r = report(&o);
        assert_eq!((r.version, r.kind), (1, "rollout-status"));
        let names: Vec<_> = r.groups.iter().map(|g| g.group.as_str()).collect();
        assert_eq!(names, ["batch", "web"]);
        let web = &r.groups[1];
        assert_eq!(
            web.target,
            Some(TargetRow {
                template: TemplateRow {
                    launch_template: "lt-0123456789abcdef0".into(),
                    version: "4".into(),
                    version_number: Some(4),
                    ami: Some("ami-0cccccccccccccccc".into()),
                },
                source: "refresh",
            })
        );
        assert_eq!(
            web.launch_template.as_ref().and_then(|t| t.ami.as_deref()),
            Some("ami-0aaaaaaaaaaaaaaaa")
        );
        assert_eq!(
            web.refresh
                .as_ref()
                .map(|x| (x.status.as_str(), x.percentage)),
            Some(("InProgress", Some(50)))
        );
        assert_eq!(web.refused_amis.len(), 1);
        let batch = &r.groups[0];
        assert!(batch.refresh.is_none() && batch.target.is_none() && batch.refused_amis.is_empty());
        let kinds: Vec<_> = r
            .attention
            .iter()
            .map(|a| (a.kind, a.subject.as_str()))
            .collect();
        assert_eq!(kinds, [("refused_ami", "web")]);
        assert!(
            r.attention[0].message.contains("ami-0bad0bad0bad0bad0"),
            "{:?}",
            r.attention
        );
    }

    #[test]
    fn a_refresh_without_a_desired_configuration_targets_the_group_template() {
        let i = info("web", &[]);
        let r = refresh(RefreshStatus::Pending, None);
        assert_eq!(
            GroupObserved::target_template(&i, Some(&r)),
            Some((lt("3"), "group"))
        );
        assert_eq!(GroupObserved::target_template(&i, None), None);
        let no_template = AsgGroup {
            launch_template: None,
            ..i
        };
        assert_eq!(GroupObserved::target_template(&no_template, Some(&r)), None);
    }

    #[test]
    fn which_refresh_statuses_need_attention() {
        use RefreshStatus as S;
        for (status, kind) in [
            (S::Pending, None),
            (S::InProgress, None),
            (S::Successful, None),
            (S::Cancelled, None),
            (S::Baking, None),
            (S::RollbackInProgress, None),
            (S::Failed, Some("refresh_failed")),
            (S::RollbackFailed, Some("refresh_failed")),
            (S::RollbackSuccessful, Some("refresh_rolled_back")),
        ] {
            let o = Observed {
                groups: vec![GroupObserved {
                    info: info("web", &[]),
                    refresh: Some(refresh(status.clone(), None)),
                    current: None,
                    target: None,
                }],
                ..Observed::default()
            };
            let r = report(&o);
            assert_eq!(r.attention.first().map(|a| a.kind), kind, "{status}");
            if kind.is_some() {
                assert!(
                    r.attention[0]
                        .message
                        .ends_with(&format!("ended {status}: why")),
                    "{:?}",
                    r.attention
                );
            }
        }
    }

    #[test]
    fn the_json_has_the_documented_fields() {
        let o = Observed {
            region: "us-east-1".into(),
            now_ms: NOW,
            groups: vec![GroupObserved {
                info: info(
                    "web",
                    &[(
                        REFUSED_AMI_TAG,
                        "ami-0bad0bad0bad0bad0 2026-11-20T12:00:00Z",
                    )],
                ),
                refresh: Some(refresh(RefreshStatus::InProgress, Some(lt("4")))),
                current: Some(image(3, "ami-0aaaaaaaaaaaaaaaa")),
                target: Some(image(4, "ami-0cccccccccccccccc")),
            }],
        };
        let v = serde_json::to_value(report(&o)).unwrap_or_default();
        let keys = |v: &serde_json::Value| -> Vec<String> {
            let mut k: Vec<String> = v
                .as_object()
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default();
            k.sort();
            k
        };
        assert_eq!(
            keys(&v),
            [
                "attention",
                "generated_at",
                "groups",
                "kind",
                "region",
                "version"
            ]
        );
        let g = &v["groups"][0];
        assert_eq!(
            keys(g),
            [
                "group",
                "launch_template",
                "refresh",
                "refused_amis",
                "target"
            ]
        );
        assert_eq!(
            keys(&g["launch_template"]),
            ["ami", "launch_template", "version", "version_number"]
        );
        assert_eq!(
            keys(&g["target"]),
            [
                "ami",
                "launch_template",
                "source",
                "version",
                "version_number"
            ]
        );
        assert_eq!(
            keys(&g["refresh"]),
            [
                "ended_at",
                "id",
                "instances_to_update",
                "percentage",
                "started_at",
                "status",
                "status_reason"
            ]
        );
        assert_eq!(keys(&g["refused_amis"][0]), ["ami", "refused_at"]);
        assert_eq!(g["refresh"]["started_at"], "2027-01-15T07:59:00Z");
    }
    /// The text for people, byte for byte: one row per group, then what needs attention.
    #[test]
    fn the_text_is_a_table_of_groups() {
        let refused = [
            (
                REFUSED_AMI_TAG,
                "ami-0bad0bad0bad0bad0 2026-11-20T12:00:00Z",
            ),
            (REFUSED_AMI_TAG, "ami-0bad0bad0bad0bad1"),
        ];
        let plain = |name: &str, status: RefreshStatus| GroupObserved {
            info: info(name, &[]),
            refresh: Some(refresh(status, None)),
            current: None,
            target: None,
        };
        let o = Observed {
            region: "us-east-1".into(),
            now_ms: NOW,
            groups: vec![
                GroupObserved {
                    info: info("web", &refused),
                    refresh: Some(refresh(RefreshStatus::InProgress, Some(lt("$Latest")))),
                    current: Some(image(3, "ami-0aaaaaaaaaaaaaaaa")),
                    target: Some(image(4, "ami-0cccccccccccccccc")),
                },
                GroupObserved {
                    info: info("batch", &[]),
                    refresh: None,
                    current: Some(image(3, "ami-0aaaaaaaaaaaaaaaa")),
                    target: None,
                },
                plain("api", RefreshStatus::Failed),
                plain("ok", RefreshStatus::Successful),
            ],
        };
        let text = |o: &Observed, color| crate::render::rollout_text(&report(o), color);
        assert_eq!(
            text(&o, false),
            r#"Auto Scaling groups in us-east-1 at 2027-01-15T08:00:00Z

Instance refreshes (4)
GROUP  REFRESH  STATUS      DONE  TARGET                                CURRENT                     REFUSED AMI
api    r-1      Failed       50%  ? (3: no such version)                ? (3: no such version)      -
batch  -        -              -  -                                     ami-0aaaaaaaaaaaaaaaa (v3)  -
ok     r-1      Successful   50%  ? (3: no such version)                ? (3: no such version)      -
web    r-1      InProgress   50%  ami-0cccccccccccccccc ($Latest = v4)  ami-0aaaaaaaaaaaaaaaa (v3)  ami-0bad0bad0bad0bad0 (2026-11-20T12:00:00Z), ami-0bad0bad0bad0bad1

Needs attention (3):
  refresh_failed: the newest instance refresh of group api (r-1) ended Failed: why
  refused_ami: ami-rollout refused ami-0bad0bad0bad0bad0 for group web at 2026-11-20T12:00:00Z: it is not rolled out again unless forced
  refused_ami: ami-rollout refused ami-0bad0bad0bad0bad1 for group web: it is not rolled out again unless forced
"#
        );
        assert_eq!(
            text(&Observed::default(), false),
            r#"Auto Scaling groups in  at 1970-01-01T00:00:00Z

Instance refreshes (0)

Nothing needs attention.
"#
        );
        let coloured = text(&o, true);
        for painted in [
            "\x1b[1mInstance refreshes (4)\x1b[0m",
            "\x1b[31mFailed\x1b[0m",
            "\x1b[32mSuccessful\x1b[0m",
            "\x1b[33mInProgress\x1b[0m",
            "\x1b[31mami-0bad0bad0bad0bad0 (2026-11-20T12:00:00Z), ami-0bad0bad0bad0bad1\x1b[0m",
        ] {
            assert!(coloured.contains(painted), "{painted:?} in {coloured:?}");
        }
    }
}
