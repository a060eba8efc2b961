//! The drain budget (`MAX_CONCURRENT_DRAINS`): at most so many drains of one
//! cluster at a time; terminate hooks beyond it are held alive (heartbeats,
//! continuations) and start draining, oldest action first, when a slot frees.
//!
//! ECS attributes cannot hold such a budget: PutAttributes has no conditional
//! write, so two function instances that count and then set could both admit
//! the last slot. The budget lives in a store with conditional writes instead
//! ([`DrainSlots`]; a DynamoDB table in AWS): one item per cluster, the
//! cluster's [`SlotBook`], with a version. Every change reads the item, decides
//! with [`settle`] (pure), and writes it back only if the version is still the
//! one read; a writer that lost the race reads again. So admissions are
//! serialized per cluster whatever the number of function instances.
//!
//! - A **holder** is a drain that may run: admitted, or urgent (Spot, Health,
//!   rebalance: those bypass the budget but count against it), or found
//!   DRAINING already (counted, never stopped). It holds its slot from its
//!   admission until its lifecycle action is completed ([`Ask::Release`]).
//! - A **waiter** is a terminate action waiting for a slot. Waiters are
//!   admitted in the order of their actions' start (then instance id), as many
//!   as there are free slots: oldest first, whoever looks first.
//! - Every entry has a lease, renewed by the drain's looks. A chain that dies
//!   (its action then expires) leaves its entry to expire with the lease; the
//!   next look of any drain of the cluster drops it.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracing::{debug, error, info, warn};

use crate::drain::decide::Observed;
use crate::drain::run::{DrainMemo, Drainer};
use crate::error::{AwsError, Error};
use crate::hook::Job;
use crate::hook::pacing::random_u64;
use crate::model::{Cluster, InstanceId, InstanceStatus};
use crate::ports::{AutoScaling, Ecs, Publisher};

/// `MAX_CONCURRENT_DRAINS`: how many drains of one cluster may run at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DrainBudget {
    /// `0` (the default): no limit, no store.
    #[default]
    Unlimited,
    /// A number of drains per cluster.
    Count(u32),
    /// A percentage (1..=100) of the cluster's container instances (any status
    /// but INACTIVE), rounded down, but never below one drain.
    Percent(u8),
}

impl DrainBudget {
    /// Parses `0`, a count (`3`) or a percentage (`25%`); the error says what
    /// was expected.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        let expected = || {
            "0 (no limit), a number of drains per cluster (e.g. 2), or a percentage of the cluster's container instances from 1% to 100% (e.g. 25%)".to_owned()
        };
        if let Some(number) = raw.strip_suffix('%') {
            return match number.trim().parse::<u8>() {
                Ok(p @ 1..=100) => Ok(DrainBudget::Percent(p)),
                _ => Err(expected()),
            };
        }
        match raw.parse::<u32>() {
            Ok(0) => Ok(DrainBudget::Unlimited),
            Ok(n) => Ok(DrainBudget::Count(n)),
            Err(_) => Err(expected()),
        }
    }

    pub fn is_limited(self) -> bool {
        self != DrainBudget::Unlimited
    }

    /// Whether the limit depends on the cluster's size.
    pub fn needs_instance_count(self) -> bool {
        matches!(self, DrainBudget::Percent(_))
    }

    /// How many drains may run in a cluster of `instances` container
    /// instances; `None` without a limit. A percentage rounds down but never
    /// below one: a budget must let the drains go on.
    pub fn limit(self, instances: usize) -> Option<usize> {
        match self {
            DrainBudget::Unlimited => None,
            DrainBudget::Count(n) => Some(usize::try_from(n).unwrap_or(usize::MAX)),
            DrainBudget::Percent(p) => {
                Some((instances.saturating_mul(usize::from(p)) / 100).max(1))
            }
        }
    }
}

impl std::fmt::Display for DrainBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DrainBudget::Unlimited => f.write_str("0"),
            DrainBudget::Count(n) => write!(f, "{n}"),
            DrainBudget::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// How long an entry of the book lives without a look renewing it: longer than
/// any pause of a live chain (a poll interval, a queue delay, Lambda's async
/// retries one and two minutes apart, a throttled look backing off), short
/// enough that a dead chain's slot comes back within a quarter of an hour.
pub const LEASE_MS: u64 = 900_000;

