//! The on-instance diagnostic (crates/launch-verify/diagnostic/ecs-orphan-diagnostic.sh)
//! run under the real bash and coreutils, against a fake host built per test:
//! - stub `systemctl`, `docker` and `nvidia-smi` first on PATH, answering from
//!   files in the test's directory and logging every call;
//! - a fake agent introspection endpoint (a tiny HTTP server on 127.0.0.1) read
//!   with the real curl;
//! - a fake ECS API endpoint: a listening socket on 127.0.0.1 ("reachable") or a
//!   closed port ("unreachable");
//! - a fake ecs.config, agent log, PCI device tree and NVIDIA proc directory.
//!
//! Nothing here depends on the test machine's systemd, docker or GPUs, and
//! nothing needs root.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed set-up is a failed test

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use std::{fs, thread};

use serde_json::Value;

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/crates/launch-verify/diagnostic/ecs-orphan-diagnostic.sh"
);
const INSTANCE: &str = "i-0123456789abcdef0";
const REGION: &str = "us-east-1";
const ARN: &str =
    "arn:aws:ecs:us-east-1:123456789012:container-instance/prod/0123456789abcdef0123456789abcdef";
const CHECKS: [&str; 9] = [
    "agent_introspection",
    "ecs_service",
    "docker_service",
    "containerd_service",
    "container_run",
    "agent_container",
    "ecs_endpoint",
    "ecs_config",
    "nvidia_driver",
];

const HEALTHY_CONFIG: &str =
    "# written by user data\nECS_CLUSTER=prod\n\nECS_ENABLE_TASK_IAM_ROLE=true\n";
const DOCKER_DOWN: &str = "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?";

/// Every stub logs its argv to `calls.log` and answers from files under
/// `$STUB_STATE`.
const SYSTEMCTL_STUB: &str = r#"#!/usr/bin/env bash
printf 'systemctl %s\n' "$*" >>"$STUB_STATE/calls.log"
case $1 in
    is-active)
        unit=${2%.service}
        state=inactive
        [ -f "$STUB_STATE/units/$unit" ] && state=$(<"$STUB_STATE/units/$unit")
        echo "$state"
        [ "$state" = active ] && exit 0
        exit 3
        ;;
    show)
        printf 'Result=exit-code\nExecMainStatus=1\nSubState=failed\n'
        ;;
esac
"#;

const DOCKER_STUB: &str = r#"#!/usr/bin/env bash
printf 'docker %s\n' "$*" >>"$STUB_STATE/calls.log"
if [ -f "$STUB_STATE/docker/down" ]; then
    cat "$STUB_STATE/docker/down" >&2
    exit 1
fi
case $1 in
    image)
        [ -f "$STUB_STATE/docker/images" ] && cat "$STUB_STATE/docker/images"
        exit 0
        ;;
    run)
        if [ -f "$STUB_STATE/docker/run-error" ]; then
            cat "$STUB_STATE/docker/run-error" >&2
            exit 125
        fi
        echo 4f1c0ffee4f1c0ffee4f1c0ffee4f1c0ffee4f1c0ffee4f1c0ffee4f1c0ffee0
        ;;
    rm)
        exit 0
        ;;
    inspect)
        if [ -f "$STUB_STATE/docker/agent" ]; then
            cat "$STUB_STATE/docker/agent"
            exit 0
        fi
        echo "Error: No such container: ecs-agent" >&2
        exit 1
        ;;
esac
"#;

const NVIDIA_SMI_STUB: &str = r#"#!/usr/bin/env bash
printf 'nvidia-smi %s\n' "$*" >>"$STUB_STATE/calls.log"
if [ -f "$STUB_STATE/nvidia-smi.out" ]; then
    cat "$STUB_STATE/nvidia-smi.out"
    exit 0
fi
echo "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver." >&2
exit 9
"#;

/// The agent's `/v1/metadata` document.
fn metadata(cluster: &str, arn: Option<&str>) -> String {
    let arn = arn.map_or_else(|| "null".to_owned(), |a| format!("\"{a}\""));
    format!(
        "{{\"Cluster\":\"{cluster}\",\"ContainerInstanceArn\":{arn},\"Version\":\"Amazon ECS Agent - v1.89.2 (1b2c3d4e)\"}}"
    )
}

