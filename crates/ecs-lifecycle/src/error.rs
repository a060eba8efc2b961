//! Error types. Every variant says what went wrong in words an operator can act on,
//! and [`Error::is_retryable`] tells whether running the same event again can help.

use lambda_runtime::Diagnostic;

use crate::model::InstanceId;
use crate::rollout::ami::Check;

/// A call to an AWS API that failed after the SDK's own retries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{service}:{operation} failed{}: {message}", code.as_deref().map(|c| format!(" with {c}")).unwrap_or_default())]
pub struct AwsError {
    /// Service name as in IAM (`ecs`, `autoscaling`, `sns`).
    pub service: &'static str,
    /// API operation, e.g. `DescribeTasks`.
    pub operation: &'static str,
    /// The service's error code (`ThrottlingException`, `ValidationError`, ...), if it sent one.
    pub code: Option<String>,
    /// The service's message, or the transport failure.
    pub message: String,
    /// Whether waiting can heal it.
    pub class: Class,
}

/// What waiting does for a failed call, as the SDK classifies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// The service is shedding load: slow down, then try again.
    Throttle,
    /// The request was fine, the moment was not (5xx, timeouts, connections).
    Transient,
    /// The request itself is refused (access, validation, configuration):
    /// trying again cannot help.
    Permanent,
}

impl Class {
    /// A failure known only by its error code (None: a transport failure or a
    /// timeout): the SDK's own lists of throttling and transient codes
    /// (aws-runtime's classifiers), and the 5xx exceptions services model.
    pub fn of_code(code: Option<&str>) -> Class {
        use aws_runtime::retries::classifiers::{THROTTLING_ERRORS, TRANSIENT_ERRORS};
        let Some(code) = code else {
            return Class::Transient;
        };
        if THROTTLING_ERRORS.contains(&code) || code.contains("Throttl") {
            Class::Throttle
        } else if TRANSIENT_ERRORS.contains(&code)
            || matches!(
                code,
                "ServerException"
                    | "ServiceUnavailable"
                    | "ServiceUnavailableException"
                    | "InternalFailure"
                    | "InternalError"
                    | "InternalServerError"
                    | "InternalServerException"
                    | "ResourceContention"
            )
        {
            Class::Transient
        } else {
            Class::Permanent
        }
    }

    /// A service's error answer: its HTTP status and the SDK's own retry
    /// classification first (a 503 is transient whatever its code says), the
    /// code otherwise.
    pub fn of_answer(
        status: u16,
        sdk_kind: Option<aws_smithy_types::retry::ErrorKind>,
        code: Option<&str>,
    ) -> Class {
        use aws_smithy_types::retry::ErrorKind;
        match (sdk_kind, status) {
            (Some(ErrorKind::ThrottlingError), _) | (_, 429) => Class::Throttle,
            (Some(_), _) | (_, 500 | 502 | 503 | 504) => match Class::of_code(code) {
                Class::Throttle => Class::Throttle,
                _ => Class::Transient,
            },
            (None, _) => Class::of_code(code),
        }
    }
}

impl AwsError {
    /// A failure classified by its code alone.
    pub fn new(
        service: &'static str,
        operation: &'static str,
        code: Option<String>,
        message: String,
    ) -> Self {
        let class = Class::of_code(code.as_deref());
        AwsError {
            service,
            operation,
            code,
            message,
            class,
        }
    }

    /// The service is shedding load: slow down, then try again.
    pub fn is_throttle(&self) -> bool {
        self.class == Class::Throttle
    }

    /// Whether waiting can heal it.
    pub fn is_retryable(&self) -> bool {
        self.class != Class::Permanent
    }
}

/// An input event that cannot be understood. `context` says where in the event
/// the problem is (e.g. `Records[0].Sns.Message`), `problem` what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad event at {context}: {problem}")]
pub struct EventError {
    pub context: String,
    pub problem: String,
}

impl EventError {
    pub fn new(context: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            context: context.into(),
            problem: problem.into(),
        }
    }
}

/// A configuration variable with a missing or invalid value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration variable {var}={value:?} is invalid: expected {expected}")]
pub struct ConfigError {
    pub var: &'static str,
    pub value: String,
    pub expected: String,
}

/// Everything a lifecycle handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Event(#[from] EventError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Aws(#[from] AwsError),
    /// A batch call succeeded but reported a per-item failure.
    #[error("ecs:{operation} reported a failure for {arn}: {reason}{}", detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    EcsItemFailure {
        operation: &'static str,
        arn: String,
        reason: String,
        detail: Option<String>,
    },
    /// The work needs another invocation but there is no SNS topic to hand it to.
    #[error(
        "the drain of {instance_id} needs another invocation, but there is no topic to continue on: set CONTINUATION_TOPIC_ARN (or deliver through SNS)"
    )]
    NoContinuationTopic { instance_id: InstanceId },
    /// The AMI parameter is missing or does not name an AMI.
    #[error("SSM parameter {name} {problem}")]
    AmiParameter { name: String, problem: String },
    /// A bug of this function, not a problem of the event or of AWS.
    #[error("internal error: {0}")]
    Internal(String),
    /// ami-rollout refused an AMI before changing anything: `why` names the
    /// AMI, the check that failed (`check`) and the value seen.
    #[error("{why}")]
    AmiRefused {
        ami: String,
        check: Check,
        seen: String,
        why: String,
    },
}

