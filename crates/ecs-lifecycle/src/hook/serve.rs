//! The Lambda entry point of a hook function: the binaries read and check their
//! configuration at cold start, then hand a builder of their workflow to
//! [`serve`]. The workflow (SDK configuration, clients, TLS roots) is built on
//! the first record that needs it, so a cold start reaches the runtime API at
//! once and a test notification is answered without building any client.

use std::future::Future;

use lambda_runtime::tracing::subscriber;
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;
use tokio::sync::OnceCell;
use tracing::level_filters::LevelFilter;

use crate::config::Env;
use crate::hook::dispatch::{answer, run};
use crate::hook::runtime::HookWorkflow;

/// Installs the functions' subscriber: JSON lines when `AWS_LAMBDA_LOG_FORMAT=JSON`
/// (Lambda's `LogFormat: JSON`), on stdout, without time (Lambda adds it), at the
/// level of `LOG_LEVEL` (`INFO` when unset).
///
/// The function filters its own lines: Lambda's `ApplicationLogLevel` would
/// give the metric lines (Embedded Metric Format, no `level`) INFO and drop
/// them at WARN or ERROR, so the template leaves it at TRACE and passes the
/// level here. `AWS_LAMBDA_LOG_LEVEL` (that TRACE) is not read. A `LOG_LEVEL`
/// the configuration refuses falls back to INFO here, and the configuration's
/// error (which names it) then stops the function at cold start.
pub fn init_logging() {
    let level = Env::new(|k| std::env::var(k).ok())
        .log_level("LOG_LEVEL")
        .unwrap_or(LevelFilter::INFO);
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let fmt = subscriber::fmt()
        .with_target(false)
        .without_time()
        .with_max_level(level)
        .with_writer(std::io::stdout);
    if json {
        fmt.json().init();
    } else {
        fmt.init();
    }
}

/// Logs a configuration error at cold start (the function then fails to start,
/// which Lambda reports as an init error naming it).
pub fn config_error(e: &crate::error::ConfigError) {
    tracing::error!(error = %e, "invalid configuration");
}

/// A hook function needs its continuation topic from its first invocation:
/// without one, a piece of work longer than one invocation could only continue
/// on the topic its event came through, and an EventBridge-delivered action (or
/// a direct invoke) has none: it would fail at its first hand-off, with the
/// action held. Refused at cold start instead, naming the variable.
pub fn require_continuation_topic(
    common: &crate::config::CommonConfig,
) -> Result<(), crate::error::ConfigError> {
    match common.continuation_topic {
        Some(_) => Ok(()),
        None => Err(crate::error::ConfigError {
            var: "CONTINUATION_TOPIC_ARN",
            value: String::new(),
            expected: "the ARN of the SNS topic this function continues its work through (the template sets it)".into(),
        }),
    }
}

/// The AWS Region, which Lambda always sets: without it no request can be built
/// (the SDK's "no region" is a permanent error on every call), so a function
/// run elsewhere without `AWS_REGION` / `AWS_DEFAULT_REGION` refuses to start,
/// naming the variable, instead of failing each event.
pub fn require_region() -> Result<(), crate::error::ConfigError> {
    require_region_in(|k| std::env::var(k).ok())
}

