//! Gate state: criteria evaluations, human decisions and where a gate
//! stands; who may decide is [`approval`](super::approval).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Timestamp;
use crate::expr::Outcome;
use crate::plan::{self, Level, Principal};

/// How one criterion came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The condition holds.
    Pass,
    /// The condition does not hold (or cannot be applied to the evidence).
    Fail,
    /// The evidence it reads is missing: a person must judge.
    Inconclusive,
    /// The condition does not hold but its looser `warning` condition does:
    /// half its weight in a score, and a warning for approvers.
    Warning,
}

/// One criterion's result, with the evidence it read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CriterionResult {
    /// The criterion's id.
    pub id: String,
    /// Its label, with any `{{ vars.NAME }}` in it replaced by the value in
    /// force when it was evaluated.
    pub label: String,
    /// Must or should.
    pub level: Level,
    /// The condition as written.
    pub condition: String,
    /// How it came out.
    pub verdict: Verdict,
    /// Why, when it did not pass.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// The values of the evidence the condition reads (absent ones are missing).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub values: BTreeMap<String, Value>,
    /// Where those values came from, as the task that reported them said
    /// (its output's `sources`): a measurement over which window, a team
    /// record from which file. Values without a stated source are absent.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sources: BTreeMap<String, String>,
    /// Its weight in the gate's score.
    #[serde(default = "one")]
    pub weight: f64,
    /// What it contributed to the score: its weight when it passed, half
    /// when it warned, nothing otherwise.
    #[serde(default)]
    pub points: f64,
    /// For evidence compared with a baseline: the relative change from the
    /// baseline value (`tasks.perf.output.p95_ms` → 0.12 is 12 % more).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub deltas: BTreeMap<String, f64>,
}

fn one() -> f64 {
    1.0
}

/// A scored gate's total.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// Points earned.
    pub points: f64,
    /// Points possible (the sum of the weights).
    pub total: f64,
    /// `points / total`, in percent.
    pub percent: f64,
    /// The bands it was judged against.
    pub bands: plan::ScoreBands,
    /// Where it fell.
    pub band: Band,
}

/// Where a score fell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Band {
    /// At or above the pass band.
    Pass,
    /// In the warning band: a person decides.
    Warning,
    /// Below the warning band: the gate fails.
    Fail,
}

impl Band {
    /// The band's name, as definitions, output and reports write it.
    pub fn name(self) -> &'static str {
        match self {
            Band::Pass => "pass",
            Band::Warning => "warning",
            Band::Fail => "fail",
        }
    }
}

/// A criterion's label with each `{{ vars.NAME }}` replaced by the
/// instance's value (`vars`), so a `--var` override shows in the label as
/// well as in the check.
pub fn label_in_force(label: &str, vars: &serde_json::Map<String, Value>) -> String {
    if !label.contains("{{") {
        return label.to_owned();
    }
    let empty = serde_json::Map::new();
    let context = crate::template::Context { vars, decisions: &empty, instance: "" };
    match crate::template::render_text(label, context) {
        Value::String(text) => text,
        other => other.to_string(),
    }
}

/// A gate's criteria, evaluated at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Each criterion, in definition order.
    pub criteria: Vec<CriterionResult>,
    /// The total score, for a scored gate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<Score>,
}

impl Evaluation {
    /// Evaluates a gate's criteria against the evidence.
    pub fn of(gate: &plan::Gate, evidence: &serde_json::Map<String, Value>) -> Self {
        let criteria: Vec<CriterionResult> = gate
            .criteria
            .iter()
            .map(|criterion| {
                let (outcome, mut values) = criterion.expr.evaluate_with_values(evidence);
                let mut sources = criterion.expr.sources(evidence);
                let (mut verdict, mut detail) = match outcome {
                    Outcome::True => (Verdict::Pass, String::new()),
                    Outcome::False => (Verdict::Fail, "the condition is false".to_owned()),
                    Outcome::Missing(why) => (Verdict::Inconclusive, why),
                    Outcome::Error(why) => (Verdict::Fail, why),
                };
                if let (Verdict::Fail, Some(warning)) = (verdict, &criterion.warning) {
                    let (outcome, more) = warning.evaluate_with_values(evidence);
                    values.extend(more);
                    sources.extend(warning.sources(evidence));
                    if outcome == Outcome::True {
                        verdict = Verdict::Warning;
                        detail = format!("within the warning condition `{}`", warning.source());
                    }
                }
                let points = match verdict {
                    Verdict::Pass => criterion.weight,
                    Verdict::Warning => criterion.weight / 2.0,
                    Verdict::Fail | Verdict::Inconclusive => 0.0,
                };
                let deltas = values
                    .iter()
                    .filter_map(|(key, base)| {
                        let current = values.get(key.strip_prefix("baseline.")?)?.as_f64()?;
                        let base = base.as_f64().filter(|b| *b != 0.0)?;
                        Some((key["baseline.".len()..].to_owned(), (current - base) / base.abs()))
                    })
                    .collect();
                CriterionResult {
                    id: criterion.id.clone(),
                    label: label_in_force(
                        &criterion.label,
                        evidence.get("vars").and_then(Value::as_object).unwrap_or(&serde_json::Map::new()),
                    ),
                    level: criterion.level,
                    condition: criterion.expr.source().to_owned(),
                    verdict,
                    detail,
                    values,
                    sources,
                    weight: criterion.weight,
                    points,
                    deltas,
                }
            })
            .collect();
        let score = gate.score.map(|bands| {
            let total: f64 = criteria.iter().map(|c| c.weight).sum();
            let points: f64 = criteria.iter().map(|c| c.points).sum();
            let percent = if total > 0.0 { (points / total * 1000.0).round() / 10.0 } else { 0.0 };
            let band = if percent >= bands.pass {
                Band::Pass
            } else if percent >= bands.warning {
                Band::Warning
            } else {
                Band::Fail
            };
            Score { points, total, percent, bands, band }
        });
        Self { criteria, score }
    }

