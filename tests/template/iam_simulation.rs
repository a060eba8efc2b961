//! IAM proven by a policy engine: each function's role, resolved from the
//! template, evaluated by `@cloud-copilot/iam-simulate` (tests/iam/simulate.mjs,
//! offline) over
//!
//! - every request the functions made in the integration tests, as the
//!   stand-in recorded what IAM authorizes for it (tests/standin/standin/iam.py:
//!   action, resource ARN, condition keys), with the role resolved for the
//!   configuration each function ran with; plus what AWS authorizes as the role
//!   on the function's behalf (Lambda writing its logs and dead letters, SNS
//!   using the topic's key for a publish): all must be allowed;
//! - [`must_be_denied`]: requests outside the stack's cluster, groups, launch
//!   templates, topic and instance role: all must be denied;
//! - and every action a role grants must be used by an allowed request.
//!
//! `the_roles_allow_what_the_functions_do_and_nothing_else` needs the
//! recording of a whole test run (`ECS_LIFECYCLE_IAM_RECORD`), so it is
//! ignored by plain `cargo test`: scripts/test runs it after the integration
//! tests. It prints one table per function (docs/deploying.md, "IAM") and lints
//! the resolved policies with parliament. The other tests here run the engine on
//! synthetic policies: the check can fail.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::cfn::{ACCOUNT, REGION, Stack, root, strings};

/// The function roles, by binary.
const ROLES: [(&str, &str); 3] = [
    ("terminate-drain", "TerminateDrainRole"),
    ("launch-verify", "LaunchVerifyRole"),
    ("ami-rollout", "AmiRolloutRole"),
];

fn role_of(function: &str) -> &'static str {
    ROLES
        .iter()
        .find(|(f, _)| *f == function)
        .unwrap_or_else(|| panic!("no role for function {function}"))
        .1
}

const KEY_ARN: &str = "arn:aws:kms:us-east-1:123456789012:key/0d5e2c1a-0000-4000-8000-00000000c0de";

/// A deployment: the stack's parameters and what its resources' references
/// resolve to (`<LifecycleTopic>`, `<DeadLetterQueue.Arn>`, ...).
#[derive(Debug, Clone)]
struct Deployment {
    params: Vec<(String, String)>,
    refs: BTreeMap<String, String>,
}

impl Deployment {
    fn new(params: &[(&str, &str)]) -> Self {
        let arn =
            |service: &str, rest: &str| format!("arn:aws:{service}:{REGION}:{ACCOUNT}:{rest}");
        let mut refs = BTreeMap::new();
        for (r, v) in [
            (
                "<LifecycleTopic>",
                arn("sns", "ecs-lifecycle-LifecycleTopic-1A2B3C"),
            ),
            ("<LifecycleTopicKey.Arn>", KEY_ARN.to_owned()),
            (
                "<DrainSlotsTable.Arn>",
                arn("dynamodb", "table/ecs-lifecycle-DrainSlotsTable-1A2B3C"),
            ),
            (
                "<DeadLetterQueue.Arn>",
                arn("sqs", "ecs-lifecycle-DeadLetterQueue-1A2B3C"),
            ),
            (
                "<OrphanDiagnosticDocument>",
                "ecs-lifecycle-OrphanDiagnosticDocument-1A2B3C".to_owned(),
            ),
            (
                "<DiagnosticsLogGroup.Arn>",
                arn(
                    "logs",
                    "log-group:/ecs-lifecycle/ecs-lifecycle/diagnostics:*",
                ),
            ),
        ] {
            refs.insert(r.to_owned(), v);
        }
        for f in ["TerminateDrain", "LaunchVerify"] {
            refs.insert(
                format!("<{f}WaitQueue.Arn>"),
                arn("sqs", &format!("ecs-lifecycle-{f}WaitQueue-1A2B3C")),
            );
        }
        for f in ["TerminateDrain", "LaunchVerify", "AmiRollout"] {
            refs.insert(
                format!("<{f}LogGroup.Arn>"),
                arn(
                    "logs",
                    &format!("log-group:/aws/lambda/ecs-lifecycle-{f}:*"),
                ),
            );
        }
        Deployment {
            params: params
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            refs,
        }
    }

    /// The topic key's policy, resolved.
    fn key_policy(&self) -> Value {
        self.resolved("LifecycleTopicKey", |p| p["KeyPolicy"].clone())
    }

    /// The role's policy document, resolved and with every reference replaced;
    /// a reference this deployment does not know fails loudly.
    fn policy(&self, role: &str) -> Value {
        self.resolved(role, |properties| {
            let statements = crate::cfn::role_statements(properties);
            json!({"Version": "2012-10-17", "Statement": statements})
        })
    }

    /// `pick` of the resource's resolved properties, every reference replaced.
    fn resolved(&self, resource: &str, pick: impl Fn(&Value) -> Value) -> Value {
        let role = resource;
        let params: Vec<(&str, &str)> = self
            .params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let stack = Stack::new(&params);
        let resources = stack.resources();
        let properties = &resources
            .get(role)
            .unwrap_or_else(|| panic!("the stack has no {role}"))["Properties"];
        let mut text = pick(properties).to_string();
        for (placeholder, value) in &self.refs {
            text = text.replace(placeholder, value);
        }
        if let Some(start) = text.find('<') {
            let end = text[start..]
                .find('>')
                .map_or(text.len(), |e| start + e + 1);
            panic!("{role}: unresolved reference {}", &text[start..end]);
        }
        serde_json::from_str(&text).unwrap()
    }
}

/// One request for the engine.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Request {
    function: String,
    action: String,
    resource: String,
    context: String,
    /// Who makes it: the function (`call`), or AWS as the role on its behalf.
    via: String,
    /// The resource's own policy, when IAM evaluates one too (a KMS key's
    /// policy must let the account's policies grant its use); JSON or empty.
    resource_policy: String,
}

