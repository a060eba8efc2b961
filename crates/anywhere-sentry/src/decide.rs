//! The sentry's decisions over plain data: no Docker, no clock, no I/O.
//!
//! Two pure steps make one check:
//! - [`Link::observe`] turns one probe result into the mode the sentry acts on, with
//!   smoothing: `offline_after` failed probes in a row before going offline,
//!   `online_after` good ones in a row before coming back.
//! - [`decide`] compares what Docker shows with the [`Ledger`] (what the sentry changed)
//!   and returns the [`Action`]s that bring Docker to what the mode wants. It is
//!   level-triggered: run it again on the same world and it asks for nothing more.

use serde::{Deserialize, Serialize};

/// The label the ECS agent puts on every container of a task.
pub const TASK_ARN_LABEL: &str = "com.amazonaws.ecs.task-arn";
/// The name of the ECS agent's own container.
pub const AGENT_NAME: &str = "ecs-agent";

/// What the sentry believes about the link to the ECS endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// ECS is reachable: ECS manages the containers, the sentry changes nothing.
    Online,
    /// ECS is unreachable: Docker restarts the task containers, the agent is paused.
    Offline,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Online => "online",
            Mode::Offline => "offline",
        }
    }
}

/// How many probes in a row it takes to change the mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Smoothing {
    /// Consecutive failed probes before going offline (>= 1).
    pub offline_after: u32,
    /// Consecutive good probes before coming back online (>= 1).
    pub online_after: u32,
}

/// The link state: the mode acted on, since when (Unix seconds), and how many probes
/// in a row have disagreed with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    pub mode: Mode,
    pub since: u64,
    pub streak: u32,
}

impl Link {
    pub fn new(mode: Mode, since: u64) -> Self {
        Link {
            mode,
            since,
            streak: 0,
        }
    }

    /// One probe result. Returns the new link and `Some(mode)` when the mode changed.
    /// A result that agrees with the mode resets the streak; one that disagrees extends
    /// it, and the mode flips once the streak reaches the threshold.
    #[must_use]
    pub fn observe(self, probe_ok: bool, smoothing: Smoothing, now: u64) -> (Link, Option<Mode>) {
        let (against, threshold, other) = match self.mode {
            Mode::Online => (!probe_ok, smoothing.offline_after, Mode::Offline),
            Mode::Offline => (probe_ok, smoothing.online_after, Mode::Online),
        };
        if !against {
            return (Link { streak: 0, ..self }, None);
        }
        let streak = self.streak.saturating_add(1);
        if streak >= threshold.max(1) {
            (Link::new(other, now), Some(other))
        } else {
            (Link { streak, ..self }, None)
        }
    }
}

/// A Docker restart policy, as the engine reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartPolicy {
    /// `no` (or empty), `on-failure`, `always`, `unless-stopped`.
    pub name: String,
    /// Only meaningful for `on-failure`; 0 means unlimited.
    pub maximum_retry_count: i64,
}

impl RestartPolicy {
    pub fn no() -> Self {
        RestartPolicy {
            name: "no".to_owned(),
            maximum_retry_count: 0,
        }
    }

    pub fn on_failure(retries: u32) -> Self {
        RestartPolicy {
            name: "on-failure".to_owned(),
            maximum_retry_count: i64::from(retries),
        }
    }

    fn normalized_name(&self) -> &str {
        if self.name.is_empty() {
            "no"
        } else {
            &self.name
        }
    }

    /// Same policy as Docker applies it: `""` is `no`, and the retry count only counts
    /// for `on-failure`.
    pub fn same_as(&self, other: &RestartPolicy) -> bool {
        self.normalized_name() == other.normalized_name()
            && (self.normalized_name() != "on-failure"
                || self.maximum_retry_count == other.maximum_retry_count)
    }
}

impl std::fmt::Display for RestartPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.normalized_name() {
            "on-failure" => write!(f, "on-failure:{}", self.maximum_retry_count),
            name => f.write_str(name),
        }
    }
}

/// A container's state, as far as the sentry cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Running,
    Paused,
    Restarting,
    /// Created, exited, dead, being removed: not running.
    Stopped,
}