    /// The first failed `must` criterion.
    pub fn failed_must(&self) -> Option<&CriterionResult> {
        self.criteria.iter().find(|c| c.level == Level::Must && c.verdict == Verdict::Fail)
    }

    /// True if some criterion could not be judged.
    pub fn inconclusive(&self) -> bool {
        self.criteria.iter().any(|c| c.verdict == Verdict::Inconclusive)
    }

    /// Failed `should` criteria: warnings for the approver.
    pub fn warnings(&self) -> impl Iterator<Item = &CriterionResult> {
        self.criteria.iter().filter(|c| (c.level == Level::Should && c.verdict == Verdict::Fail) || c.verdict == Verdict::Warning)
    }
}

/// What a person (or a deadline) decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionKind {
    /// Counts toward the quorum; at the quorum the gate passes.
    Approve,
    /// The gate fails.
    Reject,
    /// The phase goes on hold for remediation.
    Hold,
    /// The decision moves to the next escalation level.
    Escalate,
}

impl DecisionKind {
    /// The verb, as the CLI spells it.
    pub fn verb(self) -> &'static str {
        match self {
            DecisionKind::Approve => "approve",
            DecisionKind::Reject => "reject",
            DecisionKind::Hold => "hold",
            DecisionKind::Escalate => "escalate",
        }
    }

    /// The past tense, for messages.
    pub fn past(self) -> &'static str {
        match self {
            DecisionKind::Approve => "approved",
            DecisionKind::Reject => "rejected",
            DecisionKind::Hold => "held",
            DecisionKind::Escalate => "escalated",
        }
    }
}

/// How the principal of a decision was established: what the record proves
/// about who decided (docs/trust.md).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum Authentication {
    /// Recorded before phasegate kept how deciders were authenticated.
    #[default]
    Unrecorded,
    /// Named by a caller holding the store (the CLI with no server, or an
    /// embedding program): asserted, not proven.
    Local,
    /// The server checked a per-user API token; `token` is its id (the
    /// first 12 hex digits of its SHA-256, never the token).
    Token {
        /// The token's id, as `phasegate users list` shows it.
        token: String,
    },
    /// A trusted authenticating proxy named the principal.
    Proxy {
        /// The header it named the principal in.
        header: String,
        /// The proxy's address the request came from.
        proxy: String,
    },
    /// The engine itself: a deadline's default answer.
    Engine,
}

impl Authentication {
    /// True for records made before authentication was recorded.
    pub fn is_unrecorded(&self) -> bool {
        *self == Authentication::Unrecorded
    }

    /// True if a credential proved the principal (a token or a trusted proxy).
    pub fn is_authenticated(&self) -> bool {
        matches!(self, Authentication::Token { .. } | Authentication::Proxy { .. } | Authentication::Engine)
    }
}

impl std::fmt::Display for Authentication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Authentication::Unrecorded => f.write_str("not recorded (decided before phasegate recorded authentication)"),
            Authentication::Local => f.write_str("asserted (local, unauthenticated)"),
            Authentication::Token { token } => write!(f, "token {token}"),
            Authentication::Proxy { header, proxy } => write!(f, "proxy {proxy} ({header})"),
            Authentication::Engine => f.write_str("phasegate (deadline default)"),
        }
    }
}

