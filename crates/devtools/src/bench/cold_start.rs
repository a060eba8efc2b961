//! Cold start (figure 1): a fresh process, the Runtime API already holding one
//! queued invocation; spawn -> first `/next` and spawn -> response, both read
//! from the stand-in's `started_at` / `finished_at`. Then the same kind of event
//! again in the now warm process, and the process's VmHWM.

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use devtools::Invocations;
use serde_json::{Value, json};
use testkit::{LocalFunction, Result};

use crate::{Bench, TERMINATING, as_refs, f64_of, vm_kb};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ColdEvent {
    /// `autoscaling:TEST_NOTIFICATION` through SNS: no AWS call.
    TestNotification,
    /// The hook's notification for an instance with no tasks: a whole drain.
    EmptyDrain,
}

#[derive(Debug, Default)]
pub struct ColdSamples {
    pub to_next_ms: Vec<f64>,
    pub to_response_ms: Vec<f64>,
    pub handler_ms: Vec<f64>,
    /// The second, warm invocation of the same process.
    pub warm_handler_ms: Vec<f64>,
    pub hwm_kb: Vec<u64>,
    pub aws_calls: Vec<u64>,
}

/// The cold-start figures of a run.
#[derive(Debug)]
pub struct ColdStarts {
    /// The run's first spawn (TEST_NOTIFICATION), spawn -> response; not in the samples.
    pub warmup_ms: f64,
    pub test: ColdSamples,
    pub drain: ColdSamples,
}

fn epoch_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The warm-up, then `reps` cold starts on a TEST_NOTIFICATION and `reps` on the
/// drain of an empty instance (the instances from `first_empty` on, two a
/// repetition).
pub async fn measure(b: &Bench<'_>, reps: usize, first_empty: usize) -> Result<ColdStarts> {
    b.s.subscribe_function(&b.fleet.topic_arn, 60_000)?;
    let mut next_empty = first_empty;
    // The run's first spawn pays for the page cache and the stand-in's first
    // Runtime API request; reported apart, not in the samples.
    b.progress("cold start warm-up (first spawn of the run, not counted)");
    let warmup = cold_starts(b, ColdEvent::TestNotification, 1, &mut next_empty).await?;
    let warmup_ms = warmup.to_response_ms.first().copied().unwrap_or(f64::NAN);
    b.progress(&format!("cold start x{reps}: TEST_NOTIFICATION"));
    let test = cold_starts(b, ColdEvent::TestNotification, reps, &mut next_empty).await?;
    b.progress(&format!("cold start x{reps}: drain of an empty instance"));
    let drain = cold_starts(b, ColdEvent::EmptyDrain, reps, &mut next_empty).await?;
    Ok(ColdStarts {
        warmup_ms,
        test,
        drain,
    })
}

/// Queues one invocation of `kind` (through SNS, as AWS delivers it) and
/// returns its request id and the outcome the function should answer.
fn queue_one(
    b: &Bench<'_>,
    kind: ColdEvent,
    next_empty: &mut usize,
) -> Result<(String, &'static str)> {
    let (s, fleet) = (b.s, b.fleet);
    let before: BTreeSet<String> = s
        .invocations()?
        .iter()
        .filter_map(|i| i["request_id"].as_str().map(str::to_owned))
        .collect();
    let expected = match kind {
        ColdEvent::TestNotification => {
            s.post(
                "/_standin/lifecycle/test-notification",
                json!({"asg": fleet.asg, "hook": fleet.hook}),
            )?;
            "ignored"
        }
        ColdEvent::EmptyDrain => {
            let idx = *next_empty;
            *next_empty += 1;
            let id = fleet
                .instance_ids
                .get(idx)
                .ok_or("ran out of empty instances")?;
            s.start_lifecycle_action(&fleet.asg, &fleet.hook, id, TERMINATING)?;
            "completed"
        }
    };
    let new: Vec<Value> = s
        .invocations()?
        .into_iter()
        .filter(|i| {
            i["request_id"]
                .as_str()
                .is_some_and(|r| !before.contains(r))
        })
        .collect();
    match new.as_slice() {
        [inv] => Ok((
            inv["request_id"].as_str().unwrap_or_default().to_owned(),
            expected,
        )),
        _ => Err(format!("expected one new invocation, found {new:?}")),
    }
}

/// Waits for an invocation to end (polled every 50 ms; the times come from the
/// stand-in's own timestamps, not from this loop) and checks its outcome.
async fn finished(b: &Bench<'_>, request_id: &str, expected: &str) -> Result<Value> {
    let started = Instant::now();
    tokio::time::sleep(Duration::from_millis(40)).await;
    let done = loop {
        if let Some(done) = b.s.ended_invocation(request_id)? {
            break done;
        }
        if started.elapsed() > Duration::from_secs(30) {
            return Err(format!(
                "invocation not done in 30 s: {:?}",
                b.s.invocations()?
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    if done["status"] != "success"
        || done["response"]["outcomes"][0]["outcome"].as_str() != Some(expected)
    {
        return Err(format!("unexpected invocation result: {done}"));
    }
    Ok(done)
}

async fn cold_starts(
    b: &Bench<'_>,
    kind: ColdEvent,
    reps: usize,
    next_empty: &mut usize,
) -> Result<ColdSamples> {
    let s = b.s;
    let env = b.function_env(1);
    let env = as_refs(&env);
    let mut out = ColdSamples::default();
    for _ in 0..reps {
        s.delete("/_standin/lambda/invocations")?;
        let (request_id, expected) = queue_one(b, kind, next_empty)?;
        s.reset_calls()?;

        let t0 = epoch_s();
        let function = LocalFunction::spawn(
            s,
            b.binary,
            "terminate-drain",
            &env,
            Stdio::null(),
            Stdio::null(),
        )?;
        let done = finished(b, &request_id, expected).await?;
        let calls: u64 = s.calls()?.values().sum();
        let next = f64_of(&done, "started_at")?;
        let fin = f64_of(&done, "finished_at")?;
        out.to_next_ms.push((next - t0) * 1000.0);
        out.to_response_ms.push((fin - t0) * 1000.0);
        out.handler_ms.push((fin - next) * 1000.0);
        out.aws_calls.push(calls);
        // The same kind of event again in the now warm process: what the handler
        // costs without the cold start (for a drain: mostly moto's latency).
        let (request_id, expected) = queue_one(b, kind, next_empty)?;
        let done = finished(b, &request_id, expected).await?;
        out.warm_handler_ms
            .push((f64_of(&done, "finished_at")? - f64_of(&done, "started_at")?) * 1000.0);
        out.hwm_kb.push(vm_kb(function.pid(), "VmHWM")?);
        drop(function);
    }
    s.delete("/_standin/lambda/invocations")?;
    Ok(out)
}
