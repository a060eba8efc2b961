//! The daemon: one check every interval (probe, smoothing, and when there is something
//! to do, observe Docker, decide, act), until the shutdown signal.

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::MissedTickBehavior;

use crate::decide::{Action, Ledger, Link, Mode, Smoothing, decide, needs_docker};
use crate::docker::DockerEngine;
use crate::probe::Prober;
use crate::state::{SavedState, StateError, StateFile, rfc3339};

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// The sentry with everything it needs.
#[derive(Debug)]
pub struct Sentry {
    prober: Prober,
    docker: DockerEngine,
    state_file: StateFile,
    smoothing: Smoothing,
    retries: u32,
    link: Link,
    ledger: Ledger,
    /// For the log: failed probes in a row, whatever the mode.
    failed_in_a_row: u32,
}

impl Sentry {
    /// Load the state file (a broken one is an error: it may hold the only record of
    /// what to undo) and write it back at once, so an unwritable place fails now rather
    /// than in the middle of an outage.
    pub fn start(
        prober: Prober,
        docker: DockerEngine,
        state_file: StateFile,
        smoothing: Smoothing,
        retries: u32,
    ) -> Result<Sentry, StateError> {
        let now = unix_now();
        let (link, ledger) = match state_file.load()? {
            Some(saved) => {
                tracing::info!(
                    mode = %saved.mode.as_str(),
                    since = %rfc3339(saved.since),
                    protected = saved.ledger.protected.len(),
                    agent_paused = saved.ledger.agent_paused,
                    state_file = %state_file.path().display(),
                    "resuming from the state file"
                );
                (Link::new(saved.mode, saved.since), saved.ledger)
            }
            None => {
                tracing::info!(
                    state_file = %state_file.path().display(),
                    "no state file: starting online"
                );
                (Link::new(Mode::Online, now), Ledger::default())
            }
        };
        let sentry = Sentry {
            prober,
            docker,
            state_file,
            smoothing,
            retries,
            link,
            ledger,
            failed_in_a_row: 0,
        };
        sentry.state_file.save(&sentry.saved())?;
        Ok(sentry)
    }

    pub fn mode(&self) -> Mode {
        self.link.mode
    }

    fn saved(&self) -> SavedState {
        SavedState::new(self.link.mode, self.link.since, self.ledger.clone())
    }

    /// Persist; a failure is logged and the sentry carries on with what it holds in
    /// memory: protecting containers matters more than the record.
    fn save(&self) {
        if let Err(e) = self.state_file.save(&self.saved()) {
            tracing::error!(error = %e, "state not saved; a restart now would lose track of changed containers");
        }
    }

    /// One check. Never fails: problems are logged and the next check tries again.
    pub async fn check(&mut self) {
        let endpoint = self.prober.endpoint().to_string();
        let probe = self.prober.probe().await;
        let (link, flip) = self.link.observe(probe.is_ok(), self.smoothing, unix_now());
        match &probe {
            Ok(ok) => tracing::debug!(
                %endpoint,
                addr = %ok.addr,
                protocol = %ok.protocol,
                elapsed_ms = ok.elapsed.as_millis() as u64,
                mode = %link.mode.as_str(),
                "ECS endpoint reachable"
            ),
            Err(e) => tracing::warn!(
                %endpoint,
                cause = %e.cause(),
                error = %e,
                mode = %link.mode.as_str(),
                failed_in_a_row = self.failed_in_a_row + 1,
                "ECS endpoint unreachable"
            ),
        }
        if flip.is_none() && link.streak > 0 && link.mode == Mode::Offline {
            tracing::info!(
                %endpoint,
                good_in_a_row = link.streak,
                needed = self.smoothing.online_after,
                "ECS endpoint reachable again; staying offline until it stays so"
            );
        }
        self.link = link;
        self.failed_in_a_row = if probe.is_ok() {
            0
        } else {
            self.failed_in_a_row + 1
        };
        match flip {
            Some(Mode::Offline) => tracing::warn!(
                %endpoint,
                failed_in_a_row = self.smoothing.offline_after,
                "going offline: Docker restarts ECS task containers, the ECS agent is paused"
            ),
            Some(Mode::Online) => tracing::info!(
                %endpoint,
                good_in_a_row = self.smoothing.online_after,
                protected = self.ledger.protected.len(),
                "back online: handing the containers back to ECS"
            ),
            None => {}
        }
        if flip.is_some() {
            self.save();
        }
        if needs_docker(self.link.mode, &self.ledger) {
            self.reconcile().await;
        }
    }

