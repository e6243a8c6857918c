//! Graph export: the phase/task DAG as Graphviz DOT or a Mermaid flowchart.
//!
//! Both renderers draw the same neutral picture, built once by [`picture`]:
//! phases as clusters holding their tasks, gates, watches and triggers, with
//! `after` edges between phases and loop-back (`goto`) edges drawn dashed.

use std::fmt::Write as _;

use super::{Action, Phase, TriggerOn, Workflow};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NodeKind {
    Task,
    OnDemandTask,
    Gate,
    ApprovalGate,
    Watch,
    Trigger,
}

struct Node {
    id: String,
    label: String,
    kind: NodeKind,
}

struct Cluster {
    id: String,
    label: String,
    nodes: Vec<Node>,
    /// The node phase edges enter at and leave from.
    entry: String,
    exit: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EdgeKind {
    /// Task `depends_on`, task → gate, gate → gate.
    Flow,
    /// Phase `after`.
    Phase,
    /// A watch or event feeding a trigger.
    Feeds,
    /// A `goto` or `rollback --to` loop-back.
    LoopBack,
}

struct Edge {
    from: String,
    to: String,
    kind: EdgeKind,
    label: String,
    /// For phase and loop-back edges: the clusters the edge joins (DOT `ltail`/`lhead`).
    clusters: Option<(String, String)>,
}

struct Picture {
    title: String,
    clusters: Vec<Cluster>,
    edges: Vec<Edge>,
}

fn phase_id(p: usize) -> String {
    format!("p{p}")
}

fn picture(workflow: &Workflow) -> Picture {
    let mut clusters = Vec::new();
    let mut edges = Vec::new();
    for (p, phase) in workflow.phases.iter().enumerate() {
        clusters.push(cluster(p, phase, &mut edges));
    }
    for (p, phase) in workflow.phases.iter().enumerate() {
        for &upstream in &phase.after {
            edges.push(Edge {
                from: clusters[upstream].exit.clone(),
                to: clusters[p].entry.clone(),
                kind: EdgeKind::Phase,
                label: String::new(),
                clusters: Some((phase_id(upstream), phase_id(p))),
            });
        }
        for (t, trigger) in phase.triggers.iter().enumerate() {
            let mut action = &trigger.action;
            if let Action::HaltForApproval { then, .. } = action {
                action = then;
            }
            let (target, label) = match action {
                Action::Goto { phase: target, code, max_loops, .. } => {
                    let code = code.clone().unwrap_or_else(|| "goto".to_owned());
                    (*target, format!("{code} (max {max_loops})"))
                }
                Action::Rollback { to: Some(target) } => (*target, "rollback, re-enter".to_owned()),
                _ => continue,
            };
            edges.push(Edge {
                from: format!("p{p}_r{t}"),
                to: clusters[target].entry.clone(),
                kind: EdgeKind::LoopBack,
                label,
                clusters: Some((phase_id(p), phase_id(target))),
            });
        }
    }
    Picture { title: workflow.name.clone(), clusters, edges }
}

fn cluster(p: usize, phase: &Phase, edges: &mut Vec<Edge>) -> Cluster {
    let mut nodes = Vec::new();
    let task_node = |t: usize| format!("p{p}_t{t}");
    let gate_node = |g: usize| format!("p{p}_g{g}");
    for &t in &phase.task_order {
        let task = &phase.tasks[t];
        let mut label = match &task.wait {
            Some(wait) => match &wait.duration_var {
                Some(var) => format!("{}\n(wait vars.{var})", task.id),
                None => format!("{}\n(wait {})", task.id, super::format_duration(wait.duration)),
            },
            None => format!("{}\n({})", task.id, task.agent),
        };
        if task.when.is_some() {
            label.push_str("\nconditional");
        }
        nodes.push(Node { id: task_node(t), label, kind: if task.on_demand { NodeKind::OnDemandTask } else { NodeKind::Task } });
        for &dep in &task.depends_on {
            edges.push(Edge { from: task_node(dep), to: task_node(t), kind: EdgeKind::Flow, label: String::new(), clusters: None });
        }
    }
    for (g, gate) in phase.gates.iter().enumerate() {
        let mut label = format!("gate: {}\n{} criteria", gate.id, gate.criteria.len());
        if let Some(approval) = &gate.approval {
            let who: Vec<String> = approval.approvers.iter().map(ToString::to_string).collect();
            let _ = write!(label, "\napproval {} of {}", approval.required, who.join(", "));
        }
        nodes.push(Node { id: gate_node(g), label, kind: if gate.approval.is_some() { NodeKind::ApprovalGate } else { NodeKind::Gate } });
        if g > 0 {
            edges.push(Edge { from: gate_node(g - 1), to: gate_node(g), kind: EdgeKind::Flow, label: String::new(), clusters: None });
        }
    }
    // Tasks nobody in the phase depends on lead into the first gate.
    if !phase.gates.is_empty() {
        for (t, task) in phase.tasks.iter().enumerate() {
            let is_sink = !phase.tasks.iter().any(|other| other.depends_on.contains(&t));
            if is_sink && !task.on_demand {
                edges.push(Edge { from: task_node(t), to: gate_node(0), kind: EdgeKind::Flow, label: String::new(), clusters: None });
            }
        }
    }
    for (w, watch) in phase.watches.iter().enumerate() {
        let mut label = format!("watch: {}\n{}", watch.id, watch.condition.source());
        if !watch.sustain.is_zero() {
            let _ = write!(label, "\nfor {}", super::format_duration(watch.sustain));
        }
        nodes.push(Node { id: format!("p{p}_w{w}"), label, kind: NodeKind::Watch });
    }
    for (t, trigger) in phase.triggers.iter().enumerate() {
        let node = format!("p{p}_r{t}");
        let action = describe_action(&trigger.action, phase);
        let source = match &trigger.on {
            TriggerOn::Watch(w) => Some(format!("p{p}_w{w}")),
            TriggerOn::GateFailed(Some(g)) => Some(gate_node(*g)),
            TriggerOn::TaskFailed(Some(t)) => Some(task_node(*t)),
            TriggerOn::GateFailed(None) | TriggerOn::TaskFailed(None) | TriggerOn::Signal(_) => None,
        };
        let event = match &trigger.on {
            TriggerOn::Watch(_) => "fires".to_owned(),
            TriggerOn::TaskFailed(_) => "task_failed".to_owned(),
            TriggerOn::GateFailed(_) => "gate_failed".to_owned(),
            TriggerOn::Signal(name) => format!("signal {name}"),
        };
        let label = match &trigger.when {
            Some(when) => format!("on {event}\nwhen {}\n→ {action}", when.source()),
            None => format!("on {event}\n→ {action}"),
        };
        nodes.push(Node { id: node.clone(), label, kind: NodeKind::Trigger });
        if let Some(source) = source {
            edges.push(Edge { from: source, to: node.clone(), kind: EdgeKind::Feeds, label: String::new(), clusters: None });
        }
        let run_task = match &trigger.action {
            Action::Run { task } => Some(*task),
            Action::HaltForApproval { then, .. } => match then.as_ref() {
                Action::Run { task } => Some(*task),
                _ => None,
            },
            _ => None,
        };
        if let Some(task) = run_task {
            edges.push(Edge { from: node, to: task_node(task), kind: EdgeKind::Feeds, label: "run".to_owned(), clusters: None });
        }
    }
    let entry = phase
        .task_order
        .iter()
        .find(|&&t| phase.tasks[t].depends_on.is_empty() && !phase.tasks[t].on_demand)
        .map(|&t| task_node(t))
        .or_else(|| (!phase.gates.is_empty()).then(|| gate_node(0)))
        .or_else(|| nodes.first().map(|n| n.id.clone()))
        .unwrap_or_else(|| format!("p{p}_empty"));
    let exit = if phase.gates.is_empty() {
        phase.task_order.last().map(|&t| task_node(t)).unwrap_or_else(|| entry.clone())
    } else {
        gate_node(phase.gates.len() - 1)
    };
    if nodes.is_empty() {
        nodes.push(Node { id: entry.clone(), label: "(empty)".to_owned(), kind: NodeKind::Task });
    }
    let mut label = if phase.title == phase.id { phase.id.clone() } else { format!("{}: {}", phase.id, phase.title) };
    if let Some(owner) = &phase.owner {
        let _ = write!(label, "\nowner {owner}");
    }
    if phase.schedule.is_some() {
        label.push_str("\nscheduled");
    }
    Cluster { id: phase_id(p), label, nodes, entry, exit }
}

fn describe_action(action: &Action, phase: &Phase) -> String {
    match action {
        Action::HaltForApproval { then, .. } => {
            format!("halt for approval, then {}", describe_action(then, phase))
        }
        Action::Rollback { to: None } => "rollback".to_owned(),
        Action::Rollback { to: Some(_) } => "rollback and re-enter".to_owned(),
        Action::Goto { code, .. } => format!("goto {}", code.as_deref().unwrap_or("")).trim_end().to_owned(),
        Action::Notify(step) => format!("notify ({})", step.agent),
        Action::Run { task } => format!("run {}", phase.tasks[*task].id),
    }
}

/// The workflow as a Graphviz DOT digraph.
pub fn to_dot(workflow: &Workflow) -> String {
    let picture = picture(workflow);
    let mut out = String::new();
    let _ = writeln!(out, "digraph {} {{", dot_string(&picture.title));
    out.push_str(
        "  compound=true;\n  rankdir=TB;\n  node [shape=box, style=rounded, fontname=\"Helvetica\"];\n  edge [fontname=\"Helvetica\"];\n",
    );
    for cluster in &picture.clusters {
        let _ = writeln!(out, "  subgraph cluster_{} {{", cluster.id);
        let _ = writeln!(out, "    label={};", dot_string(&cluster.label));
        out.push_str("    style=rounded;\n");
        for node in &cluster.nodes {
            let style = match node.kind {
                NodeKind::Task => "shape=box, style=rounded",
                NodeKind::OnDemandTask => "shape=box, style=\"rounded,dashed\"",
                NodeKind::Gate => "shape=diamond",
                NodeKind::ApprovalGate => "shape=octagon, style=filled, fillcolor=\"#fde68a\"",
                NodeKind::Watch => "shape=note, style=dashed",
                NodeKind::Trigger => "shape=hexagon, style=filled, fillcolor=\"#fecaca\"",
            };
            let _ = writeln!(out, "    {} [label={}, {style}];", node.id, dot_string(&node.label));
        }
        out.push_str("  }\n");
    }
    for edge in &picture.edges {
        let mut attributes = Vec::new();
        match edge.kind {
            EdgeKind::Flow => {}
            EdgeKind::Phase => attributes.push("penwidth=2".to_owned()),
            EdgeKind::Feeds => attributes.push("style=dotted".to_owned()),
            EdgeKind::LoopBack => {
                attributes.push("style=dashed, color=red, fontcolor=red, constraint=false".to_owned());
            }
        }
        if let Some((tail, head)) = &edge.clusters {
            if edge.kind == EdgeKind::Phase {
                attributes.push(format!("ltail=cluster_{tail}"));
            }
            attributes.push(format!("lhead=cluster_{head}"));
        }
        if !edge.label.is_empty() {
            attributes.push(format!("label={}", dot_string(&edge.label)));
        }
        let attributes = if attributes.is_empty() { String::new() } else { format!(" [{}]", attributes.join(", ")) };
        let _ = writeln!(out, "  {} -> {}{attributes};", edge.from, edge.to);
    }
    out.push_str("}\n");
    out
}

/// The workflow as a Mermaid flowchart (for Markdown pages).
pub fn to_mermaid(workflow: &Workflow) -> String {
    let picture = picture(workflow);
    let mut out = String::new();
    let _ = writeln!(out, "---\ntitle: {}\n---", mermaid_text(&picture.title));
    out.push_str("flowchart TB\n");
    for cluster in &picture.clusters {
        let _ = writeln!(out, "  subgraph {}[\"{}\"]", cluster.id, mermaid_text(&cluster.label));
        for node in &cluster.nodes {
            let label = mermaid_text(&node.label);
            let shape = match node.kind {
                NodeKind::Task | NodeKind::OnDemandTask => format!("(\"{label}\")"),
                NodeKind::Gate => format!("{{\"{label}\"}}"),
                NodeKind::ApprovalGate => format!("{{{{\"{label}\"}}}}"),
                NodeKind::Watch => format!("[/\"{label}\"/]"),
                NodeKind::Trigger => format!(">\"{label}\"]"),
            };
            let _ = writeln!(out, "    {}{shape}", node.id);
        }
        out.push_str("  end\n");
    }
    for edge in &picture.edges {
        let (from, to) = match (&edge.kind, &edge.clusters) {
            (EdgeKind::Phase, Some((tail, head))) => (tail.clone(), head.clone()),
            (EdgeKind::LoopBack, Some((_, head))) => (edge.from.clone(), head.clone()),
            _ => (edge.from.clone(), edge.to.clone()),
        };
        let arrow = match edge.kind {
            EdgeKind::Flow => "-->",
            EdgeKind::Phase => "==>",
            EdgeKind::Feeds | EdgeKind::LoopBack => "-.->",
        };
        if edge.label.is_empty() {
            let _ = writeln!(out, "  {from} {arrow} {to}");
        } else {
            let _ = writeln!(out, "  {from} {arrow}|\"{}\"| {to}", mermaid_text(&edge.label));
        }
    }
    let mut classes: Vec<(&str, NodeKind)> = Vec::new();
    for cluster in &picture.clusters {
        for node in &cluster.nodes {
            classes.push((node.id.as_str(), node.kind));
        }
    }
    out.push_str("  classDef approval fill:#fde68a,stroke:#b45309\n");
    out.push_str("  classDef trigger fill:#fecaca,stroke:#b91c1c\n");
    out.push_str("  classDef watch stroke-dasharray: 4 4\n");
    out.push_str("  classDef ondemand stroke-dasharray: 4 4\n");
    for (class, kind) in [
        ("approval", NodeKind::ApprovalGate),
        ("trigger", NodeKind::Trigger),
        ("watch", NodeKind::Watch),
        ("ondemand", NodeKind::OnDemandTask),
    ] {
        let ids: Vec<&str> = classes.iter().filter(|(_, k)| *k == kind).map(|(id, _)| *id).collect();
        if !ids.is_empty() {
            let _ = writeln!(out, "  class {} {class}", ids.join(","));
        }
    }
    let loop_backs: Vec<usize> = picture.edges.iter().enumerate().filter(|(_, e)| e.kind == EdgeKind::LoopBack).map(|(i, _)| i).collect();
    for index in loop_backs {
        let _ = writeln!(out, "  linkStyle {index} stroke:#dc2626,color:#dc2626");
    }
    out
}

fn dot_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn mermaid_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("#quot;"),
            '\n' => out.push_str("<br/>"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '|' => out.push_str("#124;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}
