use aws_sdk_sns::Client;

use super::aws_error;
use crate::error::AwsError;
use crate::ports::Publisher;

impl Publisher for Client {
    async fn publish_message(
        &self,
        topic_arn: &str,
        subject: &str,
        message: &str,
    ) -> Result<String, AwsError> {
        let resp = self
            .publish()
            .topic_arn(topic_arn)
            .subject(subject)
            .message(message)
            .send()
            .await
            .map_err(|e| aws_error("sns", "Publish", &e))?;
        Ok(resp.message_id().unwrap_or_default().to_owned())
    }
}
