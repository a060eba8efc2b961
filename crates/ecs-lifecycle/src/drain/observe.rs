//! One poll of a drain: the instance in its group, its container instance, the
//! tasks on it that have not stopped (with who owns them), and, with the
//! stability check, the services that do not run their desired count yet.
//!
//! Each poll costs O(tasks / 100) calls: the container instance is described by
//! the ARN found earlier (kept in the memo, so a continuation needs no search),
//! tasks known to be STOPPED are never described again, and each service's
//! scheduling strategy is asked once per invocation.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use tracing::{Span, warn};

use crate::config::StandalonePolicy;
use crate::drain::decide::{Brief, Census, LiveTask, Observed, Role};
use crate::drain::run::{DrainMemo, Drainer};
use crate::error::{AwsError, Error};
use crate::hook::lookup::find_container_instance;
use crate::hook::pacing::random_u64;
use crate::model::{
    Cluster, ContainerInstance, DRAIN_ATTRIBUTE, DRAIN_HOOK_ATTRIBUTE, DRAIN_HOP_ATTRIBUTE,
    DRAIN_STARTED_ATTRIBUTE, InstanceId, InstanceStatus, Scheduling, Service, TaskArn,
};
use crate::ports::{AutoScaling, DesiredStatus, Ecs, Publisher};

/// What one invocation has learned so far (never handed over: a new invocation
/// looks again).
#[derive(Debug, Clone)]
pub struct Scratch {
    known_stopped: HashSet<TaskArn>,
    scheduling: HashMap<String, Scheduling>,
    /// This invocation's own token in the container instance's [`DRAIN_ATTRIBUTE`].
    token: String,
    claimed: bool,
    /// ECS refused the claim for good: the drain goes on unclaimed.
    claim_refused: bool,
    /// Tokens the attribute held before this invocation claimed the drain (a
    /// stale read may still show them: they are not a newer chain).
    seen_before_claim: HashSet<String>,
    /// What the last stuck report said, one short phrase per line (for the
    /// WARN of a retained drain).
    pub(super) stuck_why: Vec<String>,
    /// Tasks this invocation has seen not STOPPED.
    seen_live: HashSet<TaskArn>,
    /// A brief look of this invocation counted tasks still running: a task
    /// found STOPPED later stopped since (for the completion lag when ECS
    /// gives no `stoppedAt`).
    counted_live: bool,
    /// When the latest task to stop did (ECS's `stoppedAt`; else the poll that
    /// first saw it STOPPED after seeing it live), for the completion lag.
    pub(super) last_stopped_ms: Option<u64>,
    /// When the observation now under way started (epoch ms).
    pub(super) observing_at_ms: u64,
}

impl Default for Scratch {
    fn default() -> Self {
        Scratch {
            known_stopped: HashSet::new(),
            scheduling: HashMap::new(),
            token: format!("{:016x}", random_u64()),
            claimed: false,
            claim_refused: false,
            seen_before_claim: HashSet::new(),
            stuck_why: Vec::new(),
            seen_live: HashSet::new(),
            counted_live: false,
            last_stopped_ms: None,
            observing_at_ms: 0,
        }
    }
}

