//! What the integration tests stand on:
//! - [`TestCa`] + [`Link`]: a loopback TLS endpoint standing in for the ECS endpoint,
//!   with a CA made at test time (rcgen); it can be stopped (connection refused),
//!   started again, or told what to do with each next connection (handshake, drop,
//!   stay silent) so a test decides every probe's outcome.
//! - [`Dockerd`]: a private Docker engine (Debian's docker.io) on its own socket and
//!   directories, `--bridge=none --iptables=false`, with a busybox image imported from
//!   `/bin/busybox` (Debian's busybox-static), torn down at the end.
//! - [`SentryProcess`]: the real `anywhere-sentry` binary, stopped with SIGTERM.
#![allow(dead_code)] // each test binary uses a part
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed set-up is a failed test

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::{ContainerCreateBody, ContainerInspectResponse, HostConfig};
use bollard::query_parameters::{CreateContainerOptions, CreateImageOptions};
use futures_util::StreamExt;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use tempfile::TempDir;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

pub const TASK_ARN_LABEL: &str = "com.amazonaws.ecs.task-arn";

/// Poll `check` until it returns `Ok`, or panic after `timeout` with `what` and the last
/// reason it gave.
pub async fn eventually<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match check().await {
            Ok(()) => return,
            Err(why) if Instant::now() >= deadline => {
                panic!("timed out after {timeout:?} waiting for {what}: {why}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

// ---------------------------------------------------------------- TLS endpoint

/// A CA and a server certificate for `names`, made now.
pub struct TestCa {
    pub dir: TempDir,
    /// The CA certificate, PEM: what `--ca-file` gets.
    pub ca_pem: PathBuf,
    pub server: Arc<ServerConfig>,
}

impl TestCa {
    pub fn new(names: &[&str]) -> TestCa {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "anywhere-sentry test CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();

        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "ecs endpoint stand-in");
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &ca).unwrap();

        let dir = tempfile::Builder::new().prefix("as-ca").tempdir().unwrap();
        let ca_pem = dir.path().join("ca.pem");
        std::fs::write(&ca_pem, ca.pem()).unwrap();

        let chain = vec![cert.der().clone(), ca.der().clone()];
        let key = PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap();
        let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
        let server = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        TestCa {
            dir,
            ca_pem,
            server: Arc::new(server),
        }
    }

    pub fn ca_der(&self) -> CertificateDer<'static> {
        CertificateDer::from_pem_file(&self.ca_pem).unwrap()
    }
}

/// What the endpoint does with one accepted connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Complete the TLS handshake, then wait for the client to close.
    Handshake,
    /// Close the TCP connection at once (the client's handshake fails).
    Drop,
    /// Accept and say nothing for a minute (the client's handshake times out).
    Silent,
}

#[derive(Debug)]
struct Shared {
    script: Mutex<VecDeque<Outcome>>,
    default: Mutex<Outcome>,
    accepted: AtomicUsize,
    handshakes: AtomicUsize,
    /// Connections the client closed (EOF or close_notify) after a handshake.
    closed_by_client: AtomicUsize,
}

/// The loopback TLS endpoint standing in for `ecs.<region>.amazonaws.com:443`.
pub struct Link {
    pub addr: SocketAddr,
    acceptor: TlsAcceptor,
    shared: Arc<Shared>,
    task: Option<JoinHandle<()>>,
}

impl Link {
    /// Listening on 127.0.0.1 (a free port), completing handshakes.
    pub async fn start(ca: &TestCa) -> Link {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut link = Link {
            addr: listener.local_addr().unwrap(),
            acceptor: TlsAcceptor::from(ca.server.clone()),
            shared: Arc::new(Shared {
                script: Mutex::new(VecDeque::new()),
                default: Mutex::new(Outcome::Handshake),
                accepted: AtomicUsize::new(0),
                handshakes: AtomicUsize::new(0),
                closed_by_client: AtomicUsize::new(0),
            }),
            task: None,
        };
        link.serve(listener);
        link
    }

    /// `127.0.0.1:<port>`, for `--endpoint`.
    pub fn endpoint(&self) -> String {
        self.addr.to_string()
    }

