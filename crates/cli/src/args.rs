//! Command-line arguments.

use clap::builder::NonEmptyStringValueParser;
use clap::{Args, Parser, Subcommand};

/// The operator's view of an ECS-on-EC2 fleet kept by ecs-lifecycle: container
/// instances with their Auto Scaling lifecycle, instances held by lifecycle
/// hooks, orphans, instance refreshes, refused AMIs and retained instances. It
/// only reads, except `release --apply`.
///
/// AWS access comes from the standard AWS environment (AWS_REGION, AWS_PROFILE,
/// AWS_ACCESS_KEY_ID, ~/.aws/config, SSO, instance roles, ...); --region and
/// --profile override it.
///
/// Exit status: 0 all well, 1 something needs attention (listed last in the
/// output), 2 usage error or no such cluster / group, 3 AWS error (region,
/// credentials, permissions, network).
#[derive(Debug, Parser)]
#[command(name = "ecs-lifecycle", version, about, max_term_width = 100)]
pub struct Cli {
    /// AWS region (default: AWS_REGION, AWS_DEFAULT_REGION, or the profile's region).
    #[arg(long, global = true, value_name = "REGION", value_parser = NonEmptyStringValueParser::new())]
    pub region: Option<String>,

    /// Profile of ~/.aws/config and ~/.aws/credentials (default: AWS_PROFILE, else `default`).
    #[arg(long, global = true, value_name = "NAME", value_parser = NonEmptyStringValueParser::new())]
    pub profile: Option<String>,

    /// Print one JSON object (versioned; schema in docs/operating.md#cli) instead of tables.
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Every container instance of a cluster (EC2 id, group, lifecycle state, ECS
    /// status, agent, tasks, AMI, draining since), the instances a lifecycle hook
    /// holds (hook, time left) and orphans (InService in a group, not in the cluster).
    Status(StatusArgs),
    /// AMI rollouts.
    Rollout {
        #[command(subcommand)]
        command: RolloutCommand,
    },
    /// Instances an Auto Scaling instance lifecycle policy keeps
    /// (`Terminating:Retained`) after terminate-drain abandoned their drain
    /// (DRAIN_TIMEOUT_ACTION=retain), and the groups whose policy would not keep one.
    Retained(RetainedArgs),
    /// Terminate a retained instance once you have looked at it
    /// (TerminateInstanceInAutoScalingGroup). A dry run unless --apply.
    Release(ReleaseArgs),
}

#[derive(Debug, Args)]
pub struct RetainedArgs {
    /// An Auto Scaling group (repeatable); default: every group of the region.
    #[arg(long = "group", value_name = "NAME", value_parser = NonEmptyStringValueParser::new())]
    pub groups: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ReleaseArgs {
    /// The retained EC2 instance (i-...).
    #[arg(value_name = "INSTANCE", value_parser = NonEmptyStringValueParser::new())]
    pub instance: String,

    /// Terminate it; without this flag, only say what would be done.
    #[arg(long)]
    pub apply: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The ECS cluster (name or ARN).
    #[arg(long, value_name = "NAME", value_parser = NonEmptyStringValueParser::new())]
    pub cluster: String,

    /// An Auto Scaling group to look in for waiting instances and orphans
    /// (repeatable); default: the groups of the cluster's instances.
    #[arg(long = "group", value_name = "NAME", value_parser = NonEmptyStringValueParser::new())]
    pub groups: Vec<String>,

    /// The drain budget's DynamoDB table (the stack's DrainSlotsTable, with
    /// MaxConcurrentDrains): also show which drains hold its slots and which
    /// instances wait for one.
    #[arg(long, env = "DRAIN_SLOTS_TABLE", value_name = "TABLE", value_parser = NonEmptyStringValueParser::new())]
    pub drain_slots_table: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum RolloutCommand {
    /// Per group: the newest instance refresh, its status and percentage, the AMI
    /// it moves to, the group's current AMI, and AMIs refused by ami-rollout.
    Status(RolloutStatusArgs),
}

#[derive(Debug, Args)]
pub struct RolloutStatusArgs {
    /// An Auto Scaling group (repeatable); default: every group of the region.
    #[arg(long = "group", value_name = "NAME", value_parser = NonEmptyStringValueParser::new())]
    pub groups: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn flags_go_anywhere_and_groups_repeat() {
        let cli = Cli::try_parse_from([
            "ecs-lifecycle",
            "--region",
            "eu-west-1",
            "status",
            "--cluster",
            "prod",
            "--group",
            "a",
            "--group",
            "b",
            "--json",
        ])
        .map_err(|e| e.to_string());
        let Ok(Cli {
            region,
            json,
            command: Command::Status(a),
            ..
        }) = cli
        else {
            unreachable!("{cli:?}")
        };
        assert_eq!(region.as_deref(), Some("eu-west-1"));
        assert!(json);
        assert_eq!(
            (a.cluster.as_str(), a.groups),
            ("prod", vec!["a".into(), "b".into()])
        );

        let cli = Cli::try_parse_from(["ecs-lifecycle", "rollout", "status", "--profile", "ops"]);
        assert!(
            matches!(&cli, Ok(Cli { profile: Some(p), command: Command::Rollout { command: RolloutCommand::Status(a) }, .. }) if p == "ops" && a.groups.is_empty()),
            "{cli:?}"
        );
    }

    #[test]
    fn release_is_a_dry_run_unless_applied() {
        for (argv, apply) in [
            (
                &["ecs-lifecycle", "release", "i-0123456789abcdef0"][..],
                false,
            ),
            (
                &["ecs-lifecycle", "release", "i-0123456789abcdef0", "--apply"],
                true,
            ),
        ] {
            let cli = Cli::try_parse_from(argv).map_err(|e| e.to_string());
            assert!(
                matches!(&cli, Ok(Cli { command: Command::Release(a), .. }) if a.instance == "i-0123456789abcdef0" && a.apply == apply),
                "{cli:?}"
            );
        }
        let cli = Cli::try_parse_from(["ecs-lifecycle", "retained", "--group", "web"]);
        assert!(
            matches!(&cli, Ok(Cli { command: Command::Retained(a), .. }) if a.groups == ["web"]),
            "{cli:?}"
        );
    }

    #[test]
    fn usage_errors() {
        for argv in [
            &["ecs-lifecycle", "status"][..],
            &["ecs-lifecycle", "status", "--cluster", ""],
            &["ecs-lifecycle", "status", "--cluster", "c", "--group", ""],
            &["ecs-lifecycle", "rollout"],
            &["ecs-lifecycle", "--region", "", "rollout", "status"],
            &["ecs-lifecycle", "drain"],
            &["ecs-lifecycle", "release"],
            &["ecs-lifecycle", "release", ""],
            &["ecs-lifecycle", "retained", "--group", ""],
        ] {
            let err = Cli::try_parse_from(argv).err();
            assert!(
                err.as_ref().is_some_and(|e| e.use_stderr()),
                "{argv:?}: {err:?}"
            );
        }
    }
}
