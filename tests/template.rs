//! The SAM template (`template.yaml`) against the code and the rules it must keep.
//!
//! The template is read with its CloudFormation tags (`!Ref`, `!Sub`, ...), turned
//! into long form, and evaluated for given parameter values by a small resolver of
//! the intrinsic functions it uses (Ref, Fn::Sub, Fn::Select, Fn::Split, Fn::Join,
//! Fn::If, Fn::GetAtt, conditions). A reference to a resource resolves to
//! `<Logical>`, an attribute to `<Logical.Attr>`. Checked:
//! - every Lambda binary of the workspace is a function, with exactly the
//!   environment variables its configuration reads (`COMMON_VARS` + `VARS`, or
//!   ami-rollout's own complete `RolloutConfig::VARS`);
//! - IAM: no mutating action on `*` without a condition, lifecycle actions and
//!   termination only on the given groups, ECS changes only in the cluster,
//!   SendCommand only with the diagnostic document on instances of the groups,
//!   Publish only to the topic; ami-rollout's refreshes, group updates and
//!   marker tag only on the given groups, launches only through launch
//!   templates, PassRole only to EC2;
//! - hooks on every group, filter policies that route each message to its
//!   function, and the diagnostic document's copy of the script;
//! - ami-rollout exists only with `EnableAmiRollout=true`, with its parameter
//!   change rule, its watch schedule, and an alarm on its rollback log line.
//!
//! The script is embedded verbatim; after editing
//! `crates/launch-verify/diagnostic/ecs-orphan-diagnostic.sh`, refresh the copy
//! with `UPDATE_TEMPLATE=1 cargo test --test template`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed set-up is a failed test

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use ecs_lifecycle::config::{
    COMMON_VARS, ClusterScope, DrainConfig, Env, LaunchConfig, RolloutConfig,
};
use ecs_lifecycle::rollout::UNSTEADY_TAG;
use serde_json::{Map, Value, json};

const REGION: &str = "us-east-1";
const ACCOUNT: &str = "123456789012";
const STACK: &str = "ecs-lifecycle";
const SCRIPT: &str = "crates/launch-verify/diagnostic/ecs-orphan-diagnostic.sh";
const HEREDOC_END: &str = "ECS_ORPHAN_DIAGNOSTIC_EOF";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

// ---------------------------------------------------------------- reading

/// YAML with CloudFormation's short-form tags -> JSON in long form.
fn long_form(v: serde_yaml_ng::Value) -> Value {
    use serde_yaml_ng::Value as Y;
    match v {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                json!(i)
            } else {
                json!(n.as_f64())
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(long_form).collect()),
        Y::Mapping(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| {
                    let key = match k {
                        Y::String(s) => s,
                        other => serde_yaml_ng::to_string(&other).unwrap().trim().to_owned(),
                    };
                    (key, long_form(v))
                })
                .collect(),
        ),
        Y::Tagged(t) => {
            let tag = t.tag.to_string();
            let name = tag.trim_start_matches('!').to_owned();
            let inner = long_form(t.value);
            match name.as_str() {
                "Ref" | "Condition" => json!({ name: inner }),
                "GetAtt" => {
                    let parts = match inner {
                        Value::String(s) => {
                            let (res, attr) = s.split_once('.').expect("!GetAtt Resource.Attr");
                            json!([res, attr])
                        }
                        other => other,
                    };
                    json!({ "Fn::GetAtt": parts })
                }
                _ => json!({ format!("Fn::{name}"): inner }),
            }
        }
    }
}

fn template() -> Value {
    let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(&read("template.yaml")).unwrap();
    long_form(yaml)
}

// ---------------------------------------------------------------- resolving

/// The template deployed with some parameter values.
struct Stack {
    template: Value,
    params: BTreeMap<String, String>,
}

impl Stack {
    fn new(overrides: &[(&str, &str)]) -> Self {
        let template = template();
        let mut params = BTreeMap::new();
        for (name, p) in template["Parameters"].as_object().unwrap() {
            if let Some(d) = p.get("Default") {
                let d = match d {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                params.insert(name.clone(), d);
            }
        }
        for (k, v) in overrides {
            assert!(
                template["Parameters"].get(*k).is_some(),
                "no parameter {k} in the template"
            );
            params.insert((*k).to_owned(), (*v).to_owned());
        }
        Stack { template, params }
    }

    /// Two groups, hooks on both, ami-rollout installed: the default case of
    /// these tests.
    fn fleet() -> Self {
        Stack::new(&[
            ("ClusterName", "prod"),
            ("AutoScalingGroupNames", "web-asg,batch-asg"),
            ("LogRetentionDays", "14"),
            ("EnableAmiRollout", "true"),
        ])
    }

    fn condition(&self, name: &str) -> bool {
        let c = &self.template["Conditions"][name];
        assert!(!c.is_null(), "no condition {name}");
        self.eval(c).unwrap().as_bool().unwrap()
    }

    fn reference(&self, name: &str) -> Option<Value> {
        Some(Value::String(match name {
            "AWS::Region" => REGION.into(),
            "AWS::AccountId" => ACCOUNT.into(),
            "AWS::Partition" => "aws".into(),
            "AWS::StackName" => STACK.into(),
            "AWS::NoValue" => return None,
            _ => {
                if let Some(v) = self.params.get(name) {
                    v.clone()
                } else if self.template["Resources"].get(name).is_some() {
                    format!("<{name}>")
                } else {
                    panic!("Ref to unknown {name}")
                }
            }
        }))
    }

    fn sub(&self, text: &str, vars: &Map<String, Value>) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after.find('}').expect("unclosed ${ in Fn::Sub");
            let name = &after[..end];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else if let Some(v) = vars.get(name) {
                out.push_str(self.eval(v).unwrap().as_str().unwrap());
            } else if let Some((res, attr)) = name.split_once('.') {
                assert!(
                    self.template["Resources"].get(res).is_some(),
                    "${{{name}}}: no resource {res}"
                );
                out.push_str(&format!("<{res}.{attr}>"));
            } else {
                let v = self.reference(name).expect("AWS::NoValue in Fn::Sub");
                out.push_str(v.as_str().unwrap());
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        out
    }

    /// `None` is `AWS::NoValue`.
    fn eval(&self, v: &Value) -> Option<Value> {
        match v {
            Value::Array(items) => Some(Value::Array(
                items.iter().filter_map(|i| self.eval(i)).collect(),
            )),
            Value::Object(m) if m.len() == 1 => {
                let (k, arg) = m.iter().next().unwrap();
                let args = || arg.as_array().unwrap_or_else(|| panic!("{k} takes a list"));
                let s = |v: &Value| self.eval(v).unwrap().as_str().unwrap().to_owned();
                match k.as_str() {
                    "Ref" => self.reference(arg.as_str().unwrap()),
                    "Condition" => Some(json!(self.condition(arg.as_str().unwrap()))),
                    "Fn::GetAtt" => {
                        let a = args();
                        let res = a[0].as_str().unwrap();
                        assert!(
                            self.template["Resources"].get(res).is_some(),
                            "GetAtt of unknown {res}"
                        );
                        Some(json!(format!("<{res}.{}>", a[1].as_str().unwrap())))
                    }
                    "Fn::Sub" => Some(json!(match arg {
                        Value::String(text) => self.sub(text, &Map::new()),
                        Value::Array(a) =>
                            self.sub(a[0].as_str().unwrap(), a[1].as_object().unwrap()),
                        _ => panic!("bad Fn::Sub"),
                    })),
                    "Fn::Split" => {
                        let a = args();
                        let delim = a[0].as_str().unwrap();
                        Some(json!(s(&a[1]).split(delim).collect::<Vec<_>>()))
                    }
                    "Fn::Join" => {
                        let a = args();
                        let list = self.eval(&a[1]).unwrap();
                        let parts: Vec<&str> = list
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|p| p.as_str().unwrap())
                            .collect();
                        Some(json!(parts.join(a[0].as_str().unwrap())))
                    }
                    "Fn::Select" => {
                        let a = args();
                        let i = match &a[0] {
                            Value::Number(n) => n.as_u64().unwrap() as usize,
                            other => s(other).parse().unwrap(),
                        };
                        let list = self.eval(&a[1]).unwrap();
                        let items = list.as_array().unwrap();
                        assert!(
                            i < items.len(),
                            "Fn::Select {i} out of {items:?}: a deploy error"
                        );
                        Some(items[i].clone())
                    }
                    "Fn::If" => {
                        let a = args();
                        if self.condition(a[0].as_str().unwrap()) {
                            self.eval(&a[1])
                        } else {
                            self.eval(&a[2])
                        }
                    }
                    "Fn::Equals" => {
                        let a = args();
                        Some(json!(self.eval(&a[0]) == self.eval(&a[1])))
                    }
                    "Fn::Not" => Some(json!(!self.eval(&args()[0]).unwrap().as_bool().unwrap())),
                    "Fn::And" => Some(json!(
                        args()
                            .iter()
                            .all(|c| self.eval(c).unwrap().as_bool().unwrap())
                    )),
                    "Fn::Or" => Some(json!(
                        args()
                            .iter()
                            .any(|c| self.eval(c).unwrap().as_bool().unwrap())
                    )),
                    other if other.starts_with("Fn::") => panic!("{other} is not resolved here"),
                    _ => self.eval_map(m),
                }
            }
            Value::Object(m) => self.eval_map(m),
            other => Some(other.clone()),
        }
    }