/// [`require_region`] over any environment lookup.
pub fn require_region_in(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<(), crate::error::ConfigError> {
    let set = |k: &str| lookup(k).is_some_and(|v| !v.trim().is_empty());
    if set("AWS_REGION") || set("AWS_DEFAULT_REGION") {
        return Ok(());
    }
    Err(crate::error::ConfigError {
        var: "AWS_REGION",
        value: String::new(),
        expected: "the AWS Region to call (Lambda sets it; set it, or AWS_DEFAULT_REGION, when running elsewhere)".into(),
    })
}

/// AWS credentials, which Lambda always puts in the environment (the
/// function's role): without any, every request fails to be signed, an error
/// with no service code that retrying cannot help, so each event would fail
/// (and be retried, then dead-lettered) while lifecycle actions expire. A
/// function with no credentials source refuses to start instead, naming what
/// is missing.
///
/// The check reads the environment and looks for the shared files, nothing
/// more: no network, no instance-metadata probe (a Lambda function has no
/// instance metadata), so it costs a cold start nothing. It accepts every
/// source the SDK's default chain reads without the network: the access key
/// pair, web identity (`AWS_WEB_IDENTITY_TOKEN_FILE` with `AWS_ROLE_ARN`),
/// container credentials (`AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` /
/// `_FULL_URI`), a profile (`AWS_PROFILE`) or a shared config or credentials
/// file (`AWS_CONFIG_FILE`, `AWS_SHARED_CREDENTIALS_FILE`, `~/.aws/`); an EC2
/// instance role is reached through a profile with `credential_source =
/// Ec2InstanceMetadata`.
pub fn require_credentials() -> Result<(), crate::error::ConfigError> {
    require_credentials_in(
        |k| std::env::var(k).ok(),
        |p| std::path::Path::new(p).is_file(),
    )
}

/// [`require_credentials`] over any environment lookup and file test.
pub fn require_credentials_in(
    lookup: impl Fn(&str) -> Option<String>,
    file_exists: impl Fn(&str) -> bool,
) -> Result<(), crate::error::ConfigError> {
    let value = |k: &str| lookup(k).filter(|v| !v.trim().is_empty());
    let set = |k: &str| value(k).is_some();
    let key_pair = set("AWS_ACCESS_KEY_ID") && set("AWS_SECRET_ACCESS_KEY");
    let web_identity = set("AWS_WEB_IDENTITY_TOKEN_FILE") && set("AWS_ROLE_ARN");
    let container =
        set("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") || set("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    let home = value("HOME");
    let shared_file = [
        value("AWS_CONFIG_FILE"),
        value("AWS_SHARED_CREDENTIALS_FILE"),
        home.as_ref().map(|h| format!("{h}/.aws/config")),
        home.as_ref().map(|h| format!("{h}/.aws/credentials")),
    ]
    .iter()
    .flatten()
    .any(|p| file_exists(p));
    if key_pair || web_identity || container || set("AWS_PROFILE") || shared_file {
        return Ok(());
    }
    // Half of a pair is the likeliest mistake: name the half that is missing.
    let (var, expected) = if set("AWS_ACCESS_KEY_ID") {
        (
            "AWS_SECRET_ACCESS_KEY",
            "the secret key that goes with AWS_ACCESS_KEY_ID (Lambda sets both from the function's role)",
        )
    } else if set("AWS_SECRET_ACCESS_KEY") {
        (
            "AWS_ACCESS_KEY_ID",
            "the access key id that goes with AWS_SECRET_ACCESS_KEY (Lambda sets both from the function's role)",
        )
    } else if set("AWS_WEB_IDENTITY_TOKEN_FILE") {
        (
            "AWS_ROLE_ARN",
            "the role to assume with AWS_WEB_IDENTITY_TOKEN_FILE",
        )
    } else if set("AWS_ROLE_ARN") {
        (
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "the web identity token file to assume AWS_ROLE_ARN with",
        )
    } else {
        (
            "AWS_ACCESS_KEY_ID",
            "AWS credentials, and none were found: Lambda sets AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN from the function's role; elsewhere set that pair, AWS_PROFILE (or a shared config/credentials file), AWS_WEB_IDENTITY_TOKEN_FILE with AWS_ROLE_ARN, or AWS_CONTAINER_CREDENTIALS_RELATIVE_URI / _FULL_URI",
        )
    };
    Err(crate::error::ConfigError {
        var,
        value: String::new(),
        expected: expected.into(),
    })
}

/// Runs a hook workflow on the Lambda runtime, building it once, lazily.
pub async fn serve<W, B, Fut>(build: B) -> Result<(), lambda_runtime::Error>
where
    W: HookWorkflow + Send,
    B: Fn() -> Fut + Sync,
    Fut: Future<Output = W> + Send,
{
    let workflow: OnceCell<W> = OnceCell::new();
    let (workflow, build) = (&workflow, &build);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let deadline_ms = event.context.deadline;
        answer::<W::Event, _, _>(
            W::SPEC.name,
            &event.payload,
            |work, reply_topic| async move {
                let w = workflow.get_or_init(build).await;
                run(w, work, reply_topic, deadline_ms).await
            },
        )
        .await
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CommonConfig, Env};

    #[test]
    fn a_hook_function_without_its_continuation_topic_refuses_to_start() {
        let config = |topic: Option<&str>| {
            let topic = topic.map(str::to_owned);
            CommonConfig::from_env(&Env::new(move |k| match k {
                "CONTINUATION_TOPIC_ARN" => topic.clone(),
                _ => None,
            }))
        };
        let unset = config(None).expect("valid");
        let e = require_continuation_topic(&unset).expect_err("refused");
        assert_eq!(e.var, "CONTINUATION_TOPIC_ARN");
        assert!(e.to_string().contains("CONTINUATION_TOPIC_ARN"), "{e}");
        let set = config(Some("arn:aws:sns:us-east-1:123456789012:continue")).expect("valid");
        assert!(require_continuation_topic(&set).is_ok());
    }

    #[test]
    fn a_function_without_a_region_refuses_to_start() {
        let e = require_region_in(|_| None).expect_err("refused");
        assert_eq!(e.var, "AWS_REGION");
        assert!(require_region_in(|k| (k == "AWS_REGION").then(|| " ".into())).is_err());
        assert!(require_region_in(|k| (k == "AWS_REGION").then(|| "eu-west-1".into())).is_ok());
        assert!(
            require_region_in(|k| (k == "AWS_DEFAULT_REGION").then(|| "eu-west-1".into())).is_ok()
        );
    }

    /// An environment of `vars` (and no shared file unless `files` names it).
    fn credentials(vars: &[(&str, &str)], files: &[&str]) -> Result<(), crate::error::ConfigError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let files: Vec<String> = files.iter().map(|f| (*f).to_owned()).collect();
        require_credentials_in(
            |k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()),
            |p| files.iter().any(|f| f == p),
        )
    }

    #[test]
    fn every_credentials_source_the_default_chain_reads_offline_is_accepted() {
        let ok = |vars: &[(&str, &str)], files: &[&str]| {
            credentials(vars, files).unwrap_or_else(|e| panic!("{vars:?} {files:?}: {e}"));
        };
        // Lambda's: the role's session keys.
        ok(
            &[
                ("AWS_ACCESS_KEY_ID", "ASIAEXAMPLE"),
                ("AWS_SECRET_ACCESS_KEY", "secret"),
                ("AWS_SESSION_TOKEN", "token"),
            ],
            &[],
        );
        ok(
            &[
                ("AWS_ACCESS_KEY_ID", "AKIA"),
                ("AWS_SECRET_ACCESS_KEY", "s"),
            ],
            &[],
        );
        ok(
            &[
                ("AWS_WEB_IDENTITY_TOKEN_FILE", "/var/run/token"),
                ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/r"),
            ],
            &[],
        );
        ok(
            &[(
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                "/v2/credentials/x",
            )],
            &[],
        );
        ok(
            &[(
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "http://127.0.0.1/creds",
            )],
            &[],
        );
        ok(&[("AWS_PROFILE", "dev")], &[]);
        ok(&[("HOME", "/home/me")], &["/home/me/.aws/credentials"]);
        ok(&[("HOME", "/home/me")], &["/home/me/.aws/config"]);
        ok(&[("AWS_CONFIG_FILE", "/etc/aws.conf")], &["/etc/aws.conf"]);
        ok(
            &[("AWS_SHARED_CREDENTIALS_FILE", "/etc/aws.creds")],
            &["/etc/aws.creds"],
        );
        // Half a pair with a profile beside it: the SDK's chain goes on to the
        // profile, so the function may start.
        ok(
            &[("AWS_ACCESS_KEY_ID", "AKIA"), ("AWS_PROFILE", "dev")],
            &[],
        );
    }

    #[test]
    fn a_function_without_credentials_refuses_to_start_naming_what_is_missing() {
        let refused =
            |vars: &[(&str, &str)], files: &[&str]| credentials(vars, files).expect_err("refused");
        let none = refused(&[], &[]);
        assert_eq!(none.var, "AWS_ACCESS_KEY_ID");
        let text = none.to_string();
        for named in [
            "AWS_SECRET_ACCESS_KEY",
            "AWS_PROFILE",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        ] {
            assert!(text.contains(named), "{text}");
        }
        // Blank values are no credentials; a shared file that does not exist is none.
        assert_eq!(
            refused(
                &[("AWS_ACCESS_KEY_ID", " "), ("AWS_SECRET_ACCESS_KEY", "")],
                &[]
            )
            .var,
            "AWS_ACCESS_KEY_ID"
        );
        assert!(
            credentials(
                &[("HOME", "/home/me"), ("AWS_CONFIG_FILE", "/etc/aws.conf")],
                &[]
            )
            .is_err()
        );
        // Half a pair: the other half named.
        assert_eq!(
            refused(&[("AWS_ACCESS_KEY_ID", "AKIA")], &[]).var,
            "AWS_SECRET_ACCESS_KEY"
        );
        assert_eq!(
            refused(&[("AWS_SECRET_ACCESS_KEY", "s")], &[]).var,
            "AWS_ACCESS_KEY_ID"
        );
        assert_eq!(
            refused(&[("AWS_WEB_IDENTITY_TOKEN_FILE", "/t")], &[]).var,
            "AWS_ROLE_ARN"
        );
        assert_eq!(
            refused(&[("AWS_ROLE_ARN", "arn:aws:iam::1:role/r")], &[]).var,
            "AWS_WEB_IDENTITY_TOKEN_FILE"
        );
    }
}
