//! Validated workflows: the only form the runtime ever sees.
//!
//! [`validate`] turns a raw [`WorkflowDef`] into a
//! [`Workflow`] whose phase and task graphs are acyclic, whose references are
//! resolved to indexes, whose durations are parsed and whose conditions are
//! compiled. A `Workflow` cannot be built any other way, so code that holds one
//! never re-checks it.

mod graph;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde_json::{Map, Value};

pub use graph::{to_dot, to_mermaid};
pub use validate::{load, load_source, validate, AgentNames, REPORT_AGENT};

use crate::expr::Expr;
use crate::model::{DeadlineOutcome, NoDataPolicy, OnTimeout, SignalDef, VarType, WorkflowDef};

/// The agent name a task writes to be a durable wait (`agent = "wait"`):
/// the engine's own timer, not a registered agent.
pub const WAIT_AGENT: &str = "wait";

/// A checked workflow, ready to run.
#[derive(Debug, Clone)]
pub struct Workflow {
    /// Name, shared by every version of the workflow.
    pub name: String,
    /// The definition's version.
    pub version: u32,
    /// What the workflow is for.
    pub description: String,
    /// Who may operate its instances by default (see [`WorkflowDef::owners`](crate::model::WorkflowDef::owners)).
    pub owners: Vec<Principal>,
    /// Variables with their types and defaults.
    pub vars: BTreeMap<String, Var>,
    /// Signals the workflow accepts.
    pub signals: BTreeMap<String, SignalDef>,
    /// Phases in definition order; indexes into this vector identify them.
    pub phases: Vec<Phase>,
    /// Phase indexes in a topological order of the `after` graph.
    pub phase_order: Vec<usize>,
    /// The raw definition this was validated from (what instances pin).
    pub definition: WorkflowDef,
    /// Task id → (phase index, task index within the phase).
    pub(crate) task_index: std::collections::HashMap<String, (usize, usize)>,
    /// The instance's overall deadline.
    pub deadline: Option<Deadline>,
    /// The workflow's notification step: for every halt, escalation and
    /// timeout whose approval names none, and every trigger that acts.
    pub notify: Option<Step>,
}

impl Workflow {
    /// The index of the phase with this id.
    pub fn phase_index(&self, id: &str) -> Option<usize> {
        self.phases.iter().position(|phase| phase.id == id)
    }

    /// The phase index and the trigger with this id in that phase.
    pub fn trigger(&self, phase: &str, id: &str) -> Option<(usize, &Trigger)> {
        let p = self.phase_index(phase)?;
        self.phases[p].triggers.iter().find(|t| t.id == id).map(|t| (p, t))
    }

    /// The (phase index, task index) of the task with this id.
    pub fn task_location(&self, id: &str) -> Option<(usize, usize)> {
        self.task_index.get(id).copied()
    }

    /// Why each `required_from` role that nobody holds makes its wait
    /// impossible to pass: such a gate could never be approved, so starting
    /// (and `validate` with a configuration) refuses it. `has_members` says
    /// whether the configuration gives a role members.
    pub fn unstaffed_roles(&self, has_members: impl Fn(&str) -> bool) -> Vec<String> {
        let mut out = Vec::new();
        let mut check = |what: String, required_from: &[(Principal, u32)]| {
            for (who, _) in required_from {
                if let Principal::Role(role) = who {
                    if !has_members(role) {
                        out.push(format!(
                            "{what} requires approvals from role:{role} (required_from), but the roles configuration gives it no members; \
                             add them under [roles] in phasegate.toml"
                        ));
                    }
                }
            }
        };
        for phase in &self.phases {
            let gates = phase.gates.iter().filter_map(|g| g.approval.as_ref().map(|a| (format!("gate {}/{}", phase.id, g.id), a)));
            let halts = phase.triggers.iter().filter_map(|t| match &t.action {
                Action::HaltForApproval { approval, .. } => Some((format!("trigger {}/{}", phase.id, t.id), approval)),
                Action::Rollback { .. } | Action::Goto { .. } | Action::Notify(_) | Action::Run { .. } => None,
            });
            for (what, approval) in gates.chain(halts) {
                check(what.clone(), &approval.required_from);
                for (l, level) in approval.escalation.iter().enumerate() {
                    check(format!("{what} (escalation level {})", l + 1), &level.required_from);
                }
            }
        }
        out
    }