/// One container as Docker shows it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerView {
    pub id: String,
    /// Without the leading `/`.
    pub name: String,
    /// The `com.amazonaws.ecs.task-arn` label, if any.
    pub task_arn: Option<String>,
    pub status: Status,
    pub restart_policy: RestartPolicy,
    pub restart_count: i64,
    /// Docker's `State.StartedAt`: changes whenever the container is started again.
    pub started_at: String,
}

impl ContainerView {
    pub fn is_agent(&self) -> bool {
        self.name == AGENT_NAME
    }

    pub fn is_task(&self) -> bool {
        self.task_arn.is_some() && !self.is_agent()
    }
}

/// A task container whose restart policy the sentry changed, with what it looked like
/// then: the policy to give back, and the start time and restart count that tell later
/// whether Docker restarted it in between.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Protected {
    pub id: String,
    pub name: String,
    pub task_arn: String,
    pub original: RestartPolicy,
    pub started_at: String,
    pub restart_count: i64,
}

impl Protected {
    /// Was the container started again since the sentry protected it? A restart by the
    /// restart policy bumps the count; a start by the Docker daemon (after a daemon
    /// restart or a reboot) changes only the start time.
    pub fn restarted(&self, now: &ContainerView) -> bool {
        now.restart_count > self.restart_count || now.started_at != self.started_at
    }
}

/// What the sentry changed and must undo when the link returns. Kept in the state file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    #[serde(default)]
    pub protected: Vec<Protected>,
    /// The sentry paused the ECS agent (or was about to).
    #[serde(default)]
    pub agent_paused: bool,
}

impl Ledger {
    pub fn is_empty(&self) -> bool {
        self.protected.is_empty() && !self.agent_paused
    }

    fn get(&self, id: &str) -> Option<&Protected> {
        self.protected.iter().find(|p| p.id == id)
    }

    fn forget(&mut self, id: &str) -> bool {
        let before = self.protected.len();
        self.protected.retain(|p| p.id != id);
        before != self.protected.len()
    }

    /// Whether `action` may run now. The agent is unpaused only once every protected
    /// container has been dealt with, so it never sees a duplicate of a task.
    pub fn allows(&self, action: &Action) -> bool {
        match action {
            Action::UnpauseAgent { .. } => self.protected.is_empty(),
            _ => true,
        }
    }

    /// Record an action *before* carrying it out (write-ahead), so that a crash between
    /// the two leaves a ledger that still covers the change. Returns whether the ledger
    /// changed.
    pub fn record_before(&mut self, action: &Action) -> bool {
        match action {
            Action::Protect(entry) => {
                if self.get(&entry.id).is_some() {
                    return false;
                }
                self.protected.push(entry.clone());
                true
            }
            Action::PauseAgent { .. } => !std::mem::replace(&mut self.agent_paused, true),
            _ => false,
        }
    }

    /// Record an action once it has been carried out. Returns whether the ledger changed.
    pub fn record_after(&mut self, action: &Action) -> bool {
        match action {
            Action::Forget { id, .. } | Action::Release { id, .. } | Action::Remove { id, .. } => {
                self.forget(id)
            }
            Action::UnpauseAgent { .. } => std::mem::replace(&mut self.agent_paused, false),
            Action::Protect(_) | Action::Reprotect { .. } | Action::PauseAgent { .. } => false,
        }
    }
}

/// What the sentry does in Docker. Carried out in order by the executor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Record the container, then set its restart policy to `on-failure:<retries>`.
    Protect(Protected),
    /// A recorded container lost its `on-failure` policy (changed by hand, or a crash
    /// between recording and updating): set it again.
    Reprotect { id: String, name: String },
    /// Pause the ECS agent so it cannot stop the containers Docker restarts.
    PauseAgent { id: String },
    /// Drop a ledger entry that needs no Docker call (container gone, or already back to
    /// its original policy).
    Forget { id: String, name: String },
    /// Give a container that was not restarted its original restart policy back.
    Release {
        id: String,
        name: String,
        policy: RestartPolicy,
    },
    /// Stop and remove a container Docker restarted during the outage: ECS relaunches its
    /// task, keeping it would run the task twice.
    Remove {
        id: String,
        name: String,
        restart_count: i64,
    },
    /// Let the ECS agent run again.
    UnpauseAgent { id: String },
}

