//! terminate-drain: the Auto Scaling terminate lifecycle hook for ECS container
//! instances. Configuration and behaviour: docs/terminate-drain.md.

use ecs_lifecycle::aws::SlotTable;
use ecs_lifecycle::config::DrainConfig;
use ecs_lifecycle::drain::Drainer;
use ecs_lifecycle::hook::serve::{
    config_error, init_logging, require_continuation_topic, require_credentials, require_region,
    serve,
};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_logging();
    let config = DrainConfig::from_process_env().inspect_err(config_error)?;
    require_continuation_topic(&config.common).inspect_err(config_error)?;
    require_region().inspect_err(config_error)?;
    require_credentials().inspect_err(config_error)?;
    // Built on the first record that needs AWS (never for a test notification).
    serve(|| async {
        let sdk = ecs_lifecycle::aws::load_sdk_config().await;
        let drainer = Drainer::new(
            aws_sdk_ecs::Client::new(&sdk),
            aws_sdk_autoscaling::Client::new(&sdk),
            aws_sdk_sns::Client::new(&sdk),
            config.clone(),
        );
        // MAX_CONCURRENT_DRAINS: the budget's table (the config requires it with a limit).
        match &config.drain_slots_table {
            Some(table) => drainer.with_slots(SlotTable::new(
                aws_sdk_dynamodb::Client::new(&sdk),
                table.clone(),
            )),
            None => drainer,
        }
    })
    .await
}