    /// Each wait that, with these variables, lasts longer than a deadline
    /// containing it (its phase's or the instance's): (phase index, task
    /// index, why). Such a wait could never end before its deadline acts,
    /// so `validate` (with the defaults) and start (with the values given)
    /// refuse it.
    pub fn waits_beyond_deadlines(&self, vars: &Map<String, Value>) -> Vec<(usize, usize, String)> {
        let mut out = Vec::new();
        for (p, phase) in self.phases.iter().enumerate() {
            for (t, task) in phase.tasks.iter().enumerate() {
                let Some(wait) = &task.wait else { continue };
                let waits = wait.duration_for(vars);
                let containing =
                    [(phase.deadline.as_ref(), format!("phase `{}`", phase.id)), (self.deadline.as_ref(), "the instance".to_owned())];
                for (deadline, whose) in containing {
                    let Some(deadline) = deadline else { continue };
                    let after = deadline.after_for(vars);
                    if waits > after {
                        out.push((
                            p,
                            t,
                            format!(
                                "task `{}` waits {}, longer than {whose}'s deadline of {}: the deadline would act ({}) before the wait ends; \
                                 shorten the wait or lengthen the deadline",
                                task.id,
                                format_duration(waits),
                                format_duration(after),
                                deadline.outcome.name()
                            ),
                        ));
                    }
                }
            }
        }
        out
    }

    /// True if `ancestor` is `phase` itself or a phase `phase` transitively runs after.
    pub fn is_upstream(&self, ancestor: usize, phase: usize) -> bool {
        let mut stack = vec![phase];
        let mut seen = vec![false; self.phases.len()];
        while let Some(current) = stack.pop() {
            if current == ancestor {
                return true;
            }
            if std::mem::replace(&mut seen[current], true) {
                continue;
            }
            stack.extend(self.phases[current].after.iter().copied());
        }
        false
    }
}

/// A variable's type and default.
#[derive(Debug, Clone, PartialEq)]
pub struct Var {
    /// The type values must have.
    pub ty: VarType,
    /// The default; `None` means the variable must be given at start.
    pub default: Option<Value>,
    /// What it means.
    pub description: String,
    /// For a duration variable: the tightest lower bound its uses put on
    /// it (a watch interval must be at least [`MIN_WATCH_INTERVAL`], say),
    /// with the field that needs it. Every value, from any source, is
    /// checked against it as the default was.
    pub min_duration: Option<(Duration, String)>,
    /// The bounds the definition declares for its values.
    pub bounds: Bounds,
}

/// Bounds a variable's values must keep, from any source (its default,
/// `--var`, the API).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bounds {
    /// The smallest number accepted.
    pub min: Option<f64>,
    /// The largest number accepted.
    pub max: Option<f64>,
    /// The fewest characters a string may have.
    pub min_length: Option<usize>,
}

impl Bounds {
    /// Why `value` is out of bounds, if it is.
    pub fn check(&self, value: &Value) -> Result<(), String> {
        if let Some(number) = value.as_f64() {
            if let Some(min) = self.min.filter(|min| number < *min) {
                return Err(format!("{number} is below the variable's min {min}"));
            }
            if let Some(max) = self.max.filter(|max| number > *max) {
                return Err(format!("{number} is above the variable's max {max}"));
            }
        }
        if let (Some(text), Some(min_length)) = (value.as_str(), self.min_length) {
            if text.chars().count() < min_length {
                return Err(if text.is_empty() {
                    "it is empty; give a value".to_owned()
                } else {
                    format!("{text:?} is shorter than the variable's min_length {min_length}")
                });
            }
        }
        Ok(())
    }
}