/// What the fake introspection endpoint does.
enum Agent {
    /// Nothing listens on the port.
    Closed,
    /// Answers every request with this status and body.
    Answers(u16, String),
    /// Accepts the connection and never answers.
    Hangs,
}

/// A fake host in its own directory; removed on drop.
struct Host {
    dir: PathBuf,
    agent: Agent,
    endpoint_reachable: bool,
    env: Vec<(String, String)>,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

impl Host {
    /// A healthy, registered instance of cluster `prod`: every service active,
    /// the pause image present, the agent container running, the endpoint
    /// reachable, a valid ecs.config, no GPU.
    fn healthy() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "ecs-diagnostic-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        for sub in ["bin", "units", "docker", "pci", "tmp"] {
            fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let host = Host {
            dir,
            agent: Agent::Answers(200, metadata("prod", Some(ARN))),
            endpoint_reachable: true,
            env: Vec::new(),
        };
        host.stub("systemctl", SYSTEMCTL_STUB);
        host.stub("docker", DOCKER_STUB);
        host.stub("nvidia-smi", NVIDIA_SMI_STUB);
        for unit in ["ecs", "docker", "containerd"] {
            host.unit(unit, "active");
        }
        host.write(
            "docker/images",
            "amazon/amazon-ecs-agent:latest\n<none>:<none>\namazon/amazon-ecs-pause:0.1.0\n",
        );
        host.agent_container("running|true|0|false|0|");
        host.write("ecs.config", HEALTHY_CONFIG);
        host
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    fn write(&self, rel: &str, content: &str) {
        fs::write(self.path(rel), content).unwrap();
    }

    fn stub(&self, name: &str, body: &str) {
        let path = self.path(&format!("bin/{name}"));
        fs::write(&path, body).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn unit(&self, unit: &str, state: &str) {
        self.write(&format!("units/{unit}"), state);
    }

    /// `docker inspect` output for the agent container:
    /// `Status|Running|ExitCode|OOMKilled|RestartCount|Error`.
    fn agent_container(&self, inspect: &str) {
        self.write("docker/agent", inspect);
    }

    fn docker_down(&self) {
        self.write("docker/down", DOCKER_DOWN);
    }

    fn set_env(&mut self, key: &str, value: &str) {
        self.env.push((key.to_owned(), value.to_owned()));
    }

    /// Runs the script with the usual parameters.
    fn diagnose(&self) -> Outcome {
        self.run(&["--region", REGION, "--instance-id", INSTANCE], &[])
    }

    /// Runs the script with these arguments and extra environment.
    fn run(&self, args: &[&str], extra_env: &[(&str, &str)]) -> Outcome {
        let agent_port = match &self.agent {
            Agent::Closed => closed_port(),
            Agent::Answers(status, body) => serve_http(Some(http_response(*status, body))),
            Agent::Hangs => serve_http(None),
        };
        // Reachable: a listening socket (the kernel completes the handshake
        // without an accept). Unreachable: a port nobody listens on.
        let endpoint = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint_port = endpoint.local_addr().unwrap().port();
        let endpoint_port = if self.endpoint_reachable {
            endpoint_port
        } else {
            drop(endpoint);
            closed_port()
        };

        let path = format!(
            "{}:{}",
            self.path("bin").display(),
            std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".to_owned())
        );
        let mut cmd = Command::new("bash");
        cmd.arg(SCRIPT)
            .args(args)
            .env_clear()
            .env("PATH", path)
            .env("TMPDIR", self.path("tmp"))
            .env("STUB_STATE", &self.dir)
            .env(
                "ECS_INTROSPECTION_URL",
                format!("http://127.0.0.1:{agent_port}"),
            )
            .env("ECS_CONFIG_FILE", self.path("ecs.config"))
            .env("ECS_AGENT_LOG_FILE", self.path("ecs-agent.log"))
            .env("ECS_ENDPOINT_HOST", "127.0.0.1")
            .env("ECS_ENDPOINT_PORT", endpoint_port.to_string())
            .env("ECS_DIAG_PCI_DIR", self.path("pci"))
            .env("ECS_DIAG_NVIDIA_PROC_DIR", self.path("proc-driver-nvidia"))
            .env("ECS_DIAG_HTTP_TIMEOUT", "3")
            .env("ECS_DIAG_CONNECT_TIMEOUT", "3");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let started = Instant::now();
        let out = cmd.output().expect("bash runs");
        let elapsed = started.elapsed();
        let stdout = String::from_utf8(out.stdout).expect("stdout is UTF-8");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let code = out.status.code().expect("exited, not killed");
        let json = stdout
            .lines()
            .next()
            .and_then(|l| serde_json::from_str(l).ok());
        Outcome {
            code,
            stdout,
            stderr,
            json,
            elapsed,
        }
    }

    /// The stubs' call log ("" when nothing was called).
    fn calls(&self) -> String {
        fs::read_to_string(self.path("calls.log")).unwrap_or_default()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn http_response(status: u16, body: &str) -> String {
    format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// A one-shot-per-connection HTTP server on 127.0.0.1 answering `response` to
/// every request (or never answering, for `None`). Lives until the test
/// process exits.
fn serve_http(response: Option<String>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let response = response.clone();
            thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut request = Vec::new();
                let mut chunk = [0_u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&chunk[..n]),
                    }
                }
                match response {
                    Some(r) => {
                        let _ = stream.write_all(r.as_bytes());
                    }
                    None => thread::sleep(Duration::from_secs(10)),
                }
            });
        }
    });
    port
}

