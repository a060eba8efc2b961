//! The sentry against a real Docker engine (a private dockerd per test, started by the
//! test), with containers labelled like ECS tasks, a stand-in `ecs-agent` container and
//! a loopback TLS endpoint the test cuts and restores.
//!
//! Needs root and Debian's docker.io + busybox-static (`scripts/setup-docker.sh`).
//! Without them these tests fail with the reason; they never skip. They run one at a
//! time (each starts its own dockerd; two cores are not enough for several at once).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed set-up is a failed test

mod support;

use std::time::Duration;

use support::{Dockerd, Link, Outcome, SentryFiles, SentryProcess, TestCa, eventually};
use tokio::sync::Mutex;

static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

const WAIT: Duration = Duration::from_secs(20);

struct World {
    ca: TestCa,
    link: Link,
    docker: Dockerd,
    files: SentryFiles,
}

impl World {
    async fn new() -> World {
        let ca = TestCa::new(&["127.0.0.1"]);
        let link = Link::start(&ca).await;
        let docker = Dockerd::start().await;
        World {
            ca,
            link,
            docker,
            files: SentryFiles::new(),
        }
    }

    fn sentry(&self) -> SentryProcess {
        self.files
            .spawn(&self.link, &self.ca, &self.docker.host, &[])
    }

    async fn policy(&self, id: &str) -> Result<String, String> {
        self.docker
            .look(id)
            .await
            .map(|l| l.policy)
            .ok_or_else(|| format!("{id} is gone"))
    }

    async fn status(&self, id: &str) -> Result<String, String> {
        self.docker
            .look(id)
            .await
            .map(|l| l.status)
            .ok_or_else(|| format!("{id} is gone"))
    }

    async fn until_policies(&self, ids: &[&str], want: &str) {
        eventually(&format!("restart policy {want}"), WAIT, || async {
            for id in ids {
                let p = self.policy(id).await?;
                if p != want {
                    return Err(format!("{id}: {p}"));
                }
            }
            Ok(())
        })
        .await;
    }

    async fn until_status(&self, id: &str, want: &str) {
        eventually(&format!("{id} {want}"), WAIT, || async {
            match self.status(id).await? {
                s if s == want => Ok(()),
                s => Err(s),
            }
        })
        .await;
    }

    async fn until_gone(&self, id: &str) {
        eventually(&format!("{id} removed"), WAIT, || async {
            match self.docker.look(id).await {
                None => Ok(()),
                Some(l) => Err(format!("still {l:?}")),
            }
        })
        .await;
    }

    async fn until_probes(&self, n: usize) {
        let target = self.link.accepted() + n;
        eventually(&format!("{n} more probes"), WAIT, || async {
            match self.link.accepted() {
                a if a >= target => Ok(()),
                a => Err(format!("{a} of {target} connections")),
            }
        })
        .await;
    }
}

async fn until_mode(sentry: &SentryProcess, mode: &str) {
    eventually(&format!("state file mode {mode}"), WAIT, || async {
        match sentry.state_json()["mode"].as_str() {
            Some(m) if m == mode => Ok(()),
            m => Err(format!("mode {m:?}")),
        }
    })
    .await;
}