/// The longest duration a definition or a variable may give (about 100
/// years): longer ones are typing mistakes, and deadlines computed from them
/// would fall beyond the dates every report can print.
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 24 * 3600 + 25 * 24 * 3600);

/// The shortest watch sampling interval and schedule period: shorter ones
/// make an instance sample or fire in a hot loop.
pub const MIN_WATCH_INTERVAL: Duration = Duration::from_millis(50);

/// Checks a duration against the bounds every duration obeys and the
/// lower bound `min` (zero for none); `Err` says which in words.
pub fn check_duration(duration: Duration, min: Duration) -> Result<(), String> {
    if duration > MAX_DURATION {
        return Err(format!("{} is longer than the limit of at most 100 years", format_duration(duration)));
    }
    if duration < min {
        return Err(if min == Duration::from_millis(1) {
            "the duration is zero; give a positive duration such as 30s".to_owned()
        } else {
            format!("{} is shorter than the minimum of {}", format_duration(duration), format_duration(min))
        });
    }
    Ok(())
}

/// A validated phase.
#[derive(Debug, Clone)]
pub struct Phase {
    /// Unique id.
    pub id: String,
    /// Human title (the id when none was given).
    pub title: String,
    /// What the phase is for.
    pub description: String,
    /// The accountable principal or role.
    pub owner: Option<Principal>,
    /// Indexes of the phases this one runs after.
    pub after: Vec<usize>,
    /// Tasks in definition order.
    pub tasks: Vec<Task>,
    /// Task indexes in a topological order of `depends_on`.
    pub task_order: Vec<usize>,
    /// Gates, evaluated in order when the tasks are done.
    pub gates: Vec<Gate>,
    /// Watches active while the phase runs.
    pub watches: Vec<Watch>,
    /// Triggers of the phase.
    pub triggers: Vec<Trigger>,
    /// Phase-level rollback steps, in the order written.
    pub rollback: Vec<Step>,
    /// When the phase repeats after passing.
    pub schedule: Option<Schedule>,
    /// The variable an `every` schedule reads (`every = "{{ vars.NAME }}"`),
    /// so each instance repeats at its own period.
    pub schedule_var: Option<String>,
    /// The schedule applies only if this holds when the phase passes.
    pub schedule_when: Option<Expr>,
    /// The longest one attempt of the phase may take.
    pub deadline: Option<Deadline>,
}

/// An overall deadline (a phase's or the instance's), checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Deadline {
    /// How long (the default when `after_var` names a variable).
    pub after: Duration,
    /// The duration variable that sets it per instance, if any.
    pub after_var: Option<String>,
    /// What happens when it passes.
    pub outcome: DeadlineOutcome,
}

impl Deadline {
    /// How long, for an instance with these variables.
    pub fn after_for(&self, vars: &Map<String, Value>) -> Duration {
        var_duration(self.after_var.as_deref(), vars).unwrap_or(self.after)
    }
}

/// How long a `wait` task waits, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Wait {
    /// How long (the default when `duration_var` names a variable).
    pub duration: Duration,
    /// The duration variable that sets it per instance, if any.
    pub duration_var: Option<String>,
}

impl Wait {
    /// How long, for an instance with these variables.
    pub fn duration_for(&self, vars: &Map<String, Value>) -> Duration {
        var_duration(self.duration_var.as_deref(), vars).unwrap_or(self.duration)
    }
}

/// A validated task.
#[derive(Debug, Clone)]
pub struct Task {
    /// Unique id across the workflow.
    pub id: String,
    /// Human title (the id when none was given).
    pub title: String,
    /// The agent's registered name.
    pub agent: String,
    /// Parameters passed to the agent.
    pub params: Map<String, Value>,
    /// Indexes (within the phase) of the tasks this one waits for.
    pub depends_on: Vec<usize>,
    /// Longest time one attempt may take.
    pub timeout: Option<Duration>,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// The accountable principal or role.
    pub owner: Option<Principal>,
    /// Run only when this holds; skipped otherwise.
    pub when: Option<Expr>,
    /// Only a trigger's `run` action starts it.
    pub on_demand: bool,
    /// Its compensation.
    pub rollback: Option<Step>,
    /// For a `wait` task (`agent = "wait"`): how long it waits. No agent
    /// runs; the engine records when it ends and fires it from its timers.
    pub wait: Option<Wait>,
}

