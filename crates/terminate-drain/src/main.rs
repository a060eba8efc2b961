//! terminate-drain: the Auto Scaling terminate lifecycle hook for ECS container
//! instances. See the README for configuration.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    ecs_lifecycle::lambda::run_terminate_drain().await
}