/// The plan for one check: given the mode, what Docker shows and what the sentry
/// recorded, the actions that bring Docker to what the mode wants.
///
/// Offline: every running task container (label [`TASK_ARN_LABEL`], agent excluded)
/// that the sentry has not protected yet and whose policy is not already the target gets
/// `on-failure:<retries>`; then the agent is paused. Containers that were not running
/// when the link went down are left alone.
///
/// Online: each protected container that Docker restarted meanwhile is removed, each
/// other gets its original policy back, entries of vanished containers are dropped; then
/// a paused agent is unpaused. Nothing outside the ledger is touched.
pub fn decide(
    mode: Mode,
    containers: &[ContainerView],
    ledger: &Ledger,
    retries: u32,
) -> Vec<Action> {
    let find = |id: &str| containers.iter().find(|c| c.id == id);
    let agent = containers.iter().find(|c| c.is_agent());
    let mut actions = Vec::new();
    match mode {
        Mode::Offline => {
            let target = RestartPolicy::on_failure(retries);
            for entry in &ledger.protected {
                if find(&entry.id).is_none() {
                    actions.push(Action::Forget {
                        id: entry.id.clone(),
                        name: entry.name.clone(),
                    });
                }
            }
            for c in containers.iter().filter(|c| c.is_task()) {
                let policy_ok = c.restart_policy.same_as(&target);
                match ledger.get(&c.id) {
                    Some(_) if !policy_ok => actions.push(Action::Reprotect {
                        id: c.id.clone(),
                        name: c.name.clone(),
                    }),
                    Some(_) => {}
                    None if c.status == Status::Running && !policy_ok => {
                        actions.push(Action::Protect(Protected {
                            id: c.id.clone(),
                            name: c.name.clone(),
                            task_arn: c.task_arn.clone().unwrap_or_default(),
                            original: c.restart_policy.clone(),
                            started_at: c.started_at.clone(),
                            restart_count: c.restart_count,
                        }));
                    }
                    None => {}
                }
            }
            if let Some(agent) = agent.filter(|a| a.status == Status::Running) {
                actions.push(Action::PauseAgent {
                    id: agent.id.clone(),
                });
            }
        }
        Mode::Online => {
            for entry in &ledger.protected {
                let Some(c) = find(&entry.id) else {
                    actions.push(Action::Forget {
                        id: entry.id.clone(),
                        name: entry.name.clone(),
                    });
                    continue;
                };
                if entry.restarted(c) {
                    actions.push(Action::Remove {
                        id: c.id.clone(),
                        name: c.name.clone(),
                        restart_count: c.restart_count - entry.restart_count,
                    });
                } else if c.restart_policy.same_as(&entry.original) {
                    actions.push(Action::Forget {
                        id: c.id.clone(),
                        name: c.name.clone(),
                    });
                } else {
                    actions.push(Action::Release {
                        id: c.id.clone(),
                        name: c.name.clone(),
                        policy: entry.original.clone(),
                    });
                }
            }
            let ours = ledger.agent_paused || !ledger.protected.is_empty();
            if let Some(agent) = agent.filter(|a| a.status == Status::Paused && ours) {
                actions.push(Action::UnpauseAgent {
                    id: agent.id.clone(),
                });
            }
        }
    }
    actions
}

