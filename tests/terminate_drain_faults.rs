//! terminate-drain under faults and load, against the AWS stand-in over real HTTP
//! (moto server 5.2.5 plus what the stand-in plays; see tests/terminate_drain.rs).
//! Where these tests rely on the stand-in playing AWS, it is named:
//! - **Auto Scaling's timeouts by the clock** (`/_standin/lifecycle/enforce`): an
//!   action whose last heartbeat is older than the hook's HeartbeatTimeout expires
//!   with the hook's DefaultResult, and later heartbeats and completions get AWS's
//!   `ValidationError: No active Lifecycle Action`. HeartbeatTimeout is 30 s, AWS's
//!   minimum, so these tests spend real time only where that 30 s forces it.
//! - **An ECS outage** (`/_standin/faults` with `for_ms`): every ECS call answers 503
//!   ServiceUnavailable, in ECS's JSON 1.1 protocol, for a window of time.
//! - **ECS's account-wide throttling** (`/_standin/throttle`): one token bucket for
//!   every ECS call of every function process; a call over budget answers
//!   ThrottlingException (400, "Rate exceeded").
//! - **ECS's scheduler** on a DRAINING instance (`/_standin/ecs/auto`): service tasks
//!   replaced on ACTIVE instances, stopping tasks walked to STOPPED, one state a step.
//! - **Lambda** (in-process drains): each invocation is `Drainer::handle` with its
//!   deadline, a hand-off's continuation is read back from the queue the topic feeds
//!   and is the next invocation's event; the multi-process test runs the real binary
//!   through the stand-in's Runtime API and SNS delivery (tests/terminate_drain_binary.rs).

//!
//! Run time: the two long tests (the blackout, ~65 s; the burst of ten drains,
//! ~95 s) are named to sort first, because libtest starts tests in name order: they
//! then run beside the short ones instead of after them.

//!
//! Given / When / Then helpers: `tests/support/drain.rs` (the next test of this
//! workflow takes them from there, and adds what it needs there).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed set-up is a failed test

use std::time::{Duration, Instant};

use ecs_lifecycle::hook::Handler;
use ecs_lifecycle_suite::drain::{
    HEARTBEAT_TIMEOUT_S, assert_completed_once, chained_drainer, drain_token, draining_was_set,
    ecs_calls, fleet_spec, handed_off_once, heartbeats_ms, invoke, largest_gap, last_stop,
    max_heartbeat_gap, num, play_lambda, scale_in, start_binary, start_terminating, tail,
};
use ecs_lifecycle_suite::{action_of, fleet_on, next_continuation};
use serde_json::{Value, json};
use testkit::{Fleet, LocalFunction, Standin, now_ms};

