//! ami-rollout: rolls the Auto Scaling groups of an ECS cluster to the AMI an SSM
//! parameter names, one instance refresh per group, rolling back on failure.
//! See the README for triggers and configuration.

// The handler's future nests every SDK call the rollout makes (EC2, Auto
// Scaling, ECS, SSM); computing its layout needs more than the default 128.
#![recursion_limit = "256"]

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    ecs_lifecycle::lambda::run_ami_rollout().await
}
