//! The Docker Engine adapter (bollard): observe containers as [`ContainerView`]s and
//! carry out [`Action`]s. Connects lazily and negotiates the API version on first use,
//! and again after a failure, so a Docker daemon that is down at start or restarts
//! later is picked up without restarting the sentry.

use std::collections::HashMap;

use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::models::{
    ContainerInspectResponse, ContainerStateStatusEnum, ContainerUpdateBody,
    RestartPolicy as DockerRestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{ListContainersOptions, RemoveContainerOptions};

use crate::decide::{AGENT_NAME, Action, ContainerView, RestartPolicy, Status, TASK_ARN_LABEL};

/// Seconds a single Docker API call may take. Long enough for `docker stop` of a task
/// with ECS's largest stop timeout (120 s).
pub const CALL_TIMEOUT_SECS: u64 = 180;

#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error("cannot reach the Docker engine at {addr}: {source}")]
    Connect { addr: String, source: BollardError },
    #[error("unsupported Docker host {0:?} (use unix:///path/docker.sock or tcp://host:port)")]
    Host(String),
    #[error("Docker {op} failed: {source}")]
    Call {
        op: &'static str,
        source: BollardError,
    },
    #[error("Docker {op} of container {name} failed: {source}")]
    Container {
        op: &'static str,
        name: String,
        source: BollardError,
    },
}

/// A Docker engine reached through `host` (`unix:///var/run/docker.sock`, a socket
/// path, or `tcp://host:port`).
#[derive(Debug)]
pub struct DockerEngine {
    host: String,
    client: Option<Docker>,
}

fn not_found(e: &BollardError) -> bool {
    matches!(
        e,
        BollardError::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// A 304 answers pause/unpause/stop of a container already in that state.
fn not_modified(e: &BollardError) -> bool {
    matches!(
        e,
        BollardError::DockerResponseServerError {
            status_code: 304,
            ..
        }
    )
}

impl DockerEngine {
    pub fn new(host: impl Into<String>) -> Self {
        DockerEngine {
            host: host.into(),
            client: None,
        }
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    fn connect(&self) -> Result<Docker, DockerError> {
        let version = bollard::API_DEFAULT_VERSION;
        let h = self.host.as_str();
        let result = if let Some(path) = h.strip_prefix("unix://") {
            Docker::connect_with_unix(path, CALL_TIMEOUT_SECS, version)
        } else if h.starts_with('/') {
            Docker::connect_with_unix(h, CALL_TIMEOUT_SECS, version)
        } else if let Some(addr) = h
            .strip_prefix("tcp://")
            .or_else(|| h.strip_prefix("http://"))
        {
            Docker::connect_with_http(&format!("http://{addr}"), CALL_TIMEOUT_SECS, version)
        } else {
            return Err(DockerError::Host(self.host.clone()));
        };
        result.map_err(|source| DockerError::Connect {
            addr: self.host.clone(),
            source,
        })
    }

    /// The client, connected and version-negotiated (Debian's docker.io 20.10 speaks
    /// API 1.41, older than bollard's default).
    async fn client(&mut self) -> Result<Docker, DockerError> {
        if let Some(c) = &self.client {
            return Ok(c.clone());
        }
        let docker = self
            .connect()?
            .negotiate_version()
            .await
            .map_err(|source| DockerError::Connect {
                addr: self.host.clone(),
                source,
            })?;
        let v = docker.client_version();
        tracing::info!(
            docker_host = %self.host,
            api_version = %format!("{}.{}", v.major_version, v.minor_version),
            "connected to the Docker engine"
        );
        self.client = Some(docker.clone());
        Ok(docker)
    }

    /// Forget the connection after a failure that may mean the engine went away;
    /// the next call connects and negotiates again.
    fn reset_on<T>(&mut self, r: Result<T, DockerError>) -> Result<T, DockerError> {
        if matches!(
            &r,
            Err(DockerError::Call { source, .. } | DockerError::Container { source, .. })
                if !matches!(source, BollardError::DockerResponseServerError { .. })
        ) {
            self.client = None;
        }
        r
    }

    /// Every task container (label [`TASK_ARN_LABEL`]) and the agent, in any state.
    pub async fn observe(&mut self) -> Result<Vec<ContainerView>, DockerError> {
        let r = self.observe_inner().await;
        self.reset_on(r)
    }

    async fn observe_inner(&mut self) -> Result<Vec<ContainerView>, DockerError> {
        let docker = self.client().await?;
        let list = docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                ..Default::default()
            }))
            .await
            .map_err(|source| DockerError::Call {
                op: "list containers",
                source,
            })?;
        let mut views = Vec::new();
        for summary in list {
            let is_agent = summary
                .names
                .iter()
                .flatten()
                .any(|n| n.trim_start_matches('/') == AGENT_NAME);
            let is_task = summary
                .labels
                .as_ref()
                .is_some_and(|l| l.contains_key(TASK_ARN_LABEL));
            let Some(id) = summary.id.filter(|_| is_agent || is_task) else {
                continue;
            };
            match docker.inspect_container(&id, None).await {
                Ok(inspect) => views.push(view(id, inspect)),
                Err(e) if not_found(&e) => {} // removed since the listing
                Err(source) => {
                    return Err(DockerError::Container {
                        op: "inspect",
                        name: id,
                        source,
                    });
                }
            }
        }
        Ok(views)
    }

    /// Carry out one action. A container that no longer exists counts as done: there
    /// is nothing left to protect, release or remove.
    pub async fn apply(&mut self, action: &Action, retries: u32) -> Result<(), DockerError> {
        let r = self.apply_inner(action, retries).await;
        self.reset_on(r)
    }

    async fn apply_inner(&mut self, action: &Action, retries: u32) -> Result<(), DockerError> {
        let docker = self.client().await?;
        let (op, name, result) = match action {
            Action::Forget { .. } => return Ok(()),
            Action::Protect(p) => (
                "update",
                &p.name,
                set_policy(&docker, &p.id, &RestartPolicy::on_failure(retries)).await,
            ),
            Action::Reprotect { id, name } => (
                "update",
                name,
                set_policy(&docker, id, &RestartPolicy::on_failure(retries)).await,
            ),
            Action::Release { id, name, policy } => {
                ("update", name, set_policy(&docker, id, policy).await)
            }
            Action::PauseAgent { id } => ("pause", id, docker.pause_container(id).await),
            Action::UnpauseAgent { id } => ("unpause", id, docker.unpause_container(id).await),
            Action::Remove { id, name, .. } => {
                // Stop with the container's own stop timeout (ECS sets it), then remove.
                let stopped = match docker.stop_container(id, None).await {
                    Err(e) if not_modified(&e) => Ok(()),
                    r => r,
                };
                let result = match stopped {
                    Ok(()) => {
                        docker
                            .remove_container(
                                id,
                                Some(RemoveContainerOptions {
                                    force: true,
                                    ..Default::default()
                                }),
                            )
                            .await
                    }
                    Err(e) => Err(e),
                };
                ("stop and remove", name, result)
            }
        };
        match result {
            Ok(()) => Ok(()),
            Err(e) if not_found(&e) || not_modified(&e) => Ok(()),
            Err(source) => Err(DockerError::Container {
                op,
                name: name.clone(),
                source,
            }),
        }
    }
}