impl Request {
    fn new(function: &str, action: &str, resource: &str, context: Value, via: &str) -> Self {
        Request {
            function: function.to_owned(),
            action: action.to_owned(),
            resource: resource.to_owned(),
            // AWS sets the global condition keys of every request.
            context: with_global_keys(context).to_string(),
            via: via.to_owned(),
            resource_policy: String::new(),
        }
    }
}

/// A request's context with what AWS adds to every request: the Region it
/// was sent to (`aws:RequestedRegion`; the stand-in's Region).
fn with_global_keys(mut context: Value) -> Value {
    if let Some(map) = context.as_object_mut() {
        map.entry("aws:RequestedRegion")
            .or_insert_with(|| json!(REGION));
    }
    context
}

/// The engine's verdict on each request (`Allowed`, `ImplicitlyDenied`,
/// `ExplicitlyDenied`, `Error`), with the Sids that allowed it and a note; and
/// the actions each policy grants.
#[derive(Debug)]
struct Verdicts {
    results: Vec<(String, Vec<String>, String)>,
    granted: BTreeMap<String, Vec<String>>,
}

fn simulate(
    work: &Path,
    policies: &BTreeMap<String, Value>,
    requests: &[(String, &Request)],
) -> Verdicts {
    std::fs::create_dir_all(work).unwrap();
    let input = work.join("simulate-input.json");
    let output = work.join("simulate-output.json");
    let reqs: Vec<Value> = requests
        .iter()
        .enumerate()
        .map(|(i, (policy, r))| {
            let mut v = json!({"id": i, "role": policy, "action": r.action, "resource": r.resource,
                   "context": serde_json::from_str::<Value>(&r.context).unwrap()});
            if !r.resource_policy.is_empty() {
                v["resourcePolicy"] = serde_json::from_str(&r.resource_policy).unwrap();
            }
            v
        })
        .collect();
    std::fs::write(
        &input,
        json!({"account": ACCOUNT, "policies": policies, "requests": reqs}).to_string(),
    )
    .unwrap();
    let script = root().join("tests/iam/simulate.mjs");
    let status = Command::new("node")
        .arg(&script)
        .arg(&input)
        .arg(&output)
        .status()
        .unwrap_or_else(|e| panic!("node {}: {e} (Node.js must be on PATH)", script.display()));
    assert!(
        status.success(),
        "node {} failed ({status}): run scripts/setup-tools.sh (npm ci in tests/iam)",
        script.display()
    );
    let out: Value = serde_json::from_str(&std::fs::read_to_string(&output).unwrap()).unwrap();
    let results = out["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let mut note = r["note"].as_str().unwrap_or_default().to_owned();
            if let Some(e) = r["error"].as_str() {
                note = format!("engine error: {e}");
            }
            (
                r["decision"].as_str().unwrap().to_owned(),
                strings(&r["statements"]),
                note,
            )
        })
        .collect();
    let granted = out["granted"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), strings(v)))
        .collect();
    Verdicts { results, granted }
}

/// An IAM action pattern (`kms:GenerateDataKey*`) matches an action.
fn action_matches(pattern: &str, action: &str) -> bool {
    let (p, a) = (pattern.to_ascii_lowercase(), action.to_ascii_lowercase());
    match p.split_once('*') {
        None => p == a,
        Some((head, tail)) => {
            a.starts_with(head) && a.len() >= head.len() + tail.len() && a.ends_with(tail)
        }
    }
}

// ---------------------------------------------------------------- the recording

/// The recording of a test run: per function credential, the function, its
/// configuration and the requests it made.
#[derive(Debug, Default)]
struct Recording {
    deployments: BTreeMap<String, (String, BTreeMap<String, String>)>,
    requests: BTreeMap<String, Vec<Value>>,
}

fn read_recording(dir: &Path) -> Recording {
    let mut rec = Recording::default();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}: run the integration tests with {} set first",
                dir.display(),
                testkit::IAM_RECORD_ENV
            )
        })
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let v: Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{name}: {e}: {line}"));
            let key = v["key"].as_str().unwrap().to_owned();
            if name.starts_with("deployments-") {
                let config = v["config"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, x)| (k.clone(), x.as_str().unwrap_or_default().to_owned()))
                    .collect();
                rec.deployments
                    .insert(key, (v["function"].as_str().unwrap().to_owned(), config));
            } else if name.starts_with("requests-") {
                rec.requests.entry(key).or_default().push(v);
            }
        }
    }
    rec
}

/// A configuration the template can give a function: one cluster, by name
/// (ClusterName is required and a name; a function without CLUSTER_NAME, as
/// some tests run it, looks at every cluster, which no deployment does).
fn expressible(config: &BTreeMap<String, String>) -> bool {
    config.get("CLUSTER_NAME").is_some_and(|c| {
        !c.is_empty()
            && c.chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
    })
}

