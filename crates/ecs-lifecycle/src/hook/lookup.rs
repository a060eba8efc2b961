//! Finding the container instance of an EC2 instance.

use tracing::{debug, warn};

use crate::config::ClusterScope;
use crate::error::Error;
use crate::model::{ContainerInstance, InstanceId};
use crate::ports::{Ecs, Registration};

/// Searches the clusters of `scope` (or every cluster of the account) for the
/// container instance of `instance_id`. A named cluster that does not exist is
/// logged and skipped.
pub async fn find_container_instance<E: Ecs>(
    ecs: &E,
    scope: &ClusterScope,
    instance_id: &InstanceId,
) -> Result<Option<ContainerInstance>, Error> {
    let clusters = match scope {
        ClusterScope::Named(names) => names.clone(),
        ClusterScope::All => ecs.cluster_arns().await?,
    };
    for cluster in &clusters {
        match ecs.find_container_instance(cluster, instance_id).await? {
            Registration::Registered(ci) => return Ok(Some(*ci)),
            Registration::NotRegistered => {}
            Registration::NoSuchCluster => {
                warn!(%cluster, "cluster not found; check CLUSTER_NAME")
            }
        }
    }
    debug!(
        clusters_searched = clusters.len(),
        "the instance is not registered in any cluster searched"
    );
    Ok(None)
}
