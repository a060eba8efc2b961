//! What the AMI-rollout tests and demo play around the stand-in's instance
//! refresh: a new AMI, the parameter naming it, and the part of the hooks and
//! the ECS agent (new instances join the cluster, terminated ones leave it).

use aws_config::SdkConfig;
use serde_json::{Value, json};

use crate::{Fleet, Result, Standin, ctx};

/// Refresh statuses in which Auto Scaling is still working.
pub const ACTIVE_REFRESH: &[&str] = &[
    "Pending",
    "InProgress",
    "RollbackInProgress",
    "Cancelling",
    "Baking",
];

impl Fleet {
    /// A new AMI (an image of the first instance), as a new ECS-optimized
    /// release would be; `name` must be unique.
    pub async fn new_ami(&self, sdk: &SdkConfig, name: &str) -> Result<String> {
        Ok(aws_sdk_ec2::Client::new(sdk)
            .create_image()
            .instance_id(&self.instance_ids[0])
            .name(name)
            .send()
            .await
            .map_err(ctx("CreateImage"))?
            .image_id()
            .ok_or("CreateImage returned no id")?
            .to_owned())
    }

    /// Registers an EC2 instance with the cluster, as its ECS agent does (its
    /// instance identity document names it); returns the container instance ARN.
    pub async fn join(&self, instance_id: &str) -> Result<String> {
        let document = json!({"instanceId": instance_id, "region": "us-east-1", "availabilityZone": "us-east-1a", "instanceType": "m5.large"});
        Ok(self
            .ecs
            .register_container_instance()
            .cluster(&self.cluster)
            .instance_identity_document(document.to_string())
            .send()
            .await
            .map_err(ctx("RegisterContainerInstance"))?
            .container_instance()
            .and_then(|c| c.container_instance_arn())
            .ok_or("RegisterContainerInstance returned no ARN")?
            .to_owned())
    }

    /// Deregisters the container instance of a terminated EC2 instance.
    pub async fn leave(&self, instance_id: &str) -> Result<()> {
        let arns = self
            .ecs
            .list_container_instances()
            .cluster(&self.cluster)
            .send()
            .await
            .map_err(ctx("ListContainerInstances"))?
            .container_instance_arns()
            .to_vec();
        if arns.is_empty() {
            return Ok(());
        }
        let described = self
            .ecs
            .describe_container_instances()
            .cluster(&self.cluster)
            .set_container_instances(Some(arns))
            .send()
            .await
            .map_err(ctx("DescribeContainerInstances"))?;
        for ci in described.container_instances() {
            if ci.ec2_instance_id() == Some(instance_id) {
                self.ecs
                    .deregister_container_instance()
                    .cluster(&self.cluster)
                    .container_instance(ci.container_instance_arn().unwrap_or_default())
                    .force(true)
                    .send()
                    .await
                    .map_err(ctx("DeregisterContainerInstance"))?;
            }
        }
        Ok(())
    }

    /// One batch of the group's refresh (the stand-in's), with the hooks'
    /// part: launched instances join the cluster, terminated ones leave it.
    /// Returns the stand-in's answer (`status`, `launched`, `terminated`).
    pub async fn refresh_batch(&self, s: &Standin) -> Result<Value> {
        let out = s.refresh_step(&self.asg)?;
        for id in out["launched"].as_array().into_iter().flatten() {
            self.join(id.as_str().unwrap_or_default()).await?;
        }
        for id in out["terminated"].as_array().into_iter().flatten() {
            self.leave(id.as_str().unwrap_or_default()).await?;
        }
        Ok(out)
    }

    /// The launch hook holds `instance_id` (`Pending:Wait`) and launch-verify
    /// refuses it (CompleteLifecycleAction ABANDON), as with an orphan.
    pub async fn refuse_launch(&self, s: &Standin, instance_id: &str) -> Result<()> {
        s.start_lifecycle_action(
            &self.asg,
            &self.launch_hook,
            instance_id,
            "autoscaling:EC2_INSTANCE_LAUNCHING",
        )?;
        self.autoscaling
            .complete_lifecycle_action()
            .auto_scaling_group_name(&self.asg)
            .lifecycle_hook_name(&self.launch_hook)
            .instance_id(instance_id)
            .lifecycle_action_result("ABANDON")
            .send()
            .await
            .map_err(ctx("CompleteLifecycleAction"))?;
        Ok(())
    }