/// The lease of a function polling every `poll_ms`: [`LEASE_MS`], and at
/// least three polls.
pub fn lease_ms(poll_ms: u64) -> u64 {
    LEASE_MS.max(poll_ms.saturating_mul(3))
}

/// A drain that may run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotHolder {
    /// When it took the slot (epoch ms).
    pub since_ms: u64,
    pub lease_until_ms: u64,
    /// A Spot, Health or rebalance drain: it bypassed the budget.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub urgent: bool,
}

/// A terminate action waiting for a slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotWaiter {
    /// When Auto Scaling started the action: the order of admission.
    pub action_start_ms: u64,
    /// When it started waiting (epoch ms).
    pub since_ms: u64,
    pub lease_until_ms: u64,
}

/// The budget's state of one cluster, keyed by EC2 instance id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotBook {
    #[serde(default)]
    pub holders: BTreeMap<String, SlotHolder>,
    #[serde(default)]
    pub waiters: BTreeMap<String, SlotWaiter>,
    /// For a percentage: the cluster's container instances when last counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_size: Option<ClusterSize>,
}

/// How many container instances the cluster had, and when that was counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterSize {
    pub instances: usize,
    pub counted_at_ms: u64,
}

/// How long a count of the cluster's container instances serves a percentage
/// budget: the drains of a cluster count it once per five minutes between
/// them, not once per look each (ListContainerInstances shares ECS's
/// cluster-read bucket with every look of every drain).
pub const SIZE_TTL_MS: u64 = 300_000;

/// A book as stored, with the version a conditional write must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    pub book: SlotBook,
    pub version: u64,
}

impl SlotBook {
    /// The waiters in the order they are admitted: oldest action first.
    pub fn queue(&self) -> Vec<(&String, &SlotWaiter)> {
        let mut queue: Vec<_> = self.waiters.iter().collect();
        queue.sort_by_key(|(id, w)| (w.action_start_ms, *id));
        queue
    }

    /// The book without the entries whose lease ran out by `now_ms`.
    fn live(&self, now_ms: u64) -> SlotBook {
        SlotBook {
            holders: self
                .holders
                .iter()
                .filter(|(_, h)| h.lease_until_ms > now_ms)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            waiters: self
                .waiters
                .iter()
                .filter(|(_, w)| w.lease_until_ms > now_ms)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            cluster_size: self.cluster_size,
        }
    }
}

/// What a drain asks of the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    /// A terminate action whose instance is not draining yet: a slot, or a
    /// place in the queue (ordered by when Auto Scaling started the action).
    Drain { action_start_ms: u64 },
    /// The instance is DRAINING already (an urgent drain, an operator, a
    /// chain that took its slot and lost it): it counts, whatever the budget.
    Draining,
    /// A Spot, Health or rebalance drain: it bypasses the budget and counts.
    Urgent,
    /// The drain is over: free its slot (or its place in the queue).
    Release,
}

/// What the budget answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// The drain may run (it holds a slot).
    Admitted,
    /// No slot for this drain yet.
    Waiting(SlotWait),
    /// Its entries are gone.
    Released,
}

/// Where a waiting drain stands.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SlotWait {
    /// The budget of the cluster now.
    pub limit: usize,
    /// The instances holding its slots (urgent drains included).
    pub holders: Vec<String>,
    /// Waiters admitted before this one (0: next when a slot frees).
    pub ahead: usize,
    /// When it started waiting (epoch ms).
    pub since_ms: u64,
}

