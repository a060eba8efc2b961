//! `status`: the join of what ECS, Auto Scaling and EC2 say about one cluster
//! and its groups, as a report. Pure: [`report`] reads only [`Observed`]
//! (gathered by `gather::status`), the clock included.

use std::collections::{BTreeSet, HashMap};

use ecs_lifecycle::drain::budget::SlotBook;
use ecs_lifecycle::model::{
    AsgGroup, AsgInstance, ContainerInstance, Ec2Instance, InstanceStatus, LifecycleHook,
    LifecycleState, ScalingActivity, Transition,
};
use serde::Serialize;

use crate::render::rfc3339;

/// The version of the JSON documents (`status` and `rollout status`). A field
/// added keeps it; a field renamed, removed or changed in meaning bumps it.
pub const SCHEMA_VERSION: u32 = 1;

/// The longest a lifecycle action can wait (the global timeout's cap, 48 h): a
/// scaling activity older than this cannot belong to an action still waiting.
pub const ACTION_HORIZON_MS: u64 = 172_800_000;

/// Everything one `status` look read.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub region: String,
    pub cluster: String,
    pub now_ms: u64,
    /// The groups looked in (named by --group, or those of the cluster's instances).
    pub groups: Vec<AsgGroup>,
    /// The cluster's container instances (any status but INACTIVE).
    pub container_instances: Vec<ContainerInstance>,
    /// The group and lifecycle state of the container instances' EC2 instances.
    pub memberships: Vec<AsgInstance>,
    /// Each group's lifecycle hooks (read when one of its instances waits).
    pub hooks: HashMap<String, Vec<LifecycleHook>>,
    /// Each group's scaling activities of the last [`ACTION_HORIZON_MS`] (read
    /// when one of its instances waits or is terminating).
    pub activities: HashMap<String, Vec<ScalingActivity>>,
    /// What EC2 says of the instances (AMI, launch time, state).
    pub ec2: Vec<Ec2Instance>,
    /// The cluster's drain budget (MAX_CONCURRENT_DRAINS) as its table holds
    /// it, when a table was named (`--drain-slots-table`): `Some(None)` when
    /// the table has no item for the cluster yet.
    pub drain_slots: Option<Option<SlotBook>>,
}

/// The groups to look in: the ones named, else those the cluster's instances
/// belong to (sorted, each once).
pub fn groups_to_look_in(named: &[String], memberships: &[AsgInstance]) -> Vec<String> {
    let set: BTreeSet<&str> = if named.is_empty() {
        memberships.iter().map(|m| m.asg.as_str()).collect()
    } else {
        named.iter().map(String::as_str).collect()
    };
    set.into_iter().map(str::to_owned).collect()
}

/// Whether a group's state calls for its hooks and activities to be read.
pub fn needs_hooks(state: &LifecycleState) -> bool {
    state.is_waiting()
}

pub fn needs_activities(state: &LifecycleState) -> bool {
    state.is_waiting() || is_terminating(state)
}

