//! The AMI a rollout rolls to: reading it from the parameter, and checking it
//! before a rollout changes anything ([`vet`]).

use serde::Serialize;

use crate::model::{Image, InstanceTypeInfo};
use crate::rollout::step::Step;
use crate::rollout::view::GroupView;

/// `ami-` followed by 8 or 17 hex digits.
pub fn is_ami_id(s: &str) -> bool {
    s.strip_prefix("ami-").is_some_and(|hex| {
        (hex.len() == 8 || hex.len() == 17) && hex.chars().all(|c| c.is_ascii_hexdigit())
    })
}

/// The AMI id in a parameter value: AWS's ECS-optimized `recommended` JSON (its
/// `image_id`) or a plain AMI id.
pub fn ami_from_parameter(value: &str) -> Result<String, String> {
    let value = value.trim();
    if is_ami_id(value) {
        return Ok(value.to_owned());
    }
    let json: serde_json::Value = serde_json::from_str(value)
        .map_err(|_| format!("is neither an AMI id nor JSON: {:.80}", value))?;
    match json.get("image_id").and_then(|v| v.as_str()) {
        Some(id) if is_ami_id(id) => Ok(id.to_owned()),
        Some(id) => Err(format!("has image_id {id:?}, which is not an AMI id")),
        None => Err("is JSON without an image_id".into()),
    }
}

/// What the AMI of a rollout is checked against ([`vet`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageFacts {
    /// DescribeImages of the target (and of a refused AMI, if the group's tag
    /// names another one).
    pub images: Vec<Image>,
    /// DescribeInstanceTypes of the group's instance type.
    pub instance_types: Vec<InstanceTypeInfo>,
}

/// A check of the AMI before a rollout ([`vet`]), as [`Step::Refused`] and
/// its log line name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Check {
    /// DescribeImages knows it.
    #[serde(rename = "exists")]
    Exists,
    /// It is `available`.
    #[serde(rename = "state")]
    State,
    /// Amazon, the group's account or an allowed owner owns it.
    #[serde(rename = "owner")]
    Owner,
    /// The group's instance type is known.
    #[serde(rename = "instance type")]
    InstanceType,
    /// Its architecture fits the group's instance type.
    #[serde(rename = "architecture")]
    Architecture,
}

impl Check {
    pub fn as_str(self) -> &'static str {
        match self {
            Check::Exists => "exists",
            Check::State => "state",
            Check::Owner => "owner",
            Check::InstanceType => "instance type",
            Check::Architecture => "architecture",
        }
    }
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A check the AMI failed: which, the value seen, and the sentence that says
/// so (naming the AMI and the group).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub check: Check,
    pub seen: String,
    pub why: String,
}

impl Rejection {
    /// The step that refuses the rollout.
    pub fn into_step(self) -> Step {
        Step::Refused {
            check: self.check,
            seen: self.seen,
            why: self.why,
        }
    }
}

/// Checks the AMI before a rollout changes anything: it exists, is
/// `available`, is owned by Amazon, the group's account or an owner of
/// `ALLOWED_AMI_OWNERS`, and its architecture fits the group's instance type.
/// `Some` is the first check it fails, with the AMI, the check and what was
/// seen; `None` when it passes them all.
pub fn vet(
    view: &GroupView,
    target: &str,
    facts: &ImageFacts,
    allowed_owners: &[String],
) -> Option<Rejection> {
    let reject = |check: Check, seen: String, detail: String| Rejection {
        check,
        why: format!(
            "AMI {target} refused for group {} ({check} check, seen {seen}): {detail}; nothing was changed",
            view.name
        ),
        seen,
    };
    let Some(image) = facts.images.iter().find(|i| i.id == target) else {
        return Some(reject(
            Check::Exists,
            "not found".into(),
            "DescribeImages does not know it (deregistered, or not shared with this account)"
                .into(),
        ));
    };
    if !image.state.is_available() {
        return Some(reject(
            Check::State,
            image.state.to_string(),
            format!("its state is {}, not available", image.state),
        ));
    }
    if let Some((seen, detail)) = foreign_owner(view, image, allowed_owners) {
        return Some(reject(Check::Owner, seen, detail));
    }
    let (check, seen, detail) = unfit_architecture(view, image, facts)?;
    Some(reject(check, seen, detail))
}

/// `(seen, detail)` when the image's owner is neither Amazon, the group's
/// account nor an allowed owner.
fn foreign_owner(
    view: &GroupView,
    image: &Image,
    allowed_owners: &[String],
) -> Option<(String, String)> {
    let owner = image.owner_id.as_deref().unwrap_or("unknown");
    let amazon = image.owner_alias.as_deref() == Some("amazon");
    let own = view.account_id.as_deref().is_some_and(|a| a == owner);
    if amazon || own || allowed_owners.iter().any(|o| o == owner) {
        return None;
    }
    let seen = match image.owner_alias.as_deref() {
        Some(alias) => format!("{owner} ({alias})"),
        None => owner.to_owned(),
    };
    let detail = format!(
        "its owner is {seen}: neither Amazon, this account{} nor one of ALLOWED_AMI_OWNERS",
        view.account_id
            .as_deref()
            .map(|a| format!(" ({a})"))
            .unwrap_or_default()
    );
    Some((seen, detail))
}

/// `(check, seen, detail)` when the image's architecture cannot be checked
/// against the group's instance type, or does not fit it.
fn unfit_architecture(
    view: &GroupView,
    image: &Image,
    facts: &ImageFacts,
) -> Option<(Check, String, String)> {
    let template = view.template.as_ref().ok()?;
    let Some(instance_type) = template.instance_type.as_deref() else {
        return Some((
            Check::InstanceType,
            "none".into(),
            format!(
                "launch template {} version {} names no instance type to check its architecture against",
                template.id, template.number
            ),
        ));
    };
    let Some(info) = facts
        .instance_types
        .iter()
        .find(|t| t.instance_type == instance_type)
    else {
        return Some((
            Check::InstanceType,
            instance_type.to_owned(),
            format!(
                "DescribeInstanceTypes does not know the group's instance type {instance_type}"
            ),
        ));
    };
    let arch = image.architecture.as_deref().unwrap_or("unknown");
    (!info.architectures.iter().any(|a| a == arch)).then(|| {
        (
            Check::Architecture,
            arch.to_owned(),
            format!(
                "its architecture is {arch}, but the group's instance type {instance_type} runs {}",
                info.architectures.join(", ")
            ),
        )
    })
}

/// Whether the target of a rollout that is about to start lifts the refusal
/// of another AMI: it was created after it, or the refused AMI is gone.
pub fn newer_than_refused(view: &GroupView, target: &str, facts: &ImageFacts) -> bool {
    let Some(Ok(refusal)) = &view.refused else {
        return false;
    };
    if refusal.ami == target {
        return false;
    }
    let created = |id: &str| {
        facts
            .images
            .iter()
            .find(|i| i.id == id)
            .map(|i| i.created_ms)
    };
    match (created(target), created(&refusal.ami)) {
        (_, None) => true,
        (Some(Some(t)), Some(Some(r))) => t > r,
        _ => false,
    }
}

#[cfg(test)]
#[path = "ami_tests.rs"]
mod tests;
