//! Coalesced lookups: the records of one invocation (an SQS batch of drain
//! continuations, say) each look up one item (a container instance, an Auto
//! Scaling instance) of an API that describes many in one call. A
//! [`Coalescer`] keeps at most one such call in flight per lane (a cluster);
//! the lookups that arrive while it is in flight wait and go out together in
//! the next call, up to the API's maximum per call. Nothing waits on a timer:
//! a lone lookup goes out at once, and under load the calls a batch makes
//! approach one per lane per round trip.
//!
//! The call is made by one of the callers (the lane's leader), never by a
//! spawned task; if the leader is cancelled (its invocation ends), the lead
//! passes to the next waiter, so a lane is never left stuck.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

use crate::error::AwsError;

/// What a waiting lookup is told.
enum Turn<V> {
    /// Its answer, from a call another lookup made.
    Done(Result<Option<V>, AwsError>),
    /// The lane's call is now its to make.
    Lead,
}

struct Waiter<I, V> {
    id: I,
    tx: oneshot::Sender<Turn<V>>,
}

struct Lane<I, V> {
    /// A call of this lane is in flight (or its leader is about to make it).
    busy: bool,
    waiting: Vec<Waiter<I, V>>,
}

impl<I, V> Default for Lane<I, V> {
    fn default() -> Self {
        Lane {
            busy: false,
            waiting: Vec::new(),
        }
    }
}

type Lanes<K, I, V> = Arc<Mutex<HashMap<K, Lane<I, V>>>>;

/// Coalesces lookups of items `I` (answered as `V`) per lane `K`.
pub struct Coalescer<K, I, V> {
    lanes: Lanes<K, I, V>,
    /// Most items one call takes (100 for DescribeContainerInstances).
    max: usize,
}

impl<K, I, V> std::fmt::Debug for Coalescer<K, I, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coalescer").field("max", &self.max).finish()
    }
}

impl<K, I, V> Coalescer<K, I, V>
where
    K: Eq + Hash + Clone,
    I: Clone + PartialEq,
    V: Clone,
{
    pub fn new(max: usize) -> Self {
        Coalescer {
            lanes: Arc::new(Mutex::new(HashMap::new())),
            max: max.max(1),
        }
    }

    /// Looks `id` up in `lane`: `fetch` describes a set of ids in one call
    /// (at most `max`), and `is` tells which answer is an id's. `None`: the
    /// API does not know it. An error of the call is every lookup's in it.
    pub async fn get<F, Fut>(
        &self,
        lane: &K,
        id: I,
        fetch: F,
        is: impl Fn(&V, &I) -> bool,
    ) -> Result<Option<V>, AwsError>
    where
        F: Fn(Vec<I>) -> Fut,
        Fut: Future<Output = Result<Vec<V>, AwsError>>,
    {
        loop {
            let rx = {
                let mut lanes = self.lanes.lock().unwrap_or_else(PoisonError::into_inner);
                let state = lanes.entry(lane.clone()).or_default();
                if state.busy {
                    let (tx, rx) = oneshot::channel();
                    state.waiting.push(Waiter { id: id.clone(), tx });
                    Some(rx)
                } else {
                    state.busy = true;
                    None
                }
            };
            match rx {
                None => return self.lead(lane, id, &fetch, &is).await,
                Some(rx) => match rx.await {
                    Ok(Turn::Done(answer)) => return answer,
                    Ok(Turn::Lead) => return self.lead(lane, id, &fetch, &is).await,
                    // Dropped unanswered (a leader cancelled between taking
                    // it and answering): ask again.
                    Err(_) => {}
                },
            }
        }
    }

    /// Makes the lane's call for `id` and the lookups waiting (up to `max`),
    /// answers them, and passes the lead on to the next waiter, if any.
    async fn lead<F, Fut>(
        &self,
        lane: &K,
        id: I,
        fetch: &F,
        is: &impl Fn(&V, &I) -> bool,
    ) -> Result<Option<V>, AwsError>
    where
        F: Fn(Vec<I>) -> Fut,
        Fut: Future<Output = Result<Vec<V>, AwsError>>,
    {
        let mut guard = LeadGuard {
            lanes: &self.lanes,
            lane,
            taken: Vec::new(),
        };
        {
            let mut lanes = self.lanes.lock().unwrap_or_else(PoisonError::into_inner);
            let state = lanes.entry(lane.clone()).or_default();
            let n = state.waiting.len().min(self.max - 1);
            guard.taken = state.waiting.drain(..n).collect();
        }
        let mut ids = Vec::with_capacity(guard.taken.len() + 1);
        ids.push(id.clone());
        for w in &guard.taken {
            if !ids.contains(&w.id) {
                ids.push(w.id.clone());
            }
        }
        let answer = fetch(ids).await;
        let answer_for = |i: &I| match &answer {
            Ok(found) => Ok(found.iter().find(|v| is(v, i)).cloned()),
            Err(e) => Err(e.clone()),
        };
        for w in std::mem::take(&mut guard.taken) {
            // A waiter cancelled meanwhile has nobody to tell.
            let _ = w.tx.send(Turn::Done(answer_for(&w.id)));
        }
        answer_for(&id)
        // The guard passes the lead on.
    }
}