    /// Observe Docker, decide, act. Every ledger change is saved: before a change
    /// (write-ahead), after an undo.
    async fn reconcile(&mut self) {
        let containers = match self.docker.observe().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, mode = %self.link.mode.as_str(), "cannot look at the containers; trying again next check");
                return;
            }
        };
        let actions = decide(self.link.mode, &containers, &self.ledger, self.retries);
        let had_work = !self.ledger.is_empty();
        for action in actions {
            if !self.ledger.allows(&action) {
                tracing::warn!(
                    left = self.ledger.protected.len(),
                    "ECS agent stays paused until every changed container is handed back"
                );
                continue;
            }
            if self.ledger.record_before(&action) {
                self.save();
            }
            match self.docker.apply(&action, self.retries).await {
                Ok(()) => {
                    log_done(&action, self.retries);
                    if self.ledger.record_after(&action) {
                        self.save();
                    }
                }
                Err(e) => tracing::error!(error = %e, "action failed; trying again next check"),
            }
        }
        if self.link.mode == Mode::Online && had_work && self.ledger.is_empty() {
            tracing::info!("all containers handed back to ECS");
        }
    }

    /// Check every `interval` until `shutdown` completes. A check in progress is
    /// abandoned at shutdown; the write-ahead state makes that safe.
    pub async fn run(mut self, interval: Duration, shutdown: impl Future<Output = ()>) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        let mut resuming_offline = self.link.mode == Mode::Offline;
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                () = async {
                    // Resuming an outage (after a reboot, say): re-assert at once, before
                    // a probe that may take a while, so an agent that ecs-init just started
                    // is paused without delay.
                    if std::mem::take(&mut resuming_offline) {
                        self.reconcile().await;
                    }
                    ticker.tick().await;
                    self.check().await;
                } => {}
            }
        }
        self.save();
        tracing::info!(
            mode = %self.link.mode.as_str(),
            since = %rfc3339(self.link.since),
            protected = self.ledger.protected.len(),
            agent_paused = self.ledger.agent_paused,
            state_file = %self.state_file.path().display(),
            "stopping; state kept"
        );
    }
}

fn log_done(action: &Action, retries: u32) {
    match action {
        Action::Protect(p) => tracing::info!(
            container = %p.name,
            id = %short(&p.id),
            task_arn = %p.task_arn,
            was = %p.original,
            restart_policy = %format!("on-failure:{retries}"),
            "restart policy set"
        ),
        Action::Reprotect { id, name } => tracing::info!(
            container = %name,
            id = %short(id),
            restart_policy = %format!("on-failure:{retries}"),
            "restart policy set again"
        ),
        Action::PauseAgent { id } => tracing::info!(id = %short(id), "ECS agent paused"),
        Action::Forget { id, name } => tracing::info!(
            container = %name,
            id = %short(id),
            "container gone or already handed back; forgotten"
        ),
        Action::Release { id, name, policy } => tracing::info!(
            container = %name,
            id = %short(id),
            restart_policy = %policy,
            "restart policy given back"
        ),
        Action::Remove {
            id,
            name,
            restart_count,
        } => tracing::info!(
            container = %name,
            id = %short(id),
            restarts = restart_count,
            "container restarted by Docker during the outage: stopped and removed (ECS relaunches its task)"
        ),
        Action::UnpauseAgent { id } => tracing::info!(id = %short(id), "ECS agent unpaused"),
    }
}
