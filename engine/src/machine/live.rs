//! Which watches of an instance are live and why, and where its deadlines
//! stand: what `status` shows.

use serde::{Deserialize, Serialize};

use super::state::{phase_active, reaction_live};
use super::{Instance, InstanceStatus, Timestamp};
use crate::model::DeadlineOutcome;
use crate::plan::Workflow;

/// Whether a watch is sampling now, and why (or why not).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchLiveness {
    /// The phase the watch's state is kept under.
    pub phase: String,
    /// The watch's id.
    pub watch: String,
    /// Whether it samples now.
    pub live: bool,
    /// Why, in words.
    pub why: String,
}

/// Which watches of an instance sample now, and why: `status` shows it.
pub fn watch_liveness(instance: &Instance, workflow: &Workflow) -> Vec<WatchLiveness> {
    let sampling = matches!(instance.status, InstanceStatus::Running | InstanceStatus::AwaitingDecision { .. });
    let mut out = Vec::new();
    for (p, phase) in workflow.phases.iter().enumerate() {
        let Some(state) = instance.phases.get(p) else { continue };
        for watch in &phase.watches {
            let scope = match &watch.span {
                None => format!("a watch of phase {}, which is {}", phase.id, state.status.kind()),
                Some(span) => span.describe(workflow),
            };
            let live = sampling && reaction_live(instance, p, watch.span.as_ref());
            let why = if !sampling {
                format!("{scope}; the instance is {}", instance.status.kind())
            } else if live {
                format!("{scope}: live")
            } else {
                format!("{scope}: not live now")
            };
            out.push(WatchLiveness { phase: phase.id.clone(), watch: watch.id.clone(), live, why });
        }
    }
    out
}

/// A declared deadline of an instance (its own, or a phase's) and where it
/// stands: what `status` shows and what [`super::decide`] acts on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadlineState {
    /// The phase whose deadline it is; `None` for the instance's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// How long, with this instance's variables.
    pub after_ms: u64,
    /// What happens when it passes.
    pub outcome: DeadlineOutcome,
    /// When it passes: `None` while its phase is not active (not started,
    /// passed or failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due: Option<Timestamp>,
    /// It passed and its outcome was applied (it acts once per attempt).
    pub acted: bool,
}

impl DeadlineState {
    /// What the deadline is about, in words (`phase launch`, `the instance`).
    pub fn whose(&self) -> String {
        self.phase.as_deref().map_or_else(|| "the instance".to_owned(), |id| format!("phase {id}"))
    }
}

/// Every declared deadline of an instance, the instance's first, then the
/// phases' in definition order.
pub fn deadlines(instance: &Instance, workflow: &Workflow) -> Vec<DeadlineState> {
    let after = |deadline: &crate::plan::Deadline| u64::try_from(deadline.after_for(&instance.vars).as_millis()).unwrap_or(u64::MAX);
    let own = workflow.deadline.as_ref().map(|deadline| DeadlineState {
        phase: None,
        after_ms: after(deadline),
        outcome: deadline.outcome,
        due: Some(Timestamp(instance.started_at.0.saturating_add(after(deadline)))),
        acted: instance.deadline_passed,
    });
    let phases = workflow.phases.iter().zip(&instance.phases).filter_map(|(plan, state)| {
        let deadline = plan.deadline.as_ref()?;
        let due = state.started_at.filter(|_| phase_active(&state.status)).map(|since| Timestamp(since.0.saturating_add(after(deadline))));
        Some(DeadlineState {
            phase: Some(state.id.clone()),
            after_ms: after(deadline),
            outcome: deadline.outcome,
            due,
            acted: state.deadline_passed,
        })
    });
    own.into_iter().chain(phases).collect()
}
