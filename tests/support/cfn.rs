//! A reader for the SAM template (`template.yaml`): CloudFormation as data.
//!
//! The template is read with its CloudFormation tags (`!Ref`, `!Sub`, ...), turned
//! into long form, and evaluated for given parameter values by a small resolver of
//! the intrinsic functions it uses (Ref, Fn::Sub, Fn::Select, Fn::Split, Fn::Join,
//! Fn::If, Fn::GetAtt, conditions), after expanding what the transforms do
//! before it: `Fn::ForEach` of AWS::LanguageExtensions in `Resources` (a
//! resource per item of the list, its logical id from `&{Id}` or `${Id}`), and
//! SAM's `Globals` merged into each function. A `CommaDelimitedList` parameter
//! is a list. A reference to a resource resolves to `<Logical>` (`<F.Alias>` for
//! SAM's `!Ref F.Alias` of a function with `AutoPublishAlias`), an attribute to
//! `<Logical.Attr>`, and the pseudo parameters to
//! [`REGION`], [`ACCOUNT`] and [`STACK`]. The template's Rules are checked as
//! CloudFormation checks them: parameters that break one are refused
//! ([`Stack::try_new`]). On top of the resolver: the functions by binary, the
//! identity-based IAM statements, and SNS / EventBridge pattern matching.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a template that does not resolve is a failed test

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{Map, Value, json};

/// What `AWS::Region`, `AWS::AccountId` and `AWS::StackName` resolve to.
pub const REGION: &str = "us-east-1";
pub const ACCOUNT: &str = "123456789012";
pub const STACK: &str = "ecs-lifecycle";

