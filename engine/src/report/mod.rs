//! Reports rendered from an instance's state and event log: the documents
//! the seeds ask for, built from what actually happened, never typed by hand.
//!
//! Each report is a struct ([`Readiness`], [`GateReport`], [`Checklist`],
//! [`Certificate`], [`Ops`]) that serializes to the JSON `--format json`
//! prints and renders the Markdown of `--format md` from the same value, so
//! the two never disagree and a misspelt field is a compile error, not a
//! blank cell. Values whose key looks like a secret (token, password, ...)
//! and passwords inside URLs are redacted before anything is rendered: the
//! struct goes to JSON, is redacted there, and comes back before Markdown is
//! written.

mod certificate;
mod checklist;
mod common;
mod deployment;
mod gates;
mod ops;
mod readiness;
#[cfg(test)]
mod tests;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use certificate::{Certificate, Certificates};
pub use checklist::Checklist;
/// A verdict's name as reports write it (`pass`, `fail`, `inconclusive`, `warning`).
pub use common::verdict as verdict_name;
pub use common::{CriterionEntry, DecisionEntry, GateEntry, GateStatusEntry, PhaseStatusEntry, TaskEntry};
pub use deployment::Deployment;
pub use gates::GateReport;
pub use ops::Ops;
pub use readiness::Readiness;

use crate::machine::{EffectiveStatus, Instance, Record, Timestamp};
use crate::plan::Workflow;

/// The reports phasegate renders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The Production Readiness Report: what hardening found and whether the release is ready.
    Readiness,
    /// The gate validation report: every criterion, its values and verdict, every decision.
    Gate,
    /// The compliance checklist: Must Pass and Should Pass items with their evidence.
    Checklist,
    /// A phase completion certificate.
    Certificate,
    /// The ops report: SLIs, budgets, incidents, rollbacks, loop-backs.
    Ops,
    /// The deployment confirmation: what was deployed where, verified how,
    /// and whether it stands.
    Deployment,
}

impl Kind {
    /// Every kind, as the CLI spells it.
    pub const ALL: [(&'static str, Kind); 6] = [
        ("readiness", Kind::Readiness),
        ("gate", Kind::Gate),
        ("checklist", Kind::Checklist),
        ("certificate", Kind::Certificate),
        ("ops", Kind::Ops),
        ("deployment", Kind::Deployment),
    ];

    /// Parses a kind name; the error lists the known ones.
    pub fn parse(name: &str) -> Result<Self, String> {
        Self::ALL
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, k)| *k)
            .ok_or_else(|| format!("unknown report kind `{name}`; choose one of {}", Self::ALL.map(|(n, _)| n).join(", ")))
    }

    /// The name the CLI and the JSON use.
    pub fn name(self) -> &'static str {
        Self::ALL.iter().find(|(_, k)| *k == self).map_or("report", |(n, _)| n)
    }
}

/// A rendered report.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Structured content (`--format json`).
    pub data: Value,
    /// The same content as Markdown (`--format md`).
    pub markdown: String,
}

/// What a report is built from.
#[derive(Clone, Copy)]
pub struct Input<'a> {
    /// The instance's current state.
    pub instance: &'a Instance,
    /// Its pinned workflow.
    pub workflow: &'a Workflow,
    /// Its whole event log.
    pub history: &'a [Record],
    /// When the report is generated.
    pub now: Timestamp,
    /// For `certificate`, the phase (default: the last phase that passed);
    /// for `readiness`, the last phase covered (default: every phase started);
    /// for `deployment`, the phase that deployed (default: the latest
    /// started phase whose tasks declare a rollback step).
    pub phase: Option<&'a str>,
    /// For `ops`, the period covered: from `since` (inclusive) to `until`
    /// (exclusive); each defaults to the bound of the last calendar month.
    pub since: Option<Timestamp>,
    /// See `since`.
    pub until: Option<Timestamp>,
}

/// A time as `--since` and `--until` take it: `2026-11-01` (midnight UTC),
/// `2026-11` (the month's first day), or RFC 3339 (`2026-11-01T09:00:00Z`).
pub fn parse_instant(text: &str) -> Result<Timestamp, String> {
    use chrono::{DateTime, NaiveDate};
    let text = text.trim();
    let midnight = |date: NaiveDate| date.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp_millis());
    let millis = if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        Some(time.timestamp_millis())
    } else if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        midnight(date)
    } else if let Ok(date) = NaiveDate::parse_from_str(&format!("{text}-01"), "%Y-%m-%d") {
        midnight(date)
    } else {
        None
    };
    millis
        .and_then(|ms| u64::try_from(ms).ok())
        .map(Timestamp)
        .ok_or_else(|| format!("`{text}` is not a time: write 2026-11-01, 2026-11 or 2026-11-01T09:00:00Z (UTC or with an offset)"))
}