/// The template's parameters for a function configured by `config`, whose
/// requests saw `hooks` (group, notification target): the stack creates a hook
/// per group it is deployed for, notifying its topic: the LifecycleTopic is
/// CONTINUATION_TOPIC_ARN, else the hooks' topic, and AutoScalingGroupNames are
/// the groups with a hook to it (ami-rollout's: its AUTO_SCALING_GROUP_NAMES). The role ami-rollout's launches pass is the InstanceRoleName the
/// deployer sets.
fn deployment_for(
    function: &str,
    config: &BTreeMap<String, String>,
    hooks: &BTreeSet<(String, String)>,
    passed_roles: &BTreeSet<String>,
) -> Deployment {
    let get = |k: &str| config.get(k).filter(|v| !v.is_empty()).cloned();
    let topic = get("CONTINUATION_TOPIC_ARN")
        .or_else(|| hooks.iter().map(|(_, t)| t.clone()).find(|t| !t.is_empty()));
    let groups = if function == "ami-rollout" {
        get("AUTO_SCALING_GROUP_NAMES").unwrap_or_default()
    } else {
        hooks
            .iter()
            .filter(|(_, t)| topic.is_none() || topic.as_ref() == Some(t))
            .map(|(g, _)| g.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
            .join(",")
    };
    let groups = if groups.is_empty() {
        "no-group-hooked".to_owned()
    } else {
        groups
    };
    let cluster = get("CLUSTER_NAME").unwrap_or_else(|| "default".to_owned());
    let instance_role = passed_roles
        .iter()
        .next()
        .cloned()
        .unwrap_or_else(|| "ecsInstanceRole".to_owned());
    let mut params: Vec<(String, String)> = vec![
        ("ClusterName".into(), cluster),
        ("AutoScalingGroupNames".into(), groups),
        ("EnableAmiRollout".into(), "true".into()),
        ("InstanceRoleName".into(), instance_role),
    ];
    if let Some(t) = get("NOTIFICATION_TOPIC_ARN") {
        params.push(("NotificationTopicArn".into(), t));
    }
    if function == "terminate-drain"
        && let Some(action) = get("DRAIN_TIMEOUT_ACTION")
    {
        params.push(("DrainTimeoutAction".into(), action));
    }
    // MAX_CONCURRENT_DRAINS: the budget's table the function was given.
    let slots_table = get("DRAIN_SLOTS_TABLE").filter(|_| function == "terminate-drain");
    if let Some(budget) = get("MAX_CONCURRENT_DRAINS").filter(|_| slots_table.is_some()) {
        params.push(("MaxConcurrentDrains".into(), budget));
    }
    // The wait mode the function ran with (the code's default when unset).
    if function != "ami-rollout" {
        let mode = get("WAIT_MODE").unwrap_or_else(|| "in-invocation".to_owned());
        params.push(("WaitMode".into(), mode));
    }
    if let Some(p) = get("AMI_PARAMETER_NAME") {
        params.push(("AmiParameterName".into(), p));
    }
    let refs: Vec<(&str, &str)> = params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut d = Deployment::new(&refs);
    if let Some(t) = topic {
        d.refs.insert("<LifecycleTopic>".into(), t);
    }
    if let Some(table) = slots_table {
        d.refs.insert(
            "<DrainSlotsTable.Arn>".into(),
            format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}"),
        );
    }
    if let Some(doc) = get("SSM_DOCUMENT_NAME") {
        d.refs.insert("<OrphanDiagnosticDocument>".into(), doc);
    }
    d
}

/// What AWS authorizes as the function's role besides its calls: Lambda
/// writes the function's logs and its failed asynchronous invocations to the
/// queue; SNS uses the topic's key for a publish to the encrypted topic.
fn on_its_behalf(function: &str, d: &Deployment, calls: &[Request]) -> Vec<Request> {
    let log = format!(
        "{}log-stream:2026/12/07/[$LATEST]0123456789abcdef",
        d.refs[&format!("<{}LogGroup.Arn>", pascal(function))].trim_end_matches('*')
    );
    let mut out = vec![
        Request::new(
            function,
            "logs:CreateLogStream",
            &log,
            json!({}),
            "Lambda (logs)",
        ),
        Request::new(
            function,
            "logs:PutLogEvents",
            &log,
            json!({}),
            "Lambda (logs)",
        ),
        Request::new(
            function,
            "sqs:SendMessage",
            &d.refs["<DeadLetterQueue.Arn>"],
            json!({}),
            "Lambda (on-failure destination)",
        ),
    ];
    // WaitMode=queue: the wait queue's event source mapping reads the queue
    // with the function's role.
    if function != "ami-rollout"
        && d.params
            .iter()
            .find(|(k, _)| k == "WaitMode")
            .is_none_or(|(_, m)| m == "queue")
    {
        let queue = &d.refs[&format!("<{}WaitQueue.Arn>", pascal(function))];
        for action in [
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:GetQueueAttributes",
        ] {
            out.push(Request::new(
                function,
                action,
                queue,
                json!({}),
                "Lambda (wait queue's event source mapping)",
            ));
        }
    }
    if calls
        .iter()
        .any(|c| c.action == "sns:Publish" && c.resource == d.refs["<LifecycleTopic>"])
    {
        for action in ["kms:GenerateDataKey", "kms:Decrypt"] {
            let mut r = Request::new(
                function,
                action,
                KEY_ARN,
                json!({"kms:ViaService": format!("sns.{REGION}.amazonaws.com"), "kms:CallerAccount": ACCOUNT}),
                "SNS (publish to the encrypted topic)",
            );
            r.resource_policy = d.key_policy().to_string();
            out.push(r);
        }
    }
    out
}

