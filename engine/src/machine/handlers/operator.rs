//! What operators do to an instance: halt, resume, cancel, redrive, and
//! deliver signals.

use super::super::gate::GateStatus;
use super::super::guards::{cancel_in_flight, Cx, Effect, Handled};
use super::super::{payload, InstanceStatus, PhaseStatus, RejectKind, Rejected, TaskStatus};
use super::trigger;
use crate::plan::TriggerOn;

/// `Halted`: new dispatch stops (and attempts in flight are cancelled if asked).
pub(crate) fn halted(cx: Cx<'_>, e: &payload::Halted) -> Handled {
    let Cx { instance, event, at, .. } = cx;
    match &instance.status {
        InstanceStatus::Running | InstanceStatus::RollingBack { .. } => {}
        InstanceStatus::Halted { by: halted_by, at: halted_at, .. } => {
            return Err(Rejected::new(
                event,
                format!("instance {} was halted by {halted_by} at {halted_at}", instance.id),
                "it is already halted",
            ));
        }
        InstanceStatus::Completed { .. }
        | InstanceStatus::Failed { .. }
        | InstanceStatus::Cancelled { .. }
        | InstanceStatus::AwaitingDecision { .. }
        | InstanceStatus::RolledBack { .. } => {
            return Err(Rejected::new(
                event,
                format!("instance {} is {}", instance.id, instance.status.kind()),
                "only a running or rolling-back instance can be halted",
            ));
        }
    }
    let effects = if e.cancel_running { cancel_in_flight(instance, None, &format!("halted by {}", e.by), at) } else { Vec::new() };
    instance.status = InstanceStatus::Halted { by: e.by.clone(), reason: e.reason.clone(), cancel_running: e.cancel_running, at };
    Ok(effects)
}

/// `Resumed`: a halted instance goes on (a halted rollback too, with a fresh
/// budget for compensations that failed for good).
pub(crate) fn resumed(cx: Cx<'_>, _: &payload::Resumed) -> Handled {
    let Cx { instance, event, at, .. } = cx;
    match &instance.status {
        InstanceStatus::Halted { .. } => {}
        InstanceStatus::Running
        | InstanceStatus::Completed { .. }
        | InstanceStatus::Failed { .. }
        | InstanceStatus::Cancelled { .. }
        | InstanceStatus::AwaitingDecision { .. }
        | InstanceStatus::RollingBack { .. }
        | InstanceStatus::RolledBack { .. } => {
            let hint = match &instance.status {
                InstanceStatus::Failed { .. } => "a failed instance is redriven with `retry`",
                InstanceStatus::AwaitingDecision { .. } => "it awaits a decision: approve or reject it",
                InstanceStatus::Halted { .. }
                | InstanceStatus::Running
                | InstanceStatus::Completed { .. }
                | InstanceStatus::Cancelled { .. }
                | InstanceStatus::RollingBack { .. }
                | InstanceStatus::RolledBack { .. } => "only a halted instance can be resumed",
            };
            return Err(Rejected::new(event, format!("instance {} is {}", instance.id, instance.effective_status()), hint));
        }
    }
    match instance.rollback.as_mut() {
        Some(rollback) => {
            for step in &mut rollback.steps {
                if matches!(step.state.status, TaskStatus::Failed { .. } | TaskStatus::Cancelled { .. }) {
                    step.state.budget_from = step.state.attempts;
                    step.state.status = TaskStatus::Pending;
                }
            }
            instance.status = InstanceStatus::RollingBack { since: at };
        }
        None => instance.status = InstanceStatus::Running,
    }
    Ok(Vec::new())
}

/// `Cancelled`: the instance ends; every attempt and compensation in flight is cancelled.
pub(crate) fn cancelled(cx: Cx<'_>, e: &payload::Cancelled) -> Handled {
    let Cx { instance, event, at, .. } = cx;
    match &instance.status {
        InstanceStatus::Running
        | InstanceStatus::Halted { .. }
        | InstanceStatus::Failed { .. }
        | InstanceStatus::AwaitingDecision { .. }
        | InstanceStatus::RollingBack { .. } => {}
        InstanceStatus::Completed { .. } | InstanceStatus::Cancelled { .. } | InstanceStatus::RolledBack { .. } => {
            return Err(Rejected::new(event, format!("instance {} is {}", instance.id, instance.status.kind()), "it is already finished"));
        }
    }
    let mut effects = cancel_in_flight(instance, None, &format!("cancelled by {}", e.by), at);
    if let Some((_, _, key)) = instance.compensation_in_flight() {
        effects.push(Effect::Cancel { key, reason: format!("cancelled by {}", e.by) });
    }
    instance.status = InstanceStatus::Cancelled { by: e.by.clone(), reason: e.reason.clone(), at };
    Ok(effects)
}

