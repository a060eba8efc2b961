//! The log file, as the original sentry keeps it: rotated when it passes 5 MB, five
//! old files kept (`<logfile>.1` newest .. `<logfile>.5` oldest), whole lines only.

use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Mutex;

use file_rotate::compression::Compression;
use file_rotate::suffix::AppendCount;
use file_rotate::{ContentLimit, FileRotate};
use tracing::level_filters::LevelFilter;

/// Rotate once the file passes this size (Python's `RotatingFileHandler(maxBytes=5242880)`).
pub const MAX_BYTES: usize = 5 * 1024 * 1024;
/// Rotated files kept (`backupCount=5`).
pub const KEEP_FILES: usize = 5;

/// `--loglevel`: Python's level names (`DEBUG`, `INFO`, `WARNING`, `ERROR`, `CRITICAL`)
/// and tracing's (`trace`, `warn`), any case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLevel(pub LevelFilter);

impl FromStr for LogLevel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let level = match s.to_ascii_lowercase().as_str() {
            "trace" => LevelFilter::TRACE,
            "debug" => LevelFilter::DEBUG,
            "info" => LevelFilter::INFO,
            "warn" | "warning" => LevelFilter::WARN,
            "error" | "critical" => LevelFilter::ERROR,
            "off" => LevelFilter::OFF,
            _ => {
                return Err(format!(
                    "unknown log level {s:?} (DEBUG, INFO, WARNING, ERROR, CRITICAL or TRACE)"
                ));
            }
        };
        Ok(LogLevel(level))
    }
}

impl std::fmt::Display for LogLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot open log file {path}: {source}")]
pub struct LogFileError {
    pub path: PathBuf,
    pub source: io::Error,
}

/// A writer to `path` that rotates at `max_bytes`, keeping `keep` old files. The file
/// and its directory are checked first, so a bad path is an error here rather than a
/// panic inside the rotating writer.
pub fn rotating_writer(
    path: &Path,
    max_bytes: usize,
    keep: usize,
) -> Result<FileRotate<AppendCount>, LogFileError> {
    let err = |source| LogFileError {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(err)?;
    Ok(FileRotate::new(
        path,
        AppendCount::new(keep),
        ContentLimit::BytesSurpassed(max_bytes.max(1)),
        Compression::None,
        None,
    ))
}

/// Install the global subscriber: `logfile` (`-` for standard error) at `level`.
pub fn init(logfile: &Path, level: LogLevel) -> Result<(), LogFileError> {
    let builder = tracing_subscriber::fmt()
        .with_max_level(level.0)
        .with_target(false)
        .with_ansi(false);
    if logfile == Path::new("-") {
        builder.with_writer(io::stderr).init();
    } else {
        let writer = rotating_writer(logfile, MAX_BYTES, KEEP_FILES)?;
        builder.with_writer(Mutex::new(writer)).init();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn levels_accept_the_original_names() {
        for (s, want) in [
            ("DEBUG", LevelFilter::DEBUG),
            ("INFO", LevelFilter::INFO),
            ("info", LevelFilter::INFO),
            ("WARNING", LevelFilter::WARN),
            ("warn", LevelFilter::WARN),
            ("ERROR", LevelFilter::ERROR),
            ("CRITICAL", LevelFilter::ERROR),
            ("trace", LevelFilter::TRACE),
        ] {
            assert_eq!(s.parse::<LogLevel>().unwrap().0, want, "{s}");
        }
        assert!("loud".parse::<LogLevel>().is_err());
    }

    /// The real limits: 5 MB per file, five old files, whole lines in each.
    #[test]
    fn rotates_at_five_megabytes_keeping_five_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sentry.log");
        let mut w = rotating_writer(&path, MAX_BYTES, KEEP_FILES).unwrap();
        let line = format!("{}\n", "x".repeat(99)); // 100 bytes
        let lines_per_file = MAX_BYTES / line.len() + 1;
        // Enough for the live file plus seven full ones: two must have been deleted.
        for i in 0..(lines_per_file * 8) {
            let numbered = format!("{i:09}{}", &line[9..]);
            w.write_all(numbered.as_bytes()).unwrap();
        }
        w.flush().unwrap();
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "sentry.log",
                "sentry.log.1",
                "sentry.log.2",
                "sentry.log.3",
                "sentry.log.4",
                "sentry.log.5"
            ]
        );
        for n in &names[1..] {
            let text = std::fs::read_to_string(dir.path().join(n)).unwrap();
            assert!(
                text.len() > MAX_BYTES && text.len() <= MAX_BYTES + line.len(),
                "{n}: {}",
                text.len()
            );
            assert!(text.lines().all(|l| l.len() == 99), "{n} holds a cut line");
        }
        // .1 is newer than .5.
        let first = |n: &str| {
            std::fs::read_to_string(dir.path().join(n)).unwrap()[..9]
                .parse::<usize>()
                .unwrap()
        };
        assert!(first("sentry.log.1") > first("sentry.log.5"));
    }

    #[test]
    fn a_log_file_in_an_impossible_place_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("file"), "").unwrap();
        let Err(err) = rotating_writer(&dir.path().join("file/sentry.log"), 10, 1) else {
            panic!("a log file under a regular file was accepted");
        };
        assert!(err.to_string().contains("cannot open log file"), "{err}");
    }
}
