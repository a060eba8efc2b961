//! The set-up every scenario runs on: the 200-task mix of replica services,
//! daemons and standalone tasks, placed through the stand-in's control API (one
//! call a batch of tasks, not one StartTask a task).

use devtools::seed_tasks;
use testkit::{Fleet, Result, Standin, TaskTags};

/// The 200-task mix on a measured instance.
const REPLICA_SERVICES: usize = 10;
const TASKS_PER_REPLICA_SERVICE: usize = 19;
const DAEMONS: [&str; 3] = ["log-router", "metrics-agent", "security-agent"];
const STANDALONE_TASKS: usize = 7;

/// Replica and daemon services and a standalone family, ready to be seeded.
#[derive(Debug)]
pub struct Workload {
    replica: Vec<TaskTags>,
    daemons: Vec<TaskTags>,
    standalone: TaskTags,
}

impl Workload {
    pub async fn create(fleet: &Fleet, targets: usize) -> Result<Workload> {
        let mut replica = Vec::new();
        for i in 0..REPLICA_SERVICES {
            let desired = TASKS_PER_REPLICA_SERVICE * targets;
            replica.push(
                fleet
                    .create_service(&format!("svc-{i:02}"), false, desired)
                    .await?,
            );
        }
        let mut daemons = Vec::new();
        for name in DAEMONS {
            daemons.push(fleet.create_service(name, true, 0).await?);
        }
        let standalone = fleet.standalone_family("batch-job").await?;
        Ok(Workload {
            replica,
            daemons,
            standalone,
        })
    }

    /// The first daemon on every instance but the empty ones (one control call each).
    pub fn seed_cluster_daemon(&self, s: &Standin, fleet: &Fleet, empty: usize) -> Result<()> {
        let n = fleet.container_instances.len().saturating_sub(empty);
        for i in 0..n {
            seed_tasks(s, fleet, i, &self.daemons[0], 1)?;
        }
        Ok(())
    }

    /// The rest of the 200-task mix on one instance (the first daemon is already there).
    pub fn seed_instance(&self, s: &Standin, fleet: &Fleet, instance: usize) -> Result<()> {
        for tags in &self.replica {
            seed_tasks(s, fleet, instance, tags, TASKS_PER_REPLICA_SERVICE)?;
        }
        for tags in self.daemons.iter().skip(1) {
            seed_tasks(s, fleet, instance, tags, 1)?;
        }
        seed_tasks(s, fleet, instance, &self.standalone, STANDALONE_TASKS)
    }
}