/// Whether a check in `mode` needs to look at Docker at all. Online with an empty ledger
/// there is nothing to do: the sentry then makes no Docker call.
pub fn needs_docker(mode: Mode, ledger: &Ledger) -> bool {
    mode == Mode::Offline || !ledger.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Smoothing = Smoothing {
        offline_after: 3,
        online_after: 2,
    };

    fn run(start: Mode, probes: &str, smoothing: Smoothing) -> (Vec<Mode>, Vec<(usize, Mode)>) {
        let mut link = Link::new(start, 0);
        let mut modes = Vec::new();
        let mut flips = Vec::new();
        for (i, p) in probes.chars().enumerate() {
            let (next, flip) = link.observe(p == '+', smoothing, i as u64 + 1);
            if let Some(m) = flip {
                flips.push((i, m));
                assert_eq!(next.since, i as u64 + 1, "since is the time of the flip");
            }
            link = next;
            modes.push(link.mode);
        }
        (modes, flips)
    }

    #[test]
    fn smoothing_table() {
        use Mode::{Offline as Off, Online as On};
        // (start, probes: '+' good / '-' failed, expected flips (probe index, new mode))
        type Flips = &'static [(usize, Mode)];
        let table: &[(Mode, &str, Flips)] = &[
            (On, "+++++", &[]),
            (On, "-", &[]),
            (On, "--", &[]),
            (On, "---", &[(2, Off)]),
            (On, "-+-+-+-+", &[]),
            (On, "--+--+--+", &[]),
            (On, "--+---", &[(5, Off)]),
            (On, "-----", &[(2, Off)]),
            (Off, "-----", &[]),
            (Off, "+", &[]),
            (Off, "+-+-+-+-", &[]),
            (Off, "++", &[(1, On)]),
            (Off, "+-++", &[(3, On)]),
            // A whole outage: down after 3, back after 2, the flapping in between ignored.
            (On, "+-+---+-+-++--+", &[(5, Off), (11, On)]),
        ];
        for (start, probes, want) in table {
            let (_, flips) = run(*start, probes, S);
            assert_eq!(&flips, want, "start {start:?}, probes {probes}");
        }
    }

    #[test]
    fn threshold_one_flips_on_every_disagreement_and_zero_is_treated_as_one() {
        for n in [0, 1] {
            let s = Smoothing {
                offline_after: n,
                online_after: n,
            };
            let (modes, _) = run(Mode::Online, "-+-+", s);
            assert_eq!(
                modes,
                [Mode::Offline, Mode::Online, Mode::Offline, Mode::Online]
            );
        }
    }

    #[test]
    fn streak_is_kept_between_probes_and_reset_by_agreement() {
        let link = Link::new(Mode::Online, 7);
        let (link, _) = link.observe(false, S, 8);
        assert_eq!((link.streak, link.since), (1, 7));
        let (link, _) = link.observe(false, S, 9);
        assert_eq!(link.streak, 2);
        let (link, _) = link.observe(true, S, 10);
        assert_eq!((link.mode, link.streak, link.since), (Mode::Online, 0, 7));
    }

    #[test]
    fn restart_policy_equality_follows_docker() {
        let empty = RestartPolicy {
            name: String::new(),
            maximum_retry_count: 0,
        };
        assert!(empty.same_as(&RestartPolicy::no()));
        assert!(RestartPolicy::on_failure(3).same_as(&RestartPolicy::on_failure(3)));
        assert!(!RestartPolicy::on_failure(3).same_as(&RestartPolicy::on_failure(0)));
        assert!(!RestartPolicy::no().same_as(&RestartPolicy::on_failure(0)));
        let always = |n| RestartPolicy {
            name: "always".into(),
            maximum_retry_count: n,
        };
        assert!(always(0).same_as(&always(5)));
        assert_eq!(RestartPolicy::on_failure(0).to_string(), "on-failure:0");
        assert_eq!(empty.to_string(), "no");
    }

    fn task(id: &str, status: Status, policy: RestartPolicy) -> ContainerView {
        ContainerView {
            id: id.into(),
            name: format!("ecs-{id}"),
            task_arn: Some(format!("arn:aws:ecs:eu-west-1:123456789012:task/c/{id}")),
            status,
            restart_policy: policy,
            restart_count: 0,
            started_at: "2026-01-01T00:00:00Z".into(),
        }
    }

    fn agent(status: Status) -> ContainerView {
        ContainerView {
            id: "agent".into(),
            name: AGENT_NAME.into(),
            task_arn: None,
            status,
            restart_policy: RestartPolicy::no(),
            restart_count: 0,
            started_at: "2026-01-01T00:00:00Z".into(),
        }
    }

    fn other(id: &str) -> ContainerView {
        ContainerView {
            task_arn: None,
            name: id.into(),
            ..task(id, Status::Running, RestartPolicy::no())
        }
    }

    fn protected(c: &ContainerView) -> Protected {
        Protected {
            id: c.id.clone(),
            name: c.name.clone(),
            task_arn: c.task_arn.clone().unwrap_or_default(),
            original: c.restart_policy.clone(),
            started_at: c.started_at.clone(),
            restart_count: c.restart_count,
        }
    }

    fn kinds(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .map(|a| match a {
                Action::Protect(p) => format!("protect {}", p.id),
                Action::Reprotect { id, .. } => format!("reprotect {id}"),
                Action::PauseAgent { id } => format!("pause {id}"),
                Action::Forget { id, .. } => format!("forget {id}"),
                Action::Release { id, policy, .. } => format!("release {id} {policy}"),
                Action::Remove { id, .. } => format!("remove {id}"),
                Action::UnpauseAgent { id } => format!("unpause {id}"),
            })
            .collect()
    }

    #[test]
    fn going_offline_protects_running_tasks_then_pauses_the_agent() {
        let no = RestartPolicy::no;
        let containers = vec![
            task("a", Status::Running, no()),
            task("b", Status::Running, no()),
            task("exited", Status::Stopped, no()),
            task("preset", Status::Running, RestartPolicy::on_failure(5)),
            other("plain"),
            agent(Status::Running),
        ];
        let actions = decide(Mode::Offline, &containers, &Ledger::default(), 5);
        assert_eq!(kinds(&actions), ["protect a", "protect b", "pause agent"]);
        let Action::Protect(p) = &actions[0] else {
            panic!("not a protect: {actions:?}")
        };
        assert_eq!(p.original, no());
        assert_eq!(p.started_at, "2026-01-01T00:00:00Z");
    }

    #[test]
    fn the_agent_is_never_protected_even_with_a_task_label() {
        let mut a = agent(Status::Running);
        a.task_arn = Some("arn".into());
        assert!(!a.is_task());
        let actions = decide(Mode::Offline, &[a], &Ledger::default(), 0);
        assert_eq!(kinds(&actions), ["pause agent"]);
    }

    #[test]
    fn offline_is_idempotent_and_reasserts_what_was_undone() {
        let mut a = task("a", Status::Running, RestartPolicy::on_failure(0));
        let mut ledger = Ledger {
            protected: vec![protected(&task("a", Status::Running, RestartPolicy::no()))],
            agent_paused: true,
        };
        let table: &[(RestartPolicy, Status, &[&str])] = &[
            (RestartPolicy::on_failure(0), Status::Paused, &[]),
            (RestartPolicy::no(), Status::Paused, &["reprotect a"]),
            (
                RestartPolicy::on_failure(3),
                Status::Paused,
                &["reprotect a"],
            ),
            // The agent restarted by ecs-init after a reboot: paused again.
            (
                RestartPolicy::on_failure(0),
                Status::Running,
                &["pause agent"],
            ),
            (RestartPolicy::on_failure(0), Status::Stopped, &[]),
        ];
        for (policy, agent_status, want) in table {
            a.restart_policy = policy.clone();
            let actions = decide(
                Mode::Offline,
                &[a.clone(), agent(*agent_status)],
                &ledger,
                0,
            );
            assert_eq!(
                kinds(&actions),
                *want,
                "policy {policy}, agent {agent_status:?}"
            );
        }
        // A task container restarted by Docker keeps its first baseline.
        a.restart_count = 4;
        a.restart_policy = RestartPolicy::on_failure(0);
        assert!(decide(Mode::Offline, &[a], &ledger, 0).is_empty());
        // Vanished containers are dropped from the ledger.
        ledger.agent_paused = false;
        assert_eq!(kinds(&decide(Mode::Offline, &[], &ledger, 0)), ["forget a"]);
    }

    #[test]
    fn a_new_task_container_during_the_outage_is_protected_too() {
        let ledger = Ledger {
            protected: vec![protected(&task("a", Status::Running, RestartPolicy::no()))],
            agent_paused: true,
        };
        let containers = vec![
            task("a", Status::Running, RestartPolicy::on_failure(0)),
            task("new", Status::Running, RestartPolicy::no()),
            agent(Status::Paused),
        ];
        let actions = decide(Mode::Offline, &containers, &ledger, 0);
        assert_eq!(kinds(&actions), ["protect new"]);
    }

    #[test]
    fn coming_online_removes_restarted_resets_the_rest_then_unpauses() {
        let base = |id| task(id, Status::Running, RestartPolicy::no());
        let ledger = Ledger {
            protected: ["crashed", "rebooted", "steady", "finished", "gone", "reset"]
                .iter()
                .map(|id| protected(&base(id)))
                .collect(),
            agent_paused: true,
        };
        let on = || RestartPolicy::on_failure(0);
        let mut crashed = task("crashed", Status::Running, on());
        crashed.restart_count = 2;
        crashed.started_at = "2026-01-01T00:05:00Z".into();
        let mut rebooted = task("rebooted", Status::Running, on());
        rebooted.started_at = "2026-01-01T01:00:00Z".into();
        let containers = vec![
            crashed,
            rebooted,
            task("steady", Status::Running, on()),
            task("finished", Status::Stopped, on()),
            task("reset", Status::Running, RestartPolicy::no()),
            task("untracked", Status::Running, on()),
            other("plain"),
            agent(Status::Paused),
        ];
        let actions = decide(Mode::Online, &containers, &ledger, 0);
        assert_eq!(
            kinds(&actions),
            [
                "remove crashed",
                "remove rebooted",
                "release steady no",
                "release finished no",
                "forget gone",
                "forget reset",
                "unpause agent"
            ]
        );
        assert!(matches!(
            actions[0],
            Action::Remove {
                restart_count: 2,
                ..
            }
        ));
    }

    #[test]
    fn online_restores_the_original_policy_not_always_no() {
        let mut orig = task("a", Status::Running, RestartPolicy::no());
        orig.restart_policy = RestartPolicy {
            name: String::new(),
            maximum_retry_count: 0,
        };
        let ledger = Ledger {
            protected: vec![Protected {
                original: RestartPolicy {
                    name: "unless-stopped".into(),
                    maximum_retry_count: 0,
                },
                ..protected(&orig)
            }],
            agent_paused: false,
        };
        let now = task("a", Status::Running, RestartPolicy::on_failure(0));
        assert_eq!(
            kinds(&decide(Mode::Online, &[now], &ledger, 0)),
            ["release a unless-stopped"]
        );
    }

    #[test]
    fn online_leaves_an_agent_alone_that_the_sentry_did_not_pause() {
        let actions = decide(
            Mode::Online,
            &[agent(Status::Paused)],
            &Ledger::default(),
            0,
        );
        assert!(actions.is_empty());
        let ledger = Ledger {
            protected: vec![],
            agent_paused: true,
        };
        for (status, want) in [
            (Status::Paused, &["unpause agent"][..]),
            (Status::Running, &[]),
            (Status::Stopped, &[]),
        ] {
            let actions = decide(Mode::Online, &[agent(status)], &ledger, 0);
            assert_eq!(kinds(&actions), want, "{status:?}");
        }
    }

    #[test]
    fn ledger_is_written_ahead_for_changes_and_after_for_undos() {
        let a = protected(&task("a", Status::Running, RestartPolicy::no()));
        let mut ledger = Ledger::default();
        let protect = Action::Protect(a.clone());
        assert!(ledger.record_before(&protect));
        assert!(!ledger.record_before(&protect), "recorded once");
        assert!(!ledger.record_after(&protect));
        let pause = Action::PauseAgent { id: "x".into() };
        assert!(ledger.record_before(&pause));
        assert!(ledger.agent_paused);
        let unpause = Action::UnpauseAgent { id: "x".into() };
        assert!(
            !ledger.allows(&unpause),
            "not while containers are still protected"
        );
        let remove = Action::Remove {
            id: "a".into(),
            name: "n".into(),
            restart_count: 1,
        };
        assert!(!ledger.record_before(&remove));
        assert!(ledger.record_after(&remove));
        assert!(ledger.allows(&unpause));
        assert!(ledger.record_after(&unpause));
        assert!(ledger.is_empty());
    }

    #[test]
    fn docker_is_only_consulted_when_there_is_something_to_do() {
        assert!(!needs_docker(Mode::Online, &Ledger::default()));
        assert!(needs_docker(Mode::Offline, &Ledger::default()));
        let paused = Ledger {
            protected: vec![],
            agent_paused: true,
        };
        assert!(needs_docker(Mode::Online, &paused));
    }
}