/// The budget's decision for `me`, pure: the book to write (the same as the
/// one read when nothing needs writing) and the answer. Expired entries are
/// dropped; a lease is renewed once less than half of it is left, so a drain
/// that looks often writes seldom.
pub fn settle(
    book: &SlotBook,
    me: &str,
    ask: Ask,
    limit: usize,
    now_ms: u64,
    lease_ms: u64,
) -> (SlotBook, Admission) {
    let mut next = book.live(now_ms);
    let until = now_ms.saturating_add(lease_ms);
    let stale = |lease_until_ms: u64| lease_until_ms.saturating_sub(now_ms) < lease_ms / 2;
    match ask {
        Ask::Release => {
            next.holders.remove(me);
            next.waiters.remove(me);
            return (next, Admission::Released);
        }
        Ask::Draining | Ask::Urgent => {
            next.waiters.remove(me);
            let urgent = ask == Ask::Urgent;
            let holder = next.holders.entry(me.to_owned()).or_insert(SlotHolder {
                since_ms: now_ms,
                lease_until_ms: until,
                urgent,
            });
            holder.urgent |= urgent;
            if stale(holder.lease_until_ms) {
                holder.lease_until_ms = until;
            }
            return (next, Admission::Admitted);
        }
        Ask::Drain { .. } => {}
    }
    if let Some(holder) = next.holders.get_mut(me) {
        if stale(holder.lease_until_ms) {
            holder.lease_until_ms = until;
        }
        return (next, Admission::Admitted);
    }
    let Ask::Drain { action_start_ms } = ask else {
        return (next, Admission::Admitted);
    };
    let waiter = next.waiters.entry(me.to_owned()).or_insert(SlotWaiter {
        action_start_ms,
        since_ms: now_ms,
        lease_until_ms: until,
    });
    if stale(waiter.lease_until_ms) {
        waiter.lease_until_ms = until;
    }
    let since_ms = waiter.since_ms;
    let free = limit.saturating_sub(next.holders.len());
    let ahead = next
        .queue()
        .iter()
        .position(|(id, _)| id.as_str() == me)
        .unwrap_or(0);
    if ahead < free {
        next.waiters.remove(me);
        next.holders.insert(
            me.to_owned(),
            SlotHolder {
                since_ms: now_ms,
                lease_until_ms: until,
                urgent: false,
            },
        );
        return (next, Admission::Admitted);
    }
    let wait = SlotWait {
        limit,
        holders: next.holders.keys().cloned().collect(),
        ahead: ahead - free,
        since_ms,
    };
    (next, Admission::Waiting(wait))
}

/// The book's key of a cluster: its name, however the cluster was named (a
/// drain's chain finds it by CLUSTER_NAME, an ECS event by its ARN).
pub fn budget_key(cluster: &Cluster) -> Cluster {
    match cluster.as_str().rsplit_once(":cluster/") {
        Some((_, name)) => Cluster::from(name.to_owned()),
        None => cluster.clone(),
    }
}

/// A future of a [`DrainSlots`] call, boxed: the drain holds its store behind
/// `dyn` (one seam, so the drain's type does not grow a parameter).
pub type SlotFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, AwsError>> + Send + 'a>>;

/// The store of the drain budget: one versioned [`SlotBook`] per cluster, with
/// conditional writes (a DynamoDB table in AWS, `crate::aws`).
pub trait DrainSlots: Send + Sync + std::fmt::Debug {
    /// The cluster's book and its version (consistent read); `None` before the
    /// first write.
    fn read<'a>(&'a self, cluster: &'a Cluster) -> SlotFuture<'a, Option<Versioned>>;
    /// Writes the book as version `expected + 1` (1 when `expected` is
    /// `None`) if the stored version is still `expected` (no item at all for
    /// `None`); `Ok(false)` when another writer came first.
    fn write<'a>(
        &'a self,
        cluster: &'a Cluster,
        book: &'a SlotBook,
        expected: Option<u64>,
    ) -> SlotFuture<'a, bool>;
}

/// How often a drain tries one change of the book before it calls the
/// contention a transient failure (the runtime backs off and looks again).
const WRITE_ATTEMPTS: u32 = 8;

