//! The drain budget's store ([`DrainSlots`]) in a DynamoDB table (on demand):
//! one item per cluster, `cluster` (S, the partition key: the cluster's name or
//! ARN as configured), `version` (N) and `book` (S: the [`SlotBook`] as JSON).
//! A read is consistent (GetItem, ConsistentRead); a write is a PutItem
//! conditioned on the version read (`attribute_not_exists` for the first), so
//! two function instances never both win one slot.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;

use crate::aws::aws_error;
use crate::drain::budget::{DrainSlots, SlotBook, SlotFuture, Versioned};
use crate::error::AwsError;
use crate::model::Cluster;

const KEY: &str = "cluster";
const VERSION: &str = "version";
const BOOK: &str = "book";

/// The table of `DRAIN_SLOTS_TABLE`.
#[derive(Debug, Clone)]
pub struct SlotTable {
    client: Client,
    table: String,
}

impl SlotTable {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        SlotTable {
            client,
            table: table.into(),
        }
    }

    fn malformed(&self, cluster: &Cluster, what: String) -> AwsError {
        AwsError::new(
            "dynamodb",
            "GetItem",
            Some("MalformedSlotItem".into()),
            format!(
                "the drain budget's item of {cluster} in table {}: {what} (delete the item to reset the budget's state)",
                self.table
            ),
        )
    }
}

impl DrainSlots for SlotTable {
    fn read<'a>(&'a self, cluster: &'a Cluster) -> SlotFuture<'a, Option<Versioned>> {
        Box::pin(async move {
            let resp = self
                .client
                .get_item()
                .table_name(&self.table)
                .key(KEY, AttributeValue::S(cluster.to_string()))
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| aws_error("dynamodb", "GetItem", &e))?;
            let Some(item) = resp.item() else {
                return Ok(None);
            };
            let version = match item.get(VERSION) {
                Some(AttributeValue::N(n)) => n.parse::<u64>().map_err(|_| {
                    self.malformed(cluster, format!("`{VERSION}` is {n:?}, not a whole number"))
                })?,
                other => {
                    return Err(
                        self.malformed(cluster, format!("`{VERSION}` is {other:?}, not a number"))
                    );
                }
            };
            let book = match item.get(BOOK) {
                Some(AttributeValue::S(json)) => {
                    serde_json::from_str::<SlotBook>(json).map_err(|e| {
                        self.malformed(cluster, format!("`{BOOK}` is not a slot book: {e}"))
                    })?
                }
                other => {
                    return Err(
                        self.malformed(cluster, format!("`{BOOK}` is {other:?}, not a string"))
                    );
                }
            };
            Ok(Some(Versioned { book, version }))
        })
    }

    fn write<'a>(
        &'a self,
        cluster: &'a Cluster,
        book: &'a SlotBook,
        expected: Option<u64>,
    ) -> SlotFuture<'a, bool> {
        Box::pin(async move {
            let json = serde_json::to_string(book).map_err(|e| {
                AwsError::new(
                    "dynamodb",
                    "PutItem",
                    None,
                    format!("the slot book as JSON: {e}"),
                )
            })?;
            let request = self
                .client
                .put_item()
                .table_name(&self.table)
                .item(KEY, AttributeValue::S(cluster.to_string()))
                .item(
                    VERSION,
                    AttributeValue::N(expected.map_or(1, |v| v + 1).to_string()),
                )
                .item(BOOK, AttributeValue::S(json));
            let request = match expected {
                None => request
                    .condition_expression("attribute_not_exists(#key)")
                    .expression_attribute_names("#key", KEY),
                Some(v) => request
                    .condition_expression("#version = :version")
                    .expression_attribute_names("#version", VERSION)
                    .expression_attribute_values(":version", AttributeValue::N(v.to_string())),
            };
            match request.send().await {
                Ok(_) => Ok(true),
                Err(e) => {
                    let err = aws_error("dynamodb", "PutItem", &e);
                    if err.code.as_deref() == Some("ConditionalCheckFailedException") {
                        Ok(false)
                    } else {
                        Err(err)
                    }
                }
            }
        })
    }
}
