//! The local demo: scripted scenarios against the AWS stand-in, driven through
//! the real Lambda binaries, with readable progress.
//!
//! - `scale-in` ([`scale_in`]): Auto Scaling scales in an instance carrying
//!   service, daemon and standalone tasks; `terminate-drain` drains it across
//!   several invocations.
//! - `orphan` ([`orphan`]): two instances launch, one never joins ECS;
//!   `launch-verify` continues the healthy one, diagnoses the orphan and refuses it.
//! - `rollout` ([`rollout`]): a new AMI is published; `ami-rollout` replaces
//!   every instance through an instance refresh and watches it to the end; then a
//!   broken AMI whose first instance is refused at launch is rolled back.
//!
//! With no argument all run, one after the other. Each scenario runs its
//! function through [`function`], which echoes the function's log.
//!
//! What is real: the binary, the AWS SDK calls over HTTP, moto's ECS / Auto
//! Scaling / EC2 / SNS / SQS state. What the stand-in plays (and says so): Auto
//! Scaling's lifecycle action (Terminating:Wait, the hook notification,
//! CompleteLifecycleAction), ECS's scheduler moving service tasks off a DRAINING
//! instance, and Lambda (Runtime API, SNS subscription).

mod function;
mod orphan;
mod rollout;
mod scale_in;

use std::time::Instant;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let scenarios: Vec<&str> = if args.is_empty() {
        vec!["scale-in", "orphan", "rollout"]
    } else {
        args.iter().map(String::as_str).collect()
    };
    for scenario in scenarios {
        println!("==== scenario: {scenario} ====");
        let result = match scenario {
            "scale-in" => scale_in::run().await,
            "orphan" => orphan::run().await,
            "rollout" => rollout::run().await,
            other => Err(format!(
                "unknown scenario {other:?}: use scale-in, orphan or rollout"
            )),
        };
        if let Err(e) = result {
            eprintln!("demo failed: {e}");
            std::process::exit(1);
        }
        println!();
    }
}

fn say(t0: Instant, what: &str) {
    println!("[{:>5.1}s] {what}", t0.elapsed().as_secs_f64());
}