impl Error {
    /// Whether a later attempt with the same input can succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Aws(e) => e.is_retryable(),
            Error::EcsItemFailure { .. } => true,
            Error::NoContinuationTopic { .. } => true,
            Error::Event(_)
            | Error::Config(_)
            | Error::AmiParameter { .. }
            | Error::AmiRefused { .. }
            | Error::Internal(_) => false,
        }
    }

    /// A failure that can heal by waiting inside the invocation (throttling, 5xx,
    /// timeouts, connection errors, even after the SDK's own retries): back off,
    /// keep the action alive, observe again.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Aws(e) if e.is_retryable())
    }

    /// The service said to slow down.
    pub fn is_throttle(&self) -> bool {
        matches!(self, Error::Aws(e) if e.is_throttle())
    }

    /// ECS said to slow down (the account's ECS budget, shared by every drain).
    pub fn is_ecs_throttle(&self) -> bool {
        matches!(self, Error::Aws(e) if e.service == "ecs" && e.is_throttle())
    }

    /// A stable name for the error class, for metric filters and alarms.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Event(_) => "EcsLifecycle.BadEvent",
            Error::Config(_) => "EcsLifecycle.BadConfig",
            Error::Aws(_) => "EcsLifecycle.AwsError",
            Error::EcsItemFailure { .. } => "EcsLifecycle.EcsItemFailure",
            Error::NoContinuationTopic { .. } => "EcsLifecycle.NoContinuationTopic",
            Error::AmiParameter { .. } => "EcsLifecycle.BadAmiParameter",
            Error::Internal(_) => "EcsLifecycle.Internal",
            Error::AmiRefused { .. } => "EcsLifecycle.AmiRefused",
        }
    }
}

impl From<Error> for Diagnostic {
    fn from(e: Error) -> Self {
        Diagnostic {
            error_type: e.kind().to_owned(),
            error_message: e.to_string(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    fn aws(code: Option<&str>) -> AwsError {
        AwsError::new("ecs", "DescribeTasks", code.map(str::to_owned), "m".into())
    }

    #[test]
    fn answers_are_classified_by_status_and_the_sdks_view_first() {
        use aws_smithy_types::retry::ErrorKind;
        // ECS answering 503 ServiceUnavailableException: transient, whatever the code.
        assert_eq!(
            Class::of_answer(503, None, Some("SomeUnlistedCode")),
            Class::Transient
        );
        assert_eq!(
            Class::of_answer(503, None, Some("ServiceUnavailableException")),
            Class::Transient
        );
        assert_eq!(Class::of_answer(429, None, None), Class::Throttle);
        assert_eq!(
            Class::of_answer(400, Some(ErrorKind::ThrottlingError), Some("X")),
            Class::Throttle
        );
        assert_eq!(
            Class::of_answer(400, Some(ErrorKind::TransientError), Some("X")),
            Class::Transient
        );
        assert_eq!(
            Class::of_answer(500, None, Some("ThrottlingException")),
            Class::Throttle
        );
        assert_eq!(
            Class::of_answer(400, None, Some("AccessDeniedException")),
            Class::Permanent
        );
        assert_eq!(
            Class::of_answer(400, None, Some("ThrottlingException")),
            Class::Throttle
        );
    }

    #[test]
    fn retryable_classification() {
        for (code, retry) in [
            (None, true),
            (Some("ThrottlingException"), true),
            (Some("Throttling"), true),
            (Some("ServerException"), true),
            (Some("ServiceUnavailableException"), true),
            (Some("RequestLimitExceeded"), true),
            (Some("TooManyRequestsException"), true),
            (Some("ValidationError"), false),
            (Some("AccessDeniedException"), false),
            (Some("ClusterNotFoundException"), false),
        ] {
            assert_eq!(aws(code).is_retryable(), retry, "{code:?}");
        }
    }

    #[test]
    fn messages_name_the_call_and_code() {
        assert_eq!(
            aws(Some("ThrottlingException")).to_string(),
            "ecs:DescribeTasks failed with ThrottlingException: m"
        );
        assert_eq!(aws(None).to_string(), "ecs:DescribeTasks failed: m");
        let d: Diagnostic = Error::from(aws(Some("X"))).into();
        assert_eq!(d.error_type, "EcsLifecycle.AwsError");
        let d: Diagnostic = Error::Internal("x".into()).into();
        assert_eq!(d.error_type, "EcsLifecycle.Internal");
    }

    #[test]
    fn transient_and_throttle_classification() {
        for (code, transient, throttle) in [
            (None, true, false),
            (Some("ThrottlingException"), true, true),
            (Some("Throttling"), true, true),
            (Some("RequestLimitExceeded"), true, true),
            (Some("ServerException"), true, false),
            (Some("ServiceUnavailable"), true, false),
            (Some("AccessDeniedException"), false, false),
            (Some("ValidationError"), false, false),
        ] {
            let e = Error::from(aws(code));
            assert_eq!(e.is_transient(), transient, "{code:?}");
            assert_eq!(e.is_throttle(), throttle, "{code:?}");
        }
        assert!(!Error::Internal("x".into()).is_transient());
        assert!(!Error::Event(EventError::new("a", "b")).is_transient());
    }

    #[test]
    fn a_refused_ami_reads_as_its_sentence_and_names_its_check() {
        let e = Error::AmiRefused {
            ami: "ami-1".into(),
            check: Check::InstanceType,
            seen: "none".into(),
            why: "AMI ami-1 refused for group g (instance type check, seen none): x".into(),
        };
        assert_eq!(
            e.to_string(),
            "AMI ami-1 refused for group g (instance type check, seen none): x"
        );
        assert!(
            matches!(&e, Error::AmiRefused { check, .. } if check.to_string() == "instance type")
        );
        assert!(!e.is_retryable());
        let d: Diagnostic = e.into();
        assert_eq!(d.error_type, "EcsLifecycle.AmiRefused");
    }
}
