//! Adapters: the ports of [`crate::ports`] for the AWS SDK clients, and building
//! those clients from the standard AWS environment.
//!
//! Retries are the SDK's standard mode (exponential backoff with jitter, 6
//! attempts), never a hand loop; `AWS_RETRY_MODE` / `AWS_MAX_ATTEMPTS` override
//! them. Adaptive mode was measured and rejected: after a burst of throttles its
//! client-side rate limiter kept a 1-call-per-second poll loop slowed for over a
//! minute (85 s against 14 s for the same throttled drain), which is pure lag
//! between the last task stopping and the completion. Endpoints follow `AWS_ENDPOINT_URL` and the
//! per-service `AWS_ENDPOINT_URL_<SERVICE>`, so the same binary runs against an
//! emulator.

mod autoscaling;
mod dynamodb;
#[cfg(feature = "ec2")]
mod ec2;
mod ecs;
mod sns;
#[cfg(feature = "ssm")]
mod ssm;

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_smithy_types::retry::ProvideErrorKind;

use crate::error::{AwsError, Class};

pub use dynamodb::SlotTable;

/// The SDK configuration loader with this project's timeouts and retries, reading
/// region, credentials and endpoints from the standard AWS environment.
pub fn config_loader() -> aws_config::ConfigLoader {
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).timeout_config(
        TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(3))
            .operation_attempt_timeout(Duration::from_secs(10))
            .operation_timeout(Duration::from_secs(45))
            .build(),
    );
    let env_sets_retries = std::env::var_os("AWS_RETRY_MODE").is_some()
        || std::env::var_os("AWS_MAX_ATTEMPTS").is_some();
    if !env_sets_retries {
        loader = loader.retry_config(RetryConfig::standard().with_max_attempts(6));
    }
    loader
}

/// Loads the shared SDK configuration once per cold start.
pub async fn load_sdk_config() -> SdkConfig {
    config_loader().load().await
}

/// An SDK timestamp in epoch milliseconds (`None` before 1970).
pub(crate) fn epoch_ms(t: Option<&aws_smithy_types::DateTime>) -> Option<u64> {
    t.and_then(|t| u64::try_from(t.to_millis().ok()?).ok())
}

/// Keeps the service's error code and message (the transport's chain
/// otherwise), classified as the SDK sees it: a service's answer by its HTTP
/// status and the SDK's retry classification, then its code; a request that
/// could not be built (no region, no credentials, a bad endpoint) as permanent,
/// so that it fails at once, naming the cause, instead of being retried until
/// the lifecycle action dies; timeouts and connection failures as transient.
pub(crate) fn aws_error<E>(
    service: &'static str,
    operation: &'static str,
    err: &SdkError<E, HttpResponse>,
) -> AwsError
where
    E: ProvideErrorMetadata + ProvideErrorKind + std::error::Error + 'static,
{
    let code = err.code().map(str::to_owned);
    let message = match err.message() {
        Some(m) => m.to_owned(),
        None => DisplayErrorContext(err).to_string(),
    };
    let class = match err {
        SdkError::ServiceError(e) => Class::of_answer(
            e.raw().status().as_u16(),
            e.err().retryable_error_kind(),
            code.as_deref(),
        ),
        SdkError::ConstructionFailure(_) => Class::Permanent,
        SdkError::DispatchFailure(d) if d.is_user() => Class::Permanent,
        SdkError::ResponseError(r) => {
            Class::of_answer(r.raw().status().as_u16(), None, code.as_deref())
        }
        _ => Class::Transient,
    };
    AwsError {
        class,
        ..AwsError::new(service, operation, code, message)
    }
}
