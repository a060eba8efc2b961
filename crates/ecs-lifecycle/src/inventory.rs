//! Read-only views of the fleet for the operator CLI (`ecs-lifecycle status`,
//! `ecs-lifecycle rollout status`): the reads the workflows' ports
//! ([`crate::ports`]) do not make, one narrow trait per AWS service, in plain
//! data, implemented here for the SDK clients. Nothing here changes anything.
//!
//! Pagination and batch limits live in these adapters, as in [`crate::aws`].

use std::future::Future;

use aws_smithy_types::DateTime;
use serde::Serialize;

use crate::aws::aws_error;
use crate::error::AwsError;
use crate::model::{HookTimeouts, InstanceStatus, LifecycleState, RefreshStatus, Transition};

/// A container instance as the status report shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterInstance {
    pub arn: String,
    pub ec2_instance_id: String,
    pub status: InstanceStatus,
    pub agent_connected: bool,
    /// Tasks whose desired status is RUNNING.
    pub running_tasks: i32,
    /// Tasks in PENDING.
    pub pending_tasks: i32,
    /// When it registered with the cluster (epoch ms).
    pub registered_ms: Option<u64>,
}

/// An instance's Auto Scaling group and lifecycle state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupMember {
    pub instance_id: String,
    pub group: String,
    pub lifecycle_state: LifecycleState,
}

/// A launch template as a group or a refresh names it: by id or by name (AWS
/// takes either), at a version (a number, `$Latest` or `$Default`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LaunchTemplateRef {
    pub id: Option<String>,
    pub name: Option<String>,
    pub version: String,
}

impl LaunchTemplateRef {
    /// The id if known, else the name.
    pub fn label(&self) -> &str {
        self.id
            .as_deref()
            .or(self.name.as_deref())
            .unwrap_or_default()
    }
}

/// An Auto Scaling group: its launch template, instances and tags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupInfo {
    pub name: String,
    pub desired_capacity: i32,
    /// The group's launch template (directly or in its mixed instances
    /// policy); `None` for a launch configuration.
    pub launch_template: Option<LaunchTemplateRef>,
    /// `(instance id, lifecycle state)`.
    pub instances: Vec<(String, LifecycleState)>,
    pub tags: Vec<(String, String)>,
}

/// A lifecycle hook of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HookInfo {
    pub name: String,
    /// `None` for a transition this version does not know.
    pub transition: Option<Transition>,
    pub timeouts: HookTimeouts,
    /// `CONTINUE` or `ABANDON` (Auto Scaling's default is ABANDON).
    pub default_result: String,
}

/// A scaling activity of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Activity {
    pub id: String,
    /// e.g. `Terminating EC2 instance: i-0123456789abcdef0`.
    pub description: String,
    /// A ScalingActivityStatusCode (`MidLifecycleAction`, `Successful`, ...).
    pub status_code: String,
    pub started_ms: Option<u64>,
}

impl Activity {
    /// The activity is over (the instance launched, terminated, or failed to).
    pub fn is_finished(&self) -> bool {
        matches!(
            self.status_code.as_str(),
            "Successful" | "Failed" | "Cancelled"
        )
    }
}

/// An instance refresh and the launch template it moves the group to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefreshInfo {
    pub id: String,
    pub status: RefreshStatus,
    pub status_reason: Option<String>,
    pub percentage: Option<i32>,
    pub instances_to_update: Option<i32>,
    pub started_ms: Option<u64>,
    pub ended_ms: Option<u64>,
    /// Its DesiredConfiguration's launch template; `None` when it has none
    /// (it then moves instances to the group's own launch template).
    pub desired_template: Option<LaunchTemplateRef>,
}

/// A launch template version resolved: its number and AMI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TemplateImage {
    pub number: i64,
    pub image_id: Option<String>,
}

pub trait EcsInventory: Send + Sync {
    /// Every container instance of the cluster but INACTIVE ones (all pages,
    /// described 100 at a time); `None` if the cluster does not exist.
    fn cluster_instances(
        &self,
        cluster: &str,
    ) -> impl Future<Output = Result<Option<Vec<ClusterInstance>>, AwsError>> + Send;
}

