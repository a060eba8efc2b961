//! The local demo: scripted scenarios against the AWS stand-in, driven through
//! the real Lambda binaries, with readable progress.
//!
//! - `scale-in`: Auto Scaling scales in an instance carrying service, daemon and
//!   standalone tasks; `terminate-drain` drains it across several invocations.
//! - `orphan`: two instances launch, one never joins ECS; `launch-verify`
//!   continues the healthy one, diagnoses the orphan and refuses it.
//! - `rollout`: a new AMI is published; `ami-rollout` replaces every instance
//!   through an instance refresh and watches it to the end; then a broken AMI
//!   whose first instance is refused at launch is rolled back.
//!
//! With no argument all run, one after the other.
//!
//! What is real: the binary, the AWS SDK calls over HTTP, moto's ECS / Auto
//! Scaling / EC2 / SNS / SQS state. What the stand-in plays (and says so): Auto
//! Scaling's lifecycle action (Terminating:Wait, the hook notification,
//! CompleteLifecycleAction), ECS's scheduler moving service tasks off a DRAINING
//! instance, and Lambda (Runtime API, SNS subscription).

use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::time::{Duration, Instant};

use serde_json::Value;
use testkit::{Fleet, FleetSpec, LocalFunction, Standin, parameter_change_event, put_parameter};

/// Each invocation's timeout: short, so the demo shows the hand-off to a new
/// invocation (the template uses 900 s).
const INVOCATION_TIMEOUT_MS: u64 = 16_000;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let scenarios: Vec<&str> = if args.is_empty() {
        vec!["scale-in", "orphan", "rollout"]
    } else {
        args.iter().map(String::as_str).collect()
    };
    for scenario in scenarios {
        println!("==== scenario: {scenario} ====");
        let result = match scenario {
            "scale-in" => scale_in().await,
            "orphan" => orphan().await,
            "rollout" => rollout().await,
            other => Err(format!(
                "unknown scenario {other:?}: use scale-in, orphan or rollout"
            )),
        };
        if let Err(e) = result {
            eprintln!("demo failed: {e}");
            std::process::exit(1);
        }
        println!();
    }
}

fn say(t0: Instant, what: &str) {
    println!("[{:>5.1}s] {what}", t0.elapsed().as_secs_f64());
}

