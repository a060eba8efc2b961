//! Footprint (issue 10, item 4): cold start and peak memory of the three
//! function binaries beside `lambda-echo`, a bare `lambda_runtime` binary built
//! with the same profile. `ecs-lifecycle-bench footprint`; no AWS stand-in.
//!
//! The bench serves the Runtime API itself (a blocking loopback HTTP/1.1
//! server speaking `GET /2018-06-01/runtime/invocation/next` and `POST
//! .../{id}/response` / `error`), so every time is an [`Instant`] of this
//! process, taken when a request has been read, with no Python or polling in
//! between. One invocation is ready before each spawn; t0 is taken just before
//! `spawn()`. A sample: spawn -> first `/next` (init), spawn -> response (init
//! plus the first event), then VmHWM when the process asks for its second
//! `/next` (it is idle then). At the first `/next` the bench reads VmHWM too
//! (init alone) before handing out the event; that hold is subtracted from the
//! response time.
//!
//! The binaries alternate: each round spawns every one once, the order rotated
//! by one each round; one uncounted round first (page cache, first exec).
//! BENCH_FOOTPRINT_REPS (default 15) rounds; BENCH_BIN_DIR the binaries'
//! directory (default: next to this binary).

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use testkit::Result;

use crate::{cores, cpu_model, env_usize, loadavg, max, mb, median, min, vm_kb};

/// A binary measured: its name, environment and the event it gets.
#[derive(Debug)]
struct Subject {
    name: &'static str,
    path: PathBuf,
    env: Vec<(&'static str, String)>,
    /// What the event is, for the report.
    event_name: &'static str,
    event: Value,
    /// Checks the response body.
    check: fn(&Value, &Value) -> bool,
}

#[derive(Debug, Default)]
struct Samples {
    to_next_ms: Vec<f64>,
    to_response_ms: Vec<f64>,
    handler_ms: Vec<f64>,
    hwm_init_kb: Vec<u64>,
    hwm_kb: Vec<u64>,
    rss_kb: Vec<u64>,
}

/// One fresh process's figures.
#[derive(Debug)]
struct Sample {
    to_next_ms: f64,
    to_response_ms: f64,
    handler_ms: f64,
    hwm_init_kb: u64,
    hwm_kb: u64,
    rss_kb: u64,
}

impl Samples {
    fn push(&mut self, s: &Sample) {
        self.to_next_ms.push(s.to_next_ms);
        self.to_response_ms.push(s.to_response_ms);
        self.handler_ms.push(s.handler_ms);
        self.hwm_init_kb.push(s.hwm_init_kb);
        self.hwm_kb.push(s.hwm_kb);
        self.rss_kb.push(s.rss_kb);
    }
}

/// What the Runtime API saw, sent from the connection threads to the measuring loop.
#[derive(Debug)]
enum Seen {
    /// The first `/next` of the process (read at `at`); the thread waits for a go.
    Next { at: Instant },
    /// The event was written to the socket.
    Handed { at: Instant },
    Response {
        at: Instant,
        request_id: String,
        body: Vec<u8>,
    },
    /// A `/next` with nothing to hand out: the process is idle.
    Idle,
    /// `.../error` or `/init/error`.
    Error { path: String, body: Vec<u8> },
}

/// The invocation the next `/next` hands out.
#[derive(Debug)]
struct Pending {
    request_id: String,
    function: &'static str,
    event: Vec<u8>,
    go: Receiver<()>,
}

type Slot = Arc<Mutex<Option<Pending>>>;

/// The bench's Runtime API: a loopback listener, a thread per connection.
#[derive(Debug)]
struct RuntimeApi {
    addr: String,
    slot: Slot,
    seen: Receiver<Seen>,
}

impl RuntimeApi {
    fn start() -> Result<RuntimeApi> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .map_err(|e| format!("binding the Runtime API: {e}"))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("Runtime API address: {e}"))?
            .to_string();
        let slot: Slot = Arc::new(Mutex::new(None));
        let (tx, seen) = channel();
        let accept_slot = Arc::clone(&slot);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (slot, tx) = (Arc::clone(&accept_slot), tx.clone());
                std::thread::spawn(move || {
                    let _ = serve_connection(stream, &slot, &tx);
                });
            }
        });
        Ok(RuntimeApi { addr, slot, seen })
    }

    fn offer(&self, p: Pending) {
        *self.slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(p);
    }

    /// Drops what earlier processes left in the channel.
    fn drain(&self) {
        while self.seen.try_recv().is_ok() {}
    }
}