impl<E: Ecs, A: AutoScaling, P: Publisher> Drainer<E, A, P> {
    /// Asks the cluster's budget for `instance_id`, retrying a lost race.
    /// Never called without a limit (and never in DRY_RUN).
    pub(super) async fn ask_budget(
        &self,
        cluster: &Cluster,
        instance_id: &InstanceId,
        ask: Ask,
        now_ms: u64,
    ) -> Result<Admission, Error> {
        let Some(slots) = self.slots.as_deref() else {
            return Err(Error::Internal(
                "MAX_CONCURRENT_DRAINS is set but the drain has no slot store".into(),
            ));
        };
        let budget = self.config.max_concurrent_drains;
        let lease = lease_ms(crate::time::millis(self.config.common.poll_interval));
        let key = budget_key(cluster);
        for attempt in 1..=WRITE_ATTEMPTS {
            let stored = slots.read(&key).await?;
            let (read, version) = match stored {
                Some(v) => (v.book, Some(v.version)),
                None => (SlotBook::default(), None),
            };
            let mut book = read.clone();
            // The cluster's size, for a percentage, only when a drain waits to
            // start (a holder or a release needs no limit): counted by one
            // drain for all every SIZE_TTL_MS at most, kept in the book.
            let limit = match ask {
                Ask::Drain { .. } if budget.needs_instance_count() => {
                    let fresh = book.cluster_size.filter(|c| {
                        c.counted_at_ms <= now_ms
                            && now_ms.saturating_sub(c.counted_at_ms) < SIZE_TTL_MS
                    });
                    let instances = match fresh {
                        Some(c) => c.instances,
                        None => {
                            let n = self.ecs.container_instance_count(cluster).await?;
                            book.cluster_size = Some(ClusterSize {
                                instances: n,
                                counted_at_ms: now_ms,
                            });
                            n
                        }
                    };
                    budget.limit(instances).unwrap_or(usize::MAX)
                }
                _ => budget.limit(0).unwrap_or(usize::MAX),
            };
            let (next, admission) = settle(&book, instance_id.as_str(), ask, limit, now_ms, lease);
            if next == read || slots.write(&key, &next, version).await? {
                return Ok(admission);
            }
            // Another drain of the cluster changed the book meanwhile: read again,
            // after a short random pause so that racing writers spread out.
            let pause = 20 * u64::from(attempt) + random_u64() % 50;
            debug!(
                attempt,
                pause_ms = pause,
                "the drain budget changed meanwhile; asking again"
            );
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
        Err(Error::Aws(AwsError::new(
            "dynamodb",
            "PutItem",
            Some("ResourceContention".into()),
            format!(
                "the drain budget of {cluster} changed under {WRITE_ATTEMPTS} attempts in a row; looking again later"
            ),
        )))
    }

    /// The budget's word on a drain's look: `Some` while the instance waits
    /// for a slot. Asked by the hook's own chain only (an ECS event's look
    /// never takes a slot), never in DRY_RUN, and only while the action waits
    /// and the chain is not superseded: an ACTIVE instance asks for a slot, a
    /// DRAINING one is counted (and its lease renewed).
    ///
    /// The store never fails a drain: a DRAINING instance goes on whatever it
    /// answers; an ACTIVE one waits through a transient failure (so the
    /// drain's deadline still applies) and, when the store cannot be used at
    /// all (a missing table, a denied call), drains without the budget, with
    /// an ERROR naming the cause, rather than let its action run out.
    pub(super) async fn budget_look(
        &self,
        job: &mut Job<DrainMemo>,
        observed: &Observed,
        action_start_ms: u64,
        now_ms: u64,
    ) -> Option<SlotWait> {
        let budget = self.config.max_concurrent_drains;
        if !budget.is_limited()
            || self.config.common.dry_run
            || job.memo.from_event
            || observed.superseded_by.is_some()
            || !observed
                .asg_instance
                .as_ref()
                .is_some_and(|i| i.is_terminate_wait())
        {
            return None;
        }
        let ci = observed.container_instance.as_ref()?;
        let ask = match ci.status {
            InstanceStatus::Active => Ask::Drain { action_start_ms },
            // Renewed already at the start of this look (`renew_slot`).
            InstanceStatus::Draining if job.memo.holds_slot => return None,
            InstanceStatus::Draining => Ask::Draining,
            _ => return None,
        };
        let instance_id = &job.action.instance_id;
        match self.ask_budget(&ci.cluster, instance_id, ask, now_ms).await {
            Ok(Admission::Waiting(wait)) => Some(wait),
            Ok(Admission::Admitted) => {
                if ask != Ask::Draining {
                    info!(%budget, "took a drain slot of the cluster's budget");
                }
                job.memo.holds_slot = true;
                None
            }
            Ok(_) => None,
            Err(e) if ask == Ask::Draining => {
                warn!(error = %e, "could not renew the drain's slot; the drain goes on (the slot is kept until its lease runs out)");
                None
            }
            Err(e) if e.is_transient() => {
                warn!(error = %e, "could not ask the drain budget for a slot now; waiting and asking again at the next look");
                Some(SlotWait {
                    limit: budget.limit(0).unwrap_or(0),
                    since_ms: action_start_ms,
                    ..SlotWait::default()
                })
            }
            Err(e) => {
                error!(
                    error = %e,
                    error_type = e.kind(),
                    %budget,
                    "the drain budget's store cannot be used (check DRAIN_SLOTS_TABLE and the function's DynamoDB permissions): draining WITHOUT the budget rather than letting the lifecycle action run out"
                );
                None
            }
        }
    }

    /// A chain whose drain holds a slot renews its lease first thing in every
    /// look, before (and whatever) ECS answers: a look that fails for long
    /// (ECS throttled or down) must not let the slot go while the instance
    /// drains. Best effort, logged; only the table is asked.
    pub(super) async fn renew_slot(&self, memo: &DrainMemo, instance_id: &InstanceId, now_ms: u64) {
        if !memo.holds_slot
            || memo.from_event
            || !self.config.max_concurrent_drains.is_limited()
            || self.config.common.dry_run
        {
            return;
        }
        let Some(cluster) = &memo.cluster else {
            return;
        };
        if let Err(e) = self
            .ask_budget(cluster, instance_id, Ask::Draining, now_ms)
            .await
        {
            warn!(error = %e, "could not renew the drain's slot; the drain goes on (the slot is kept until its lease runs out)");
        }
    }

    /// Counts an urgent drain (Spot, Health, rebalance) in the cluster's
    /// budget: it drains at once whatever the budget, and holds a slot until
    /// its terminate hook's chain completes it (or its lease runs out, when no
    /// hook comes). Best effort, logged.
    pub(super) async fn count_urgent(&self, cluster: &Cluster, instance_id: &InstanceId) {
        if !self.config.max_concurrent_drains.is_limited() || self.config.common.dry_run {
            return;
        }
        let now_ms = crate::time::Clock::start().now_ms();
        match self
            .ask_budget(cluster, instance_id, Ask::Urgent, now_ms)
            .await
        {
            Ok(_) => {
                info!(%cluster, %instance_id, "an urgent drain bypasses MAX_CONCURRENT_DRAINS and counts against it")
            }
            Err(e) => {
                warn!(%cluster, %instance_id, error = %e, "could not count the urgent drain in the cluster's drain budget")
            }
        }
    }

    /// Frees the drain's slot (or place in the queue) once its action is
    /// over. Best effort: a failure leaves the entry to its lease, logged.
    pub(super) async fn release_slot(
        &self,
        cluster: &Cluster,
        instance_id: &InstanceId,
        now_ms: u64,
    ) {
        if !self.config.max_concurrent_drains.is_limited() || self.config.common.dry_run {
            return;
        }
        match self
            .ask_budget(cluster, instance_id, Ask::Release, now_ms)
            .await
        {
            Ok(_) => info!(%cluster, "released the drain's slot"),
            Err(e) => warn!(
                %cluster,
                error = %e,
                lease_s = lease_ms(crate::time::millis(self.config.common.poll_interval)) / 1000,
                "could not release the drain's slot: it comes back when its lease runs out"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 10_000_000;
    const LEASE: u64 = 900_000;

    fn holder(urgent: bool) -> SlotHolder {
        SlotHolder {
            since_ms: NOW - 1_000,
            lease_until_ms: NOW + LEASE,
            urgent,
        }
    }

    fn waiter(start: u64) -> SlotWaiter {
        SlotWaiter {
            action_start_ms: start,
            since_ms: NOW - 1_000,
            lease_until_ms: NOW + LEASE,
        }
    }

    fn book(holders: &[(&str, bool)], waiters: &[(&str, u64)]) -> SlotBook {
        SlotBook {
            holders: holders
                .iter()
                .map(|(id, u)| ((*id).to_owned(), holder(*u)))
                .collect(),
            waiters: waiters
                .iter()
                .map(|(id, s)| ((*id).to_owned(), waiter(*s)))
                .collect(),
            cluster_size: None,
        }
    }

    #[test]
    fn budgets_parse_from_counts_and_percentages() {
        assert_eq!(DrainBudget::parse("0"), Ok(DrainBudget::Unlimited));
        assert_eq!(DrainBudget::parse("2"), Ok(DrainBudget::Count(2)));
        assert_eq!(DrainBudget::parse(" 25% "), Ok(DrainBudget::Percent(25)));
        assert_eq!(DrainBudget::parse("100%"), Ok(DrainBudget::Percent(100)));
        for bad in ["-1", "0%", "101%", "2.5", "25 %%", "two", "%", "1e3"] {
            let err = DrainBudget::parse(bad).expect_err(bad);
            assert!(err.contains("percentage"), "{bad}: {err}");
        }
        assert_eq!(DrainBudget::Percent(25).to_string(), "25%");
        assert_eq!(DrainBudget::Count(3).to_string(), "3");
    }

    #[test]
    fn a_percentage_rounds_down_but_lets_one_drain_run() {
        assert_eq!(DrainBudget::Unlimited.limit(10), None);
        assert_eq!(DrainBudget::Count(2).limit(1), Some(2));
        assert_eq!(DrainBudget::Percent(25).limit(10), Some(2));
        assert_eq!(DrainBudget::Percent(25).limit(12), Some(3));
        assert_eq!(DrainBudget::Percent(25).limit(3), Some(1));
        assert_eq!(DrainBudget::Percent(10).limit(0), Some(1));
        assert_eq!(DrainBudget::Percent(100).limit(7), Some(7));
    }

    #[test]
    fn a_free_slot_admits_and_a_full_budget_queues() {
        let (next, a) = settle(
            &SlotBook::default(),
            "i-1",
            Ask::Drain { action_start_ms: 5 },
            2,
            NOW,
            LEASE,
        );
        assert_eq!(a, Admission::Admitted);
        assert!(next.holders.contains_key("i-1") && next.waiters.is_empty());

        let full = book(&[("i-1", false), ("i-2", false)], &[]);
        let (next, a) = settle(
            &full,
            "i-3",
            Ask::Drain { action_start_ms: 5 },
            2,
            NOW,
            LEASE,
        );
        let Admission::Waiting(w) = a else {
            panic!("{a:?}")
        };
        assert_eq!((w.limit, w.ahead, w.since_ms), (2, 0, NOW));
        assert_eq!(w.holders, vec!["i-1".to_owned(), "i-2".to_owned()]);
        assert_eq!(next.waiters["i-3"].action_start_ms, 5);
        assert_eq!(next.holders.len(), 2);
    }

    #[test]
    fn the_oldest_action_goes_first_whoever_looks_first() {
        // One slot free; i-new looks first but i-old's action started earlier.
        let b = book(&[("i-1", false)], &[("i-old", 100)]);
        let (next, a) = settle(
            &b,
            "i-new",
            Ask::Drain {
                action_start_ms: 200,
            },
            2,
            NOW,
            LEASE,
        );
        assert!(
            matches!(a, Admission::Waiting(SlotWait { ahead: 0, .. })),
            "{a:?}"
        );
        let (next, a) = settle(
            &next,
            "i-old",
            Ask::Drain {
                action_start_ms: 100,
            },
            2,
            NOW,
            LEASE,
        );
        assert_eq!(a, Admission::Admitted);
        assert_eq!(next.holders.len(), 2);
        // Now full: i-new waits, first in line.
        let (_, a) = settle(
            &next,
            "i-new",
            Ask::Drain {
                action_start_ms: 200,
            },
            2,
            NOW,
            LEASE,
        );
        assert!(
            matches!(a, Admission::Waiting(SlotWait { ahead: 0, .. })),
            "{a:?}"
        );
        // Two slots free, two older waiters: the third waits behind them.
        let b = book(&[], &[("i-a", 1), ("i-b", 2)]);
        let (_, a) = settle(&b, "i-c", Ask::Drain { action_start_ms: 3 }, 2, NOW, LEASE);
        assert!(
            matches!(a, Admission::Waiting(SlotWait { ahead: 0, .. })),
            "{a:?}"
        );
        let b = book(&[("i-x", false)], &[("i-a", 1), ("i-b", 2)]);
        let (_, a) = settle(&b, "i-c", Ask::Drain { action_start_ms: 3 }, 2, NOW, LEASE);
        assert!(
            matches!(a, Admission::Waiting(SlotWait { ahead: 1, .. })),
            "{a:?}"
        );
    }

    #[test]
    fn urgent_and_draining_drains_bypass_the_budget_but_count() {
        let full = book(&[("i-1", false), ("i-2", false)], &[("i-w", 1)]);
        let (next, a) = settle(&full, "i-spot", Ask::Urgent, 2, NOW, LEASE);
        assert_eq!(a, Admission::Admitted);
        assert!(next.holders["i-spot"].urgent);
        assert_eq!(next.holders.len(), 3);
        // A slot frees, but the urgent drain still counts: the waiter waits.
        let mut after = next.clone();
        after.holders.remove("i-1");
        let (_, a) = settle(
            &after,
            "i-w",
            Ask::Drain { action_start_ms: 1 },
            2,
            NOW,
            LEASE,
        );
        assert!(matches!(a, Admission::Waiting(_)), "{a:?}");
        // The terminate hook's chain of the urgent drain keeps it urgent.
        let (next, a) = settle(&after, "i-spot", Ask::Draining, 2, NOW, LEASE);
        assert_eq!(a, Admission::Admitted);
        assert!(next.holders["i-spot"].urgent);
        // A chain that finds its instance DRAINING counts it, waiting or not.
        let (next, a) = settle(&full, "i-w", Ask::Draining, 2, NOW, LEASE);
        assert_eq!(a, Admission::Admitted);
        assert!(next.waiters.is_empty() && next.holders.len() == 3);
    }

    #[test]
    fn expired_leases_free_their_slots_and_release_frees_at_once() {
        let mut b = book(&[("i-dead", false), ("i-1", false)], &[("i-gone", 1)]);
        if let Some(h) = b.holders.get_mut("i-dead") {
            h.lease_until_ms = NOW - 1;
        }
        if let Some(w) = b.waiters.get_mut("i-gone") {
            w.lease_until_ms = NOW;
        }
        let (next, a) = settle(&b, "i-3", Ask::Drain { action_start_ms: 9 }, 2, NOW, LEASE);
        assert_eq!(a, Admission::Admitted);
        assert!(!next.holders.contains_key("i-dead") && next.waiters.is_empty());

        let (next, a) = settle(&next, "i-1", Ask::Release, 2, NOW, LEASE);
        assert_eq!(a, Admission::Released);
        assert_eq!(next.holders.keys().collect::<Vec<_>>(), vec!["i-3"]);
    }

    #[test]
    fn a_fresh_lease_is_not_rewritten_and_a_half_spent_one_is() {
        let b = book(&[("i-1", false)], &[("i-2", 1)]);
        let (next, _) = settle(&b, "i-1", Ask::Drain { action_start_ms: 0 }, 1, NOW, LEASE);
        assert_eq!(next, b, "nothing to write");
        let (next, _) = settle(&b, "i-2", Ask::Drain { action_start_ms: 1 }, 1, NOW, LEASE);
        assert_eq!(next, b, "nothing to write");
        let later = NOW + LEASE / 2 + 1;
        let (next, _) = settle(
            &b,
            "i-1",
            Ask::Drain { action_start_ms: 0 },
            1,
            later,
            LEASE,
        );
        assert_eq!(next.holders["i-1"].lease_until_ms, later + LEASE);
        assert_eq!(
            next.holders["i-1"].since_ms,
            NOW - 1_000,
            "the slot is kept, not retaken"
        );
    }

    #[test]
    fn a_shrinking_percentage_keeps_its_holders_and_admits_no_more() {
        let b = book(&[("i-1", false), ("i-2", false), ("i-3", false)], &[]);
        let (_, a) = settle(&b, "i-2", Ask::Drain { action_start_ms: 0 }, 1, NOW, LEASE);
        assert_eq!(a, Admission::Admitted);
        let (_, a) = settle(&b, "i-4", Ask::Drain { action_start_ms: 0 }, 1, NOW, LEASE);
        assert!(
            matches!(a, Admission::Waiting(SlotWait { ahead: 0, .. })),
            "{a:?}"
        );
    }

    #[test]
    fn a_cluster_has_one_book_whether_named_or_by_arn() {
        let arn = Cluster::from("arn:aws:ecs:eu-west-1:123456789012:cluster/prod".to_owned());
        assert_eq!(budget_key(&arn).as_str(), "prod");
        assert_eq!(
            budget_key(&Cluster::from("prod".to_owned())).as_str(),
            "prod"
        );
    }

    #[test]
    fn the_lease_covers_three_polls() {
        assert_eq!(lease_ms(10_000), LEASE_MS);
        assert_eq!(lease_ms(400_000), 1_200_000);
    }
}

#[cfg(test)]
#[path = "budget_tests.rs"]
mod flow_tests;
