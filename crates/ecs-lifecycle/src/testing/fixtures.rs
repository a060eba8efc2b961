//! The crate's event fixtures (real event JSON), by name, for tests.

#![allow(clippy::unwrap_used, clippy::panic)]

use serde_json::Value;

/// The fixture `fixtures/<name>.json`, parsed.
pub fn fixture(name: &str) -> Value {
    let text = match name {
        "sns-terminate" => include_str!("../../fixtures/sns-terminate.json"),
        "sns-launch" => include_str!("../../fixtures/sns-launch.json"),
        "sns-test-notification" => include_str!("../../fixtures/sns-test-notification.json"),
        "sns-continuation" => include_str!("../../fixtures/sns-continuation.json"),
        "eventbridge-terminate" => include_str!("../../fixtures/eventbridge-terminate.json"),
        "eventbridge-launch-successful" => {
            include_str!("../../fixtures/eventbridge-launch-successful.json")
        }
        "eventbridge-spot-interruption" => {
            include_str!("../../fixtures/eventbridge-spot-interruption.json")
        }
        "eventbridge-ec2-running" => include_str!("../../fixtures/eventbridge-ec2-running.json"),
        "eventbridge-rebalance" => include_str!("../../fixtures/eventbridge-rebalance.json"),
        "eventbridge-health-retirement" => {
            include_str!("../../fixtures/eventbridge-health-retirement.json")
        }
        "eventbridge-ecs-task-stopped" => {
            include_str!("../../fixtures/eventbridge-ecs-task-stopped.json")
        }
        "eventbridge-ecs-instance-drained" => {
            include_str!("../../fixtures/eventbridge-ecs-instance-drained.json")
        }
        "eventbridge-launch-successful-warm-pool" => {
            include_str!("../../fixtures/eventbridge-launch-successful-warm-pool.json")
        }
        "sqs-terminate" => include_str!("../../fixtures/sqs-terminate.json"),
        "sqs-batch-mixed" => include_str!("../../fixtures/sqs-batch-mixed.json"),
        "eventbridge-launch-warm-pool" => {
            include_str!("../../fixtures/eventbridge-launch-warm-pool.json")
        }
        "sns-continuation-launch-verify" => {
            include_str!("../../fixtures/sns-continuation-launch-verify.json")
        }
        other => panic!("no fixture {other}"),
    };
    serde_json::from_str(text).unwrap()
}