/// The workspace root (the root package's directory).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A file of the workspace, by its path from the root.
pub fn read(path: &str) -> String {
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

/// template.yaml in long form, unresolved.
pub fn template() -> Value {
    let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(&read("template.yaml")).unwrap();
    long_form(yaml)
}

// ---------------------------------------------------------------- resolving

/// The template deployed with some parameter values.
#[derive(Debug)]
pub struct Stack {
    template: Value,
    params: BTreeMap<String, String>,
}

impl Stack {
    /// The template with its parameters' defaults, and these values on top
    /// (each must be a parameter of the template, and together they must keep
    /// the template's Rules: see [`Stack::try_new`]).
    pub fn new(overrides: &[(&str, &str)]) -> Self {
        Self::try_new(overrides)
            .unwrap_or_else(|broken| panic!("CloudFormation refuses these parameters: {broken:?}"))
    }

    /// [`Stack::new`], but parameters that break one of the template's Rules
    /// are an error (each broken assertion's AssertDescription), as
    /// CloudFormation refuses such a stack.
    pub fn try_new(overrides: &[(&str, &str)]) -> Result<Self, Vec<String>> {
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
        let mut stack = Stack { template, params };
        stack.expand_for_each();
        stack.merge_globals();
        let broken = stack.rule_failures();
        if broken.is_empty() {
            Ok(stack)
        } else {
            Err(broken)
        }
    }

    /// AWS::LanguageExtensions' `Fn::ForEach::Name: [Id, collection, {key: body}]`
    /// in `Resources`: one `key` per item, `&{Id}` the item's letters and digits,
    /// `${Id}` and `!Ref Id` the item; two items with one logical id are a
    /// deploy error.
    fn expand_for_each(&mut self) {
        let resources = self.template["Resources"].as_object().unwrap().clone();
        let mut out = Map::new();
        for (key, value) in resources {
            let Some(_) = key.strip_prefix("Fn::ForEach::") else {
                out.insert(key, value);
                continue;
            };
            let loop_ = value.as_array().expect("Fn::ForEach takes a list");
            let id = loop_[0].as_str().unwrap();
            let items = self.eval(&loop_[1]).unwrap();
            for item in items.as_array().expect("a ForEach collection is a list") {
                let item = item.as_str().unwrap();
                for (key_template, body) in loop_[2].as_object().unwrap() {
                    let logical = substitute(key_template, id, item);
                    assert!(
                        logical.chars().all(|c| c.is_ascii_alphanumeric()),
                        "{key}: logical id {logical:?} is not alphanumeric"
                    );
                    let dup = out.insert(logical.clone(), replace_identifier(body, id, item));
                    assert!(
                        dup.is_none(),
                        "{key}: two resources {logical}: a deploy error"
                    );
                }
            }
        }
        self.template["Resources"] = Value::Object(out);
    }

    /// SAM's `Globals.Function` merged into each `AWS::Serverless::Function`:
    /// the function's own value wins; maps (`Tags`, `Environment`) are merged.
    fn merge_globals(&mut self) {
        let Some(globals) = self.template["Globals"]["Function"].as_object().cloned() else {
            return;
        };
        let resources = self.template["Resources"].as_object_mut().unwrap();
        for r in resources.values_mut() {
            if r["Type"] != "AWS::Serverless::Function" {
                continue;
            }
            let props = r["Properties"].as_object_mut().unwrap();
            for (k, g) in &globals {
                match (props.get_mut(k), g) {
                    (None, _) => {
                        props.insert(k.clone(), g.clone());
                    }
                    (Some(Value::Object(own)), Value::Object(g)) => {
                        for (gk, gv) in g {
                            own.entry(gk.clone()).or_insert_with(|| gv.clone());
                        }
                    }
                    (Some(_), _) => {}
                }
            }
        }
    }

    /// A parameter's value as CloudFormation passes it: a list for a
    /// `CommaDelimitedList`, else the string.
    fn parameter(&self, name: &str) -> Option<Value> {
        let v = self.params.get(name)?;
        Some(
            if self.template["Parameters"][name]["Type"] == "CommaDelimitedList" {
                json!(v.split(',').collect::<Vec<_>>())
            } else {
                Value::String(v.clone())
            },
        )
    }

    /// The AssertDescription of every assertion of the template's Rules that
    /// these parameters break (a rule applies when its RuleCondition holds).
    pub fn rule_failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        let Some(rules) = self.template.get("Rules").and_then(Value::as_object) else {
            return out;
        };
        for (name, rule) in rules {
            let applies = rule
                .get("RuleCondition")
                .is_none_or(|c| self.eval(c).unwrap().as_bool().unwrap());
            if !applies {
                continue;
            }
            for a in rule["Assertions"].as_array().unwrap() {
                if !self.eval(&a["Assert"]).unwrap().as_bool().unwrap() {
                    out.push(format!(
                        "{name}: {}",
                        a["AssertDescription"]
                            .as_str()
                            .unwrap_or("(no description)")
                    ));
                }
            }
        }
        out
    }

    /// A condition of the template, evaluated.
    pub fn condition(&self, name: &str) -> bool {
        let c = &self.template["Conditions"][name];
        assert!(!c.is_null(), "no condition {name}");
        self.eval(c).unwrap().as_bool().unwrap()
    }

    fn reference(&self, name: &str) -> Option<Value> {
        if let Some(v) = self.parameter(name) {
            return Some(v);
        }
        if let Some(function) = name.strip_suffix(".Alias") {
            let f = &self.template["Resources"][function];
            assert!(
                f["Type"] == "AWS::Serverless::Function"
                    && f["Properties"].get("AutoPublishAlias").is_some(),
                "Ref {name}: SAM makes an alias only for a function with AutoPublishAlias"
            );
            return Some(json!(format!("<{name}>")));
        }
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
    pub fn resources(&self) -> BTreeMap<String, Value> {
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

    /// The stack's outputs (their `Condition` holds), resolved.
    pub fn outputs(&self) -> BTreeMap<String, Value> {
        let mut out = BTreeMap::new();
        let Some(outputs) = self.template.get("Outputs").and_then(Value::as_object) else {
            return out;
        };
        for (name, o) in outputs {
            if let Some(c) = o.get("Condition")
                && !self.condition(c.as_str().unwrap())
            {
                continue;
            }
            out.insert(name.clone(), self.eval(o).unwrap());
        }
        out
    }

    /// The resources of one `Type`, resolved.
    pub fn of_type(&self, ty: &str) -> BTreeMap<String, Value> {
        self.resources()
            .into_iter()
            .filter(|(_, r)| r["Type"] == ty)
            .collect()
    }
}

/// `${id}` -> the item, `&{id}` -> its ASCII letters and digits.
fn substitute(text: &str, id: &str, item: &str) -> String {
    let alnum: String = item.chars().filter(char::is_ascii_alphanumeric).collect();
    text.replace(&format!("${{{id}}}"), item)
        .replace(&format!("&{{{id}}}"), &alnum)
}

/// A `Fn::ForEach` fragment for one item: `{"Ref": id}` and the identifier in
/// every string.
fn replace_identifier(v: &Value, id: &str, item: &str) -> Value {
    match v {
        Value::Object(m) if m.len() == 1 && m.get("Ref").and_then(Value::as_str) == Some(id) => {
            json!(item)
        }
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (substitute(k, id, item), replace_identifier(v, id, item)))
                .collect(),
        ),
        Value::Array(a) => {
            Value::Array(a.iter().map(|v| replace_identifier(v, id, item)).collect())
        }
        Value::String(s) => Value::String(substitute(s, id, item)),
        other => other.clone(),
    }
}