    fn serve(&mut self, listener: TcpListener) {
        let shared = self.shared.clone();
        let acceptor = self.acceptor.clone();
        self.task = Some(tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                shared.accepted.fetch_add(1, Ordering::SeqCst);
                let outcome = shared
                    .script
                    .lock()
                    .unwrap()
                    .pop_front()
                    .unwrap_or(*shared.default.lock().unwrap());
                let shared = shared.clone();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    match outcome {
                        Outcome::Drop => drop(tcp),
                        Outcome::Silent => {
                            tokio::time::sleep(Duration::from_secs(60)).await;
                            drop(tcp);
                        }
                        Outcome::Handshake => {
                            let Ok(mut tls) = acceptor.accept(tcp).await else {
                                return;
                            };
                            shared.handshakes.fetch_add(1, Ordering::SeqCst);
                            let mut buf = [0u8; 256];
                            let read =
                                tokio::time::timeout(Duration::from_secs(30), tls.read(&mut buf))
                                    .await;
                            if let Ok(Ok(0)) = read {
                                shared.closed_by_client.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                    }
                });
            }
        }));
    }

    /// Cut the link: nothing listens any more (connection refused).
    pub async fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Restore the link on the same address.
    pub async fn resume(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e) if Instant::now() > deadline => {
                    panic!("cannot listen on {} again: {e}", self.addr)
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        self.serve(listener);
    }

    /// The next connections get these outcomes, in order, then the default.
    pub fn script(&self, outcomes: &[Outcome]) {
        self.shared.script.lock().unwrap().extend(outcomes);
    }

    pub fn set_default(&self, outcome: Outcome) {
        *self.shared.default.lock().unwrap() = outcome;
    }

    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    pub fn handshakes(&self) -> usize {
        self.shared.handshakes.load(Ordering::SeqCst)
    }

    pub fn closed_by_client(&self) -> usize {
        self.shared.closed_by_client.load(Ordering::SeqCst)
    }

    pub fn script_left(&self) -> usize {
        self.shared.script.lock().unwrap().len()
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

// ---------------------------------------------------------------- Docker engine

fn find_dockerd() -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/usr/sbin", "/usr/bin", "/sbin", "/usr/local/bin"])
        .map(|d| Path::new(d).join("dockerd"))
        .find(|p| p.is_file())
}

/// A private Docker engine for one test, its files under a short /tmp directory
/// (unix socket paths are limited to ~108 bytes).
pub struct Dockerd {
    pub dir: TempDir,
    /// `unix:///tmp/as-.../d.sock`, for `--docker-host`.
    pub host: String,
    pub client: Docker,
    child: Option<tokio::process::Child>,
    binary: PathBuf,
    pub image: String,
}

