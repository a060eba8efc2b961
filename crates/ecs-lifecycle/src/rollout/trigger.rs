//! What started an ami-rollout invocation: the AMI parameter changed, the
//! schedule fired, or someone invoked it by hand.

use serde_json::{Map, Value};

use crate::error::EventError;
use crate::rollout::ami::is_ami_id;
use crate::rollout::step::Intent;

/// The answer to an event that needs no AWS call (acknowledged and ignored), or
/// `None` when the event needs the rollout's clients. The binary asks this before
/// it builds them, so an ignored event costs no SDK set-up (TLS roots included).
pub fn answer_without_clients(event: &Value, parameter: &str) -> Option<Value> {
    match parse_trigger(event, parameter) {
        Ok(Trigger::Ignore(reason)) => Some(ignored(&reason)),
        _ => None,
    }
}

/// Logs and answers an event that asks for nothing.
pub fn ignored(reason: &str) -> Value {
    tracing::info!(reason = %reason, "ignored event");
    serde_json::json!({ "outcome": "ignored", "reason": reason })
}

/// What an event asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    Run {
        intent: Intent,
        /// An AMI given by hand instead of the parameter's.
        ami: Option<String>,
    },
    /// Acknowledged, nothing to do (why).
    Ignore(String),
}

/// Reads an event: the EventBridge `Parameter Store Change` of the AMI
/// parameter, an EventBridge `Scheduled Event`, or `{"action": ...}` (`start`
/// with optional `ami_id` and `force`, `watch`, `status`, `rollback` with
/// optional `reason`).
pub fn parse_trigger(event: &Value, parameter: &str) -> Result<Trigger, EventError> {
    let Some(obj) = event.as_object() else {
        return Err(EventError::new("event", "is not a JSON object"));
    };
    match obj.get("detail-type") {
        Some(detail_type) => eventbridge(obj, detail_type.as_str().unwrap_or_default(), parameter),
        None => action(obj),
    }
}

/// An EventBridge event: the AMI parameter's change, or the schedule.
fn eventbridge(
    obj: &Map<String, Value>,
    detail_type: &str,
    parameter: &str,
) -> Result<Trigger, EventError> {
    match detail_type {
        "Parameter Store Change" => {
            let detail = obj
                .get("detail")
                .ok_or_else(|| EventError::new("detail", "is missing"))?;
            let name = detail
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| EventError::new("detail.name", "is missing"))?;
            let operation = detail
                .get("operation")
                .and_then(Value::as_str)
                .unwrap_or("Update");
            if name != parameter {
                Ok(Trigger::Ignore(format!(
                    "parameter {name} is not AMI_PARAMETER_NAME ({parameter})"
                )))
            } else if operation == "Delete" {
                Ok(Trigger::Ignore(format!("parameter {name} was deleted")))
            } else {
                Ok(Trigger::Run {
                    intent: Intent::Start { force: false },
                    ami: None,
                })
            }
        }
        "Scheduled Event" => Ok(Trigger::Run {
            intent: Intent::Watch,
            ami: None,
        }),
        other => Err(EventError::new(
            "detail-type",
            format!(
                "is {other:?}; ami-rollout takes \"Parameter Store Change\" or \"Scheduled Event\""
            ),
        )),
    }
}

