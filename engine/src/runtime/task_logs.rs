//! What tasks print: each line an `exec` or `plugin` task (or a rollback
//! step) writes to standard output or error, kept per attempt as it is
//! written, bounded in size and with secrets redacted, for `phasegate logs`.
//!
//! Logs are files beside the store (`<data dir>/logs/<instance>/<task>/<attempt>.jsonl`,
//! one JSON object per line: `{"at", "stream", "line"}`), not records in it:
//! they are what a program said, not state the engine decides by, and they
//! can be large. An engine with no data directory (an in-memory store)
//! keeps none. A re-dispatched attempt (after a crash) appends to its file.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use phasegate_agents::{LogSink, LogStream, TaskRequest};
use serde::{Deserialize, Serialize};

use super::Error;
use crate::machine::Timestamp;

/// Most bytes of log kept per attempt; past it one line says so and the rest is dropped.
pub const MAX_LOG_BYTES: u64 = 1024 * 1024;

/// The directory, under a data directory, that holds task logs.
pub const LOGS_DIR: &str = "logs";

/// One line a task printed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// When it was written (milliseconds since the epoch, as every timestamp).
    pub at: Timestamp,
    /// stdout or stderr.
    pub stream: LogStream,
    /// The line, without its line ending, secrets redacted.
    pub line: String,
}

/// One attempt's log, from a line on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptLog {
    /// The task (or rollback step).
    pub task: String,
    /// The attempt.
    pub attempt: u32,
    /// The lines from `from` on.
    pub lines: Vec<LogLine>,
    /// The index of the first line returned (lines before it were asked to be skipped).
    pub from: usize,
}

fn safe(part: &str) -> bool {
    !part.is_empty() && part != "." && part != ".." && !part.contains(['/', '\\', '\0'])
}

/// The file of one attempt's log.
fn file(root: &Path, instance: &str, task: &str, attempt: u32) -> Option<PathBuf> {
    (safe(instance) && safe(task)).then(|| root.join(instance).join(task).join(format!("{attempt}.jsonl")))
}

/// The values to blot out of an attempt's lines: its parameters (and
/// environment) under secret-looking names.
fn secrets(request: &TaskRequest) -> Vec<String> {
    fn walk(value: &serde_json::Value, secret: bool, out: &mut Vec<String>) {
        match value {
            serde_json::Value::String(text) if secret && text.len() >= 4 => out.push(text.clone()),
            serde_json::Value::Object(map) => {
                for (key, item) in map {
                    walk(item, secret || crate::report::secret_key(key), out);
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|item| walk(item, secret, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(&serde_json::Value::Object(request.params.clone()), false, &mut out);
    out
}

/// A sink that keeps `request`'s lines in its attempt's file; one that
/// keeps nothing when there is no directory or the names cannot be files.
pub(crate) fn sink(root: Option<&Path>, request: &TaskRequest, clock: Arc<dyn super::Clock>) -> LogSink {
    let Some(path) = root.and_then(|root| file(root, &request.instance, &request.task, request.attempt)) else {
        return Arc::new(|_, _| {});
    };
    let secrets = secrets(request);
    let state: Mutex<(Option<std::fs::File>, u64, bool)> = Mutex::new((None, 0, false));
    Arc::new(move |stream, line| {
        let Ok(mut state) = state.lock() else { return };
        let (file, written, full) = &mut *state;
        if *full {
            return;
        }
        if file.is_none() {
            let opened = path
                .parent()
                .map(std::fs::create_dir_all)
                .transpose()
                .and_then(|_| std::fs::OpenOptions::new().create(true).append(true).open(&path));
            match opened {
                Ok(opened) => {
                    *written = opened.metadata().map_or(0, |m| m.len());
                    *file = Some(opened);
                }
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "cannot keep the task's log");
                    *full = true;
                    return;
                }
            }
        }
        let (text, stream) = if *written >= MAX_LOG_BYTES {
            *full = true;
            (format!("[phasegate: the log reached {MAX_LOG_BYTES} bytes; later lines were dropped]"), LogStream::Stderr)
        } else {
            (crate::report::redact_text(line, &secrets), stream)
        };
        let entry = LogLine { at: clock.now(), stream, line: text };
        let Ok(mut bytes) = serde_json::to_vec(&entry) else { return };
        bytes.push(b'\n');
        if let Some(file) = file.as_mut() {
            if file.write_all(&bytes).is_ok() {
                *written += bytes.len() as u64;
            }
        }
    })
}

/// The attempts of `task` of `instance` that have logs, in order.
fn attempts(root: &Path, instance: &str, task: &str) -> Vec<u32> {
    let Some(dir) = file(root, instance, task, 1).and_then(|f| f.parent().map(Path::to_path_buf)) else { return Vec::new() };
    let mut found: Vec<u32> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_suffix(".jsonl")).and_then(|n| n.parse().ok()))
                .collect()
        })
        .unwrap_or_default();
    found.sort_unstable();
    found
}