pub trait AutoScalingInventory: Send + Sync {
    /// The group and lifecycle state of each instance that is in a group (50 ids
    /// a call); instances in no group are left out.
    fn memberships(
        &self,
        instance_ids: &[String],
    ) -> impl Future<Output = Result<Vec<GroupMember>, AwsError>> + Send;
    /// The groups of these names (100 a call; unknown names are left out), or
    /// every group of the region when `names` is empty (all pages).
    fn groups(
        &self,
        names: &[String],
    ) -> impl Future<Output = Result<Vec<GroupInfo>, AwsError>> + Send;
    /// Every lifecycle hook of the group.
    fn lifecycle_hooks(
        &self,
        group: &str,
    ) -> impl Future<Output = Result<Vec<HookInfo>, AwsError>> + Send;
    /// The group's scaling activities that started at or after `since_ms`
    /// (pages, newest first, are read until one reaches back before it).
    fn activities_since(
        &self,
        group: &str,
        since_ms: u64,
    ) -> impl Future<Output = Result<Vec<Activity>, AwsError>> + Send;
    /// The group's newest instance refresh (by start time), if any.
    fn newest_refresh(
        &self,
        group: &str,
    ) -> impl Future<Output = Result<Option<RefreshInfo>, AwsError>> + Send;
}

#[cfg(feature = "ec2")]
pub trait Ec2Inventory: Send + Sync {
    /// The version a launch template reference resolves to, with its AMI;
    /// `None` if the template or the version does not exist.
    fn template_image(
        &self,
        template: &LaunchTemplateRef,
    ) -> impl Future<Output = Result<Option<TemplateImage>, AwsError>> + Send;
}

/// ECS and Auto Scaling limits (see the API references).
const DESCRIBE_CONTAINER_INSTANCES_MAX: usize = 100;
const LIST_PAGE: i32 = 100;
const DESCRIBE_ASG_INSTANCES_MAX: usize = 50;
const ASG_INSTANCES_PAGE: i32 = 50;
/// DescribeAutoScalingGroups takes up to MaxRecords names (50 by default).
const DESCRIBE_GROUPS_MAX: usize = 100;
const GROUPS_PAGE: i32 = 100;
const ACTIVITIES_PAGE: i32 = 100;
/// At most this many pages of activities (10 000), however busy the group.
const ACTIVITIES_MAX_PAGES: usize = 100;
const REFRESHES_PAGE: i32 = 100;

fn epoch_ms(t: Option<&DateTime>) -> Option<u64> {
    t.and_then(|t| u64::try_from(t.to_millis().ok()?).ok())
}

impl EcsInventory for aws_sdk_ecs::Client {
    async fn cluster_instances(
        &self,
        cluster: &str,
    ) -> Result<Option<Vec<ClusterInstance>>, AwsError> {
        let listed: Result<Vec<String>, _> = self
            .list_container_instances()
            .cluster(cluster)
            .max_results(LIST_PAGE)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await;
        let arns = match listed {
            Ok(arns) => arns,
            Err(e) => {
                let err = aws_error("ecs", "ListContainerInstances", &e);
                if err.code.as_deref() == Some("ClusterNotFoundException") {
                    return Ok(None);
                }
                return Err(err);
            }
        };
        let mut out = Vec::with_capacity(arns.len());
        for chunk in arns.chunks(DESCRIBE_CONTAINER_INSTANCES_MAX) {
            let resp = self
                .describe_container_instances()
                .cluster(cluster)
                .set_container_instances(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| aws_error("ecs", "DescribeContainerInstances", &e))?;
            // failures[] (MISSING): deregistered between the two calls; left out.
            out.extend(resp.container_instances().iter().filter_map(|ci| {
                Some(ClusterInstance {
                    arn: ci.container_instance_arn()?.to_owned(),
                    ec2_instance_id: ci.ec2_instance_id().unwrap_or_default().to_owned(),
                    status: InstanceStatus::parse(ci.status().unwrap_or_default()),
                    agent_connected: ci.agent_connected(),
                    running_tasks: ci.running_tasks_count(),
                    pending_tasks: ci.pending_tasks_count(),
                    registered_ms: epoch_ms(ci.registered_at()),
                })
            }));
        }
        Ok(Some(out))
    }
}