async fn set_policy(docker: &Docker, id: &str, policy: &RestartPolicy) -> Result<(), BollardError> {
    let name = match policy.name.as_str() {
        "on-failure" => RestartPolicyNameEnum::ON_FAILURE,
        "always" => RestartPolicyNameEnum::ALWAYS,
        "unless-stopped" => RestartPolicyNameEnum::UNLESS_STOPPED,
        _ => RestartPolicyNameEnum::NO,
    };
    // Docker refuses a retry count with any policy but on-failure.
    let count = if name == RestartPolicyNameEnum::ON_FAILURE {
        policy.maximum_retry_count
    } else {
        0
    };
    docker
        .update_container(
            id,
            ContainerUpdateBody {
                restart_policy: Some(DockerRestartPolicy {
                    name: Some(name),
                    maximum_retry_count: Some(count),
                }),
                ..Default::default()
            },
        )
        .await
}

fn view(id: String, c: ContainerInspectResponse) -> ContainerView {
    let state = c.state.unwrap_or_default();
    let status = match state.status {
        Some(ContainerStateStatusEnum::RUNNING) => Status::Running,
        Some(ContainerStateStatusEnum::PAUSED) => Status::Paused,
        Some(ContainerStateStatusEnum::RESTARTING) => Status::Restarting,
        _ => Status::Stopped,
    };
    let policy = c
        .host_config
        .and_then(|h| h.restart_policy)
        .map(|p| RestartPolicy {
            name: p.name.map(|n| n.to_string()).unwrap_or_default(),
            maximum_retry_count: p.maximum_retry_count.unwrap_or(0),
        })
        .unwrap_or_else(RestartPolicy::no);
    let labels: HashMap<String, String> = c.config.and_then(|c| c.labels).unwrap_or_default();
    ContainerView {
        id,
        name: c
            .name
            .map(|n| n.trim_start_matches('/').to_owned())
            .unwrap_or_default(),
        task_arn: labels.get(TASK_ARN_LABEL).cloned(),
        status,
        restart_policy: policy,
        restart_count: c.restart_count.unwrap_or(0),
        started_at: state.started_at.unwrap_or_default(),
    }
}
