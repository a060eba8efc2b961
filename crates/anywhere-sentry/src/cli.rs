//! Command-line flags, compatible with the original Python sentry's (`-r/--region`,
//! `-i/--interval`, `-n/--retries`, `-l/--logfile`, `-k/--loglevel`), plus the new ones.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::logging::LogLevel;
use crate::probe::Endpoint;

/// Keeps ECS Anywhere containers running while the host cannot reach ECS.
///
/// Every --interval seconds the sentry opens a TLS connection to the regional ECS
/// endpoint. After --offline-after failed probes in a row it goes offline: every
/// running ECS task container (label com.amazonaws.ecs.task-arn) gets the Docker restart
/// policy on-failure:<retries>, then the ecs-agent container is paused so it cannot stop
/// what Docker restarts. After --online-after good probes in a row it comes back: task
/// containers Docker restarted meanwhile are stopped and removed (ECS relaunches their
/// tasks), the others get their restart policy back, and the agent is unpaused. What it
/// changed is kept in --state-file, so a restart of the sentry, of Docker or of the host
/// during an outage is handled.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "anywhere-sentry",
    version,
    about,
    long_about,
    max_term_width = 100
)]
pub struct Cli {
    /// AWS region of the ECS cluster; the probe goes to ecs.<region>.amazonaws.com:443
    /// unless --endpoint is given.
    #[arg(short = 'r', long)]
    pub region: String,

    /// Seconds between connectivity checks; fractions allowed (e.g. 0.5).
    #[arg(short = 'i', long, default_value = "20", value_parser = parse_seconds, value_name = "SECONDS")]
    pub interval: Duration,

    /// How many times Docker restarts a failing task container while offline
    /// (restart policy on-failure:N); 0 = no limit.
    #[arg(short = 'n', long, default_value_t = 0)]
    pub retries: u32,

    /// Log file, rotated at 5 MB with five old files kept (<logfile>.1 .. .5);
    /// `-` logs to standard error instead.
    #[arg(
        short = 'l',
        long,
        default_value = "/tmp/ecs-external-instance-network-sentry.log"
    )]
    pub logfile: PathBuf,

    /// Log level: DEBUG, INFO, WARNING, ERROR or CRITICAL (any case; TRACE too).
    #[arg(short = 'k', long, default_value = "INFO")]
    pub loglevel: LogLevel,

    /// host:port to probe instead of ecs.<region>.amazonaws.com:443 (a VPC or FIPS
    /// endpoint, a proxy you trust). TLS verifies the certificate against this host.
    #[arg(long, value_name = "HOST:PORT")]
    pub endpoint: Option<Endpoint>,

    /// Docker engine: unix:///path/to/docker.sock, a socket path, or tcp://host:port.
    #[arg(
        long,
        env = "DOCKER_HOST",
        default_value = "unix:///var/run/docker.sock",
        value_name = "URL"
    )]
    pub docker_host: String,

    /// Failed probes in a row before going offline.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..), value_name = "N")]
    pub offline_after: u32,

    /// Good probes in a row before coming back online.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..), value_name = "N")]
    pub online_after: u32,

    /// Where the sentry keeps its state (mode, since when, the containers it changed).
    #[arg(long, default_value = "/var/lib/anywhere-sentry/state.json")]
    pub state_file: PathBuf,

    /// Extra CA certificate(s), PEM, trusted for the probe besides the public and system
    /// roots (a private endpoint, a TLS-inspecting proxy, tests).
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,

    /// Seconds each probe step (DNS lookup, TCP connect, TLS handshake) may take.
    #[arg(long, default_value = "10", value_parser = parse_seconds, value_name = "SECONDS")]
    pub probe_timeout: Duration,
}

impl Cli {
    /// The endpoint to probe.
    pub fn target(&self) -> Endpoint {
        self.endpoint
            .clone()
            .unwrap_or_else(|| Endpoint::for_region(&self.region))
    }
}

/// Positive seconds, fractions allowed, at most a day.
fn parse_seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("expected seconds, e.g. 20 or 0.5, got {s:?}"))?;
    if !(secs > 0.0 && secs <= 86_400.0) {
        return Err(format!("expected seconds between 0 and 86400, got {s}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn defaults_match_the_original() {
        let cli = Cli::try_parse_from(["anywhere-sentry", "--region", "eu-west-1"]).unwrap();
        assert_eq!(cli.interval, Duration::from_secs(20));
        assert_eq!(cli.retries, 0);
        assert_eq!(
            cli.logfile,
            PathBuf::from("/tmp/ecs-external-instance-network-sentry.log")
        );
        assert_eq!(cli.loglevel, "INFO".parse().unwrap());
        assert_eq!((cli.offline_after, cli.online_after), (3, 2));
        assert_eq!(cli.target().to_string(), "ecs.eu-west-1.amazonaws.com:443");
        assert_eq!(cli.probe_timeout, Duration::from_secs(10));
    }

    #[test]
    fn short_flags_of_the_original_work() {
        let cli = Cli::try_parse_from([
            "s",
            "-r",
            "us-east-1",
            "-i",
            "5",
            "-n",
            "3",
            "-l",
            "/var/log/s.log",
            "-k",
            "DEBUG",
        ])
        .unwrap();
        assert_eq!(cli.region, "us-east-1");
        assert_eq!(cli.interval, Duration::from_secs(5));
        assert_eq!(cli.retries, 3);
        assert_eq!(cli.logfile, PathBuf::from("/var/log/s.log"));
    }

    #[test]
    fn bad_values_are_refused() {
        for args in [
            &["s"][..],
            &["s", "-r", "x", "--interval", "0"],
            &["s", "-r", "x", "--interval", "-1"],
            &["s", "-r", "x", "--interval", "soon"],
            &["s", "-r", "x", "--offline-after", "0"],
            &["s", "-r", "x", "--online-after", "0"],
            &["s", "-r", "x", "--retries", "-1"],
            &["s", "-r", "x", "--endpoint", "host:"],
            &["s", "-r", "x", "--loglevel", "LOUD"],
        ] {
            assert!(Cli::try_parse_from(args).is_err(), "{args:?} accepted");
        }
        let cli = Cli::try_parse_from(["s", "-r", "x", "--interval", "0.25"]).unwrap();
        assert_eq!(cli.interval, Duration::from_millis(250));
    }

    #[test]
    fn help_is_consistent() {
        Cli::command().debug_assert();
    }
}