#[derive(Debug)]
struct Request {
    method: String,
    path: String,
    body: Vec<u8>,
}

/// Reads one HTTP/1.1 request (Content-Length or chunked body); `None` at EOF.
fn read_request(r: &mut impl BufRead) -> std::io::Result<Option<Request>> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut words = line.split_whitespace();
    let method = words.next().unwrap_or_default().to_owned();
    let path = words.next().unwrap_or_default().to_owned();
    let (mut length, mut chunked) = (0usize, false);
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((k, v)) = header.split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            if k == "content-length" {
                length = v.parse().unwrap_or(0);
            } else if k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked") {
                chunked = true;
            }
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            r.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or("0"), 16)
                .unwrap_or(0);
            if size == 0 {
                // Trailers, up to the empty line.
                loop {
                    line.clear();
                    if r.read_line(&mut line)? == 0 || line.trim_end().is_empty() {
                        break;
                    }
                }
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            r.read_exact(&mut body[start..])?;
            line.clear();
            r.read_line(&mut line)?;
        }
    } else {
        body.resize(length, 0);
        r.read_exact(&mut body)?;
    }
    Ok(Some(Request { method, path, body }))
}

fn write_response(
    w: &mut impl Write,
    status: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<()> {
    let mut out = format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\n", body.len());
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    w.write_all(&bytes)?;
    w.flush()
}

fn serve_connection(stream: TcpStream, slot: &Slot, tx: &Sender<Seen>) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut w = stream.try_clone()?;
    let mut r = BufReader::new(stream);
    const PREFIX: &str = "/2018-06-01/runtime/";
    const JSON: (&str, &str) = ("content-type", "application/json");
    while let Some(req) = read_request(&mut r)? {
        let at = Instant::now();
        let rest = req.path.strip_prefix(PREFIX).unwrap_or_default();
        let parts: Vec<&str> = rest.split('/').collect();
        match (req.method.as_str(), parts.as_slice()) {
            ("GET", ["invocation", "next"]) => {
                let pending = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
                let Some(p) = pending else {
                    // Idle: never answered; the connection ends with the process.
                    let _ = tx.send(Seen::Idle);
                    while read_request(&mut r)?.is_some() {}
                    return Ok(());
                };
                let _ = tx.send(Seen::Next { at });
                let _ = p.go.recv_timeout(Duration::from_secs(10));
                let deadline = (testkit::now_ms() + 60_000).to_string();
                let arn = format!(
                    "arn:aws:lambda:us-east-1:123456789012:function:{}",
                    p.function
                );
                write_response(
                    &mut w,
                    "200 OK",
                    &[
                        JSON,
                        ("lambda-runtime-aws-request-id", &p.request_id),
                        ("lambda-runtime-deadline-ms", &deadline),
                        ("lambda-runtime-invoked-function-arn", &arn),
                        (
                            "lambda-runtime-trace-id",
                            "Root=1-00000000-000000000000000000000000;Parent=0000000000000000;Sampled=0",
                        ),
                    ],
                    &p.event,
                )?;
                let _ = tx.send(Seen::Handed { at: Instant::now() });
            }
            ("POST", ["invocation", id, "response"]) => {
                write_response(&mut w, "202 Accepted", &[JSON], br#"{"status":"OK"}"#)?;
                let _ = tx.send(Seen::Response {
                    at,
                    request_id: (*id).to_owned(),
                    body: req.body,
                });
            }
            ("POST", ["invocation", _, "error"] | ["init", "error"]) => {
                write_response(&mut w, "202 Accepted", &[JSON], br#"{"status":"OK"}"#)?;
                let _ = tx.send(Seen::Error {
                    path: req.path,
                    body: req.body,
                });
            }
            _ => write_response(&mut w, "404 Not Found", &[JSON], b"{}")?,
        }
    }
    Ok(())
}

/// Kills the process when dropped.
#[derive(Debug)]
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The SNS event Lambda gets for Auto Scaling's TEST_NOTIFICATION (as the
/// stand-in builds it).
fn test_notification() -> Value {
    let topic = "arn:aws:sns:us-east-1:123456789012:bench-lifecycle";
    let message = json!({
        "AccountId": "123456789012",
        "RequestId": "d7a5b0d4-2f3c-4b8e-9a51-0c6f7e1b2a34",
        "AutoScalingGroupARN": "arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:5b2c1e7a-0d3f-4c6b-8e9a-1f2d3c4b5a69:autoScalingGroupName/bench-asg",
        "AutoScalingGroupName": "bench-asg",
        "Service": "AWS Auto Scaling",
        "Event": "autoscaling:TEST_NOTIFICATION",
        "Time": "2026-11-20T12:00:00.000Z"
    });
    json!({
        "Records": [{
            "EventSource": "aws:sns",
            "EventVersion": "1.0",
            "EventSubscriptionArn": format!("{topic}:2f6a8c1e-3b5d-4e7f-9a0b-1c2d3e4f5a6b"),
            "Sns": {
                "Type": "Notification",
                "MessageId": "9e8d7c6b-5a4f-4e3d-2c1b-0a9f8e7d6c5b",
                "TopicArn": topic,
                "Subject": "Auto Scaling: test notification for group \"bench-asg\"",
                "Message": message.to_string(),
                "Timestamp": "2026-11-20T12:00:00.000Z",
                "SignatureVersion": "1",
                "Signature": "EXAMPLE",
                "SigningCertUrl": "https://example.com/cert.pem",
                "UnsubscribeUrl": "https://example.com/unsub",
                "MessageAttributes": {}
            }
        }]
    })
}

fn hook_ignored(response: &Value, _event: &Value) -> bool {
    response["outcomes"][0]["outcome"] == "ignored"
}

fn rollout_ignored(response: &Value, _event: &Value) -> bool {
    response["outcome"] == "ignored"
}

fn echoed(response: &Value, event: &Value) -> bool {
    response == event
}

fn subjects(dir: &Path) -> Result<Vec<Subject>> {
    let path = |name: &str| -> Result<PathBuf> {
        let p = dir.join(name);
        if p.is_file() {
            Ok(p)
        } else {
            Err(format!(
                "{} is not built: cargo build --release --locked -p {name}",
                p.display()
            ))
        }
    };
    let topic = "arn:aws:sns:us-east-1:123456789012:bench-lifecycle".to_owned();
    let ami_parameter = "/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended";
    Ok(vec![
        Subject {
            name: "terminate-drain",
            path: path("terminate-drain")?,
            env: vec![
                ("CLUSTER_NAME", "bench".into()),
                ("POLL_INTERVAL_SECONDS", "10".into()),
                ("CONTINUATION_TOPIC_ARN", topic.clone()),
                ("STANDALONE_TASKS", "wait".into()),
            ],
            event_name: "SNS `autoscaling:TEST_NOTIFICATION`",
            event: test_notification(),
            check: hook_ignored,
        },
        Subject {
            name: "launch-verify",
            path: path("launch-verify")?,
            env: vec![
                ("CLUSTER_NAME", "bench".into()),
                ("POLL_INTERVAL_SECONDS", "10".into()),
                ("CONTINUATION_TOPIC_ARN", topic),
                ("SSM_DOCUMENT_NAME", "bench-orphan-diagnostic".into()),
            ],
            event_name: "SNS `autoscaling:TEST_NOTIFICATION`",
            event: test_notification(),
            check: hook_ignored,
        },
        Subject {
            name: "ami-rollout",
            path: path("ami-rollout")?,
            env: vec![
                ("AMI_PARAMETER_NAME", ami_parameter.into()),
                ("AUTO_SCALING_GROUP_NAMES", "bench-asg".into()),
                ("CLUSTER_NAME", "bench".into()),
            ],
            event_name: "EventBridge `Parameter Store Change` of another parameter (ignored)",
            event: testkit::parameter_change_event("/bench/another-parameter"),
            check: rollout_ignored,
        },
        Subject {
            name: "lambda-echo",
            path: path("lambda-echo")?,
            env: vec![],
            event_name: "SNS `autoscaling:TEST_NOTIFICATION` (echoed)",
            event: test_notification(),
            check: echoed,
        },
    ])
}

/// Waits for what the Runtime API sees next, failing if the process exits or
/// nothing comes within 10 s.
fn wait_seen(api: &RuntimeApi, child: &mut Process, what: &str, log: &Path) -> Result<Seen> {
    let started = Instant::now();
    loop {
        match api.seen.recv_timeout(Duration::from_millis(100)) {
            Ok(Seen::Error { path, body }) => {
                return Err(format!(
                    "the function posted {path}: {} (log: {})",
                    String::from_utf8_lossy(&body),
                    log.display()
                ));
            }
            Ok(seen) => return Ok(seen),
            Err(RecvTimeoutError::Disconnected) => return Err("Runtime API stopped".into()),
            Err(RecvTimeoutError::Timeout) => {}
        }
        if let Ok(Some(status)) = child.0.try_wait() {
            return Err(format!(
                "the function exited ({status}) waiting for {what} (log: {})",
                log.display()
            ));
        }
        if started.elapsed() > Duration::from_secs(10) {
            return Err(format!("no {what} within 10 s (log: {})", log.display()));
        }
    }
}

fn one_cold_start(api: &RuntimeApi, s: &Subject, n: usize, log: &Path) -> Result<Sample> {
    let request_id = format!("bench-{}-{n}", s.name);
    let event = s.event.to_string().into_bytes();
    let (go, go_rx) = channel();
    api.drain();
    api.offer(Pending {
        request_id: request_id.clone(),
        function: s.name,
        event,
        go: go_rx,
    });
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| format!("{}: {e}", log.display()))?;
    let file2 = file.try_clone().map_err(|e| format!("log file: {e}"))?;
    let mut cmd = Command::new(&s.path);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_LAMBDA_RUNTIME_API", &api.addr)
        .env("AWS_LAMBDA_FUNCTION_NAME", s.name)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env(
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{}", s.name),
        )
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "local")
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        // Nothing listens there: an AWS call none of these events should make fails at once.
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .envs(s.env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::from(file))
        .stderr(Stdio::from(file2));

    let t0 = Instant::now();
    let child = cmd
        .spawn()
        .map_err(|e| format!("starting {}: {e}", s.path.display()))?;
    let mut child = Process(child);
    let pid = child.0.id();
    let Seen::Next { at: next_at } = wait_seen(api, &mut child, "the first /next", log)? else {
        return Err("expected the first /next".into());
    };
    let hwm_init_kb = vm_kb(pid, "VmHWM")?;
    let _ = go.send(());
    let Seen::Handed { at: handed_at } = wait_seen(api, &mut child, "the event handed out", log)?
    else {
        return Err("expected the event to be handed out".into());
    };
    let Seen::Response {
        at: response_at,
        request_id: answered,
        body,
    } = wait_seen(api, &mut child, "the response", log)?
    else {
        return Err("expected the response".into());
    };
    let response: Value = serde_json::from_slice(&body)
        .map_err(|e| format!("{}: response is not JSON ({e})", s.name))?;
    if answered != request_id || !(s.check)(&response, &s.event) {
        return Err(format!(
            "{}: unexpected response to {answered}: {response}",
            s.name
        ));
    }
    let Seen::Idle = wait_seen(api, &mut child, "the second /next", log)? else {
        return Err("expected the second /next".into());
    };
    let hwm_kb = vm_kb(pid, "VmHWM")?;
    let rss_kb = vm_kb(pid, "VmRSS")?;
    drop(child);
    let held = handed_at.saturating_duration_since(next_at);
    Ok(Sample {
        to_next_ms: ms(next_at - t0),
        to_response_ms: ms(response_at - t0) - ms(held),
        handler_ms: ms(response_at.saturating_duration_since(handed_at)),
        hwm_init_kb,
        hwm_kb,
        rss_kb,
    })
}

