//! One look at a group for [`crate::rollout::decide`]: the group, its launch
//! template versions, its refreshes, its instances in EC2 and in the cluster.

use std::collections::HashMap;

use crate::error::Error;
use crate::model::{InstanceStatus, TemplateVersion};
use crate::ports::{AutoScaling, Ec2, Ecs, Ssm};
use crate::rollout::decide::{
    GroupView, Intent, Member, TemplateRef, UNSTEADY_TAG, parse_version_description, target_for,
};
use crate::rollout::run::Roller;

impl<A: AutoScaling, C: Ec2, E: Ecs, S: Ssm> Roller<A, C, E, S> {
    /// Everything [`decide`] needs about one group, and its target AMI.
    pub(super) async fn observe(
        &self,
        name: &str,
        intent: &Intent,
        requested: &str,
        registered: &HashMap<String, (InstanceStatus, bool)>,
    ) -> Result<(GroupView, String), Error> {
        let Some(group) = self.autoscaling.group(name).await? else {
            let view = GroupView {
                name: name.to_owned(),
                desired_capacity: 0,
                template: Err("no Auto Scaling group has this name".into()),
                prepared: None,
                members: vec![],
                refreshes: vec![],
                refused_launches: vec![],
                unsteady_since_ms: None,
            };
            return Ok((view, requested.to_owned()));
        };
        let unsteady_since_ms = group
            .tags
            .iter()
            .find(|(k, _)| k == UNSTEADY_TAG)
            .and_then(|(_, v)| v.parse().ok());
        let mut refreshes = self.autoscaling.refreshes(name).await?;

        let template = match &group.template {
            Err(why) => Err(why.clone()),
            Ok(spec) => {
                // The group's version and every version a refresh went to, in
                // one call.
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
                for r in &mut refreshes {
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
                match current {
                    Some(v) => Ok(TemplateRef {
                        id: spec.id.clone(),
                        version: spec.version.clone(),
                        number: v.number,
                        ami: v.image_id.clone(),
                        ours: v.description.as_deref().and_then(parse_version_description),
                    }),
                    None => Err(format!(
                        "its launch template {} has no version {}",
                        spec.id, spec.version
                    )),
                }
            }
        };

        let ids: Vec<String> = group.instances.iter().map(|(id, _)| id.clone()).collect();
        let ec2: HashMap<String, _> = self
            .ec2
            .instances(&ids)
            .await?
            .into_iter()
            .map(|i| (i.id.clone(), i))
            .collect();
        let members = group
            .instances
            .iter()
            .map(|(id, state)| Member {
                id: id.clone(),
                lifecycle_state: state.clone(),
                ami: ec2.get(id).and_then(|i| i.image_id.clone()),
                launched_ms: ec2.get(id).and_then(|i| i.launched_ms),
                ecs: registered.get(id).cloned(),
            })
            .collect();

        let mut view = GroupView {
            name: name.to_owned(),
            desired_capacity: group.desired_capacity,
            template,
            prepared: None,
            members,
            refreshes,
            refused_launches: vec![],
            unsteady_since_ms,
        };
        let target = target_for(&view, intent, requested).to_owned();

        if let Ok(template) = &view.template {
            let newest = view.refreshes.first();
            if newest.is_some_and(|r| r.status.is_active()) {
                // Launches a hook refused while our refresh runs.
                if let Some(r) = newest.filter(|r| r.ours.is_some()) {
                    view.refused_launches = self
                        .autoscaling
                        .refused_launches(name, r.started_ms.unwrap_or(0))
                        .await?;
                }
            } else {
                // Our version for the target made from where a rollout starts,
                // if a start already made it.
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
        }
        Ok((view, target))
    }
}