    fn eval_map(&self, m: &Map<String, Value>) -> Option<Value> {
        Some(Value::Object(
            m.iter()
                .filter_map(|(k, v)| self.eval(v).map(|v| (k.clone(), v)))
                .collect(),
        ))
    }

    /// The resources this stack creates (their `Condition` holds), resolved.
    fn resources(&self) -> BTreeMap<String, Value> {
        let mut out = BTreeMap::new();
        for (name, r) in self.template["Resources"].as_object().unwrap() {
            if let Some(c) = r.get("Condition")
                && !self.condition(c.as_str().unwrap())
            {
                continue;
            }
            out.insert(name.clone(), self.eval(r).unwrap());
        }
        out
    }

    fn of_type(&self, ty: &str) -> BTreeMap<String, Value> {
        self.resources()
            .into_iter()
            .filter(|(_, r)| r["Type"] == ty)
            .collect()
    }
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().map(|x| x.as_str().unwrap().to_owned()).collect(),
        Value::Null => vec![],
        other => panic!("expected a string or a list of strings, got {other}"),
    }
}

fn set<I: IntoIterator<Item = S>, S: Into<String>>(items: I) -> BTreeSet<String> {
    items.into_iter().map(Into::into).collect()
}

// ---------------------------------------------------------------- functions

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

/// What each function's configuration reads, from the code's own lists.
fn vars_read_by(binary: &str) -> BTreeSet<String> {
    let own: &[&str] = match binary {
        "terminate-drain" => DrainConfig::VARS,
        "launch-verify" => LaunchConfig::VARS,
        // Its own complete list: CLUSTER_NAME, POLL_INTERVAL_SECONDS and DRY_RUN,
        // but not CONTINUATION_TOPIC_ARN (a schedule re-arms it, not a topic).
        "ami-rollout" => return set(RolloutConfig::VARS.iter().copied()),
        other => panic!(
            "{other} is a new Lambda binary: give it a function in template.yaml and its variable list here"
        ),
    };
    COMMON_VARS
        .iter()
        .chain(own)
        .map(|s| s.to_string())
        .collect()
}

/// Function logical id -> (binary, resolved resource).
fn functions(stack: &Stack) -> BTreeMap<String, (String, Value)> {
    stack
        .of_type("AWS::Serverless::Function")
        .into_iter()
        .map(|(id, f)| {
            let binary = f["Metadata"]["BuildProperties"]["Binary"]
                .as_str()
                .unwrap_or_else(|| panic!("{id}: Metadata.BuildProperties.Binary"))
                .to_owned();
            (id, (binary, f))
        })
        .collect()
}

#[test]
fn every_lambda_binary_is_a_function_with_the_variables_its_code_reads() {
    let stack = Stack::fleet();
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
            assert!(
                v.as_str().is_some_and(|s| !s.is_empty()),
                "{id}: {k} resolves to {v}"
            );
        }
    }
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
        assert_eq!(e["POLL_INTERVAL_SECONDS"], "10");
    }
    assert_eq!(drain["MAX_DRAIN_SECONDS"], "600");
    assert_eq!(drain["STANDALONE_TASKS"], "wait");
    assert_eq!(launch["REGISTRATION_TIMEOUT_SECONDS"], "420");
    assert_eq!(launch["TERMINATE_ORPHANS"], "true");
    assert_eq!(launch["SSM_DOCUMENT_NAME"], "<OrphanDiagnosticDocument>");
    assert_eq!(launch["DIAGNOSTICS_LOG_GROUP"], "<DiagnosticsLogGroup>");
}

