//! The phase graph of an instance as an SVG picture, laid out by layout-rs:
//! one box per phase coloured by its status (and the status written in it,
//! so colour is never the only cue), `after` edges, and loop-backs as dashed
//! red edges labelled with the trigger that takes them. A rollback is an
//! instance's, not a phase's: the page says so beside the picture, and the
//! phases it undid are drawn in its colour.

use layout::backends::svg::SVGWriter;
use layout::core::base::Orientation;
use layout::core::color::Color;
use layout::core::style::{LineStyleKind, StyleAttr};
use layout::std_shapes::shapes::{Arrow, Element, LineEndKind, ShapeKind};
use layout::topo::layout::VisualGraph;

use crate::machine::{Instance, InstanceStatus, PhaseStatus};
use crate::plan::{Action, Workflow};

/// The fill and border of a phase's box, by status.
fn colours(status: &PhaseStatus) -> (u32, u32) {
    match status {
        PhaseStatus::Pending => (0xf3f4f6ff, 0x6b7280ff),
        PhaseStatus::Running { .. } => (0xdbeafeff, 0x1d4ed8ff),
        PhaseStatus::AwaitingApproval { .. } => (0xfef3c7ff, 0xb45309ff),
        PhaseStatus::OnHold { .. } => (0xffedd5ff, 0xc2410cff),
        PhaseStatus::Passed { .. } => (0xdcfce7ff, 0x15803dff),
        PhaseStatus::Failed { .. } => (0xfee2e2ff, 0xb91c1cff),
    }
}

/// The picture, as an `<svg>` element (text escaped by the renderer), or,
/// should the layout fail, the phases as a list.
pub(super) fn svg(instance: &Instance, workflow: &Workflow) -> String {
    // layout-rs asserts on layouts it cannot place; a picture it cannot
    // draw must not take the page (or the server's worker) down with it.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| picture(instance, workflow))).unwrap_or_else(|_| {
        tracing::warn!(instance = %instance.id, "the phase graph could not be laid out; listing the phases instead");
        let items: Vec<String> = workflow
            .phases
            .iter()
            .zip(&instance.phases)
            .map(|(plan, state)| format!("<li>{}: {}</li>", escape(&plan.id), state.status.kind()))
            .collect();
        format!("<ul class=\"phases\">{}</ul>", items.join(""))
    })
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn picture(instance: &Instance, workflow: &Workflow) -> String {
    let orientation = Orientation::TopToBottom;
    let mut graph = VisualGraph::new(orientation);
    let mut handles = Vec::with_capacity(workflow.phases.len());
    for (p, phase) in workflow.phases.iter().enumerate() {
        let state = &instance.phases[p];
        let rolled_back = matches!(instance.status, InstanceStatus::RollingBack { .. } | InstanceStatus::RolledBack { .. });
        let undone = rolled_back && matches!(state.status, PhaseStatus::Passed { .. });
        let (fill, line) = if undone { (0xede9feff, 0x6d28d9ff) } else { colours(&state.status) };
        let current =
            matches!(state.status, PhaseStatus::Running { .. } | PhaseStatus::AwaitingApproval { .. } | PhaseStatus::OnHold { .. });
        let attempt = if state.attempt > 1 { format!(" (attempt {})", state.attempt) } else { String::new() };
        let status = if undone { "rolled back" } else { state.status.kind() };
        // A phase's loop-back to itself is written in its box (the layout draws no edge from a node to itself).
        let again: Vec<&str> = phase
            .triggers
            .iter()
            .filter(|t| matches!(&t.action, Action::Goto { phase: target, .. } if *target == p))
            .map(|t| t.id.as_str())
            .collect();
        let again = if again.is_empty() { String::new() } else { format!("\nloops back: {}", again.join(", ")) };
        let label = format!("{}\n{status}{attempt}{again}", phase.id);
        let look = StyleAttr::new(Color::new(line), if current { 4 } else { 2 }, Some(Color::new(fill)), 8, 14);
        let shape = ShapeKind::new_box(&label);
        let size = layout::std_shapes::render::get_shape_size(orientation, &shape, look.font_size, false);
        handles.push(graph.add_node(Element::create(shape, look, orientation, size)));
    }
    let plain = StyleAttr::new(Color::fast("black"), 2, None, 0, 12);
    for (p, phase) in workflow.phases.iter().enumerate() {
        for &before in &phase.after {
            graph.add_edge(
                Arrow::new(LineEndKind::None, LineEndKind::Arrow, LineStyleKind::Normal, "", &plain, &None, &None),
                handles[before],
                handles[p],
            );
        }
    }
    // A loop-back re-enters an upstream phase: laid out as an edge from that
    // phase down (so the graph stays acyclic for the layout), drawn with its
    // arrow at the upstream end.
    let loop_back = StyleAttr::new(Color::new(0xdc2626ff), 2, None, 0, 12);
    let mut loops: std::collections::BTreeMap<(usize, usize), Vec<String>> = std::collections::BTreeMap::new();
    for (p, phase) in workflow.phases.iter().enumerate() {
        for trigger in &phase.triggers {
            if let Action::Goto { phase: target, .. } = &trigger.action {
                if *target != p {
                    let taken = instance.phases[*target].attempt > 1;
                    loops.entry((*target, p)).or_default().push(if taken { format!("{} (taken)", trigger.id) } else { trigger.id.clone() });
                }
            }
        }
    }
    // One edge per pair of phases (the layout cannot place parallel edges).
    for ((target, from), labels) in loops {
        graph.add_edge(
            Arrow::new(LineEndKind::Arrow, LineEndKind::None, LineStyleKind::Dashed, &labels.join(", "), &loop_back, &None, &None),
            handles[target],
            handles[from],
        );
    }
    let mut writer = SVGWriter::new();
    graph.do_it(false, false, false, &mut writer);
    let svg = writer.finalize();
    // The renderer writes an XML prolog; inline SVG in HTML starts at the element.
    match svg.find("<svg") {
        Some(start) => svg[start..].to_owned(),
        None => svg,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped lifecycle (every loop-back among its phases) lays out
    /// without a panic, every phase drawn and named with its status.
    #[test]
    fn the_shipped_lifecycle_is_drawn_with_every_phase_and_loop_back() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../workflows/release-lifecycle.toml");
        let source = crate::model::Source::read(&path).expect("the shipped lifecycle reads");
        let names = crate::plan::AgentNames::builtin().with(crate::plan::REPORT_AGENT.to_owned());
        let workflow = crate::plan::load_source(&source, &names).expect("the shipped lifecycle validates");
        let instance = Instance::new("i", &workflow, "h", Default::default(), "admin", crate::machine::Timestamp(1));
        let svg = svg(&instance, &workflow);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "{svg}");
        for phase in &workflow.phases {
            assert!(svg.contains(&phase.id), "phase {} is drawn", phase.id);
        }
        let loop_backs = workflow.phases.iter().flat_map(|p| &p.triggers).filter(|t| matches!(t.action, Action::Goto { .. })).count();
        assert!(loop_backs > 0 && svg.contains("stroke-dasharray"), "the loop-backs are dashed");
    }
}
