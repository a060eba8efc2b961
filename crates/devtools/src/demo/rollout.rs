//! `rollout`: a new AMI is published; `ami-rollout` replaces every instance
//! through an instance refresh and watches it to the end; then a broken AMI
//! whose first instance is refused at launch is rolled back.

use std::time::{Duration, Instant};

use devtools::Invocations;
use serde_json::Value;
use testkit::{Fleet, FleetSpec, Standin, parameter_change_event, put_parameter};

use crate::function::DemoFunction;
use crate::say;

/// Each ami-rollout invocation's timeout in the demo: it watches until 20 s
/// before its deadline, then the (played) schedule starts the next.
const ROLLOUT_TIMEOUT_MS: u64 = 32_000;

pub async fn run() -> testkit::Result<()> {
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
    let mut function = DemoFunction::start(
        &s,
        "ami-rollout",
        "ecs-lifecycle-demo-rollout",
        &[
            ("AMI_PARAMETER_NAME", PARAM),
            ("AUTO_SCALING_GROUP_NAMES", &fleet.asg),
            ("CLUSTER_NAME", &fleet.cluster),
            ("POLL_INTERVAL_SECONDS", "2"),
            ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
        ],
    )?;
    say(
        t0,
        &format!(
            "ami-rollout ({}) runs as a Lambda function, {} s per invocation; the demo plays the EventBridge schedule",
            function.binary.display(),
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
    let end = watch_rollout(
        t0,
        &s,
        &fleet,
        &mut function,
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
        &mut function,
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
    println!("  function log (JSON)   {}", function.log.display());
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
    function: &mut DemoFunction,
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
            if let Some(done) = s.ended_invocation(&request_id)? {
                break done;
            }
            function.echo_log(t0);
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
        function.echo_log(t0);
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