#[test]
fn functions_are_arm64_al2023_cargo_lambda_builds_with_json_logs_and_a_dead_letter_queue() {
    let stack = Stack::fleet();
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
/// (ami-rollout has no such loop: a schedule re-arms it, see below.)
#[test]
fn functions_that_continue_through_their_own_topic_allow_the_loop() {
    let stack = Stack::fleet();
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

// ---------------------------------------------------------------- routing

/// SNS / EventBridge matching for the operators the template uses: exact values
/// in a list, nested keys, `$or`.
fn matches(policy: &Value, message: &Value) -> bool {
    policy.as_object().unwrap().iter().all(|(k, want)| {
        if k == "$or" {
            return want.as_array().unwrap().iter().any(|p| matches(p, message));
        }
        let Some(got) = message.get(k) else {
            return false;
        };
        match want {
            Value::Array(allowed) => allowed.iter().all(|a| a.is_string()) && allowed.contains(got),
            Value::Object(_) => matches(want, got),
            other => panic!("unsupported filter {k}: {other}"),
        }
    })
}

fn sns_message(fixture: &str) -> Value {
    let envelope: Value =
        serde_json::from_str(&read(&format!("crates/ecs-lifecycle/fixtures/{fixture}"))).unwrap();
    serde_json::from_str(envelope["Records"][0]["Sns"]["Message"].as_str().unwrap()).unwrap()
}

#[test]
fn filter_policies_deliver_each_message_to_the_function_that_handles_it() {
    let stack = Stack::fleet();
    let subscribers: Vec<(String, Value)> = functions(&stack)
        .into_values()
        .flat_map(|(binary, f)| {
            // ami-rollout has no events of its own (its rules are resources).
            f["Properties"]["Events"]
                .as_object()
                .into_iter()
                .flat_map(|events| events.values())
                .filter(|e| e["Type"] == "SNS")
                .map(|e| {
                    assert_eq!(e["Properties"]["Topic"], "<LifecycleTopic>");
                    assert_eq!(e["Properties"]["FilterPolicyScope"], "MessageBody");
                    (binary.clone(), e["Properties"]["FilterPolicy"].clone())
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let delivered = |fixture: &str| -> BTreeSet<String> {
        let message = sns_message(fixture);
        subscribers
            .iter()
            .filter(|(_, policy)| matches(policy, &message))
            .map(|(b, _)| b.clone())
            .collect()
    };
    assert_eq!(delivered("sns-terminate.json"), set(["terminate-drain"]));
    assert_eq!(delivered("sns-launch.json"), set(["launch-verify"]));
    assert_eq!(delivered("sns-continuation.json"), set(["terminate-drain"]));
    assert_eq!(
        delivered("sns-continuation-launch-verify.json"),
        set(["launch-verify"])
    );
    // The test notification carries no transition: both acknowledge it.
    assert_eq!(
        delivered("sns-test-notification.json"),
        set(["launch-verify", "terminate-drain"])
    );
    // Anything else on the topic reaches no function.
    assert!(
        subscribers
            .iter()
            .all(|(_, p)| !matches(p, &json!({"kind": "something-else"})))
    );
}

#[test]
fn launch_successful_rule_exists_only_as_the_alternative_trigger() {
    let to_launch_verify = |stack: &Stack| -> Vec<Value> {
        stack
            .of_type("AWS::Events::Rule")
            .into_values()
            .filter(|r| r["Properties"]["Targets"][0]["Arn"] == "<LaunchVerifyFunction.Arn>")
            .collect()
    };
    let hooks = Stack::fleet();
    assert!(to_launch_verify(&hooks).is_empty());

    let event: Value = serde_json::from_str(&read(
        "crates/ecs-lifecycle/fixtures/eventbridge-launch-successful.json",
    ))
    .unwrap();
    let group = event["detail"]["AutoScalingGroupName"].as_str().unwrap();
    let stack = Stack::new(&[
        ("ClusterName", "prod"),
        ("AutoScalingGroupNames", &format!("other-asg,{group}")),
        ("LaunchTrigger", "LaunchEvent"),
    ]);
    let rules = to_launch_verify(&stack);
    assert_eq!(rules.len(), 1);
    let rule = &rules[0]["Properties"];
    assert!(matches(&rule["EventPattern"], &event));
    let mut elsewhere = event.clone();
    elsewhere["detail"]["AutoScalingGroupName"] = json!("not-ours");
    assert!(!matches(&rule["EventPattern"], &elsewhere));
    assert_eq!(rule["Targets"][0]["Arn"], "<LaunchVerifyFunction.Arn>");
    let permissions = stack.of_type("AWS::Lambda::Permission");
    assert!(permissions.values().any(|p| {
        p["Properties"]["Principal"] == "events.amazonaws.com"
            && p["Properties"]["FunctionName"] == "<LaunchVerifyFunction>"
    }));
    // No launch hook then: nothing should wait on a verification that follows the launch.
    let launch_hooks = stack
        .of_type("AWS::AutoScaling::LifecycleHook")
        .into_values()
        .filter(|h| h["Properties"]["LifecycleTransition"] == "autoscaling:EC2_INSTANCE_LAUNCHING")
        .count();
    assert_eq!(launch_hooks, 0);
}

// ---------------------------------------------------------------- hooks

#[test]
fn hooks_on_every_group_notify_the_topic() {
    let names = ["g-one", "g-two", "g-three", "g-four", "g-five"];
    for n in 1..=names.len() {
        let groups = names[..n].join(",");
        let stack = Stack::new(&[
            ("ClusterName", "prod"),
            ("AutoScalingGroupNames", &groups),
            ("HeartbeatTimeout", "600"),
        ]);
        let hooks = stack.of_type("AWS::AutoScaling::LifecycleHook");
        assert_eq!(hooks.len(), 2 * n, "{groups}");
        for transition in [
            "autoscaling:EC2_INSTANCE_TERMINATING",
            "autoscaling:EC2_INSTANCE_LAUNCHING",
        ] {
            let on: BTreeSet<String> = hooks
                .values()
                .map(|h| &h["Properties"])
                .filter(|p| p["LifecycleTransition"] == transition)
                .map(|p| {
                    assert_eq!(p["NotificationTargetARN"], "<LifecycleTopic>");
                    assert_eq!(p["RoleARN"], "<LifecycleHookRole.Arn>");
                    assert_eq!(p["HeartbeatTimeout"], "600");
                    assert_eq!(p["DefaultResult"], "CONTINUE");
                    p["AutoScalingGroupName"].as_str().unwrap().to_owned()
                })
                .collect();
            assert_eq!(
                on,
                set(names[..n].iter().copied()),
                "{transition} hooks for {groups}"
            );
        }
    }
}

#[test]
fn the_hook_role_may_publish_to_the_topic_only() {
    let stack = Stack::fleet();
    let role = &stack.resources()["LifecycleHookRole"]["Properties"];
    assert_eq!(
        role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]["Service"],
        "autoscaling.amazonaws.com"
    );
    let statements = role_statements(role);
    let actions: BTreeSet<String> = statements
        .iter()
        .flat_map(|s| strings(&s["Action"]))
        .collect();
    assert_eq!(
        actions,
        set(["sns:Publish", "kms:GenerateDataKey*", "kms:Decrypt"])
    );
}

// ---------------------------------------------------------------- IAM

fn role_statements(role_properties: &Value) -> Vec<Value> {
    role_properties["Policies"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .flat_map(|p| p["PolicyDocument"]["Statement"].as_array().unwrap().clone())
                .collect()
        })
        .unwrap_or_default()
}

/// Every identity-based statement the stack creates, with the role or policy it is in.
fn identity_statements(stack: &Stack) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for (id, r) in stack.resources() {
        let p = &r["Properties"];
        match r["Type"].as_str().unwrap() {
            "AWS::IAM::Role" => {
                assert!(
                    p.get("ManagedPolicyArns").is_none(),
                    "{id}: managed policies hide what the role may do"
                );
                out.extend(role_statements(p).into_iter().map(|s| (id.clone(), s)));
            }
            "AWS::IAM::Policy" | "AWS::IAM::ManagedPolicy" => out.extend(
                p["PolicyDocument"]["Statement"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| (id.clone(), s.clone())),
            ),
            _ => {}
        }
    }
    out
}

fn read_only(action: &str) -> bool {
    let verb = action.split_once(':').map(|(_, v)| v).unwrap_or(action);
    ["Describe", "List", "Get"]
        .iter()
        .any(|p| verb.starts_with(p))
}

fn asg_arn(name: &str) -> String {
    format!("arn:aws:autoscaling:{REGION}:{ACCOUNT}:autoScalingGroup:*:autoScalingGroupName/{name}")
}

fn statements_with(statements: &[(String, Value)], action: &str) -> Vec<(String, Value)> {
    statements
        .iter()
        .filter(|(_, s)| strings(&s["Action"]).iter().any(|a| a == action))
        .cloned()
        .collect()
}

#[test]
fn no_mutating_action_on_everything_without_a_condition() {
    for stack in [
        Stack::fleet(),
        Stack::new(&[
            ("ClusterName", "prod"),
            ("AutoScalingGroupNames", "a,b,c,d,e"),
            ("LaunchTrigger", "LaunchEvent"),
            ("InstanceRoleName", "ecsInstanceRole"),
            ("EnableAmiRollout", "true"),
        ]),
    ] {
        let statements = identity_statements(&stack);
        assert!(statements.len() > 10);
        for (id, s) in &statements {
            assert_eq!(s["Effect"], "Allow", "{id}: {s}");
            assert!(s.get("NotAction").is_none() && s.get("NotResource").is_none());
            let actions = strings(&s["Action"]);
            for a in &actions {
                assert!(
                    !a.contains('*') || a == "kms:GenerateDataKey*",
                    "{id}: wildcard action {a}"
                );
            }
            let everything = strings(&s["Resource"]).iter().any(|r| r == "*");
            let mutating: Vec<&String> = actions.iter().filter(|a| !read_only(a)).collect();
            if everything && !mutating.is_empty() {
                assert!(
                    s.get("Condition").is_some(),
                    "{id}: {mutating:?} on * without a condition"
                );
            }
        }
    }
}

/// Each role may do what its function calls (crates/ecs-lifecycle/src/aws/), and
/// nothing else.
#[test]
fn each_role_has_exactly_the_actions_its_function_calls() {
    let stack = Stack::new(&[
        ("ClusterName", "prod"),
        ("AutoScalingGroupNames", "web-asg"),
        ("InstanceRoleName", "ecsInstanceRole"),
        ("EnableAmiRollout", "true"),
    ]);
    let statements = identity_statements(&stack);
    let actions = |role: &str| -> BTreeSet<String> {
        statements
            .iter()
            .filter(|(id, _)| id == role)
            .flat_map(|(_, s)| strings(&s["Action"]))
            .collect()
    };
    let both = [
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "autoscaling:DescribeAutoScalingInstances",
        "autoscaling:DescribeLifecycleHooks",
        "autoscaling:CompleteLifecycleAction",
        "autoscaling:RecordLifecycleActionHeartbeat",
        "ecs:ListContainerInstances",
        "ecs:DescribeContainerInstances",
        "sns:Publish",
        "kms:GenerateDataKey*",
        "kms:Decrypt",
        "sqs:SendMessage",
    ];
    assert_eq!(
        actions("TerminateDrainRole"),
        set(both.into_iter().chain([
            "ecs:ListTasks",
            "ecs:DescribeTasks",
            "ecs:DescribeServices",
            "ecs:UpdateContainerInstancesState",
            "ecs:StopTask",
        ]))
    );
    assert_eq!(
        actions("LaunchVerifyRole"),
        set(both.into_iter().chain([
            "ec2:DescribeInstances",
            "autoscaling:TerminateInstanceInAutoScalingGroup",
            "ssm:SendCommand",
            "ssm:GetCommandInvocation",
        ]))
    );
    // ami-rollout: reads, refreshes and its marker tag on the groups, new
    // launch template versions, and what Auto Scaling checks on the caller
    // when a group is updated with a launch template (RunInstances, CreateTags
    // at launch, PassRole).
    assert_eq!(
        actions("AmiRolloutRole"),
        set([
            "logs:CreateLogStream",
            "logs:PutLogEvents",
            "ssm:GetParameter",
            "autoscaling:DescribeAutoScalingGroups",
            "autoscaling:DescribeInstanceRefreshes",
            "autoscaling:DescribeScalingActivities",
            "autoscaling:DescribeAutoScalingInstances",
            "autoscaling:StartInstanceRefresh",
            "autoscaling:RollbackInstanceRefresh",
            "autoscaling:CancelInstanceRefresh",
            "autoscaling:UpdateAutoScalingGroup",
            "autoscaling:CreateOrUpdateTags",
            "autoscaling:DeleteTags",
            "ec2:DescribeLaunchTemplateVersions",
            "ec2:DescribeInstances",
            "ec2:DescribeImages",
            "ec2:CreateLaunchTemplateVersion",
            "ec2:RunInstances",
            "ec2:CreateTags",
            "iam:PassRole",
            "ecs:ListContainerInstances",
            "ecs:DescribeContainerInstances",
            "ecs:ListServices",
            "ecs:DescribeServices",
            "sqs:SendMessage",
        ])
    );
    // The optional policy on the instances' role: the SSM agent writes the
    // diagnostic's output to the diagnostics log group.
    assert_eq!(
        actions("DiagnosticsOutputPolicy"),
        set([
            "logs:CreateLogStream",
            "logs:PutLogEvents",
            "logs:DescribeLogStreams",
            "logs:DescribeLogGroups",
        ])
    );
    for (id, s) in &statements {
        if id == "DiagnosticsOutputPolicy"
            && strings(&s["Action"]).contains(&"logs:PutLogEvents".into())
        {
            assert_eq!(strings(&s["Resource"]), ["<DiagnosticsLogGroup.Arn>"]);
        }
    }
}

#[test]
fn lifecycle_actions_and_termination_only_on_the_given_groups() {
    for groups in ["web-asg,batch-asg", "only-one", "a,b,c,d,e"] {
        let stack = Stack::new(&[("ClusterName", "prod"), ("AutoScalingGroupNames", groups)]);
        let statements = identity_statements(&stack);
        let want: BTreeSet<String> = groups.split(',').map(asg_arn).collect();
        for (action, roles) in [
            (
                "autoscaling:CompleteLifecycleAction",
                set(["TerminateDrainRole", "LaunchVerifyRole"]),
            ),
            (
                "autoscaling:RecordLifecycleActionHeartbeat",
                set(["TerminateDrainRole", "LaunchVerifyRole"]),
            ),
            (
                "autoscaling:TerminateInstanceInAutoScalingGroup",
                set(["LaunchVerifyRole"]),
            ),
        ] {
            let found = statements_with(&statements, action);
            assert_eq!(
                found
                    .iter()
                    .map(|(id, _)| id.clone())
                    .collect::<BTreeSet<_>>(),
                roles,
                "{action}"
            );
            for (id, s) in found {
                assert_eq!(
                    set(strings(&s["Resource"])),
                    want,
                    "{id}: {action} for groups {groups}"
                );
            }
        }
    }
}

#[test]
fn ecs_changes_only_in_the_given_cluster() {
    let stack = Stack::fleet();
    let cluster = format!("arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/prod");
    let statements = identity_statements(&stack);
    for action in ["ecs:UpdateContainerInstancesState", "ecs:StopTask"] {
        let found = statements_with(&statements, action);
        assert_eq!(found.len(), 1, "{action}");
        assert_eq!(found[0].0, "TerminateDrainRole");
        assert_eq!(
            found[0].1["Condition"],
            json!({"ArnEquals": {"ecs:cluster": cluster}}),
            "{action}"
        );
    }
    // Every ECS permission is tied to the cluster: by condition or by the ARN.
    for (id, s) in &statements {
        if !strings(&s["Action"]).iter().any(|a| a.starts_with("ecs:")) {
            continue;
        }
        let by_condition = s["Condition"]["ArnEquals"]["ecs:cluster"] == cluster;
        let by_arn = strings(&s["Resource"]).iter().all(|r| {
            r == &cluster || r.starts_with(&format!("arn:aws:ecs:{REGION}:{ACCOUNT}:service/prod/"))
        });
        assert!(by_condition || by_arn, "{id}: {s}");
    }
}

#[test]
fn send_command_only_with_the_diagnostic_document_on_instances_of_the_groups() {
    let stack = Stack::fleet();
    let found = statements_with(&identity_statements(&stack), "ssm:SendCommand");
    assert_eq!(found.len(), 2);
    let document = format!("arn:aws:ssm:{REGION}:{ACCOUNT}:document/<OrphanDiagnosticDocument>");
    let instances = format!("arn:aws:ec2:{REGION}:{ACCOUNT}:instance/*");
    let mut seen = BTreeSet::new();
    for (id, s) in found {
        assert_eq!(id, "LaunchVerifyRole");
        assert_eq!(
            strings(&s["Action"]),
            ["ssm:SendCommand"],
            "alone in its statement"
        );
        let resources = strings(&s["Resource"]);
        assert_eq!(resources.len(), 1);
        let r = resources[0].clone();
        if r == document {
            assert!(s.get("Condition").is_none());
        } else {
            assert_eq!(r, instances);
            assert_eq!(
                s["Condition"],
                json!({"StringEquals": {"ssm:resourceTag/aws:autoscaling:groupName": ["web-asg", "batch-asg"]}})
            );
        }
        seen.insert(r);
    }
    assert_eq!(seen, set([document, instances]));
}

#[test]
fn publish_only_to_the_topic_and_the_rest_where_it_belongs() {
    let stack = Stack::fleet();
    let statements = identity_statements(&stack);
    let publishes = statements_with(&statements, "sns:Publish");
    assert_eq!(publishes.len(), 3, "both functions and the hook role");
    for (id, s) in publishes {
        assert_eq!(strings(&s["Resource"]), ["<LifecycleTopic>"], "{id}");
    }
    for (id, s) in statements_with(&statements, "kms:Decrypt") {
        assert_eq!(strings(&s["Resource"]), ["<LifecycleTopicKey.Arn>"], "{id}");
        assert_eq!(
            s["Condition"]["StringEquals"]["kms:ViaService"],
            format!("sns.{REGION}.amazonaws.com")
        );
    }
    for (id, s) in statements_with(&statements, "sqs:SendMessage") {
        assert_eq!(strings(&s["Resource"]), ["<DeadLetterQueue.Arn>"], "{id}");
    }
    for (id, s) in statements_with(&statements, "logs:PutLogEvents") {
        let r = strings(&s["Resource"]);
        assert_eq!(r.len(), 1);
        assert!(r[0].ends_with("LogGroup.Arn>"), "{id}: {r:?}");
    }
    // terminate-drain can neither run commands nor terminate instances.
    let drain: BTreeSet<String> = statements
        .iter()
        .filter(|(id, _)| id == "TerminateDrainRole")
        .flat_map(|(_, s)| strings(&s["Action"]))
        .collect();
    for a in [
        "ssm:SendCommand",
        "autoscaling:TerminateInstanceInAutoScalingGroup",
        "ec2:TerminateInstances",
    ] {
        assert!(!drain.contains(a), "terminate-drain has {a}");
    }
    // Function roles trust Lambda only.
    for role in ["TerminateDrainRole", "LaunchVerifyRole", "AmiRolloutRole"] {
        assert_eq!(
            stack.resources()[role]["Properties"]["AssumeRolePolicyDocument"]["Statement"],
            json!([{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}])
        );
    }
}

#[test]
fn topic_and_queue_are_encrypted_and_watched() {
    let stack = Stack::fleet();
    let r = stack.resources();
    let topic = &r["LifecycleTopic"]["Properties"];
    assert_eq!(topic["KmsMasterKeyId"], "<LifecycleTopicKey>");
    let key = &r["LifecycleTopicKey"]["Properties"];
    assert_eq!(r["LifecycleTopicKey"]["Type"], "AWS::KMS::Key");
    assert_eq!(key["EnableKeyRotation"], true);
    // The key policy only delegates to the account's IAM; no one else, no service.
    assert_eq!(
        key["KeyPolicy"]["Statement"],
        json!([{"Sid": "AccountAdministersTheKey", "Effect": "Allow",
                "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:root")},
                "Action": "kms:*", "Resource": "*"}])
    );
    assert_eq!(
        r["DeadLetterQueue"]["Properties"]["SqsManagedSseEnabled"],
        true
    );
    let queue_policy = &r["DeadLetterQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"];
    for s in queue_policy.as_array().unwrap() {
        if s["Effect"] == "Allow" {
            // The stack's own topic or rules only.
            let sources = strings(&s["Condition"]["ArnEquals"]["aws:SourceArn"]);
            assert!(
                !sources.is_empty() && sources.iter().all(|a| a.starts_with('<')),
                "{s}"
            );
        }
    }

    let alarms = stack.of_type("AWS::CloudWatch::Alarm");
    let watched = |namespace: &str, metric: &str, dimension: &str, value: &str| {
        alarms.values().any(|a| {
            let p = &a["Properties"];
            p["Namespace"] == namespace
                && p["MetricName"] == metric
                && p["Dimensions"] == json!([{ "Name": dimension, "Value": value }])
        })
    };
    for id in functions(&stack).keys() {
        assert!(
            watched("AWS/Lambda", "Errors", "FunctionName", &format!("<{id}>")),
            "no Errors alarm on {id}"
        );
    }
    assert!(watched(
        "AWS/SQS",
        "ApproximateNumberOfMessagesVisible",
        "QueueName",
        "<DeadLetterQueue.QueueName>"
    ));
    // The orphan warning becomes a metric with an alarm on it.
    let filters = stack.of_type("AWS::Logs::MetricFilter");
    let orphan = filters
        .values()
        .find(|f| f["Properties"]["LogGroupName"] == "<LaunchVerifyLogGroup>")
        .expect("a metric filter on launch-verify's log group");
    let metric = &orphan["Properties"]["MetricTransformations"][0];
    assert!(alarms.values().any(|a| {
        a["Properties"]["Namespace"] == metric["MetricNamespace"]
            && a["Properties"]["MetricName"] == metric["MetricName"]
    }));
    // Alarm actions only when a topic is given.
    assert!(
        alarms
            .values()
            .all(|a| a["Properties"].get("AlarmActions").is_none())
    );
    let notify = Stack::new(&[
        ("ClusterName", "prod"),
        ("AutoScalingGroupNames", "web-asg"),
        ("AlarmTopicArn", "arn:aws:sns:us-east-1:123456789012:ops"),
        ("EnableAmiRollout", "true"),
    ]);
    for a in notify.of_type("AWS::CloudWatch::Alarm").values() {
        assert_eq!(
            a["Properties"]["AlarmActions"],
            json!(["arn:aws:sns:us-east-1:123456789012:ops"])
        );
    }
}

// ---------------------------------------------------------------- ami-rollout

const ROLLOUT_PARAMS: [(&str, &str); 3] = [
    ("ClusterName", "prod"),
    ("AutoScalingGroupNames", "web-asg,batch-asg"),
    ("EnableAmiRollout", "true"),
];

fn rollout_stack(extra: &[(&str, &str)]) -> Stack {
    let params: Vec<(&str, &str)> = ROLLOUT_PARAMS.iter().chain(extra).copied().collect();
    Stack::new(&params)
}

/// The ami-rollout function of a stack, resolved.
fn rollout_function(stack: &Stack) -> Value {
    let found: Vec<Value> = functions(stack)
        .into_values()
        .filter(|(b, _)| b == "ami-rollout")
        .map(|(_, f)| f)
        .collect();
    assert_eq!(found.len(), 1, "one ami-rollout function");
    found.into_iter().next().unwrap()
}

fn rollout_statements(stack: &Stack) -> Vec<Value> {
    identity_statements(stack)
        .into_iter()
        .filter(|(id, _)| id == "AmiRolloutRole")
        .map(|(_, s)| s)
        .collect()
}

/// Opt-in: with the default `EnableAmiRollout=false` none of its resources
/// exist, and with `true` exactly these come on top.
#[test]
fn ami_rollout_is_installed_only_when_enabled() {
    let template = template();
    assert_eq!(
        template["Parameters"]["EnableAmiRollout"]["Default"],
        "false"
    );
    let off = Stack::new(&[
        ("ClusterName", "prod"),
        ("AutoScalingGroupNames", "web-asg"),
    ]);
    let on = Stack::new(&[
        ("ClusterName", "prod"),
        ("AutoScalingGroupNames", "web-asg"),
        ("EnableAmiRollout", "true"),
    ]);
    let off_ids: BTreeSet<String> = off.resources().into_keys().collect();
    let on_ids: BTreeSet<String> = on.resources().into_keys().collect();
    assert!(off_ids.is_subset(&on_ids));
    assert_eq!(
        on_ids
            .difference(&off_ids)
            .cloned()
            .collect::<BTreeSet<_>>(),
        set([
            "AmiRolloutFunction",
            "AmiRolloutLogGroup",
            "AmiRolloutRole",
            "AmiParameterChangeRule",
            "AmiParameterChangePermission",
            "AmiRolloutWatchRule",
            "AmiRolloutWatchPermission",
            "AmiRolloutCheckRule",
            "AmiRolloutCheckPermission",
            "AmiRolloutErrorsAlarm",
            "AmiRolloutRollbackMetricFilter",
            "AmiRolloutRollbackAlarm",
        ])
    );
    assert!(
        functions(&off)
            .values()
            .all(|(binary, _)| binary != "ami-rollout")
    );
    // No EventBridge dead letters without a rule.
    let policy = &off.resources()["DeadLetterQueuePolicy"]["Properties"]["PolicyDocument"];
    assert!(
        policy["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["Principal"]["Service"] != "events.amazonaws.com")
    );
    // Its outputs follow the same condition.
    for output in ["AmiRolloutFunctionName", "AmiRolloutLogGroupName"] {
        assert_eq!(
            template["Outputs"][output]["Condition"], "UseAmiRollout",
            "{output}"
        );
    }
    assert_eq!(
        template["Outputs"]["AmiRolloutFunctionName"]["Value"],
        json!({"Ref": "AmiRolloutFunction"})
    );
}

/// The environment comes from the parameters, and the code's own configuration
/// accepts it: with the defaults, and with every numeric parameter at its
/// MinValue and at its MaxValue (a value the template allows but the code
/// refuses would stop the function at cold start).
#[test]
fn ami_rollout_environment_is_what_its_configuration_accepts() {
    let template = template();
    let stack = rollout_stack(&[
        ("RegistrationTimeoutSeconds", "420"),
        ("PollIntervalSeconds", "5"),
    ]);
    let env = rollout_function(&stack)["Properties"]["Environment"]["Variables"].clone();
    assert_eq!(
        env["AMI_PARAMETER_NAME"],
        "/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id"
    );
    // The real names only, not the padded list the hooks are addressed with.
    assert_eq!(env["AUTO_SCALING_GROUP_NAMES"], "web-asg,batch-asg");
    assert_eq!(env["CLUSTER_NAME"], "prod");
    assert_eq!(env["STABILITY_TIMEOUT_SECONDS"], "1800");
    // launch-verify's parameter, shared.
    assert_eq!(env["REGISTRATION_TIMEOUT_SECONDS"], "420");
    let launch = functions(&stack)
        .into_values()
        .find(|(b, _)| b == "launch-verify")
        .unwrap()
        .1;
    assert_eq!(
        launch["Properties"]["Environment"]["Variables"]["REGISTRATION_TIMEOUT_SECONDS"],
        "420"
    );
    // Its own poll interval (30 s), not the lifecycle functions' one.
    assert_eq!(env["POLL_INTERVAL_SECONDS"], "30");
    assert_eq!(env["ROLLOUT_BATCH_SIZE"], "1");
    assert_eq!(env["DRY_RUN"], "false");
    assert!(env.get("CONTINUATION_TOPIC_ARN").is_none());

    let parse = |env: &Value| {
        let vars = env.as_object().unwrap().clone();
        RolloutConfig::from_env(&Env::new(move |k: &str| {
            vars.get(k).and_then(|v| v.as_str()).map(str::to_owned)
        }))
    };
    let config = parse(&env).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(
        config.common.clusters,
        ClusterScope::Named(vec!["prod".into()])
    );
    assert_eq!(config.groups, ["web-asg", "batch-asg"]);
    assert_eq!(config.common.poll_interval.as_secs(), 30);
    assert_eq!(config.batch_size, 1);

    let vars = env.as_object().unwrap();
    for (var, value) in vars {
        let Some(name) =
            template["Resources"]["AmiRolloutFunction"]["Properties"]["Environment"]["Variables"]
                [var]["Ref"]
                .as_str()
        else {
            continue;
        };
        let param = &template["Parameters"][name];
        assert!(!param.is_null(), "{var}: {value} is not from a parameter");
        if param["Type"] != "Number" {
            continue;
        }
        for bound in ["MinValue", "MaxValue"] {
            let n = param[bound]
                .as_i64()
                .unwrap_or_else(|| panic!("{name} has no {bound}"));
            let stack = rollout_stack(&[(name, &n.to_string())]);
            let env = rollout_function(&stack)["Properties"]["Environment"]["Variables"].clone();
            assert!(
                parse(&env).is_ok(),
                "{name}={n} ({var}) is refused by RolloutConfig"
            );
        }
    }
}

/// Started by the parameter's change event (passed on unchanged), re-armed by a
/// 15-minute schedule; no topic, no self-invocation, so no RecursiveLoop.
#[test]
fn ami_rollout_is_invoked_by_the_parameter_change_and_the_watch_schedule() {
    let stack = Stack::fleet();
    let f = rollout_function(&stack);
    let p = &f["Properties"];
    assert_eq!(f["Metadata"]["BuildProperties"]["Binary"], "ami-rollout");
    assert_eq!(p["CodeUri"], "crates/ami-rollout");
    assert_eq!(p["Timeout"], 900);
    assert!(p.get("RecursiveLoop").is_none());
    assert!(
        p.get("Events").is_none(),
        "its rules are explicit resources"
    );
    assert_eq!(p["LoggingConfig"]["LogGroup"], "<AmiRolloutLogGroup>");
    let group = &stack.resources()["AmiRolloutLogGroup"]["Properties"];
    assert_eq!(
        group["LogGroupName"],
        format!("/ecs-lifecycle/{STACK}/ami-rollout")
    );
    assert_eq!(group["RetentionInDays"], "14");

    let rules = stack.of_type("AWS::Events::Rule");
    let target = |id: &str| {
        rules[id]["Properties"]["Targets"]
            .as_array()
            .unwrap()
            .clone()
    };

    // The parameter's change: Create and Update of this parameter only.
    let change = &rules["AmiParameterChangeRule"]["Properties"];
    let name = "/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id";
    let event = |name: &str, operation: &str| {
        json!({
            "version": "0",
            "id": "7a4a7c9e-1f07-4c61-a6b2-7c3d0e8b1f22",
            "detail-type": "Parameter Store Change",
            "source": "aws.ssm",
            "account": ACCOUNT,
            "time": "2026-03-01T12:00:00Z",
            "region": REGION,
            "resources": [format!("arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{name}")],
            "detail": {"operation": operation, "name": name, "type": "String", "description": ""}
        })
    };
    let pattern = &change["EventPattern"];
    assert!(matches(pattern, &event(name, "Update")));
    assert!(matches(pattern, &event(name, "Create")));
    assert!(!matches(pattern, &event(name, "Delete")));
    assert!(!matches(pattern, &event("/some/other/parameter", "Update")));
    let mut elsewhere = event(name, "Update");
    elsewhere["source"] = json!("aws.ec2");
    assert!(!matches(pattern, &elsewhere));
    let own = rollout_stack(&[("AmiParameterName", "/fleet/ecs-ami")]);
    let own_pattern =
        &own.of_type("AWS::Events::Rule")["AmiParameterChangeRule"]["Properties"]["EventPattern"];
    assert!(matches(own_pattern, &event("/fleet/ecs-ami", "Update")));
    assert!(!matches(own_pattern, &event(name, "Update")));
    let targets = target("AmiParameterChangeRule");
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0]["Arn"], "<AmiRolloutFunction.Arn>");
    for transform in ["Input", "InputPath", "InputTransformer"] {
        assert!(
            targets[0].get(transform).is_none(),
            "the event is passed unchanged"
        );
    }

    // The watch: every 15 minutes, {"action": "watch"}.
    let watch = &rules["AmiRolloutWatchRule"]["Properties"];
    assert_eq!(watch["ScheduleExpression"], "rate(15 minutes)");
    assert!(watch.get("EventPattern").is_none());
    let targets = target("AmiRolloutWatchRule");
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0]["Arn"], "<AmiRolloutFunction.Arn>");
    let input: Value = serde_json::from_str(targets[0]["Input"].as_str().unwrap()).unwrap();
    assert_eq!(input, json!({"action": "watch"}));

    // The scheduled start: daily by default, {"action": "start"}.
    let check = &rules["AmiRolloutCheckRule"]["Properties"];
    assert_eq!(check["ScheduleExpression"], "rate(1 day)");
    let targets = target("AmiRolloutCheckRule");
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0]["Arn"], "<AmiRolloutFunction.Arn>");
    let input: Value = serde_json::from_str(targets[0]["Input"].as_str().unwrap()).unwrap();
    assert_eq!(input, json!({"action": "start"}));

    // Each rule may invoke it, and dead-letters to the queue, which admits it.
    let permissions = stack.of_type("AWS::Lambda::Permission");
    let queue_policy = &stack.resources()["DeadLetterQueuePolicy"]["Properties"]["PolicyDocument"];
    let from_events: Vec<&Value> = queue_policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["Principal"]["Service"] == "events.amazonaws.com")
        .collect();
    assert_eq!(from_events.len(), 1);
    let sources = set(strings(
        &from_events[0]["Condition"]["ArnEquals"]["aws:SourceArn"],
    ));
    for rule in [
        "AmiParameterChangeRule",
        "AmiRolloutWatchRule",
        "AmiRolloutCheckRule",
    ] {
        let arn = format!("<{rule}.Arn>");
        assert!(
            permissions.values().any(|p| {
                let p = &p["Properties"];
                p["Principal"] == "events.amazonaws.com"
                    && p["FunctionName"] == "<AmiRolloutFunction>"
                    && p["SourceArn"] == arn
                    && p["Action"] == "lambda:InvokeFunction"
            }),
            "{rule} may not invoke ami-rollout"
        );
        assert_eq!(
            target(rule)[0]["DeadLetterConfig"]["Arn"],
            "<DeadLetterQueue.Arn>"
        );
        assert!(sources.contains(&arn), "{rule}: {sources:?}");
    }
    // Both triggers, with the launch event rule too.
    let both = rollout_stack(&[("LaunchTrigger", "LaunchEvent")]);
    let policy = &both.resources()["DeadLetterQueuePolicy"]["Properties"]["PolicyDocument"];
    let sources: BTreeSet<String> = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["Principal"]["Service"] == "events.amazonaws.com")
        .flat_map(|s| strings(&s["Condition"]["ArnEquals"]["aws:SourceArn"]))
        .collect();
    assert_eq!(
        sources,
        set([
            "<LaunchSuccessfulRule.Arn>",
            "<AmiParameterChangeRule.Arn>",
            "<AmiRolloutWatchRule.Arn>",
            "<AmiRolloutCheckRule.Arn>"
        ])
    );
}

