//! What can go wrong, in words that say what to do, and the exit codes.

use aws_config::{Region, SdkConfig};
use aws_sdk_ecs::config::ProvideCredentials;
use ecs_lifecycle::error::AwsError;

/// All well.
pub const EXIT_OK: u8 = 0;
/// Something needs attention: the output's `attention` list says what.
pub const EXIT_ATTENTION: u8 = 1;
/// A usage error (clap's code), or the cluster or a group does not exist.
pub const EXIT_USAGE: u8 = 2;
/// No answer from AWS: region, credentials, permissions, network, throttling.
pub const EXIT_AWS: u8 = 3;

#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error(
        "no AWS region{}: pass --region REGION, or set AWS_REGION (or AWS_DEFAULT_REGION), or set `region` for the profile in ~/.aws/config",
        profile.as_deref().map(|p| format!(" (profile {p} names none)")).unwrap_or_default()
    )]
    NoRegion { profile: Option<String> },
    #[error(
        "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary ones), or name a profile of ~/.aws/config or ~/.aws/credentials with --profile NAME or AWS_PROFILE (for an SSO profile, run `aws sso login --profile NAME` first).\nThe SDK's credential chain says: {detail}"
    )]
    NoCredentials { detail: String },
    #[error("{0}{hint}", hint = aws_hint(.0))]
    Aws(#[from] AwsError),
    /// The cluster or a group the arguments name does not exist.
    #[error("{0}")]
    NotFound(String),
}

impl Failure {
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::NotFound(_) => EXIT_USAGE,
            Failure::NoRegion { .. } | Failure::NoCredentials { .. } | Failure::Aws(_) => EXIT_AWS,
        }
    }
}

/// What an operator can do about an AWS error, when the code says.
fn aws_hint(e: &AwsError) -> &'static str {
    match e.code.as_deref() {
        None => " (no answer from AWS: check the network, the region and AWS_ENDPOINT_URL if set)",
        Some(c)
            if c.starts_with("AccessDenied")
                || c == "UnauthorizedOperation"
                || c == "AuthFailure"
                || c == "UnrecognizedClientException"
                || c == "InvalidClientTokenId"
                || c == "SignatureDoesNotMatch"
                || c.starts_with("ExpiredToken") =>
        {
            " (check the credentials and their IAM permissions: docs/operating.md#cli lists the read calls)"
        }
        Some(_) => "",
    }
}

/// The SDK configuration from the standard AWS environment and the flags, with
/// a region and credentials, or the reason there are none.
pub async fn sdk_config(region: Option<&str>, profile: Option<&str>) -> Result<SdkConfig, Failure> {
    let mut loader = ecs_lifecycle::aws::config_loader();
    if let Some(p) = profile {
        loader = loader.profile_name(p);
    }
    if let Some(r) = region {
        loader = loader.region(Region::new(r.to_owned()));
    }
    let sdk = loader.load().await;
    if sdk.region().is_none() {
        return Err(Failure::NoRegion {
            profile: profile.map(str::to_owned),
        });
    }
    // Resolve the credentials now, so that their absence is one clear message
    // rather than the first call's dispatch failure.
    let provider = sdk.credentials_provider().ok_or(Failure::NoCredentials {
        detail: "no credentials provider is configured".into(),
    })?;
    provider
        .provide_credentials()
        .await
        .map_err(|e| Failure::NoCredentials {
            detail: error_chain(&e),
        })?;
    Ok(sdk)
}

/// An error and its sources, `: `-separated (Display only, no Debug dump).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aws(code: Option<&str>) -> Failure {
        Failure::Aws(AwsError::new(
            "ecs",
            "ListContainerInstances",
            code.map(str::to_owned),
            "m".into(),
        ))
    }

    #[test]
    fn exit_codes_and_messages() {
        let no_region = Failure::NoRegion {
            profile: Some("ops".into()),
        };
        assert_eq!(no_region.exit_code(), EXIT_AWS);
        let text = no_region.to_string();
        for needle in [
            "no AWS region (profile ops names none)",
            "--region",
            "AWS_REGION",
        ] {
            assert!(text.contains(needle), "{text}");
        }
        let denied = aws(Some("AccessDeniedException"));
        assert_eq!(denied.exit_code(), EXIT_AWS);
        assert!(
            denied
                .to_string()
                .starts_with("ecs:ListContainerInstances failed with AccessDeniedException: m (check the credentials"),
            "{denied}"
        );
        assert!(aws(None).to_string().contains("no answer from AWS"));
        assert_eq!(
            aws(Some("ThrottlingException")).to_string(),
            "ecs:ListContainerInstances failed with ThrottlingException: m"
        );
        assert_eq!(
            Failure::NotFound("no cluster".into()).exit_code(),
            EXIT_USAGE
        );
    }
}
