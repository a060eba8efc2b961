//! ami-rollout: rolls the Auto Scaling groups of an ECS cluster to the AMI an SSM
//! parameter names, one instance refresh per group, rolling back on failure.
//! Triggers and configuration: docs/ami-rollout.md.

// The handler's future nests every SDK call the rollout makes (EC2, Auto
// Scaling, ECS, SSM); computing its layout needs more than the default 128.
#![recursion_limit = "256"]

use ecs_lifecycle::config::RolloutConfig;
use ecs_lifecycle::hook::serve::{config_error, init_logging, require_credentials, require_region};
use ecs_lifecycle::rollout::Roller;
use ecs_lifecycle::rollout::trigger::answer_without_clients;
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;
use tokio::sync::OnceCell;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_logging();
    let config = RolloutConfig::from_process_env().inspect_err(config_error)?;
    require_region().inspect_err(config_error)?;
    require_credentials().inspect_err(config_error)?;
    let build = || async {
        let sdk = ecs_lifecycle::aws::load_sdk_config().await;
        Roller::new(
            aws_sdk_autoscaling::Client::new(&sdk),
            aws_sdk_ec2::Client::new(&sdk),
            aws_sdk_ecs::Client::new(&sdk),
            aws_sdk_ssm::Client::new(&sdk),
            config.clone(),
        )
        // Operator notifications, when NOTIFICATION_TOPIC_ARN is set.
        .with_publisher(aws_sdk_sns::Client::new(&sdk))
    };
    // Built on the first event (clients and TLS roots are not needed before).
    let roller = &OnceCell::new();
    let parameter = &config.ami_parameter;
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        // An event that asks for nothing is answered before any client is built.
        if let Some(answer) = answer_without_clients(&event.payload, parameter) {
            return Ok(answer);
        }
        let roller = roller.get_or_init(build).await;
        roller.handle(&event.payload, event.context.deadline).await
    }))
    .await
}
