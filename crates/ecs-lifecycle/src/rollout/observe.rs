//! One look at a group for [`crate::rollout::decide()`]: its refreshes, then the
//! group, its launch template versions, its instances in EC2 and in the
//! cluster; the cluster's services; and, before a rollout changes anything,
//! the AMI and the group's instance type.

use std::collections::HashMap;

use crate::error::Error;
use crate::model::{
    AsgGroup, Cluster, ContainerInstance, InstanceId, InstanceStatus, Refresh, TemplateSpec,
    TemplateVersion,
};
use crate::ports::{AutoScaling, DesiredStatus, Ec2, Ecs, Publisher, Ssm};
use crate::rollout::ami::ImageFacts;
use crate::rollout::run::Roller;
use crate::rollout::step::Intent;
use crate::rollout::tags::{
    BASELINE_TAG, Baseline, REFUSED_AMI_TAG, REPORTED_TAG, Refusal, UNSTEADY_TAG,
    parse_version_description,
};
use crate::rollout::view::{ClusterView, GroupView, Member, ServiceView, TemplateRef, target_for};

/// A service as listed, with what finding its tasks needs.
#[derive(Debug, Clone)]
pub(super) struct ServiceRef {
    pub cluster: Cluster,
    pub name: String,
}

impl<A: AutoScaling, C: Ec2, E: Ecs, S: Ssm, P: Publisher> Roller<A, C, E, S, P> {
    /// Everything [`crate::rollout::decide()`] needs about one group, and its
    /// target AMI.
    ///
    /// The refreshes are read first, then the group: a refresh read as ended
    /// ended before the instances and the group's version were read, so a look
    /// that straddles the end of a refresh sees it still running (and waits)
    /// instead of taking the instances it had not replaced yet for ones it
    /// left behind (and starting another).
    pub(super) async fn observe(
        &self,
        name: &str,
        intent: &Intent,
        requested: &str,
        registered: &HashMap<InstanceId, (InstanceStatus, bool)>,
    ) -> Result<(GroupView, String), Error> {
        let missing = || (missing_group(name), requested.to_owned());
        let mut refreshes = match self.autoscaling.refreshes(name).await {
            Ok(r) => r,
            // Auto Scaling answers a group it does not know with an error.
            Err(e) => {
                return match self.autoscaling.group(name).await? {
                    None => Ok(missing()),
                    Some(_) => Err(e.into()),
                };
            }
        };
        let Some(group) = self.autoscaling.group(name).await? else {
            return Ok(missing());
        };
        let tag = |key: &str| {
            group
                .tags
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        let unsteady_since_ms = tag(UNSTEADY_TAG).and_then(|v| v.parse().ok());
        let refused = tag(REFUSED_AMI_TAG).map(Refusal::parse);
        let baseline = tag(BASELINE_TAG).map(Baseline::parse);

        let template = match &group.template() {
            Err(why) => Err(why.clone()),
            Ok(spec) => self.template(spec, &mut refreshes).await?,
        };
        let members = self.members(&group, registered).await?;
        let mut view = GroupView {
            name: name.to_owned(),
            desired_capacity: group.desired_capacity,
            template,
            prepared: None,
            members,
            refreshes,
            refused_launches: vec![],
            unsteady_since_ms,
            reported: tag(REPORTED_TAG).map(str::to_owned),
            refused,
            baseline,
            account_id: group.account_id.clone(),
        };
        let target = target_for(&view, intent, requested).to_owned();
        self.observe_progress(&mut view, &target).await?;
        Ok((view, target))
    }

    /// The group's launch template version, read with every version a
    /// refresh went to (in one call), which marks the refreshes of ours.
    /// `Ok(Err(why))` when the group's version does not exist.
    async fn template(
        &self,
        spec: &TemplateSpec,
        refreshes: &mut [Refresh],
    ) -> Result<Result<TemplateRef, String>, Error> {
        let mut wanted = vec![spec.version.clone()];
        wanted.extend(
            refreshes
                .iter()
                .filter_map(|r| r.desired_version)
                .map(|v| v.to_string()),
        );
        wanted.sort();
        wanted.dedup();
        let versions = self.ec2.template_versions(&spec.id, &wanted).await?;
        for r in refreshes.iter_mut() {
            r.ours = r
                .desired_version
                .and_then(|n| versions.iter().find(|v| v.number == n))
                .and_then(|v| v.description.as_deref())
                .and_then(parse_version_description);
        }
        let current = match spec.version.as_str() {
            "$Latest" => versions.iter().max_by_key(|v| v.number),
            "$Default" => versions.iter().find(|v| v.is_default),
            n => n
                .parse::<i64>()
                .ok()
                .and_then(|n| versions.iter().find(|v| v.number == n)),
        };
        Ok(match current {
            Some(v) => Ok(TemplateRef {
                id: spec.id.clone(),
                version: spec.version.clone(),
                number: v.number,
                ami: v.image_id.clone(),
                ours: v.description.as_deref().and_then(parse_version_description),
                instance_type: v.instance_type.clone(),
            }),
            None => Err(format!(
                "its launch template {} has no version {}",
                spec.id, spec.version
            )),
        })
    }

    /// The group's instances, with their AMI and launch time (EC2) and their
    /// container instance (`registered`).
    async fn members(
        &self,
        group: &AsgGroup,
        registered: &HashMap<InstanceId, (InstanceStatus, bool)>,
    ) -> Result<Vec<Member>, Error> {
        let ids: Vec<InstanceId> = group.instances.iter().map(|(id, _)| id.clone()).collect();
        let ec2: HashMap<InstanceId, _> = self
            .ec2
            .instances(&ids)
            .await?
            .into_iter()
            .map(|i| (i.id.clone(), i))
            .collect();
        Ok(group
            .instances
            .iter()
            .map(|(id, state)| Member {
                id: id.to_string(),
                lifecycle_state: state.clone(),
                ami: ec2.get(id).and_then(|i| i.image_id.clone()),
                launched_ms: ec2.get(id).and_then(|i| i.launched_ms),
                ecs: registered.get(id.as_str()).cloned(),
                healthy: !group.unhealthy.contains(id),
            })
            .collect())
    }

    /// While our refresh runs, the launches a hook refused; with none
    /// running, our version for the target made from where a rollout starts,
    /// if a start already made it.
    async fn observe_progress(&self, view: &mut GroupView, target: &str) -> Result<(), Error> {
        let Ok(template) = &view.template else {
            return Ok(());
        };
        let newest = view.refreshes.first();
        if newest.is_some_and(|r| r.status.is_active()) {
            // Launches a hook refused while our refresh runs.
            if let Some(r) = newest.filter(|r| r.ours.is_some()) {
                view.refused_launches = self
                    .autoscaling
                    .refused_launches(&view.name, r.started_ms.unwrap_or(0))
                    .await?;
            }
        } else {
            let from = template.rollout_source();
            let newer: Vec<TemplateVersion> =
                self.ec2.template_versions_after(&template.id, from).await?;
            view.prepared = newer
                .iter()
                .filter(|v| {
                    v.description
                        .as_deref()
                        .and_then(parse_version_description)
                        .is_some_and(|(ami, f)| ami == target && f == from)
                })
                .map(|v| v.number)
                .max();
        }
        Ok(())
    }

    /// The cluster's services, with running and desired counts (their tasks
    /// are looked up later, only if needed: [`Self::place_services`]).
    pub(super) async fn services(
        &self,
        clusters: &[Cluster],
    ) -> Result<(ClusterView, Vec<ServiceRef>), Error> {
        let mut view = ClusterView::default();
        let mut refs = Vec::new();
        for cluster in clusters {
            let arns = self.ecs.service_arns(cluster).await?;
            for s in self.ecs.services(cluster, &arns).await? {
                view.services.push(ServiceView {
                    name: if clusters.len() > 1 {
                        format!("{cluster}/{}", s.name)
                    } else {
                        s.name.clone()
                    },
                    running: s.running_count,
                    desired: s.desired_count,
                    deployments: s.deployments,
                    instances: None,
                });
                refs.push(ServiceRef {
                    cluster: cluster.clone(),
                    name: s.name,
                });
            }
        }
        Ok((view, refs))
    }

    /// Where the tasks of the services that would count against a rollout
    /// are (unsteady, not deploying, not `excused` by every baseline): the
    /// EC2 instances of their running and recently stopped tasks. Other
    /// services are not looked up.
    pub(super) async fn place_services(
        &self,
        cluster_view: &mut ClusterView,
        refs: &[ServiceRef],
        container_instances: &[ContainerInstance],
        excused: impl Fn(&str) -> bool,
    ) -> Result<(), Error> {
        let ec2_of: HashMap<&str, &str> = container_instances
            .iter()
            .map(|ci| (ci.arn.as_str(), ci.ec2_instance_id.as_str()))
            .collect();
        for (service, r) in cluster_view.services.iter_mut().zip(refs) {
            if service.is_steady()
                || service.deployments > 1
                || service.instances.is_some()
                || excused(&service.name)
            {
                continue;
            }
            let mut arns = Vec::new();
            for desired in [DesiredStatus::Running, DesiredStatus::Stopped] {
                arns.extend(
                    self.ecs
                        .service_task_arns(&r.cluster, &r.name, desired)
                        .await?,
                );
            }
            arns.sort();
            arns.dedup();
            let mut on: Vec<String> = self
                .ecs
                .tasks(&r.cluster, &arns)
                .await?
                .iter()
                .filter(|t| t.service_name() == Some(r.name.as_str()))
                .filter_map(|t| t.container_instance_arn.as_deref())
                .filter_map(|arn| ec2_of.get(arn).map(|id| (*id).to_owned()))
                .collect();
            on.sort();
            on.dedup();
            service.instances = Some(on);
        }
        Ok(())
    }

    /// What [`crate::rollout::ami::vet`] checks the target against: the
    /// image (and a refused one, to tell which is newer) and the group's
    /// instance type.
    pub(super) async fn image_facts(
        &self,
        view: &GroupView,
        target: &str,
    ) -> Result<ImageFacts, Error> {
        let mut ids = vec![target.to_owned()];
        if let Some(Ok(r)) = &view.refused
            && r.ami != target
        {
            ids.push(r.ami.clone());
        }
        let images = self.ec2.images(&ids).await?;
        let types: Vec<String> = view
            .template
            .as_ref()
            .ok()
            .and_then(|t| t.instance_type.clone())
            .into_iter()
            .collect();
        let instance_types = if types.is_empty() {
            Vec::new()
        } else {
            self.ec2.instance_types(&types).await?
        };
        Ok(ImageFacts {
            images,
            instance_types,
        })
    }
}

/// The look at a group Auto Scaling does not know.
fn missing_group(name: &str) -> GroupView {
    GroupView {
        name: name.to_owned(),
        desired_capacity: 0,
        template: Err("no Auto Scaling group has this name".into()),
        prepared: None,
        members: vec![],
        refreshes: vec![],
        refused_launches: vec![],
        unsteady_since_ms: None,
        reported: None,
        refused: None,
        baseline: None,
        account_id: None,
    }
}
