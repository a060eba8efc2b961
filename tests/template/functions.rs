//! The functions: one a Lambda binary, with the environment its code reads,
//! built, logged and dead-lettered alike.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::cfn::{Stack, functions, read, root};
use crate::code::{notification_topic, vars_read_by};
use crate::{fleet, rollout_stack};

/// The workspace's Lambda binaries: the binaries of packages that depend on
/// lambda_runtime (the shared library does too, but has no binary).
fn workspace_lambdas() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for entry in std::fs::read_dir(root().join("crates")).unwrap() {
        let dir = entry.unwrap().path();
        let Ok(text) = std::fs::read_to_string(dir.join("Cargo.toml")) else {
            continue;
        };
        let mut section = "";
        let mut package = None;
        let mut bins = Vec::new();
        let mut lambda = false;
        for line in text.lines().map(str::trim) {
            let value = || line.split('"').nth(1).map(str::to_owned);
            if line.starts_with('[') {
                section = line;
            } else if section == "[package]" && line.starts_with("name") {
                package = value();
            } else if section == "[[bin]]" && line.starts_with("name") {
                bins.extend(value());
            } else if section == "[dependencies]" && line.starts_with("lambda_runtime") {
                lambda = true;
            } else if section == "[package.metadata.ecs-lifecycle]"
                && line.starts_with("not-a-function")
            {
                // A benchmark's baseline (crates/lambda-echo), never deployed.
                lambda = false;
                break;
            }
        }
        if bins.is_empty() && dir.join("src/main.rs").is_file() {
            bins.extend(package);
        }
        if lambda {
            out.extend(bins);
        }
    }
    out
}

/// Variables whose parameter may be empty (empty = none). DRAIN_SLOTS_TABLE
/// is empty unless MaxConcurrentDrains limits (no table then).
const OPTIONAL_VARS: &[&str] = &["NOTIFICATION_TOPIC_ARN", "DRAIN_SLOTS_TABLE"];