/// The last calendar month before `now` (UTC): its first instant and the
/// first instant of the month `now` falls in.
pub fn last_calendar_month(now: Timestamp) -> (Timestamp, Timestamp) {
    use chrono::{Datelike, NaiveDate, TimeZone, Utc};
    let today = Utc.timestamp_millis_opt(i64::try_from(now.0).unwrap_or(i64::MAX)).single().map(|t| t.date_naive());
    let bounds = today.and_then(|today| {
        let this_month = NaiveDate::from_ymd_opt(today.year(), today.month(), 1)?;
        let last_month = this_month.checked_sub_months(chrono::Months::new(1))?;
        let at = |date: NaiveDate| u64::try_from(date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis()).ok().map(Timestamp);
        Some((at(last_month)?, at(this_month)?))
    });
    bounds.unwrap_or((Timestamp(0), now))
}

/// What every report says about itself: which instance, definition and
/// status it describes, and when and from how many events it was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// The report's kind.
    pub kind: String,
    /// The instance.
    pub instance: String,
    /// The workflow's name.
    pub workflow: String,
    /// The workflow's version.
    pub workflow_version: u32,
    /// The pinned definition's content hash.
    pub definition: String,
    /// The instance's status when the report was made.
    pub status: EffectiveStatus,
    /// Who started it.
    pub started_by: String,
    /// When.
    pub started_at: String,
    /// When the report was made.
    pub generated_at: String,
    /// How many events it was made from.
    pub events: usize,
    /// The end of the instance's audit chain when the report was made, as
    /// `SEQ:HASH`: `phasegate audit verify ID --head SEQ:HASH` later proves
    /// the store still holds the log this report was made from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_head: Option<String>,
}

impl Header {
    fn of(kind: Kind, input: &Input<'_>) -> Self {
        Header {
            kind: kind.name().to_owned(),
            instance: input.instance.id.clone(),
            workflow: input.workflow.name.clone(),
            workflow_version: input.workflow.version,
            definition: input.instance.definition_hash.clone(),
            status: input.instance.effective_status(),
            started_by: input.instance.started_by.clone(),
            started_at: input.instance.started_at.to_string(),
            generated_at: input.now.to_string(),
            events: input.history.len(),
            chain_head: (!input.instance.chain.is_empty()).then(|| format!("{}:{}", input.instance.seq, input.instance.chain)),
        }
    }

    /// The title and the table that open every report.
    fn markdown(&self, out: &mut String, title: &str) {
        use std::fmt::Write as _;
        let _ = writeln!(out, "# {title}\n");
        let _ = writeln!(
            out,
            "| | |\n|---|---|\n| Instance | `{}` |\n| Workflow | {} v{} (definition `{}`) |\n| Status | {} |\n| Started | {} by {} |\n| Generated | {} from {} events |",
            self.instance,
            self.workflow,
            self.workflow_version,
            self.definition.chars().take(12).collect::<String>(),
            self.status,
            self.started_at,
            self.started_by,
            self.generated_at,
            self.events,
        );
        if let Some(head) = &self.chain_head {
            let _ = writeln!(out, "| Audit chain head | `{head}` (check: `phasegate audit verify {} --head {head}`) |", self.instance);
        }
        out.push('\n');
    }
}

/// A report: its JSON form is the struct, its Markdown is written from it.
trait Document: Serialize + DeserializeOwned {
    /// The Markdown document.
    fn markdown(&self) -> String;
}

/// Renders one report; the error says why it cannot be (a certificate for a
/// phase that has not passed, say).
pub fn render(kind: Kind, input: &Input<'_>) -> Result<Report, String> {
    if let (Some(since), Some(until)) = (input.since, input.until) {
        if since >= until {
            return Err(format!("the period is empty: --since {since} is not before --until {until}"));
        }
    }
    let header = Header::of(kind, input);
    match kind {
        Kind::Readiness => finish(&Readiness::build(input, header)?),
        Kind::Gate => finish(&GateReport::build(input, header)),
        Kind::Checklist => finish(&Checklist::build(input, header)),
        Kind::Certificate if input.phase == Some("all") => finish(&Certificates::build(input, header)?),
        Kind::Certificate => finish(&Certificate::build(input, header)?),
        Kind::Ops => finish(&Ops::build(input, header)),
        Kind::Deployment => finish(&Deployment::build(input, header)?),
    }
}

