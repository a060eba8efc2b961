//! The state file: the mode, since when, and the [`Ledger`] of what the sentry changed.
//!
//! It is what lets a sentry restart, a Docker daemon restart or a host reboot during an
//! outage end correctly: the sentry comes back offline, with the restart counts and
//! start times it needs to tell which containers Docker restarted. Written atomically
//! (temporary file, fsync, rename, fsync of the directory) on every change.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::decide::{Ledger, Mode};

const VERSION: u32 = 1;

/// The content of the state file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedState {
    pub version: u32,
    pub mode: Mode,
    /// Unix seconds when the sentry entered `mode`.
    pub since: u64,
    /// `since` for people (RFC 3339, UTC); ignored when read.
    #[serde(default)]
    pub since_utc: String,
    #[serde(flatten)]
    pub ledger: Ledger,
}

impl SavedState {
    pub fn new(mode: Mode, since: u64, ledger: Ledger) -> Self {
        SavedState {
            version: VERSION,
            mode,
            since,
            since_utc: rfc3339(since),
            ledger,
        }
    }
}

/// Unix seconds as RFC 3339 UTC (`2026-05-07T21:09:36Z`).
pub fn rfc3339(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read state file {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error(
        "state file {path} is not a valid sentry state ({source}); fix or remove it (removing it forgets what the sentry changed during an outage)"
    )]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("state file {path} has version {found}, this sentry writes version {VERSION}")]
    Version { path: PathBuf, found: u32 },
    #[error("cannot write state file {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
}

/// Where the state lives.
#[derive(Debug, Clone)]
pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        StateFile { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The saved state, or `None` if there is no state file yet.
    pub fn load(&self) -> Result<Option<SavedState>, StateError> {
        let text = match fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StateError::Read {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        let state: SavedState =
            serde_json::from_str(&text).map_err(|source| StateError::Parse {
                path: self.path.clone(),
                source,
            })?;
        if state.version != VERSION {
            return Err(StateError::Version {
                path: self.path.clone(),
                found: state.version,
            });
        }
        Ok(Some(state))
    }

    /// Replace the state file atomically; creates its directory if needed.
    pub fn save(&self, state: &SavedState) -> Result<(), StateError> {
        self.write(state).map_err(|source| StateError::Write {
            path: self.path.clone(),
            source,
        })
    }

    fn write(&self, state: &SavedState) -> io::Result<()> {
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        fs::create_dir_all(dir)?;
        let json = serde_json::to_vec_pretty(state).map_err(io::Error::other)?;
        let (tmp, mut file) = tempfile_in(dir, &self.path)?;
        let written = file
            .write_all(&json)
            .and_then(|()| file.write_all(b"\n"))
            .and_then(|()| file.sync_all())
            .and_then(|()| {
                drop(file);
                fs::rename(&tmp, &self.path)
            });
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        // The rename itself must survive a power cut.
        fs::File::open(dir)?.sync_all()
    }
}

/// `<dir>/.<name>.tmp`, created fresh (one sentry per state file).
fn tempfile_in(dir: &Path, target: &Path) -> io::Result<(PathBuf, fs::File)> {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "state".to_owned());
    let path = dir.join(format!(".{name}.tmp"));
    let file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)?;
    Ok((path, file))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::{Protected, RestartPolicy};

    fn sample() -> SavedState {
        SavedState::new(
            Mode::Offline,
            1_780_000_000,
            Ledger {
                protected: vec![Protected {
                    id: "abc".into(),
                    name: "ecs-web-1".into(),
                    task_arn: "arn:aws:ecs:eu-west-1:1:task/c/t".into(),
                    original: RestartPolicy::no(),
                    started_at: "2026-05-07T21:09:36.1Z".into(),
                    restart_count: 0,
                }],
                agent_paused: true,
            },
        )
    }

    #[test]
    fn round_trip_and_readable_layout() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(dir.path().join("sub/state.json"));
        assert_eq!(file.load().unwrap(), None, "no file yet");
        file.save(&sample()).unwrap();
        assert_eq!(file.load().unwrap(), Some(sample()));
        let text = fs::read_to_string(file.path()).unwrap();
        assert!(text.contains("\"mode\": \"offline\""), "{text}");
        assert!(
            text.contains("\"since_utc\": \"2026-05-28T20:26:40Z\""),
            "{text}"
        );
        assert!(text.contains("\"agent_paused\": true"), "{text}");
        let leftovers: Vec<_> = fs::read_dir(dir.path().join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, ["state.json"], "no temporary file left");
    }

    #[test]
    fn a_broken_file_is_an_error_not_a_fresh_start() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(dir.path().join("state.json"));
        fs::write(file.path(), "{\"mode\": \"offl").unwrap();
        let err = file.load().unwrap_err();
        assert!(matches!(err, StateError::Parse { .. }));
        assert!(err.to_string().contains("fix or remove it"), "{err}");
        let mut future = serde_json::to_value(sample()).unwrap();
        future["version"] = 9.into();
        fs::write(file.path(), future.to_string()).unwrap();
        assert!(matches!(
            file.load(),
            Err(StateError::Version { found: 9, .. })
        ));
    }

    #[test]
    fn an_unwritable_place_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("file"), "").unwrap();
        let file = StateFile::new(dir.path().join("file/state.json"));
        let err = file.save(&sample()).unwrap_err();
        assert!(matches!(err, StateError::Write { .. }), "{err}");
    }
}
