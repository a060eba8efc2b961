//! The EventBridge event launch-verify takes besides its lifecycle actions:
//! `EC2 Instance Launch Successful`, for groups without a launch hook (nothing
//! waits on it: the orphan check runs after the fact).

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use serde_json::Value;

use crate::error::EventError;
use crate::hook::event::{WorkflowEvent, event_time};
use crate::model::{InstanceId, is_instance_id};

pub const LAUNCH_SUCCESSFUL_DETAIL_TYPE: &str = "EC2 Instance Launch Successful";

/// An `EC2 Instance Launch Successful` event: no lifecycle hook waits on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchSuccessful {
    pub asg: String,
    pub instance_id: InstanceId,
    /// When the launch succeeded (the event's `time`, RFC 3339).
    pub time: Option<String>,
    /// `EC2`, or `WarmPool` when the instance leaves the warm pool.
    pub origin: Option<String>,
    /// `AutoScalingGroup`, or `WarmPool` when the instance launches into the warm
    /// pool (it will not join ECS now: not an orphan).
    pub destination: Option<String>,
}

impl WorkflowEvent for LaunchSuccessful {
    fn parse(eb: &EventBridgeEvent<Value>) -> Option<Result<Self, EventError>> {
        if (eb.source.as_str(), eb.detail_type.as_str())
            != ("aws.autoscaling", LAUNCH_SUCCESSFUL_DETAIL_TYPE)
        {
            return None;
        }
        let field = |k: &str| eb.detail.get(k).and_then(Value::as_str).map(str::to_owned);
        Some(
            match (field("AutoScalingGroupName"), field("EC2InstanceId")) {
                (Some(asg), Some(id)) if is_instance_id(&id) => Ok(LaunchSuccessful {
                    asg,
                    instance_id: id.into(),
                    time: event_time(eb),
                    origin: field("Origin"),
                    destination: field("Destination"),
                }),
                (None, _) => Err(EventError::new(
                    "detail",
                    "missing field AutoScalingGroupName",
                )),
                (_, None) => Err(EventError::new("detail", "missing field EC2InstanceId")),
                (_, Some(id)) => Err(EventError::new(
                    "detail",
                    format!("field EC2InstanceId is not an EC2 instance id: {id:?}"),
                )),
            },
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;
    use crate::hook::event::{Message, Record, parse_event};
    use crate::testing::fixtures::fixture;

    fn only(records: Vec<Record<LaunchSuccessful>>) -> Record<LaunchSuccessful> {
        assert_eq!(records.len(), 1);
        records.into_iter().next().unwrap()
    }

    #[test]
    fn launch_successful() {
        let r = only(
            parse_event::<LaunchSuccessful>(&fixture("eventbridge-launch-successful")).unwrap(),
        );
        assert_eq!(
            r.message,
            Ok(Message::Event(LaunchSuccessful {
                asg: "ecs-fleet-asg".into(),
                instance_id: "i-0a1b2c3d4e5f60718".into(),
                time: Some("2026-11-22T05:02:11.000Z".into()),
                origin: None,
                destination: None,
            }))
        );
        let r = only(
            parse_event::<LaunchSuccessful>(&fixture("eventbridge-launch-successful-warm-pool"))
                .unwrap(),
        );
        let Ok(Message::Event(l)) = &r.message else {
            panic!("{:?}", r.message)
        };
        assert_eq!(
            (l.origin.as_deref(), l.destination.as_deref()),
            (Some("EC2"), Some("WarmPool"))
        );
    }
}
