//! The narrow interfaces the workflows and the operator CLI need from AWS, one
//! per service, in domain types. Adapters for the SDK clients are in
//! [`crate::aws`]; pagination and batch limits live there, once.

use std::future::Future;

use crate::error::AwsError;
use crate::model::{
    ActionAck, ActionResult, AsgGroup, AsgInstance, Cluster, CommandInvocation, CommandSent,
    ContainerInstance, ContainerInstanceArn, Ec2Instance, Ec2Status, HookTimeouts, Image,
    InstanceId, InstanceTypeInfo, LaunchTemplateRef, LifecycleAction, LifecycleHook, Refresh,
    RefreshPreferences, ScalingActivity, Service, Task, TaskArn, TemplateVersion,
};

/// Which tasks ListTasks should return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DesiredStatus {
    Running,
    Stopped,
}

/// Whether an EC2 instance is registered in a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registration {
    /// Boxed: a container instance is large beside the other variants.
    Registered(Box<ContainerInstance>),
    NotRegistered,
    /// `ClusterNotFoundException`: the cluster does not exist.
    NoSuchCluster,
}

/// Whether an ECS error says the cluster does not exist
/// (`ClusterNotFoundException`).
pub fn is_no_such_cluster(err: &AwsError) -> bool {
    err.code.as_deref() == Some("ClusterNotFoundException")
}

/// An item of an ECS batch call's `failures[]`: the call succeeded, this item
/// did not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcsFailure {
    /// e.g. `MISSING`.
    pub reason: String,
    pub detail: Option<String>,
}

impl EcsFailure {
    /// The failure of an UpdateContainerInstancesState (DRAINING or ACTIVE) on
    /// the container instance `arn`, as the error it is for the workflow.
    pub fn of_state_update(self, arn: &ContainerInstanceArn) -> crate::error::Error {
        crate::error::Error::EcsItemFailure {
            operation: "UpdateContainerInstancesState",
            arn: arn.to_string(),
            reason: self.reason,
            detail: self.detail,
        }
    }
}

/// What StopTask did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopResult {
    Stopped,
    /// ECS does not know the task (`InvalidParameterException`): it is already gone.
    NotFound(String),
}

pub trait Ecs: Send + Sync {
    /// Every cluster ARN of the account and region.
    fn cluster_arns(&self) -> impl Future<Output = Result<Vec<Cluster>, AwsError>> + Send;
    /// The container instance of an EC2 instance in one cluster, if registered
    /// there; a cluster that does not exist is `NoSuchCluster`, not an error.
    fn find_container_instance(
        &self,
        cluster: &Cluster,
        ec2_instance_id: &InstanceId,
    ) -> impl Future<Output = Result<Registration, AwsError>> + Send;
    /// One container instance by ARN; `None` if ECS no longer knows it.
    fn describe_container_instance(
        &self,
        cluster: &Cluster,
        arn: &ContainerInstanceArn,
    ) -> impl Future<Output = Result<Option<ContainerInstance>, AwsError>> + Send;
    /// Container instances by ARN (100 a call); those ECS no longer knows are
    /// left out.
    fn describe_container_instances(
        &self,
        cluster: &Cluster,
        arns: &[ContainerInstanceArn],
    ) -> impl Future<Output = Result<Vec<ContainerInstance>, AwsError>> + Send;
    /// Sets custom attributes `(name, value)` on a container instance, in one call.
    fn set_attributes(
        &self,
        cluster: &Cluster,
        container_instance: &ContainerInstanceArn,
        attributes: &[(&str, &str)],
    ) -> impl Future<Output = Result<(), AwsError>> + Send;
    /// Removes custom attributes (by name) from a container instance, in one call.
    fn delete_attributes(
        &self,
        cluster: &Cluster,
        container_instance: &ContainerInstanceArn,
        names: &[&str],
    ) -> impl Future<Output = Result<(), AwsError>> + Send;
    /// Sets DRAINING; a per-item failure (`failures[]`) comes back as `Err`.
    fn set_draining(
        &self,
        cluster: &Cluster,
        arn: &ContainerInstanceArn,
    ) -> impl Future<Output = Result<Result<(), EcsFailure>, AwsError>> + Send;
    /// Sets ACTIVE again (the undo of an early drain); a per-item failure
    /// (`failures[]`) comes back as `Err`.
    fn set_active(
        &self,
        cluster: &Cluster,
        arn: &ContainerInstanceArn,
    ) -> impl Future<Output = Result<Result<(), EcsFailure>, AwsError>> + Send;
    /// ARNs of tasks on a container instance with this desired status (all pages).
    fn task_arns(
        &self,
        cluster: &Cluster,
        container_instance: &ContainerInstanceArn,
        desired: DesiredStatus,
    ) -> impl Future<Output = Result<Vec<TaskArn>, AwsError>> + Send;
    /// Describes tasks (any number; batched by 100).
    fn tasks(
        &self,
        cluster: &Cluster,
        arns: &[TaskArn],
    ) -> impl Future<Output = Result<Vec<Task>, AwsError>> + Send;
    /// Describes services by name (any number; batched by 10). Unknown ones are left out.
    fn services(
        &self,
        cluster: &Cluster,
        names: &[String],
    ) -> impl Future<Output = Result<Vec<Service>, AwsError>> + Send;
    /// Stops a task; a task ECS does not know (any more) is `NotFound`, not an error.
    fn stop(
        &self,
        cluster: &Cluster,
        arn: &TaskArn,
        reason: &str,
    ) -> impl Future<Output = Result<StopResult, AwsError>> + Send;
    /// Every container instance of the cluster, any status but INACTIVE (all
    /// pages, described 100 at a time). A cluster that does not exist is an
    /// error for which [`is_no_such_cluster`] holds.
    fn container_instances(
        &self,
        cluster: &Cluster,
    ) -> impl Future<Output = Result<Vec<ContainerInstance>, AwsError>> + Send;
    /// How many container instances the cluster has, any status but INACTIVE
    /// (ListContainerInstances pages only: the drain budget's percentage).
    fn container_instance_count(
        &self,
        cluster: &Cluster,
    ) -> impl Future<Output = Result<usize, AwsError>> + Send;
    /// Every service ARN of the cluster (all pages).
    fn service_arns(
        &self,
        cluster: &Cluster,
    ) -> impl Future<Output = Result<Vec<String>, AwsError>> + Send;
    /// ARNs of the service's tasks with this desired status (all pages;
    /// STOPPED ones as long as ECS keeps them).
    fn service_task_arns(
        &self,
        cluster: &Cluster,
        service: &str,
        desired: DesiredStatus,
    ) -> impl Future<Output = Result<Vec<TaskArn>, AwsError>> + Send;
}