/// The logs of instance `instance`: of `task` (every task with a log when
/// none is named), of `attempt` (the latest when none is named), from line
/// `from` of each.
pub(crate) fn read(
    root: Option<&Path>,
    instance: &str,
    task: Option<&str>,
    attempt: Option<u32>,
    from: usize,
) -> Result<Vec<AttemptLog>, Error> {
    let Some(root) = root else { return Ok(Vec::new()) };
    let tasks: Vec<String> = match task {
        Some(task) => vec![task.to_owned()],
        None => {
            let mut names: Vec<(std::time::SystemTime, String)> = std::fs::read_dir(root.join(instance))
                .map(|entries| {
                    entries
                        .flatten()
                        .filter_map(|e| {
                            let name = e.file_name().to_str()?.to_owned();
                            Some((e.metadata().and_then(|m| m.created().or_else(|_| m.modified())).ok()?, name))
                        })
                        .collect()
                })
                .unwrap_or_default();
            names.sort();
            names.into_iter().map(|(_, name)| name).collect()
        }
    };
    let mut out = Vec::new();
    for task in tasks {
        let known = attempts(root, instance, &task);
        let Some(attempt) = attempt.or_else(|| known.last().copied()) else { continue };
        if !known.contains(&attempt) {
            if attempt > 0 && !known.is_empty() {
                return Err(Error::Invalid(format!(
                    "task `{task}` has logs of attempt {} only, not of attempt {attempt}",
                    known.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
                )));
            }
            continue;
        }
        let Some(path) = file(root, instance, &task, attempt) else { continue };
        let text = std::fs::read_to_string(&path).map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
        let lines = text.lines().skip(from).filter_map(|l| serde_json::from_str::<LogLine>(l).ok()).collect();
        out.push(AttemptLog { task, attempt, lines, from });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_blotted_out_of_log_lines() {
        let secrets = vec!["s3cr3t-value".to_owned()];
        let cases = [
            ("deploying with s3cr3t-value now", "deploying with [redacted] now"),
            ("GET https://ops:hunter2@example.com/x ok", "GET https://ops:[redacted]@example.com/x ok"),
            ("token=abc123 next", "token=[redacted] next"),
            ("{\"password\": \"pw\", \"user\": \"u\"}", "{\"password\": [redacted] \"user\": \"u\"}"),
            ("Authorization: Bearer eyJabc", "Authorization: Bearer [redacted]"),
            ("nothing secret here: 42", "nothing secret here: 42"),
        ];
        for (line, want) in cases {
            assert_eq!(crate::report::redact_text(line, &secrets), want, "{line}");
        }
    }

    #[test]
    fn an_attempt_log_is_kept_bounded_and_read_back_from_a_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut params = serde_json::Map::new();
        params.insert("env".to_owned(), serde_json::json!({"API_TOKEN": "tok-123456"}));
        let request =
            TaskRequest { instance: "i1".into(), task: "deploy".into(), attempt: 2, idempotency_key: "k".into(), params, timeout: None };
        let clock: Arc<dyn super::super::Clock> = Arc::new(super::super::ManualClock::at(Timestamp(5)));
        let log = sink(Some(dir.path()), &request, clock);
        log(LogStream::Stdout, "step 1");
        log(LogStream::Stderr, "using tok-123456");
        let read = read(Some(dir.path()), "i1", None, None, 0).expect("read");
        assert_eq!(read.len(), 1);
        assert_eq!((read[0].task.as_str(), read[0].attempt), ("deploy", 2));
        assert_eq!(read[0].lines[1].line, "using [redacted]", "the env's secret is redacted");
        assert_eq!(super::read(Some(dir.path()), "i1", Some("deploy"), None, 1).expect("read")[0].lines.len(), 1, "from a line");
        assert!(super::read(Some(dir.path()), "i1", Some("deploy"), Some(7), 0).is_err(), "an attempt with no log is named");
        // Past the bound, one line says so and nothing more is kept.
        let big = "x".repeat(64 * 1024);
        for _ in 0..20 {
            log(LogStream::Stdout, &big);
        }
        let size = std::fs::metadata(dir.path().join("i1/deploy/2.jsonl")).expect("file").len();
        assert!(size <= MAX_LOG_BYTES + 70 * 1024, "bounded: {size}");
        let lines = super::read(Some(dir.path()), "i1", Some("deploy"), None, 0).expect("read").remove(0).lines;
        assert!(lines.last().is_some_and(|l| l.line.contains("later lines were dropped")));
        assert!(
            file(dir.path(), "i1", "../escape", 1).is_none() && file(dir.path(), "..", "t", 1).is_none(),
            "names never leave the directory"
        );
    }
}