/// The longest a held action may go without a heartbeat in these tests: a third of
/// HeartbeatTimeout (the cadence) plus slack for a loaded 2-core machine. Auto
/// Scaling's own limit, enforced by the stand-in, is the whole 30 s.
const MAX_HEARTBEAT_GAP_S: f64 = 10.0 + 5.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blackout_of_ecs_longer_than_the_heartbeat_timeout_loses_no_action() {
    let s = Standin::start().unwrap();
    let (sdk, fleet) = fleet_on(&s, &fleet_spec("outage", 2)).await;
    fleet.service("api", false, &[2, 0]).await.unwrap();
    fleet.service("agent", true, &[1, 1]).await.unwrap();
    s.enforce_heartbeats(true).unwrap();
    let event = scale_in(&s, &fleet, 0).await;
    // ECS's scheduler (played) keeps moving tasks through the outage: it is ECS's
    // API that is out, not the agents.
    s.ecs_auto(500).unwrap();
    let d = chained_drainer(&sdk, &fleet, &[]);

    // The outage starts as soon as the drain has set DRAINING, and lasts 50 s:
    // longer than one SDK call with all its retries (45 s operation timeout, 6
    // attempts) and longer than the 30 s HeartbeatTimeout. Invocations of 20 s, so
    // the drain hands off during the outage too.
    const OUTAGE_MS: u64 = 50_000;
    let outage = async {
        draining_was_set(&s, Duration::from_secs(20)).await;
        let calls_before: u64 = ecs_calls(&s);
        let start = now_ms();
        s.fault_for("ecs:*", "ServiceUnavailable", 503, OUTAGE_MS)
            .unwrap();
        tokio::time::sleep(Duration::from_millis(OUTAGE_MS)).await;
        (start, start + OUTAGE_MS, ecs_calls(&s) - calls_before)
    };
    let (played, (outage_start, outage_end, calls_in_outage)) = tokio::join!(
        play_lambda(&d, &fleet, event, 20_000, Duration::from_secs(3)),
        outage
    );
    s.ecs_auto(0).unwrap();

    // The product's promise first: the action outlived the outage and completed once.
    let action = action_of(&s, &fleet, 0);
    assert_completed_once(&action);
    assert_eq!(played.outcome["outcome"], "completed", "{played:?}");
    assert_eq!(played.outcome["reason"], "Drained", "{played:?}");
    let tasks = fleet.tasks_on(0).await.unwrap();
    let last = last_stop(&tasks);
    let completed = num(&action, "completed_at");
    assert!(
        completed >= last && completed * 1000.0 >= outage_end as f64,
        "completed at {completed}, last task stopped at {last}, outage ended at {outage_end} ms"
    );
    let lag = completed - (outage_end as f64 / 1000.0).max(last);
    assert!(lag <= 30.0, "completed {lag:.1} s after it could have");
    let gap = max_heartbeat_gap(&action);
    assert!(
        gap <= MAX_HEARTBEAT_GAP_S,
        "{gap:.1} s without a heartbeat: {action}"
    );
    let during = heartbeats_ms(&action)
        .into_iter()
        .filter(|t| *t >= outage_start as f64 && *t <= outage_end as f64)
        .count();
    assert!(
        during >= 4,
        "{during} heartbeats in the 50 s outage: {action}"
    );
    assert!(
        calls_in_outage > 0,
        "the drain kept trying ECS during the outage"
    );
    assert!(played.overruns.is_empty(), "{played:?}");
    assert!(
        played.invocations >= 3,
        "the drain handed off during the outage: {played:?}"
    );
    // Then how: it never needed Lambda's retry.
    assert!(played.errors.is_empty(), "function errors: {played:?}");
    eprintln!(
        "outage: {} invocations, completed {lag:.1} s after the outage, max heartbeat gap {gap:.1} s, {calls_in_outage} ECS calls during it",
        played.invocations
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_ten_drains_shares_a_throttled_ecs_and_none_expires() {
    const DRAINS: usize = 10;
    let s = Standin::start().unwrap();
    let sdk = s.sdk_config().await;
    // Ten instances drain; two stay ACTIVE to take the replacements.
    let fleet = Fleet::create(&sdk, &fleet_spec("herd", 12)).await.unwrap();
    let mut web = vec![2; DRAINS];
    web.extend([0, 0]);
    fleet.service("web", false, &web).await.unwrap();
    fleet.service("agent", true, &[1; 12]).await.unwrap();
    s.enforce_heartbeats(true).unwrap();

    // Ten processes of the real binary, each taking invocations from the Runtime API.
    let logs: Vec<_> = (0..DRAINS)
        .map(|i| std::env::temp_dir().join(format!("herd-{}-{i}.log", std::process::id())))
        .collect();
    let _functions: Vec<LocalFunction> = logs
        .iter()
        .map(|log| start_binary(&s, &fleet, "terminate-drain", &[], log))
        .collect();
    // 30 s invocations (the binary hands off 10 s before the deadline).
    s.subscribe_function(&fleet.topic_arn, 30_000).unwrap();
    // ECS, played: one token bucket of 4 calls/s (burst 10) for the whole account,
    // against ten drains asking for several calls a second each.
    s.throttle("ecs:*", 4.0, 10).unwrap();

    let t0 = Instant::now();
    for i in 0..DRAINS {
        start_terminating(&s, &fleet, i);
    }
    // The scheduler (played) stays off for 32 s: every drain has to hold its action
    // past the 30 s HeartbeatTimeout, under the throttle, before its tasks can move.
    tokio::time::sleep(Duration::from_secs(32).saturating_sub(t0.elapsed())).await;
    s.ecs_auto(1000).unwrap();
    let ended = s
        .wait_for(Duration::from_secs(150), |s| {
            let actions = s.lifecycle_actions()?;
            Ok(
                (actions.iter().filter(|a| a["state"] != "active").count() == DRAINS)
                    .then_some(actions),
            )
        })
        .await;
    s.ecs_auto(0).unwrap();
    let report = s.throttle_report().unwrap();
    s.clear_throttle().unwrap();
    let actions = match ended {
        Ok(a) => a,
        Err(e) => panic!(
            "{e}: {:#?}\nlast log lines:\n{}",
            s.lifecycle_actions().unwrap(),
            tail(&logs[0], 20)
        ),
    };
    let elapsed = t0.elapsed().as_secs_f64();

    let mut gaps = Vec::new();
    let mut lags = Vec::new();
    for i in 0..DRAINS {
        let action = actions
            .iter()
            .find(|a| a["instance_id"] == fleet.instance_ids[i].as_str())
            .unwrap();
        assert_completed_once(action);
        let tasks = fleet.tasks_on(i).await.unwrap();
        let last = last_stop(&tasks);
        let completed = num(action, "completed_at");
        assert!(
            completed >= last,
            "instance {i}: completed at {completed}, before its last task stopped at {last}"
        );
        assert!(
            completed - num(action, "started_at") > f64::from(HEARTBEAT_TIMEOUT_S),
            "instance {i}: held past the heartbeat timeout"
        );
        assert!(
            !action["heartbeats"].as_array().unwrap().is_empty(),
            "instance {i}: {action}"
        );
        gaps.push(max_heartbeat_gap(action));
        lags.push(completed - last);
    }
    let max_gap = gaps.iter().copied().fold(0.0_f64, f64::max);
    assert!(max_gap <= MAX_HEARTBEAT_GAP_S, "heartbeat gaps {gaps:?}");
    let ecs_bucket = &report[0];
    assert!(
        ecs_bucket.throttled > 0,
        "ECS throttled the drains: {ecs_bucket:?}"
    );
    // Every invocation answered (a function error here has no Lambda retry to hide behind).
    let invocations = s.ended_invocations(Duration::from_secs(40)).await.unwrap();
    let failed: Vec<&Value> = invocations
        .iter()
        .filter(|i| i["status"] != "success")
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
    eprintln!(
        "herd: {DRAINS} drains in {elapsed:.0} s, {} invocations; ECS granted {} throttled {} ({:.1} granted/s); lag last task -> completion max {:.1} s; max heartbeat gap {max_gap:.1} s",
        invocations.len(),
        ecs_bucket.granted,
        ecs_bucket.throttled,
        ecs_bucket.granted as f64 / elapsed,
        lags.iter().copied().fold(0.0_f64, f64::max)
    );
    for log in &logs {
        let _ = std::fs::remove_file(log);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_at_the_last_poll_never_runs_past_the_deadline() {
    let s = Standin::start().unwrap();
    let (sdk, fleet) = fleet_on(&s, &fleet_spec("lastwait", 2)).await;
    fleet.service("api", false, &[2, 0]).await.unwrap();
    let d = chained_drainer(&sdk, &fleet, &[]);
    // No scheduler: the service tasks never move, so after DRAINING every
    // invocation is waits, then the hand-off. Invocation lengths from 2.8 s to
    // 3.7 s put the last wait at offsets across a whole poll (1 s plus the
    // observation) from the hand-off point.
    let mut event = scale_in(&s, &fleet, 0).await;
    for (n, invocation_ms) in [2800, 3100, 3400, 3700].into_iter().enumerate() {
        let outcome = invoke(&d, &event, invocation_ms).await;
        assert_eq!(
            outcome["outcome"], "handed_off",
            "invocation {n}: {outcome}"
        );
        event = next_continuation(&fleet).await.0;
    }
    // The same with the observation after the last wait failing: ECS answers 503
    // from 0.8 s into the invocation (after its first wait began) to its end, so the
    // SDK's retries (with back-off) would carry that observation far past the
    // deadline if nothing bounded it.
    for invocation_ms in [3000, 3500] {
        let started = now_ms();
        let fault = async {
            tokio::time::sleep(Duration::from_millis(800)).await;
            s.fault_for("ecs:*", "ServiceUnavailable", 503, invocation_ms - 800)
                .unwrap();
        };
        let (outcome, ()) = tokio::join!(invoke(&d, &event, invocation_ms), fault);
        assert_eq!(outcome["outcome"], "handed_off", "{outcome}");
        assert!(now_ms() - started <= invocation_ms);
        tokio::time::sleep(Duration::from_millis(300)).await; // the window closes
        event = next_continuation(&fleet).await.0;
    }
    let action = action_of(&s, &fleet, 0);
    assert_eq!(
        (action["state"].as_str(), action["complete_calls"].as_u64()),
        (Some("active"), Some(0)),
        "{action}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_tasks_at_the_last_poll_never_runs_past_the_deadline() {
    let s = Standin::start().unwrap();
    let (sdk, fleet) = fleet_on(&s, &fleet_spec("lastitem", 2)).await;
    // A daemon-only instance: once DRAINING, the drain stops the daemon itself
    // (StopTasks), then waits a poll for it to stop.
    let daemon = fleet.service("agent", true, &[1, 1]).await.unwrap();
    let d = chained_drainer(&sdk, &fleet, &[("POLL_INTERVAL_SECONDS", "5")]);
    // A 4 s invocation with a 5 s poll: StopTasks is the last step before the
    // hand-off point (2.5 s), and the poll it waits after stopping would end past
    // the deadline.
    let event = scale_in(&s, &fleet, 0).await;
    let started = Instant::now();
    let outcome = invoke(&d, &event, 4000).await;
    assert_eq!(outcome["outcome"], "handed_off", "{outcome}");
    assert!(started.elapsed() < Duration::from_millis(4000));
    let tasks = fleet.tasks_on(0).await.unwrap();
    let told = tasks.iter().find(|t| t.arn == daemon[0]).unwrap();
    assert_eq!(
        told.desired_status, "STOPPED",
        "the drain stopped the daemon before handing off: {told:?}"
    );

    // ECS stops it (played); the continuation completes the drain, once.
    s.ecs_auto(300).unwrap();
    let (event, _) = next_continuation(&fleet).await;
    let outcome = invoke(&d, &event, 30_000).await;
    s.ecs_auto(0).unwrap();
    assert_eq!(outcome["outcome"], "completed", "{outcome}");
    assert_completed_once(&action_of(&s, &fleet, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heartbeat_due_at_the_last_poll_never_runs_past_the_deadline() {
    let s = Standin::start().unwrap();
    let (sdk, fleet) = fleet_on(&s, &fleet_spec("lastbeat", 2)).await;
    fleet.service("api", false, &[2, 0]).await.unwrap();
    s.enforce_heartbeats(true).unwrap();
    let d = chained_drainer(&sdk, &fleet, &[]);
    // A first short invocation sets DRAINING and hands off (no scheduler: stuck).
    let (_, mut continuation) = handed_off_once(&s, &fleet, &d, 2500).await;

    // The next invocation (5 s: hand-off point at 3.5 s) is told the last heartbeat
    // went out 7 s before it started, so the next one (every 10 s) falls due at
    // 3.0 s, at the last poll. Auto Scaling answers it slowly: throttled for the
    // whole invocation, so the SDK's retries carry the heartbeat call past the
    // hand-off point and the deadline.
    let started = now_ms();
    continuation["last_heartbeat_ms"] = json!(started - 7000);
    s.fault_for(
        "autoscaling:RecordLifecycleActionHeartbeat",
        "Throttling",
        400,
        5000,
    )
    .unwrap();
    let outcome = invoke(&d, &continuation, 5000).await;
    assert_eq!(outcome["outcome"], "handed_off", "{outcome}");
    assert!(now_ms() - started <= 5000);
    let calls = s.calls().unwrap();
    assert!(
        calls
            .get("autoscaling:RecordLifecycleActionHeartbeat")
            .is_some_and(|n| *n >= 1),
        "the heartbeat fell due in that invocation: {calls:?}"
    );
    let (event, next) = next_continuation(&fleet).await;
    assert!(
        next["last_heartbeat_ms"].as_u64().unwrap() <= started - 7000,
        "the heartbeat that did not get through is not claimed: {next}"
    );

    // Once the throttle is over, the next invocation heartbeats at once: the
    // heartbeat is overdue.
    tokio::time::sleep(Duration::from_millis(
        (started + 5500).saturating_sub(now_ms()),
    ))
    .await;
    let resumed = now_ms();
    assert_eq!(invoke(&d, &event, 4000).await["outcome"], "handed_off");
    let action = action_of(&s, &fleet, 0);
    assert_eq!(action["state"], "active", "{action}");
    let beats = heartbeats_ms(&action);
    assert!(
        beats
            .iter()
            .any(|t| *t >= resumed as f64 && *t <= resumed as f64 + 2500.0),
        "a heartbeat early in the next invocation (it began at {resumed}): {action}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_publish_at_the_hand_off_never_runs_past_the_deadline() {
    let s = Standin::start().unwrap();
    let (sdk, fleet) = fleet_on(&s, &fleet_spec("lastpub", 2)).await;
    fleet.service("api", false, &[2, 0]).await.unwrap();
    let d = chained_drainer(&sdk, &fleet, &[]);
    let event = scale_in(&s, &fleet, 0).await;
    // SNS answers 503 for 10 s: the hand-off's publish fails, and the SDK's own
    // retries (backing off up to 20 s a try, 45 s in all) would outlast the margin.
    // Within the invocation the runtime retries the publish; failing that, it
    // heartbeats and returns the error for Lambda's retry. Either way: by the deadline.
    s.fault_for("sns:Publish", "ServiceUnavailable", 503, 10_000)
        .unwrap();
    let deadline = now_ms() + 4000;
    let result = d.handle(&event, deadline).await;
    let ended = now_ms();
    assert!(
        ended <= deadline,
        "the invocation ran {} ms past its deadline: {result:?}",
        ended - deadline
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicated_continuation_ends_the_older_chain_within_a_poll() {
    let s = Standin::start().unwrap();
    let (sdk, fleet) = fleet_on(&s, &fleet_spec("dupchain", 2)).await;
    fleet.service("api", false, &[2, 0]).await.unwrap();
    const POLL_MS: u64 = 2000;
    let d = chained_drainer(&sdk, &fleet, &[("POLL_INTERVAL_SECONDS", "2")]);
    // Mid-drain: the first invocation hands off; its continuation is delivered
    // twice (SNS and Lambda are at-least-once), the second copy 3 s after the first.
    let (continuation, _) = handed_off_once(&s, &fleet, &d, 4000).await;

    let first = async {
        let outcome = invoke(&d, &continuation, 60_000).await;
        (outcome, now_ms())
    };
    let second = async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let started = now_ms();
        let chain = async { invoke(&d, &continuation, 60_000).await };
        // ECS gets going (played) a few seconds later: the surviving chain completes.
        let scheduler = async {
            tokio::time::sleep(Duration::from_secs(6)).await;
            s.ecs_auto(300).unwrap();
        };
        let (outcome, ()) = tokio::join!(chain, scheduler);
        (outcome, started)
    };
    let ((a, a_ended), (b, b_started)) = tokio::join!(first, second);
    s.ecs_auto(0).unwrap();

    assert_eq!(a["outcome"], "stopped", "{a}");
    let by = a["reason"]["Superseded"]["by"]
        .as_str()
        .unwrap_or_else(|| panic!("{a}"));
    // Within one poll of the copy's claim (its first observation), plus that
    // observation and slack for a loaded machine.
    let after = a_ended.saturating_sub(b_started);
    assert!(
        after <= POLL_MS + 3000,
        "the older chain stopped {after} ms after the copy started"
    );
    eprintln!("duplicate: the older chain stopped {after} ms after the copy started");
    assert_eq!(b["outcome"], "completed", "{b}");
    assert_eq!(
        drain_token(&fleet, 0).await.as_deref(),
        Some(by),
        "superseded by the token the copy wrote"
    );
    assert_completed_once(&action_of(&s, &fleet, 0));
    assert!(
        fleet.drain_queue().await.unwrap().is_empty(),
        "neither chain handed off again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_continuation_from_a_clock_an_hour_ahead_drains_and_heartbeats() {
    let s = Standin::start().unwrap();
    let (sdk, fleet) = fleet_on(&s, &fleet_spec("skew", 2)).await;
    fleet.service("api", false, &[2, 0]).await.unwrap();
    s.enforce_heartbeats(true).unwrap();
    let d = chained_drainer(&sdk, &fleet, &[]);
    let (_, mut continuation) = handed_off_once(&s, &fleet, &d, 2500).await;
    // The sandbox that wrote it had a clock an hour ahead of ours.
    let ahead = now_ms() + 3_600_000;
    continuation["started_at_ms"] = json!(ahead);
    continuation["last_heartbeat_ms"] = json!(ahead);

    // The drain stays stuck for 14 s (past a heartbeat, due 10 s after this
    // invocation starts at the latest), then ECS (played) moves the tasks.
    let resumed = now_ms();
    let scheduler = async {
        tokio::time::sleep(Duration::from_secs(14)).await;
        s.ecs_auto(300).unwrap();
    };
    let (outcome, ()) = tokio::join!(invoke(&d, &continuation, 60_000), scheduler);
    s.ecs_auto(0).unwrap();
    assert_eq!(outcome["outcome"], "completed", "{outcome}");
    assert_eq!(outcome["reason"], "Drained", "{outcome}");
    let action = action_of(&s, &fleet, 0);
    assert_completed_once(&action);
    let beats = heartbeats_ms(&action);
    // Taken as "now" (the runtime's choice): the first heartbeat 10 s into this
    // invocation, then every 10 s. (Counted from the real last heartbeat, the action
    // start here, the first gap is 10 s plus the first invocation: see the report.)
    let mut marks = vec![resumed as f64];
    marks.extend(beats.iter().copied().filter(|t| *t >= resumed as f64));
    marks.push(num(&action, "completed_at") * 1000.0);
    let gap_ms = largest_gap(&marks);
    assert!(
        marks.len() >= 3 && gap_ms <= MAX_HEARTBEAT_GAP_S * 1000.0,
        "heartbeats in this invocation as if the times were ours (it began at {resumed}; largest gap {gap_ms:.0} ms): {action}"
    );
    let last = last_stop(&fleet.tasks_on(0).await.unwrap());
    assert!(num(&action, "completed_at") >= last);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_whose_hook_cannot_be_read_is_heartbeated_from_the_first_moment() {
    // Auto Scaling throttles DescribeLifecycleHooks for 40 s, longer than the
    // hook's 30 s HeartbeatTimeout: the invocation cannot learn the hook's
    // cadence, and must keep the action alive meanwhile (a third of the smallest
    // HeartbeatTimeout Auto Scaling allows) instead of waiting for the read.
    let s = Standin::start().unwrap();
    let (sdk, fleet) = fleet_on(&s, &fleet_spec("hookread", 2)).await;
    fleet.service("api", false, &[1, 0]).await.unwrap();
    s.enforce_heartbeats(true).unwrap();
    let event = scale_in(&s, &fleet, 0).await;
    s.fault_for(
        "autoscaling:DescribeLifecycleHooks",
        "Throttling",
        400,
        40_000,
    )
    .unwrap();
    s.ecs_auto(500).unwrap();
    let d = chained_drainer(&sdk, &fleet, &[]);
    let played = play_lambda(&d, &fleet, event, 120_000, Duration::from_secs(3)).await;
    s.ecs_auto(0).unwrap();

    let action = action_of(&s, &fleet, 0);
    assert_completed_once(&action);
    assert_eq!(played.outcome["outcome"], "completed", "{played:?}");
    let gap = max_heartbeat_gap(&action);
    assert!(
        gap <= MAX_HEARTBEAT_GAP_S,
        "{gap:.1} s without a heartbeat: {action}"
    );
    // The drain waited for the read (it needs the hook's global timeout).
    let completed = num(&action, "completed_at") - num(&action, "started_at");
    assert!(
        completed >= 35.0,
        "completed {completed:.1} s after the start"
    );
    assert!(played.errors.is_empty(), "function errors: {played:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_drain_claim_never_stops_the_drain() {
    // ECS refuses the chain's claim attribute for good (an attribute limit): the
    // drain goes on unclaimed, sets DRAINING and completes once.
    let s = Standin::start().unwrap();
    let (sdk, fleet) = fleet_on(&s, &fleet_spec("claim", 2)).await;
    fleet.service("api", false, &[2, 0]).await.unwrap();
    let event = scale_in(&s, &fleet, 0).await;
    s.fault_for(
        "ecs:PutAttributes",
        "AttributeLimitExceededException",
        400,
        120_000,
    )
    .unwrap();
    s.ecs_auto(300).unwrap();
    let d = chained_drainer(&sdk, &fleet, &[]);
    let played = play_lambda(&d, &fleet, event, 60_000, Duration::from_secs(3)).await;
    s.ecs_auto(0).unwrap();

    let action = action_of(&s, &fleet, 0);
    assert_completed_once(&action);
    assert_eq!(played.outcome["outcome"], "completed", "{played:?}");
    assert_eq!(played.outcome["reason"], "Drained", "{played:?}");
    assert!(played.errors.is_empty(), "function errors: {played:?}");
    assert_eq!(drain_token(&fleet, 0).await, None, "no claim was written");
    let calls = s.calls().unwrap();
    assert!(
        calls.get("ecs:PutAttributes").is_some_and(|n| *n >= 1),
        "{calls:?}"
    );
}