/// `Redriven`: a failed instance runs its failed tasks again, or a phase on
/// hold re-runs tasks for remediation; what depends on a re-run task runs
/// again too.
pub(crate) fn redriven(cx: Cx<'_>, e: &payload::Redriven) -> Handled {
    if let Some(phase) = &e.phase {
        return redrive_phase(cx, phase);
    }
    let Cx { instance, workflow, event, at } = cx;
    let tasks = &e.tasks;
    let held: Vec<usize> =
        instance.phases.iter().enumerate().filter(|(_, p)| matches!(p.status, PhaseStatus::OnHold { .. })).map(|(p, _)| p).collect();
    let remediation = match &instance.status {
        InstanceStatus::Failed { .. } => false,
        InstanceStatus::Running | InstanceStatus::Halted { .. } if !held.is_empty() => true,
        InstanceStatus::Running
        | InstanceStatus::Halted { .. }
        | InstanceStatus::Completed { .. }
        | InstanceStatus::Cancelled { .. }
        | InstanceStatus::AwaitingDecision { .. }
        | InstanceStatus::RollingBack { .. }
        | InstanceStatus::RolledBack { .. } => {
            return Err(Rejected::new(
                event,
                format!("instance {} is {}", instance.id, instance.effective_status()),
                "only a failed instance, or one with a phase on hold, can be redriven",
            ));
        }
    };
    if tasks.is_empty() && !remediation {
        return Err(Rejected::new(event, format!("instance {} has no failed task", instance.id), "there is nothing to retry"));
    }
    let mut positions = Vec::with_capacity(tasks.len());
    for task in tasks {
        let Some((p, t)) = workflow.task_location(task) else {
            return Err(Rejected::of(
                RejectKind::Unknown,
                event,
                format!("workflow `{}` has no task `{task}`", workflow.name),
                "unknown task",
            ));
        };
        let state = &instance.phases[p].tasks[t];
        let allowed = if remediation {
            held.contains(&p) && !matches!(state.status, TaskStatus::Dispatched { .. } | TaskStatus::Waiting { .. })
        } else {
            matches!(state.status, TaskStatus::Failed { .. } | TaskStatus::Cancelled { .. })
        };
        if !allowed {
            let reason = if remediation {
                format!(
                    "while a phase is on hold, only its tasks can be re-run (on hold: {})",
                    held.iter().map(|&h| instance.phases[h].id.as_str()).collect::<Vec<_>>().join(", ")
                )
            } else {
                "only a failed or cancelled task can be retried".to_owned()
            };
            return Err(Rejected::new(event, format!("task {task} is {} in phase {}", state.status.kind(), instance.phases[p].id), reason));
        }
        positions.push((p, t));
    }
    // Re-running a task invalidates what was built on it: the tasks
    // downstream of it in its phase run again too (Airflow's "clear
    // downstream"), so no task stays succeeded on stale inputs.
    let mut index = 0;
    while index < positions.len() {
        let (p, t) = positions[index];
        for (d, def) in workflow.phases[p].tasks.iter().enumerate() {
            if def.depends_on.contains(&t) && !positions.contains(&(p, d)) {
                if matches!(instance.phases[p].tasks[d].status, TaskStatus::Dispatched { .. } | TaskStatus::Waiting { .. }) {
                    return Err(Rejected::new(
                        event,
                        format!("task {} is running in phase {}", instance.phases[p].tasks[d].id, instance.phases[p].id),
                        "wait for it to finish before re-running what it depends on",
                    ));
                }
                if !matches!(instance.phases[p].tasks[d].status, TaskStatus::Pending) {
                    positions.push((p, d));
                }
            }
        }
        index += 1;
    }
    for (p, t) in positions {
        let state = &mut instance.phases[p].tasks[t];
        state.budget_from = state.attempts;
        state.status = TaskStatus::Pending;
    }
    for phase in &mut instance.phases {
        match phase.status {
            PhaseStatus::Failed { .. } if !remediation => {
                phase.status = PhaseStatus::Running { since: at };
                phase.restart_clock(at);
            }
            PhaseStatus::OnHold { .. } if remediation => {
                // The gates are evaluated again once the re-run tasks are done.
                for gate in &mut phase.gates {
                    gate.status = GateStatus::Pending;
                }
                phase.status = PhaseStatus::Running { since: at };
                phase.restart_clock(at);
            }
            PhaseStatus::Failed { .. }
            | PhaseStatus::OnHold { .. }
            | PhaseStatus::Pending
            | PhaseStatus::Running { .. }
            | PhaseStatus::AwaitingApproval { .. }
            | PhaseStatus::Passed { .. } => {}
        }
    }
    if !remediation {
        instance.status = InstanceStatus::Running;
    }
    Ok(Vec::new())
}

