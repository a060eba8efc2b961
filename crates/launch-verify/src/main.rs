//! launch-verify: the Auto Scaling launch lifecycle hook for ECS container
//! instances. See the README for configuration.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    ecs_lifecycle::lambda::run_launch_verify().await
}