/// Exponential backoff with jitter.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Delay before the first retry.
    pub initial: Duration,
    /// Upper bound of the delay.
    pub max: Duration,
    /// Growth factor per retry.
    pub multiplier: f64,
    /// Fraction of the delay that is randomised.
    pub jitter: f64,
}

impl RetryPolicy {
    /// One attempt, no retry.
    pub fn none() -> Self {
        Self { max_attempts: 1, initial: Duration::from_secs(1), max: Duration::from_secs(300), multiplier: 2.0, jitter: 0.0 }
    }

    /// The delay before attempt `next_attempt` (2 for the first retry), given
    /// `unit` drawn uniformly from [0, 1): the caller owns randomness so this
    /// stays a pure function.
    pub fn delay(&self, next_attempt: u32, unit: f64) -> Duration {
        let retries_before = next_attempt.saturating_sub(2);
        let exponent = i32::try_from(retries_before).unwrap_or(i32::MAX);
        let base = self.initial.as_secs_f64() * self.multiplier.powi(exponent);
        let capped = base.min(self.max.as_secs_f64());
        let spread = capped * self.jitter * unit.clamp(0.0, 1.0);
        Duration::from_secs_f64((capped - spread).max(0.0))
    }
}

/// A step outside the task graph: compensation, rollback step, notification.
#[derive(Debug, Clone)]
pub struct Step {
    /// Id (always set; defaulted from the owner when not written).
    pub id: String,
    /// Human title.
    pub title: String,
    /// The agent's registered name.
    pub agent: String,
    /// Parameters for the agent.
    pub params: Map<String, Value>,
    /// Longest time one attempt may take.
    pub timeout: Option<Duration>,
    /// Retry policy.
    pub retry: RetryPolicy,
}

/// Someone who may decide: a named principal or everyone holding a role.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Principal {
    /// A named person or service account.
    User(String),
    /// Everyone the configuration maps to this role.
    Role(String),
}

impl Principal {
    /// Parses `alice` or `role:qa-director`.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        match text.strip_prefix("role:") {
            Some(role) if !role.trim().is_empty() => Some(Principal::Role(role.trim().to_owned())),
            Some(_) => None,
            None if !text.is_empty() && !text.contains(char::is_whitespace) => Some(Principal::User(text.to_owned())),
            None => None,
        }
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::User(name) => f.write_str(name),
            Principal::Role(role) => write!(f, "role:{role}"),
        }
    }
}

/// A validated gate.
#[derive(Debug, Clone)]
pub struct Gate {
    /// Unique id within the phase.
    pub id: String,
    /// Human title.
    pub title: String,
    /// Criteria in the order written.
    pub criteria: Vec<Criterion>,
    /// The human decision, if required.
    pub approval: Option<Approval>,
    /// Score bands, if the gate is scored.
    pub score: Option<ScoreBands>,
    /// Evidence paths its criteria read under `baseline.` (without the
    /// prefix): what is kept as this gate's baseline when it passes.
    pub baseline_paths: Vec<Vec<String>>,
}

/// A scored gate's bands, in percent.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ScoreBands {
    /// At or above: pass.
    pub pass: f64,
    /// At or above (and below `pass`): a person decides.
    pub warning: f64,
}

/// Whether a failed criterion fails the gate or only warns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Failing fails the gate.
    Must,
    /// Failing is a warning shown to approvers.
    Should,
}

