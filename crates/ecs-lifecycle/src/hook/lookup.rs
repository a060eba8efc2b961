//! Finding the container instance of an EC2 instance.

use tracing::{debug, warn};

use crate::config::ClusterScope;
use crate::error::Error;
use crate::model::ContainerInstance;
use crate::ports::Ecs;

/// Searches the clusters of `scope` (or every cluster of the account) for the
/// container instance of `instance_id`. A named cluster that does not exist is
/// logged and skipped.
pub async fn find_container_instance<E: Ecs>(
    ecs: &E,
    scope: &ClusterScope,
    instance_id: &str,
) -> Result<Option<ContainerInstance>, Error> {
    let clusters = match scope {
        ClusterScope::Named(names) => names.clone(),
        ClusterScope::All => ecs.cluster_arns().await?,
    };
    for cluster in &clusters {
        match ecs.find_container_instance(cluster, instance_id).await {
            Ok(Some(ci)) => return Ok(Some(ci)),
            Ok(None) => {}
            Err(e) if e.code.as_deref() == Some("ClusterNotFoundException") => {
                warn!(%cluster, "cluster not found; check CLUSTER_NAME")
            }
            Err(e) => return Err(e.into()),
        }
    }
    debug!(
        clusters_searched = clusters.len(),
        "the instance is not registered in any cluster searched"
    );
    Ok(None)
}
