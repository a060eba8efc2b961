//! launch-verify: the Auto Scaling launch lifecycle hook (and orphan check) for
//! ECS container instances. Configuration and behaviour: docs/launch-verify.md.

use ecs_lifecycle::config::LaunchConfig;
use ecs_lifecycle::hook::serve::{
    config_error, init_logging, require_continuation_topic, require_credentials, require_region,
    serve,
};
use ecs_lifecycle::launch::Verifier;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_logging();
    let config = LaunchConfig::from_process_env().inspect_err(config_error)?;
    require_continuation_topic(&config.common).inspect_err(config_error)?;
    require_region().inspect_err(config_error)?;
    require_credentials().inspect_err(config_error)?;
    if config.ssm_document.is_none() {
        tracing::warn!(
            "SSM_DOCUMENT_NAME is not set: orphans are reported without an on-instance diagnosis"
        );
    }
    // Built on the first record that needs AWS (never for a test notification).
    serve(|| async {
        let sdk = ecs_lifecycle::aws::load_sdk_config().await;
        let region = sdk.region().map_or_else(String::new, |r| r.to_string());
        Verifier::new(
            aws_sdk_ecs::Client::new(&sdk),
            aws_sdk_autoscaling::Client::new(&sdk),
            aws_sdk_ec2::Client::new(&sdk),
            aws_sdk_ssm::Client::new(&sdk),
            aws_sdk_sns::Client::new(&sdk),
            config.clone(),
            &region,
        )
    })
    .await
}
