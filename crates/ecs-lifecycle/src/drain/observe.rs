//! One poll of a drain: the instance in its group, its container instance, the
//! tasks on it that have not stopped (with who owns them), and, with the
//! stability check, the services that do not run their desired count yet.
//!
//! Each poll costs O(tasks / 100) calls: the container instance is described by
//! the ARN found earlier (kept in the memo, so a continuation needs no search),
//! tasks known to be STOPPED are never described again, and each service's
//! scheduling strategy is asked once per invocation.

use std::collections::{BTreeSet, HashMap, HashSet};

use tracing::Span;

use crate::config::StandalonePolicy;
use crate::drain::decide::{LiveTask, Observed, Role};
use crate::drain::run::{DrainMemo, Drainer};
use crate::error::{AwsError, Error};
use crate::hook::lookup::find_container_instance;
use crate::hook::runtime::random_u64;
use crate::model::{
    ContainerInstance, DRAIN_ATTRIBUTE, DRAIN_HOOK_ATTRIBUTE, InstanceStatus, Scheduling,
};
use crate::ports::{AutoScaling, DesiredStatus, Ecs, Publisher};

/// What one invocation has learned so far (never handed over: a new invocation
/// looks again).
#[derive(Debug)]
pub struct Scratch {
    known_stopped: HashSet<String>,
    scheduling: HashMap<String, Scheduling>,
    /// This invocation's own token in the container instance's [`DRAIN_ATTRIBUTE`].
    token: String,
    claimed: bool,
}

impl Default for Scratch {
    fn default() -> Self {
        Scratch {
            known_stopped: HashSet::new(),
            scheduling: HashMap::new(),
            token: format!("{:016x}", random_u64()),
            claimed: false,
        }
    }
}

impl<E: Ecs, A: AutoScaling, P: Publisher> Drainer<E, A, P> {
    pub(super) async fn look(
        &self,
        memo: &mut DrainMemo,
        scratch: &mut Scratch,
        instance_id: &str,
        hook: &str,
    ) -> Result<Observed, Error> {
        let asg_instance = self.hold.autoscaling.instance(instance_id).await?;
        let mut observed = Observed {
            asg_instance,
            ..Observed::default()
        };
        if !observed
            .asg_instance
            .as_ref()
            .is_some_and(|i| i.is_terminate_wait())
        {
            return Ok(observed);
        }
        let Some(ci) = self.container_instance(memo, instance_id).await? else {
            return Ok(observed);
        };
        // One chain per action: every invocation writes its own token into the
        // container instance's attribute when it first sees it, and reads it back
        // with every poll (it comes with DescribeContainerInstances, no extra call).
        // A token of another invocation means a newer chain (a duplicate delivery)
        // holds the drain now: this one stops. The last writer always survives.
        // (An invocation started by an ECS event only looks: it never claims.)
        match ci.drain_token.as_deref() {
            _ if memo.from_event => {}
            _ if !scratch.claimed => {
                self.ecs
                    .set_attributes(
                        &ci.cluster,
                        &ci.arn,
                        &[
                            (DRAIN_ATTRIBUTE, &scratch.token),
                            (DRAIN_HOOK_ATTRIBUTE, hook),
                        ],
                    )
                    .await?;
                scratch.claimed = true;
            }
            Some(token) if token != scratch.token => {
                observed.superseded_by = Some(token.to_owned());
            }
            _ => {}
        }
        if ci.status == InstanceStatus::Draining {
            observed.live_tasks = self.live_tasks(memo, scratch, &ci).await?;
            let waited_on = observed.live_tasks.iter().any(|t| {
                t.role != Role::Standalone || self.config.standalone != StandalonePolicy::Ignore
            });
            if self.config.service_stability && !waited_on {
                observed.unsteady_services = self.unsteady_services(memo, &ci.cluster).await?;
            }
        }
        observed.container_instance = Some(ci);
        Ok(observed)
    }

    async fn container_instance(
        &self,
        memo: &mut DrainMemo,
        instance_id: &str,
    ) -> Result<Option<ContainerInstance>, Error> {
        let hinted = match (&memo.cluster, &memo.container_instance_arn) {
            (Some(cluster), Some(arn)) => self
                .ecs
                .describe_container_instance(cluster, arn)
                .await?
                .filter(|ci| ci.ec2_instance_id == instance_id),
            _ => None,
        };
        // No hint, or a stale one: search.
        let found = match hinted {
            Some(ci) => Some(ci),
            None => {
                find_container_instance(&self.ecs, &self.config.common.clusters, instance_id)
                    .await?
            }
        };
        if let Some(ci) = &found {
            Span::current()
                .record("cluster", ci.cluster.as_str())
                .record("container_instance", ci.arn.as_str());
            memo.cluster = Some(ci.cluster.clone());
            memo.container_instance_arn = Some(ci.arn.clone());
        }
        Ok(found)
    }

    /// Tasks on the instance that are not STOPPED, looking at desired RUNNING and
    /// STOPPED alike: `runningTasksCount` and a plain ListTasks miss the tasks
    /// that are still shutting down.
    pub(super) async fn live_tasks(
        &self,
        memo: &mut DrainMemo,
        scratch: &mut Scratch,
        ci: &ContainerInstance,
    ) -> Result<Vec<LiveTask>, Error> {
        let mut arns = self
            .ecs
            .task_arns(&ci.cluster, &ci.arn, DesiredStatus::Running)
            .await?;
        arns.extend(
            self.ecs
                .task_arns(&ci.cluster, &ci.arn, DesiredStatus::Stopped)
                .await?,
        );
        let mut seen = HashSet::new();
        arns.retain(|a| !scratch.known_stopped.contains(a) && seen.insert(a.clone()));
        let tasks = self.ecs.tasks(&ci.cluster, &arns).await?;

        let mut live = Vec::new();
        for task in tasks {
            // ListTasks' containerInstance filter is exact on AWS; check anyway.
            if task
                .container_instance_arn
                .as_deref()
                .is_some_and(|a| a != ci.arn)
            {
                continue;
            }
            if task.is_stopped() {
                scratch.known_stopped.insert(task.arn.clone());
            } else {
                live.push(task);
            }
        }
        let services: BTreeSet<String> = live
            .iter()
            .filter_map(|t| t.service_name().map(str::to_owned))
            .collect();
        let unknown: Vec<String> = services
            .iter()
            .filter(|s| !scratch.scheduling.contains_key(*s))
            .cloned()
            .collect();
        if !unknown.is_empty() {
            for s in self.ecs.services(&ci.cluster, &unknown).await? {
                scratch.scheduling.insert(s.name, s.scheduling);
            }
        }
        let roles = live
            .into_iter()
            .map(|task| {
                let role = match task.service_name() {
                    None => Role::Standalone,
                    Some(name) if scratch.scheduling.get(name) == Some(&Scheduling::Daemon) => {
                        Role::Daemon
                    }
                    Some(name) => {
                        memo.services.insert(name.to_owned());
                        Role::Service
                    }
                };
                LiveTask { task, role }
            })
            .collect();
        Ok(roles)
    }

    async fn unsteady_services(
        &self,
        memo: &DrainMemo,
        cluster: &str,
    ) -> Result<Vec<String>, AwsError> {
        let names: Vec<String> = memo.services.iter().cloned().collect();
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let services = self.ecs.services(cluster, &names).await?;
        Ok(services
            .into_iter()
            .filter(|s| !s.has_replacements_running())
            .map(|s| s.name)
            .collect())
    }
}