fn template_ref(
    spec: &aws_sdk_autoscaling::types::LaunchTemplateSpecification,
) -> Option<LaunchTemplateRef> {
    let id = spec.launch_template_id().map(str::to_owned);
    let name = spec.launch_template_name().map(str::to_owned);
    if id.is_none() && name.is_none() {
        return None;
    }
    Some(LaunchTemplateRef {
        id,
        name,
        // AWS's default when a specification names no version.
        version: spec.version().unwrap_or("$Default").to_owned(),
    })
}

fn group_info(g: &aws_sdk_autoscaling::types::AutoScalingGroup) -> Option<GroupInfo> {
    let launch_template = g.launch_template().and_then(template_ref).or_else(|| {
        g.mixed_instances_policy()
            .and_then(|p| p.launch_template())
            .and_then(|t| t.launch_template_specification())
            .and_then(template_ref)
    });
    Some(GroupInfo {
        name: g.auto_scaling_group_name()?.to_owned(),
        desired_capacity: g.desired_capacity().unwrap_or(0),
        launch_template,
        instances: g
            .instances()
            .iter()
            .filter_map(|i| {
                Some((
                    i.instance_id()?.to_owned(),
                    LifecycleState::parse(i.lifecycle_state()?.as_str()),
                ))
            })
            .collect(),
        tags: g
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned())))
            .collect(),
    })
}

/// DescribeAutoScalingGroups, all pages: of these names, or of every group.
async fn describe_groups(
    client: &aws_sdk_autoscaling::Client,
    names: Option<Vec<String>>,
) -> Result<Vec<aws_sdk_autoscaling::types::AutoScalingGroup>, AwsError> {
    client
        .describe_auto_scaling_groups()
        .set_auto_scaling_group_names(names)
        .max_records(GROUPS_PAGE)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| aws_error("autoscaling", "DescribeAutoScalingGroups", &e))
}

fn transition(s: &str) -> Option<Transition> {
    [Transition::Launching, Transition::Terminating]
        .into_iter()
        .find(|t| t.as_str() == s)
}

impl AutoScalingInventory for aws_sdk_autoscaling::Client {
    async fn memberships(&self, instance_ids: &[String]) -> Result<Vec<GroupMember>, AwsError> {
        let mut out = Vec::with_capacity(instance_ids.len());
        for chunk in instance_ids.chunks(DESCRIBE_ASG_INSTANCES_MAX) {
            let details: Vec<_> = self
                .describe_auto_scaling_instances()
                .set_instance_ids(Some(chunk.to_vec()))
                .max_records(ASG_INSTANCES_PAGE)
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .map_err(|e| aws_error("autoscaling", "DescribeAutoScalingInstances", &e))?;
            out.extend(details.iter().filter_map(|d| {
                Some(GroupMember {
                    instance_id: d.instance_id()?.to_owned(),
                    group: d.auto_scaling_group_name()?.to_owned(),
                    lifecycle_state: LifecycleState::parse(d.lifecycle_state()?),
                })
            }));
        }
        Ok(out)
    }

    async fn groups(&self, names: &[String]) -> Result<Vec<GroupInfo>, AwsError> {
        let mut groups = Vec::new();
        if names.is_empty() {
            groups = describe_groups(self, None).await?;
        } else {
            for chunk in names.chunks(DESCRIBE_GROUPS_MAX) {
                groups.extend(describe_groups(self, Some(chunk.to_vec())).await?);
            }
        }
        Ok(groups.iter().filter_map(group_info).collect())
    }

    async fn lifecycle_hooks(&self, group: &str) -> Result<Vec<HookInfo>, AwsError> {
        let resp = self
            .describe_lifecycle_hooks()
            .auto_scaling_group_name(group)
            .send()
            .await
            .map_err(|e| aws_error("autoscaling", "DescribeLifecycleHooks", &e))?;
        Ok(resp
            .lifecycle_hooks()
            .iter()
            .filter_map(|h| {
                let heartbeat = h
                    .heartbeat_timeout()
                    .and_then(|s| u64::try_from(s).ok())
                    .unwrap_or(HookTimeouts::DEFAULT.heartbeat_timeout_s);
                let mut timeouts = HookTimeouts::from_heartbeat(heartbeat);
                if let Some(global) = h.global_timeout().and_then(|g| u64::try_from(g).ok()) {
                    timeouts.global_timeout_s = global;
                }
                Some(HookInfo {
                    name: h.lifecycle_hook_name()?.to_owned(),
                    transition: h.lifecycle_transition().and_then(transition),
                    timeouts,
                    default_result: h.default_result().unwrap_or("ABANDON").to_owned(),
                })
            })
            .collect())
    }