/// A validated criterion.
#[derive(Debug, Clone)]
pub struct Criterion {
    /// Id (written, or `c<position>`).
    pub id: String,
    /// What it means, for people.
    pub label: String,
    /// Must or should.
    pub level: Level,
    /// The condition.
    pub expr: Expr,
    /// Its weight in the gate's score.
    pub weight: f64,
    /// The looser condition that makes a failure a warning.
    pub warning: Option<Expr>,
}

/// A validated approval requirement.
#[derive(Debug, Clone)]
pub struct Approval {
    /// Who may decide at the first level (may be empty with `required_from`).
    pub approvers: Vec<Principal>,
    /// Approvals needed from `approvers`.
    pub required: u32,
    /// Approvals needed from each of these at once, counted separately.
    pub required_from: Vec<(Principal, u32)>,
    /// Whether the starter may approve.
    pub self_approval: bool,
    /// Deadline of the first level.
    pub timeout: Option<Duration>,
    /// What happens at a deadline.
    pub on_timeout: Option<OnTimeout>,
    /// Further levels.
    pub escalation: Vec<EscalationLevel>,
    /// Whether decisions need a comment.
    pub comment_required: bool,
    /// Run when the gate starts waiting, escalates or times out.
    pub notify: Option<Step>,
    /// The inputs an approval carries, by name.
    pub inputs: BTreeMap<String, Input>,
}

impl Approval {
    /// What happens when the deadline of escalation `level` (0: the
    /// approval's own) passes: the level's `on_timeout`, else the approval's.
    pub fn on_timeout_at(&self, level: usize) -> Option<crate::model::OnTimeout> {
        match level {
            0 => self.on_timeout,
            n => self.escalation.get(n - 1).and_then(|l| l.on_timeout).or(self.on_timeout),
        }
    }
}

impl Var {
    /// Parses a value given as text (`--var`, `--input`) by the variable's
    /// type: a duration within the bounds its uses need, a number, JSON for
    /// lists and objects.
    pub fn parse(&self, text: &str) -> Result<Value, String> {
        let var = self;
        let value = match var.ty {
            VarType::String => Value::String(text.to_owned()),
            VarType::Duration => {
                let duration =
                    humantime::parse_duration(text.trim()).map_err(|e| format!("expected a duration such as 90s or 2m ({e})"))?;
                // The same rules as the default: the bound of every duration and
                // the tightest one the variable's uses need.
                let (min, used_by) = var.min_duration.clone().unwrap_or((Duration::ZERO, String::new()));
                check_duration(duration, min).map_err(|problem| {
                    if used_by.is_empty() {
                        problem
                    } else {
                        format!("{problem} (it is used as {used_by})")
                    }
                })?;
                Value::String(text.trim().to_owned())
            }
            VarType::Number => serde_json::Number::from_f64(text.trim().parse::<f64>().map_err(|_| "expected a number".to_owned())?)
                .map(Value::Number)
                .ok_or_else(|| "expected a finite number".to_owned())?,
            VarType::Integer => Value::from(text.trim().parse::<i64>().map_err(|_| "expected an integer".to_owned())?),
            VarType::Boolean => match text.trim() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => return Err("expected true or false".to_owned()),
            },
            VarType::List => match serde_json::from_str::<Value>(text) {
                Ok(value @ Value::Array(_)) => value,
                _ => return Err("expected a JSON list such as [1, 2]".to_owned()),
            },
            VarType::Object => match serde_json::from_str::<Value>(text) {
                Ok(value @ Value::Object(_)) => value,
                _ => return Err("expected a JSON object such as {\"k\": 1}".to_owned()),
            },
        };
        var.bounds.check(&value)?;
        Ok(value)
    }
}

/// A validated decision input: typed like a variable, optionally one of a
/// list of options.
#[derive(Debug, Clone)]
pub struct Input {
    /// Its type, default and description (the same rules as a variable's).
    pub var: Var,
    /// The values allowed; empty for any value of the type.
    pub options: Vec<Value>,
}