async fn scale_in() -> testkit::Result<()> {
    let t0 = Instant::now();
    say(
        t0,
        "starting the AWS stand-in (moto server + lifecycle/scheduler/Lambda stand-ins) on 127.0.0.1",
    );
    let s = Standin::start()?;
    let sdk = s.sdk_config().await;
    let fleet = Fleet::create(
        &sdk,
        &FleetSpec {
            heartbeat_timeout: 30,
            ..FleetSpec::new("demo", 3)
        },
    )
    .await?;
    fleet.service("web", false, &[3, 2, 2]).await?;
    fleet.service("log-router", true, &[1, 1, 1]).await?;
    fleet.standalone("nightly-report", 0, 1).await?;
    say(
        t0,
        &format!(
            "cluster `{}`: 3 container instances in Auto Scaling group `{}`",
            fleet.cluster, fleet.asg
        ),
    );
    say(
        t0,
        &format!(
            "terminate hook `{}` (heartbeat timeout 30 s) notifies {}",
            fleet.hook, fleet.topic_arn
        ),
    );
    say(
        t0,
        &format!(
            "on {}: 3 web tasks, 1 log-router (daemon) task, 1 standalone nightly-report task",
            fleet.instance_ids[0]
        ),
    );

    let log = std::env::temp_dir().join(format!("ecs-lifecycle-demo-{}.log", std::process::id()));
    let binary = testkit::binary("terminate-drain")?;
    let _function = LocalFunction::start_logging_to(
        &s,
        &binary,
        "terminate-drain",
        &[
            ("CLUSTER_NAME", &fleet.cluster),
            ("POLL_INTERVAL_SECONDS", "2"),
            ("STANDALONE_TASKS", "stop"),
            ("CONTINUATION_TOPIC_ARN", &fleet.topic_arn),
            ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
        ],
        &log,
    )?;
    s.subscribe_function(&fleet.topic_arn, INVOCATION_TIMEOUT_MS)?;
    say(
        t0,
        &format!(
            "terminate-drain ({}) runs as a Lambda function, {} s per invocation",
            binary.display(),
            INVOCATION_TIMEOUT_MS / 1000
        ),
    );
    // ECS's scheduler, played by the stand-in: one step every 1.5 s.
    s.ecs_auto(1500)?;

    say(
        t0,
        &format!(
            "Auto Scaling scales in: {} enters Terminating:Wait",
            fleet.instance_ids[0]
        ),
    );
    s.start_lifecycle_action(
        &fleet.asg,
        &fleet.hook,
        &fleet.instance_ids[0],
        "autoscaling:EC2_INSTANCE_TERMINATING",
    )?;

    let mut log_pos = 0;
    let mut last_progress = String::new();
    let action = loop {
        log_pos = echo_function_log(t0, &log, log_pos);
        let tasks = fleet.tasks_on(0).await?;
        let mut by_status = std::collections::BTreeMap::<String, usize>::new();
        for t in &tasks {
            *by_status.entry(t.last_status.clone()).or_default() += 1;
        }
        let action = s.lifecycle_action(&fleet.instance_ids[0])?;
        let progress = format!(
            "instance {} | tasks {:?} | lifecycle action {} | heartbeats {}",
            fleet.status_of(0).await?,
            by_status,
            action["state"].as_str().unwrap_or("?"),
            action["heartbeats"].as_array().map_or(0, Vec::len)
        );
        if progress != last_progress {
            say(t0, &format!("    {progress}"));
            last_progress = progress;
        }
        if action["state"] != "active" {
            break action;
        }
        if t0.elapsed() > Duration::from_secs(240) {
            return Err("the drain did not finish within 4 minutes".into());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    echo_function_log(t0, &log, log_pos);
    s.ecs_auto(0)?;

    let tasks = fleet.tasks_on(0).await?;
    let last_stop = tasks
        .iter()
        .filter_map(|t| t.stopped_at)
        .fold(0.0_f64, f64::max);
    let completed_at = action["completed_at"].as_f64().unwrap_or(0.0);
    let invocations = s.invocations()?;
    println!();
    println!("Result");
    println!(
        "  lifecycle action      {} with {} ({} CompleteLifecycleAction call)",
        action["state"].as_str().unwrap_or("?"),
        action["result"].as_str().unwrap_or("?"),
        action["complete_calls"]
    );
    println!(
        "  tasks on the instance {} of {} STOPPED",
        tasks.iter().filter(|t| t.last_status == "STOPPED").count(),
        tasks.len()
    );
    println!(
        "  invocations           {} ({} continuation(s) through SNS)",
        invocations.len(),
        invocations.len().saturating_sub(1)
    );
    println!(
        "  heartbeats            {}",
        action["heartbeats"].as_array().map_or(0, Vec::len)
    );
    println!(
        "  last task stopped ->  completed: {:.2} s",
        completed_at - last_stop
    );
    println!("  function log (JSON)   {}", log.display());
    if action["state"] != "completed" || action["complete_calls"] != 1 {
        return Err(format!("unexpected end state: {action}"));
    }
    Ok(())
}

/// What the diagnostic prints on an instance whose agent was OOM-killed (the
/// stand-in reports it as the run's output; the script itself is tested on its
/// own in tests/diagnostic_script.rs).
const OOM_REPORT: &str = concat!(
    r#"{"schema":"ecs-orphan-diagnostic/1","instance_id":"i-0","region":"us-east-1","registered":false,"cluster":"orphans","container_instance_arn":null,"checks":["#,
    r#"{"name":"agent_introspection","status":"fail","detail":"no answer from http://localhost:51678/v1/metadata"},"#,
    r#"{"name":"ecs_service","status":"fail","detail":"ecs.service is activating (auto-restart)"},"#,
    r#"{"name":"agent_container","status":"fail","detail":"ecs-agent exited 137, OOMKilled=true"},"#,
    r#"{"name":"docker_service","status":"pass","detail":"active"},{"name":"ecs_endpoint","status":"pass","detail":"ecs.us-east-1.amazonaws.com:443 TLS ok"}],"#,
    r#""failed":["agent_introspection","ecs_service","agent_container"]}"#,
    "\nECS agent NOT registered: the agent container was OOM-killed.\n"
);

async fn orphan() -> testkit::Result<()> {
    let t0 = Instant::now();
    say(t0, "starting the AWS stand-in on 127.0.0.1");
    let s = Standin::start()?;
    let sdk = s.sdk_config().await;
    let fleet = Fleet::create(
        &sdk,
        &FleetSpec {
            heartbeat_timeout: 60,
            unregistered: 1,
            ..FleetSpec::new("orphans", 2)
        },
    )
    .await?;
    let (healthy, orphan) = (fleet.instance_ids[0].clone(), fleet.instance_ids[1].clone());
    say(
        t0,
        &format!(
            "Auto Scaling group `{}` with launch hook `{}`; cluster `{}`",
            fleet.asg, fleet.launch_hook, fleet.cluster
        ),
    );
    say(
        t0,
        &format!(
            "{healthy}: its ECS agent registers; {orphan}: its agent keeps dying (OOM), it never registers"
        ),
    );
    s.script_ssm_outcome(&orphan, "Failed", 8, &OOM_REPORT.replace("i-0", &orphan), 2)?;

    let log = std::env::temp_dir().join(format!(
        "ecs-lifecycle-demo-verify-{}.log",
        std::process::id()
    ));
    let binary = testkit::binary("launch-verify")?;
    let _function = LocalFunction::start_logging_to(
        &s,
        &binary,
        "launch-verify",
        &[
            ("CLUSTER_NAME", &fleet.cluster),
            ("POLL_INTERVAL_SECONDS", "3"),
            ("REGISTRATION_TIMEOUT_SECONDS", "30"),
            ("SSM_DOCUMENT_NAME", "ecs-lifecycle-OrphanDiagnostic"),
            ("DIAGNOSTICS_LOG_GROUP", "/ecs-lifecycle/diagnostics"),
            ("TERMINATE_ORPHANS", "true"),
            ("CONTINUATION_TOPIC_ARN", &fleet.topic_arn),
            ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
        ],
        &log,
    )?;
    s.subscribe_function(&fleet.topic_arn, 60_000)?;
    say(
        t0,
        &format!(
            "launch-verify ({}) runs as a Lambda function: REGISTRATION_TIMEOUT_SECONDS=30, TERMINATE_ORPHANS=true",
            binary.display()
        ),
    );
    for id in [&healthy, &orphan] {
        say(t0, &format!("Auto Scaling launches {id}: Pending:Wait"));
        s.start_lifecycle_action(
            &fleet.asg,
            &fleet.launch_hook,
            id,
            "autoscaling:EC2_INSTANCE_LAUNCHING",
        )?;
    }

    let mut log_pos = 0;
    loop {
        log_pos = echo_function_log(t0, &log, log_pos);
        let done = [&healthy, &orphan].iter().all(|id| {
            s.lifecycle_action(id)
                .map(|a| a["state"] != "active")
                .unwrap_or(false)
        });
        if done {
            break;
        }
        if t0.elapsed() > Duration::from_secs(180) {
            return Err("the verifications did not finish within 3 minutes".into());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    echo_function_log(t0, &log, log_pos);

    println!();
    println!("Result");
    for (label, id) in [("healthy", &healthy), ("orphan ", &orphan)] {
        let a = s.lifecycle_action(id)?;
        println!(
            "  {label} {id}: lifecycle action {} with {}",
            a["state"].as_str().unwrap_or("?"),
            a["result"].as_str().unwrap_or("?")
        );
    }
    let commands = s.ssm_commands()?;
    for c in &commands {
        println!(
            "  SSM SendCommand {} to {} (output to {})",
            c["document_name"].as_str().unwrap_or(""),
            c["instance_ids"],
            c["cloudwatch_output_config"]["CloudWatchLogGroupName"]
                .as_str()
                .unwrap_or("-")
        );
    }
    println!("  function log (JSON)   {}", log.display());
    let results = (
        s.lifecycle_action(&healthy)?["result"].clone(),
        s.lifecycle_action(&orphan)?["result"].clone(),
    );
    if results != (serde_json::json!("CONTINUE"), serde_json::json!("ABANDON"))
        || commands.len() != 1
    {
        return Err(format!(
            "unexpected end state: {results:?}, {} command(s)",
            commands.len()
        ));
    }
    Ok(())
}

/// Each ami-rollout invocation's timeout in the demo: it watches until 20 s
/// before its deadline, then the (played) schedule starts the next.
const ROLLOUT_TIMEOUT_MS: u64 = 32_000;

async fn rollout() -> testkit::Result<()> {
    const PARAM: &str = "/demo/ecs-optimized-ami";
    let t0 = Instant::now();
    say(
        t0,
        "starting the AWS stand-in on 127.0.0.1 (moto + an instance refresh stand-in)",
    );
    let s = Standin::start()?;
    let sdk = s.sdk_config().await;
    let fleet = Fleet::create(&sdk, &FleetSpec::new("fleet", 3)).await?;
    let (_, old) = fleet.group_template(&sdk).await?;
    let new = fleet.new_ami(&sdk, "al2023-ami-ecs-hvm-2026.11.27").await?;
    say(
        t0,
        &format!(
            "Auto Scaling group `{}`: 3 instances on {old} (launch template `$Latest`), all ACTIVE in cluster `{}`",
            fleet.asg, fleet.cluster
        ),
    );
    let log = std::env::temp_dir().join(format!(
        "ecs-lifecycle-demo-rollout-{}.log",
        std::process::id()
    ));
    let binary = testkit::binary("ami-rollout")?;
    let _function = LocalFunction::start_logging_to(
        &s,
        &binary,
        "ami-rollout",
        &[
            ("AMI_PARAMETER_NAME", PARAM),
            ("AUTO_SCALING_GROUP_NAMES", &fleet.asg),
            ("CLUSTER_NAME", &fleet.cluster),
            ("POLL_INTERVAL_SECONDS", "2"),
            ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
        ],
        &log,
    )?;
    say(
        t0,
        &format!(
            "ami-rollout ({}) runs as a Lambda function, {} s per invocation; the demo plays the EventBridge schedule",
            binary.display(),
            ROLLOUT_TIMEOUT_MS / 1000
        ),
    );

    say(
        t0,
        &format!("AWS publishes a new ECS-optimized AMI: {PARAM} = {new}"),
    );
    put_parameter(
        &sdk,
        PARAM,
        &format!(r#"{{"image_id":"{new}","os":"Amazon Linux 2023"}}"#),
    )
    .await?;
    let mut log_pos = 0;
    let end = watch_rollout(
        t0,
        &s,
        &fleet,
        &log,
        &mut log_pos,
        parameter_change_event(PARAM),
        None,
    )
    .await?;
    let amis = fleet.instance_amis(&sdk).await?;
    let (version, ami) = fleet.group_template(&sdk).await?;
    println!();
    println!("Result (rollout)");
    println!("  outcome               {}", end["groups"][0]["next"]);
    println!("  instance AMIs         {amis:?}");
    println!("  group's template      version {version} ({ami})");
    if !amis.iter().all(|a| *a == new) || ami != new {
        return Err(format!("unexpected end state: {end}"));
    }

    println!();
    let broken = fleet
        .new_ami(&sdk, "al2023-ami-ecs-hvm-2026.12.04-broken")
        .await?;
    say(
        t0,
        &format!(
            "a second AMI, {broken}, is published: its instances never join ECS, launch-verify refuses them"
        ),
    );
    put_parameter(&sdk, PARAM, &broken).await?;
    let end = watch_rollout(
        t0,
        &s,
        &fleet,
        &log,
        &mut log_pos,
        parameter_change_event(PARAM),
        Some(&broken),
    )
    .await?;
    say(
        t0,
        &format!(
            "the start invocation ends with: {}",
            end["groups"][0]["next"]["why"].as_str().unwrap_or("?")
        ),
    );
    let status = s.invoke(&serde_json::json!({"action": "status"}), ROLLOUT_TIMEOUT_MS)?;
    let next = status["response"]["groups"][0]["next"].clone();
    let amis = fleet.instance_amis(&sdk).await?;
    println!();
    println!("Result (rollback)");
    println!("  {{\"action\": \"status\"}}  {next}");
    println!("  instance AMIs         {amis:?}");
    println!("  function log (JSON)   {}", log.display());
    if !amis.iter().all(|a| *a == new) || next["outcome"]["rolled_back"].is_null() {
        return Err(format!("unexpected end state: {status}"));
    }
    Ok(())
}

/// Invokes ami-rollout with `first`, then with `{"action": "watch"}` each time
/// an invocation returns still watching (the schedule), while Auto Scaling's
/// refresh advances one batch every 3 s. With `refuse`, the first instance the
/// refresh launches is refused by the launch hook (ABANDON), as launch-verify
/// does with an orphan. Returns the last invocation's answer.
async fn watch_rollout(
    t0: Instant,
    s: &Standin,
    fleet: &Fleet,
    log: &std::path::Path,
    log_pos: &mut u64,
    first: Value,
    refuse: Option<&str>,
) -> testkit::Result<Value> {
    let mut event = first;
    let mut refused = false;
    loop {
        let request_id = s.post(
            "/_standin/lambda/invoke",
            serde_json::json!({"event": event, "timeout_ms": ROLLOUT_TIMEOUT_MS, "async": true}),
        )?["request_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let mut last_batch = Instant::now();
        let answer = loop {
            let finished = s
                .invocations()?
                .into_iter()
                .find(|i| i["request_id"] == request_id.as_str())
                .filter(|i| i["status"] != "queued" && i["status"] != "running");
            if let Some(done) = finished {
                break done;
            }
            *log_pos = echo_function_log(t0, log, *log_pos);
            if last_batch.elapsed() > Duration::from_secs(3) {
                last_batch = Instant::now();
                let out = match (refuse, refused) {
                    (Some(_), false) => s.refresh_step(&fleet.asg)?,
                    _ => fleet.refresh_batch(s).await?,
                };
                let status = out["status"].as_str().unwrap_or("-").to_owned();
                if out["launched"].as_array().is_some_and(|l| !l.is_empty()) {
                    say(
                        t0,
                        &format!(
                            "    Auto Scaling: refresh {status}, launched {}, terminated {}",
                            out["launched"], out["terminated"]
                        ),
                    );
                }
                if let (Some(_), false, Some(id)) = (refuse, refused, out["launched"][0].as_str()) {
                    refused = true;
                    say(
                        t0,
                        &format!(
                            "    launch hook: {id} never joins ECS; launch-verify ABANDONs it"
                        ),
                    );
                    fleet.refuse_launch(s, id).await?;
                }
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        };
        *log_pos = echo_function_log(t0, log, *log_pos);
        let result = answer["response"].clone();
        match result["outcome"].as_str() {
            Some("watching") => {
                say(
                    t0,
                    "  (invocation returned still watching; the EventBridge schedule starts the next: {\"action\": \"watch\"})",
                );
                event = serde_json::json!({"action": "watch"});
            }
            Some(_) => return Ok(result),
            None => return Err(format!("ami-rollout failed: {answer}")),
        }
        if t0.elapsed() > Duration::from_secs(300) {
            return Err("the rollout did not settle within 5 minutes".into());
        }
    }
}

/// Prints the function's new log lines (JSON, as CloudWatch Logs would get
/// them) in short form; returns the new file offset.
fn echo_function_log(t0: Instant, path: &std::path::Path, from: u64) -> u64 {
    let Ok(mut file) = std::fs::File::open(path) else {
        return from;
    };
    if file.seek(SeekFrom::Start(from)).is_err() {
        return from;
    }
    let mut reader = BufReader::new(file);
    let mut pos = from;
    let mut line = String::new();
    while reader.read_line(&mut line).unwrap_or(0) > 0 {
        if !line.ends_with('\n') {
            break;
        }
        pos += line.len() as u64;
        if let Ok(v) = serde_json::from_str::<Value>(&line) {
            let f = &v["fields"];
            let attempt = v["span"]["attempt"]
                .as_u64()
                .map(|a| format!(" #{a}"))
                .unwrap_or_default();
            let who = format!(
                "{} {}",
                v["span"]["name"].as_str().unwrap_or("fn"),
                v["span"]["instance_id"].as_str().unwrap_or("")
            );
            let mut extra = Vec::new();
            for key in [
                "decision",
                "service",
                "daemon",
                "standalone",
                "why",
                "count",
                "reason",
                "result",
                "next_attempt",
                "error",
                "waiting_for",
                "verdict",
                "diagnosis",
                "problems",
                "command_id",
                "phase",
                "on_target",
                "total",
                "refresh_status",
                "step",
                "outcome",
                "alarm",
                "version",
                "refresh_id",
            ] {
                if !f[key].is_null() {
                    extra.push(format!("{key}={}", f[key].to_string().trim_matches('"')));
                }
            }
            say(
                t0,
                &format!(
                    "  [{}{attempt}] {}: {} {}",
                    who.trim(),
                    v["level"].as_str().unwrap_or(""),
                    f["message"].as_str().unwrap_or(""),
                    extra.join(" ")
                ),
            );
        }
        line.clear();
    }
    pos
}