/// Outage -> policies set and agent paused; a crash during the outage is restarted by
/// Docker; reconnect -> that container removed, the rest reset, agent unpaused, nothing
/// else touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_protects_the_tasks_and_reconnect_hands_them_back() {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut w = World::new().await;
    let d = &w.docker;
    let crashy = d.task("ecs-web-1").await;
    let steady = d.task("ecs-web-2").await;
    let finished = d
        .run(
            "ecs-job-1",
            &[(
                support::TASK_ARN_LABEL,
                "arn:aws:ecs:eu-west-1:1:task/test/job",
            )],
            &["true"],
        )
        .await;
    let plain = d.run("not-ecs", &[], &["sleep", "1000000"]).await;
    let agent = d.agent().await;
    w.until_status(&finished, "exited").await;
    let before_plain = d.must_look(&plain).await;
    let before_steady = d.must_look(&steady).await;
    let before_finished = d.must_look(&finished).await;

    let mut sentry = w.sentry();
    w.until_probes(5).await;
    // Online: nothing touched.
    for id in [&crashy, &steady, &plain] {
        assert_eq!(w.policy(id).await.unwrap(), "no");
    }
    assert_eq!(w.status(&agent).await.unwrap(), "running");
    assert_eq!(sentry.state_json()["mode"], "online");

    // Cut the link.
    w.link.stop().await;
    w.until_policies(&[&crashy, &steady], "on-failure:5").await;
    w.until_status(&agent, "paused").await;
    until_mode(&sentry, "offline").await;
    let state = sentry.state_json();
    assert_eq!(state["agent_paused"], true);
    let protected: Vec<&str> = state["protected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(protected.len(), 2, "{state}");
    assert!(protected.contains(&crashy.as_str()) && protected.contains(&steady.as_str()));
    assert_eq!(
        d.must_look(&plain).await,
        before_plain,
        "a non-ECS container was touched"
    );
    assert_eq!(
        d.must_look(&finished).await,
        before_finished,
        "an exited task was touched"
    );
    let log = sentry.log_text();
    assert!(log.contains("cause=refused"), "{log}");
    assert_eq!(
        sentry.count("ECS endpoint unreachable"),
        sentry.count("cause=")
    );

    // A task crashes during the outage: Docker restarts it.
    let d = &w.docker;
    d.crash(&crashy).await;
    eventually("Docker to restart the crashed task", WAIT, || async {
        let l = d.look(&crashy).await.ok_or("gone")?;
        if l.restart_count >= 1 && l.status == "running" {
            Ok(())
        } else {
            Err(format!("{l:?}"))
        }
    })
    .await;
    assert_eq!(d.must_look(&steady).await.restart_count, 0);
    sentry.until_logged("ECS endpoint unreachable", 3).await;
    assert_eq!(w.status(&agent).await.unwrap(), "paused");

    // Restore the link.
    w.link.resume().await;
    w.until_gone(&crashy).await;
    w.until_policies(&[&steady], "no").await;
    w.until_status(&agent, "running").await;
    until_mode(&sentry, "online").await;
    eventually("an empty ledger", WAIT, || async {
        let s = sentry.state_json();
        if s["protected"] == serde_json::json!([]) && s["agent_paused"] == false {
            Ok(())
        } else {
            Err(s.to_string())
        }
    })
    .await;
    let d = &w.docker;
    let after_steady = d.must_look(&steady).await;
    assert_eq!(
        after_steady.started_at, before_steady.started_at,
        "steady was restarted"
    );
    assert_eq!(after_steady.status, "running");
    assert_eq!(d.must_look(&plain).await, before_plain);
    assert_eq!(d.must_look(&finished).await, before_finished);
    let log = sentry.log_text();
    assert_eq!(sentry.count("stopped and removed"), 1, "{log}");
    assert!(log.contains("all containers handed back to ECS"), "{log}");

    // Online again: nothing more happens.
    w.until_probes(5).await;
    assert_eq!(d.must_look(&steady).await, after_steady);
    assert_eq!(sentry.terminate().await, Some(0));
}

/// The sentry stopped during an outage and started again (still cut off, then with the
/// link back): it resumes from its state file with the original baselines, so the task
/// Docker restarted while no sentry ran is still recognised and removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentry_restarted_mid_outage_resumes_from_its_state_file() {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut w = World::new().await;
    let crashy = w.docker.task("ecs-web-1").await;
    let steady = w.docker.task("ecs-web-2").await;
    let agent = w.docker.agent().await;

    let mut first = w.sentry();
    w.until_probes(3).await;
    w.link.stop().await;
    w.until_policies(&[&crashy, &steady], "on-failure:5").await;
    w.until_status(&agent, "paused").await;
    until_mode(&first, "offline").await;
    assert_eq!(first.terminate().await, Some(0), "SIGTERM is a clean exit");
    assert!(first.log_text().contains("stopping; state kept"));
    let saved = first.state_json();

    // No sentry: the crash is handled by Docker alone.
    w.docker.crash(&crashy).await;
    eventually("Docker to restart the crashed task", WAIT, || async {
        let l = w.docker.look(&crashy).await.ok_or("gone")?;
        if l.restart_count >= 1 && l.status == "running" {
            Ok(())
        } else {
            Err(format!("{l:?}"))
        }
    })
    .await;

    // Started again, still cut off: it stays offline and changes nothing.
    let mut second = w.sentry();
    second.until_logged("ECS endpoint unreachable", 10).await;
    assert!(second.log_text().contains("resuming from the state file"));
    assert_eq!(
        second.state_json(),
        saved,
        "the state was rewritten, not resumed"
    );
    assert_eq!(w.status(&agent).await.unwrap(), "paused");
    assert_eq!(w.policy(&crashy).await.unwrap(), "on-failure:5");
    assert_eq!(second.count("restart policy set"), 0);
    assert_eq!(second.terminate().await, Some(0));

    // The link returns while no sentry runs; the third one starts offline and hands back.
    w.link.resume().await;
    let third = w.sentry();
    w.until_gone(&crashy).await;
    w.until_policies(&[&steady], "no").await;
    w.until_status(&agent, "running").await;
    until_mode(&third, "online").await;
    assert_eq!(w.status(&steady).await.unwrap(), "running");
}