impl Input {
    /// Checks a value given for input `name`: its type (a string is parsed
    /// as the type, as `--var` is) and its options. Returns the value to record.
    pub fn accept(&self, name: &str, value: &Value) -> Result<Value, String> {
        let value = match value {
            Value::String(text) if self.var.ty != VarType::String => {
                self.var.parse(text).map_err(|problem| format!("input `{name}`: {problem}"))?
            }
            other => other.clone(),
        };
        validate::check_var_value(self.var.ty, &value).map_err(|problem| format!("input `{name}` {problem}"))?;
        if !self.options.is_empty() && !self.options.contains(&value) {
            let options: Vec<String> = self.options.iter().map(ToString::to_string).collect();
            return Err(format!("input `{name}` is {value}, not one of its options: {}", options.join(", ")));
        }
        Ok(value)
    }

    /// `window (string, required)` or `variant (one of "a", "b"; default "a")`, for people.
    pub fn describe(&self, name: &str) -> String {
        let kind = if self.options.is_empty() {
            format!("{:?}", self.var.ty).to_lowercase()
        } else {
            format!("one of {}", self.options.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))
        };
        let default = self.var.default.as_ref().map_or_else(|| "required".to_owned(), |d| format!("default {d}"));
        let about = if self.var.description.is_empty() { String::new() } else { format!(": {}", self.var.description) };
        format!("{name} ({kind}, {default}){about}")
    }
}

/// One level of an escalation chain.
#[derive(Debug, Clone)]
pub struct EscalationLevel {
    /// Who may decide at this level.
    pub approvers: Vec<Principal>,
    /// Approvals needed.
    pub required: u32,
    /// Approvals needed from each of these at once.
    pub required_from: Vec<(Principal, u32)>,
    /// How the level joins the decision.
    pub join: crate::model::EscalationJoin,
    /// Deadline of the level.
    pub timeout: Option<Duration>,
    /// What happens at the level's deadline, if it differs from the approval's.
    pub on_timeout: Option<crate::model::OnTimeout>,
}

/// A validated watch.
#[derive(Debug, Clone)]
pub struct Watch {
    /// Unique id across the workflow.
    pub id: String,
    /// Human title.
    pub title: String,
    /// The agent that samples.
    pub agent: String,
    /// Parameters for the agent.
    pub params: Map<String, Value>,
    /// Time between samples (the default when `interval_var` names a variable).
    pub interval: Duration,
    /// The duration variable `interval` was written as, if any.
    pub interval_var: Option<String>,
    /// Breach condition.
    pub condition: Expr,
    /// How long a breach must last (zero: the first breaching sample).
    pub sustain: Duration,
    /// The duration variable `for` was written as, if any.
    pub sustain_var: Option<String>,
    /// Breaching samples in a row that fire it regardless of `sustain`.
    pub consecutive_failures: Option<u32>,
    /// What a missing sample counts as.
    pub no_data: NoDataPolicy,
    /// Longest time one sample may take, if the definition sets it.
    pub timeout: Option<Duration>,
    /// For a workflow-level watch, the span of phases it is live for; a
    /// phase's own watch (`None`) is live while its phase is active.
    pub span: Option<Span>,
}

/// When a workflow-level watch or trigger is live: from the start of phase
/// `from` (or of the instance) until phase `until` passes (or the instance
/// ends). Its state is kept with its home phase ([`Span::home`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// The phase whose start makes it live; `None`: the instance's start.
    pub from: Option<usize>,
    /// The phase whose passing ends it; `None`: the end of the instance.
    pub until: Option<usize>,
}

impl Span {
    /// The phase a workflow-level reaction's state and events are kept
    /// under: its `from` phase, or the first phase of the workflow.
    pub fn home(&self, phase_order: &[usize]) -> usize {
        self.from.or_else(|| phase_order.first().copied()).unwrap_or(0)
    }