/// Ends a lead, also when the leader is dropped mid-call: the lookups it had
/// taken are asked again (their senders drop), and the lane passes to the
/// first waiter still listening, or is free.
struct LeadGuard<'a, K: Eq + Hash + Clone, I, V> {
    lanes: &'a Lanes<K, I, V>,
    lane: &'a K,
    taken: Vec<Waiter<I, V>>,
}

impl<K: Eq + Hash + Clone, I, V> Drop for LeadGuard<'_, K, I, V> {
    fn drop(&mut self) {
        let mut lanes = self.lanes.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(state) = lanes.get_mut(self.lane) else {
            return;
        };
        while !state.waiting.is_empty() {
            let next = state.waiting.remove(0);
            if next.tx.send(Turn::Lead).is_ok() {
                return;
            }
        }
        state.busy = false;
        lanes.remove(self.lane);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    fn error() -> AwsError {
        AwsError::new("ecs", "DescribeContainerInstances", None, "boom".into())
    }

    /// A fake API: each call takes 10 ms and answers the ids it was asked
    /// (except "gone"), counting calls and the largest call.
    struct Api {
        calls: AtomicUsize,
        largest: AtomicUsize,
        fail: bool,
    }

    impl Api {
        fn new(fail: bool) -> Self {
            Api {
                calls: AtomicUsize::new(0),
                largest: AtomicUsize::new(0),
                fail,
            }
        }
        async fn fetch(&self, ids: Vec<String>) -> Result<Vec<String>, AwsError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.largest.fetch_max(ids.len(), Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(10)).await;
            if self.fail {
                return Err(error());
            }
            Ok(ids.into_iter().filter(|i| i != "gone").collect())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_lone_lookup_goes_out_at_once() {
        let c: Coalescer<&str, String, String> = Coalescer::new(100);
        let api = Api::new(false);
        let start = tokio::time::Instant::now();
        let got = c
            .get(&"cl", "a".into(), |ids| api.fetch(ids), |v, i| v == i)
            .await;
        assert_eq!(got, Ok(Some("a".to_owned())));
        assert_eq!(start.elapsed(), Duration::from_millis(10));
        assert_eq!(api.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_lookups_of_one_lane_share_calls_up_to_the_maximum() {
        let c: Coalescer<&str, String, String> = Coalescer::new(100);
        let api = Api::new(false);
        let mut ids: Vec<String> = (0..250).map(|i| format!("ci-{i}")).collect();
        ids.push("gone".into());
        let answers = futures_util::future::join_all(
            ids.iter()
                .map(|id| c.get(&"cl", id.clone(), |ids| api.fetch(ids), |v, i| v == i)),
        )
        .await;
        for (id, a) in ids.iter().zip(&answers) {
            let want = (id != "gone").then(|| id.clone());
            assert_eq!(a, &Ok(want), "{id}");
        }
        // One lone call, then the 250 others in calls of at most 100.
        assert_eq!(api.calls.load(Ordering::SeqCst), 4);
        assert_eq!(api.largest.load(Ordering::SeqCst), 100);
    }

    #[tokio::test(start_paused = true)]
    async fn lanes_do_not_wait_for_each_other() {
        let c: Coalescer<&str, String, String> = Coalescer::new(100);
        let api = Api::new(false);
        let start = tokio::time::Instant::now();
        let (a, b) = tokio::join!(
            c.get(&"one", "a".into(), |ids| api.fetch(ids), |v, i| v == i),
            c.get(&"two", "b".into(), |ids| api.fetch(ids), |v, i| v == i),
        );
        assert_eq!(
            (a.unwrap(), b.unwrap()),
            (Some("a".into()), Some("b".into()))
        );
        assert_eq!(start.elapsed(), Duration::from_millis(10));
        assert_eq!(api.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn an_error_is_every_lookups_of_that_call() {
        let c: Coalescer<&str, String, String> = Coalescer::new(100);
        let api = Api::new(true);
        let answers = futures_util::future::join_all(
            ["a", "b", "c"].map(|id| c.get(&"cl", id.into(), |ids| api.fetch(ids), |v, i| v == i)),
        )
        .await;
        assert!(answers.iter().all(|a| a == &Err(error())), "{answers:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_leader_cancelled_mid_call_passes_the_lead_on() {
        let c: Coalescer<&str, String, String> = Coalescer::new(100);
        let api = Api::new(false);
        // The leader is dropped 5 ms into its call; the others arrive meanwhile.
        let leader = tokio::time::timeout(
            Duration::from_millis(5),
            c.get(&"cl", "a".into(), |ids| api.fetch(ids), |v, i| v == i),
        );
        let others = async {
            tokio::time::sleep(Duration::from_millis(1)).await;
            tokio::join!(
                c.get(&"cl", "b".into(), |ids| api.fetch(ids), |v, i| v == i),
                c.get(&"cl", "c".into(), |ids| api.fetch(ids), |v, i| v == i),
            )
        };
        let (lead, (b, c2)) = tokio::join!(leader, others);
        assert!(lead.is_err(), "the leader timed out");
        assert_eq!(b, Ok(Some("b".into())));
        assert_eq!(c2, Ok(Some("c".into())));
        // The lane is free again afterwards: a lone lookup goes out at once.
        let start = tokio::time::Instant::now();
        let d = c
            .get(&"cl", "d".into(), |ids| api.fetch(ids), |v, i| v == i)
            .await;
        assert_eq!(d, Ok(Some("d".into())));
        assert_eq!(start.elapsed(), Duration::from_millis(10));
    }
}
