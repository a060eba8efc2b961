//! The EventBridge events terminate-drain takes besides its lifecycle actions:
//! ECS state changes (a task stopped, a container instance drained) that may end
//! a drain at once, the early warnings that instances will go away (Spot
//! interruption, rebalance recommendation, AWS Health scheduled change), and
//! EC2's state changes that say an instance runs again (the undo of an early
//! drain).

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use serde_json::Value;

use crate::error::EventError;
use crate::hook::event::{WorkflowEvent, event_time};
use crate::model::{
    Cluster, ContainerInstanceArn, Ec2State, InstanceId, InstanceStatus, TaskArn, TaskStatus,
    is_instance_id,
};

/// An event of terminate-drain's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DrainEvent {
    /// `ECS Task State Change` / `ECS Container Instance State Change`.
    Ecs(EcsEvent),
    /// An early warning that instances will go away (Spot, rebalance, maintenance).
    Signal(Signal),
    /// `EC2 Instance State-change Notification`: an instance early-drained may be
    /// back (`running`).
    InstanceState(InstanceStateChange),
}

impl WorkflowEvent for DrainEvent {
    fn parse(eb: &EventBridgeEvent<Value>) -> Option<Result<Self, EventError>> {
        match (eb.source.as_str(), eb.detail_type.as_str()) {
            ("aws.ec2", SPOT_DETAIL_TYPE | REBALANCE_DETAIL_TYPE)
            | ("aws.health", HEALTH_DETAIL_TYPE) => Some(
                parse_signal(&eb.detail_type, &eb.detail, event_time(eb)).map(DrainEvent::Signal),
            ),
            ("aws.ec2", EC2_STATE_DETAIL_TYPE) => {
                Some(parse_state_change(&eb.detail, event_time(eb)).map(DrainEvent::InstanceState))
            }
            ("aws.ecs", detail_type) => {
                Some(parse_ecs_event(detail_type, &eb.detail).map(DrainEvent::Ecs))
            }
            _ => None,
        }
    }
}

pub const SPOT_DETAIL_TYPE: &str = "EC2 Spot Instance Interruption Warning";
pub const REBALANCE_DETAIL_TYPE: &str = "EC2 Instance Rebalance Recommendation";
pub const HEALTH_DETAIL_TYPE: &str = "AWS Health Event";
pub const EC2_STATE_DETAIL_TYPE: &str = "EC2 Instance State-change Notification";

/// EC2's `EC2 Instance State-change Notification` (the template routes only
/// `running` ones to terminate-drain).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceStateChange {
    pub instance_id: InstanceId,
    pub state: Ec2State,
    /// The event's time (RFC 3339): when EC2 saw the instance in `state`.
    pub time: Option<String>,
}

/// EC2's and AWS Health's notices that instances will go away, before Auto Scaling
/// knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// `EC2 Spot Instance Interruption Warning`: two minutes ahead.
    SpotInterruption {
        instance_id: InstanceId,
        /// `terminate`, `stop` or `hibernate`.
        instance_action: String,
        /// The event's time (RFC 3339): the interruption comes two minutes later.
        time: Option<String>,
    },
    /// `EC2 Instance Rebalance Recommendation`: an elevated risk of interruption.
    Rebalance { instance_id: InstanceId },
    /// `AWS Health Event` of service EC2, category `scheduledChange` (retirement,
    /// stop, reboot maintenance), naming the instances affected.
    ScheduledChange {
        event_type_code: String,
        start_time: Option<String>,
        /// The end of the maintenance window, when the event gives one.
        end_time: Option<String>,
        instance_ids: Vec<InstanceId>,
    },
}

pub const ECS_TASK_DETAIL_TYPE: &str = "ECS Task State Change";
pub const ECS_INSTANCE_DETAIL_TYPE: &str = "ECS Container Instance State Change";

