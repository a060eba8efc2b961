//! `ecs-lifecycle`: the operator's view of the fleet the Lambda functions look
//! after. `status` joins a cluster's container instances with their Auto
//! Scaling groups (lifecycle states, hooks, orphans) and EC2 (AMIs); `rollout
//! status` shows each group's newest instance refresh and refused AMIs;
//! `retained` lists the instances an instance lifecycle policy kept after their
//! drain was abandoned, and `release` terminates one (a dry run unless
//! `--apply`, the only write). Output, JSON schema and exit codes:
//! docs/operating.md#cli.

mod args;
mod failure;
mod gather;
mod render;
mod retained;
mod rollout;
mod status;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Command, RolloutCommand};
use ecs_lifecycle::model::{InstanceId, is_instance_id};
use ecs_lifecycle::ports::AutoScaling;
use failure::{EXIT_ATTENTION, EXIT_AWS, EXIT_OK, EXIT_USAGE, Failure};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // --help and --version are not errors.
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { EXIT_OK });
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ecs-lifecycle: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_AWS);
        }
    };
    match runtime.block_on(run(&cli)) {
        Ok((text, attention)) => {
            let mut out = std::io::stdout().lock();
            if out
                .write_all(text.as_bytes())
                .and_then(|()| out.flush())
                .is_err()
            {
                // A closed pipe (`| head`): nothing more to say.
                return ExitCode::from(EXIT_OK);
            }
            ExitCode::from(if attention { EXIT_ATTENTION } else { EXIT_OK })
        }
        Err(e) => {
            eprintln!("ecs-lifecycle: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Runs the command: its output, and whether something needs attention.
async fn run(cli: &Cli) -> Result<(String, bool), Failure> {
    let sdk = failure::sdk_config(cli.region.as_deref(), cli.profile.as_deref()).await?;
    let region = sdk.region().map(ToString::to_string).unwrap_or_default();
    let now_ms = ecs_lifecycle::time::epoch_ms();
    let color = render::use_color(
        std::io::stdout().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let asg = aws_sdk_autoscaling::Client::new(&sdk);
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    match &cli.command {
        Command::Status(a) => {
            let ecs = aws_sdk_ecs::Client::new(&sdk);
            let mut observed =
                gather::status(&ecs, &asg, &ec2, &region, &a.cluster, &a.groups, now_ms).await?;
            if let Some(table) = &a.drain_slots_table {
                let table =
                    ecs_lifecycle::aws::SlotTable::new(aws_sdk_dynamodb::Client::new(&sdk), table);
                observed.drain_slots = Some(gather::drain_slots(&table, &a.cluster).await?);
            }
            let report = status::report(&observed);
            let text = if cli.json {
                render::json(&report)
            } else {
                render::status_text(&report, now_ms, color)
            };
            Ok((text, !report.attention.is_empty()))
        }
        Command::Rollout {
            command: RolloutCommand::Status(a),
        } => {
            let observed = gather::rollout(&asg, &ec2, &region, &a.groups, now_ms).await?;
            let report = rollout::report(&observed);
            let text = if cli.json {
                render::json(&report)
            } else {
                render::rollout_text(&report, color)
            };
            Ok((text, !report.attention.is_empty()))
        }
        Command::Retained(a) => {
            let groups = gather::retained_groups(&asg, &region, &a.groups).await?;
            let report = retained::report(&region, render::rfc3339(now_ms), &groups);
            let text = if cli.json {
                render::json(&report)
            } else {
                render::retained_text(&report, color)
            };
            // A retained instance is billed until someone releases it.
            Ok((text, !report.instances.is_empty()))
        }
        Command::Release(a) => {
            if !is_instance_id(&a.instance) {
                return Err(Failure::NotFound(format!(
                    "{} is not an EC2 instance id (i-...)",
                    a.instance
                )));
            }
            let instance = InstanceId::new(a.instance.as_str());
            let found = asg.instance(&instance).await?;
            let release = retained::plan(&a.instance, found.as_ref(), a.apply).map_err(|why| {
                Failure::NotFound(format!("will not release {}: {why}", a.instance))
            })?;
            if release.applied {
                asg.terminate_instance(&instance).await?;
            }
            let text = if cli.json {
                render::json(&release)
            } else {
                render::release_text(&release)
            };
            Ok((text, false))
        }
    }
}
