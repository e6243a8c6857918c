//! Progress of the long stretches, for logs: `run` and `serve` print a line
//! when a wait (a soak) starts or a watch starts breaching (its `for` window
//! opens), then, at an interval that suits its length, how much is left, so
//! a CI log shows a two-hour soak is alive instead of two hours of silence.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::machine::{payload, Event, SampleVerdict, Timestamp};
use crate::runtime::Notification;
use crate::Engine;

/// How often a stretch of `total` says how much is left: a tenth of it,
/// between 10 seconds and 5 minutes.
pub(super) fn interval(total: Duration) -> Duration {
    (total / 10).clamp(Duration::from_secs(10), Duration::from_secs(300))
}

/// A soak (a `wait` task) in progress.
struct Wait {
    started: Timestamp,
    due: Timestamp,
    next: Timestamp,
}

/// A watch's `for` window: it has breached since `since`, and fires once that has held for `sustain`.
struct Window {
    since: Timestamp,
    sustain: Duration,
    next: Timestamp,
}

/// The waits and windows under way, and the lines they call for.
#[derive(Default)]
pub(super) struct Pacer {
    waits: BTreeMap<(String, String), Wait>,
    windows: BTreeMap<(String, String), Window>,
}

fn text(duration: Duration) -> String {
    crate::plan::format_duration(Duration::from_secs(duration.as_secs()))
}

fn after(at: Timestamp, duration: Duration) -> Timestamp {
    at.after(duration)
}

impl Pacer {
    /// The lines an event calls for (a stretch starting or ending).
    pub(super) fn observe(&mut self, engine: &Engine, note: &Notification) -> Vec<String> {
        let id = &note.instance;
        let at = note.record.at();
        let mut lines = Vec::new();
        match note.record.event() {
            Event::WaitStarted(payload::WaitStarted { task, due, .. }) => {
                let total = Duration::from_millis(due.since(at));
                lines.push(format!(
                    "{at}  {id}  task {task} waits {} (until {due}); progress every {}",
                    text(total),
                    text(interval(total))
                ));
                self.waits.insert((id.clone(), task.clone()), Wait { started: at, due: *due, next: after(at, interval(total)) });
            }
            Event::WaitElapsed(payload::WaitElapsed { task, .. }) => {
                if let Some(wait) = self.waits.remove(&(id.clone(), task.clone())) {
                    lines.push(format!(
                        "{at}  {id}  task {task}: its wait of {} is over",
                        text(Duration::from_millis(wait.due.since(wait.started)))
                    ));
                }
            }
            Event::TaskCancelled(payload::TaskCancelled { task, .. }) => {
                self.waits.remove(&(id.clone(), task.clone()));
            }
            Event::WatchSampled(payload::WatchSampled { phase, watch, verdict, value, .. }) => {
                let key = (id.clone(), format!("{phase}/{watch}"));
                match verdict {
                    SampleVerdict::Breach if !self.windows.contains_key(&key) => {
                        let sustain = sustain(engine, id, phase, watch);
                        let value = value.map_or_else(|| "no value".to_owned(), |v| v.to_string());
                        lines.push(format!(
                            "{at}  {id}  watch {phase}/{watch} breaching ({value}); it fires if that holds for {}",
                            text(sustain)
                        ));
                        self.windows.insert(key, Window { since: at, sustain, next: after(at, interval(sustain)) });
                    }
                    SampleVerdict::Ok => {
                        if let Some(window) = self.windows.remove(&key) {
                            lines.push(format!(
                                "{at}  {id}  watch {phase}/{watch} recovered after breaching for {}",
                                text(Duration::from_millis(at.since(window.since)))
                            ));
                        }
                    }
                    SampleVerdict::Breach | SampleVerdict::NoData => {}
                }
            }
            Event::TriggerFired(_) | Event::WatchInconclusive(_) => {
                // A window that fired (or gave up) is over; a new breach opens a new one.
                self.windows.retain(|(instance, _), w| instance != id || at.since(w.since) < w.sustain.as_millis() as u64);
            }
            Event::InstanceCompleted | Event::InstanceFailed(_) | Event::Cancelled(_) | Event::Halted(_) | Event::RollbackStarted(_) => {
                self.waits.retain(|(instance, _), _| instance != id);
                self.windows.retain(|(instance, _), _| instance != id);
            }
            _ => {}
        }
        lines
    }

    /// The lines due by `now`: how much is left of each stretch whose interval passed.
    pub(super) fn tick(&mut self, now: Timestamp) -> Vec<String> {
        let mut lines = Vec::new();
        for ((id, task), wait) in &mut self.waits {
            if now >= wait.next && now < wait.due {
                let total = Duration::from_millis(wait.due.since(wait.started));
                lines.push(format!("{now}  {id}  task {task} waiting: {} of {} left", text(wait.due.left(now)), text(total)));
                wait.next = after(now, interval(total));
            }
        }
        for ((id, watch), window) in &mut self.windows {
            let held = Duration::from_millis(now.since(window.since));
            if now >= window.next && held < window.sustain {
                lines.push(format!("{now}  {id}  watch {watch} breaching for {} of {}", text(held), text(window.sustain)));
                window.next = after(now, interval(window.sustain));
            }
        }
        lines
    }
}

/// How long watch `phase/watch` of instance `id` must breach before it fires (its `for`).
fn sustain(engine: &Engine, id: &str, phase: &str, watch: &str) -> Duration {
    let Ok((instance, workflow)) = engine.instance(id) else { return Duration::ZERO };
    workflow
        .phases
        .iter()
        .filter(|p| p.id == phase)
        .flat_map(|p| &p.watches)
        .find(|w| w.id == watch)
        .map_or(Duration::ZERO, |w| w.sustain_for(&instance.vars))
}

/// Prints the pacer's lines for everything `engine` makes durable, until it
/// shuts down (`serve`'s log).
pub(super) async fn log(engine: std::sync::Arc<Engine>) {
    let mut events = engine.subscribe();
    let mut pacer = Pacer::default();
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            note = events.recv() => match note {
                Ok(note) => pacer.observe(&engine, &note).into_iter().for_each(|line| eprintln!("{line}")),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
            _ = ticks.tick() => pacer.tick(engine.now()).into_iter().for_each(|line| eprintln!("{line}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_is_a_tenth_between_ten_seconds_and_five_minutes() {
        assert_eq!(interval(Duration::from_secs(30)), Duration::from_secs(10));
        assert_eq!(interval(Duration::from_secs(600)), Duration::from_secs(60));
        assert_eq!(interval(Duration::from_secs(7200)), Duration::from_secs(300));
    }
}