/// Where the measured binaries are: BENCH_BIN_DIR, or next to this binary.
fn bin_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("BENCH_BIN_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    exe.parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| "no parent directory".into())
}

/// Runs the scenario and prints its Markdown report on stdout.
pub fn run() -> Result<()> {
    let t0 = Instant::now();
    let reps = env_usize("BENCH_FOOTPRINT_REPS", 15).max(1);
    let dir = bin_dir()?;
    let subjects = subjects(&dir)?;
    let api = RuntimeApi::start()?;
    let log = testkit::temp_log("ecs-lifecycle-bench-footprint");
    let load_before = loadavg();
    crate::progress(
        t0,
        &format!(
            "Runtime API on {}; binaries from {}",
            api.addr,
            dir.display()
        ),
    );
    crate::progress(t0, "warm-up round (not counted)");
    let mut warmup = Vec::new();
    for (i, s) in subjects.iter().enumerate() {
        warmup.push(one_cold_start(&api, s, i, &log)?);
    }
    let mut samples: Vec<Samples> = subjects.iter().map(|_| Samples::default()).collect();
    for round in 0..reps {
        crate::progress(t0, &format!("round {}/{reps}", round + 1));
        for k in 0..subjects.len() {
            let i = (k + round) % subjects.len();
            let s = one_cold_start(&api, &subjects[i], 1000 + round, &log)?;
            samples[i].push(&s);
        }
    }
    let load_after = loadavg();
    let _ = std::fs::remove_file(&log);
    crate::progress(t0, "done");
    print!(
        "{}",
        report(
            &subjects,
            &samples,
            &warmup,
            reps,
            &format!("{load_before} before, {load_after} after")
        )
    );
    Ok(())
}