    /// The span in words, for `status` and reports.
    pub fn describe(&self, workflow: &Workflow) -> String {
        let from = self.from.map_or_else(|| "the start".to_owned(), |f| format!("phase {}", workflow.phases[f].id));
        let until = self.until.map_or_else(|| "the end".to_owned(), |u| format!("phase {} passes", workflow.phases[u].id));
        format!("workflow-level, from {from} until {until}")
    }
}

/// The sample timeout of a watch that sets none: its interval, and at least this.
pub const DEFAULT_SAMPLE_TIMEOUT: Duration = Duration::from_secs(10);

/// A validated trigger.
#[derive(Debug, Clone)]
pub struct Trigger {
    /// Id (written, or `<phase>-trigger-<position>`).
    pub id: String,
    /// The event it reacts to.
    pub on: TriggerOn,
    /// Only act when this holds.
    pub when: Option<Expr>,
    /// What it does.
    pub action: Action,
    /// For a workflow-level trigger, the span of phases it is live for; a
    /// phase's own trigger (`None`) is live while its phase is active.
    pub span: Option<Span>,
}

/// The events a trigger reacts to.
#[derive(Debug, Clone, PartialEq, Eq, strum::EnumDiscriminants)]
#[strum_discriminants(name(TriggerSource), vis(pub), derive(Hash, PartialOrd, Ord, strum::IntoStaticStr))]
#[strum_discriminants(
    strum(serialize_all = "snake_case"),
    doc = "What kind of event a trigger reacts to (`watch`, `task_failed`, `gate_failed`, `signal`), for metrics and listings."
)]
pub enum TriggerOn {
    /// A watch of the phase fired (index within the phase).
    Watch(usize),
    /// A task of the phase failed for good (any, or the one given).
    TaskFailed(Option<usize>),
    /// A gate of the phase failed (any, or the one given).
    GateFailed(Option<usize>),
    /// A signal arrived.
    Signal(String),
}

/// What a trigger does.
#[derive(Debug, Clone)]
pub enum Action {
    /// Halt until a person decides; on approval, do `then`.
    HaltForApproval {
        /// Who decides, and the deadline.
        approval: Approval,
        /// The action taken once approved.
        then: Box<Action>,
    },
    /// Compensate completed work in reverse completion order.
    Rollback {
        /// Re-enter this phase afterwards instead of ending RolledBack.
        to: Option<usize>,
    },
    /// Re-enter an earlier phase as a new attempt.
    Goto {
        /// The phase to re-enter.
        phase: usize,
        /// The reason code, e.g. LAUNCH-001.
        code: Option<String>,
        /// The corrective action, in words.
        reason: String,
        /// How often this loop may be taken.
        max_loops: u32,
    },
    /// Run a notification step.
    Notify(Step),
    /// Start an on-demand task of the phase.
    Run {
        /// Index of the task within the phase.
        task: usize,
    },
}

/// When a phase repeats after it passes.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// This long after it last passed.
    Every(Duration),
    /// At the times of a cron expression (UTC).
    Cron {
        /// The expression as written.
        source: String,
        /// The parsed expression.
        cron: Box<croner::Cron>,
    },
}

impl Watch {
    /// The sampling interval for an instance with these variables.
    pub fn interval_for(&self, vars: &Map<String, Value>) -> Duration {
        var_duration(self.interval_var.as_deref(), vars).unwrap_or(self.interval).max(MIN_WATCH_INTERVAL)
    }

    /// How long one sample may take for an instance with these variables:
    /// the watch's `timeout`, or its interval and at least
    /// [`DEFAULT_SAMPLE_TIMEOUT`].
    pub fn sample_timeout_for(&self, vars: &Map<String, Value>) -> Duration {
        self.timeout.unwrap_or_else(|| self.interval_for(vars).max(DEFAULT_SAMPLE_TIMEOUT))
    }

    /// How long a breach must last for an instance with these variables.
    pub fn sustain_for(&self, vars: &Map<String, Value>) -> Duration {
        var_duration(self.sustain_var.as_deref(), vars).unwrap_or(self.sustain)
    }
}

