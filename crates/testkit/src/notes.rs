//! An operator's view of the functions' output: a notification topic with an
//! SQS queue subscribed to it (as an operator's pipeline would be), and the EMF
//! metric records of a function's log.

use aws_config::SdkConfig;
use serde_json::Value;

use crate::{Result, ctx};

/// An SNS topic for `NOTIFICATION_TOPIC_ARN`, delivered to an SQS queue.
#[derive(Debug, Clone)]
pub struct NotificationQueue {
    pub topic_arn: String,
    queue_url: String,
    sqs: aws_sdk_sqs::Client,
}

impl NotificationQueue {
    pub async fn create(sdk: &SdkConfig, name: &str) -> Result<NotificationQueue> {
        let sqs = aws_sdk_sqs::Client::new(sdk);
        let (topic_arn, queue_url) = topic_with_queue(
            &aws_sdk_sns::Client::new(sdk),
            &sqs,
            &format!("{name}-notes"),
        )
        .await?;
        Ok(NotificationQueue {
            topic_arn,
            queue_url,
            sqs,
        })
    }

    /// Takes every notification delivered so far: the SNS envelopes (with
    /// `Message`, `Subject` and `MessageAttributes`), in no promised order.
    pub async fn take(&self) -> Result<Vec<Value>> {
        receive_all(&self.sqs, &self.queue_url)
            .await?
            .iter()
            .map(|b| serde_json::from_str(b).map_err(ctx("an SNS envelope")))
            .collect()
    }
}

/// A topic `name` with a queue `name` subscribed to it: (topic ARN, queue URL).
pub(crate) async fn topic_with_queue(
    sns: &aws_sdk_sns::Client,
    sqs: &aws_sdk_sqs::Client,
    name: &str,
) -> Result<(String, String)> {
    let topic_arn = sns
        .create_topic()
        .name(name)
        .send()
        .await
        .map_err(ctx("CreateTopic"))?
        .topic_arn()
        .ok_or("CreateTopic returned no ARN")?
        .to_owned();
    let queue_url = sqs
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .map_err(ctx("CreateQueue"))?
        .queue_url()
        .ok_or("CreateQueue returned no URL")?
        .to_owned();
    let queue_arn = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(ctx("GetQueueAttributes"))?
        .attributes()
        .and_then(|a| {
            a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                .cloned()
        })
        .ok_or("no QueueArn")?;
    sns.subscribe()
        .topic_arn(&topic_arn)
        .protocol("sqs")
        .endpoint(&queue_arn)
        .send()
        .await
        .map_err(ctx("Subscribe"))?;
    Ok((topic_arn, queue_url))
}

/// Takes (receives and deletes) every message waiting in the queue: their bodies.
pub(crate) async fn receive_all(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Result<Vec<String>> {
    let mut bodies = Vec::new();
    loop {
        let r = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(0)
            .send()
            .await
            .map_err(ctx("ReceiveMessage"))?;
        if r.messages().is_empty() {
            return Ok(bodies);
        }
        for m in r.messages() {
            bodies.extend(m.body().map(str::to_owned));
            if let Some(h) = m.receipt_handle() {
                sqs.delete_message()
                    .queue_url(queue_url)
                    .receipt_handle(h)
                    .send()
                    .await
                    .map_err(ctx("DeleteMessage"))?;
            }
        }
    }
}

/// The notification in an SNS envelope, with its `event` attribute checked
/// against the body.
pub fn notification(envelope: &Value) -> Result<Value> {
    let body: Value = serde_json::from_str(envelope["Message"].as_str().unwrap_or_default())
        .map_err(ctx("a notification body"))?;
    let attr = envelope["MessageAttributes"]["event"]["Value"].as_str();
    if attr != body["event"].as_str() {
        return Err(format!(
            "the event attribute ({attr:?}) is not the body's event: {envelope}"
        ));
    }
    Ok(body)
}

/// The EMF records among a function's log lines.
pub fn metric_records(log: &str) -> Vec<Value> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["_aws"]["CloudWatchMetrics"].is_array())
        .collect()
}

/// The sum of one metric over records.
pub fn metric_sum(records: &[Value], name: &str) -> f64 {
    records.iter().filter_map(|r| r[name].as_f64()).sum()
}

/// The events of delivered notifications (SNS envelopes), sorted: SQS keeps no order.
pub fn notified_events(envelopes: &[Value]) -> Result<Vec<String>> {
    let mut events = envelopes
        .iter()
        .map(|e| {
            Ok(notification(e)?["event"]
                .as_str()
                .unwrap_or_default()
                .to_owned())
        })
        .collect::<Result<Vec<String>>>()?;
    events.sort();
    Ok(events)
}

/// The records that carry `metric`.
pub fn records_with<'a>(records: &'a [Value], metric: &str) -> Vec<&'a Value> {
    records.iter().filter(|r| r.get(metric).is_some()).collect()
}
