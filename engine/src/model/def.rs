//! The definition format as written by people: plain serde types, one model for
//! TOML and JSON.
//!
//! These types accept anything that has the right *shape*. Durations,
//! expressions, references and graph structure stay strings here; turning them
//! into checked values is the job of [`crate::plan::validate`], which reports
//! every problem at once instead of stopping at the first. The doc comments on
//! fields are also the descriptions in the generated JSON Schema.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A workflow definition: named, versioned, a DAG of phases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "phasegate workflow definition")]
pub struct WorkflowDef {
    /// Name of the workflow; instances, baselines and reports are grouped by it.
    pub name: String,
    /// Version of this definition, bumped by its authors when they change it.
    #[serde(default = "default_version")]
    pub version: u32,
    /// What the workflow is for.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Who owns the workflow: principals or `role:NAME` entries who may
    /// start, halt, resume, cancel, retry, roll back, signal and advance its
    /// instances through the server, unless phasegate.toml's `[permissions]`
    /// names who may (the admin credential always may).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owners: Vec<String>,
    /// Variables with typed defaults, overridable at start with `--var name=value`.
    /// Conditions read them as `vars.<name>`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub vars: BTreeMap<String, VarDef>,
    /// External events the workflow accepts (`phasegate signal ID NAME`).
    /// Conditions read the latest one as `signals.<name>`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub signals: BTreeMap<String, SignalDef>,
    /// The phases; `after` edges between them form a DAG.
    pub phases: Vec<PhaseDef>,
    /// Watches that outlive one phase: live for the whole instance, or for
    /// the span of phases their `from` and `until` name (an uptime or
    /// error-rate watch from launch until the end, say).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub watches: Vec<WatchDef>,
    /// Triggers that outlive one phase (an incident signal acted on whenever
    /// the release is live), live for the span their `from` and `until` name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub triggers: Vec<TriggerDef>,
    /// The longest the whole instance may take, from its start, and what
    /// happens when that time passes (like Argo's `activeDeadlineSeconds`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<DeadlineDef>,
    /// The workflow's notification step (usually a `webhook`), so people
    /// hear of everything that needs them: it is sent when a gate or a
    /// trigger's halt starts waiting for a person, escalates or times out
    /// (unless that approval names its own `notify`), and when a trigger
    /// acts (an auto-rollback, a loop-back, a task it starts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<StepDef>,
}

/// An overall deadline: once `after` has passed since the phase (or the
/// instance) started and it is still not done, `outcome` happens, once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DeadlineDef {
    /// How long, e.g. `"4h"`, or `"{{ vars.NAME }}"` naming a duration variable.
    pub after: String,
    /// What happens when it passes: `fail` (the default), `rollback` or `halt`.
    #[serde(default)]
    pub outcome: DeadlineOutcome,
}

/// What a deadline does when it passes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema, strum::IntoStaticStr)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum DeadlineOutcome {
    /// The phase (or every active phase) fails; `retry` redrives it.
    #[default]
    Fail,
    /// The instance rolls back its completed work and ends rolled back.
    Rollback,
    /// The instance halts for a person; `resume` lets it go on.
    Halt,
}

impl DeadlineOutcome {
    /// The name the definition writes (`fail`, `rollback`, `halt`).
    pub fn name(self) -> &'static str {
        self.into()
    }
}

fn default_version() -> u32 {
    1
}

/// A variable: either a bare default value (its type is the value's type) or a
/// table with `type`, `default` and `description`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum VarDef {
    /// `name = { type = "number", default = 0.1, description = "..." }`
    Typed(TypedVarDef),
    /// `name = 0.1`
    Plain(Value),
}

impl<'de> Deserialize<'de> for VarDef {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        let typed = value.as_object().is_some_and(|table| table.contains_key("type") || table.contains_key("default"));
        if typed {
            TypedVarDef::deserialize(value).map(VarDef::Typed).map_err(serde::de::Error::custom)
        } else {
            Ok(VarDef::Plain(value))
        }
    }
}

impl JsonSchema for VarDef {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "VarDef".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let typed = generator.subschema_for::<TypedVarDef>();
        schemars::json_schema!({
            "description": "A bare default value, or a table with `type`, `default` and `description`.",
            "anyOf": [typed, {}]
        })
    }
}

