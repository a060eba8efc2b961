//! Lambda glue shared by the binaries: logging set-up and running a handler.

use serde_json::Value;

/// Installs the runtime's subscriber: JSON lines when `AWS_LAMBDA_LOG_FORMAT=JSON`,
/// level from `AWS_LAMBDA_LOG_LEVEL` / `RUST_LOG`.
pub fn init_logging() {
    lambda_runtime::tracing::init_default_subscriber();
}

/// Runs the terminate-drain function on the Lambda runtime.
pub async fn run_terminate_drain() -> Result<(), lambda_runtime::Error> {
    use crate::config::DrainConfig;
    use crate::drainer::Drainer;

    init_logging();
    let config = DrainConfig::from_process_env()
        .inspect_err(|e| tracing::error!(error = %e, "invalid configuration"))?;
    if config.common.continuation_topic.is_none() {
        tracing::warn!(
            "CONTINUATION_TOPIC_ARN is not set: drains longer than one invocation continue only on the topic their event came from"
        );
    }
    let sdk = crate::aws::load_sdk_config().await;
    let drainer = Drainer::new(
        aws_sdk_ecs::Client::new(&sdk),
        aws_sdk_autoscaling::Client::new(&sdk),
        aws_sdk_sns::Client::new(&sdk),
        config,
    );
    let drainer = &drainer;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<Value>| async move {
            drainer.handle(&event.payload, event.context.deadline).await
        },
    ))
    .await
}

/// Runs the launch-verify function on the Lambda runtime.
pub async fn run_launch_verify() -> Result<(), lambda_runtime::Error> {
    use crate::config::LaunchConfig;
    use crate::verifier::Verifier;

    init_logging();
    let config = LaunchConfig::from_process_env()
        .inspect_err(|e| tracing::error!(error = %e, "invalid configuration"))?;
    if config.ssm_document.is_none() {
        tracing::warn!(
            "SSM_DOCUMENT_NAME is not set: orphans are reported without an on-instance diagnosis"
        );
    }
    let sdk = crate::aws::load_sdk_config().await;
    let region = sdk
        .region()
        .map(|r| r.as_ref().to_owned())
        .unwrap_or_default();
    let verifier = Verifier::new(
        aws_sdk_ecs::Client::new(&sdk),
        aws_sdk_autoscaling::Client::new(&sdk),
        aws_sdk_ec2::Client::new(&sdk),
        aws_sdk_ssm::Client::new(&sdk),
        aws_sdk_sns::Client::new(&sdk),
        config,
        &region,
    );
    let verifier = &verifier;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<Value>| async move {
            verifier
                .handle(&event.payload, event.context.deadline)
                .await
        },
    ))
    .await
}

/// Runs the ami-rollout function on the Lambda runtime.
pub async fn run_ami_rollout() -> Result<(), lambda_runtime::Error> {
    use crate::config::RolloutConfig;
    use crate::roller::Roller;

    init_logging();
    let config = RolloutConfig::from_process_env()
        .inspect_err(|e| tracing::error!(error = %e, "invalid configuration"))?;
    let sdk = crate::aws::load_sdk_config().await;
    let roller = Roller::new(
        aws_sdk_autoscaling::Client::new(&sdk),
        aws_sdk_ec2::Client::new(&sdk),
        aws_sdk_ecs::Client::new(&sdk),
        aws_sdk_ssm::Client::new(&sdk),
        config,
    );
    let roller = &roller;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<Value>| async move {
            roller.handle(&event.payload, event.context.deadline).await
        },
    ))
    .await
}
