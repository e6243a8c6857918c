//! What `/metrics` serves: a prometheus-client registry kept up to date from
//! the engine's event stream, so a scrape reads counters instead of scanning
//! every instance. Instances by status start from one listing when the server
//! starts and then move with each durable event; pending approvals and the
//! store's write statistics are read when scraped (the approvals index and a
//! few atomics, not the instances).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::machine::{EffectiveStatus, Event};
use crate::plan::TriggerSource;
use crate::runtime::{Engine, Error, Notification};

/// The content type of the text the registry encodes (OpenMetrics 1.0, which
/// Prometheus scrapes natively).
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TypeLabel {
    r#type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskLabels {
    agent: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OnLabel {
    on: &'static str,
}

/// The metrics of one engine, and the registry that encodes them.
pub(crate) struct Metrics {
    registry: Registry,
    instances: Family<StatusLabel, Gauge>,
    statuses: Mutex<HashMap<String, EffectiveStatus>>,
    events: Family<TypeLabel, Counter>,
    tasks: Family<TaskLabels, Counter>,
    triggers: Family<OnLabel, Counter>,
    watch_firings: Counter,
    rollbacks_requested: Counter,
    rollbacks_completed: Counter,
    task_seconds: Histogram,
}

impl Metrics {
    /// The registry for `engine`, with its instances counted once by status.
    pub(crate) fn new(engine: Arc<Engine>) -> Result<Self, Error> {
        let mut registry = Registry::default();
        let instances = Family::<StatusLabel, Gauge>::default();
        registry.register("phasegate_instances", "Instances by effective status", instances.clone());
        let events = Family::<TypeLabel, Counter>::default();
        registry.register("phasegate_events", "Events made durable since the server started, by type", events.clone());
        let tasks = Family::<TaskLabels, Counter>::default();
        registry.register("phasegate_tasks", "Task attempts by agent and outcome since the server started", tasks.clone());
        let triggers = Family::<OnLabel, Counter>::default();
        registry.register("phasegate_trigger_firings", "Triggers that acted, by what they react to", triggers.clone());
        let watch_firings = Counter::default();
        registry.register("phasegate_watch_firings", "Triggers on a watch that acted (watch firings)", watch_firings.clone());
        let rollbacks_requested = Counter::default();
        registry.register("phasegate_rollbacks_requested", "Rollbacks started by an operator or a trigger", rollbacks_requested.clone());
        let rollbacks_completed = Counter::default();
        registry.register("phasegate_rollbacks_completed", "Rollbacks whose compensations all succeeded", rollbacks_completed.clone());
        let task_seconds = Histogram::new([0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 300.0]);
        registry.register("phasegate_task_duration_seconds", "Duration of succeeded task attempts", task_seconds.clone());
        registry.register_collector(Box::new(Scraped(Arc::clone(&engine))));
        let mut statuses = HashMap::new();
        for (id, summary) in engine.list(None)? {
            instances.get_or_create(&StatusLabel { status: summary.status.as_str() }).inc();
            statuses.insert(id, summary.status);
        }
        Ok(Metrics {
            registry,
            instances,
            statuses: Mutex::new(statuses),
            events,
            tasks,
            triggers,
            watch_firings,
            rollbacks_requested,
            rollbacks_completed,
            task_seconds,
        })
    }

    /// Counts one durable event.
    pub(crate) fn observe(&self, note: &Notification) {
        let event = note.record.event();
        self.events.get_or_create(&TypeLabel { r#type: event.kind() }).inc();
        if let Some(status) = note.status {
            let before = self.statuses.lock().ok().and_then(|mut statuses| statuses.insert(note.instance.clone(), status));
            if before != Some(status) {
                if let Some(before) = before {
                    self.instances.get_or_create(&StatusLabel { status: before.as_str() }).dec();
                }
                self.instances.get_or_create(&StatusLabel { status: status.as_str() }).inc();
            }
        }
        let outcome = match event {
            Event::TaskDispatched(_) => Some("dispatched"),
            Event::TaskSucceeded(_) => Some("succeeded"),
            Event::TaskFailed(_) => Some("failed"),
            _ => None,
        };
        if let (Some(outcome), Some(agent)) = (outcome, &note.agent) {
            self.tasks.get_or_create(&TaskLabels { agent: agent.clone(), outcome }).inc();
        }
        match event {
            Event::TriggerFired(_) => {
                if let Some(on) = note.trigger_on {
                    self.triggers.get_or_create(&OnLabel { on: on.into() }).inc();
                    if on == TriggerSource::Watch {
                        self.watch_firings.inc();
                    }
                }
            }
            Event::RollbackStarted(_) => {
                self.rollbacks_requested.inc();
            }
            Event::RollbackCompleted => {
                self.rollbacks_completed.inc();
            }
            Event::TaskSucceeded(succeeded) => self.task_seconds.observe(succeeded.duration_ms as f64 / 1000.0),
            _ => {}
        }
    }

    /// The text a scrape answers.
    pub(crate) fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// What is read when scraped: pending approvals (from their index) and the
/// store's write statistics.
struct Scraped(Arc<Engine>);

impl std::fmt::Debug for Scraped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scraped")
    }
}

impl Collector for Scraped {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let engine = &self.0;
        if let Ok(pending) = engine.approvals(None) {
            let now = engine.now();
            let oldest = pending.iter().map(|p| now.since(p.since)).max().unwrap_or(0);
            let gauge = ConstGauge::new(pending.len() as i64);
            gauge.encode(encoder.encode_descriptor(
                "phasegate_approvals_pending",
                "Decisions people are waiting for",
                None,
                gauge.metric_type(),
            )?)?;
            let gauge = ConstGauge::new(oldest as f64 / 1000.0);
            gauge.encode(encoder.encode_descriptor(
                "phasegate_approvals_oldest_seconds",
                "Age of the oldest pending decision",
                None,
                gauge.metric_type(),
            )?)?;
        }
        if let Some(stats) = engine.store().stats() {
            let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
            let counters = [
                ("phasegate_store_batches", "Batches made durable (each one atomic write)", load(&stats.batches) as f64),
                ("phasegate_store_events", "Events appended", load(&stats.events) as f64),
                ("phasegate_store_flushes", "Flushes (group commit: one flush covers many batches)", load(&stats.flushes) as f64),
                ("phasegate_store_flush_seconds", "Time spent flushing", load(&stats.flush_micros) as f64 / 1e6),
            ];
            for (name, help, value) in counters {
                let counter = ConstCounter::new(value);
                counter.encode(encoder.encode_descriptor(name, help, None, counter.metric_type())?)?;
            }
        }
        // A cluster node: what it holds, and how it got and kept it.
        if let Some(cluster) = engine.cluster() {
            for (name, help, value) in [
                ("phasegate_cluster_shards_owned", "Shards whose lease this node holds (of 64)", cluster.shards as i64),
                ("phasegate_cluster_live_nodes", "Nodes whose heartbeat is within a lease", cluster.live_nodes as i64),
            ] {
                let gauge = ConstGauge::new(value);
                gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
            }
            for (name, help, value) in [
                ("phasegate_cluster_lease_renewals", "Lease renewals this node made", cluster.renewals),
                ("phasegate_cluster_takeovers", "Shards this node took over from a node whose lease expired", cluster.takeovers),
                ("phasegate_cluster_shards_released", "Shards this node gave up (a node joined) or lost", cluster.released),
            ] {
                let counter = ConstCounter::new(value as f64);
                counter.encode(encoder.encode_descriptor(name, help, None, counter.metric_type())?)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::{payload, Record, Timestamp};

    fn fired(trigger_on: Option<TriggerSource>, status: EffectiveStatus) -> Notification {
        let event =
            Event::TriggerFired(payload::TriggerFired { phase: "launch".into(), trigger: "t".into(), cause: "watch errors fired".into() });
        Notification { instance: "i".into(), record: Record::new(1, Timestamp(1), event), status: Some(status), agent: None, trigger_on }
    }

    /// Regression (typed core issue): watch firings were counted by the
    /// text of the trigger's cause; they are counted by what the trigger
    /// reacts to, and instances by status move with the events.
    #[tokio::test]
    async fn regression_watch_firings_are_counted_by_the_trigger_source_not_the_cause_text() {
        let engine = Engine::builder().store(Arc::new(phasegate_store::MemoryStore::in_memory())).build().await.expect("engine");
        let metrics = Metrics::new(Arc::new(engine)).expect("metrics");
        metrics.observe(&fired(Some(TriggerSource::Watch), EffectiveStatus::Running));
        // A signal's trigger whose cause happens to start with "watch" is not a watch firing.
        metrics.observe(&fired(Some(TriggerSource::Signal), EffectiveStatus::AwaitingApproval));
        let text = metrics.encode().expect("encodes");
        assert!(text.contains("phasegate_watch_firings_total 1\n"), "{text}");
        assert!(text.contains("phasegate_trigger_firings_total{on=\"watch\"} 1\n"), "{text}");
        assert!(text.contains("phasegate_trigger_firings_total{on=\"signal\"} 1\n"), "{text}");
        assert!(text.contains("phasegate_instances{status=\"awaiting_approval\"} 1\n"), "{text}");
        assert!(text.contains("phasegate_instances{status=\"running\"} 0\n"), "the instance moved on: {text}");
        assert!(text.contains("phasegate_events_total{type=\"TriggerFired\"} 2\n"), "{text}");
        assert!(text.ends_with("# EOF\n"), "OpenMetrics text: {text}");
    }
}