/// The long form of a variable.
///
/// Unknown fields are refused here by serde itself because the enclosing
/// [`VarDef`] is decoded through an untyped value, out of reach of the
/// unknown-field tracking the loader does everywhere else.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TypedVarDef {
    /// The value's type; inferred from `default` when omitted.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub ty: Option<VarType>,
    /// The default; a variable without one must be given at start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// What the variable means, shown in `phasegate status` and reports.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// For a number or integer: the smallest value accepted (a share is
    /// `min = 0.0, max = 1.0`, so `10` for 10 % is refused, not a threshold
    /// that never breaches).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// For a number or integer: the largest value accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// For a string: the fewest characters accepted (1: not empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_length: Option<usize>,
}

/// The types a variable can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum VarType {
    /// Text.
    String,
    /// Any number, integer or not.
    Number,
    /// A whole number.
    Integer,
    /// `true` or `false`.
    Boolean,
    /// A list of values.
    List,
    /// A table of values.
    Object,
    /// A humane duration string such as `"2m"`.
    Duration,
}

/// An external event the workflow accepts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SignalDef {
    /// What the signal means and what its data holds.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// A phase: tasks, the gates that decide whether it passed, watches that sample
/// metrics while it runs, triggers that react to events, and rollback steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PhaseDef {
    /// Unique id, used by `after`, `goto` and conditions (`phases.<id>`).
    pub id: String,
    /// Human title.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub title: String,
    /// What the phase is for.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The accountable role or principal, e.g. `role:qa-director`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Phases that must pass before this one starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<String>,
    /// The work of the phase; `depends_on` edges between tasks form a DAG.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<TaskDef>,
    /// Quality gates evaluated when the tasks are done.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gates: Vec<GateDef>,
    /// Metrics sampled while the phase is active.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub watches: Vec<WatchDef>,
    /// Reactions to watches firing, failures and signals.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub triggers: Vec<TriggerDef>,
    /// Steps that undo the phase, run after the compensations of its tasks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rollback: Vec<StepDef>,
    /// Run the phase again as a new cycle after it passes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleDef>,
    /// The longest one attempt of the phase may take, from its start (or
    /// its redrive), and what happens when that time passes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<DeadlineDef>,
}

/// A unit of work dispatched to an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TaskDef {
    /// Unique id across the workflow (conditions read `tasks.<id>.output`).
    pub id: String,
    /// Human title.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub title: String,
    /// The agent that runs the task, e.g. `exec`, `http`, `prometheus`; or
    /// `wait`, the engine's durable timer (`params = { duration = "2w" }`):
    /// no agent runs, the time it ends is recorded, and a restart resumes
    /// it with the time left.
    pub agent: String,
    /// Parameters for the agent (a table; its shape is the agent's contract).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub params: Map<String, Value>,
    /// Tasks of the same phase that must succeed first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// Longest time one attempt may run, e.g. `"10m"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// How failed attempts are retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryDef>,
    /// The accountable role or principal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Only run the task when this condition holds when it becomes ready;
    /// otherwise it is skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// Not dispatched when the phase starts; only a trigger's `run` action starts it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub on_demand: bool,
    /// The compensation that undoes this task when the workflow rolls back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<StepDef>,
}

/// Retry policy: exponential backoff with jitter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RetryDef {
    /// Attempts in all, the first included (1 = no retry).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Delay before the first retry.
    #[serde(default = "default_initial")]
    pub initial: String,
    /// Upper bound of the delay.
    #[serde(default = "default_max_delay")]
    pub max: String,
    /// Factor applied to the delay after each retry (at least 1).
    #[serde(default = "default_multiplier")]
    pub multiplier: f64,
    /// Fraction of each delay that is randomised, from 0 (none) to 1.
    #[serde(default = "default_jitter")]
    pub jitter: f64,
}

fn default_max_attempts() -> u32 {
    3
}
fn default_initial() -> String {
    "1s".to_owned()
}
fn default_max_delay() -> String {
    "5m".to_owned()
}
fn default_multiplier() -> f64 {
    2.0
}
fn default_jitter() -> f64 {
    0.2
}

impl Default for RetryDef {
    fn default() -> Self {
        Self {
            max_attempts: 1,
            initial: default_initial(),
            max: default_max_delay(),
            multiplier: default_multiplier(),
            jitter: default_jitter(),
        }
    }
}

/// A step run by an agent outside the task graph: a compensation, a phase
/// rollback step or a notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StepDef {
    /// Id, required for phase rollback steps (they are reported by it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Human title.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub title: String,
    /// The agent that runs the step.
    pub agent: String,
    /// Parameters for the agent.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub params: Map<String, Value>,
    /// Longest time one attempt may run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// How failed attempts are retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryDef>,
}