    async fn describe_group(&self) -> Result<aws_sdk_autoscaling::types::AutoScalingGroup> {
        self.autoscaling
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(&self.asg)
            .send()
            .await
            .map_err(ctx("DescribeAutoScalingGroups"))?
            .auto_scaling_groups()
            .first()
            .cloned()
            .ok_or_else(|| format!("no group {}", self.asg))
    }

    /// The group's instance refreshes, newest first.
    pub async fn refreshes(&self) -> Result<Vec<aws_sdk_autoscaling::types::InstanceRefresh>> {
        Ok(self
            .autoscaling
            .describe_instance_refreshes()
            .auto_scaling_group_name(&self.asg)
            .send()
            .await
            .map_err(ctx("DescribeInstanceRefreshes"))?
            .instance_refreshes()
            .to_vec())
    }

    /// The AMIs of the group's instances, sorted.
    pub async fn instance_amis(&self, sdk: &SdkConfig) -> Result<Vec<String>> {
        let ids: Vec<String> = self
            .describe_group()
            .await?
            .instances()
            .iter()
            .filter_map(|i| i.instance_id().map(str::to_owned))
            .collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let resp = aws_sdk_ec2::Client::new(sdk)
            .describe_instances()
            .set_instance_ids(Some(ids))
            .send()
            .await
            .map_err(ctx("DescribeInstances"))?;
        let mut amis: Vec<String> = resp
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .filter_map(|i| i.image_id().map(str::to_owned))
            .collect();
        amis.sort();
        Ok(amis)
    }

    /// The group's launch template version as written on the group, and the
    /// AMI it resolves to.
    pub async fn group_template(&self, sdk: &SdkConfig) -> Result<(String, String)> {
        let g = self.describe_group().await?;
        let lt = g
            .launch_template()
            .ok_or("the group has no launch template")?;
        let version = lt.version().unwrap_or("$Default").to_owned();
        let v = aws_sdk_ec2::Client::new(sdk)
            .describe_launch_template_versions()
            .launch_template_id(lt.launch_template_id().unwrap_or_default())
            .versions(&version)
            .send()
            .await
            .map_err(ctx("DescribeLaunchTemplateVersions"))?;
        let ami = v
            .launch_template_versions()
            .first()
            .and_then(|v| v.launch_template_data())
            .and_then(|d| d.image_id())
            .ok_or("the version has no image id")?
            .to_owned();
        Ok((version, ami))
    }
}

impl Fleet {
    /// A service of `desired` tasks that runs fewer: `placement[i]` tasks on
    /// container instance `i` (as a service that crash-loops, or cannot place
    /// its tasks, would).
    pub async fn service_below_desired(
        &self,
        name: &str,
        desired: usize,
        placement: &[usize],
    ) -> Result<()> {
        let tags = self.create_service(name, false, desired).await?;
        self.place(&tags, placement).await?;
        Ok(())
    }

    /// The group's tags, by key.
    pub async fn group_tags(&self) -> Result<std::collections::BTreeMap<String, String>> {
        Ok(self
            .describe_group()
            .await?
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned())))
            .collect())
    }

    /// Sets a tag on the group (not propagated), as an operator or a tool would.
    pub async fn set_group_tag(&self, key: &str, value: &str) -> Result<()> {
        self.autoscaling
            .create_or_update_tags()
            .tags(
                aws_sdk_autoscaling::types::Tag::builder()
                    .resource_id(&self.asg)
                    .resource_type("auto-scaling-group")
                    .key(key)
                    .value(value)
                    .propagate_at_launch(false)
                    .build(),
            )
            .send()
            .await
            .map_err(ctx("CreateOrUpdateTags"))?;
        Ok(())
    }
}

/// Sets an SSM parameter (String, overwritten).
pub async fn put_parameter(sdk: &SdkConfig, name: &str, value: &str) -> Result<()> {
    aws_sdk_ssm::Client::new(sdk)
        .put_parameter()
        .name(name)
        .value(value)
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .overwrite(true)
        .send()
        .await
        .map_err(ctx("PutParameter"))?;
    Ok(())
}

/// The EventBridge event Parameter Store sends when a parameter changes.
pub fn parameter_change_event(name: &str) -> Value {
    json!({
        "version": "0",
        "id": "c0b5f8a2-1c77-4f4e-9c39-3c9c5c0d7a11",
        "detail-type": "Parameter Store Change",
        "source": "aws.ssm",
        "account": "123456789012",
        "time": "2026-11-20T12:00:00Z",
        "region": "us-east-1",
        "resources": [format!("arn:aws:ssm:us-east-1:123456789012:parameter{name}")],
        "detail": {"name": name, "type": "String", "operation": "Update"}
    })
}
