//! The I/O: the reads behind `status` and `rollout status`, through the
//! ports (the library's adapters), into the plain data the pure reports take.

use std::collections::{BTreeSet, HashMap};

use ecs_lifecycle::drain::budget::{DrainSlots, SlotBook, budget_key};
use ecs_lifecycle::model::{InstanceId, TemplateVersion, is_instance_id};
use ecs_lifecycle::ports::{AutoScaling, Ec2, Ecs, is_no_such_cluster};

use crate::failure::Failure;
use crate::rollout::{self, GroupObserved};
use crate::status::{self, ACTION_HORIZON_MS};

/// The named groups AWS did not return, as a usage error.
fn missing_groups(named: &[String], found: &[String], region: &str) -> Result<(), Failure> {
    let missing: BTreeSet<&str> = named
        .iter()
        .map(String::as_str)
        .filter(|n| !found.iter().any(|f| f == n))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let list: Vec<&str> = missing.into_iter().collect();
    Err(Failure::NotFound(format!(
        "no Auto Scaling group named {} in {region}",
        list.join(", ")
    )))
}

/// The cluster's drain budget as its table holds it (`None`: no item yet).
pub async fn drain_slots(
    table: &dyn DrainSlots,
    cluster: &str,
) -> Result<Option<SlotBook>, Failure> {
    Ok(table
        .read(&budget_key(&cluster.into()))
        .await?
        .map(|v| v.book))
}

pub async fn status<E, A, C>(
    ecs: &E,
    asg: &A,
    ec2: &C,
    region: &str,
    cluster: &str,
    named: &[String],
    now_ms: u64,
) -> Result<status::Observed, Failure>
where
    E: Ecs,
    A: AutoScaling,
    C: Ec2,
{
    let container_instances = match ecs.container_instances(&cluster.into()).await {
        Ok(found) => found,
        Err(e) if is_no_such_cluster(&e) => {
            return Err(Failure::NotFound(format!(
                "no ECS cluster named {cluster} in {region}"
            )));
        }
        Err(e) => return Err(e.into()),
    };
    // ECS Anywhere instances (mi-...) are in no group and not in EC2.
    let ids: Vec<InstanceId> = container_instances
        .iter()
        .map(|ci| ci.ec2_instance_id.clone())
        .filter(|id| is_instance_id(id))
        .collect();
    let memberships = asg.instances(&ids).await?;
    let names = status::groups_to_look_in(named, &memberships);
    let mut groups = if names.is_empty() {
        Vec::new()
    } else {
        asg.groups(&names).await?
    };
    let found: Vec<String> = groups.iter().map(|g| g.name.clone()).collect();
    missing_groups(named, &found, region)?;
    groups.sort_by(|a, b| a.name.cmp(&b.name));

    let mut hooks = HashMap::new();
    let mut activities = HashMap::new();
    for g in &groups {
        let states = || g.instances.iter().map(|(_, s)| s);
        if states().any(status::needs_hooks) {
            hooks.insert(g.name.clone(), asg.lifecycle_hooks(&g.name).await?);
        }
        if states().any(status::needs_activities) {
            let since = now_ms.saturating_sub(ACTION_HORIZON_MS);
            activities.insert(g.name.clone(), asg.activities_since(&g.name, since).await?);
        }
    }

    let mut all: BTreeSet<InstanceId> = ids.into_iter().collect();
    all.extend(
        groups
            .iter()
            .flat_map(|g| g.instances.iter().map(|(id, _)| id.clone()))
            .filter(|id| is_instance_id(id)),
    );
    let all: Vec<InstanceId> = all.into_iter().collect();
    let ec2 = ec2.instances(&all).await?;

    Ok(status::Observed {
        region: region.to_owned(),
        cluster: cluster.to_owned(),
        now_ms,
        groups,
        container_instances,
        memberships,
        hooks,
        activities,
        ec2,
        drain_slots: None,
    })
}

pub async fn rollout<A, C>(
    asg: &A,
    ec2: &C,
    region: &str,
    named: &[String],
    now_ms: u64,
) -> Result<rollout::Observed, Failure>
where
    A: AutoScaling,
    C: Ec2,
{
    let mut infos = asg.groups(named).await?;
    let found: Vec<String> = infos.iter().map(|g| g.name.clone()).collect();
    missing_groups(named, &found, region)?;
    infos.sort_by(|a, b| a.name.cmp(&b.name));

    // Groups of one template share its versions: resolve each once.
    let mut resolved: HashMap<(String, String), Option<TemplateVersion>> = HashMap::new();
    let mut groups = Vec::with_capacity(infos.len());
    for info in infos {
        let refresh = asg.newest_refresh(&info.name).await?;
        let mut images = Vec::new();
        let target = GroupObserved::target_template(&info, refresh.as_ref()).map(|(t, _)| t);
        for t in [info.launch_template.as_ref(), target.as_ref()] {
            let image = match t {
                None => None,
                Some(t) => {
                    let key = (t.label().to_owned(), t.version.clone());
                    match resolved.get(&key) {
                        Some(image) => image.clone(),
                        None => {
                            let image = ec2.template_version(t).await?;
                            resolved.insert(key, image.clone());
                            image
                        }
                    }
                }
            };
            images.push(image);
        }
        let target_image = images.pop().flatten();
        let current = images.pop().flatten();
        groups.push(GroupObserved {
            info,
            refresh,
            current,
            target: target_image,
        });
    }
    Ok(rollout::Observed {
        region: region.to_owned(),
        now_ms,
        groups,
    })
}

/// The groups `retained` looks in: the named ones (each must exist) or every
/// group of the region.
pub async fn retained_groups<A: AutoScaling>(
    asg: &A,
    region: &str,
    named: &[String],
) -> Result<Vec<ecs_lifecycle::model::AsgGroup>, Failure> {
    let groups = asg.groups(named).await?;
    let found: Vec<String> = groups.iter().map(|g| g.name.clone()).collect();
    missing_groups(named, &found, region)?;
    Ok(groups)
}