impl Dockerd {
    /// Start dockerd and import the busybox image. Panics with the reason when Docker
    /// cannot be had: these tests never skip silently.
    pub async fn start() -> Dockerd {
        let uid = std::fs::metadata("/proc/self")
            .map(|m| m.uid())
            .unwrap_or(u32::MAX);
        assert_eq!(
            uid, 0,
            "the Docker integration tests start a private dockerd and need root (uid is {uid}); run them as root"
        );
        let binary = find_dockerd().unwrap_or_else(|| {
            panic!("no dockerd binary found: run scripts/setup-docker.sh (installs Debian's docker.io and busybox-static)")
        });
        let dir = tempfile::Builder::new()
            .prefix("as-")
            .tempdir_in("/tmp")
            .unwrap();
        let sock = dir.path().join("d.sock");
        let host = format!("unix://{}", sock.display());
        let mut d = Dockerd {
            client: placeholder_client(),
            dir,
            host,
            child: None,
            binary,
            image: "sentry-busybox:test".to_owned(),
        };
        d.spawn().await;
        d.import_busybox().await;
        d
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("dockerd.log")
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    async fn spawn(&mut self) {
        let dir = self.dir.path();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let child = tokio::process::Command::new(&self.binary)
            .arg("--host")
            .arg(&self.host)
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("x"))
            .arg("--pidfile")
            .arg(dir.join("d.pid"))
            .args(["--bridge=none", "--iptables=false", "--ip6tables=false"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.binary.display()));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "dockerd exited at start ({status}); its log:\n{}",
                    self.log_tail()
                );
            }
            if let Ok(c) = Docker::connect_with_unix(&self.host, 60, bollard::API_DEFAULT_VERSION)
                && let Ok(c) = c.negotiate_version().await
                && c.ping().await.is_ok()
            {
                self.client = c;
                return;
            }
            assert!(
                Instant::now() < deadline,
                "dockerd did not answer on {} within 60 s; its log:\n{}",
                self.host,
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stop dockerd as systemd would (SIGTERM, then wait: it stops the containers).
    pub async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Some(pid) = child.id() {
            signal(pid, "TERM");
        }
        match tokio::time::timeout(Duration::from_secs(60), child.wait()).await {
            Ok(_) => {}
            Err(_) => {
                let _ = child.kill().await;
                panic!(
                    "dockerd did not stop within 60 s; its log:\n{}",
                    self.log_tail()
                );
            }
        }
    }

    pub async fn restart(&mut self) {
        self.stop().await;
        self.spawn().await;
    }

    /// `docker import` of a root file system holding /bin/busybox and its applets.
    async fn import_busybox(&self) {
        let busybox = std::fs::read("/bin/busybox").unwrap_or_else(|e| {
            panic!("cannot read /bin/busybox ({e}): run scripts/setup-docker.sh (busybox-static)")
        });
        let mut tar = tar::Builder::new(Vec::new());
        for d in ["bin", "tmp", "proc", "sys", "dev", "etc"] {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
            h.set_size(0);
            tar.append_data(&mut h, d, std::io::empty()).unwrap();
        }
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o755);
        h.set_size(busybox.len() as u64);
        tar.append_data(&mut h, "bin/busybox", busybox.as_slice())
            .unwrap();
        for applet in ["sh", "sleep", "true", "false", "cat", "touch", "ls", "ps"] {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_mode(0o777);
            h.set_size(0);
            tar.append_link(&mut h, format!("bin/{applet}"), "busybox")
                .unwrap();
        }
        let bytes = tar.into_inner().unwrap();
        let (repo, tag) = self.image.split_once(':').unwrap();
        let mut stream = self.client.create_image(
            Some(CreateImageOptions {
                from_src: Some("-".to_owned()),
                repo: Some(repo.to_owned()),
                tag: Some(tag.to_owned()),
                ..Default::default()
            }),
            Some(bollard::body_full(bytes.into())),
            None,
        );
        while let Some(item) = stream.next().await {
            item.unwrap_or_else(|e| panic!("docker import failed: {e}"));
        }
    }

    /// Create and start a container from the busybox image with no network and a 1 s
    /// stop timeout.
    pub async fn run(&self, name: &str, labels: &[(&str, &str)], cmd: &[&str]) -> String {
        let labels: HashMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let created = self
            .client
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(name.to_owned()),
                    ..Default::default()
                }),
                ContainerCreateBody {
                    image: Some(self.image.clone()),
                    cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
                    labels: Some(labels),
                    stop_timeout: Some(1),
                    host_config: Some(HostConfig {
                        network_mode: Some("none".to_owned()),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            )
            .await
            .unwrap_or_else(|e| panic!("create {name}: {e}"));
        self.client
            .start_container(&created.id, None)
            .await
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        created.id
    }

    /// A container labelled like an ECS task, running until it gets SIGUSR1 (then it
    /// "crashes" with exit code 3).
    pub async fn task(&self, name: &str) -> String {
        let arn = format!("arn:aws:ecs:eu-west-1:123456789012:task/test/{name}");
        self.run(
            name,
            &[
                (TASK_ARN_LABEL, arn.as_str()),
                ("com.amazonaws.ecs.cluster", "test"),
                ("com.amazonaws.ecs.container-name", "app"),
            ],
            &["sh", "-c", "trap 'exit 3' USR1; sleep 1000000 & wait"],
        )
        .await
    }

    /// The stand-in for the ECS agent's container.
    pub async fn agent(&self) -> String {
        self.run("ecs-agent", &[], &["sleep", "1000000"]).await
    }

    /// Make a task container exit with code 3.
    pub async fn crash(&self, id: &str) {
        let exec = self
            .client
            .create_exec(
                id,
                bollard::exec::CreateExecOptions {
                    cmd: Some(vec!["sh", "-c", "kill -USR1 1"]),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        self.client
            .start_exec(
                &exec.id,
                Some(bollard::exec::StartExecOptions {
                    detach: true,
                    ..Default::default()
                }),
            )
            .await
            .unwrap();
    }

    pub async fn inspect(&self, id: &str) -> Option<ContainerInspectResponse> {
        match self.client.inspect_container(id, None).await {
            Ok(c) => Some(c),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => None,
            Err(e) => panic!("inspect {id}: {e}"),
        }
    }

    /// What the tests look at: status, restart policy (`no`, `on-failure:5`), restart
    /// count and start time; `None` once the container is gone.
    pub async fn look(&self, id: &str) -> Option<Look> {
        let c = self.inspect(id).await?;
        let state = c.state.unwrap_or_default();
        let policy = c
            .host_config
            .and_then(|h| h.restart_policy)
            .unwrap_or_default();
        let name = policy.name.map(|n| n.to_string()).unwrap_or_default();
        let policy = match name.as_str() {
            "" | "no" => "no".to_owned(),
            "on-failure" => format!("on-failure:{}", policy.maximum_retry_count.unwrap_or(0)),
            other => other.to_owned(),
        };
        Some(Look {
            status: state.status.map(|s| s.to_string()).unwrap_or_default(),
            policy,
            restart_count: c.restart_count.unwrap_or(0),
            started_at: state.started_at.unwrap_or_default(),
        })
    }

    pub async fn must_look(&self, id: &str) -> Look {
        self.look(id)
            .await
            .unwrap_or_else(|| panic!("container {id} is gone"))
    }
}

fn placeholder_client() -> Docker {
    // Replaced as soon as the engine answers; only there so that `Dockerd` has a value.
    Docker::connect_with_http("http://127.0.0.1:9", 1, bollard::API_DEFAULT_VERSION).unwrap()
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Some(pid) = child.id() {
            signal(pid, "TERM");
            // Give it time to stop its containers, so nothing outlives the test.
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.start_kill();
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Look {
    pub status: String,
    pub policy: String,
    pub restart_count: i64,
    pub started_at: String,
}

pub fn signal(pid: u32, sig: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{sig} {pid} failed");
}

// ---------------------------------------------------------------- the sentry

/// The `anywhere-sentry` binary running with test settings: 0.2 s interval, 1 s probe
/// timeout, offline after 3 failures, online after 2 successes, DEBUG logs.
pub struct SentryProcess {
    child: tokio::process::Child,
    pub log: PathBuf,
    pub state: PathBuf,
    /// Where this process's lines start in the (shared, appended) log file.
    log_from: usize,
}

pub struct SentryFiles {
    pub dir: TempDir,
}

impl SentryFiles {
    pub fn new() -> SentryFiles {
        SentryFiles {
            dir: tempfile::Builder::new().prefix("as-s").tempdir().unwrap(),
        }
    }

    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state/state.json")
    }

    pub fn log(&self) -> PathBuf {
        self.dir.path().join("log/sentry.log")
    }

    /// Start the sentry; `extra` flags come last and override the test defaults.
    pub fn spawn(
        &self,
        link: &Link,
        ca: &TestCa,
        docker_host: &str,
        extra: &[&str],
    ) -> SentryProcess {
        let mut args: Vec<String> = [
            "--region",
            "eu-west-1",
            "--interval",
            "0.2",
            "--probe-timeout",
            "1",
            "--offline-after",
            "3",
            "--online-after",
            "2",
            "--retries",
            "5",
            "--loglevel",
            "DEBUG",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend([
            "--endpoint".into(),
            link.endpoint(),
            "--ca-file".into(),
            ca.ca_pem.display().to_string(),
            "--docker-host".into(),
            docker_host.to_owned(),
            "--state-file".into(),
            self.state().display().to_string(),
            "--logfile".into(),
            self.log().display().to_string(),
        ]);
        args.extend(extra.iter().map(|s| s.to_string()));
        let log_from = std::fs::metadata(self.log())
            .map(|m| m.len() as usize)
            .unwrap_or(0);
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_anywhere-sentry"))
            .args(&args)
            .env_remove("DOCKER_HOST")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        SentryProcess {
            child,
            log: self.log(),
            state: self.state(),
            log_from,
        }
    }
}

impl Default for SentryFiles {
    fn default() -> Self {
        SentryFiles::new()
    }
}

impl SentryProcess {
    /// The whole lines this process logged (a line being written is left out).
    pub fn log_text(&self) -> String {
        let text = std::fs::read(&self.log).unwrap_or_default();
        let mine = text.get(self.log_from..).unwrap_or_default();
        let whole = mine
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(&mine[..0], |end| &mine[..=end]);
        String::from_utf8_lossy(whole).into_owned()
    }

    /// Wait until `needle` has been logged `n` more times than now.
    pub async fn until_logged(&self, needle: &str, n: usize) {
        let target = self.count(needle) + n;
        eventually(
            &format!("{n} more log lines with {needle:?}"),
            Duration::from_secs(20),
            || async {
                match self.count(needle) {
                    c if c >= target => Ok(()),
                    c => Err(format!("{c} of {target}; log:\n{}", self.log_text())),
                }
            },
        )
        .await;
    }

    /// Log lines containing `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.log_text()
            .lines()
            .filter(|l| l.contains(needle))
            .count()
    }

    pub fn state_json(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(&self.state)
            .unwrap_or_else(|e| panic!("no state file {}: {e}", self.state.display()));
        serde_json::from_str(&text).unwrap()
    }

    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM, then the exit code (panics if it does not stop within 10 s).
    pub async fn terminate(&mut self) -> Option<i32> {
        if let Some(pid) = self.child.id() {
            signal(pid, "TERM");
        }
        match tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await {
            Ok(status) => status.unwrap().code(),
            Err(_) => panic!("the sentry did not stop within 10 s of SIGTERM"),
        }
    }
}
