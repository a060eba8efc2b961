use aws_sdk_sns::Client;
use aws_sdk_sns::types::MessageAttributeValue;

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

    async fn publish_notification(
        &self,
        topic_arn: &str,
        subject: &str,
        message: &str,
        attributes: &[(&str, &str)],
    ) -> Result<String, AwsError> {
        let mut req = self
            .publish()
            .topic_arn(topic_arn)
            .subject(subject)
            .message(message);
        for (name, value) in attributes {
            // Strings all (filter policies match them exactly).
            let attr = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(*value)
                .build()
                .map_err(|e| {
                    AwsError::new(
                        "sns",
                        "Publish",
                        None,
                        format!("message attribute {name}: {e}"),
                    )
                })?;
            req = req.message_attributes(*name, attr);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| aws_error("sns", "Publish", &e))?;
        Ok(resp.message_id().unwrap_or_default().to_owned())
    }
}