/// One recorded decision: who, what, when, why, and what they saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// What was decided.
    pub kind: DecisionKind,
    /// Who decided (`phasegate` for a deadline's default answer).
    pub principal: String,
    /// How the principal was established.
    #[serde(default, skip_serializing_if = "Authentication::is_unrecorded")]
    pub auth: Authentication,
    /// The approver entry that allowed it (`alice` or `role:sre`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub via: String,
    /// Their comment.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub comment: String,
    /// The client's request id: repeating it returns this decision.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub request_id: String,
    /// The escalation level it was made at (0 = the gate's own approvers).
    pub level: usize,
    /// The criteria results the decider saw (id → verdict).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub seen: BTreeMap<String, Verdict>,
    /// The inputs an approval carried (declared by the gate's `inputs`),
    /// defaults filled in: what conditions read as `decisions.<gate>.inputs`.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub inputs: serde_json::Map<String, serde_json::Value>,
}

/// Where a gate stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, strum::EnumDiscriminants)]
#[serde(tag = "status", rename_all = "snake_case")]
#[strum_discriminants(name(GateKind), vis(pub), derive(Hash, PartialOrd, Ord, strum::IntoStaticStr, strum::VariantArray))]
#[strum_discriminants(
    strum(serialize_all = "snake_case"),
    doc = "The kinds of gate status, without their data: what the transition table is declared over."
)]
pub enum GateStatus {
    /// Not evaluated yet.
    Pending,
    /// Waiting for people.
    AwaitingDecision {
        /// Since when.
        since: Timestamp,
        /// The escalation level (0 = the gate's own approvers).
        level: usize,
        /// When the level's deadline falls, if it has one.
        deadline: Option<Timestamp>,
        /// Approvals so far at this level.
        approvals: Vec<String>,
    },
    /// On hold for remediation.
    OnHold {
        /// Since when.
        since: Timestamp,
        /// Who put it on hold.
        by: String,
    },
    /// Passed.
    Passed {
        /// When.
        at: Timestamp,
        /// Who approved it (empty when the criteria alone passed it).
        by: Vec<String>,
    },
    /// Failed.
    Failed {
        /// When.
        at: Timestamp,
        /// Why.
        reason: String,
    },
}

impl GateStatus {
    /// The variant's name.
    pub fn kind(&self) -> &'static str {
        GateKind::from(self).into()
    }
}

/// A gate within a phase attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateState {
    /// Its id.
    pub id: String,
    /// Where it stands.
    pub status: GateStatus,
    /// The latest evaluation of its criteria.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluation: Option<Evaluation>,
    /// Every decision recorded, in order (deadline answers included).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub decisions: Vec<(Timestamp, Decision)>,
}

impl GateState {
    /// A gate not yet evaluated.
    pub fn new(id: &str) -> Self {
        Self { id: id.to_owned(), status: GateStatus::Pending, evaluation: None, decisions: Vec::new() }
    }

    /// The approvals of the open wait with the approver entry each was
    /// given through (`role:sre`), from the latest approval by that
    /// principal: what per-role counting needs. Empty unless awaiting a decision.
    pub fn approvals_via(&self) -> Vec<(String, String)> {
        let GateStatus::AwaitingDecision { approvals, .. } = &self.status else {
            return Vec::new();
        };
        approvals
            .iter()
            .map(|principal| {
                let via = self
                    .decisions
                    .iter()
                    .rev()
                    .find(|(_, d)| d.kind == DecisionKind::Approve && &d.principal == principal)
                    .map_or_else(|| principal.clone(), |(_, d)| d.via.clone());
                (principal.clone(), via)
            })
            .collect()
    }

    /// The decision recorded under a client's request id, if any.
    pub fn decision_with_request(&self, request_id: &str) -> Option<&(Timestamp, Decision)> {
        if request_id.is_empty() {
            return None;
        }
        self.decisions.iter().find(|(_, d)| d.request_id == request_id)
    }

    /// The latest decision that settled the gate (or put it on hold), for
    /// "already decided by X at T".
    pub fn settling_decision(&self) -> Option<&(Timestamp, Decision)> {
        self.decisions.iter().rev().find(|(_, d)| d.kind != DecisionKind::Escalate)
    }
}

/// Role membership from the configuration: role name → principals.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Roles(pub BTreeMap<String, BTreeSet<String>>);

impl Roles {
    /// The approver entry that lets `principal` decide, if any.
    pub fn allows(&self, approvers: &[Principal], principal: &str) -> Option<String> {
        approvers.iter().find_map(|approver| match approver {
            Principal::User(name) if name == principal => Some(name.clone()),
            Principal::Role(role) if self.0.get(role).is_some_and(|members| members.contains(principal)) => Some(format!("role:{role}")),
            Principal::User(_) | Principal::Role(_) => None,
        })
    }

    /// Whether `principal` holds the role or is the named principal.
    pub fn matches(&self, approver: &Principal, principal: &str) -> bool {
        self.allows(std::slice::from_ref(approver), principal).is_some()
    }
}
