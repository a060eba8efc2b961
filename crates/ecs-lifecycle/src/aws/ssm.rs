use aws_sdk_ssm::Client;
use aws_sdk_ssm::types::CloudWatchOutputConfig;

use super::aws_error;
use crate::error::AwsError;
use crate::model::{CommandInvocation, CommandSent, CommandStatus, InstanceId};
use crate::ports::Ssm;

impl Ssm for Client {
    async fn run_document(
        &self,
        document: &str,
        instance_id: &InstanceId,
        parameters: &[(&str, &str)],
        log_group: Option<&str>,
        timeout_s: i32,
    ) -> Result<CommandSent, AwsError> {
        let mut req = self
            .send_command()
            .document_name(document)
            .instance_ids(instance_id.as_str())
            .timeout_seconds(timeout_s)
            .comment(format!(
                "ecs-lifecycle: why did {instance_id} not join its ECS cluster?"
            ));
        for (k, v) in parameters {
            req = req.parameters(*k, vec![(*v).to_owned()]);
        }
        if let Some(group) = log_group {
            req = req.cloud_watch_output_config(
                CloudWatchOutputConfig::builder()
                    .cloud_watch_output_enabled(true)
                    .cloud_watch_log_group_name(group)
                    .build(),
            );
        }
        match req.send().await {
            Ok(out) => Ok(CommandSent::Sent {
                command_id: out
                    .command()
                    .and_then(|c| c.command_id())
                    .unwrap_or_default()
                    .to_owned(),
            }),
            Err(e) => {
                let err = aws_error("ssm", "SendCommand", &e);
                // SSM does not manage the instance (agent down, no instance
                // profile, no route): a finding, not a failure of ours.
                if err.code.as_deref() == Some("InvalidInstanceId") {
                    return Ok(CommandSent::Unreachable(err.message));
                }
                Err(err)
            }
        }
    }

    async fn command_invocation(
        &self,
        command_id: &str,
        instance_id: &InstanceId,
    ) -> Result<Option<CommandInvocation>, AwsError> {
        match self
            .get_command_invocation()
            .command_id(command_id)
            .instance_id(instance_id.as_str())
            .send()
            .await
        {
            Ok(out) => Ok(Some(CommandInvocation {
                status: CommandStatus::parse(out.status().map_or("", |s| s.as_str())),
                response_code: out.response_code(),
                stdout: out.standard_output_content().unwrap_or_default().to_owned(),
                stderr: out.standard_error_content().unwrap_or_default().to_owned(),
            })),
            Err(e) => {
                let err = aws_error("ssm", "GetCommandInvocation", &e);
                // Right after SendCommand the invocation may not exist yet.
                if err.code.as_deref() == Some("InvocationDoesNotExist") {
                    return Ok(None);
                }
                Err(err)
            }
        }
    }

    async fn parameter(&self, name: &str) -> Result<Option<String>, AwsError> {
        match self.get_parameter().name(name).send().await {
            Ok(resp) => Ok(resp.parameter().and_then(|p| p.value()).map(str::to_owned)),
            Err(e) => {
                let err = aws_error("ssm", "GetParameter", &e);
                if err.code.as_deref() == Some("ParameterNotFound") {
                    Ok(None)
                } else {
                    Err(err)
                }
            }
        }
    }
}