fn var_duration(name: Option<&str>, vars: &Map<String, Value>) -> Option<Duration> {
    // Values were checked at start; a stored value out of bounds (written
    // by an older build) falls back to the default rather than misbehave.
    humantime::parse_duration(vars.get(name?)?.as_str()?.trim()).ok().filter(|d| *d <= MAX_DURATION)
}

impl Action {
    /// The action's name as definitions write it.
    pub fn name(&self) -> &'static str {
        match self {
            Action::HaltForApproval { .. } => "halt_for_approval",
            Action::Rollback { .. } => "rollback",
            Action::Goto { .. } => "goto",
            Action::Notify(_) => "notify",
            Action::Run { .. } => "run",
        }
    }
}

impl Schedule {
    /// The first time the phase is due again after it passed at `passed_ms`
    /// (milliseconds since the Unix epoch); `None` if the cron expression
    /// has no later occurrence.
    pub fn next_after(&self, passed_ms: u64) -> Option<u64> {
        match self {
            Schedule::Every(every) => Some(passed_ms.saturating_add(u64::try_from(every.as_millis()).unwrap_or(u64::MAX))),
            Schedule::Cron { cron, .. } => {
                let start = chrono::DateTime::from_timestamp_millis(i64::try_from(passed_ms).ok()?)?;
                let next = cron.find_next_occurrence(&start, false).ok()?;
                u64::try_from(next.timestamp_millis()).ok()
            }
        }
    }
}

impl Phase {
    /// When the phase's next cycle is due after it passed at `passed_ms`,
    /// with the instance's variables (a period given at start).
    pub fn next_cycle_after(&self, passed_ms: u64, vars: &Map<String, Value>) -> Option<u64> {
        match (self.schedule.as_ref()?, var_duration(self.schedule_var.as_deref(), vars)) {
            (Schedule::Every(_), Some(every)) => Schedule::Every(every).next_after(passed_ms),
            (schedule, _) => schedule.next_after(passed_ms),
        }
    }
}

/// Formats a duration the way definitions write them (`2m`, `72h`).
pub fn format_duration(duration: Duration) -> String {
    humantime::format_duration(duration).to_string().replace(' ', "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_grows_and_is_capped() {
        let policy =
            RetryPolicy { max_attempts: 5, initial: Duration::from_secs(1), max: Duration::from_secs(5), multiplier: 2.0, jitter: 0.5 };
        assert_eq!(policy.delay(2, 0.0), Duration::from_secs(1));
        assert_eq!(policy.delay(3, 0.0), Duration::from_secs(2));
        assert_eq!(policy.delay(4, 0.0), Duration::from_secs(4));
        assert_eq!(policy.delay(5, 0.0), Duration::from_secs(5));
        assert_eq!(policy.delay(3, 1.0), Duration::from_secs(1));
        assert_eq!(policy.delay(u32::MAX, 0.0), Duration::from_secs(5));
    }

    #[test]
    fn schedules_find_the_next_cycle() {
        let every = Schedule::Every(Duration::from_secs(90 * 86_400));
        assert_eq!(every.next_after(1_000), Some(1_000 + 90 * 86_400_000));
        let source = "0 9 1 */3 *";
        let cron = Schedule::Cron { source: source.to_owned(), cron: Box::new(source.parse().expect("valid cron")) };
        // 2026-11-22T05:00:00Z → 09:00 UTC on the first day of the next month matching */3 (January 2027).
        let passed = 1_795_323_600_000;
        let next = cron.next_after(passed).expect("a next occurrence");
        assert_eq!(next, 1_798_794_000_000, "2027-01-01T09:00:00Z");
    }

    #[test]
    fn principals_parse() {
        assert_eq!(Principal::parse("role:sre"), Some(Principal::Role("sre".to_owned())));
        assert_eq!(Principal::parse("alice"), Some(Principal::User("alice".to_owned())));
        assert_eq!(Principal::parse("role:"), None);
        assert_eq!(Principal::parse(""), None);
        assert_eq!(Principal::parse("two words"), None);
    }
}