    async fn activities_since(
        &self,
        group: &str,
        since_ms: u64,
    ) -> Result<Vec<Activity>, AwsError> {
        let mut pages = self
            .describe_scaling_activities()
            .auto_scaling_group_name(group)
            .max_records(ACTIVITIES_PAGE)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        let mut read = 0;
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|e| aws_error("autoscaling", "DescribeScalingActivities", &e))?;
            read += 1;
            let mut reached_back = false;
            for a in page.activities() {
                let started_ms = epoch_ms(a.start_time());
                if started_ms.is_some_and(|t| t < since_ms) {
                    reached_back = true;
                    continue;
                }
                let (Some(id), Some(description), Some(code)) =
                    (a.activity_id(), a.description(), a.status_code())
                else {
                    continue;
                };
                out.push(Activity {
                    id: id.to_owned(),
                    description: description.to_owned(),
                    status_code: code.as_str().to_owned(),
                    started_ms,
                });
            }
            if reached_back || read >= ACTIVITIES_MAX_PAGES {
                break;
            }
        }
        Ok(out)
    }

    async fn newest_refresh(&self, group: &str) -> Result<Option<RefreshInfo>, AwsError> {
        // One page of the last 100 (Auto Scaling keeps about six weeks): the
        // newest is picked by start time, whatever order the page is in.
        let resp = self
            .describe_instance_refreshes()
            .auto_scaling_group_name(group)
            .max_records(REFRESHES_PAGE)
            .send()
            .await
            .map_err(|e| aws_error("autoscaling", "DescribeInstanceRefreshes", &e))?;
        Ok(resp
            .instance_refreshes()
            .iter()
            .filter_map(|r| {
                let desired = r.desired_configuration();
                let desired_template = desired
                    .and_then(|d| d.launch_template())
                    .and_then(template_ref)
                    .or_else(|| {
                        desired
                            .and_then(|d| d.mixed_instances_policy())
                            .and_then(|p| p.launch_template())
                            .and_then(|t| t.launch_template_specification())
                            .and_then(template_ref)
                    });
                Some(RefreshInfo {
                    id: r.instance_refresh_id()?.to_owned(),
                    status: RefreshStatus::parse(r.status()?.as_str()),
                    status_reason: r.status_reason().map(str::to_owned),
                    percentage: r.percentage_complete(),
                    instances_to_update: r.instances_to_update(),
                    started_ms: epoch_ms(r.start_time()),
                    ended_ms: epoch_ms(r.end_time()),
                    desired_template,
                })
            })
            .max_by_key(|r| r.started_ms))
    }
}

#[cfg(feature = "ec2")]
impl Ec2Inventory for aws_sdk_ec2::Client {
    async fn template_image(
        &self,
        template: &LaunchTemplateRef,
    ) -> Result<Option<TemplateImage>, AwsError> {
        let mut req = self
            .describe_launch_template_versions()
            .versions(&template.version);
        req = match (&template.id, &template.name) {
            (Some(id), _) => req.launch_template_id(id),
            (None, Some(name)) => req.launch_template_name(name),
            (None, None) => return Ok(None),
        };
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                let err = aws_error("ec2", "DescribeLaunchTemplateVersions", &e);
                // InvalidLaunchTemplateId.NotFound, ...Name.NotFoundException,
                // ...Id.VersionNotFound: nothing to resolve, not a failure.
                if err.code.as_deref().is_some_and(|c| c.contains("NotFound")) {
                    return Ok(None);
                }
                return Err(err);
            }
        };
        Ok(resp.launch_template_versions().first().and_then(|v| {
            Some(TemplateImage {
                number: v.version_number()?,
                image_id: v
                    .launch_template_data()
                    .and_then(|d| d.image_id())
                    .map(str::to_owned),
            })
        }))
    }
}