/// dockerd restarted during an outage (as `systemctl restart docker` or a reboot would):
/// the protected tasks come back by their restart policy, the sentry rides out the
/// engine's absence, pauses the agent again when it is started again, and on reconnect
/// removes the tasks that were restarted (all of them here) and unpauses the agent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dockerd_restarted_mid_outage() {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut w = World::new().await;
    let a = w.docker.task("ecs-web-1").await;
    let b = w.docker.task("ecs-web-2").await;
    let plain = w.docker.run("not-ecs", &[], &["sleep", "1000000"]).await;
    let agent = w.docker.agent().await;

    let mut sentry = w.sentry();
    w.until_probes(3).await;
    w.link.stop().await;
    w.until_policies(&[&a, &b], "on-failure:5").await;
    w.until_status(&agent, "paused").await;
    let before = w.docker.must_look(&a).await;

    w.docker.stop().await;
    sentry
        .until_logged("cannot look at the containers", 3)
        .await;
    assert!(
        sentry.running(),
        "the sentry died without Docker:\n{}",
        sentry.log_text()
    );

    w.docker.restart().await;
    w.until_status(&a, "running").await;
    w.until_status(&b, "running").await;
    let after = w.docker.must_look(&a).await;
    assert_ne!(
        after.started_at, before.started_at,
        "a was not restarted by the daemon"
    );
    assert_eq!(
        w.status(&plain).await.unwrap(),
        "exited",
        "restart policy no: stays down"
    );
    assert_eq!(w.status(&agent).await.unwrap(), "exited");

    // ecs-init starts the agent again: the sentry pauses it again.
    w.docker.client.start_container(&agent, None).await.unwrap();
    w.until_status(&agent, "paused").await;
    assert_eq!(sentry.state_json()["mode"], "offline");

    w.link.resume().await;
    w.until_gone(&a).await;
    w.until_gone(&b).await;
    w.until_status(&agent, "running").await;
    until_mode(&sentry, "online").await;
    let plain_now = w.docker.must_look(&plain).await;
    assert_eq!(
        (plain_now.status.as_str(), plain_now.policy.as_str()),
        ("exited", "no")
    );
    assert_eq!(sentry.terminate().await, Some(0));
}

/// Single failed probes (and pairs) never take the sentry offline, single good probes
/// never bring it back; only `--offline-after` / `--online-after` in a row do. Every
/// probe's outcome is decided by the endpoint, connection by connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flapping_link_does_not_flip_the_state() {
    use Outcome::{Drop as D, Handshake as H};
    let _one = ONE_AT_A_TIME.lock().await;
    let w = World::new().await;
    let task = w.docker.task("ecs-web-1").await;
    let agent = w.docker.agent().await;
    let sentry = w.sentry();
    w.until_probes(2).await;

    // Online, flapping: never three failures in a row.
    let flaps = [D, H, D, D, H, D, H, D, D, H, D, H, H, D, D, H];
    w.link.script(&flaps);
    w.until_probes(flaps.len() + 2).await;
    assert_eq!(w.link.script_left(), 0);
    assert_eq!(sentry.count("going offline"), 0, "{}", sentry.log_text());
    assert_eq!(sentry.count("cause=tls"), 9);
    assert_eq!(sentry.state_json()["mode"], "online");
    assert_eq!(w.policy(&task).await.unwrap(), "no");
    assert_eq!(w.status(&agent).await.unwrap(), "running");

    // Three in a row: offline.
    w.link.set_default(D);
    w.until_policies(&[&task], "on-failure:5").await;
    w.until_status(&agent, "paused").await;
    assert_eq!(sentry.count("going offline"), 1);

    // Offline, flapping: never two good probes in a row.
    let flaps = [H, D, H, D, D, H, D, H, D];
    w.link.script(&flaps);
    w.until_probes(flaps.len() + 2).await;
    assert_eq!(w.link.script_left(), 0);
    assert_eq!(sentry.count("back online"), 0, "{}", sentry.log_text());
    assert_eq!(sentry.state_json()["mode"], "offline");
    assert_eq!(w.policy(&task).await.unwrap(), "on-failure:5");
    assert_eq!(w.status(&agent).await.unwrap(), "paused");

    // Two in a row: online.
    w.link.set_default(H);
    w.until_policies(&[&task], "no").await;
    w.until_status(&agent, "running").await;
    assert_eq!(sentry.count("back online"), 1);
    assert_eq!(w.status(&task).await.unwrap(), "running");
}
