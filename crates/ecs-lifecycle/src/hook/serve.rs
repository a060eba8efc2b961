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
}
