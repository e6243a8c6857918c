//! Which watches of an instance are live, and why: what `status` shows.

use serde::{Deserialize, Serialize};

use super::state::reaction_live;
use super::{Instance, InstanceStatus};
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
