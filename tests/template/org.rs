//! Org-wide deployment and safe upgrades (issue 19, items 5 and 6).
//!
//! Read by the resolver (`cfn::Stack`) and, where SAM decides, from what SAM's
//! own code makes of the template: `scripts/package-offline.py` (SAM CLI's
//! packager, artifacts written to a directory instead of S3) and
//! `scripts/sam-translate.py` (SAM CLI's AWS::LanguageExtensions expansion, then
//! the SAM translator the transform runs), both in the SAM CLI venv that
//! `scripts/setup-venv.sh` makes (`.venv/lint`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::TWELVE_GROUPS;
use crate::cfn::{Stack, root};

const BOUNDARY: &str = "arn:aws:iam::123456789012:policy/org/ecs-lifecycle-boundary";

/// The SAM CLI venv's Python (scripts/setup-venv.sh).
fn python() -> PathBuf {
    let p = root().join(".venv/lint/bin/python");
    assert!(
        p.exists(),
        "{}: run scripts/setup-venv.sh (the SAM CLI venv)",
        p.display()
    );
    p
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// template.yaml packaged for a StackSet into `dir`: (packaged template, artifacts).
fn package(dir: &Path) -> (PathBuf, PathBuf) {
    let packaged = dir.join("packaged.yaml");
    let artifacts = dir.join("artifacts");
    run(Command::new(python())
        .current_dir(root())
        .arg("scripts/package-offline.py")
        .args([
            "--template",
            "template.yaml",
            "--bucket-prefix",
            "org-artifacts",
        ])
        .arg("--artifacts")
        .arg(&artifacts)
        .arg("--output")
        .arg(&packaged));
    (packaged, artifacts)
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ecs-lifecycle-org-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// What CloudFormation deploys from the packaged template with these values.
fn translated(packaged: &Path, params: &[(&str, &str)]) -> BTreeMap<String, Value> {
    let out = run(Command::new(python())
        .current_dir(root())
        .arg("scripts/sam-translate.py")
        .arg(packaged)
        .args(params.iter().map(|(k, v)| format!("{k}={v}"))));
    let t: Value = serde_json::from_str(&out).unwrap();
    assert!(
        t.get("Transform").is_none(),
        "the translated template still has a Transform"
    );
    t["Resources"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The parameter combinations that change which roles and functions exist.
fn stacks(extra: &[(&str, &str)]) -> Vec<Stack> {
    let base = [
        ("ClusterName", "prod"),
        ("AutoScalingGroupNames", "web-asg,batch-asg"),
    ];
    let rollout = [
        ("EnableAmiRollout", "true"),
        ("InstanceRoleName", "ecsInstanceRole"),
    ];
    let launch_event = [
        ("LaunchTrigger", "LaunchEvent"),
        ("DrainOnEcsEvents", "false"),
    ];
    [&[][..], &rollout[..], &launch_event[..]]
        .iter()
        .map(|variant| {
            let params: Vec<(&str, &str)> =
                base.iter().chain(*variant).chain(extra).copied().collect();
            Stack::new(&params)
        })
        .collect()
}

#[test]
fn every_role_has_the_permissions_boundary_when_one_is_given() {
    for stack in stacks(&[("PermissionsBoundaryArn", BOUNDARY)]) {
        let roles = stack.of_type("AWS::IAM::Role");
        assert!(roles.len() >= 3);
        for (id, r) in roles {
            assert_eq!(r["Properties"]["PermissionsBoundary"], BOUNDARY, "{id}");
        }
        // SAM makes a role for a function without one, and the template's
        // boundary would not be on it: every function names its role.
        for (id, f) in stack.of_type("AWS::Serverless::Function") {
            assert!(f["Properties"]["Role"].is_string(), "{id}: no Role");
        }
    }
    for stack in stacks(&[]) {
        for (id, r) in stack.of_type("AWS::IAM::Role") {
            assert!(
                r["Properties"].get("PermissionsBoundary").is_none(),
                "{id}: a boundary although none was given"
            );
        }
    }
}

#[test]
fn one_stack_hooks_any_number_of_groups_and_routes_each_event_once() {
    let groups: Vec<&str> = TWELVE_GROUPS.split(',').collect();
    let few = Stack::new(&[
        ("ClusterName", "prod"),
        ("AutoScalingGroupNames", "web-asg"),
    ]);
    let many = Stack::new(&[
        ("ClusterName", "prod"),
        ("AutoScalingGroupNames", TWELVE_GROUPS),
    ]);
    let hooks = many.of_type("AWS::AutoScaling::LifecycleHook");
    for (transition, name) in [
        (
            "autoscaling:EC2_INSTANCE_TERMINATING",
            "ecs-lifecycle-terminate",
        ),
        ("autoscaling:EC2_INSTANCE_LAUNCHING", "ecs-lifecycle-launch"),
    ] {
        let on: Vec<&str> = hooks
            .values()
            .filter(|h| h["Properties"]["LifecycleTransition"] == transition)
            .map(|h| {
                assert_eq!(h["Properties"]["LifecycleHookName"], name);
                assert_eq!(h["Properties"]["NotificationTargetARN"], "<LifecycleTopic>");
                h["Properties"]["AutoScalingGroupName"].as_str().unwrap()
            })
            .collect();
        assert_eq!(
            on.iter().copied().collect::<BTreeSet<_>>(),
            groups.iter().copied().collect::<BTreeSet<_>>(),
            "{transition}: one hook per group"
        );
        assert_eq!(on.len(), groups.len());
    }
    // No launch hooks with the event trigger, a terminate hook per group still.
    let by_event = Stack::new(&[
        ("ClusterName", "prod"),
        ("AutoScalingGroupNames", TWELVE_GROUPS),
        ("LaunchTrigger", "LaunchEvent"),
    ]);
    assert_eq!(
        by_event.of_type("AWS::AutoScaling::LifecycleHook").len(),
        groups.len()
    );
    // Everything but the hooks is the same for 1 group and for 12: one set of
    // functions and rules, so each ECS, Spot or Health event reaches one function.
    let kinds = |s: &Stack| -> BTreeMap<String, Vec<String>> {
        let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (id, r) in s.resources() {
            if r["Type"] != "AWS::AutoScaling::LifecycleHook" {
                m.entry(r["Type"].as_str().unwrap().to_owned())
                    .or_default()
                    .push(id);
            }
        }
        m
    };
    assert_eq!(kinds(&few), kinds(&many));
    assert!(
        !many.resources().contains_key("LaunchSuccessfulRule"),
        "LaunchSuccessfulRule without LaunchEvent"
    );
    let rule = &by_event.resources()["LaunchSuccessfulRule"]["Properties"]["EventPattern"];
    assert_eq!(
        rule["detail"]["AutoScalingGroupName"],
        serde_json::json!(groups)
    );
}

/// SNS, EventBridge and the hooks (through the topic) invoke the alias `live`,
/// never `$LATEST`; Lambda's async retries and on-failure destination are the
/// alias's. Checked on what SAM makes of the packaged template.
#[test]
fn every_invoker_calls_the_published_alias() {
    for stack in stacks(&[]) {
        for (id, f) in stack.of_type("AWS::Serverless::Function") {
            assert_eq!(f["Properties"]["AutoPublishAlias"], "live", "{id}");
        }
        for (id, r) in stack.of_type("AWS::Events::Rule") {
            for t in r["Properties"]["Targets"].as_array().unwrap() {
                let arn = t["Arn"].as_str().unwrap();
                assert!(arn.ends_with("Function.Alias>"), "{id}: target {arn}");
            }
        }
        for (id, p) in stack.of_type("AWS::Lambda::Permission") {
            let f = p["Properties"]["FunctionName"].as_str().unwrap();
            assert!(f.ends_with("Function.Alias>"), "{id}: {f}");
        }
    }

    let dir = temp_dir("alias");
    let (packaged, _) = package(&dir);
    for params in [
        &[
            ("ClusterName", "prod"),
            ("AutoScalingGroupNames", "web-asg,batch-asg"),
        ][..],
        &[
            ("ClusterName", "prod"),
            ("AutoScalingGroupNames", "web-asg"),
            ("EnableAmiRollout", "true"),
            ("InstanceRoleName", "ecsInstanceRole"),
            ("LaunchTrigger", "LaunchEvent"),
            ("RebalanceAction", "drain"),
        ][..],
    ] {
        // SAM keeps each resource's Condition; only those that hold are deployed.
        let stack = Stack::new(params);
        let resources: BTreeMap<String, Value> = translated(&packaged, params)
            .into_iter()
            .filter(|(_, r)| r["Condition"].as_str().is_none_or(|c| stack.condition(c)))
            .collect();
        let aliases: BTreeMap<String, String> = resources
            .iter()
            .filter(|(_, r)| r["Type"] == "AWS::Lambda::Alias")
            .map(|(id, r)| {
                assert_eq!(r["Properties"]["Name"], "live", "{id}");
                let f = r["Properties"]["FunctionName"]["Ref"].as_str().unwrap();
                (f.to_owned(), id.clone())
            })
            .collect();
        let functions: Vec<&String> = resources
            .iter()
            .filter(|(_, r)| r["Type"] == "AWS::Lambda::Function")
            .map(|(id, _)| id)
            .collect();
        assert_eq!(aliases.len(), functions.len(), "an alias per function");
        let is_alias = |v: &Value| {
            v["Ref"]
                .as_str()
                .is_some_and(|r| aliases.values().any(|a| a == r))
        };
        let mut invokers = 0;
        for (id, r) in &resources {
            let p = &r["Properties"];
            match r["Type"].as_str().unwrap() {
                // A wait queue's subscription delivers to the queue, which its
                // event source mapping (below) reads for the function.
                "AWS::SNS::Subscription" if p["Protocol"] == "sqs" => {}
                "AWS::SNS::Subscription" => {
                    assert!(is_alias(&p["Endpoint"]), "{id}: {}", p["Endpoint"]);
                    invokers += 1;
                }
                "AWS::Lambda::EventSourceMapping" => {
                    assert!(is_alias(&p["FunctionName"]), "{id}: {}", p["FunctionName"]);
                    invokers += 1;
                }
                "AWS::Lambda::Permission" => {
                    assert!(is_alias(&p["FunctionName"]), "{id}: {}", p["FunctionName"]);
                }
                "AWS::Events::Rule" => {
                    for t in p["Targets"].as_array().unwrap() {
                        assert!(is_alias(&t["Arn"]), "{id}: {}", t["Arn"]);
                        invokers += 1;
                    }
                }
                "AWS::Lambda::EventInvokeConfig" => {
                    assert_eq!(p["Qualifier"], "live", "{id}");
                }
                _ => {}
            }
        }
        assert!(invokers >= 4, "{invokers} invokers");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The stack's tags (sam deploy --tags, a StackSet's Tags) reach every
/// resource that takes tags through CloudFormation; the functions carry the
/// template's own tag and SAM propagates it to what it makes for them.
#[test]
fn the_functions_tags_are_propagated() {
    let t = crate::cfn::template();
    assert_eq!(t["Globals"]["Function"]["PropagateTags"], true);
    assert!(
        t["Globals"]["Function"]["Tags"]
            .as_object()
            .is_some_and(|m| !m.is_empty())
    );
    for stack in stacks(&[]) {
        for (id, f) in stack.of_type("AWS::Serverless::Function") {
            assert_eq!(f["Properties"]["PropagateTags"], true, "{id}");
            assert_eq!(
                f["Properties"]["Tags"]["ecs-lifecycle:component"], "function",
                "{id}"
            );
        }
    }
}

/// The StackSet path: the packaged template has every function's code in S3
/// (one bucket per Region, `<prefix>-${AWS::Region}`, the key its zip in the
/// artifacts directory), passes cfn-lint, and SAM translates it for any number
/// of groups with the boundary on every role it makes or is given.
#[test]
fn the_packaged_template_lints_and_deploys_for_any_number_of_groups() {
    let dir = temp_dir("stackset");
    let (packaged, artifacts) = package(&dir);
    let text = std::fs::read_to_string(&packaged).unwrap();
    let t: Value = serde_yaml_ng::from_str(&text).unwrap();
    let mut functions = 0;
    for (id, r) in t["Resources"].as_object().unwrap() {
        if r["Type"] != "AWS::Serverless::Function" {
            continue;
        }
        functions += 1;
        let code = &r["Properties"]["CodeUri"];
        assert_eq!(
            code["Bucket"]["Fn::Sub"], "org-artifacts-${AWS::Region}",
            "{id}: {code}"
        );
        let key = code["Key"].as_str().unwrap();
        assert!(artifacts.join(key).is_file(), "{id}: no artifact {key}");
    }
    assert_eq!(functions, 3);

    let lint = Command::new(root().join(".venv/lint/bin/cfn-lint"))
        .arg(&packaged)
        .output()
        .unwrap();
    assert!(
        lint.status.success(),
        "cfn-lint on the packaged template:\n{}",
        String::from_utf8_lossy(&lint.stdout)
    );

    let resources = translated(
        &packaged,
        &[
            ("ClusterName", "prod"),
            ("AutoScalingGroupNames", TWELVE_GROUPS),
            ("EnableAmiRollout", "true"),
            ("InstanceRoleName", "ecsInstanceRole"),
            ("PermissionsBoundaryArn", BOUNDARY),
        ],
    );
    let hooks = resources
        .values()
        .filter(|r| r["Type"] == "AWS::AutoScaling::LifecycleHook")
        .count();
    assert_eq!(hooks, 2 * TWELVE_GROUPS.split(',').count());
    let roles: Vec<(&String, &Value)> = resources
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::IAM::Role")
        .collect();
    assert_eq!(
        roles.len(),
        4,
        "the template's roles, and no role made by SAM"
    );
    for (id, r) in roles {
        assert_eq!(r["Properties"]["PermissionsBoundary"], BOUNDARY, "{id}");
    }
    for (id, r) in &resources {
        if r["Type"] == "AWS::Lambda::Function" {
            assert_eq!(
                r["Properties"]["Code"]["S3Bucket"], "org-artifacts-us-east-1",
                "{id}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
