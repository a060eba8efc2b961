//! `orphan`: two instances launch, one never joins ECS; `launch-verify`
//! continues the healthy one, diagnoses the orphan and refuses it.

use std::time::{Duration, Instant};

use testkit::{Fleet, FleetSpec, Standin};

use crate::function::DemoFunction;
use crate::say;

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

pub async fn run() -> testkit::Result<()> {
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

    let mut function = DemoFunction::start(
        &s,
        "launch-verify",
        "ecs-lifecycle-demo-verify",
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
    )?;
    s.subscribe_function(&fleet.topic_arn, 60_000)?;
    say(
        t0,
        &format!(
            "launch-verify ({}) runs as a Lambda function: REGISTRATION_TIMEOUT_SECONDS=30, TERMINATE_ORPHANS=true",
            function.binary.display()
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

    loop {
        function.echo_log(t0);
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
    function.echo_log(t0);

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
    println!("  function log (JSON)   {}", function.log.display());
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