/// What an ECS state-change event says about a container instance (the fields a
/// drain acts on; delivery is at least once and unordered, so it only says where
/// to look: the drain observes again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcsEvent {
    pub cluster_arn: Cluster,
    pub container_instance_arn: ContainerInstanceArn,
    pub kind: EcsEventKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EcsEventKind {
    /// A task on the container instance changed; `last_status` is its new status.
    Task {
        task_arn: TaskArn,
        last_status: TaskStatus,
    },
    /// The container instance changed (status, task counts).
    Instance {
        ec2_instance_id: Option<String>,
        status: InstanceStatus,
        running_tasks: i64,
        pending_tasks: i64,
    },
}

impl EcsEvent {
    /// Whether the event can mean that a drain just ended: a task reached STOPPED,
    /// or a DRAINING container instance has no task left running or pending.
    pub fn may_end_a_drain(&self) -> bool {
        match &self.kind {
            EcsEventKind::Task { last_status, .. } => last_status.is_stopped(),
            EcsEventKind::Instance {
                status,
                running_tasks,
                pending_tasks,
                ..
            } => *status == InstanceStatus::Draining && *running_tasks == 0 && *pending_tasks == 0,
        }
    }
}

fn parse_signal(
    detail_type: &str,
    detail: &Value,
    time: Option<String>,
) -> Result<Signal, EventError> {
    let text = |k: &str| detail.get(k).and_then(Value::as_str).map(str::to_owned);
    let instance = |k: &str| match text(k) {
        Some(id) if is_instance_id(&id) => Ok(id),
        Some(id) => Err(EventError::new(
            "detail",
            format!("field {k} is not an EC2 instance id: {id:?}"),
        )),
        None => Err(EventError::new("detail", format!("missing field {k}"))),
    };
    match detail_type {
        SPOT_DETAIL_TYPE => Ok(Signal::SpotInterruption {
            instance_id: instance("instance-id")?.into(),
            instance_action: text("instance-action").unwrap_or_else(|| "terminate".into()),
            time,
        }),
        REBALANCE_DETAIL_TYPE => Ok(Signal::Rebalance {
            instance_id: instance("instance-id")?.into(),
        }),
        _ => {
            let service = text("service").unwrap_or_default();
            let category = text("eventTypeCategory").unwrap_or_default();
            if service != "EC2" || category != "scheduledChange" {
                return Err(EventError::new(
                    "detail",
                    format!(
                        "service {service:?} / eventTypeCategory {category:?}: only EC2 scheduledChange events are handled"
                    ),
                ));
            }
            let instance_ids: Vec<InstanceId> = detail
                .get("affectedEntities")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|e| e.get("entityValue").and_then(Value::as_str))
                        .filter(|v| is_instance_id(v))
                        .map(InstanceId::from)
                        .collect()
                })
                .unwrap_or_default();
            // An event may name no instance at all (a Dedicated Host `h-...`, a
            // volume): nothing of ours to act on, and no error either (an error
            // would be retried, dead-lettered and alarmed on for nothing).
            Ok(Signal::ScheduledChange {
                event_type_code: text("eventTypeCode").unwrap_or_default(),
                start_time: text("startTime"),
                end_time: text("endTime"),
                instance_ids,
            })
        }
    }
}

fn parse_state_change(
    detail: &Value,
    time: Option<String>,
) -> Result<InstanceStateChange, EventError> {
    let text = |k: &str| detail.get(k).and_then(Value::as_str);
    let instance_id = match text("instance-id") {
        Some(id) if is_instance_id(id) => InstanceId::from(id),
        Some(id) => {
            return Err(EventError::new(
                "detail",
                format!("field instance-id is not an EC2 instance id: {id:?}"),
            ));
        }
        None => return Err(EventError::new("detail", "missing field instance-id")),
    };
    let state = text("state").ok_or_else(|| EventError::new("detail", "missing field state"))?;
    Ok(InstanceStateChange {
        instance_id,
        state: Ec2State::parse(state),
        time,
    })
}

