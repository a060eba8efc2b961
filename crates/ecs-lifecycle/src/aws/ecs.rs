use aws_sdk_ecs::Client;
use aws_sdk_ecs::types::{
    Attribute, ContainerInstanceStatus, DesiredStatus as SdkDesired, SchedulingStrategy,
};

use super::{aws_error, epoch_ms};
use crate::error::{AwsError, Class};
use crate::model::{
    Cluster, ContainerInstance, ContainerInstanceArn, DRAIN_ATTRIBUTE, DRAIN_HOOK_ATTRIBUTE,
    DRAIN_HOP_ATTRIBUTE, DRAIN_STARTED_ATTRIBUTE, EARLY_DRAIN_ATTRIBUTE, EarlyDrain, InstanceId,
    InstanceStatus, Scheduling, Service, Task, TaskArn, TaskStatus,
};
use crate::ports::{DesiredStatus, Ecs, EcsFailure, Registration, StopResult, is_no_such_cluster};

/// ECS batch limits (see the API reference).
const DESCRIBE_TASKS_MAX: usize = 100;
const DESCRIBE_CONTAINER_INSTANCES_MAX: usize = 100;
const DESCRIBE_SERVICES_MAX: usize = 10;
const LIST_PAGE: i32 = 100;

fn container_instance(
    cluster: &Cluster,
    ci: &aws_sdk_ecs::types::ContainerInstance,
) -> Option<ContainerInstance> {
    Some(ContainerInstance {
        cluster: cluster.clone(),
        arn: ci.container_instance_arn()?.into(),
        ec2_instance_id: ci.ec2_instance_id().unwrap_or_default().into(),
        status: InstanceStatus::parse(ci.status().unwrap_or_default()),
        agent_connected: ci.agent_connected(),
        running_tasks_count: ci.running_tasks_count(),
        pending_tasks_count: ci.pending_tasks_count(),
        registered_ms: epoch_ms(ci.registered_at()),
        drain_token: attribute(ci, DRAIN_ATTRIBUTE),
        drain_hook: attribute(ci, DRAIN_HOOK_ATTRIBUTE),
        drain_started_ms: attribute(ci, DRAIN_STARTED_ATTRIBUTE).and_then(|v| v.parse().ok()),
        drain_hop: attribute(ci, DRAIN_HOP_ATTRIBUTE).and_then(|v| v.parse().ok()),
        early_drain: attribute(ci, EARLY_DRAIN_ATTRIBUTE).and_then(|v| EarlyDrain::parse(&v)),
    })
}

fn attribute(ci: &aws_sdk_ecs::types::ContainerInstance, name: &str) -> Option<String> {
    ci.attributes()
        .iter()
        .find(|a| a.name() == name)
        .and_then(|a| a.value())
        .map(str::to_owned)
}

async fn describe_container_instances<A: AsRef<str>>(
    client: &Client,
    cluster: &Cluster,
    arns: &[A],
) -> Result<Vec<ContainerInstance>, AwsError> {
    let mut out = Vec::with_capacity(arns.len());
    for chunk in arns.chunks(DESCRIBE_CONTAINER_INSTANCES_MAX) {
        let resp = client
            .describe_container_instances()
            .cluster(cluster)
            .set_container_instances(Some(chunk.iter().map(|a| a.as_ref().to_owned()).collect()))
            .send()
            .await
            .map_err(|e| aws_error("ecs", "DescribeContainerInstances", &e))?;
        // failures[] (MISSING): deregistered since it was listed; left out.
        out.extend(
            resp.container_instances()
                .iter()
                .filter_map(|ci| container_instance(cluster, ci)),
        );
    }
    Ok(out)
}

/// UpdateContainerInstancesState for one container instance; its `failures[]`
/// entry, if any, comes back as `Err`.
async fn set_status(
    client: &Client,
    cluster: &Cluster,
    arn: &ContainerInstanceArn,
    status: ContainerInstanceStatus,
) -> Result<Result<(), EcsFailure>, AwsError> {
    let resp = client
        .update_container_instances_state()
        .cluster(cluster)
        .container_instances(arn)
        .status(status)
        .send()
        .await
        .map_err(|e| aws_error("ecs", "UpdateContainerInstancesState", &e))?;
    if let Some(f) = resp.failures().first() {
        return Ok(Err(EcsFailure {
            reason: f.reason().unwrap_or("unknown").to_owned(),
            detail: f.detail().map(str::to_owned),
        }));
    }
    Ok(Ok(()))
}

impl Ecs for Client {
    async fn cluster_arns(&self) -> Result<Vec<Cluster>, AwsError> {
        self.list_clusters()
            .max_results(LIST_PAGE)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map(|arns: Vec<String>| arns.into_iter().map(Cluster::from).collect())
            .map_err(|e| aws_error("ecs", "ListClusters", &e))
    }