#[derive(Debug)]
struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
    json: Option<Value>,
    elapsed: Duration,
}

impl Outcome {
    fn json(&self) -> &Value {
        self.json.as_ref().unwrap_or_else(|| {
            panic!(
                "first stdout line is not JSON\nstdout:\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    fn check(&self, name: &str) -> &Value {
        self.json()["checks"]
            .as_array()
            .expect("checks is an array")
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no check {name} in {}", self.json()))
    }

    fn status(&self, name: &str) -> &str {
        self.check(name)["status"]
            .as_str()
            .expect("status is a string")
    }

    fn detail(&self, name: &str) -> &str {
        self.check(name)["detail"]
            .as_str()
            .expect("detail is a string")
    }

    fn failed(&self) -> Vec<&str> {
        self.json()["failed"]
            .as_array()
            .expect("failed is an array")
            .iter()
            .map(|v| v.as_str().expect("failed holds names"))
            .collect()
    }

    /// The shape every run must have, whatever the scenario.
    fn assert_well_formed(&self) {
        let j = self.json();
        assert_eq!(j["schema"], "ecs-orphan-diagnostic/1", "{j}");
        assert_eq!(j["instance_id"], INSTANCE, "{j}");
        assert_eq!(j["region"], REGION, "{j}");
        let keys: Vec<&str> = j
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .collect();
        let mut expected = vec![
            "schema",
            "instance_id",
            "region",
            "registered",
            "cluster",
            "container_instance_arn",
            "checks",
            "failed",
        ];
        expected.sort_unstable();
        let mut keys_sorted = keys.clone();
        keys_sorted.sort_unstable();
        assert_eq!(keys_sorted, expected, "{j}");
        let names: Vec<&str> = j["checks"]
            .as_array()
            .expect("checks")
            .iter()
            .map(|c| c["name"].as_str().expect("name"))
            .collect();
        assert_eq!(names, CHECKS, "{j}");
        let mut failing = Vec::new();
        for c in j["checks"].as_array().expect("checks") {
            let status = c["status"].as_str().expect("status");
            assert!(["pass", "fail", "warn", "skipped"].contains(&status), "{c}");
            assert!(c["detail"].as_str().is_some_and(|d| !d.is_empty()), "{c}");
            if status == "fail" {
                failing.push(c["name"].as_str().expect("name"));
            }
        }
        assert_eq!(self.failed(), failing, "{j}");
        let registered = j["registered"].as_bool().expect("registered is a bool");
        assert_eq!(self.code, if registered { 0 } else { 8 }, "{self:?}");
        assert_eq!(j["container_instance_arn"].is_string(), registered, "{j}");
        // The human summary follows the JSON line; SSM keeps 24000 characters.
        let first = self.stdout.lines().next().unwrap_or_default();
        assert!(first.len() < 24_000, "JSON line is {} bytes", first.len());
        assert!(
            self.stdout
                .contains("ECS orphan diagnostic for i-0123456789abcdef0"),
            "{}",
            self.stdout
        );
    }
}

#[test]
fn healthy_instance_is_registered_with_every_check_passing() {
    let host = Host::healthy();
    let out = host.diagnose();
    out.assert_well_formed();
    let j = out.json();
    assert_eq!(out.code, 0);
    assert_eq!(j["registered"], true);
    assert_eq!(j["cluster"], "prod");
    assert_eq!(j["container_instance_arn"], ARN);
    assert!(out.failed().is_empty(), "{j}");
    for name in &CHECKS[..8] {
        assert_eq!(out.status(name), "pass", "{name}: {j}");
    }
    assert_eq!(out.status("nvidia_driver"), "skipped", "{j}");
    assert!(out.detail("agent_introspection").contains(ARN), "{j}");
    assert!(out.stdout.contains("REGISTERED to cluster prod"));

    // The run test used the local pause image, never pulled, without network,
    // and removed its container.
    let calls = host.calls();
    let run = calls
        .lines()
        .find(|l| l.starts_with("docker run "))
        .expect("a docker run");
    for flag in ["--rm", "--pull never", "--network none"] {
        assert!(run.contains(flag), "{run}");
    }
    assert!(run.ends_with("amazon/amazon-ecs-pause:0.1.0"), "{run}");
    assert!(
        calls.contains("docker rm -f -- ecs-orphan-diagnostic-"),
        "{calls}"
    );
    assert!(!calls.contains("nvidia-smi"), "{calls}");
}

#[test]
fn parameters_can_come_from_the_environment() {
    let host = Host::healthy();
    let out = host.run(&[], &[("REGION", REGION), ("INSTANCE_ID", INSTANCE)]);
    out.assert_well_formed();
    assert_eq!(out.code, 0);
    // The short (8 hex digit) instance id form and --key=value are accepted too.
    let out = host.run(&["--region=eu-west-3", "--instance-id=i-0123abcd"], &[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.json()["instance_id"], "i-0123abcd");
    assert_eq!(out.json()["region"], "eu-west-3");
}

#[test]
fn agent_oom_killed_is_not_registered_and_says_why() {
    let mut host = Host::healthy();
    host.agent = Agent::Closed;
    host.agent_container("exited|false|137|true|3|");
    host.write(
        "ecs-agent.log",
        "level=info time=2024-05-01T10:00:00Z msg=\"Loading configuration\"\n\
         level=error time=2024-05-01T10:00:05Z msg=\"Unable to register as a container instance with ECS\" error=\"AccessDeniedException\"\n",
    );
    let out = host.diagnose();
    out.assert_well_formed();
    let j = out.json();
    assert_eq!(out.code, 8);
    assert_eq!(j["registered"], false);
    assert_eq!(j["container_instance_arn"], Value::Null);
    // The agent did not answer: the cluster is the configured one.
    assert_eq!(j["cluster"], "prod");
    assert_eq!(
        out.failed(),
        ["agent_introspection", "agent_container"],
        "{j}"
    );
    let agent = out.detail("agent_container");
    assert!(agent.contains("OOM"), "{agent}");
    assert!(agent.contains("137"), "{agent}");
    let intro = out.detail("agent_introspection");
    assert!(intro.contains("connection refused"), "{intro}");
    assert!(intro.contains("AccessDeniedException"), "{intro}");
}

#[test]
fn agent_answering_without_a_container_instance_arn_is_not_registered() {
    let mut host = Host::healthy();
    host.agent = Agent::Answers(200, metadata("prod", None));
    let out = host.diagnose();
    out.assert_well_formed();
    assert_eq!(out.code, 8);
    assert_eq!(out.json()["registered"], false);
    assert_eq!(out.failed(), ["agent_introspection"]);
    assert!(
        out.detail("agent_introspection")
            .contains("no ContainerInstanceArn"),
        "{}",
        out.json()
    );

    // Nor is an error page.
    host.agent = Agent::Answers(500, "{\"error\":\"boom\"}".to_owned());
    let out = host.diagnose();
    assert_eq!(out.code, 8);
    assert!(out.detail("agent_introspection").contains("HTTP 500"));
}

#[test]
fn hung_introspection_endpoint_times_out() {
    let mut host = Host::healthy();
    host.agent = Agent::Hangs;
    host.set_env("ECS_DIAG_HTTP_TIMEOUT", "1");
    let out = host.diagnose();
    out.assert_well_formed();
    assert_eq!(out.code, 8);
    assert_eq!(out.status("agent_introspection"), "fail");
    assert!(
        out.detail("agent_introspection")
            .contains("no answer within 1s"),
        "{}",
        out.json()
    );
    assert!(out.elapsed < Duration::from_secs(8), "{:?}", out.elapsed);
}

#[test]
fn bad_ecs_config_reports_line_numbers_and_the_missing_cluster_without_secrets() {
    let host = Host::healthy();
    host.write(
        "ecs.config",
        "# comment\n\
         \n\
         ECS_ENABLE_TASK_IAM_ROLE=true\n\
         this line is broken\n\
         export ECS_LOGLEVEL=debug\n\
         ECS_ENGINE_AUTH_DATA = {\"password\":\"hunter2\"}\n\
         9LIVES=x\n\
         \x20  ECS_LOGLEVEL=info   \r\n",
    );
    let out = host.diagnose();
    out.assert_well_formed();
    assert_eq!(out.status("ecs_config"), "fail");
    assert!(out.failed().contains(&"ecs_config"));
    let d = out.detail("ecs_config");
    assert!(d.contains("ECS_CLUSTER is not set"), "{d}");
    for line in ["line 4:", "line 5:", "line 6:", "line 7:"] {
        assert!(d.contains(line), "{line} in {d}");
    }
    // Comments, blank lines, and surrounding whitespace (trimmed by ecs-init)
    // are fine.
    for line in ["line 1:", "line 2:", "line 3:", "line 8:"] {
        assert!(!d.contains(line), "{line} in {d}");
    }
    assert!(!out.stdout.contains("hunter2"), "{}", out.stdout);
    // Registered anyway (to some cluster): the verdict is the agent's.
    assert_eq!(out.code, 0);
}

#[test]
fn ecs_config_warnings_and_invalid_cluster_values() {
    let host = Host::healthy();
    host.write(
        "ecs.config",
        "ECS_CLUSTER=prod\nECS_INSTANCE_ATTRIBUTES='{\"a\":\"b\"}'\nECS_CLUSTER=prod\n",
    );
    let out = host.diagnose();
    assert_eq!(out.status("ecs_config"), "warn", "{}", out.json());
    let d = out.detail("ecs_config");
    assert!(d.contains("ECS_CLUSTER set 2 times (lines 1 3"), "{d}");
    assert!(
        d.contains("line 2: value of ECS_INSTANCE_ATTRIBUTES is in quotes"),
        "{d}"
    );

    host.write("ecs.config", "ECS_CLUSTER=\"prod\"\n");
    let out = host.diagnose();
    assert_eq!(out.status("ecs_config"), "fail");
    assert!(
        out.detail("ecs_config")
            .contains("not a valid cluster name")
    );

    host.write("ecs.config", "ECS_CLUSTER=\n");
    let out = host.diagnose();
    assert!(
        out.detail("ecs_config")
            .contains("ECS_CLUSTER is empty (line 1)")
    );

    fs::remove_file(host.path("ecs.config")).unwrap();
    let out = host.diagnose();
    out.assert_well_formed();
    assert_eq!(out.status("ecs_config"), "fail");
    assert!(out.detail("ecs_config").contains("does not exist"));
}

#[test]
fn registered_to_another_cluster_than_configured_is_a_warning() {
    let mut host = Host::healthy();
    host.agent = Agent::Answers(
        200,
        metadata(
            "default",
            Some("arn:aws:ecs:us-east-1:123456789012:container-instance/default/abc"),
        ),
    );
    let out = host.diagnose();
    out.assert_well_formed();
    assert_eq!(out.code, 0);
    assert_eq!(out.json()["cluster"], "default");
    assert_eq!(out.status("agent_introspection"), "warn");
    assert!(
        out.detail("agent_introspection")
            .contains("ECS_CLUSTER=prod")
    );
}

#[test]
fn unreachable_endpoint_fails_only_that_check() {
    let mut host = Host::healthy();
    host.endpoint_reachable = false;
    let out = host.diagnose();
    out.assert_well_formed();
    assert_eq!(out.failed(), ["ecs_endpoint"]);
    let d = out.detail("ecs_endpoint");
    assert!(d.contains("cannot connect to 127.0.0.1:"), "{d}");
    assert!(d.contains("Connection refused"), "{d}");
    // A TCP probe, not ICMP: nothing called ping.
    assert!(!host.calls().contains("ping"));
}

#[test]
fn unreachable_endpoint_behind_a_proxy_is_a_warning_with_credentials_masked() {
    let mut host = Host::healthy();
    host.endpoint_reachable = false;
    host.write(
        "ecs.config",
        "ECS_CLUSTER=prod\nHTTPS_PROXY=http://agent:s3cr3t@proxy.internal:3128\n",
    );
    let out = host.diagnose();
    out.assert_well_formed();
    assert_eq!(out.status("ecs_endpoint"), "warn", "{}", out.json());
    let d = out.detail("ecs_endpoint");
    assert!(d.contains("http://****@proxy.internal:3128"), "{d}");
    assert!(!out.stdout.contains("s3cr3t"));
}

#[test]
fn docker_down_fails_the_docker_checks() {
    let mut host = Host::healthy();
    host.agent = Agent::Closed;
    host.unit("docker", "failed");
    host.docker_down();
    let out = host.diagnose();
    out.assert_well_formed();
    assert_eq!(out.code, 8);
    assert_eq!(
        out.failed(),
        [
            "agent_introspection",
            "docker_service",
            "container_run",
            "agent_container"
        ],
        "{}",
        out.json()
    );
    let d = out.detail("docker_service");
    assert!(d.contains("docker.service is failed"), "{d}");
    assert!(d.contains("Result=exit-code"), "{d}");
    assert!(
        out.detail("container_run")
            .contains("Cannot connect to the Docker daemon")
    );
    assert_eq!(out.status("containerd_service"), "pass");
    assert!(!host.calls().contains("docker run"));
}

#[test]
fn container_run_is_skipped_without_a_local_image_and_fails_when_docker_cannot_start_one() {
    let host = Host::healthy();
    host.write("docker/images", "busybox:latest\n<none>:<none>\n");
    let out = host.diagnose();
    out.assert_well_formed();
    assert_eq!(out.status("container_run"), "skipped");
    assert!(
        !host.calls().contains("docker run"),
        "nothing pulled or run"
    );

    // Only the agent image: it is used.
    host.write("docker/images", "amazon/amazon-ecs-agent:latest\n");
    host.write(
        "docker/run-error",
        "docker: Error response from daemon: failed to create shim task: OCI runtime create failed.\n",
    );
    let out = host.diagnose();
    assert_eq!(out.status("container_run"), "fail");
    let d = out.detail("container_run");
    assert!(d.contains("amazon/amazon-ecs-agent:latest"), "{d}");
    assert!(d.contains("OCI runtime create failed"), "{d}");
}

#[test]
fn gpu_instance_checks_the_nvidia_driver() {
    let host = Host::healthy();
    let dev = host.path("pci/0000:00:1e.0");
    fs::create_dir_all(&dev).unwrap();
    fs::write(dev.join("vendor"), "0x10de\n").unwrap();
    fs::write(dev.join("class"), "0x030200\n").unwrap();

    // GPU present, driver broken.
    let out = host.diagnose();
    out.assert_well_formed();
    assert_eq!(out.failed(), ["nvidia_driver"]);
    assert!(out.detail("nvidia_driver").contains("couldn't communicate"));

    // Driver working, GPU support enabled in the agent.
    host.write(
        "nvidia-smi.out",
        "GPU 0: Tesla T4 (UUID: GPU-0b1c2d3e-0000-1111-2222-333344445555)\n",
    );
    host.write(
        "ecs.config",
        "ECS_CLUSTER=prod\nECS_ENABLE_GPU_SUPPORT=true\n",
    );
    let out = host.diagnose();
    assert_eq!(out.status("nvidia_driver"), "pass", "{}", out.json());
    assert!(out.detail("nvidia_driver").contains("Tesla T4"));

    // Working driver but the agent is not told to use it.
    host.write("ecs.config", HEALTHY_CONFIG);
    let out = host.diagnose();
    assert_eq!(out.status("nvidia_driver"), "warn");
}

#[test]
fn details_with_quotes_backslashes_newlines_and_binary_stay_valid_json() {
    let mut host = Host::healthy();
    host.agent = Agent::Closed;
    let nasty =
        "exec \"/agent\": bad \\path\\ {\"json\":true}\nsecond\tline\r\n\x01\x1b[31mred\u{e9}";
    host.agent_container(&format!("exited|false|1|false|0|{nasty}"));
    let out = host.diagnose();
    out.assert_well_formed();
    let d = out.detail("agent_container");
    assert!(
        d.contains(
            "exec \"/agent\": bad \\path\\ {\"json\":true}\nsecond\tline\r\n\u{1}\u{1b}[31mred??"
        ),
        "{d:?}"
    );
    // The JSON line is one line: every control character was escaped.
    let first = out.stdout.lines().next().unwrap_or_default();
    assert!(!first.contains('\t') && !first.contains('\r'));
    // So is each summary line.
    assert!(
        out.stdout.contains("second line ??[31mred??"),
        "{}",
        out.stdout
    );
}

#[test]
fn long_details_are_cut_short() {
    let mut host = Host::healthy();
    host.agent = Agent::Closed;
    host.agent_container(&format!("exited|false|1|false|0|{}", "\"x\\".repeat(5000)));
    let out = host.diagnose();
    out.assert_well_formed();
    let d = out.detail("agent_container");
    assert!(d.len() <= 300 && d.ends_with("..."), "{}", d.len());
}

/// Command-line arguments and extra environment of one run.
type Case = (Vec<String>, Vec<(String, String)>);

/// Every way of passing a bad or hostile parameter: exit 2, a message on
/// stderr, nothing on stdout, no command run, no injected command executed.
#[test]
fn bad_parameters_exit_2_before_anything_runs() {
    let host = Host::healthy();
    let pwned = host.path("pwned");
    let p = pwned.display().to_string();
    let inject = [
        format!("us-east-1; touch {p}"),
        format!("us-east-1$(touch {p})"),
        format!("us-east-1`touch {p}`"),
        format!("us-east-1\ntouch {p}"),
        format!("us-east-1' && touch '{p}"),
    ];
    let mut cases: Vec<Case> = Vec::new();
    let args = |r: &str, i: &str| {
        vec![
            "--region".to_owned(),
            r.to_owned(),
            "--instance-id".to_owned(),
            i.to_owned(),
        ]
    };
    for region in &inject {
        cases.push((args(region, INSTANCE), vec![]));
        cases.push((
            vec![],
            vec![
                ("REGION".into(), region.clone()),
                ("INSTANCE_ID".into(), INSTANCE.into()),
            ],
        ));
        cases.push((args(REGION, &format!("{INSTANCE}; touch {p}")), vec![]));
    }
    for region in [
        "",
        "US-EAST-1",
        "us-east",
        "useast-1",
        "us-east-1 ",
        "us_east_1",
        "u-east-1",
    ] {
        cases.push((args(region, INSTANCE), vec![]));
    }
    for id in [
        "",
        "i-0123456789ABCDEF0",
        "i-0123456",
        "i-0123456789abcdef",
        "i-0123456789abcdef01",
        "0123456789abcdef0",
        "i-0123456789abcdefg",
    ] {
        cases.push((args(REGION, id), vec![]));
    }
    cases.push((vec![], vec![]));
    cases.push((vec!["--region".into()], vec![]));
    cases.push((vec!["--region".into(), REGION.into()], vec![]));
    cases.push((vec!["--instance-id".into(), INSTANCE.into()], vec![]));
    let mut unknown = args(REGION, INSTANCE);
    unknown.push("--cluster".into());
    cases.push((unknown, vec![]));
    cases.push((
        args(REGION, INSTANCE),
        vec![("ECS_INTROSPECTION_URL".into(), "file:///etc/shadow".into())],
    ));
    cases.push((
        args(REGION, INSTANCE),
        vec![("ECS_ENDPOINT_HOST".into(), "x;touch /tmp/y".into())],
    ));
    cases.push((
        args(REGION, INSTANCE),
        vec![("ECS_DIAG_CMD_TIMEOUT".into(), "0".into())],
    ));

    for (argv, env) in &cases {
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let out = host.run(&argv, &env);
        assert_eq!(out.code, 2, "{argv:?} {env:?}: {out:?}");
        assert!(out.stdout.is_empty(), "{argv:?}: {}", out.stdout);
        assert!(
            out.stderr.contains("ecs-orphan-diagnostic: "),
            "{argv:?}: {}",
            out.stderr
        );
        assert!(
            !Path::new(&pwned).exists(),
            "{argv:?} executed an injected command"
        );
        assert_eq!(host.calls(), "", "{argv:?} ran a command");
    }
}