pub trait AutoScaling: Send + Sync {
    /// The instance's group and lifecycle state; `None` if no group has it.
    fn instance(
        &self,
        instance_id: &InstanceId,
    ) -> impl Future<Output = Result<Option<AsgInstance>, AwsError>> + Send;
    /// The group and lifecycle state of each of these instances that is in a
    /// group (50 ids a call, all pages); instances in no group are left out.
    fn instances(
        &self,
        instance_ids: &[InstanceId],
    ) -> impl Future<Output = Result<Vec<AsgInstance>, AwsError>> + Send;
    /// The hook's timeouts; `None` if the hook does not exist (any more).
    fn hook_timeouts(
        &self,
        asg: &str,
        hook: &str,
    ) -> impl Future<Output = Result<Option<HookTimeouts>, AwsError>> + Send;
    /// Every lifecycle hook of the group.
    fn lifecycle_hooks(
        &self,
        group: &str,
    ) -> impl Future<Output = Result<Vec<LifecycleHook>, AwsError>> + Send;
    fn heartbeat(
        &self,
        action: &LifecycleAction,
    ) -> impl Future<Output = Result<ActionAck, AwsError>> + Send;
    /// Terminates an instance through its group, which launches a replacement
    /// (desired capacity is not decremented) and runs its terminate hooks.
    fn terminate_instance(
        &self,
        instance_id: &InstanceId,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;
    /// Marks an instance unhealthy in its group (grace period not respected): Auto
    /// Scaling replaces it, through its terminate hooks.
    fn mark_unhealthy(
        &self,
        instance_id: &InstanceId,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;
    fn complete(
        &self,
        action: &LifecycleAction,
        result: ActionResult,
    ) -> impl Future<Output = Result<ActionAck, AwsError>> + Send;
    /// A group with its instances and tags; `None` if it does not exist.
    fn group(&self, name: &str) -> impl Future<Output = Result<Option<AsgGroup>, AwsError>> + Send;
    /// The groups of these names (100 a call; unknown names are left out), or
    /// every group of the region when `names` is empty (all pages).
    fn groups(
        &self,
        names: &[String],
    ) -> impl Future<Output = Result<Vec<AsgGroup>, AwsError>> + Send;
    /// The group's instance refreshes, newest first (the last few).
    fn refreshes(&self, group: &str)
    -> impl Future<Output = Result<Vec<Refresh>, AwsError>> + Send;
    /// The group's newest instance refresh (by start time, among its last
    /// 100), if any.
    fn newest_refresh(
        &self,
        group: &str,
    ) -> impl Future<Output = Result<Option<Refresh>, AwsError>> + Send;
    /// Starts an instance refresh to a launch template version; `Ok(None)` when
    /// Auto Scaling says one is already in progress.
    fn start_refresh(
        &self,
        group: &str,
        template_id: &str,
        version: i64,
        preferences: RefreshPreferences,
    ) -> impl Future<Output = Result<Option<String>, AwsError>> + Send;
    /// Rolls back the active refresh; `Ok(None)` when none is active.
    fn rollback_refresh(
        &self,
        group: &str,
    ) -> impl Future<Output = Result<Option<String>, AwsError>> + Send;
    /// Points the group at a launch template version (by number).
    fn pin_template(
        &self,
        group: &str,
        template_id: &str,
        version: i64,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;
    /// Launches since `since_ms` that ended failed or cancelled (a launch hook
    /// abandoned them, or EC2 refused), each as `description: status message`
    /// (among the group's last 50 activities).
    fn refused_launches(
        &self,
        group: &str,
        since_ms: u64,
    ) -> impl Future<Output = Result<Vec<String>, AwsError>> + Send;
    /// The group's scaling activities that started at or after `since_ms`
    /// (pages, newest first, are read until one reaches back before it).
    fn activities_since(
        &self,
        group: &str,
        since_ms: u64,
    ) -> impl Future<Output = Result<Vec<ScalingActivity>, AwsError>> + Send;
    /// Sets (`Some`) or removes (`None`) a tag on the group (not propagated).
    fn set_group_tag(
        &self,
        group: &str,
        key: &str,
        value: Option<&str>,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;
}

pub trait Publisher: Send + Sync {
    /// Publishes a message; returns its message id.
    fn publish_message(
        &self,
        topic_arn: &str,
        subject: &str,
        message: &str,
    ) -> impl Future<Output = Result<String, AwsError>> + Send;

    /// Publishes an operator notification with message attributes (for
    /// subscription filter policies); returns its message id.
    fn publish_notification(
        &self,
        topic_arn: &str,
        subject: &str,
        message: &str,
        attributes: &[(&str, &str)],
    ) -> impl Future<Output = Result<String, AwsError>> + Send;
}

pub trait Ec2: Send + Sync {
    /// The instance's state and launch-chain tag; `None` if EC2 does not know it.
    fn instance_state(
        &self,
        instance_id: &InstanceId,
    ) -> impl Future<Output = Result<Option<Ec2Status>, AwsError>> + Send;
    /// Writes one tag on the instance (CreateTags; overwrites its value).
    fn tag_instance(
        &self,
        instance_id: &InstanceId,
        key: &str,
        value: &str,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;
    /// The instances EC2 still knows among `ids`.
    fn instances(
        &self,
        ids: &[InstanceId],
    ) -> impl Future<Output = Result<Vec<Ec2Instance>, AwsError>> + Send;
    /// Launch template versions by number or `$Latest` / `$Default`.
    fn template_versions(
        &self,
        template_id: &str,
        versions: &[String],
    ) -> impl Future<Output = Result<Vec<TemplateVersion>, AwsError>> + Send;
    /// The version a launch template reference (by id or by name) resolves
    /// to; `None` if the template or the version does not exist.
    fn template_version(
        &self,
        template: &LaunchTemplateRef,
    ) -> impl Future<Output = Result<Option<TemplateVersion>, AwsError>> + Send;
    /// Every version newer than `after` (all pages).
    fn template_versions_after(
        &self,
        template_id: &str,
        after: i64,
    ) -> impl Future<Output = Result<Vec<TemplateVersion>, AwsError>> + Send;
    /// A new version copied from `from` with another AMI; its number.
    fn create_template_version(
        &self,
        template_id: &str,
        from: i64,
        ami: &str,
        description: &str,
    ) -> impl Future<Output = Result<i64, AwsError>> + Send;
    /// The images EC2 knows among `ids` (DescribeImages); unknown ones are
    /// left out.
    fn images(&self, ids: &[String]) -> impl Future<Output = Result<Vec<Image>, AwsError>> + Send;
    /// The architectures of the instance types EC2 knows among `types`
    /// (DescribeInstanceTypes); unknown ones are left out.
    fn instance_types(
        &self,
        types: &[String],
    ) -> impl Future<Output = Result<Vec<InstanceTypeInfo>, AwsError>> + Send;
}

pub trait Ssm: Send + Sync {
    /// Runs `document` on the instance with `parameters`, sending its output to
    /// CloudWatch Logs `log_group` when given.
    fn run_document(
        &self,
        document: &str,
        instance_id: &InstanceId,
        parameters: &[(&str, &str)],
        log_group: Option<&str>,
        timeout_s: i32,
    ) -> impl Future<Output = Result<CommandSent, AwsError>> + Send;
    /// The invocation on the instance; `None` while SSM has not registered it yet.
    fn command_invocation(
        &self,
        command_id: &str,
        instance_id: &InstanceId,
    ) -> impl Future<Output = Result<Option<CommandInvocation>, AwsError>> + Send;
    /// A parameter's value; `None` if it does not exist.
    fn parameter(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<String>, AwsError>> + Send;
}
