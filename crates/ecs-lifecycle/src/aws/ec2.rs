use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{LaunchTemplateVersion, RequestLaunchTemplateData, Tag};

use super::{aws_error, epoch_ms};
use crate::error::AwsError;
use crate::model::{
    Ec2Instance, Ec2State, Ec2Status, Image, ImageState, InstanceId, InstanceTypeInfo,
    LAUNCH_CHAIN_TAG, LaunchTemplateRef, TemplateVersion,
};
use crate::ports::Ec2;

/// DescribeInstanceTypes takes at most 100 instance types per call.
const DESCRIBE_INSTANCE_TYPES_MAX: usize = 100;

impl Ec2 for Client {
    async fn instance_state(
        &self,
        instance_id: &InstanceId,
    ) -> Result<Option<Ec2Status>, AwsError> {
        let resp = match self
            .describe_instances()
            .instance_ids(instance_id.as_str())
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
            .find(|i| i.instance_id() == Some(instance_id.as_str()))
            .and_then(|i| {
                let state = Ec2State::parse(i.state()?.name()?.as_str());
                let launch_chain = i
                    .tags()
                    .iter()
                    .find(|t| t.key() == Some(LAUNCH_CHAIN_TAG))
                    .and_then(|t| t.value())
                    .map(str::to_owned);
                Some(Ec2Status {
                    state,
                    launch_chain,
                })
            }))
    }

    async fn tag_instance(
        &self,
        instance_id: &InstanceId,
        key: &str,
        value: &str,
    ) -> Result<(), AwsError> {
        self.create_tags()
            .resources(instance_id.as_str())
            .tags(Tag::builder().key(key).value(value).build())
            .send()
            .await
            .map_err(|e| aws_error("ec2", "CreateTags", &e))?;
        Ok(())
    }

    async fn instances(&self, ids: &[InstanceId]) -> Result<Vec<Ec2Instance>, AwsError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let resp = match self
            .describe_instances()
            .set_instance_ids(Some(ids.iter().map(String::from).collect()))
            .send()
            .await
        {
            Ok(r) => vec![r],
            Err(e) => {
                let err = aws_error("ec2", "DescribeInstances", &e);
                if err.code.as_deref() != Some("InvalidInstanceID.NotFound") {
                    return Err(err);
                }
                // One unknown id fails the whole call: ask one by one, leaving
                // out the ones EC2 has forgotten.
                let mut out = Vec::new();
                for id in ids {
                    match self
                        .describe_instances()
                        .instance_ids(id.as_str())
                        .send()
                        .await
                    {
                        Ok(r) => out.push(r),
                        Err(e) => {
                            let err = aws_error("ec2", "DescribeInstances", &e);
                            if err.code.as_deref() != Some("InvalidInstanceID.NotFound") {
                                return Err(err);
                            }
                        }
                    }
                }
                out
            }
        };
        Ok(resp
            .iter()
            .flat_map(|r| r.reservations())
            .flat_map(|r| r.instances())
            .filter_map(|i| {
                Some(Ec2Instance {
                    id: i.instance_id()?.into(),
                    image_id: i.image_id().map(str::to_owned),
                    launched_ms: epoch_ms(i.launch_time()),
                    state: i
                        .state()
                        .and_then(|s| s.name())
                        .map(|n| Ec2State::parse(n.as_str())),
                })
            })
            .collect())
    }

    async fn template_versions(
        &self,
        template_id: &str,
        versions: &[String],
    ) -> Result<Vec<TemplateVersion>, AwsError> {
        let resp = self
            .describe_launch_template_versions()
            .launch_template_id(template_id)
            .set_versions(Some(versions.to_vec()))
            .send()
            .await
            .map_err(|e| aws_error("ec2", "DescribeLaunchTemplateVersions", &e))?;
        Ok(resp
            .launch_template_versions()
            .iter()
            .filter_map(version_of)
            .collect())
    }

    async fn template_version(
        &self,
        template: &LaunchTemplateRef,
    ) -> Result<Option<TemplateVersion>, AwsError> {
        let req = self
            .describe_launch_template_versions()
            .versions(&template.version);
        let req = match (&template.id, &template.name) {
            (Some(id), _) => req.launch_template_id(id),
            (None, Some(name)) => req.launch_template_name(name),
            (None, None) => return Ok(None),
        };
        match req.send().await {
            Ok(resp) => Ok(resp.launch_template_versions().first().and_then(version_of)),
            Err(e) => {
                let err = aws_error("ec2", "DescribeLaunchTemplateVersions", &e);
                // InvalidLaunchTemplateId.NotFound, ...Name.NotFoundException,
                // ...Id.VersionNotFound: nothing to resolve, not a failure.
                if err.code.as_deref().is_some_and(|c| c.contains("NotFound")) {
                    Ok(None)
                } else {
                    Err(err)
                }
            }
        }
    }

    async fn template_versions_after(
        &self,
        template_id: &str,
        after: i64,
    ) -> Result<Vec<TemplateVersion>, AwsError> {
        let versions: Vec<LaunchTemplateVersion> = self
            .describe_launch_template_versions()
            .launch_template_id(template_id)
            .min_version((after + 1).to_string())
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| aws_error("ec2", "DescribeLaunchTemplateVersions", &e))?;
        Ok(versions
            .iter()
            .filter_map(version_of)
            .filter(|v| v.number > after)
            .collect())
    }

    async fn create_template_version(
        &self,
        template_id: &str,
        from: i64,
        ami: &str,
        description: &str,
    ) -> Result<i64, AwsError> {
        // The same token for the same (template, source, AMI): two runs racing
        // to prepare the same rollout get one version, not two.
        let token = format!("ecs-lifecycle-{template_id}-{from}-{ami}");
        let resp = self
            .create_launch_template_version()
            .launch_template_id(template_id)
            .source_version(from.to_string())
            .version_description(description)
            .launch_template_data(RequestLaunchTemplateData::builder().image_id(ami).build())
            .client_token(token)
            .send()
            .await
            .map_err(|e| aws_error("ec2", "CreateLaunchTemplateVersion", &e))?;
        resp.launch_template_version()
            .and_then(|v| v.version_number())
            .ok_or_else(|| {
                AwsError::new(
                    "ec2",
                    "CreateLaunchTemplateVersion",
                    None,
                    "the answer has no version number".into(),
                )
            })
    }

    async fn images(&self, ids: &[String]) -> Result<Vec<Image>, AwsError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let describe = |ids: Vec<String>| {
            self.describe_images()
                .set_image_ids(Some(ids))
                // Asked for by id, a deprecated image is still described.
                .include_deprecated(true)
                .send()
        };
        let answers = match describe(ids.to_vec()).await {
            Ok(r) => vec![r],
            Err(e) => {
                let err = aws_error("ec2", "DescribeImages", &e);
                if err.code.as_deref() != Some("InvalidAMIID.NotFound") {
                    return Err(err);
                }
                // One unknown id fails the whole call: ask one by one, leaving
                // out the ones EC2 does not know.
                let mut out = Vec::new();
                for id in ids {
                    match describe(vec![id.clone()]).await {
                        Ok(r) => out.push(r),
                        Err(e) => {
                            let err = aws_error("ec2", "DescribeImages", &e);
                            if err.code.as_deref() != Some("InvalidAMIID.NotFound") {
                                return Err(err);
                            }
                        }
                    }
                }
                out
            }
        };
        Ok(answers
            .iter()
            .flat_map(|r| r.images())
            .filter_map(|i| {
                Some(Image {
                    id: i.image_id()?.to_owned(),
                    state: ImageState::parse(i.state().map_or("", |s| s.as_str())),
                    architecture: i.architecture().map(|a| a.as_str().to_owned()),
                    owner_id: i.owner_id().map(str::to_owned),
                    owner_alias: i.image_owner_alias().map(str::to_owned),
                    created_ms: i.creation_date().and_then(crate::time::epoch_ms_of),
                })
            })
            .filter(|i| ids.contains(&i.id))
            .collect())
    }

    async fn instance_types(&self, types: &[String]) -> Result<Vec<InstanceTypeInfo>, AwsError> {
        let mut out = Vec::new();
        for chunk in types.chunks(DESCRIBE_INSTANCE_TYPES_MAX) {
            let describe = |types: &[String]| {
                self.describe_instance_types()
                    .set_instance_types(Some(types.iter().map(|t| t.as_str().into()).collect()))
                    .send()
            };
            let answers = match describe(chunk).await {
                Ok(r) => vec![r],
                Err(e) => {
                    let err = aws_error("ec2", "DescribeInstanceTypes", &e);
                    if err.code.as_deref() != Some("InvalidInstanceType") {
                        return Err(err);
                    }
                    if chunk.len() == 1 {
                        continue;
                    }
                    // An unknown type fails the whole call: one by one.
                    let mut answers = Vec::new();
                    for t in chunk {
                        match describe(std::slice::from_ref(t)).await {
                            Ok(r) => answers.push(r),
                            Err(e) => {
                                let err = aws_error("ec2", "DescribeInstanceTypes", &e);
                                if err.code.as_deref() != Some("InvalidInstanceType") {
                                    return Err(err);
                                }
                            }
                        }
                    }
                    answers
                }
            };
            out.extend(
                answers
                    .iter()
                    .flat_map(|r| r.instance_types())
                    .filter_map(|t| {
                        Some(InstanceTypeInfo {
                            instance_type: t.instance_type()?.as_str().to_owned(),
                            architectures: t
                                .processor_info()
                                .map(|p| {
                                    p.supported_architectures()
                                        .iter()
                                        .map(|a| a.as_str().to_owned())
                                        .collect()
                                })
                                .unwrap_or_default(),
                        })
                    }),
            );
        }
        Ok(out)
    }
}

fn version_of(v: &LaunchTemplateVersion) -> Option<TemplateVersion> {
    Some(TemplateVersion {
        number: v.version_number()?,
        image_id: v
            .launch_template_data()
            .and_then(|d| d.image_id())
            .map(str::to_owned),
        description: v.version_description().map(str::to_owned),
        is_default: v.default_version().unwrap_or(false),
        instance_type: v
            .launch_template_data()
            .and_then(|d| d.instance_type())
            .map(|t| t.as_str().to_owned()),
    })
}