#[test]
fn every_lambda_binary_is_a_function_with_the_variables_its_code_reads() {
    let stack = fleet();
    let fns = functions(&stack);
    let binaries: BTreeSet<String> = fns.values().map(|(b, _)| b.clone()).collect();
    assert_eq!(binaries, workspace_lambdas(), "functions in template.yaml");
    for (id, (binary, f)) in &fns {
        let vars: BTreeSet<String> = f["Properties"]["Environment"]["Variables"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(vars, vars_read_by(binary), "{id}: environment variables");
        for (k, v) in f["Properties"]["Environment"]["Variables"]
            .as_object()
            .unwrap()
        {
            // An optional parameter left empty is an empty variable, which the
            // code reads as unset.
            assert!(
                v.as_str()
                    .is_some_and(|s| !s.is_empty() || OPTIONAL_VARS.contains(&k.as_str())),
                "{id}: {k} resolves to {v}"
            );
        }
    }
}

/// MaxConcurrentDrains: 0 (the default) brings nothing; a limit brings the
/// budget's table (on demand, keyed by cluster), its name in
/// DRAIN_SLOTS_TABLE, and a grant on that table only, for the cluster's own
/// item (dynamodb:LeadingKeys), of the two calls the budget makes.
#[test]
fn a_drain_budget_brings_its_table_and_a_grant_on_its_own_item() {
    let drain_env = |stack: &Stack| {
        functions(stack)
            .values()
            .find(|(b, _)| b == "terminate-drain")
            .map(|(_, f)| f["Properties"]["Environment"]["Variables"].clone())
            .unwrap()
    };
    let dynamodb = |stack: &Stack| -> Vec<Value> {
        crate::cfn::identity_statements(stack)
            .into_iter()
            .filter(|(_, s)| {
                crate::cfn::strings(&s["Action"])
                    .iter()
                    .any(|a| a.starts_with("dynamodb:"))
            })
            .map(|(role, s)| json!({"role": role, "statement": s}))
            .collect()
    };
    let default = fleet();
    assert_eq!(drain_env(&default)["MAX_CONCURRENT_DRAINS"], "0");
    assert_eq!(drain_env(&default)["DRAIN_SLOTS_TABLE"], "");
    assert!(!default.resources().contains_key("DrainSlotsTable"));
    assert!(dynamodb(&default).is_empty());

    let budget = Stack::new(&[
        ("ClusterName", "prod"),
        ("AutoScalingGroupNames", "web-asg"),
        ("MaxConcurrentDrains", "25%"),
    ]);
    assert_eq!(drain_env(&budget)["MAX_CONCURRENT_DRAINS"], "25%");
    assert_eq!(drain_env(&budget)["DRAIN_SLOTS_TABLE"], "<DrainSlotsTable>");
    let table = &budget.resources()["DrainSlotsTable"];
    assert_eq!(table["Type"], "AWS::DynamoDB::Table");
    assert_eq!(table["Properties"]["BillingMode"], "PAY_PER_REQUEST");
    assert_eq!(
        table["Properties"]["KeySchema"],
        json!([{"AttributeName": "cluster", "KeyType": "HASH"}])
    );
    let grants = dynamodb(&budget);
    assert_eq!(grants.len(), 1, "{grants:#?}");
    assert_eq!(grants[0]["role"], "TerminateDrainRole");
    let s = &grants[0]["statement"];
    assert_eq!(
        crate::cfn::strings(&s["Action"]),
        ["dynamodb:GetItem", "dynamodb:PutItem"]
    );
    assert_eq!(
        crate::cfn::strings(&s["Resource"]),
        ["<DrainSlotsTable.Arn>"]
    );
    assert_eq!(
        s["Condition"],
        json!({"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["prod"]}})
    );
}

#[test]
fn environment_values_come_from_the_parameters_and_resources() {
    let stack = Stack::new(&[
        ("ClusterName", "prod"),
        ("AutoScalingGroupNames", "web-asg"),
        ("MaxDrainSeconds", "600"),
        ("RegistrationTimeoutSeconds", "420"),
        ("TerminateOrphans", "true"),
    ]);
    let fns = functions(&stack);
    let env = |binary: &str| {
        fns.values()
            .find(|(b, _)| b == binary)
            .map(|(_, f)| f["Properties"]["Environment"]["Variables"].clone())
            .unwrap()
    };
    let drain = env("terminate-drain");
    let launch = env("launch-verify");
    for e in [&drain, &launch] {
        assert_eq!(e["CLUSTER_NAME"], "prod");
        assert_eq!(e["CONTINUATION_TOPIC_ARN"], "<LifecycleTopic>");
        assert_eq!(e["DRY_RUN"], "false");
    }
    // ECS's events complete drains (DrainOnEcsEvents, default true): the drain's
    // polls are the safety net, every 30 s; launch-verify has no events, 10 s.
    assert_eq!(drain["POLL_INTERVAL_SECONDS"], "30");
    assert_eq!(launch["POLL_INTERVAL_SECONDS"], "10");
    assert_eq!(drain["MAX_DRAIN_SECONDS"], "600");
    assert_eq!(drain["STANDALONE_TASKS"], "wait");
    assert_eq!(launch["REGISTRATION_TIMEOUT_SECONDS"], "420");
    assert_eq!(launch["TERMINATE_ORPHANS"], "true");
    assert_eq!(launch["SSM_DOCUMENT_NAME"], "<OrphanDiagnosticDocument>");
    assert_eq!(launch["DIAGNOSTICS_LOG_GROUP"], "<DiagnosticsLogGroup>");

    // Without the events, terminate-drain polls as often as launch-verify.
    let stack = Stack::new(&[
        ("ClusterName", "prod"),
        ("AutoScalingGroupNames", "web-asg"),
        ("DrainOnEcsEvents", "false"),
        ("PollIntervalSeconds", "7"),
    ]);
    let drain = functions(&stack)
        .values()
        .find(|(b, _)| b == "terminate-drain")
        .map(|(_, f)| f["Properties"]["Environment"]["Variables"].clone())
        .unwrap();
    assert_eq!(drain["POLL_INTERVAL_SECONDS"], "7");
}

/// NotificationTopicArn reaches every function as NOTIFICATION_TOPIC_ARN, and
/// the code's configuration takes the template's value as it is meant: a topic
/// to publish to, or (empty, the default) none.
#[test]
fn every_function_gets_the_notification_topic_and_empty_means_none() {
    let topic = "arn:aws:sns:us-east-1:123456789012:ecs-events";
    for (value, want) in [("", None), (topic, Some(topic.to_owned()))] {
        let stack = rollout_stack(&[("NotificationTopicArn", value)]);
        let fns = functions(&stack);
        assert_eq!(fns.len(), 3);
        for (id, (_, f)) in &fns {
            let env = &f["Properties"]["Environment"]["Variables"];
            assert_eq!(env["NOTIFICATION_TOPIC_ARN"], value, "{id}");
            assert_eq!(notification_topic(env).unwrap(), want, "{id}");
        }
    }
}

#[test]
fn functions_are_arm64_al2023_cargo_lambda_builds_with_json_logs_and_a_dead_letter_queue() {
    let stack = fleet();
    let resources = stack.resources();
    for (id, (binary, f)) in functions(&stack) {
        let p = &f["Properties"];
        assert_eq!(f["Metadata"]["BuildMethod"], "rust-cargolambda", "{id}");
        assert_eq!(p["CodeUri"], format!("crates/{binary}"), "{id}");
        assert!(root().join(format!("crates/{binary}/Cargo.toml")).exists());
        assert_eq!(p["Runtime"], "provided.al2023", "{id}");
        assert_eq!(p["Architectures"], json!(["arm64"]), "{id}");
        assert_eq!(p["Handler"], "bootstrap", "{id}");
        assert_eq!(p["Timeout"], 900, "{id}");
        assert_eq!(p["MemorySize"], 128, "{id}");
        // JSON logs through Lambda's logging config (it sets AWS_LAMBDA_LOG_FORMAT),
        // into an explicit log group with the retention parameter.
        assert_eq!(p["LoggingConfig"]["LogFormat"], "JSON", "{id}");
        let group = p["LoggingConfig"]["LogGroup"].as_str().unwrap();
        let group = group.trim_start_matches('<').trim_end_matches('>');
        assert_eq!(resources[group]["Type"], "AWS::Logs::LogGroup", "{id}");
        assert_eq!(resources[group]["Properties"]["RetentionInDays"], "14");
        // Async invocations that fail twice more end in the queue.
        let invoke = &p["EventInvokeConfig"];
        assert_eq!(invoke["MaximumRetryAttempts"], 2, "{id}");
        assert_eq!(invoke["DestinationConfig"]["OnFailure"]["Type"], "SQS");
        assert_eq!(
            invoke["DestinationConfig"]["OnFailure"]["Destination"],
            "<DeadLetterQueue.Arn>"
        );
        // The role is the template's own: every permission is visible to the IAM test.
        assert!(p["Role"].as_str().unwrap().ends_with(".Arn>"), "{id}");
        assert!(p.get("Policies").is_none(), "{id}: use the explicit role");
    }
}

/// A function that re-publishes to CONTINUATION_TOPIC_ARN is subscribed to it:
/// without `RecursiveLoop: Allow`, Lambda stops that loop after about 16 hops.
/// (ami-rollout has no such loop: a schedule re-arms it, see `ami_rollout`.)
#[test]
fn functions_that_continue_through_their_own_topic_allow_the_loop() {
    let stack = fleet();
    let continuing: Vec<(String, Value)> = functions(&stack)
        .into_iter()
        .filter(|(_, (_, f))| {
            f["Properties"]["Environment"]["Variables"]
                .get("CONTINUATION_TOPIC_ARN")
                .is_some()
        })
        .map(|(id, (_, f))| (id, f))
        .collect();
    assert_eq!(continuing.len(), 2, "terminate-drain and launch-verify");
    for (id, f) in continuing {
        let p = &f["Properties"];
        let topic = &p["Environment"]["Variables"]["CONTINUATION_TOPIC_ARN"];
        let subscribed = p["Events"]
            .as_object()
            .unwrap()
            .values()
            .any(|e| e["Type"] == "SNS" && &e["Properties"]["Topic"] == topic);
        assert!(
            subscribed,
            "{id} is not subscribed to its continuation topic"
        );
        assert_eq!(p["RecursiveLoop"], "Allow", "{id}");
    }
}

/// The functions' `rust-cargolambda` build method is a SAM CLI beta feature:
/// samconfig.toml opts in for `sam build` and `sam sync`, or an unattended
/// build stops at SAM's y/N prompt.
#[test]
fn samconfig_opts_in_to_the_beta_build_method() {
    let text = read("samconfig.toml");
    let mut section = "";
    let mut opted_in = BTreeSet::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line;
        } else if line.replace(' ', "") == "beta_features=true" {
            opted_in.insert(section.to_owned());
        }
    }
    for needed in ["[default.build.parameters]", "[default.sync.parameters]"] {
        assert!(opted_in.contains(needed), "{needed}: beta_features = true");
    }
    let stack = fleet();
    assert!(
        functions(&stack)
            .values()
            .all(|(_, f)| f["Metadata"]["BuildMethod"] == "rust-cargolambda")
    );
}