fn pascal(function: &str) -> String {
    function
        .split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

// ---------------------------------------------------------------- the deny table

/// The deployment the deny table is evaluated against.
fn reference_deployment() -> Deployment {
    Deployment::new(&[
        ("ClusterName", "prod"),
        ("AutoScalingGroupNames", "web-asg,batch-asg"),
        ("EnableAmiRollout", "true"),
        ("InstanceRoleName", "ecsInstanceRole"),
        (
            "NotificationTopicArn",
            "arn:aws:sns:us-east-1:123456789012:ops",
        ),
        ("MaxConcurrentDrains", "25%"),
    ])
}

/// Requests each role must be denied, in [`reference_deployment`]: other
/// clusters, other groups, launch templates the stack does not own, other
/// topics, other documents, PassRole of other roles or to other services.
fn must_be_denied() -> Vec<(Request, &'static str)> {
    let ecs = |rest: &str| format!("arn:aws:ecs:{REGION}:{ACCOUNT}:{rest}");
    let other_cluster = json!({"ecs:cluster": ecs("cluster/other")});
    let group = |name: &str| {
        format!(
            "arn:aws:autoscaling:{REGION}:{ACCOUNT}:autoScalingGroup:7f1c2d3e-0000-4000-8000-000000000001:autoScalingGroupName/{name}"
        )
    };
    let lt = format!("arn:aws:ec2:{REGION}:{ACCOUNT}:launch-template/lt-0123456789abcdef0");
    let mut out = Vec::new();
    for f in ["terminate-drain", "launch-verify", "ami-rollout"] {
        let r = |action: &str, resource: &str, context: Value| {
            Request::new(f, action, resource, context, "deny table")
        };
        out.push((
            r(
                "ecs:ListContainerInstances",
                &ecs("cluster/other"),
                json!({}),
            ),
            "another cluster's instances",
        ));
        out.push((
            r(
                "ecs:DescribeContainerInstances",
                &ecs("container-instance/other/0a1b2c"),
                other_cluster.clone(),
            ),
            "another cluster's instances",
        ));
        out.push((
            r(
                "sns:Publish",
                "arn:aws:sns:us-east-1:123456789012:someone-elses",
                json!({}),
            ),
            "another topic",
        ));
        out.push((
            r(
                "autoscaling:CompleteLifecycleAction",
                &group("other-asg"),
                json!({}),
            ),
            "another group's lifecycle action",
        ));
        out.push((
            r(
                "iam:PassRole",
                &format!("arn:aws:iam::{ACCOUNT}:role/admin"),
                json!({"iam:PassedToService": "ec2.amazonaws.com"}),
            ),
            "PassRole of another role",
        ));
        out.push((
            r(
                "ec2:TerminateInstances",
                &format!("arn:aws:ec2:{REGION}:{ACCOUNT}:instance/i-0123456789abcdef0"),
                json!({}),
            ),
            "terminating outside Auto Scaling",
        ));
    }
    let td = |action: &str, resource: &str, context: Value, why| {
        (
            Request::new("terminate-drain", action, resource, context, "deny table"),
            why,
        )
    };
    out.push(td(
        "ecs:StopTask",
        &ecs("task/other/0a1b2c"),
        other_cluster.clone(),
        "stopping another cluster's task",
    ));
    out.push(td(
        "ecs:UpdateContainerInstancesState",
        &ecs("container-instance/other/0a1b2c"),
        other_cluster.clone(),
        "draining another cluster's instance",
    ));
    out.push(td(
        "ecs:DescribeServices",
        &ecs("service/other/web"),
        other_cluster.clone(),
        "another cluster's services",
    ));
    out.push(td(
        "ecs:DescribeServices",
        &ecs("service/web"),
        other_cluster.clone(),
        "another cluster's services (legacy ARN)",
    ));
    out.push(td(
        "autoscaling:SetInstanceHealth",
        &group("other-asg"),
        json!({}),
        "marking another group's instance unhealthy",
    ));
    // The drain budget's table: the cluster's own item, the two calls.
    let table =
        format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/ecs-lifecycle-DrainSlotsTable-1A2B3C");
    out.push(td(
        "dynamodb:PutItem",
        &table,
        json!({"dynamodb:LeadingKeys": ["other"]}),
        "another cluster's drain budget",
    ));
    out.push(td(
        "dynamodb:DeleteItem",
        &table,
        json!({"dynamodb:LeadingKeys": ["prod"]}),
        "deleting the budget's item",
    ));
    out.push(td(
        "dynamodb:Scan",
        &table,
        json!({}),
        "reading every cluster's budget",
    ));
    out.push(td(
        "dynamodb:GetItem",
        &format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/another-table"),
        json!({"dynamodb:LeadingKeys": ["prod"]}),
        "another table",
    ));
    out.push(td(
        "autoscaling:TerminateInstanceInAutoScalingGroup",
        &group("web-asg"),
        json!({}),
        "terminate-drain terminates nothing",
    ));
    out.push(td(
        "ssm:SendCommand",
        &format!(
            "arn:aws:ssm:{REGION}:{ACCOUNT}:document/ecs-lifecycle-OrphanDiagnosticDocument-1A2B3C"
        ),
        json!({}),
        "terminate-drain runs no command",
    ));
    let lv = |action: &str, resource: &str, context: Value, why| {
        (
            Request::new("launch-verify", action, resource, context, "deny table"),
            why,
        )
    };
    out.push(lv(
        "autoscaling:TerminateInstanceInAutoScalingGroup",
        &group("other-asg"),
        json!({}),
        "terminating another group's instance",
    ));
    out.push(lv(
        "ssm:SendCommand",
        &format!("arn:aws:ssm:{REGION}:{ACCOUNT}:document/AWS-RunShellScript"),
        json!({}),
        "another document",
    ));
    out.push(lv(
        "ssm:SendCommand",
        &format!("arn:aws:ec2:{REGION}:{ACCOUNT}:instance/i-0123456789abcdef0"),
        json!({"ssm:resourceTag/aws:autoscaling:groupName": "other-asg"}),
        "a command on another group's instance",
    ));
    out.push(lv(
        "ecs:StopTask",
        &ecs("task/prod/0a1b2c"),
        json!({"ecs:cluster": ecs("cluster/prod")}),
        "launch-verify stops no task",
    ));
    let instance = format!("arn:aws:ec2:{REGION}:{ACCOUNT}:instance/i-0123456789abcdef0");
    out.push(lv(
        "ec2:CreateTags",
        &instance,
        json!({
            "ec2:ResourceTag/aws:autoscaling:groupName": "web-asg",
            "aws:TagKeys": ["Name"],
            "aws:RequestTag/Name": "renamed",
        }),
        "a tag other than the launch-chain claim",
    ));
    out.push(lv(
        "ec2:CreateTags",
        &instance,
        json!({
            "ec2:ResourceTag/aws:autoscaling:groupName": "web-asg",
            "aws:TagKeys": ["ecs-lifecycle:launch-chain", "Owner"],
            "aws:RequestTag/ecs-lifecycle:launch-chain": "0:00ff:-:launch",
            "aws:RequestTag/Owner": "me",
        }),
        "the claim with another tag",
    ));
    out.push(lv(
        "ec2:CreateTags",
        &instance,
        json!({
            "ec2:ResourceTag/aws:autoscaling:groupName": "other-asg",
            "aws:TagKeys": ["ecs-lifecycle:launch-chain"],
            "aws:RequestTag/ecs-lifecycle:launch-chain": "0:00ff:-:launch",
        }),
        "the claim on another group's instance",
    ));
    let ar = |action: &str, resource: &str, context: Value, why| {
        (
            Request::new("ami-rollout", action, resource, context, "deny table"),
            why,
        )
    };
    out.push(ar(
        "autoscaling:StartInstanceRefresh",
        &group("other-asg"),
        json!({}),
        "refreshing another group",
    ));
    out.push(ar(
        "autoscaling:UpdateAutoScalingGroup",
        &group("other-asg"),
        json!({}),
        "updating another group",
    ));
    out.push(ar(
        "autoscaling:CreateOrUpdateTags",
        &group("web-asg"),
        json!({"aws:TagKeys": ["owner"], "aws:RequestTag/owner": "x"}),
        "a tag other than the rollout's markers",
    ));
    out.push(ar(
        "autoscaling:DeleteTags",
        &group("web-asg"),
        json!({"aws:TagKeys": ["owner"]}),
        "deleting a tag other than the markers",
    ));
    out.push(ar(
        "ec2:CreateLaunchTemplateVersion",
        &lt,
        json!({}),
        "an untagged launch template",
    ));
    out.push(ar("ec2:CreateLaunchTemplateVersion", &lt, json!({"aws:ResourceTag/ecs-lifecycle:ami-rollout": "another-stack", "ec2:ResourceTag/ecs-lifecycle:ami-rollout": "another-stack"}), "a launch template of another stack"));
    out.push(ar(
        "ec2:RunInstances",
        &lt,
        json!({"aws:ResourceTag/ecs-lifecycle:ami-rollout": "another-stack"}),
        "launching through another stack's template",
    ));
    out.push(ar(
        "ec2:RunInstances",
        &format!("arn:aws:ec2:{REGION}:{ACCOUNT}:instance/*"),
        json!({}),
        "launching without a launch template",
    ));
    out.push(ar(
        "ec2:CreateTags",
        &format!("arn:aws:ec2:{REGION}:{ACCOUNT}:instance/i-0123456789abcdef0"),
        json!({"ec2:CreateAction": "CreateTags"}),
        "tagging an existing instance",
    ));
    out.push(ar(
        "iam:PassRole",
        &format!("arn:aws:iam::{ACCOUNT}:role/ecsInstanceRole"),
        json!({"iam:PassedToService": "lambda.amazonaws.com"}),
        "passing the instance role to another service",
    ));
    out.push(ar(
        "ssm:GetParameter",
        &format!("arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/secrets/db-password"),
        json!({}),
        "another parameter",
    ));
    out.push(ar(
        "ecs:ListServices",
        "*",
        other_cluster.clone(),
        "another cluster's services",
    ));
    out
}

/// Requests each role must be allowed although no test makes them in that
/// form: the legacy short ARN of a service, which accounts that never opted in
/// to the long ARN format still have (terminate-drain and ami-rollout pass the
/// ARNs ECS returns); and a call of a path the integration tests do not reach.
fn must_be_allowed_too() -> Vec<(Request, &'static str)> {
    let ecs = |rest: &str| format!("arn:aws:ecs:{REGION}:{ACCOUNT}:{rest}");
    let prod = json!({"ecs:cluster": ecs("cluster/prod")});
    let mut out: Vec<(Request, &'static str)> = ["terminate-drain", "ami-rollout"]
        .into_iter()
        .map(|f| {
            (
                Request::new(
                    f,
                    "ecs:DescribeServices",
                    &ecs("service/web"),
                    prod.clone(),
                    "legacy ARN",
                ),
                "a service's legacy short ARN",
            )
        })
        .collect();
    // The launch-chain claim on one of the groups' instances (the deny
    // table's CreateTags cases differ from it in one thing each).
    out.push((
        Request::new(
            "launch-verify",
            "ec2:CreateTags",
            &format!("arn:aws:ec2:{REGION}:{ACCOUNT}:instance/i-0123456789abcdef0"),
            json!({
                "ec2:ResourceTag/aws:autoscaling:groupName": "web-asg",
                "aws:TagKeys": ["ecs-lifecycle:launch-chain"],
                "aws:RequestTag/ecs-lifecycle:launch-chain": "0:00ff:-:launch",
            }),
            "reference",
        ),
        "the launch-chain claim on a group's instance",
    ));
    // ami-rollout describes the tasks of an unsteady service to tell whether
    // they run on the groups' instances (rollout::observe::place_services); the
    // integration tests reach that code only for services with no task, so
    // ListTasks is made and DescribeTasks is not.
    out.push((
        Request::new(
            "ami-rollout",
            "ecs:DescribeTasks",
            &ecs("task/prod/0123456789abcdef0123456789abcdef"),
            prod,
            "not reached by a test",
        ),
        "the tasks of an unsteady service",
    ));
    // The reference deployment waits in the queue (WaitMode's default): the
    // wait queue's event source mapping reads it with the function's role.
    // Only terminate-drain's queue mode is reached by an integration test.
    for f in ["TerminateDrain", "LaunchVerify"] {
        let queue = format!("arn:aws:sqs:{REGION}:{ACCOUNT}:ecs-lifecycle-{f}WaitQueue-1A2B3C");
        let function = if f == "TerminateDrain" {
            "terminate-drain"
        } else {
            "launch-verify"
        };
        for action in [
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:GetQueueAttributes",
        ] {
            out.push((
                Request::new(
                    function,
                    action,
                    &queue,
                    json!({}),
                    "Lambda (wait queue's event source mapping)",
                ),
                "the wait queue's event source mapping",
            ));
        }
    }
    out
}

// ---------------------------------------------------------------- the check

/// Findings of one evaluation, and the per-function table.
#[derive(Debug, Default)]
struct Report {
    failures: Vec<String>,
    table: String,
}

/// What the engine said about one function's requests.
#[derive(Debug, Default)]
struct Tally {
    /// Requests made: allowed, denied.
    allowed: usize,
    denied: usize,
    /// The must-deny table: denied, allowed.
    deny_denied: usize,
    deny_allowed: usize,
    /// Actions of allowed requests.
    used: BTreeSet<String>,
    /// (action, via) -> (distinct requests, the Sids that allowed them or the denial).
    rows: BTreeMap<(String, String), (usize, String)>,
}

/// Evaluates the made requests (each with the policy it runs under) and the
/// deny and allow tables, and finds unused grants.
fn evaluate(
    work: &Path,
    policies: &BTreeMap<String, Value>,
    made: &[(String, Request)],
    denied: &[(String, Request, &str)],
    allowed_too: &[(String, Request, &str)],
) -> Report {
    let mut all: Vec<(String, &Request)> = made.iter().map(|(p, r)| (p.clone(), r)).collect();
    all.extend(denied.iter().map(|(p, r, _)| (p.clone(), r)));
    all.extend(allowed_too.iter().map(|(p, r, _)| (p.clone(), r)));
    let v = simulate(work, policies, &all);
    let mut report = Report::default();
    let verdict = |i: usize| &v.results[i];
    let mut per: BTreeMap<String, Tally> = BTreeMap::new();
    for (i, (_, r)) in made.iter().enumerate() {
        let (decision, sids, note) = verdict(i);
        let e = per.entry(r.function.clone()).or_default();
        let ok = decision == "Allowed";
        if ok {
            e.allowed += 1;
            e.used.insert(r.action.clone());
        } else {
            e.denied += 1;
            report.failures.push(format!(
                "{}: {} {} {} ({}) was made and is {decision}{}",
                r.function,
                r.action,
                r.resource,
                r.context,
                r.via,
                if note.is_empty() {
                    String::new()
                } else {
                    format!(": {note}")
                }
            ));
        }
        let row = e
            .rows
            .entry((r.action.clone(), r.via.clone()))
            .or_insert((0, String::new()));
        row.0 += 1;
        if row.1.is_empty() || !ok {
            row.1 = if ok {
                sids.join(", ")
            } else {
                format!("**{decision}**")
            };
        }
    }
    let base = made.len();
    for (j, (_, r, why)) in denied.iter().enumerate() {
        let (decision, sids, _) = verdict(base + j);
        let e = per.entry(r.function.clone()).or_default();
        if decision == "Allowed" {
            e.deny_allowed += 1;
            report.failures.push(format!(
                "{}: {} {} {} must be denied ({why}) and is allowed by {}",
                r.function,
                r.action,
                r.resource,
                r.context,
                sids.join(", ")
            ));
        } else {
            e.deny_denied += 1;
        }
    }
    let base = base + denied.len();
    for (j, (_, r, why)) in allowed_too.iter().enumerate() {
        let (decision, sids, note) = verdict(base + j);
        if decision == "Allowed" {
            let e = per.entry(r.function.clone()).or_default();
            e.used.insert(r.action.clone());
            let row = e
                .rows
                .entry((r.action.clone(), r.via.clone()))
                .or_insert((0, String::new()));
            row.0 += 1;
            row.1 = sids.join(", ");
        } else {
            report.failures.push(format!(
                "{}: {} {} must be allowed ({why}) and is {decision}{}",
                r.function,
                r.action,
                r.resource,
                if note.is_empty() {
                    String::new()
                } else {
                    format!(": {note}")
                }
            ));
        }
    }
    // Unused grants: an action a role's policies grant that no allowed request used.
    let mut table = String::from(
        "| function | requests made: allowed | denied | must-deny table: denied | allowed | unused grants |\n|---|---|---|---|---|---|\n",
    );
    let mut detail = String::new();
    for (function, role) in ROLES {
        let Some(e) = per.get(function) else { continue };
        let mut unused = BTreeSet::new();
        for (policy, granted) in &v.granted {
            if policy.split('#').next() != Some(role) {
                continue;
            }
            for g in granted {
                if !e.used.iter().any(|a| action_matches(g, a)) {
                    unused.insert(g.clone());
                }
            }
        }
        for g in &unused {
            report.failures.push(format!(
                "{function}: {role} grants {g}, which no allowed request used"
            ));
        }
        let unused_text = if unused.is_empty() {
            "none".to_owned()
        } else {
            unused.iter().cloned().collect::<Vec<_>>().join(", ")
        };
        table.push_str(&format!(
            "| {function} | {} | {} | {} | {} | {unused_text} |\n",
            e.allowed, e.denied, e.deny_denied, e.deny_allowed
        ));
        detail.push_str(&format!(
            "\n{function} ({role}): distinct requests per action\n"
        ));
        for ((action, via), (n, sids)) in &e.rows {
            detail.push_str(&format!("  {action:<48} {n:>5}  {via:<38} {sids}\n"));
        }
    }
    report.table = table + &detail;
    report
}

/// The directory the integration tests recorded into.
fn record_dir() -> PathBuf {
    std::env::var_os(testkit::IAM_RECORD_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("iam-requests"))
}

#[test]
#[ignore = "needs the integration tests' recording: scripts/test runs it after them"]
fn the_roles_allow_what_the_functions_do_and_nothing_else() {
    let dir = record_dir();
    let rec = read_recording(&dir);
    assert!(
        !rec.requests.is_empty(),
        "{}: no request recorded",
        dir.display()
    );
    let work = dir.with_file_name("iam-check");
    let mut policies: BTreeMap<String, Value> = BTreeMap::new();
    let mut by_policy_text: BTreeMap<String, String> = BTreeMap::new();
    let mut made: BTreeSet<(String, Request)> = BTreeSet::new();
    let mut functions_seen = BTreeSet::new();
    let mut skipped = Vec::new();
    for (key, lines) in &rec.requests {
        let (function, config) = rec
            .deployments
            .get(key)
            .unwrap_or_else(|| panic!("requests of {key}, which no deployment names"));
        functions_seen.insert(function.clone());
        let hooks: BTreeSet<(String, String)> = lines
            .iter()
            .flat_map(|l| l["hooks"].as_array().cloned().unwrap_or_default())
            .map(|h| {
                (
                    h["group"].as_str().unwrap_or_default().to_owned(),
                    h["target"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        if !expressible(config) {
            skipped.push(format!(
                "{function} {config:?}: {} request lines",
                lines.len()
            ));
            continue;
        }
        let mut passed = BTreeSet::new();
        let mut calls = Vec::new();
        for l in lines {
            for c in l["checks"].as_array().unwrap() {
                let action = c["action"].as_str().unwrap();
                let resource = c["resource"].as_str().unwrap();
                if action == "iam:PassRole" {
                    passed.insert(resource.rsplit('/').next().unwrap().to_owned());
                }
                let via = c["via"]
                    .as_str()
                    .map_or_else(|| "call".to_owned(), |v| format!("as the caller of {v}"));
                calls.push(Request::new(
                    function,
                    action,
                    resource,
                    c["context"].clone(),
                    &via,
                ));
            }
        }
        let d = deployment_for(function, config, &hooks, &passed);
        let role = role_of(function);
        let policy = d.policy(role);
        let text = policy.to_string();
        let n = by_policy_text.len();
        let name = by_policy_text
            .entry(text)
            .or_insert_with(|| format!("{role}#{n}"))
            .clone();
        policies.insert(name.clone(), policy);
        let implied = on_its_behalf(function, &d, &calls);
        for r in calls.into_iter().chain(implied) {
            made.insert((name.clone(), r));
        }
    }
    for (function, _) in ROLES {
        assert!(
            functions_seen.contains(function),
            "no request of {function} was recorded"
        );
    }
    // The tables, against the reference deployment.
    let reference = reference_deployment();
    let mut tables = Vec::new();
    for (r, why) in must_be_denied() {
        let role = role_of(&r.function);
        let name = format!("{role}#reference");
        policies
            .entry(name.clone())
            .or_insert_with(|| reference.policy(role));
        tables.push((name, r, why));
    }
    let mut also = Vec::new();
    for (r, why) in must_be_allowed_too() {
        let name = format!("{}#reference", role_of(&r.function));
        also.push((name, r, why));
    }
    let made: Vec<(String, Request)> = made.into_iter().collect();
    let report = evaluate(&work, &policies, &made, &tables, &also);
    println!(
        "IAM simulation ({} recorded request lines, {} distinct requests under {} resolved policies):\n{}",
        rec.requests.values().map(Vec::len).sum::<usize>(),
        made.len(),
        policies.len(),
        report.table
    );
    if !skipped.is_empty() {
        println!(
            "Not evaluated (a configuration the template cannot give, no single CLUSTER_NAME):\n  {}",
            skipped.join("\n  ")
        );
    }
    std::fs::write(work.join("table.md"), &report.table).unwrap();
    let mut failures = report.failures;
    // parliament over the reference deployment's resolved policies.
    failures.extend(lint_with_parliament(&work, &reference));
    assert!(
        failures.is_empty(),
        "IAM simulation:\n{}",
        failures.join("\n")
    );
}

/// parliament findings accepted, each with why it is not a problem: (role,
/// issue, action, the resource format parliament wanted in the statement).
/// parliament wants every resource type an action has in each statement that
/// grants it; these statements are split on purpose, so that a condition
/// applies to one resource type only.
const PARLIAMENT_ACCEPTED: [(&str, &str, &str, &str, &str); 7] = [
    (
        "LaunchVerifyRole",
        "RESOURCE_MISMATCH",
        "ssm:SendCommand",
        "arn:*:ssm:*:*:document/*",
        "OnInstancesOfTheGroupsOnly: the instances' statement, its tag condition for instances only; the document is RunTheDiagnosticDocument",
    ),
    (
        "AmiRolloutRole",
        "RESOURCE_MISMATCH",
        "ssm:GetParameter",
        "arn:*:ssm:*:*:parameter/*",
        "AWS's public parameters have no account in their ARN (arn:aws:ssm:<region>::parameter/aws/service/...)",
    ),
    (
        "AmiRolloutRole",
        "RESOURCE_MISMATCH",
        "ec2:RunInstances",
        "arn:*:ec2:*::image/*",
        "LaunchThroughTheTaggedLaunchTemplatesOnly: the tag condition is for the launch template only; the launch's other resources are WhatALaunchThroughALaunchTemplateUses",
    ),
    (
        "AmiRolloutRole",
        "RESOURCE_MISMATCH",
        "ec2:RunInstances",
        "arn:*:ec2:*:*:instance/*",
        "as above",
    ),
    (
        "AmiRolloutRole",
        "RESOURCE_MISMATCH",
        "ec2:RunInstances",
        "arn:*:ec2:*:*:network-interface/*",
        "as above",
    ),
    (
        "AmiRolloutRole",
        "RESOURCE_MISMATCH",
        "ec2:RunInstances",
        "arn:*:ec2:*:*:security-group/*",
        "as above",
    ),
    (
        "AmiRolloutRole",
        "RESOURCE_MISMATCH",
        "ec2:RunInstances",
        "arn:*:ec2:*:*:subnet/*",
        "as above",
    ),
];

/// parliament (PyPI, in .venv/lint) over each role's resolved policy: its
/// findings other than [`PARLIAMENT_ACCEPTED`], and accepted ones it no
/// longer finds (the list must stay true).
fn lint_with_parliament(work: &Path, d: &Deployment) -> Vec<String> {
    let parliament = root().join(".venv/lint/bin/parliament");
    let mut findings = Vec::new();
    let mut seen = BTreeSet::new();
    for (_, role) in ROLES.iter().chain(&[("hook", "LifecycleHookRole")]) {
        let path = work.join(format!("{role}.json"));
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&d.policy(role)).unwrap(),
        )
        .unwrap();
        // parliament reads the policy from stdin when stdin is not a terminal
        // (and then refuses --file).
        let out = Command::new(&parliament)
            .arg("--json")
            .stdin(std::fs::File::open(&path).unwrap())
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "{}: {e} (scripts/setup-venv.sh installs it)",
                    parliament.display()
                )
            });
        if !out.status.success() && out.stdout.is_empty() {
            findings.push(format!(
                "parliament, {role}: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        for line in String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty())
        {
            let f: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("parliament said {line}: {e}"));
            let issue = f["issue"].as_str().unwrap_or_default();
            let details = f["detail"]
                .as_array()
                .cloned()
                .unwrap_or_else(|| vec![f["detail"].clone()]);
            for detail in details {
                let action = detail["action"].as_str().unwrap_or_default();
                let format = detail["required_format"].as_str().unwrap_or_default();
                let key = (
                    *role,
                    issue.to_owned(),
                    action.to_owned(),
                    format.to_owned(),
                );
                if PARLIAMENT_ACCEPTED.iter().any(|(r, i, a, fmt, _)| {
                    (*r, *i, *a, *fmt) == (key.0, key.1.as_str(), key.2.as_str(), key.3.as_str())
                }) {
                    seen.insert(key);
                } else {
                    findings.push(format!(
                        "parliament, {role}: {issue} {} {detail}",
                        f["title"]
                    ));
                }
            }
        }
    }
    for (r, i, a, fmt, why) in PARLIAMENT_ACCEPTED {
        if !seen.contains(&(r, i.to_owned(), a.to_owned(), fmt.to_owned())) {
            findings.push(format!("parliament no longer finds the accepted {r} {i} {a} {fmt} ({why}): remove it from PARLIAMENT_ACCEPTED"));
        }
    }
    findings
}

// ---------------------------------------------------------------- the check can fail

fn synthetic(function: &str, action: &str, resource: &str, context: Value) -> Request {
    Request::new(function, action, resource, context, "call")
}

/// A role that lacks a grant its function uses is a failure; so is a grant no
/// request uses, and a request the deny table lists that the role allows.
#[test]
fn the_check_finds_a_missing_grant_an_unused_grant_and_a_wrong_allow() {
    let work = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("iam-check-synthetic");
    let policy = json!({"Version": "2012-10-17", "Statement": [
        {"Sid": "Read", "Effect": "Allow", "Action": ["ecs:ListContainerInstances", "autoscaling:CancelInstanceRefresh"],
         "Resource": "arn:aws:ecs:us-east-1:123456789012:cluster/*"},
    ]});
    let policies = BTreeMap::from([("TerminateDrainRole#0".to_owned(), policy)]);
    let made = vec![
        (
            "TerminateDrainRole#0".to_owned(),
            synthetic(
                "terminate-drain",
                "ecs:ListContainerInstances",
                "arn:aws:ecs:us-east-1:123456789012:cluster/prod",
                json!({}),
            ),
        ),
        (
            "TerminateDrainRole#0".to_owned(),
            synthetic(
                "terminate-drain",
                "ecs:DescribeContainerInstances",
                "arn:aws:ecs:us-east-1:123456789012:container-instance/prod/abc",
                json!({"ecs:cluster": "arn:aws:ecs:us-east-1:123456789012:cluster/prod"}),
            ),
        ),
    ];
    let denied = vec![(
        "TerminateDrainRole#0".to_owned(),
        synthetic(
            "terminate-drain",
            "ecs:ListContainerInstances",
            "arn:aws:ecs:us-east-1:123456789012:cluster/other",
            json!({}),
        ),
        "another cluster",
    )];
    let report = evaluate(&work, &policies, &made, &denied, &[]);
    let text = report.failures.join("\n");
    assert_eq!(report.failures.len(), 3, "{text}");
    assert!(
        text.contains("ecs:DescribeContainerInstances") && text.contains("is ImplicitlyDenied"),
        "{text}"
    );
    assert!(
        text.contains("grants autoscaling:CancelInstanceRefresh, which no allowed request used"),
        "{text}"
    );
    assert!(
        text.contains("cluster/other") && text.contains("must be denied"),
        "{text}"
    );
    assert!(
        report.table.contains("| terminate-drain | 1 | 1 | 0 | 1 |"),
        "{}",
        report.table
    );
}

/// The roles as the template resolves them for the reference deployment: the
/// legacy service ARN is allowed, and every deny-table request denied.
#[test]
fn the_reference_deployment_denies_the_deny_table() {
    let work = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("iam-check-reference");
    let d = reference_deployment();
    let mut policies = BTreeMap::new();
    let mut denied = Vec::new();
    for (r, why) in must_be_denied() {
        let name = format!("{}#reference", role_of(&r.function));
        policies
            .entry(name.clone())
            .or_insert_with(|| d.policy(role_of(&r.function)));
        denied.push((name, r, why));
    }
    let also: Vec<(String, Request, &str)> = must_be_allowed_too()
        .into_iter()
        .map(|(r, why)| (format!("{}#reference", role_of(&r.function)), r, why))
        .collect();
    let report = evaluate(&work, &policies, &[], &denied, &also);
    let wrong: Vec<&String> = report
        .failures
        .iter()
        .filter(|f| !f.contains("which no allowed request used"))
        .collect();
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn action_patterns() {
    assert!(action_matches(
        "kms:GenerateDataKey*",
        "kms:GenerateDataKey"
    ));
    assert!(action_matches("ecs:StopTask", "ecs:stoptask"));
    assert!(!action_matches("ecs:StopTask", "ecs:StopTasks"));
    assert!(!action_matches("kms:GenerateDataKey*", "kms:Decrypt"));
}