fn is_terminating(state: &LifecycleState) -> bool {
    state.as_str().starts_with("Terminating") || state.as_str().starts_with("Warmed:Terminating")
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusReport {
    pub version: u32,
    pub kind: &'static str,
    pub region: String,
    pub cluster: String,
    pub generated_at: String,
    pub groups: Vec<String>,
    pub container_instances: Vec<InstanceRow>,
    pub waiting: Vec<WaitingRow>,
    pub orphans: Vec<OrphanRow>,
    pub attention: Vec<Attention>,
    /// With `--drain-slots-table`: the drains holding the cluster's slots and
    /// the instances waiting for one, in the order they will start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drain_budget: Option<DrainBudgetView>,
}

/// The drain budget of the cluster (MAX_CONCURRENT_DRAINS), from its table:
/// live entries only (a lease that ran out is a chain that died; the next
/// drain's look drops it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DrainBudgetView {
    pub holding: Vec<SlotRow>,
    pub waiting_for_slot: Vec<SlotWaitRow>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlotRow {
    pub ec2_instance_id: String,
    /// Since when it holds its slot.
    pub since: String,
    #[serde(skip)]
    pub since_ms: u64,
    /// A Spot, Health or rebalance drain: it bypassed the budget, and counts.
    pub urgent: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlotWaitRow {
    pub ec2_instance_id: String,
    /// 1 = the next to start when a slot frees (oldest action first).
    pub position: usize,
    /// When its terminate action started (the order of the queue).
    pub action_started_at: String,
    /// Since when it waits for a slot.
    pub waiting_since: String,
    #[serde(skip)]
    pub waiting_since_ms: u64,
}

/// The live entries of the book, holders by instance id, waiters in the
/// order they will be admitted.
pub fn drain_budget_view(book: &SlotBook, now_ms: u64) -> DrainBudgetView {
    DrainBudgetView {
        holding: book
            .holders
            .iter()
            .filter(|(_, h)| h.lease_until_ms > now_ms)
            .map(|(id, h)| SlotRow {
                ec2_instance_id: id.clone(),
                since: rfc3339(h.since_ms),
                since_ms: h.since_ms,
                urgent: h.urgent,
            })
            .collect(),
        waiting_for_slot: book
            .queue()
            .into_iter()
            .filter(|(_, w)| w.lease_until_ms > now_ms)
            .enumerate()
            .map(|(n, (id, w))| SlotWaitRow {
                ec2_instance_id: id.clone(),
                position: n + 1,
                action_started_at: rfc3339(w.action_start_ms),
                waiting_since: rfc3339(w.since_ms),
                waiting_since_ms: w.since_ms,
            })
            .collect(),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstanceRow {
    pub ec2_instance_id: String,
    pub container_instance_arn: String,
    /// `None`: the instance is in no Auto Scaling group.
    pub group: Option<String>,
    pub lifecycle_state: Option<LifecycleState>,
    pub ecs_status: InstanceStatus,
    pub agent_connected: bool,
    pub running_tasks: i32,
    pub pending_tasks: i32,
    pub ami: Option<String>,
    pub registered_at: Option<String>,
    /// See [`draining_since_ms`].
    pub draining_since: Option<String>,
    #[serde(skip)]
    pub draining_since_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WaitingRow {
    pub ec2_instance_id: String,
    pub group: String,
    pub lifecycle_state: LifecycleState,
    /// Registered in the cluster (any status but INACTIVE).
    pub registered: bool,
    /// When the lifecycle action started: the start of the scaling activity
    /// that launches or terminates the instance; `None` if there is none.
    pub action_started_at: Option<String>,
    /// The group's hooks for this transition (each holds its own action).
    pub hooks: Vec<HookRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HookRow {
    pub name: String,
    pub default_result: String,
    pub heartbeat_timeout_s: u64,
    pub global_timeout_s: u64,
    /// Seconds until the global timeout, from the action's start: the most the
    /// wait can still last, heartbeats or not (it ends sooner when the action
    /// is completed, or when no heartbeat comes within `heartbeat_timeout_s`).
    /// `None` when the start is unknown.
    pub time_left_s: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrphanRow {
    pub ec2_instance_id: String,
    pub group: String,
    pub lifecycle_state: LifecycleState,
    pub ami: Option<String>,
    pub ec2_state: Option<String>,
    pub launched_at: Option<String>,
    #[serde(skip)]
    pub launched_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attention {
    /// `orphan`, `agent_disconnected` (status); `refused_ami`,
    /// `refresh_failed`, `refresh_rolled_back` (rollout status).
    pub kind: &'static str,
    /// The instance or the group it is about.
    pub subject: String,
    pub message: String,
}

/// The newest activity still under way for `instance_id` whose description
/// starts with `verb` (`Terminating EC2 instance: i-...`, `Launching a new EC2
/// instance: i-...`).
fn open_activity<'a>(
    activities: &'a [ScalingActivity],
    verb: &str,
    instance_id: &str,
) -> Option<&'a ScalingActivity> {
    activities
        .iter()
        .filter(|a| {
            !a.is_finished()
                && a.description.starts_with(verb)
                && a.description.trim_end().rsplit(' ').next() == Some(instance_id)
        })
        .max_by_key(|a| a.started_ms)
}

/// ECS records no time for a status change (DescribeContainerInstances has
/// `registeredAt` only), so "draining since" is taken from Auto Scaling: for a
/// DRAINING instance that its group is terminating, the start of the
/// terminate activity (terminate-drain sets DRAINING as that action starts,
/// within seconds). `None` otherwise (e.g. DRAINING set by hand).
pub fn draining_since_ms(
    status: &InstanceStatus,
    lifecycle_state: Option<&LifecycleState>,
    activities: &[ScalingActivity],
    instance_id: &str,
) -> Option<u64> {
    if *status != InstanceStatus::Draining || !lifecycle_state.is_some_and(is_terminating) {
        return None;
    }
    open_activity(activities, "Terminating", instance_id)?.started_ms
}

/// Seconds left until the global timeout of an action that started at `started_ms`.
pub fn time_left_s(started_ms: Option<u64>, global_timeout_s: u64, now_ms: u64) -> Option<u64> {
    let deadline = started_ms?.saturating_add(global_timeout_s.saturating_mul(1000));
    Some(deadline.saturating_sub(now_ms) / 1000)
}

pub fn report(o: &Observed) -> StatusReport {
    let seen = Seen::of(o);
    let mut container_instances: Vec<InstanceRow> = o
        .container_instances
        .iter()
        .map(|ci| instance_row(&seen, ci))
        .collect();
    let mut waiting = Vec::new();
    let mut orphans = Vec::new();
    for g in &o.groups {
        for (id, state) in &g.instances {
            if state.is_waiting() {
                waiting.push(waiting_row(&seen, g, id, state));
            } else if *state == LifecycleState::InService && !seen.is_registered(id) {
                orphans.push(orphan_row(&seen, g, id, state));
            }
        }
    }
    let mut attention: Vec<Attention> = o
        .container_instances
        .iter()
        .filter_map(agent_disconnected)
        .chain(orphans.iter().map(|r| orphan_attention(r, &o.cluster)))
        .collect();
    container_instances.sort_by(|a, b| a.ec2_instance_id.cmp(&b.ec2_instance_id));
    waiting.sort_by(|a, b| a.ec2_instance_id.cmp(&b.ec2_instance_id));
    orphans.sort_by(|a, b| a.ec2_instance_id.cmp(&b.ec2_instance_id));
    attention.sort_by(|a, b| (a.kind, &a.subject).cmp(&(b.kind, &b.subject)));
    StatusReport {
        version: SCHEMA_VERSION,
        kind: "status",
        region: o.region.clone(),
        cluster: o.cluster.clone(),
        generated_at: rfc3339(o.now_ms),
        groups: o.groups.iter().map(|g| g.name.clone()).collect(),
        container_instances,
        waiting,
        orphans,
        attention,
        drain_budget: o
            .drain_slots
            .as_ref()
            .map(|book| drain_budget_view(&book.clone().unwrap_or_default(), o.now_ms)),
    }
}

/// What [`Observed`] says, indexed by instance and group for the rows.
struct Seen<'a> {
    o: &'a Observed,
    registered: BTreeSet<&'a str>,
    ec2: HashMap<&'a str, &'a Ec2Instance>,
    membership: HashMap<&'a str, &'a AsgInstance>,
}

impl<'a> Seen<'a> {
    fn of(o: &'a Observed) -> Self {
        Seen {
            o,
            registered: o
                .container_instances
                .iter()
                .map(|ci| ci.ec2_instance_id.as_str())
                .collect(),
            ec2: o.ec2.iter().map(|i| (i.id.as_str(), i)).collect(),
            membership: o
                .memberships
                .iter()
                .map(|m| (m.instance_id.as_str(), m))
                .collect(),
        }
    }

    fn is_registered(&self, id: &str) -> bool {
        self.registered.contains(id)
    }

    fn ec2(&self, id: &str) -> Option<&'a Ec2Instance> {
        self.ec2.get(id).copied()
    }

    fn activities(&self, group: &str) -> &'a [ScalingActivity] {
        self.o.activities.get(group).map_or(&[], Vec::as_slice)
    }

    fn hooks(&self, group: &str) -> &'a [LifecycleHook] {
        self.o.hooks.get(group).map_or(&[], Vec::as_slice)
    }
}

fn instance_row(seen: &Seen, ci: &ContainerInstance) -> InstanceRow {
    let id = ci.ec2_instance_id.as_str();
    let m = seen.membership.get(id);
    let draining_since_ms = m.and_then(|m| {
        draining_since_ms(
            &ci.status,
            Some(&m.lifecycle_state),
            seen.activities(&m.asg),
            id,
        )
    });
    InstanceRow {
        ec2_instance_id: id.to_owned(),
        container_instance_arn: ci.arn.to_string(),
        group: m.map(|m| m.asg.clone()),
        lifecycle_state: m.map(|m| m.lifecycle_state.clone()),
        ecs_status: ci.status.clone(),
        agent_connected: ci.agent_connected,
        running_tasks: ci.running_tasks_count,
        pending_tasks: ci.pending_tasks_count,
        ami: seen.ec2(id).and_then(|i| i.image_id.clone()),
        registered_at: ci.registered_ms.map(rfc3339),
        draining_since: draining_since_ms.map(rfc3339),
        draining_since_ms,
    }
}

/// A container instance whose agent is disconnected while ECS may still place
/// or stop tasks on it (ACTIVE or DRAINING).
fn agent_disconnected(ci: &ContainerInstance) -> Option<Attention> {
    let in_use = matches!(ci.status, InstanceStatus::Active | InstanceStatus::Draining);
    if ci.agent_connected || !in_use {
        return None;
    }
    let id = &ci.ec2_instance_id;
    Some(Attention {
        kind: "agent_disconnected",
        subject: id.to_string(),
        message: format!(
            "the ECS agent of {id} ({}) is not connected: ECS cannot place or stop tasks there",
            ci.status
        ),
    })
}

fn waiting_row(seen: &Seen, g: &AsgGroup, id: &str, state: &LifecycleState) -> WaitingRow {
    let (transition, verb) = if state.is_launch_wait() {
        (Transition::Launching, "Launching")
    } else {
        (Transition::Terminating, "Terminating")
    };
    let started_ms = open_activity(seen.activities(&g.name), verb, id).and_then(|a| a.started_ms);
    WaitingRow {
        ec2_instance_id: id.to_owned(),
        group: g.name.clone(),
        lifecycle_state: state.clone(),
        registered: seen.is_registered(id),
        action_started_at: started_ms.map(rfc3339),
        hooks: seen
            .hooks(&g.name)
            .iter()
            .filter(|h| h.transition == Some(transition))
            .map(|h| hook_row(h, started_ms, seen.o.now_ms))
            .collect(),
    }
}

fn hook_row(h: &LifecycleHook, started_ms: Option<u64>, now_ms: u64) -> HookRow {
    HookRow {
        name: h.name.clone(),
        default_result: h.default_result.clone(),
        heartbeat_timeout_s: h.timeouts.heartbeat_timeout_s,
        global_timeout_s: h.timeouts.global_timeout_s,
        time_left_s: time_left_s(started_ms, h.timeouts.global_timeout_s, now_ms),
    }
}

fn orphan_row(seen: &Seen, g: &AsgGroup, id: &str, state: &LifecycleState) -> OrphanRow {
    let e = seen.ec2(id);
    let launched_ms = e.and_then(|i| i.launched_ms);
    OrphanRow {
        ec2_instance_id: id.to_owned(),
        group: g.name.clone(),
        lifecycle_state: state.clone(),
        ami: e.and_then(|i| i.image_id.clone()),
        ec2_state: e.and_then(|i| i.state.as_ref()).map(ToString::to_string),
        launched_at: launched_ms.map(rfc3339),
        launched_ms,
    }
}

fn orphan_attention(r: &OrphanRow, cluster: &str) -> Attention {
    let id = &r.ec2_instance_id;
    Attention {
        kind: "orphan",
        subject: id.clone(),
        message: format!(
            "{id} is InService in group {} but not registered in cluster {cluster}",
            r.group
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ecs_lifecycle::model::{Ec2State, HookTimeouts};

    const NOW: u64 = 1_800_000_000_000;
    const I0: &str = "i-00000000000000000";
    const I1: &str = "i-00000000000000001";
    const I2: &str = "i-00000000000000002";
    const I3: &str = "i-00000000000000003";
    const I4: &str = "i-00000000000000004";

    fn ci(id: &str, status: InstanceStatus, agent: bool, running: i32) -> ContainerInstance {
        ContainerInstance {
            cluster: "prod".into(),
            arn: format!("arn:aws:ecs:us-east-1:123456789012:container-instance/prod/{id}").into(),
            ec2_instance_id: id.into(),
            status,
            agent_connected: agent,
            running_tasks_count: running,
            pending_tasks_count: 1,
            registered_ms: Some(NOW - 3_600_000),
            drain_token: None,
            drain_hook: None,
            drain_started_ms: None,
            drain_hop: None,
            early_drain: None,
        }
    }

    fn member(id: &str, group: &str, state: &str) -> AsgInstance {
        AsgInstance {
            instance_id: id.into(),
            asg: group.into(),
            lifecycle_state: LifecycleState::parse(state),
        }
    }

    fn group(name: &str, instances: &[(&str, &str)]) -> AsgGroup {
        AsgGroup {
            name: name.into(),
            desired_capacity: i32::try_from(instances.len()).unwrap_or(0),
            launch_template: None,
            mixed_instances_policy: false,
            instances: instances
                .iter()
                .map(|(id, s)| ((*id).into(), LifecycleState::parse(s)))
                .collect(),
            tags: vec![],
            account_id: None,
            unhealthy: vec![],
            terminate_hook_abandon: None,
        }
    }

    fn hook(name: &str, transition: Transition, heartbeat: u64) -> LifecycleHook {
        LifecycleHook {
            name: name.into(),
            transition: Some(transition),
            timeouts: HookTimeouts::from_heartbeat(heartbeat),
            default_result: "CONTINUE".into(),
            notification_target: None,
        }
    }

    fn activity(description: &str, code: &str, started_ms: u64) -> ScalingActivity {
        ScalingActivity {
            id: format!("a-{started_ms}"),
            description: description.into(),
            status_code: code.into(),
            status_message: None,
            started_ms: Some(started_ms),
        }
    }

    fn ec2(id: &str, ami: &str) -> Ec2Instance {
        Ec2Instance {
            id: id.into(),
            image_id: Some(ami.into()),
            launched_ms: Some(NOW - 600_000),
            state: Some(Ec2State::Running),
        }
    }

    /// A cluster with every case: I0 ACTIVE, I1 DRAINING by hand (InService),
    /// I2 DRAINING and Terminating:Wait, I3 InService but unregistered (an
    /// orphan), I4 Pending:Wait unregistered (not an orphan: the launch hook
    /// holds it), and one instance Standby unregistered (neither).
    #[test]
    fn the_drain_budget_lists_its_holders_and_its_queue_oldest_action_first() {
        use ecs_lifecycle::drain::budget::{SlotHolder, SlotWaiter};
        let lease = NOW + 600_000;
        let mut book = SlotBook::default();
        book.holders.insert(
            I2.into(),
            SlotHolder {
                since_ms: NOW - 120_000,
                lease_until_ms: lease,
                urgent: false,
            },
        );
        book.holders.insert(
            I1.into(),
            SlotHolder {
                since_ms: NOW - 60_000,
                lease_until_ms: lease,
                urgent: true,
            },
        );
        // A dead chain's entry, its lease over: not shown.
        book.holders.insert(
            "i-0000000000000dead".into(),
            SlotHolder {
                since_ms: NOW - 9_000_000,
                lease_until_ms: NOW - 1,
                urgent: false,
            },
        );
        book.waiters.insert(
            I4.into(),
            SlotWaiter {
                action_start_ms: NOW - 30_000,
                since_ms: NOW - 29_000,
                lease_until_ms: lease,
            },
        );
        book.waiters.insert(
            I3.into(),
            SlotWaiter {
                action_start_ms: NOW - 50_000,
                since_ms: NOW - 10_000,
                lease_until_ms: lease,
            },
        );
        let book_again = book.clone();
        let r = report(&Observed {
            drain_slots: Some(Some(book)),
            ..world()
        });
        let b = r.drain_budget.expect("a drain budget");
        let holding: Vec<(&str, bool)> = b
            .holding
            .iter()
            .map(|h| (h.ec2_instance_id.as_str(), h.urgent))
            .collect();
        assert_eq!(holding, [(I1, true), (I2, false)]);
        let queue: Vec<(&str, usize)> = b
            .waiting_for_slot
            .iter()
            .map(|w| (w.ec2_instance_id.as_str(), w.position))
            .collect();
        assert_eq!(queue, [(I3, 1), (I4, 2)], "the older action first");
        assert_eq!(
            b.waiting_for_slot[0].action_started_at,
            rfc3339(NOW - 50_000)
        );
        let text = crate::render::status_text(
            &report(&Observed {
                drain_slots: Some(Some(book_again)),
                ..world()
            }),
            NOW,
            false,
        );
        let section = text
            .split("Drain budget: waiting for a slot, in the order they start (2)")
            .nth(1)
            .expect("the waiting section");
        let rows: Vec<&str> = section.lines().filter(|l| l.contains("i-")).collect();
        assert!(
            rows[0].trim_start().starts_with('1') && rows[0].contains(I3),
            "{text}"
        );
        assert!(
            rows[1].trim_start().starts_with('2') && rows[1].contains(I4),
            "{text}"
        );
        assert!(
            text.contains("holding a slot (2)") && text.contains("urgent"),
            "{text}"
        );
        // No table named: no budget in the report (nor in its JSON).
        let r = report(&world());
        assert!(r.drain_budget.is_none());
        let json = serde_json::to_value(&r).unwrap();
        assert!(json.get("drain_budget").is_none());
        // A table without the cluster's item: an empty budget.
        let r = report(&Observed {
            drain_slots: Some(None),
            ..world()
        });
        assert_eq!(
            r.drain_budget,
            Some(DrainBudgetView {
                holding: vec![],
                waiting_for_slot: vec![]
            })
        );
    }

    fn world() -> Observed {
        let g = "prod-asg";
        Observed {
            region: "us-east-1".into(),
            cluster: "prod".into(),
            now_ms: NOW,
            groups: vec![group(
                g,
                &[
                    (I0, "InService"),
                    (I1, "InService"),
                    (I2, "Terminating:Wait"),
                    (I3, "InService"),
                    (I4, "Pending:Wait"),
                    ("i-00000000000000005", "Standby"),
                ],
            )],
            container_instances: vec![
                ci(I2, InstanceStatus::Draining, true, 1),
                ci(I0, InstanceStatus::Active, true, 3),
                ci(I1, InstanceStatus::Draining, true, 0),
            ],
            memberships: vec![
                member(I0, g, "InService"),
                member(I1, g, "InService"),
                member(I2, g, "Terminating:Wait"),
            ],
            hooks: HashMap::from([(
                g.to_owned(),
                vec![
                    hook("drain", Transition::Terminating, 300),
                    hook("verify", Transition::Launching, 600),
                ],
            )]),
            activities: HashMap::from([(
                g.to_owned(),
                vec![
                    activity(
                        &format!("Terminating EC2 instance: {I2}"),
                        "MidLifecycleAction",
                        NOW - 120_000,
                    ),
                    // An older, finished termination of the same id does not count.
                    activity(
                        &format!("Terminating EC2 instance: {I2}"),
                        "Successful",
                        NOW - 90_000_000,
                    ),
                    // I1's group is not terminating it: this must not make it "draining since".
                    activity(
                        &format!("Launching a new EC2 instance: {I1}"),
                        "Successful",
                        NOW - 7_200_000,
                    ),
                ],
            )]),
            ec2: vec![
                ec2(I0, "ami-0aaaaaaaaaaaaaaaa"),
                ec2(I2, "ami-0aaaaaaaaaaaaaaaa"),
                ec2(I3, "ami-0bbbbbbbbbbbbbbbb"),
            ],
            drain_slots: None,
        }
    }

    #[test]
    fn every_kind_of_instance_is_reported_where_it_belongs() {
        let r = report(&world());
        assert_eq!(
            (r.version, r.kind, r.groups.clone()),
            (1, "status", vec!["prod-asg".to_owned()])
        );
        let rows: Vec<_> = r
            .container_instances
            .iter()
            .map(|i| {
                (
                    i.ec2_instance_id.as_str(),
                    i.ecs_status.as_str(),
                    i.lifecycle_state.as_ref().map(LifecycleState::as_str),
                    i.running_tasks,
                    i.ami.as_deref(),
                    i.draining_since_ms,
                )
            })
            .collect();
        assert_eq!(
            rows,
            vec![
                (
                    I0,
                    "ACTIVE",
                    Some("InService"),
                    3,
                    Some("ami-0aaaaaaaaaaaaaaaa"),
                    None
                ),
                (I1, "DRAINING", Some("InService"), 0, None, None),
                (
                    I2,
                    "DRAINING",
                    Some("Terminating:Wait"),
                    1,
                    Some("ami-0aaaaaaaaaaaaaaaa"),
                    Some(NOW - 120_000)
                ),
            ]
        );
        let orphans: Vec<_> = r
            .orphans
            .iter()
            .map(|o| (o.ec2_instance_id.as_str(), o.ami.as_deref()))
            .collect();
        assert_eq!(orphans, vec![(I3, Some("ami-0bbbbbbbbbbbbbbbb"))]);
        let waiting: Vec<_> = r
            .waiting
            .iter()
            .map(|w| {
                let hooks: Vec<_> = w
                    .hooks
                    .iter()
                    .map(|h| (h.name.as_str(), h.time_left_s))
                    .collect();
                (
                    w.ec2_instance_id.as_str(),
                    w.lifecycle_state.as_str(),
                    w.registered,
                    hooks,
                )
            })
            .collect();
        assert_eq!(
            waiting,
            vec![
                // 300 s heartbeat: global 30 000 s, 120 s of it gone.
                (I2, "Terminating:Wait", true, vec![("drain", Some(29_880))]),
                // No launch activity: when the action started is unknown.
                (I4, "Pending:Wait", false, vec![("verify", None)]),
            ]
        );
        assert_eq!(
            r.attention,
            vec![Attention {
                kind: "orphan",
                subject: I3.into(),
                message: format!(
                    "{I3} is InService in group prod-asg but not registered in cluster prod"
                ),
            }]
        );
    }

    #[test]
    fn a_disconnected_agent_needs_attention_unless_the_instance_is_leaving_ecs() {
        for (status, flagged) in [
            (InstanceStatus::Active, true),
            (InstanceStatus::Draining, true),
            (InstanceStatus::Deregistering, false),
            (InstanceStatus::Registering, false),
        ] {
            let mut w = world();
            w.groups.clear();
            w.container_instances = vec![ci(I0, status.clone(), false, 0)];
            let r = report(&w);
            let kinds: Vec<_> = r.attention.iter().map(|a| a.kind).collect();
            assert_eq!(
                kinds == ["agent_disconnected"],
                flagged,
                "{status}: {kinds:?}"
            );
        }
    }

    #[test]
    fn draining_since_needs_draining_a_termination_and_its_open_activity() {
        let open = [activity(
            &format!("Terminating EC2 instance: {I0}"),
            "WaitingForELBConnectionDraining",
            5,
        )];
        let done = [activity(
            &format!("Terminating EC2 instance: {I0}"),
            "Successful",
            5,
        )];
        let other = [activity(
            "Terminating EC2 instance: i-000000000000000012",
            "MidLifecycleAction",
            5,
        )];
        let waiting = LifecycleState::TerminatingWait;
        let proceed = LifecycleState::TerminatingProceed;
        for (status, state, activities, expected) in [
            (InstanceStatus::Draining, Some(&waiting), &open[..], Some(5)),
            (InstanceStatus::Draining, Some(&proceed), &open[..], Some(5)),
            (InstanceStatus::Active, Some(&waiting), &open[..], None),
            (
                InstanceStatus::Draining,
                Some(&LifecycleState::InService),
                &open[..],
                None,
            ),
            (InstanceStatus::Draining, None, &open[..], None),
            (InstanceStatus::Draining, Some(&waiting), &done[..], None),
            // The id must be the description's last word, not a prefix of it.
            (InstanceStatus::Draining, Some(&waiting), &other[..], None),
            (InstanceStatus::Draining, Some(&waiting), &[][..], None),
        ] {
            assert_eq!(
                draining_since_ms(&status, state, activities, I0),
                expected,
                "{status} {state:?} {activities:?}"
            );
        }
    }

    #[test]
    fn time_left_counts_from_the_start_to_the_global_timeout() {
        for (started, global, expected) in [
            (Some(NOW), 3600, Some(3600)),
            (Some(NOW - 1_000_500), 3600, Some(2599)),
            (Some(NOW - 7_200_000), 3600, Some(0)),
            (None, 3600, None),
        ] {
            assert_eq!(
                time_left_s(started, global, NOW),
                expected,
                "{started:?} {global}"
            );
        }
    }

    #[test]
    fn only_the_hooks_of_the_waiting_transition_are_listed() {
        let mut w = world();
        w.hooks.insert(
            "prod-asg".into(),
            vec![
                hook("drain", Transition::Terminating, 300),
                hook(
                    "ecs-managed-draining-termination-hook",
                    Transition::Terminating,
                    3600,
                ),
                hook("verify", Transition::Launching, 600),
                LifecycleHook {
                    transition: None,
                    ..hook("future", Transition::Launching, 60)
                },
            ],
        );
        let r = report(&w);
        let names = |id: &str| -> Vec<String> {
            r.waiting
                .iter()
                .filter(|x| x.ec2_instance_id == id)
                .flat_map(|x| x.hooks.iter().map(|h| h.name.clone()))
                .collect()
        };
        assert_eq!(
            names(I2),
            ["drain", "ecs-managed-draining-termination-hook"]
        );
        assert_eq!(names(I4), ["verify"]);
    }

    #[test]
    fn groups_default_to_those_of_the_cluster_instances() {
        let m = [
            member(I0, "b", "InService"),
            member(I1, "a", "InService"),
            member(I2, "b", "InService"),
        ];
        assert_eq!(groups_to_look_in(&[], &m), ["a", "b"]);
        assert_eq!(groups_to_look_in(&["c".into(), "c".into()], &m), ["c"]);
        assert!(groups_to_look_in(&[], &[]).is_empty());
    }

    #[test]
    fn an_instance_in_no_group_has_no_group_and_an_empty_cluster_is_fine() {
        let mut w = world();
        w.memberships.clear();
        let r = report(&w);
        assert!(
            r.container_instances
                .iter()
                .all(|i| i.group.is_none() && i.lifecycle_state.is_none())
        );
        let r = report(&Observed {
            cluster: "empty".into(),
            now_ms: NOW,
            ..Observed::default()
        });
        assert!(r.container_instances.is_empty() && r.orphans.is_empty() && r.attention.is_empty());
    }

    #[test]
    fn which_states_need_hooks_and_activities() {
        for (s, hooks, activities) in [
            ("InService", false, false),
            ("Pending:Wait", true, true),
            ("Terminating:Wait", true, true),
            ("Terminating:Proceed", false, true),
            ("Warmed:Terminating:Wait", true, true),
            ("Standby", false, false),
        ] {
            let s = LifecycleState::parse(s);
            assert_eq!(
                (needs_hooks(&s), needs_activities(&s)),
                (hooks, activities),
                "{s}"
            );
        }
    }

    #[test]
    fn the_json_has_the_documented_fields() {
        let v = serde_json::to_value(report(&world())).unwrap_or_default();
        let keys = |v: &serde_json::Value| -> Vec<String> {
            let mut k: Vec<String> = v
                .as_object()
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default();
            k.sort();
            k
        };
        assert_eq!(
            keys(&v),
            [
                "attention",
                "cluster",
                "container_instances",
                "generated_at",
                "groups",
                "kind",
                "orphans",
                "region",
                "version",
                "waiting"
            ]
        );
        assert_eq!(
            keys(&v["container_instances"][0]),
            [
                "agent_connected",
                "ami",
                "container_instance_arn",
                "draining_since",
                "ec2_instance_id",
                "ecs_status",
                "group",
                "lifecycle_state",
                "pending_tasks",
                "registered_at",
                "running_tasks"
            ]
        );
        assert_eq!(
            keys(&v["waiting"][0]),
            [
                "action_started_at",
                "ec2_instance_id",
                "group",
                "hooks",
                "lifecycle_state",
                "registered"
            ]
        );
        assert_eq!(
            keys(&v["waiting"][0]["hooks"][0]),
            [
                "default_result",
                "global_timeout_s",
                "heartbeat_timeout_s",
                "name",
                "time_left_s"
            ]
        );
        assert_eq!(
            keys(&v["orphans"][0]),
            [
                "ami",
                "ec2_instance_id",
                "ec2_state",
                "group",
                "launched_at",
                "lifecycle_state"
            ]
        );
        assert_eq!(keys(&v["attention"][0]), ["kind", "message", "subject"]);
        assert_eq!(
            v["container_instances"][2]["draining_since"],
            "2027-01-15T07:58:00Z"
        );
        assert_eq!(
            v["waiting"][1]["action_started_at"],
            serde_json::Value::Null
        );
    }
    /// The text for people, byte for byte: a heading, one table per section,
    /// then what needs attention.
    #[test]
    fn the_text_is_a_table_per_section() {
        let text = |w: &Observed| crate::render::status_text(&report(w), NOW, false);
        assert_eq!(
            text(&world()),
            r#"Cluster prod in us-east-1 at 2027-01-15T08:00:00Z; groups: prod-asg

Container instances (3)
EC2 INSTANCE         GROUP     LIFECYCLE         ECS       AGENT      RUNNING  PENDING  AMI                    DRAINING SINCE
i-00000000000000000  prod-asg  InService         ACTIVE    connected        3        1  ami-0aaaaaaaaaaaaaaaa  -
i-00000000000000001  prod-asg  InService         DRAINING  connected        0        1  -                      ?
i-00000000000000002  prod-asg  Terminating:Wait  DRAINING  connected        1        1  ami-0aaaaaaaaaaaaaaaa  2m00s ago

Waiting on a lifecycle hook (2)
EC2 INSTANCE         GROUP     STATE             IN CLUSTER  HOOK    DEFAULT   HEARTBEAT  TIME LEFT
i-00000000000000002  prod-asg  Terminating:Wait  yes         drain   CONTINUE      5m00s      8h18m
i-00000000000000004  prod-asg  Pending:Wait      no          verify  CONTINUE     10m00s          ?
TIME LEFT: until the hook's global timeout, from the start of the scaling activity (? when
there is none); the action ends sooner if it is completed or not heartbeated in HEARTBEAT.

Orphans: InService in a group, not registered in the cluster (1)
EC2 INSTANCE         GROUP     EC2 STATE  AMI                    LAUNCHED
i-00000000000000003  prod-asg  running    ami-0bbbbbbbbbbbbbbbb  10m00s ago

Needs attention (1):
  orphan: i-00000000000000003 is InService in group prod-asg but not registered in cluster prod
"#
        );
        // No hooks known, a disconnected agent, an instance leaving ECS.
        let mut w = world();
        w.hooks.clear();
        w.container_instances[1].agent_connected = false;
        w.container_instances[0].status = InstanceStatus::Deregistering;
        assert_eq!(
            text(&w),
            r#"Cluster prod in us-east-1 at 2027-01-15T08:00:00Z; groups: prod-asg

Container instances (3)
EC2 INSTANCE         GROUP     LIFECYCLE         ECS            AGENT         RUNNING  PENDING  AMI                    DRAINING SINCE
i-00000000000000000  prod-asg  InService         ACTIVE         disconnected        3        1  ami-0aaaaaaaaaaaaaaaa  -
i-00000000000000001  prod-asg  InService         DRAINING       connected           0        1  -                      ?
i-00000000000000002  prod-asg  Terminating:Wait  DEREGISTERING  connected           1        1  ami-0aaaaaaaaaaaaaaaa  -

Waiting on a lifecycle hook (2)
EC2 INSTANCE         GROUP     STATE             IN CLUSTER  HOOK  DEFAULT  HEARTBEAT  TIME LEFT
i-00000000000000002  prod-asg  Terminating:Wait  yes         ?     -                -          ?
i-00000000000000004  prod-asg  Pending:Wait      no          ?     -                -          ?
TIME LEFT: until the hook's global timeout, from the start of the scaling activity (? when
there is none); the action ends sooner if it is completed or not heartbeated in HEARTBEAT.

Orphans: InService in a group, not registered in the cluster (1)
EC2 INSTANCE         GROUP     EC2 STATE  AMI                    LAUNCHED
i-00000000000000003  prod-asg  running    ami-0bbbbbbbbbbbbbbbb  10m00s ago

Needs attention (2):
  agent_disconnected: the ECS agent of i-00000000000000000 (ACTIVE) is not connected: ECS cannot place or stop tasks there
  orphan: i-00000000000000003 is InService in group prod-asg but not registered in cluster prod
"#
        );
        let empty = Observed {
            cluster: "empty".into(),
            region: "eu-west-1".into(),
            now_ms: NOW,
            ..Observed::default()
        };
        assert_eq!(
            text(&empty),
            r#"Cluster empty in eu-west-1 at 2027-01-15T08:00:00Z; groups: none (no instance of the cluster is in a group; name some with --group)

Container instances (0)

Waiting on a lifecycle hook (0)

Orphans: InService in a group, not registered in the cluster (0)

Nothing needs attention.
"#
        );
        let coloured = crate::render::status_text(&report(&world()), NOW, true);
        for painted in [
            "\x1b[1mContainer instances (3)\x1b[0m",
            "\x1b[32mACTIVE\x1b[0m  ",
            "\x1b[33mDRAINING\x1b[0m",
            "\x1b[33mPending:Wait\x1b[0m",
            "\x1b[31mi-00000000000000003\x1b[0m",
            "\x1b[31mNeeds attention (1):\x1b[0m",
        ] {
            assert!(coloured.contains(painted), "{painted:?} in {coloured:?}");
        }
    }
}
