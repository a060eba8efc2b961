use aws_config::SdkConfig;
use aws_sdk_ecs::types::{ContainerDefinition, SchedulingStrategy};
use serde_json::json;

use crate::{Result, ctx};

/// An ECS-optimized AMI id moto knows (from its public SSM parameter).
const SSM_AMI: &str = "ami-0fe5f366c083f59ca";

/// What to build.
#[derive(Debug, Clone)]
pub struct FleetSpec {
    pub name: String,
    pub instances: i32,
    /// The hooks' HeartbeatTimeout (30..=7200).
    pub heartbeat_timeout: i32,
    /// The last `unregistered` instances are left out of the cluster (see
    /// [`Fleet::register`]).
    pub unregistered: usize,
}

impl FleetSpec {
    pub fn new(name: &str, instances: i32) -> Self {
        FleetSpec {
            name: name.to_owned(),
            instances,
            heartbeat_timeout: 300,
            unregistered: 0,
        }
    }
}

/// A cluster whose container instances are the EC2 instances of one Auto Scaling
/// group, with a terminate hook notifying an SNS topic that an SQS queue reads.
#[derive(Debug, Clone)]
pub struct Fleet {
    pub cluster: String,
    pub cluster_arn: String,
    pub asg: String,
    pub hook: String,
    /// The launch hook (same topic).
    pub launch_hook: String,
    pub topic_arn: String,
    pub queue_url: String,
    /// EC2 instance ids, in a fixed order.
    pub instance_ids: Vec<String>,
    /// Container instance ARNs, same order (registered instances only).
    pub container_instances: Vec<String>,
    pub ecs: aws_sdk_ecs::Client,
    pub autoscaling: aws_sdk_autoscaling::Client,
    pub sns: aws_sdk_sns::Client,
    pub sqs: aws_sdk_sqs::Client,
}

/// What a task is started from and tagged with: its task definition, and the
/// `startedBy` and `group` its starter gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskTags {
    pub task_definition: String,
    pub started_by: String,
    pub group: String,
}

/// A task as the tests look at it.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskInfo {
    pub arn: String,
    pub last_status: String,
    pub desired_status: String,
    pub started_by: Option<String>,
    pub group: Option<String>,
    pub stopped_reason: Option<String>,
    /// Epoch seconds.
    pub stopped_at: Option<f64>,
}

impl Fleet {
    /// The group's launch template (`<name>-lt`; the group starts on `$Latest`).
    pub fn launch_template_name(&self) -> String {
        format!("{}-lt", self.cluster)
    }