fn kb_mb(v: &[u64]) -> Vec<f64> {
    v.iter().map(|k| mb(*k)).collect()
}

fn report(
    subjects: &[Subject],
    samples: &[Samples],
    warmup: &[Sample],
    reps: usize,
    load: &str,
) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let base = samples.last();
    let ratio = |v: f64, f: fn(&Samples) -> f64| -> String {
        match base.map(f) {
            Some(b) if b > 0.0 => format!("{:.1}x", v / b),
            _ => "-".into(),
        }
    };
    let _ = writeln!(
        o,
        "## Footprint: cold start and peak memory\n\nMachine: {} cores, {}; load average {load}. \
         {reps} fresh processes per binary, alternating (order rotated each round), after one uncounted round. \
         Runtime API served by the bench itself (loopback, one invocation ready before each spawn).\n",
        cores(),
        cpu_model()
    );
    let _ = writeln!(
        o,
        "| binary | size | spawn -> `/next` median / min / max | spawn -> response median / min / max | handler median | VmHWM at `/next` median | VmHWM after the event median / max | ratio to lambda-echo: `/next`, response, VmHWM |\n|---|---|---|---|---|---|---|---|"
    );
    let next_med = |s: &Samples| median(&s.to_next_ms);
    let resp_med = |s: &Samples| median(&s.to_response_ms);
    let hwm_med = |s: &Samples| median(&kb_mb(&s.hwm_kb));
    for (s, c) in subjects.iter().zip(samples) {
        let size = std::fs::metadata(&s.path).map_or(0, |m| m.len());
        let _ = writeln!(
            o,
            "| {} | {:.2} MB | {:.2} / {:.2} / {:.2} ms | {:.2} / {:.2} / {:.2} ms | {:.2} ms | {:.1} MB | {:.1} / {:.1} MB | {}, {}, {} |",
            s.name,
            size as f64 / 1_000_000.0,
            median(&c.to_next_ms),
            min(&c.to_next_ms),
            max(&c.to_next_ms),
            median(&c.to_response_ms),
            min(&c.to_response_ms),
            max(&c.to_response_ms),
            median(&c.handler_ms),
            median(&kb_mb(&c.hwm_init_kb)),
            hwm_med(c),
            max(&kb_mb(&c.hwm_kb)),
            ratio(next_med(c), next_med),
            ratio(resp_med(c), resp_med),
            ratio(hwm_med(c), hwm_med),
        );
    }
    let _ = writeln!(o, "\nEvents:");
    for s in subjects {
        let _ = writeln!(o, "- {}: {}", s.name, s.event_name);
    }
    let _ = writeln!(
        o,
        "\nSamples, spawn -> `/next` / spawn -> response (ms), in run order:"
    );
    for (s, c) in subjects.iter().zip(samples) {
        let pairs: Vec<String> = c
            .to_next_ms
            .iter()
            .zip(&c.to_response_ms)
            .map(|(n, r)| format!("{n:.1}/{r:.1}"))
            .collect();
        let _ = writeln!(
            o,
            "- {}: {}; VmRSS when idle after the event, median {:.1} MB",
            s.name,
            pairs.join(", "),
            median(&kb_mb(&c.rss_kb))
        );
    }
    let w: Vec<String> = subjects
        .iter()
        .zip(warmup)
        .map(|(s, w)| format!("{} {:.1}/{:.1} ms", s.name, w.to_next_ms, w.to_response_ms))
        .collect();
    let _ = writeln!(
        o,
        "\nWarm-up round (not counted), `/next`/response: {}.",
        w.join(", ")
    );
    o
}