/// `{"action": ...}`, an invocation by hand.
fn action(obj: &Map<String, Value>) -> Result<Trigger, EventError> {
    let action = obj
        .get("action")
        .ok_or_else(|| {
            EventError::new(
                "action",
                "is missing (expected an EventBridge event or {\"action\": \"start\" | \"watch\" | \"status\" | \"rollback\"})",
            )
        })?
        .as_str()
        .ok_or_else(|| EventError::new("action", "is not a string"))?;
    let flag = |key: &str| -> Result<bool, EventError> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(EventError::new(key, "is not true or false")),
        }
    };
    match action {
        "start" => {
            let ami = match obj.get("ami_id") {
                None | Some(Value::Null) => None,
                Some(Value::String(id)) if is_ami_id(id) => Some(id.clone()),
                Some(other) => {
                    return Err(EventError::new(
                        "ami_id",
                        format!("{other} is not an AMI id (ami- and 8 or 17 hex digits)"),
                    ));
                }
            };
            Ok(Trigger::Run {
                intent: Intent::Start {
                    force: flag("force")?,
                },
                ami,
            })
        }
        "watch" => Ok(Trigger::Run {
            intent: Intent::Watch,
            ami: None,
        }),
        "status" => Ok(Trigger::Run {
            intent: Intent::Status,
            ami: None,
        }),
        "rollback" => Ok(Trigger::Run {
            intent: Intent::Rollback {
                reason: match obj.get("reason") {
                    None | Some(Value::Null) => "manual rollback".to_owned(),
                    Some(Value::String(s)) => s.clone(),
                    Some(_) => return Err(EventError::new("reason", "is not a string")),
                },
            },
            ami: None,
        }),
        other => Err(EventError::new(
            "action",
            format!("is {other:?}; expected start, watch, status or rollback"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const PARAM: &str = "/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended";

    #[test]
    fn events_that_ask_for_nothing_are_answered_without_clients() {
        let change = |name: &str| {
            json!({
                "version": "0", "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
                "detail-type": "Parameter Store Change", "source": "aws.ssm",
                "account": "123456789012", "time": "2026-11-20T12:00:00Z", "region": "us-east-1",
                "resources": [], "detail": { "name": name, "type": "String", "operation": "Update" }
            })
        };
        let answer = answer_without_clients(&change("/other/parameter"), PARAM).unwrap();
        assert_eq!(answer["outcome"], "ignored");
        assert_eq!(answer_without_clients(&change(PARAM), PARAM), None);
        assert_eq!(
            answer_without_clients(&json!({"action": "watch"}), PARAM),
            None
        );
        // A bad event is for the roller to reject, with its error.
        assert_eq!(answer_without_clients(&json!({"action": 3}), PARAM), None);
    }

    #[test]
    fn parameter_store_change_of_our_parameter_starts() {
        let event = json!({
            "version": "0", "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
            "detail-type": "Parameter Store Change", "source": "aws.ssm",
            "account": "123456789012", "time": "2026-11-20T12:00:00Z", "region": "us-east-1",
            "resources": ["arn:aws:ssm:us-east-1::parameter/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended"],
            "detail": { "name": PARAM, "type": "String", "operation": "Update" }
        });
        assert_eq!(
            parse_trigger(&event, PARAM).unwrap(),
            Trigger::Run {
                intent: Intent::Start { force: false },
                ami: None
            }
        );
        assert!(matches!(
            parse_trigger(&event, "/other").unwrap(),
            Trigger::Ignore(_)
        ));
        let mut deleted = event.clone();
        deleted["detail"]["operation"] = json!("Delete");
        assert!(matches!(
            parse_trigger(&deleted, PARAM).unwrap(),
            Trigger::Ignore(_)
        ));
        let mut nameless = event;
        nameless["detail"] = json!({});
        assert_eq!(
            parse_trigger(&nameless, PARAM).unwrap_err().context,
            "detail.name"
        );
    }

    #[test]
    fn manual_actions() {
        let t = |v: Value| parse_trigger(&v, PARAM);
        assert_eq!(
            t(json!({"action": "start", "ami_id": "ami-0123456789abcdef0", "force": true}))
                .unwrap(),
            Trigger::Run {
                intent: Intent::Start { force: true },
                ami: Some("ami-0123456789abcdef0".into())
            }
        );
        assert_eq!(
            t(json!({"action": "watch"})).unwrap(),
            Trigger::Run {
                intent: Intent::Watch,
                ami: None
            }
        );
        assert_eq!(
            t(json!({"action": "status"})).unwrap(),
            Trigger::Run {
                intent: Intent::Status,
                ami: None
            }
        );
        assert_eq!(
            t(json!({"action": "rollback", "reason": "p99 latency"})).unwrap(),
            Trigger::Run {
                intent: Intent::Rollback {
                    reason: "p99 latency".into()
                },
                ami: None
            }
        );
        assert_eq!(
            t(json!({"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}))
                .unwrap(),
            Trigger::Run {
                intent: Intent::Watch,
                ami: None
            }
        );
    }

    #[test]
    fn bad_input_names_the_field() {
        let t = |v: Value| parse_trigger(&v, PARAM).unwrap_err().context;
        assert_eq!(t(json!([1])), "event");
        assert_eq!(t(json!({})), "action");
        assert_eq!(t(json!({"action": 3})), "action");
        assert_eq!(t(json!({"action": "deploy"})), "action");
        assert_eq!(t(json!({"action": "start", "ami_id": "ubuntu"})), "ami_id");
        assert_eq!(t(json!({"action": "start", "force": "yes"})), "force");
        assert_eq!(t(json!({"action": "rollback", "reason": 1})), "reason");
        assert_eq!(
            t(json!({"detail-type": "EC2 Instance State-change Notification"})),
            "detail-type"
        );
    }
}
