use aws_sdk_ec2::Client;

use super::aws_error;
use crate::error::AwsError;
use crate::model::Ec2State;
use crate::ports::Ec2;

impl Ec2 for Client {
    async fn instance_state(&self, instance_id: &str) -> Result<Option<Ec2State>, AwsError> {
        let resp = match self
            .describe_instances()
            .instance_ids(instance_id)
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => {
                let err = aws_error("ec2", "DescribeInstances", &e);
                // EC2 answers an unknown id with an error, not an empty list.
                if err.code.as_deref() == Some("InvalidInstanceID.NotFound") {
                    return Ok(None);
                }
                return Err(err);
            }
        };
        Ok(resp
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .find(|i| i.instance_id() == Some(instance_id))
            .and_then(|i| i.state())
            .and_then(|s| s.name())
            .map(|n| Ec2State(n.as_str().to_owned())))
    }
}