/// The JSON of a report with secrets redacted, and its Markdown written from
/// the redacted content.
fn finish<D: Document>(document: &D) -> Result<Report, String> {
    let mut data = serde_json::to_value(document).map_err(|e| format!("the report does not serialize: {e}"))?;
    redact(&mut data);
    let redacted: D = serde_json::from_value(data.clone()).map_err(|e| format!("the redacted report does not read back: {e}"))?;
    Ok(Report { markdown: redacted.markdown(), data })
}

/// Keys whose values never appear in a report.
/// True for a key whose value is a secret (a token, a password, a credential).
pub(crate) fn secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["token", "secret", "password", "passwd", "api_key", "apikey", "authorization", "credential", "private_key"]
        .iter()
        .any(|s| key.contains(s))
}

/// A line of text with secrets blotted out: each of `secrets` wherever it
/// appears, the password of every URL, and the value after a secret-looking
/// name (`token=…`, `"password": "…"`, `Authorization: Bearer …`).
pub(crate) fn redact_text(line: &str, secrets: &[String]) -> String {
    let mut text = line.to_owned();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        text = text.replace(secret.as_str(), "[redacted]");
    }
    // Passwords in URLs, every one.
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(scheme) = rest.find("://") {
        let (before, after) = rest.split_at(scheme + 3);
        out.push_str(before);
        let host_end = after.find(|c: char| c == '/' || c.is_whitespace()).unwrap_or(after.len());
        match after[..host_end].rfind('@') {
            Some(at) => {
                let user = after[..at].split(':').next().unwrap_or_default();
                out.push_str(&format!("{user}:[redacted]"));
                out.push_str(&after[at..host_end]);
            }
            None => out.push_str(&after[..host_end]),
        }
        rest = &after[host_end..];
    }
    out.push_str(rest);
    // The value after a secret-looking name and a separator.
    let mut redacted = String::with_capacity(out.len());
    let mut blot_next = false;
    for word in out.split_inclusive(char::is_whitespace) {
        let bare = word.trim_end();
        let tail = &word[bare.len()..];
        if blot_next && !bare.is_empty() {
            // `Authorization: Bearer X`: the scheme stays, the credential goes.
            if bare.eq_ignore_ascii_case("bearer") || bare.eq_ignore_ascii_case("basic") {
                redacted.push_str(word);
                continue;
            }
            redacted.push_str("[redacted]");
            redacted.push_str(tail);
            blot_next = false;
            continue;
        }
        if let Some(split) = bare.find(['=', ':']) {
            let key = bare[..split].trim_matches(|c: char| !c.is_alphanumeric() && c != '_');
            if secret_key(key) {
                let value = bare[split + 1..].trim_matches(|c: char| c == '"' || c == '\'' || c == ',');
                if value.is_empty() {
                    redacted.push_str(word);
                    blot_next = true;
                } else {
                    redacted.push_str(&bare[..=split]);
                    redacted.push_str("[redacted]");
                    redacted.push_str(tail);
                }
                continue;
            }
        }
        redacted.push_str(word);
    }
    redacted
}

/// Redacts secret-looking keys and passwords in URLs, in place.
pub fn redact(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                if secret_key(key) {
                    *item = Value::String("[redacted]".to_owned());
                } else {
                    redact(item);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        Value::String(text) => {
            if let Some(scheme) = text.find("://") {
                let rest = &text[scheme + 3..];
                let host_end = rest.find('/').unwrap_or(rest.len());
                if let Some(at) = rest[..host_end].rfind('@') {
                    let userinfo = &rest[..at];
                    let user = userinfo.split(':').next().unwrap_or_default();
                    *text = format!("{}{user}:[redacted]{}", &text[..scheme + 3], &rest[at..]);
                }
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// The index of phase `id`, or an error listing the phases.
fn phase_named(workflow: &Workflow, id: &str) -> Result<usize, String> {
    workflow.phase_index(id).ok_or_else(|| {
        format!(
            "workflow `{}` has no phase `{id}`; phases: {}",
            workflow.name,
            workflow.phases.iter().map(|p| p.id.as_str()).collect::<Vec<_>>().join(", ")
        )
    })
}
