//! The probe against a loopback TLS endpoint, and the binary on its own (no Docker):
//! flags, a clean SIGTERM, and going offline while Docker cannot be reached.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed set-up is a failed test

mod support;

use std::time::{Duration, Instant};

use anywhere_sentry::probe::{Endpoint, ProbeError, Prober, tls_config};
use support::{Link, Outcome, SentryFiles, TestCa, eventually};

fn prober(ca: &TestCa, endpoint: &str, trust_ca: bool, timeout: Duration) -> Prober {
    let ca_file = trust_ca.then_some(ca.ca_pem.as_path());
    let (config, _) = tls_config(ca_file).unwrap();
    Prober::new(endpoint.parse().unwrap(), config, timeout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_probe_completes_a_verified_handshake_and_closes_the_connection() {
    let ca = TestCa::new(&["127.0.0.1"]);
    let link = Link::start(&ca).await;
    let p = prober(&ca, &link.endpoint(), true, Duration::from_secs(2));
    for n in 1..=3 {
        let ok = p.probe().await.unwrap();
        assert_eq!(ok.addr, link.addr);
        assert!(ok.protocol.starts_with("TLSv1_"), "{ok:?}");
        // The server sees the client close each connection: no socket is left open.
        eventually(
            "the client to close the connection",
            Duration::from_secs(2),
            || async {
                match link.closed_by_client() {
                    c if c == n => Ok(()),
                    c => Err(format!("{c} of {n} closed")),
                }
            },
        )
        .await;
    }
    assert_eq!((link.accepted(), link.handshakes()), (3, 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_endpoint_is_refused() {
    let ca = TestCa::new(&["127.0.0.1"]);
    let mut link = Link::start(&ca).await;
    let p = prober(&ca, &link.endpoint(), true, Duration::from_secs(2));
    link.stop().await;
    let e = p.probe().await.unwrap_err();
    assert!(matches!(e, ProbeError::Refused { .. }), "{e}");
    assert_eq!(e.cause(), "refused");
    link.resume().await;
    p.probe().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_server_is_a_handshake_timeout() {
    let ca = TestCa::new(&["127.0.0.1"]);
    let link = Link::start(&ca).await;
    link.set_default(Outcome::Silent);
    let p = prober(&ca, &link.endpoint(), true, Duration::from_millis(500));
    let started = Instant::now();
    let e = p.probe().await.unwrap_err();
    let took = started.elapsed();
    assert!(matches!(e, ProbeError::TlsTimeout { .. }), "{e}");
    assert_eq!(e.cause(), "timeout");
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(2),
        "{took:?}"
    );
}

/// A listen queue of one, already full: the kernel drops further SYNs, as a black-holed
/// route does, and the connect must give up after the timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_syns_are_a_connect_timeout() {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let _filler = std::net::TcpStream::connect(addr).unwrap();
    let ca = TestCa::new(&["127.0.0.1"]);
    let p = prober(&ca, &addr.to_string(), true, Duration::from_millis(500));
    let started = Instant::now();
    let e = p.probe().await.unwrap_err();
    assert!(matches!(e, ProbeError::ConnectTimeout { .. }), "{e}");
    assert_eq!(e.cause(), "timeout");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_failures_name_their_cause() {
    // A certificate from an unknown CA.
    let ca = TestCa::new(&["127.0.0.1"]);
    let link = Link::start(&ca).await;
    let e = prober(&ca, &link.endpoint(), false, Duration::from_secs(2))
        .probe()
        .await
        .unwrap_err();
    assert_eq!(e.cause(), "tls");
    assert!(e.to_string().contains("UnknownIssuer"), "{e}");

    // A trusted certificate for another name.
    let other = TestCa::new(&["ecs.example.invalid"]);
    let link = Link::start(&other).await;
    let e = prober(&other, &link.endpoint(), true, Duration::from_secs(2))
        .probe()
        .await
        .unwrap_err();
    assert_eq!(e.cause(), "tls");
    assert!(e.to_string().contains("not valid for name"), "{e}");

    // The server hangs up in the middle of the handshake.
    link.set_default(Outcome::Drop);
    let e = prober(&other, &link.endpoint(), true, Duration::from_secs(2))
        .probe()
        .await
        .unwrap_err();
    assert_eq!(e.cause(), "tls", "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_name_is_resolved_and_verified() {
    // `localhost` comes from /etc/hosts (no DNS traffic); it may give ::1 first, where
    // nothing listens: the probe goes on to 127.0.0.1.
    let ca = TestCa::new(&["localhost"]);
    let link = Link::start(&ca).await;
    let endpoint = format!("localhost:{}", link.addr.port());
    let ok = prober(&ca, &endpoint, true, Duration::from_secs(2))
        .probe()
        .await
        .unwrap();
    assert_eq!(ok.addr, link.addr);
    assert_eq!(
        endpoint.parse::<Endpoint>().unwrap().host,
        "localhost".to_owned()
    );
}

// ---------------------------------------------------------------- the binary, no Docker

fn bin() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_anywhere-sentry"))
}

#[test]
fn help_explains_every_flag() {
    let out = bin().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--region",
        "--interval",
        "--retries",
        "--logfile",
        "--loglevel",
        "--endpoint",
        "--docker-host",
        "--offline-after",
        "--online-after",
        "--state-file",
        "--ca-file",
        "--probe-timeout",
        "[default: 20]",
        "[default: /tmp/ecs-external-instance-network-sentry.log]",
        "[default: INFO]",
        "[default: 3]",
        "[default: 2]",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
    }
}

#[test]
fn bad_flags_stop_it_with_a_message() {
    let out = bin().output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--region"));
    let out = bin()
        .args(["--region", "x", "--offline-after", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    // A CA file that is not one: refused at start, with the reason.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("ca.pem");
    std::fs::write(&bad, "nothing").unwrap();
    let out = bin()
        .args(["--region", "x", "--logfile", "-", "--ca-file"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("holds no PEM certificate"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// With no Docker engine at all the sentry still probes, goes offline, says why it
/// cannot protect anything, keeps trying, and stops cleanly on SIGTERM with its state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_docker_it_keeps_going_and_stops_cleanly_on_sigterm() {
    let ca = TestCa::new(&["127.0.0.1"]);
    let mut link = Link::start(&ca).await;
    let files = SentryFiles::new();
    let missing = format!("unix://{}/no.sock", files.dir.path().display());
    let mut sentry = files.spawn(&link, &ca, &missing, &[]);
    eventually("three good probes", Duration::from_secs(10), || async {
        match link.handshakes() {
            n if n >= 3 => Ok(()),
            n => Err(format!("{n} handshakes")),
        }
    })
    .await;
    assert_eq!(sentry.state_json()["mode"], "online");
    assert_eq!(
        sentry.count("cannot look at the containers"),
        0,
        "no Docker call while online"
    );

    link.stop().await;
    eventually("going offline", Duration::from_secs(10), || async {
        match sentry.state_json()["mode"].as_str() {
            Some("offline") => Ok(()),
            m => Err(format!("mode {m:?}")),
        }
    })
    .await;
    eventually("Docker errors logged", Duration::from_secs(10), || async {
        match sentry.count("cannot look at the containers") {
            n if n >= 2 => Ok(()),
            n => Err(format!("{n} lines")),
        }
    })
    .await;
    assert!(sentry.running(), "the sentry died:\n{}", sentry.log_text());
    let log = sentry.log_text();
    assert!(log.contains("cause=refused"), "{log}");
    assert!(log.contains("going offline"), "{log}");

    assert_eq!(sentry.terminate().await, Some(0));
    let log = sentry.log_text();
    assert!(log.contains("SIGTERM received"), "{log}");
    assert!(log.contains("stopping; state kept"), "{log}");
    let state = sentry.state_json();
    assert_eq!(state["mode"], "offline");
    assert_eq!(state["protected"], serde_json::json!([]));
}