/// A quality gate: criteria over the evidence, and optionally a human decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GateDef {
    /// Unique id within the phase.
    pub id: String,
    /// Human title.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub title: String,
    /// Conditions the evidence must (or should) meet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub criteria: Vec<CriterionDef>,
    /// A human decision required after the criteria are evaluated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalDef>,
    /// A total score over the weighted criteria, with pass and warning bands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<ScoreDef>,
}

/// Score bands of a gate, in percent of the total weight: at or above `pass`
/// the gate passes; at or above `warning` it halts for a person with the
/// breakdown; below `warning` it fails.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ScoreDef {
    /// The pass band's lower bound, 0 to 100.
    pub pass: f64,
    /// The warning band's lower bound, 0 to `pass`.
    #[serde(default)]
    pub warning: f64,
}

/// One criterion of a gate: exactly one of `must` or `should`, and a label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CriterionDef {
    /// Optional id, for reports and scripts; defaults to the criterion's position.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// A condition that must hold; if it fails, the gate fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub must: Option<String>,
    /// A condition that should hold; if it fails, approvers see a warning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub should: Option<String>,
    /// What the criterion means, in words a person reads in reports.
    pub label: String,
    /// Its weight in the gate's score (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<f64>,
    /// A looser condition: when the criterion fails but this holds, it is a
    /// warning (half its weight in the score) rather than a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// Who must decide at a gate, how many of them, and what happens when nobody does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ApprovalDef {
    /// Principals (`alice`) or roles (`role:qa-director`) allowed to decide.
    /// May be empty when `required_from` says who decides.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvers: Vec<String>,
    /// Approvals needed (N of M) from `approvers`; different principals each count once.
    #[serde(default = "default_required")]
    pub required: u32,
    /// Approvals needed from each of several roles (or principals) at once,
    /// each counted separately, one principal counting once:
    /// `{ "role:human-command-group" = 1, "role:business-stakeholder" = 1 }`.
    /// With `approvers` as well, both are needed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub required_from: BTreeMap<String, u32>,
    /// Whether the person who started the instance may approve it.
    #[serde(default)]
    pub self_approval: bool,
    /// How long to wait for the decision before `on_timeout` applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// What happens at the deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_timeout: Option<OnTimeout>,
    /// Levels to escalate to, in order, each with its own approvers and deadline.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub escalation: Vec<EscalationLevelDef>,
    /// Whether every decision must carry a comment.
    #[serde(default)]
    pub comment_required: bool,
    /// A step (usually a `webhook`) run when the gate starts waiting, escalates or times out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<StepDef>,
    /// Data an approval must carry (a launch window, a region list, a chosen
    /// variant), typed like variables: `phasegate approve ... --input
    /// window=2026-12-03T09:00Z`. Conditions and task parameters read the
    /// approved values as `decisions.<gate>.inputs.<name>`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<String, InputDef>,
}

/// One input a decision carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct InputDef {
    /// The value's type; inferred from `default` or `options` when omitted.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub ty: Option<VarType>,
    /// The value used when an approval does not give one; without it the input is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// The only values allowed (a choice, such as the rollout variant); a
    /// gate "branches" when later tasks' `when` read the chosen one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<Value>,
    /// What the input means, shown to the people who decide.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

fn default_required() -> u32 {
    1
}

/// What an approval does at its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, strum::IntoStaticStr)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum OnTimeout {
    /// Move to the next escalation level.
    Escalate,
    /// Reject: the gate fails.
    Reject,
    /// Put the phase on hold for remediation.
    Hold,
    /// Approve: the stated default answer.
    Approve,
}

impl OnTimeout {
    /// The name the definition writes (`escalate`, `reject`, `hold`, `approve`).
    pub fn name(self) -> &'static str {
        self.into()
    }
}

/// One level of an escalation chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EscalationLevelDef {
    /// Principals or roles allowed to decide at this level.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvers: Vec<String>,
    /// Approvals needed at this level.
    #[serde(default = "default_required")]
    pub required: u32,
    /// Approvals needed from each of several roles at this level, as for the approval.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub required_from: BTreeMap<String, u32>,
    /// How this level's approvers join the decision: `replace` (they decide
    /// instead of the level before), `must` (their approvals are needed as
    /// well as the level before's), or `may` (they can pass the wait on
    /// their own, and the level before still can). Approvals given so far
    /// keep counting under `must` and `may`.
    #[serde(default)]
    pub join: EscalationJoin,
    /// Deadline of this level; `on_timeout` applies again at it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// What happens at this level's deadline (default: the approval's
    /// `on_timeout`), so a chain can escalate and, if nobody at the last
    /// level decides either, approve: a rollback decision that rolls back
    /// when nobody answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_timeout: Option<OnTimeout>,
}