    pub async fn create(sdk: &SdkConfig, spec: &FleetSpec) -> Result<Fleet> {
        let ec2 = aws_sdk_ec2::Client::new(sdk);
        let ecs = aws_sdk_ecs::Client::new(sdk);
        let autoscaling = aws_sdk_autoscaling::Client::new(sdk);
        let sns = aws_sdk_sns::Client::new(sdk);
        let sqs = aws_sdk_sqs::Client::new(sdk);
        let name = &spec.name;

        let cluster_arn = ecs
            .create_cluster()
            .cluster_name(name)
            .send()
            .await
            .map_err(ctx("CreateCluster"))?
            .cluster()
            .and_then(|c| c.cluster_arn())
            .ok_or("CreateCluster returned no ARN")?
            .to_owned();

        let ssm_ami = SSM_AMI;
        // As an ECS fleet's launch template is in the account: the instances'
        // role through its instance profile, tags for what it launches, and the
        // tag that lets the stack `ecs-lifecycle`'s ami-rollout make versions of
        // it (docs/ami-rollout.md). The IAM check evaluates what these make AWS
        // authorize (iam:PassRole, ec2:CreateTags, the tag condition).
        use aws_sdk_ec2::types::{
            LaunchTemplateIamInstanceProfileSpecificationRequest,
            LaunchTemplateTagSpecificationRequest, ResourceType, Tag, TagSpecification,
        };
        ec2.create_launch_template()
            .launch_template_name(format!("{name}-lt"))
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::LaunchTemplate)
                    .tags(
                        Tag::builder()
                            .key("ecs-lifecycle:ami-rollout")
                            .value("ecs-lifecycle")
                            .build(),
                    )
                    .build(),
            )
            .launch_template_data(
                aws_sdk_ec2::types::RequestLaunchTemplateData::builder()
                    .image_id(ssm_ami)
                    .instance_type(aws_sdk_ec2::types::InstanceType::M5Large)
                    .iam_instance_profile(
                        LaunchTemplateIamInstanceProfileSpecificationRequest::builder()
                            .name("ecsInstanceRole")
                            .build(),
                    )
                    .tag_specifications(
                        LaunchTemplateTagSpecificationRequest::builder()
                            .resource_type(ResourceType::Instance)
                            .tags(Tag::builder().key("ecs-cluster").value(name).build())
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await
            .map_err(ctx("CreateLaunchTemplate"))?;
        let asg = format!("{name}-asg");
        autoscaling
            .create_auto_scaling_group()
            .auto_scaling_group_name(&asg)
            .launch_template(
                aws_sdk_autoscaling::types::LaunchTemplateSpecification::builder()
                    .launch_template_name(format!("{name}-lt"))
                    .version("$Latest")
                    .build(),
            )
            .min_size(0)
            .max_size(spec.instances * 2)
            .desired_capacity(spec.instances)
            .availability_zones("us-east-1a")
            .send()
            .await
            .map_err(ctx("CreateAutoScalingGroup"))?;

        let (topic_arn, queue_url) =
            crate::notes::topic_with_queue(&sns, &sqs, &format!("{name}-lifecycle")).await?;

        let hook = format!("{name}-drain");
        autoscaling
            .put_lifecycle_hook()
            .auto_scaling_group_name(&asg)
            .lifecycle_hook_name(&hook)
            .lifecycle_transition("autoscaling:EC2_INSTANCE_TERMINATING")
            .heartbeat_timeout(spec.heartbeat_timeout)
            .default_result("CONTINUE")
            .notification_target_arn(&topic_arn)
            .role_arn("arn:aws:iam::123456789012:role/asg-notify")
            .send()
            .await
            .map_err(ctx("PutLifecycleHook"))?;
        let launch_hook = format!("{name}-verify");
        autoscaling
            .put_lifecycle_hook()
            .auto_scaling_group_name(&asg)
            .lifecycle_hook_name(&launch_hook)
            .lifecycle_transition("autoscaling:EC2_INSTANCE_LAUNCHING")
            .heartbeat_timeout(spec.heartbeat_timeout)
            .default_result("ABANDON")
            .notification_target_arn(&topic_arn)
            .role_arn("arn:aws:iam::123456789012:role/asg-notify")
            .send()
            .await
            .map_err(ctx("PutLifecycleHook"))?;

        let group = autoscaling
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(&asg)
            .send()
            .await
            .map_err(ctx("DescribeAutoScalingGroups"))?;
        let mut instance_ids: Vec<String> = group
            .auto_scaling_groups()
            .first()
            .map(|g| {
                g.instances()
                    .iter()
                    .filter_map(|i| i.instance_id().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        instance_ids.sort();
        if instance_ids.len() != usize::try_from(spec.instances).unwrap_or(0) {
            return Err(format!(
                "expected {} instances in {asg}, found {}",
                spec.instances,
                instance_ids.len()
            ));
        }

        let mut fleet = Fleet {
            cluster: name.clone(),
            cluster_arn,
            asg,
            hook,
            launch_hook,
            topic_arn,
            queue_url,
            instance_ids,
            container_instances: Vec::new(),
            ecs,
            autoscaling,
            sns,
            sqs,
        };
        let registered = fleet.instance_ids.len().saturating_sub(spec.unregistered);
        for i in 0..registered {
            fleet.register(i).await?;
        }
        Ok(fleet)
    }

    /// Registers instance `i` with the cluster, as its ECS agent would (instances
    /// register in order).
    pub async fn register(&mut self, i: usize) -> Result<String> {
        if i != self.container_instances.len() {
            return Err(format!(
                "register instances in order: next is {}, not {i}",
                self.container_instances.len()
            ));
        }
        let id = self
            .instance_ids
            .get(i)
            .ok_or_else(|| format!("no instance {i}"))?;
        let ci = self.join(&id.clone()).await?;
        self.container_instances.push(ci.clone());
        Ok(ci)
    }
    /// Registers a one-container task definition for `family`; returns its ARN.
    pub async fn task_definition(&self, family: &str) -> Result<String> {
        let out = self
            .ecs
            .register_task_definition()
            .family(family)
            .container_definitions(
                ContainerDefinition::builder()
                    .name(family)
                    .image("public.ecr.aws/docker/library/busybox:stable")
                    .memory(64)
                    .build(),
            )
            .send()
            .await
            .map_err(ctx("RegisterTaskDefinition"))?;
        Ok(out
            .task_definition()
            .and_then(|t| t.task_definition_arn())
            .ok_or("no task definition ARN")?
            .to_owned())
    }

    /// Creates a service of `desired` tasks (moto's CreateService starts none)
    /// and says how ECS's service scheduler tags its tasks: `startedBy
    /// ecs-svc/<deployment>`, `group service:<name>`.
    pub async fn create_service(
        &self,
        name: &str,
        daemon: bool,
        desired: usize,
    ) -> Result<TaskTags> {
        let td = self.task_definition(name).await?;
        let mut req = self
            .ecs
            .create_service()
            .cluster(&self.cluster)
            .service_name(name)
            .task_definition(&td);
        req = if daemon {
            req.scheduling_strategy(SchedulingStrategy::Daemon)
        } else {
            req.desired_count(i32::try_from(desired).unwrap_or(0))
        };
        let svc = req
            .send()
            .await
            .map_err(ctx(&format!("CreateService {name}")))?;
        let deployment = svc
            .service()
            .and_then(|s| s.deployments().first())
            .and_then(|d| d.id())
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{name}-deployment"));
        let started_by = if deployment.starts_with("ecs-svc/") {
            deployment
        } else {
            format!("ecs-svc/{deployment}")
        };
        Ok(TaskTags {
            task_definition: td,
            started_by,
            group: format!("service:{name}"),
        })
    }

    /// Creates a service and places its tasks: `placement[i]` tasks on container
    /// instance `i`, started the way ECS's service scheduler starts them (see
    /// [`Fleet::create_service`]).
    pub async fn service(
        &self,
        name: &str,
        daemon: bool,
        placement: &[usize],
    ) -> Result<Vec<String>> {
        let tags = self
            .create_service(name, daemon, placement.iter().sum())
            .await?;
        self.place(&tags, placement).await
    }

    /// Starts tasks of `tags`: `placement[i]` on container instance `i`; their ARNs.
    pub(crate) async fn place(&self, tags: &TaskTags, placement: &[usize]) -> Result<Vec<String>> {
        let mut arns = Vec::new();
        for (i, count) in placement.iter().enumerate() {
            for _ in 0..*count {
                arns.extend(self.start_task(tags, i).await?);
            }
        }
        Ok(arns)
    }

    /// A task definition for standalone tasks of `family` and the tags a batch
    /// system gives them (`startedBy batch-runner`, `group family:<family>`).
    pub async fn standalone_family(&self, family: &str) -> Result<TaskTags> {
        Ok(TaskTags {
            task_definition: self.task_definition(family).await?,
            started_by: "batch-runner".to_owned(),
            group: format!("family:{family}"),
        })
    }

    /// Standalone tasks (as RunTask/StartTask by a user or a batch system).
    pub async fn standalone(
        &self,
        family: &str,
        instance: usize,
        count: usize,
    ) -> Result<Vec<String>> {
        let tags = self.standalone_family(family).await?;
        let mut arns = Vec::new();
        for _ in 0..count {
            arns.extend(self.start_task(&tags, instance).await?);
        }
        Ok(arns)
    }

    async fn start_task(&self, tags: &TaskTags, instance: usize) -> Result<Vec<String>> {
        let ci = self
            .container_instances
            .get(instance)
            .ok_or_else(|| format!("no container instance {instance}"))?;
        let out = self
            .ecs
            .start_task()
            .cluster(&self.cluster)
            .task_definition(&tags.task_definition)
            .container_instances(ci)
            .started_by(&tags.started_by)
            .group(&tags.group)
            .send()
            .await
            .map_err(ctx("StartTask"))?;
        Ok(out
            .tasks()
            .iter()
            .filter_map(|t| t.task_arn().map(str::to_owned))
            .collect())
    }

    /// Every task on container instance `i` (desired RUNNING and STOPPED).
    pub async fn tasks_on(&self, instance: usize) -> Result<Vec<TaskInfo>> {
        let ci = &self.container_instances[instance];
        let mut arns = Vec::new();
        for desired in [
            aws_sdk_ecs::types::DesiredStatus::Running,
            aws_sdk_ecs::types::DesiredStatus::Stopped,
        ] {
            let all: Vec<String> = self
                .ecs
                .list_tasks()
                .cluster(&self.cluster)
                .container_instance(ci)
                .desired_status(desired)
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .map_err(ctx("ListTasks"))?;
            arns.extend(all);
        }
        arns.sort();
        arns.dedup();
        let mut out = Vec::new();
        for chunk in arns.chunks(100) {
            let d = self
                .ecs
                .describe_tasks()
                .cluster(&self.cluster)
                .set_tasks(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(ctx("DescribeTasks"))?;
            out.extend(
                d.tasks()
                    .iter()
                    .filter(|t| t.container_instance_arn() == Some(ci.as_str()))
                    .map(|t| TaskInfo {
                        arn: t.task_arn().unwrap_or_default().to_owned(),
                        last_status: t.last_status().unwrap_or_default().to_owned(),
                        desired_status: t.desired_status().unwrap_or_default().to_owned(),
                        started_by: t.started_by().map(str::to_owned),
                        group: t.group().map(str::to_owned),
                        stopped_reason: t.stopped_reason().map(str::to_owned),
                        stopped_at: t.stopped_at().map(|d| d.as_secs_f64()),
                    }),
            );
        }
        Ok(out)
    }

    /// The container instance's ECS status (`ACTIVE`, `DRAINING`, ...).
    pub async fn status_of(&self, instance: usize) -> Result<String> {
        let d = self
            .ecs
            .describe_container_instances()
            .cluster(&self.cluster)
            .container_instances(&self.container_instances[instance])
            .send()
            .await
            .map_err(ctx("DescribeContainerInstances"))?;
        Ok(d.container_instances()
            .first()
            .and_then(|c| c.status())
            .unwrap_or_default()
            .to_owned())
    }

    /// Takes every message waiting in the hook's queue (the SNS notification
    /// documents, as a queue subscribed to the topic receives them).
    pub async fn drain_queue(&self) -> Result<Vec<String>> {
        crate::notes::receive_all(&self.sqs, &self.queue_url).await
    }

    /// An SQS Lambda event carrying these bodies, as the SQS event source sends it.
    pub fn sqs_event(&self, bodies: &[String]) -> serde_json::Value {
        let records: Vec<_> = bodies
            .iter()
            .enumerate()
            .map(|(i, b)| {
                json!({
                    "messageId": format!("msg-{i}"), "receiptHandle": format!("rh-{i}"), "body": b,
                    "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
                    "eventSource": "aws:sqs", "eventSourceARN": format!("arn:aws:sqs:us-east-1:123456789012:{}-lifecycle", self.cluster), "awsRegion": "us-east-1"
                })
            })
            .collect();
        json!({ "Records": records })
    }
}

/// When the last of `tasks` stopped, as ECS says (`stoppedAt`, epoch seconds);
/// `None` when none has.
pub fn last_stopped_at(tasks: &[TaskInfo]) -> Option<f64> {
    tasks.iter().filter_map(|t| t.stopped_at).reduce(f64::max)
}