fn parse_ecs_event(detail_type: &str, detail: &Value) -> Result<EcsEvent, EventError> {
    let text = |k: &str| detail.get(k).and_then(Value::as_str).map(str::to_owned);
    let need =
        |k: &str| text(k).ok_or_else(|| EventError::new("detail", format!("missing field {k}")));
    match detail_type {
        ECS_TASK_DETAIL_TYPE => Ok(EcsEvent {
            cluster_arn: need("clusterArn")?.into(),
            // Fargate tasks have none: nothing of ours to drain.
            container_instance_arn: need("containerInstanceArn")?.into(),
            kind: EcsEventKind::Task {
                task_arn: need("taskArn")?.into(),
                last_status: TaskStatus::parse(&need("lastStatus")?),
            },
        }),
        ECS_INSTANCE_DETAIL_TYPE => {
            let count = |k: &str| {
                detail
                    .get(k)
                    .and_then(Value::as_i64)
                    .ok_or_else(|| EventError::new("detail", format!("missing number {k}")))
            };
            Ok(EcsEvent {
                cluster_arn: need("clusterArn")?.into(),
                container_instance_arn: need("containerInstanceArn")?.into(),
                kind: EcsEventKind::Instance {
                    ec2_instance_id: text("ec2InstanceId"),
                    status: InstanceStatus::parse(&need("status")?),
                    running_tasks: count("runningTasksCount")?,
                    pending_tasks: count("pendingTasksCount")?,
                },
            })
        }
        other => Err(EventError::new(
            "detail-type",
            format!(
                "unsupported {other:?} from aws.ecs (expected {ECS_TASK_DETAIL_TYPE:?} or {ECS_INSTANCE_DETAIL_TYPE:?})"
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;
    use crate::hook::event::{Message, Record, parse_event};
    use crate::testing::fixtures::fixture;
    use serde_json::json;

    fn only(records: Vec<Record<DrainEvent>>) -> Record<DrainEvent> {
        assert_eq!(records.len(), 1);
        records.into_iter().next().unwrap()
    }

    #[test]
    fn early_warnings() {
        let signal = |name: &str| {
            let r = only(parse_event::<DrainEvent>(&fixture(name)).unwrap());
            match r.message {
                Ok(Message::Event(DrainEvent::Signal(s))) => s,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(
            signal("eventbridge-spot-interruption"),
            Signal::SpotInterruption {
                instance_id: "i-0123456789abcdef0".into(),
                instance_action: "terminate".into(),
                time: Some("2026-11-22T06:00:00.000Z".into()),
            }
        );
        assert_eq!(
            signal("eventbridge-rebalance"),
            Signal::Rebalance {
                instance_id: "i-0123456789abcdef0".into()
            }
        );
        assert_eq!(
            signal("eventbridge-health-retirement"),
            Signal::ScheduledChange {
                event_type_code: "AWS_EC2_INSTANCE_RETIREMENT_SCHEDULED".into(),
                start_time: Some("Mon, 30 Nov 2026 09:00:00 GMT".into()),
                end_time: None,
                instance_ids: vec!["i-0123456789abcdef0".into()],
            }
        );
        // Malformed ones name the field.
        let mut bad = fixture("eventbridge-spot-interruption");
        bad["detail"]["instance-id"] = json!("web-1");
        let r = only(parse_event::<DrainEvent>(&bad).unwrap());
        assert!(
            matches!(&r.message, Err(e) if e.problem.contains("instance-id")),
            "{:?}",
            r.message
        );
        let mut other = fixture("eventbridge-health-retirement");
        other["detail"]["eventTypeCategory"] = json!("issue");
        let r = only(parse_event::<DrainEvent>(&other).unwrap());
        assert!(matches!(&r.message, Err(e) if e.problem.contains("scheduledChange")));
        // A Dedicated Host's event names no instance: read, with nothing to act on.
        let mut host = fixture("eventbridge-health-retirement");
        host["detail"]["affectedEntities"] = json!([{"entityValue": "h-0123456789abcdef0"}]);
        let r = only(parse_event::<DrainEvent>(&host).unwrap());
        assert!(
            matches!(&r.message, Ok(Message::Event(DrainEvent::Signal(Signal::ScheduledChange { instance_ids, .. }))) if instance_ids.is_empty()),
            "{:?}",
            r.message
        );
    }

    #[test]
    fn ec2_state_changes() {
        let r = only(parse_event::<DrainEvent>(&fixture("eventbridge-ec2-running")).unwrap());
        assert_eq!(
            r.message.unwrap(),
            Message::Event(DrainEvent::InstanceState(InstanceStateChange {
                instance_id: "i-0123456789abcdef0".into(),
                state: Ec2State::Running,
                time: Some("2026-11-22T06:40:00.000Z".into()),
            }))
        );
        let mut stopped = fixture("eventbridge-ec2-running");
        stopped["detail"]["state"] = json!("stopped");
        let r = only(parse_event::<DrainEvent>(&stopped).unwrap());
        assert!(
            matches!(&r.message, Ok(Message::Event(DrainEvent::InstanceState(c))) if c.state == Ec2State::Stopped)
        );
        // Malformed: the field is named.
        for (field, value) in [("instance-id", json!("web-1")), ("state", Value::Null)] {
            let mut bad = fixture("eventbridge-ec2-running");
            bad["detail"][field] = value;
            let r = only(parse_event::<DrainEvent>(&bad).unwrap());
            assert!(
                matches!(&r.message, Err(e) if e.problem.contains(field)),
                "{:?}",
                r.message
            );
        }
    }

    #[test]
    fn ecs_state_changes() {
        let r = only(parse_event::<DrainEvent>(&fixture("eventbridge-ecs-task-stopped")).unwrap());
        let Ok(Message::Event(DrainEvent::Ecs(e))) = &r.message else {
            panic!("{:?}", r.message)
        };
        assert_eq!(
            e.cluster_arn,
            "arn:aws:ecs:us-east-1:123456789012:cluster/prod"
        );
        assert!(
            e.container_instance_arn
                .ends_with("/0123456789abcdef0123456789abcdef")
        );
        assert!(matches!(
            &e.kind,
            EcsEventKind::Task { last_status: TaskStatus::Stopped, task_arn } if task_arn.ends_with("9dbd6f1cebef")
        ));
        assert!(e.may_end_a_drain());

        let r =
            only(parse_event::<DrainEvent>(&fixture("eventbridge-ecs-instance-drained")).unwrap());
        let Ok(Message::Event(DrainEvent::Ecs(e))) = &r.message else {
            panic!("{:?}", r.message)
        };
        assert_eq!(
            e.kind,
            EcsEventKind::Instance {
                ec2_instance_id: Some("i-0a1b2c3d4e5f60718".into()),
                status: InstanceStatus::Draining,
                running_tasks: 0,
                pending_tasks: 0,
            }
        );
        assert!(e.may_end_a_drain());

        // A task still running, or an instance with tasks left, cannot end a drain.
        let mut running = fixture("eventbridge-ecs-task-stopped");
        running["detail"]["lastStatus"] = json!("RUNNING");
        let r = only(parse_event::<DrainEvent>(&running).unwrap());
        assert!(
            matches!(&r.message, Ok(Message::Event(DrainEvent::Ecs(e))) if !e.may_end_a_drain())
        );
        let mut busy = fixture("eventbridge-ecs-instance-drained");
        busy["detail"]["runningTasksCount"] = json!(2);
        let r = only(parse_event::<DrainEvent>(&busy).unwrap());
        assert!(
            matches!(&r.message, Ok(Message::Event(DrainEvent::Ecs(e))) if !e.may_end_a_drain())
        );

        // Malformed: the field is named.
        let mut bad = fixture("eventbridge-ecs-task-stopped");
        bad["detail"]
            .as_object_mut()
            .unwrap()
            .remove("containerInstanceArn");
        let r = only(parse_event::<DrainEvent>(&bad).unwrap());
        assert!(
            matches!(&r.message, Err(e) if e.problem.contains("containerInstanceArn")),
            "{:?}",
            r.message
        );
        let mut other = fixture("eventbridge-ecs-task-stopped");
        other["detail-type"] = json!("ECS Deployment State Change");
        let r = only(parse_event::<DrainEvent>(&other).unwrap());
        assert!(matches!(&r.message, Err(e) if e.context == "detail-type"));
    }
}