/// Everything ami-rollout may change: its refreshes, the group update and its
/// marker tag only on the given groups; a launch only through a launch
/// template; tags only at launch; the role only to EC2; new launch template
/// versions only in this account and region.
#[test]
fn ami_rollout_changes_only_the_groups_and_what_a_launch_template_launches() {
    let lt_arns = format!("arn:aws:ec2:{REGION}:{ACCOUNT}:launch-template/*");
    for groups in ["web-asg,batch-asg", "only-one", "a,b,c,d,e"] {
        let stack = Stack::new(&[
            ("ClusterName", "prod"),
            ("AutoScalingGroupNames", groups),
            ("EnableAmiRollout", "true"),
        ]);
        let want: BTreeSet<String> = groups.split(',').map(asg_arn).collect();
        let statements = rollout_statements(&stack);
        let mut seen = BTreeSet::new();
        for s in &statements {
            let actions = strings(&s["Action"]);
            let resources = strings(&s["Resource"]);
            for a in actions.iter().filter(|a| !read_only(a)) {
                seen.insert(a.clone());
                match a.as_str() {
                    "autoscaling:StartInstanceRefresh"
                    | "autoscaling:RollbackInstanceRefresh"
                    | "autoscaling:CancelInstanceRefresh"
                    | "autoscaling:UpdateAutoScalingGroup" => {
                        assert_eq!(set(resources.clone()), want, "{a} for {groups}");
                    }
                    "autoscaling:CreateOrUpdateTags" | "autoscaling:DeleteTags" => {
                        assert_eq!(set(resources.clone()), want, "{a} for {groups}");
                        assert_eq!(
                            s["Condition"],
                            json!({
                                "ForAllValues:StringEquals": {"aws:TagKeys": [UNSTEADY_TAG]},
                                "Null": {"aws:TagKeys": "false"}
                            }),
                            "{a}: the marker tag only"
                        );
                    }
                    "ec2:CreateLaunchTemplateVersion" => {
                        assert_eq!(actions, [a.as_str()], "alone in its statement");
                        assert_eq!(resources, [lt_arns.as_str()]);
                    }
                    "ec2:RunInstances" => {
                        assert_eq!(actions, [a.as_str()], "alone in its statement");
                        assert_eq!(
                            s["Condition"],
                            json!({"ArnLike": {"ec2:LaunchTemplate": lt_arns}}),
                        );
                    }
                    "ec2:CreateTags" => {
                        assert_eq!(actions, [a.as_str()], "alone in its statement");
                        assert_eq!(
                            s["Condition"],
                            json!({"StringEquals": {"ec2:CreateAction": "RunInstances"}})
                        );
                        for r in &resources {
                            assert!(
                                r.starts_with(&format!("arn:aws:ec2:{REGION}:{ACCOUNT}:")),
                                "{r}"
                            );
                        }
                    }
                    "iam:PassRole" => {
                        assert_eq!(actions, [a.as_str()], "alone in its statement");
                        assert_eq!(
                            s["Condition"],
                            json!({"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}})
                        );
                        assert_eq!(resources, [format!("arn:aws:iam::{ACCOUNT}:role/*")]);
                    }
                    "logs:CreateLogStream" | "logs:PutLogEvents" => {
                        assert_eq!(resources, ["<AmiRolloutLogGroup.Arn>"]);
                    }
                    "sqs:SendMessage" => assert_eq!(resources, ["<DeadLetterQueue.Arn>"]),
                    other => panic!("ami-rollout may {other}: unexpected"),
                }
            }
        }
        assert_eq!(seen.len(), 13, "{seen:?}");
        // Reads without a resource scope are the Describe calls only.
        for s in &statements {
            if strings(&s["Resource"]).iter().any(|r| r == "*") && s.get("Condition").is_none() {
                for a in strings(&s["Action"]) {
                    assert!(a.contains(":Describe"), "{a} on * without a condition");
                }
            }
        }
    }
    // With the instances' role named, PassRole is that role only (any path).
    let named = rollout_stack(&[("InstanceRoleName", "ecsInstanceRole")]);
    let pass = rollout_statements(&named)
        .into_iter()
        .find(|s| strings(&s["Action"]) == ["iam:PassRole"])
        .unwrap();
    assert_eq!(
        set(strings(&pass["Resource"])),
        set([
            format!("arn:aws:iam::{ACCOUNT}:role/ecsInstanceRole"),
            format!("arn:aws:iam::{ACCOUNT}:role/*/ecsInstanceRole"),
        ])
    );
    // ami-rollout can neither terminate instances nor touch lifecycle actions,
    // ECS state or the topic.
    let fleet = Stack::fleet();
    let all: BTreeSet<String> = rollout_statements(&fleet)
        .iter()
        .flat_map(|s| strings(&s["Action"]))
        .collect();
    for a in [
        "ec2:TerminateInstances",
        "autoscaling:TerminateInstanceInAutoScalingGroup",
        "autoscaling:CompleteLifecycleAction",
        "ecs:UpdateContainerInstancesState",
        "ecs:StopTask",
        "sns:Publish",
        "ssm:SendCommand",
    ] {
        assert!(!all.contains(a), "ami-rollout has {a}");
    }
}

/// GetParameter on the one parameter: AWS's public parameters have no account
/// in their ARN, and the ARN holds the name without its leading slash.
#[test]
fn ami_rollout_reads_the_ami_parameter_only() {
    for (name, arn) in [
        (
            "/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id",
            format!(
                "arn:aws:ssm:{REGION}::parameter/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id"
            ),
        ),
        (
            "/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended",
            format!(
                "arn:aws:ssm:{REGION}::parameter/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended"
            ),
        ),
        (
            "/fleet/ecs-ami",
            format!("arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/fleet/ecs-ami"),
        ),
        (
            "fleet-ecs-ami",
            format!("arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/fleet-ecs-ami"),
        ),
        (
            "/fleet/aws/service/ami",
            format!("arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/fleet/aws/service/ami"),
        ),
    ] {
        let stack = rollout_stack(&[("AmiParameterName", name)]);
        let reads: Vec<Value> = rollout_statements(&stack)
            .into_iter()
            .filter(|s| strings(&s["Action"]).iter().any(|a| a.starts_with("ssm:")))
            .collect();
        assert_eq!(reads.len(), 1, "{name}");
        assert_eq!(strings(&reads[0]["Action"]), ["ssm:GetParameter"]);
        assert_eq!(strings(&reads[0]["Resource"]), [arn], "{name}");
        assert_eq!(
            rollout_function(&stack)["Properties"]["Environment"]["Variables"]["AMI_PARAMETER_NAME"],
            name
        );
    }
}

/// `{ $.a.b = "v" }` -> (["a", "b"], "v"): the one filter pattern shape used here.
fn json_equality_pattern(pattern: &str) -> (Vec<String>, String) {
    let inner = pattern
        .trim()
        .strip_prefix('{')
        .and_then(|p| p.strip_suffix('}'))
        .expect("{ ... }")
        .trim();
    let (selector, value) = inner.split_once(" = ").expect("$.path = \"value\"");
    let path = selector
        .strip_prefix("$.")
        .expect("$.")
        .split('.')
        .map(str::to_owned)
        .collect();
    let value = value
        .trim()
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .expect("a quoted value");
    (path, value.to_owned())
}

/// The rollback line (lambda_runtime's JSON shape: event fields under
/// `fields`) becomes a metric with an alarm on it, beside the Errors alarm.
#[test]
fn a_rollback_raises_an_alarm() {
    let stack = Stack::fleet();
    let filters = stack.of_type("AWS::Logs::MetricFilter");
    let rollback: Vec<&Value> = filters
        .values()
        .filter(|f| f["Properties"]["LogGroupName"] == "<AmiRolloutLogGroup>")
        .collect();
    assert_eq!(rollback.len(), 1);
    let p = &rollback[0]["Properties"];
    assert_eq!(
        p["FilterPattern"],
        r#"{ $.fields.alarm = "ami-rollout-rollback" }"#
    );
    let (path, value) = json_equality_pattern(p["FilterPattern"].as_str().unwrap());
    let line = json!({
        "timestamp": "2026-03-01T12:00:00.000Z",
        "level": "ERROR",
        "fields": {
            "message": "rolled back: the cluster did not stay steady",
            "alarm": "ami-rollout-rollback",
            "group": "web-asg",
        },
        "target": "ami_rollout",
    });
    let mut at = &line;
    for key in &path {
        at = &at[key.as_str()];
    }
    assert_eq!(at, &json!(value), "the filter selects the rollback line");
    let metric = &p["MetricTransformations"][0];
    assert_eq!(metric["MetricValue"], "1");
    let alarms = stack.of_type("AWS::CloudWatch::Alarm");
    assert!(alarms.values().any(|a| {
        let a = &a["Properties"];
        a["Namespace"] == metric["MetricNamespace"]
            && a["MetricName"] == metric["MetricName"]
            && a["Threshold"] == 1
            && a["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    }));
    let notify = rollout_stack(&[("AlarmTopicArn", "arn:aws:sns:us-east-1:123456789012:ops")]);
    let alarms = notify.of_type("AWS::CloudWatch::Alarm");
    for id in ["AmiRolloutErrorsAlarm", "AmiRolloutRollbackAlarm"] {
        assert_eq!(
            alarms[id]["Properties"]["AlarmActions"],
            json!(["arn:aws:sns:us-east-1:123456789012:ops"]),
            "{id}"
        );
    }
}

// ---------------------------------------------------------------- diagnostic

/// The script's own validation patterns, from its header:
/// `#   region       ^...$` and `#   instance id  ^...$`.
fn script_pattern(script: &str, label: &str) -> String {
    script
        .lines()
        .find_map(|l| {
            l.strip_prefix("#   ")
                .and_then(|rest| rest.strip_prefix(label))
                .map(|p| p.trim().to_owned())
        })
        .unwrap_or_else(|| panic!("{SCRIPT}: no '{label}' pattern in the header"))
}

/// Rewrites the embedded copy from the script (UPDATE_TEMPLATE=1).
fn embed_script(template: &str, script: &str) -> String {
    let lines: Vec<&str> = template.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.contains(&format!("exec bash -s <<'{HEREDOC_END}'")))
        .expect("the runCommand prelude");
    assert_eq!(
        lines[start + 1].trim(),
        "- |",
        "the script block follows the prelude"
    );
    let end = start
        + 2
        + lines[start + 2..]
            .iter()
            .position(|l| l.trim() == format!("- {HEREDOC_END}"))
            .expect("the heredoc's end");
    let indent = " ".repeat(lines[start + 1].find('-').unwrap() + 2);
    let mut out: Vec<String> = lines[..start + 2].iter().map(|l| l.to_string()).collect();
    for l in script.lines() {
        out.push(if l.is_empty() {
            String::new()
        } else {
            format!("{indent}{l}")
        });
    }
    out.extend(lines[end..].iter().map(|l| l.to_string()));
    out.join("\n") + "\n"
}

#[test]
fn the_diagnostic_document_embeds_the_script_verbatim() {
    let script = read(SCRIPT);
    // What a YAML literal block (`|`) can hold verbatim.
    assert!(script.ends_with('\n') && !script.ends_with("\n\n"));
    assert!(!script.starts_with(' '));
    assert!(
        script.lines().all(|l| l.is_empty() || !l.trim().is_empty()),
        "{SCRIPT}: whitespace-only lines do not survive a YAML block"
    );

    let stack = Stack::fleet();
    let doc = &stack.resources()["OrphanDiagnosticDocument"]["Properties"];
    assert_eq!(doc["DocumentType"], "Command");
    let content = &doc["Content"];
    assert_eq!(content["schemaVersion"], "2.2");
    let steps = content["mainSteps"].as_array().unwrap();
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0]["action"], "aws:runShellScript");
    let run = strings(&steps[0]["inputs"]["runCommand"]);
    assert_eq!(run.len(), 3);

    if run[1] != script {
        if std::env::var_os("UPDATE_TEMPLATE").is_some() {
            let path = root().join("template.yaml");
            let updated = embed_script(&read("template.yaml"), &script);
            std::fs::write(&path, updated).unwrap();
            let again = Stack::fleet();
            let doc = &again.resources()["OrphanDiagnosticDocument"]["Properties"];
            assert_eq!(
                strings(&doc["Content"]["mainSteps"][0]["inputs"]["runCommand"])[1],
                script
            );
            eprintln!("template.yaml: the embedded diagnostic script was refreshed from {SCRIPT}");
        } else {
            panic!(
                "template.yaml's copy of {SCRIPT} is out of date: run `UPDATE_TEMPLATE=1 cargo test --test template`"
            );
        }
    }

    // The script is fed to bash on stdin by a quoted heredoc: no expansion, and
    // its own lines never end the heredoc.
    assert_eq!(
        run[0],
        format!(
            "REGION='{{{{ Region }}}}' INSTANCE_ID='{{{{ InstanceId }}}}' exec bash -s <<'{HEREDOC_END}'"
        )
    );
    assert_eq!(run[2], HEREDOC_END);
    assert!(script.lines().all(|l| l != HEREDOC_END));

    // The two parameters the verifier sends, validated by SSM (API and agent)
    // with the script's own patterns, which admit no quote.
    let params = content["parameters"].as_object().unwrap();
    assert_eq!(
        params.keys().cloned().collect::<BTreeSet<_>>(),
        set(["InstanceId", "Region"])
    );
    for (name, label) in [("Region", "region"), ("InstanceId", "instance id")] {
        let pattern = params[name]["allowedPattern"].as_str().unwrap();
        assert_eq!(pattern, script_pattern(&script, label), "{name}");
        assert!(
            !pattern.contains('\'') && !pattern.contains('.'),
            "{name}: {pattern}"
        );
        assert_eq!(params[name]["type"], "String");
    }

    // SSM substitutes {{ Name }} for declared parameters only (names are
    // [a-zA-Z0-9]+); the script's docker --format templates start with '.'.
    let mut rest = script.as_str();
    while let Some(i) = rest.find("{{") {
        let inner = rest[i + 2..].trim_start();
        assert!(
            inner.starts_with('.'),
            "{SCRIPT}: SSM would read {:?}",
            &rest[i..i + 20]
        );
        rest = &rest[i + 2..];
    }

    // A Command document holds at most 64 KB.
    let size = serde_json::to_string(content).unwrap().len();
    assert!(size < 64 * 1024, "document content is {size} bytes");
}

/// The template's files exist where it says: the script, and each CodeUri.
#[test]
fn paths_in_the_template_exist() {
    assert!(Path::new(&root().join(SCRIPT)).is_file());
    let text = read("template.yaml");
    for line in text.lines() {
        if let Some(uri) = line.trim().strip_prefix("CodeUri: ") {
            assert!(root().join(uri).join("Cargo.toml").is_file(), "{uri}");
        }
    }
}