impl<E: Ecs, A: AutoScaling, P: Publisher> Drainer<E, A, P> {
    /// `action_start_ms`: when Auto Scaling started the action (written with the
    /// claim, for an invocation an ECS event starts). `brief_ok`: the caller
    /// allows a brief look (before the drain deadline, no stuck report due);
    /// `rest_ok`: a rest under ECS throttling (before the drain deadline).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn look(
        &self,
        memo: &mut DrainMemo,
        instance_id: &InstanceId,
        hook: &str,
        action_start_ms: u64,
        attempt: u32,
        brief_ok: bool,
        rest_ok: bool,
    ) -> Result<Observed, Error> {
        let asg_instance = self
            .asg_instances
            .get(
                &(),
                instance_id.clone(),
                |ids| async move { self.hold.autoscaling.instances(&ids).await },
                |i, id| i.instance_id == *id,
            )
            .await?;
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
        let resting = rest_ok && !memo.from_event && memo.resting(memo.scratch.observing_at_ms);
        // Resting, most hops make no ECS call at all; every fourth reads the
        // container instance (below) so that a duplicate chain still stops.
        if resting && !attempt.is_multiple_of(REST_CLAIM_CHECK_EVERY_HOPS) {
            observed.rested = true;
            return Ok(observed);
        }
        let Some(ci) = self.container_instance(memo, instance_id).await? else {
            return Ok(observed);
        };
        observed.superseded_by = self.claim(memo, &ci, hook, action_start_ms, attempt).await;
        if observed.superseded_by.is_some() {
            // This chain stops: nothing more to look at (and a look of the
            // tasks that fails must not hide that it is a duplicate).
            observed.container_instance = Some(ci);
            return Ok(observed);
        }
        // A disconnected agent reports no task as stopped: how long it has been
        // so (carried across invocations) bounds the wait.
        memo.agent_disconnected_since_ms = if ci.agent_connected {
            None
        } else {
            memo.agent_disconnected_since_ms
                .or(Some(memo.scratch.observing_at_ms))
        };
        observed.agent_disconnected_since_ms = memo.agent_disconnected_since_ms;
        // ECS throttled this drain's last look: until the rest is over, a
        // look is at most the container instance (one read, shared with the
        // batch's other looks), which tells a duplicate chain to stop; the
        // tasks are not listed. (The action is heartbeated all the same.)
        if ci.status == InstanceStatus::Draining && resting {
            observed.rested = true;
            observed.container_instance = Some(ci);
            return Ok(observed);
        }
        if ci.status == InstanceStatus::Draining {
            if let Some(brief) = self.brief(memo, &ci, brief_ok) {
                memo.scratch.counted_live = true;
                if let Some(c) = memo.census.as_mut() {
                    c.fewest = Some(c.fewest.map_or(brief.tasks, |f| f.min(brief.tasks)));
                }
                observed.brief = Some(brief);
                observed.container_instance = Some(ci);
                return Ok(observed);
            }
            observed.live_tasks = self.live_tasks(memo, &ci).await?;
            memo.census = Some(census_of(
                &observed.live_tasks,
                memo.scratch.observing_at_ms,
                counted(&ci),
            ));
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

    /// Whether the container instance's task counts alone tell that the drain
    /// waits on: a recent census (a full look within [`FULL_LOOK_EVERY_MS`]),
    /// the agent connected (its counts are current), a look the hook's chain
    /// takes (an ECS event's look is the one that may end the drain), more
    /// tasks RUNNING or PENDING than the census's tasks ECS does not move, and
    /// no more than the fewest counted since the census (a task started on
    /// the draining instance since: a standalone one, by StartTask).
    /// Otherwise the look lists and describes the tasks: to confirm the end
    /// (tasks still shutting down count in neither), to stop daemons or
    /// standalone tasks, to name what blocks the drain, or to refresh the census.
    fn brief(&self, memo: &DrainMemo, ci: &ContainerInstance, brief_ok: bool) -> Option<Brief> {
        let now = memo.scratch.observing_at_ms;
        let census = memo
            .census
            .filter(|c| now.saturating_sub(c.at_ms) < FULL_LOOK_EVERY_MS)?;
        let tasks = counted(ci);
        (brief_ok
            && !memo.from_event
            && ci.agent_connected
            && tasks > census.not_moved_by_ecs(self.config.standalone)
            && census.fewest.is_none_or(|f| tasks <= f))
        .then_some(Brief { tasks, census })
    }

    /// One chain per action: every invocation writes its own token into the
    /// container instance's attribute when it first sees it, and reads it back
    /// with every poll (it comes with DescribeContainerInstances, no extra call).
    /// A token of another invocation of the same hook means a newer chain (a
    /// duplicate delivery) holds the drain now: returns it, and this one stops.
    /// The last writer always survives. (An invocation started by an ECS event
    /// only looks: it never claims.) The claim never gates the drain: a refused
    /// write (attribute limits, an instance deregistered meanwhile) leaves the
    /// drain going on unclaimed.
    async fn claim(
        &self,
        memo: &mut DrainMemo,
        ci: &ContainerInstance,
        hook: &str,
        action_start_ms: u64,
        attempt: u32,
    ) -> Option<String> {
        // A later hop of this drain's chain has looked already: this delivery
        // is a duplicate or a late retry of an earlier hop. (Only a hop that
        // ran writes its number, so the later one carries the drain on.)
        if !memo.from_event
            && ci.drain_hook.as_deref() == Some(hook)
            && let Some(hop) = ci.drain_hop.filter(|h| *h > attempt)
        {
            return Some(format!("hop {hop}"));
        }
        let scratch = &mut memo.scratch;
        // Two terminate hooks of ours on one instance each hold their own action:
        // the claim belongs to the hook whose name sorts first, and a chain only
        // ever yields to a newer chain of its own hook.
        let claimed_by_an_earlier_hook = ci
            .drain_hook
            .as_deref()
            .is_some_and(|h| h < hook && ci.drain_token.is_some());
        match ci.drain_token.as_deref() {
            _ if memo.from_event || scratch.claim_refused || claimed_by_an_earlier_hook => {}
            _ if !scratch.claimed => {
                let started = action_start_ms.to_string();
                let hop = attempt.to_string();
                // What the attribute said before our write: reading it again
                // later is a stale read of our own write, not a newer chain.
                let before = ci.drain_token.clone();
                let written = self
                    .ecs
                    .set_attributes(
                        &ci.cluster,
                        &ci.arn,
                        &[
                            (DRAIN_ATTRIBUTE, &scratch.token),
                            (DRAIN_HOOK_ATTRIBUTE, hook),
                            (DRAIN_STARTED_ATTRIBUTE, &started),
                            (DRAIN_HOP_ATTRIBUTE, &hop),
                        ],
                    )
                    .await;
                match written {
                    Ok(()) => {
                        scratch.claimed = true;
                        scratch.seen_before_claim.extend(before);
                    }
                    Err(e) if e.is_retryable() => {
                        warn!(error = %e, "could not claim the drain for this chain yet; the drain goes on and the claim is tried again at the next look")
                    }
                    Err(e) => {
                        warn!(error = %e, "ECS refused the drain's claim attribute; the drain goes on unclaimed (a duplicate chain is then not told to stop)");
                        scratch.claim_refused = true;
                    }
                }
            }
            Some(token)
                if token != scratch.token
                    && !scratch.seen_before_claim.contains(token)
                    && ci.drain_hook.as_deref().is_none_or(|h| h == hook) =>
            {
                return Some(token.to_owned());
            }
            _ => {}
        }
        None
    }

    async fn container_instance(
        &self,
        memo: &mut DrainMemo,
        instance_id: &InstanceId,
    ) -> Result<Option<ContainerInstance>, Error> {
        let hinted = match (&memo.cluster, &memo.container_instance_arn) {
            (Some(cluster), Some(arn)) => {
                self.container_instances
                    .get(
                        cluster,
                        arn.clone(),
                        |arns| async move {
                            self.ecs.describe_container_instances(cluster, &arns).await
                        },
                        |ci, arn| ci.arn == *arn,
                    )
                    .await?
                    .filter(|ci| ci.ec2_instance_id == instance_id)
            }
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
        ci: &ContainerInstance,
    ) -> Result<Vec<LiveTask>, Error> {
        let DrainMemo {
            scratch, services, ..
        } = memo;
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
        // Every service that had a task on the instance, stopped ones included: the
        // scheduler may stop a service's tasks before the first look sees them
        // live, and the stability check must still wait for its replacements.
        let mut had_tasks: BTreeSet<String> = BTreeSet::new();
        for task in tasks {
            // ListTasks' containerInstance filter is exact on AWS; check anyway.
            if task
                .container_instance_arn
                .as_deref()
                .is_some_and(|a| a != ci.arn)
            {
                continue;
            }
            if let Some(name) = task.service_name() {
                had_tasks.insert(name.to_owned());
            }
            if task.is_stopped() {
                let stopped_at = task.stopped_at_ms.or_else(|| {
                    (scratch.counted_live || scratch.seen_live.contains(&task.arn))
                        .then_some(scratch.observing_at_ms)
                });
                if let Some(t) = stopped_at {
                    scratch.last_stopped_ms = scratch.last_stopped_ms.max(Some(t));
                }
                scratch.known_stopped.insert(task.arn.clone());
            } else {
                scratch.seen_live.insert(task.arn.clone());
                live.push(task);
            }
        }
        let unknown: Vec<String> = had_tasks
            .iter()
            .filter(|s| !scratch.scheduling.contains_key(*s))
            .cloned()
            .collect();
        if !unknown.is_empty() {
            for s in self.ecs.services(&ci.cluster, &unknown).await? {
                scratch.scheduling.insert(s.name, s.scheduling);
            }
        }
        // Replica services (daemons are never replaced elsewhere); a service ECS
        // no longer knows has nothing to wait for.
        services.extend(had_tasks.into_iter().filter(|name| {
            scratch
                .scheduling
                .get(name)
                .is_some_and(|s| *s != Scheduling::Daemon)
        }));
        let roles = live
            .into_iter()
            .map(|task| {
                let role = match task.service_name() {
                    None => Role::Standalone,
                    Some(name) if scratch.scheduling.get(name) == Some(&Scheduling::Daemon) => {
                        Role::Daemon
                    }
                    Some(_) => Role::Service,
                };
                LiveTask { task, role }
            })
            .collect();
        Ok(roles)
    }

    async fn unsteady_services(
        &self,
        memo: &DrainMemo,
        cluster: &Cluster,
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

/// While a drain rests under ECS throttling, one hop in this many reads its
/// container instance (for the chain's claim); the others make no ECS call.
pub const REST_CLAIM_CHECK_EVERY_HOPS: u32 = 4;

/// The longest a census is trusted. A task started on the draining instance
/// after it shows as a count above the fewest seen; one whose start the stop
/// of another hid (between two looks) is seen within this, or at the drain's
/// first stuck report (a full look), whichever comes first.
pub const FULL_LOOK_EVERY_MS: u64 = 900_000;

/// `runningTasksCount + pendingTasksCount`.
fn counted(ci: &ContainerInstance) -> u32 {
    let n = |c: i32| u32::try_from(c.max(0)).unwrap_or(u32::MAX);
    n(ci.running_tasks_count).saturating_add(n(ci.pending_tasks_count))
}

/// The census of a full look's live tasks.
fn census_of(live: &[LiveTask], at_ms: u64, counted: u32) -> Census {
    let count = |role: Role| {
        u32::try_from(live.iter().filter(|t| t.role == role).count()).unwrap_or(u32::MAX)
    };
    Census {
        at_ms,
        service: count(Role::Service),
        daemon: count(Role::Daemon),
        standalone: count(Role::Standalone),
        fewest: Some(counted),
    }
}

/// Ten minutes: the longest a drain waits before saying why it is stuck, and the
/// shortest between two such reports.
pub const STUCK_REPORT_EVERY_MS: u64 = 600_000;

/// Whether a drain that has waited since `started_at` should say why it is stuck:
/// past a quarter of its budget (or ten minutes, whichever comes first), and at
/// most once every ten minutes (across hops: the time of the last report is
/// carried with the drain).
pub fn stuck_report_due(now: u64, started_at: u64, deadline: u64, last: Option<u64>) -> bool {
    let budget = deadline.saturating_sub(started_at);
    let threshold = (budget / 4).min(STUCK_REPORT_EVERY_MS);
    now.saturating_sub(started_at) > threshold
        && last.is_none_or(|t| now.saturating_sub(t) >= STUCK_REPORT_EVERY_MS)
}

/// One line of a stuck drain's report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stuck {
    /// A service whose tasks are still on the instance, with its counts and its
    /// scheduler's latest word.
    Service {
        name: String,
        tasks_here: usize,
        desired: i32,
        running: i32,
        pending: i32,
        latest_event: Option<String>,
    },
    /// A standalone task holding the instance (ECS never moves it).
    Standalone {
        task: TaskArn,
        group: Option<String>,
    },
}

impl Stuck {
    /// The line as one short phrase (the `why` of a retained drain's WARN).
    pub fn summary(&self) -> String {
        match self {
            Stuck::Service {
                name,
                tasks_here,
                desired,
                running,
                pending,
                latest_event,
            } => {
                let mut s = format!(
                    "service {name}: {tasks_here} task(s) here, {running} running and {pending} pending of {desired} desired"
                );
                if let Some(e) = latest_event {
                    s.push_str(": ");
                    s.push_str(e);
                }
                s
            }
            Stuck::Standalone { task, group } => match group {
                Some(g) => format!("standalone task {task} ({g}): ECS never moves it"),
                None => format!("standalone task {task}: ECS never moves it"),
            },
        }
    }
}

/// What holds a drain, from its live tasks and their services' descriptions.
pub fn stuck_report(live: &[LiveTask], services: &[Service]) -> Vec<Stuck> {
    let mut per_service: BTreeMap<&str, usize> = BTreeMap::new();
    let mut out = Vec::new();
    for t in live {
        match (t.role, t.task.service_name()) {
            (Role::Standalone, _) | (_, None) => out.push(Stuck::Standalone {
                task: t.task.arn.clone(),
                group: t.task.group.clone(),
            }),
            (_, Some(name)) => *per_service.entry(name).or_default() += 1,
        }
    }
    let mut lines: Vec<Stuck> = per_service
        .into_iter()
        .map(|(name, tasks_here)| {
            let s = services.iter().find(|s| s.name == name);
            Stuck::Service {
                name: name.to_owned(),
                tasks_here,
                desired: s.map_or(-1, |s| s.desired_count),
                running: s.map_or(-1, |s| s.running_count),
                pending: s.map_or(-1, |s| s.pending_count),
                latest_event: s.and_then(|s| s.latest_event.clone()),
            }
        })
        .collect();
    lines.append(&mut out);
    lines
}

impl<E: Ecs, A: AutoScaling, P: Publisher> Drainer<E, A, P> {
    /// One WARN line per stuck service and per standalone task holding the
    /// instance; returns each line as a short phrase. Best effort: a failure to
    /// describe the services is logged, not raised (the drain goes on).
    pub(super) async fn report_stuck(
        &self,
        cluster: &Cluster,
        live: &[LiveTask],
        waited_ms: u64,
    ) -> Vec<String> {
        let names: Vec<String> = live
            .iter()
            .filter_map(|t| t.task.service_name().map(str::to_owned))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let services = if names.is_empty() {
            Vec::new()
        } else {
            match self.ecs.services(cluster, &names).await {
                Ok(s) => s,
                Err(e) => {
                    warn!(error = %e, "could not describe the services holding the drain");
                    Vec::new()
                }
            }
        };
        let waited_s = waited_ms / 1000;
        let lines = stuck_report(live, &services);
        let why = lines.iter().map(Stuck::summary).collect();
        for line in lines {
            match line {
                Stuck::Service {
                    name,
                    tasks_here,
                    desired,
                    running,
                    pending,
                    latest_event,
                } => warn!(
                    stuck = "service",
                    service = %name,
                    tasks_here,
                    desired,
                    running,
                    pending,
                    latest_event = latest_event.as_deref().unwrap_or(""),
                    waited_s,
                    "drain stuck: the service has not moved its tasks off the instance"
                ),
                Stuck::Standalone { task, group } => warn!(
                    stuck = "standalone",
                    %task,
                    group = group.as_deref().unwrap_or(""),
                    waited_s,
                    "drain stuck: a standalone task holds the instance (STANDALONE_TASKS decides)"
                ),
            }
        }
        why
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Task, TaskStatus};

    #[test]
    fn the_report_is_due_after_a_quarter_of_the_budget_or_ten_minutes() {
        let min = 60_000;
        // A 30-minute budget: due after 7.5 minutes.
        assert!(!stuck_report_due(7 * min, 0, 30 * min, None));
        assert!(stuck_report_due(8 * min, 0, 30 * min, None));
        // A 2-hour budget: due after 10 minutes, not 30.
        assert!(!stuck_report_due(9 * min, 0, 120 * min, None));
        assert!(stuck_report_due(11 * min, 0, 120 * min, None));
        // At most once every ten minutes.
        assert!(!stuck_report_due(15 * min, 0, 120 * min, Some(11 * min)));
        assert!(stuck_report_due(21 * min, 0, 120 * min, Some(11 * min)));
        // A start in the future of this clock never underflows.
        assert!(!stuck_report_due(0, 5 * min, 30 * min, None));
    }

    fn live(arn: &str, role: Role, service: Option<&str>) -> LiveTask {
        LiveTask {
            task: Task {
                arn: arn.into(),
                last_status: TaskStatus::Running,
                desired_status: TaskStatus::Running,
                started_by: service.map(|_| "ecs-svc/1".to_owned()),
                group: Some(service.map_or("family:batch".into(), |s| format!("service:{s}"))),
                container_instance_arn: None,
                stopped_at_ms: None,
            },
            role,
        }
    }

    #[test]
    fn the_report_names_each_service_once_and_each_standalone_task() {
        let web = Service {
            name: "web".into(),
            scheduling: Scheduling::Replica,
            desired_count: 4,
            running_count: 3,
            pending_count: 0,
            deployments: 1,
            latest_event: Some(
                "(service web) was unable to place a task because no container instance met all of its requirements.".into(),
            ),
        };
        let report = stuck_report(
            &[
                live("t1", Role::Service, Some("web")),
                live("t2", Role::Service, Some("web")),
                live("t3", Role::Standalone, None),
                live("t4", Role::Service, Some("gone")),
            ],
            &[web],
        );
        assert_eq!(
            report,
            vec![
                Stuck::Service {
                    name: "gone".into(),
                    tasks_here: 1,
                    desired: -1,
                    running: -1,
                    pending: -1,
                    latest_event: None,
                },
                Stuck::Service {
                    name: "web".into(),
                    tasks_here: 2,
                    desired: 4,
                    running: 3,
                    pending: 0,
                    latest_event: Some("(service web) was unable to place a task because no container instance met all of its requirements.".into()),
                },
                Stuck::Standalone {
                    task: "t3".into(),
                    group: Some("family:batch".into()),
                },
            ]
        );
    }
}