/// A value that is a string or a list of strings (an IAM `Action` or
/// `Resource`), as a list; absent is empty.
pub fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().map(|x| x.as_str().unwrap().to_owned()).collect(),
        Value::Null => vec![],
        other => panic!("expected a string or a list of strings, got {other}"),
    }
}

/// Function logical id -> (binary, resolved resource): the stack's
/// `AWS::Serverless::Function`s, by their cargo-lambda binary.
pub fn functions(stack: &Stack) -> BTreeMap<String, (String, Value)> {
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

// ---------------------------------------------------------------- IAM

/// The statements of a role's inline policies.
pub fn role_statements(role_properties: &Value) -> Vec<Value> {
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
pub fn identity_statements(stack: &Stack) -> Vec<(String, Value)> {
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

/// A Describe, List or Get action.
pub fn read_only(action: &str) -> bool {
    let verb = action.split_once(':').map(|(_, v)| v).unwrap_or(action);
    ["Describe", "List", "Get"]
        .iter()
        .any(|p| verb.starts_with(p))
}

/// The statements that allow this action.
pub fn statements_with(statements: &[(String, Value)], action: &str) -> Vec<(String, Value)> {
    statements
        .iter()
        .filter(|(_, s)| strings(&s["Action"]).iter().any(|a| a == action))
        .cloned()
        .collect()
}

// ---------------------------------------------------------------- patterns

/// SNS / EventBridge matching for the operators the template uses: exact values
/// in a list, nested keys, `$or`.
pub fn matches(policy: &Value, message: &Value) -> bool {
    policy.as_object().unwrap().iter().all(|(k, want)| {
        if k == "$or" {
            return want.as_array().unwrap().iter().any(|p| matches(p, message));
        }
        let got = message.get(k);
        match want {
            // Exact strings or numbers, or {"exists": bool}.
            Value::Array(allowed) => allowed.iter().any(|a| match a {
                Value::String(_) | Value::Number(_) => got == Some(a),
                Value::Object(o) if o.len() == 1 && o.contains_key("exists") => {
                    o["exists"].as_bool() == Some(got.is_some())
                }
                other => panic!("unsupported matcher in {k}: {other}"),
            }),
            Value::Object(_) => got.is_some_and(|g| matches(want, g)),
            other => panic!("unsupported filter {k}: {other}"),
        }
    })
}