/// How an escalation level's approvers join the decision.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EscalationJoin {
    /// The level's approvers decide instead of the level before's.
    #[default]
    Replace,
    /// The level's approvals are needed as well as the level before's.
    Must,
    /// The level's approvers may pass the wait on their own; the level
    /// before's still can.
    May,
}

/// Samples a metric while its phase is active and fires when a condition holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WatchDef {
    /// Unique id within the phase; triggers name it in `on`, conditions read `metrics.<id>`.
    pub id: String,
    /// Human title.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub title: String,
    /// The agent that takes a sample (e.g. `prometheus`); its output's `value` is the sample.
    pub agent: String,
    /// Parameters for the agent.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub params: Map<String, Value>,
    /// Time between samples.
    pub interval: String,
    /// The breach condition over `value` (the sample) and the usual names.
    pub condition: String,
    /// How long the condition must hold without a break before the watch fires.
    #[serde(rename = "for", default, skip_serializing_if = "Option::is_none")]
    pub for_: Option<String>,
    /// Fire after this many breaching samples in a row (whichever of this and `for` comes first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_failures: Option<u32>,
    /// What a missing sample counts as.
    #[serde(default)]
    pub no_data: NoDataPolicy,
    /// Longest time one sample may take before it counts as missing
    /// (default: the interval, and at least 10s): slow evidence is not bad
    /// evidence, so this is the watch's own setting, not its interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Workflow-level watches only: the phase whose start makes the watch
    /// live (default: the instance's start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Workflow-level watches only: the phase whose passing ends the watch
    /// (default: the end of the instance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}

/// What a watch does with a missing sample.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NoDataPolicy {
    /// Count it as a breach.
    Breach,
    /// Count it as a breach only when the target could not be reached (the
    /// agent failed); an answer without data, or a sample that timed out, is
    /// inconclusive.
    BreachIfUnreachable,
    /// Count it as healthy.
    Ok,
    /// Halt for a human: nobody can tell.
    #[default]
    Inconclusive,
}

/// Maps an event to an action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TriggerDef {
    /// Optional id, for history and reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The event: a watch id (or `watch:<id>`), `task_failed`, `task_failed:<task>`,
    /// `gate_failed`, `gate_failed:<gate>`, or `signal:<name>`.
    pub on: String,
    /// Only act when this condition holds at the time of the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// What to do.
    pub action: ActionKind,
    /// For `halt_for_approval`: the action taken once approved (default `rollback`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub then: Option<ActionKind>,
    /// For `halt_for_approval`: who decides (default: the phase owner), deadline and default answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalDef>,
    /// For `goto`: the phase to re-enter (this phase or one upstream of it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// For `goto`: the reason code recorded in history, e.g. `LAUNCH-001`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// For `goto`: the corrective action, in words.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// For `goto`: how many times this loop may be taken before the instance fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_loops: Option<u32>,
    /// For `rollback`: re-enter this phase after compensating instead of ending RolledBack.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// For `run`: the on-demand task of this phase to start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// For `notify`: the step to run (usually a `webhook`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<StepDef>,
    /// Workflow-level triggers only: the phase whose start makes the trigger
    /// live (default: the instance's start; a trigger on a workflow-level
    /// watch lives with its watch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Workflow-level triggers only: the phase whose passing ends it
    /// (default: the end of the instance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}

/// The actions a trigger can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// Stop and wait for a person; on approval take the `then` action.
    HaltForApproval,
    /// Run compensations in reverse completion order.
    Rollback,
    /// Re-enter an earlier phase as a new attempt, with a reason code.
    Goto,
    /// Run a notification step.
    Notify,
    /// Start an on-demand task of this phase.
    Run,
}

/// When a phase runs again after it passes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ScheduleDef {
    /// Repeat this long after the phase last passed, e.g. `"90d"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<String>,
    /// Repeat at the times of this cron expression (5 or 6 fields, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// Repeat only if this condition holds when the phase passes (e.g. a
    /// variable that turns re-validation off for a one-off run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
}