    async fn find_container_instance(
        &self,
        cluster: &Cluster,
        ec2_instance_id: &InstanceId,
    ) -> Result<Registration, AwsError> {
        // The filter makes this one call on AWS. Emulators may ignore it, so the
        // match on ec2InstanceId below is what decides, never the filter.
        let listed: Result<Vec<String>, _> = self
            .list_container_instances()
            .cluster(cluster)
            .filter(format!("ec2InstanceId == {ec2_instance_id}"))
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
                if is_no_such_cluster(&err) {
                    return Ok(Registration::NoSuchCluster);
                }
                return Err(err);
            }
        };
        for chunk in arns.chunks(DESCRIBE_CONTAINER_INSTANCES_MAX) {
            let found = describe_container_instances(self, cluster, chunk).await?;
            if let Some(ci) = found
                .into_iter()
                .find(|ci| ci.ec2_instance_id == ec2_instance_id)
            {
                return Ok(Registration::Registered(Box::new(ci)));
            }
        }
        Ok(Registration::NotRegistered)
    }

    async fn describe_container_instance(
        &self,
        cluster: &Cluster,
        arn: &ContainerInstanceArn,
    ) -> Result<Option<ContainerInstance>, AwsError> {
        let found = describe_container_instances(self, cluster, std::slice::from_ref(arn)).await?;
        Ok(found.into_iter().find(|ci| ci.arn == arn))
    }

    async fn describe_container_instances(
        &self,
        cluster: &Cluster,
        arns: &[ContainerInstanceArn],
    ) -> Result<Vec<ContainerInstance>, AwsError> {
        describe_container_instances(self, cluster, arns).await
    }

    async fn set_attributes(
        &self,
        cluster: &Cluster,
        container_instance: &ContainerInstanceArn,
        attributes: &[(&str, &str)],
    ) -> Result<(), AwsError> {
        let mut request = self.put_attributes().cluster(cluster);
        for (name, value) in attributes {
            request = request.attributes(
                Attribute::builder()
                    .name(*name)
                    .value(*value)
                    // The full ARN needs no targetType (AWS: it is required only
                    // with a short id).
                    .target_id(container_instance)
                    .build()
                    .map_err(|e| AwsError::new("ecs", "PutAttributes", None, e.to_string()))?,
            );
        }
        request
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_error("ecs", "PutAttributes", &e))
    }

    async fn delete_attributes(
        &self,
        cluster: &Cluster,
        container_instance: &ContainerInstanceArn,
        names: &[&str],
    ) -> Result<(), AwsError> {
        let mut request = self.delete_attributes().cluster(cluster);
        for name in names {
            request = request.attributes(
                Attribute::builder()
                    .name(*name)
                    .target_id(container_instance)
                    .build()
                    .map_err(|e| AwsError::new("ecs", "DeleteAttributes", None, e.to_string()))?,
            );
        }
        request
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_error("ecs", "DeleteAttributes", &e))
    }

    async fn set_draining(
        &self,
        cluster: &Cluster,
        arn: &ContainerInstanceArn,
    ) -> Result<Result<(), EcsFailure>, AwsError> {
        set_status(self, cluster, arn, ContainerInstanceStatus::Draining).await
    }

    async fn set_active(
        &self,
        cluster: &Cluster,
        arn: &ContainerInstanceArn,
    ) -> Result<Result<(), EcsFailure>, AwsError> {
        set_status(self, cluster, arn, ContainerInstanceStatus::Active).await
    }

    async fn task_arns(
        &self,
        cluster: &Cluster,
        container_instance: &ContainerInstanceArn,
        desired: DesiredStatus,
    ) -> Result<Vec<TaskArn>, AwsError> {
        let desired = match desired {
            DesiredStatus::Running => SdkDesired::Running,
            DesiredStatus::Stopped => SdkDesired::Stopped,
        };
        self.list_tasks()
            .cluster(cluster.as_str())
            .container_instance(container_instance.as_str())
            .desired_status(desired)
            .max_results(LIST_PAGE)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map(|arns: Vec<String>| arns.into_iter().map(TaskArn::from).collect())
            .map_err(|e| aws_error("ecs", "ListTasks", &e))
    }

    async fn tasks(&self, cluster: &Cluster, arns: &[TaskArn]) -> Result<Vec<Task>, AwsError> {
        let mut out = Vec::with_capacity(arns.len());
        for chunk in arns.chunks(DESCRIBE_TASKS_MAX) {
            let resp = self
                .describe_tasks()
                .cluster(cluster)
                .set_tasks(Some(chunk.iter().map(|a| a.to_string()).collect()))
                .send()
                .await
                .map_err(|e| aws_error("ecs", "DescribeTasks", &e))?;
            // A MISSING failure means the task is gone (stopped long ago): nothing to
            // wait for. Any other failure leaves a task's status unknown: never take
            // it as stopped (the drain could end early); look again later.
            if let Some(f) = resp
                .failures()
                .iter()
                .find(|f| f.reason() != Some("MISSING"))
            {
                return Err(AwsError {
                    class: Class::Transient,
                    ..AwsError::new(
                        "ecs",
                        "DescribeTasks",
                        f.reason().map(str::to_owned),
                        format!(
                            "ECS could not describe task {}: {}",
                            f.arn().unwrap_or("(no ARN)"),
                            f.detail().unwrap_or("no detail")
                        ),
                    )
                });
            }
            out.extend(resp.tasks().iter().filter_map(|t| {
                Some(Task {
                    arn: t.task_arn()?.into(),
                    last_status: TaskStatus::parse(t.last_status().unwrap_or_default()),
                    desired_status: TaskStatus::parse(t.desired_status().unwrap_or_default()),
                    started_by: t.started_by().map(str::to_owned),
                    group: t.group().map(str::to_owned),
                    container_instance_arn: t.container_instance_arn().map(Into::into),
                    stopped_at_ms: epoch_ms(t.stopped_at()),
                })
            }));
        }
        Ok(out)
    }

    async fn services(
        &self,
        cluster: &Cluster,
        names: &[String],
    ) -> Result<Vec<Service>, AwsError> {
        let mut out = Vec::with_capacity(names.len());
        for chunk in names.chunks(DESCRIBE_SERVICES_MAX) {
            let resp = self
                .describe_services()
                .cluster(cluster)
                .set_services(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| aws_error("ecs", "DescribeServices", &e))?;
            out.extend(resp.services().iter().filter_map(|s| {
                Some(Service {
                    name: s.service_name()?.to_owned(),
                    scheduling: match s.scheduling_strategy() {
                        Some(SchedulingStrategy::Daemon) => Scheduling::Daemon,
                        _ => Scheduling::Replica,
                    },
                    desired_count: s.desired_count(),
                    running_count: s.running_count(),
                    pending_count: s.pending_count(),
                    deployments: s.deployments().len(),
                    // ECS lists a service's events newest first.
                    latest_event: s
                        .events()
                        .first()
                        .and_then(|e| e.message())
                        .map(str::to_owned),
                })
            }));
        }
        Ok(out)
    }

    async fn stop(
        &self,
        cluster: &Cluster,
        arn: &TaskArn,
        reason: &str,
    ) -> Result<StopResult, AwsError> {
        match self
            .stop_task()
            .cluster(cluster)
            .task(arn)
            .reason(reason)
            .send()
            .await
        {
            Ok(_) => Ok(StopResult::Stopped),
            Err(e) => {
                let err = aws_error("ecs", "StopTask", &e);
                if err.code.as_deref() == Some("InvalidParameterException") {
                    Ok(StopResult::NotFound(err.message))
                } else {
                    Err(err)
                }
            }
        }
    }

    async fn container_instances(
        &self,
        cluster: &Cluster,
    ) -> Result<Vec<ContainerInstance>, AwsError> {
        let arns: Vec<String> = self
            .list_container_instances()
            .cluster(cluster)
            .max_results(LIST_PAGE)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| aws_error("ecs", "ListContainerInstances", &e))?;
        describe_container_instances(self, cluster, &arns).await
    }

    async fn container_instance_count(&self, cluster: &Cluster) -> Result<usize, AwsError> {
        let arns: Vec<String> = self
            .list_container_instances()
            .cluster(cluster)
            .max_results(LIST_PAGE)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| aws_error("ecs", "ListContainerInstances", &e))?;
        Ok(arns.len())
    }

    async fn service_arns(&self, cluster: &Cluster) -> Result<Vec<String>, AwsError> {
        self.list_services()
            .cluster(cluster)
            .max_results(LIST_PAGE)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| aws_error("ecs", "ListServices", &e))
    }

    async fn service_task_arns(
        &self,
        cluster: &Cluster,
        service: &str,
        desired: DesiredStatus,
    ) -> Result<Vec<TaskArn>, AwsError> {
        let desired = match desired {
            DesiredStatus::Running => SdkDesired::Running,
            DesiredStatus::Stopped => SdkDesired::Stopped,
        };
        self.list_tasks()
            .cluster(cluster)
            .service_name(service)
            .desired_status(desired)
            .max_results(LIST_PAGE)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map(|arns: Vec<String>| arns.into_iter().map(TaskArn::from).collect())
            .map_err(|e| aws_error("ecs", "ListTasks", &e))
    }
}