/// `Redriven` with a phase (`retry ID --phase P`): the whole phase runs
/// again, every task and then its gates, after it failed (a gate's must
/// criterion, say) or while it is on hold. Decisions, evaluations and
/// baselines so far stay in the history.
fn redrive_phase(cx: Cx<'_>, phase: &str) -> Handled {
    let Cx { instance, workflow, event, at } = cx;
    let p = super::super::guards::phase_index(workflow, event, phase)?;
    let state = &instance.phases[p];
    let allowed = match (&instance.status, &state.status) {
        (InstanceStatus::Failed { .. }, PhaseStatus::Failed { .. }) => true,
        (InstanceStatus::Running | InstanceStatus::Halted { .. }, PhaseStatus::OnHold { .. }) => true,
        (
            InstanceStatus::Running
            | InstanceStatus::Halted { .. }
            | InstanceStatus::Failed { .. }
            | InstanceStatus::Completed { .. }
            | InstanceStatus::Cancelled { .. }
            | InstanceStatus::AwaitingDecision { .. }
            | InstanceStatus::RollingBack { .. }
            | InstanceStatus::RolledBack { .. },
            PhaseStatus::Pending
            | PhaseStatus::Running { .. }
            | PhaseStatus::AwaitingApproval { .. }
            | PhaseStatus::OnHold { .. }
            | PhaseStatus::Passed { .. }
            | PhaseStatus::Failed { .. },
        ) => false,
    };
    if !allowed {
        return Err(Rejected::new(
            event,
            format!("phase {phase} is {} and instance {} is {}", state.status.kind(), instance.id, instance.effective_status()),
            "a phase runs again after it failed, or while it is on hold for remediation",
        ));
    }
    if let Some(other) = instance.phases.iter().enumerate().find(|(q, phase)| *q != p && matches!(phase.status, PhaseStatus::Failed { .. }))
    {
        return Err(Rejected::new(event, format!("phase {} failed too", other.1.id), "retry one failed phase at a time"));
    }
    if let Some(running) = state.tasks.iter().find(|t| matches!(t.status, TaskStatus::Dispatched { .. } | TaskStatus::Waiting { .. })) {
        return Err(Rejected::new(event, format!("task {} is running in phase {phase}", running.id), "wait for it to finish"));
    }
    let revived = matches!(instance.status, InstanceStatus::Failed { .. });
    let state = &mut instance.phases[p];
    for (task, plan) in state.tasks.iter_mut().zip(&workflow.phases[p].tasks) {
        // An on-demand task nobody asked for stays as it is.
        if plan.on_demand && !task.requested && matches!(task.status, TaskStatus::Pending) {
            continue;
        }
        task.budget_from = task.attempts;
        task.status = TaskStatus::Pending;
    }
    for gate in &mut state.gates {
        gate.status = GateStatus::Pending;
    }
    state.status = PhaseStatus::Running { since: at };
    state.restart_clock(at);
    if revived {
        super::gate::revive(instance);
    }
    Ok(Vec::new())
}

/// `SignalReceived`: a declared signal's data is kept for conditions
/// (`signals.<name>`) and queues the triggers listening for it.
pub(crate) fn signal(cx: Cx<'_>, e: &payload::SignalReceived) -> Handled {
    let Cx { instance, workflow, event, .. } = cx;
    let (name, data) = (&e.name, &e.data);
    match &instance.status {
        InstanceStatus::Running
        | InstanceStatus::Halted { .. }
        | InstanceStatus::AwaitingDecision { .. }
        | InstanceStatus::RollingBack { .. } => {}
        InstanceStatus::Completed { .. }
        | InstanceStatus::Failed { .. }
        | InstanceStatus::Cancelled { .. }
        | InstanceStatus::RolledBack { .. } => {
            return Err(Rejected::new(
                event,
                format!("instance {} is {}", instance.id, instance.status.kind()),
                "signals go to instances that have not finished",
            ));
        }
    }
    if !workflow.signals.contains_key(name) {
        let declared: Vec<&str> = workflow.signals.keys().map(String::as_str).collect();
        return Err(Rejected::new(
            event,
            format!("workflow `{}` declares no signal `{name}`", workflow.name),
            format!("declared signals: {}", if declared.is_empty() { "none".to_owned() } else { declared.join(", ") }),
        ));
    }
    instance.signals.insert(name.clone(), data.clone());
    let count = instance.signal_counts.entry(name.clone()).or_insert(0);
    *count += 1;
    let cause = format!("signal {name} #{count}: {data}");
    trigger::queue(instance, workflow, trigger::Scope::Any, |on| matches!(on, TriggerOn::Signal(signal) if signal == name), &cause);
    Ok(Vec::new())
}
