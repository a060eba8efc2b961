use aws_sdk_autoscaling::Client;

use super::aws_error;
use crate::error::AwsError;
use crate::event::LifecycleAction;
use crate::model::{ActionAck, ActionResult, AsgInstance, HookTimeouts};
use crate::ports::AutoScaling;

/// Auto Scaling's answer once an action is completed or expired. Final.
fn no_active_action(err: &AwsError) -> bool {
    err.code.as_deref() == Some("ValidationError")
        && err.message.contains("No active Lifecycle Action")
}

fn ack(result: Result<(), AwsError>) -> Result<ActionAck, AwsError> {
    match result {
        Ok(()) => Ok(ActionAck::Accepted),
        Err(e) if no_active_action(&e) => Ok(ActionAck::NoActiveAction(e.message)),
        Err(e) => Err(e),
    }
}

impl AutoScaling for Client {
    async fn instance(&self, instance_id: &str) -> Result<Option<AsgInstance>, AwsError> {
        let resp = self
            .describe_auto_scaling_instances()
            .instance_ids(instance_id)
            .send()
            .await
            .map_err(|e| aws_error("autoscaling", "DescribeAutoScalingInstances", &e))?;
        Ok(resp
            .auto_scaling_instances()
            .iter()
            .find(|i| i.instance_id() == Some(instance_id))
            .map(|i| AsgInstance {
                asg: i.auto_scaling_group_name().unwrap_or_default().to_owned(),
                lifecycle_state: i.lifecycle_state().unwrap_or_default().to_owned(),
            }))
    }

    async fn hook_timeouts(&self, asg: &str, hook: &str) -> Result<Option<HookTimeouts>, AwsError> {
        let resp = self
            .describe_lifecycle_hooks()
            .auto_scaling_group_name(asg)
            .lifecycle_hook_names(hook)
            .send()
            .await
            .map_err(|e| aws_error("autoscaling", "DescribeLifecycleHooks", &e))?;
        Ok(resp
            .lifecycle_hooks()
            .iter()
            .find(|h| h.lifecycle_hook_name() == Some(hook))
            .map(|h| {
                let heartbeat = h
                    .heartbeat_timeout()
                    .map_or(HookTimeouts::DEFAULT.heartbeat_timeout_s, |s| {
                        u64::try_from(s).unwrap_or(0)
                    });
                let mut t = HookTimeouts::from_heartbeat(heartbeat);
                if let Some(global) = h.global_timeout().and_then(|g| u64::try_from(g).ok()) {
                    t.global_timeout_s = global;
                }
                t
            }))
    }

    async fn heartbeat(&self, action: &LifecycleAction) -> Result<ActionAck, AwsError> {
        let mut req = self
            .record_lifecycle_action_heartbeat()
            .auto_scaling_group_name(&action.asg)
            .lifecycle_hook_name(&action.hook);
        req = match &action.token {
            Some(token) => req.lifecycle_action_token(token),
            None => req.instance_id(&action.instance_id),
        };
        ack(req
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_error("autoscaling", "RecordLifecycleActionHeartbeat", &e)))
    }

    async fn terminate_instance(&self, instance_id: &str) -> Result<(), AwsError> {
        self.terminate_instance_in_auto_scaling_group()
            .instance_id(instance_id)
            .should_decrement_desired_capacity(false)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_error("autoscaling", "TerminateInstanceInAutoScalingGroup", &e))
    }

    async fn complete(
        &self,
        action: &LifecycleAction,
        result: ActionResult,
    ) -> Result<ActionAck, AwsError> {
        let mut req = self
            .complete_lifecycle_action()
            .auto_scaling_group_name(&action.asg)
            .lifecycle_hook_name(&action.hook)
            .lifecycle_action_result(result.as_str())
            .instance_id(&action.instance_id);
        if let Some(token) = &action.token {
            req = req.lifecycle_action_token(token);
        }
        ack(req
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_error("autoscaling", "CompleteLifecycleAction", &e)))
    }
}
