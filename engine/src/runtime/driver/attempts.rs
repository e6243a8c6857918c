//! Work run outside the driver: task attempts, compensations, watch
//! samples and notifications, each in its own tokio task, reporting back
//! with a message.

use super::*;

impl Driver {
    /// Runs a compensation attempt on its agent, like a task attempt.
    pub(super) fn compensate(&mut self, id: &str, step: usize, attempt: u32, key: String) {
        let Some(cell) = self.cells.get(id) else {
            return;
        };
        if self.running.contains_key(&key) {
            return;
        }
        let Some(compensation) = cell.instance.rollback.as_ref().and_then(|r| r.steps.get(step)) else {
            return;
        };
        match &compensation.state.status {
            TaskStatus::Dispatched { key: current, .. } if *current == key => {}
            _ => return,
        }
        let Some(plan) = machine::compensation_step(&cell.workflow, compensation).cloned() else {
            return;
        };
        let request = TaskRequest {
            instance: id.to_owned(),
            task: plan.id.clone(),
            attempt,
            idempotency_key: key.clone(),
            params: crate::template::render(&plan.params, &cell.instance.vars, id),
            timeout: plan.timeout,
        };
        let span = info_span!("compensation", instance = id, step = %plan.id, attempt);
        let id_owned = id.to_owned();
        let task_key = key.clone();
        let running = self.spawn_attempt(&plan.agent, request, None, span, true, move |outcome| Message::Compensated {
            id: id_owned,
            step,
            attempt,
            key: task_key,
            outcome,
        });
        self.running.insert(key, running);
    }

    /// Takes one sample of a watch through its agent in the background.
    pub(super) fn sample(&mut self, id: &str, p: usize, w: usize) {
        let Some(cell) = self.cells.get(id) else {
            return;
        };
        let plan = &cell.workflow.phases[p];
        let Some(watch) = plan.watches.get(w) else {
            return;
        };
        let key = sampling_key(id, p, w);
        if !self.sampling.insert(key) {
            return;
        }
        let taken = cell.instance.phases[p].watches.get(w).map_or(0, |s| s.taken);
        let request = TaskRequest {
            instance: id.to_owned(),
            task: watch.id.clone(),
            attempt: 1,
            idempotency_key: format!("{id}/{}.{}/watch/{}/{}", plan.id, cell.instance.phases[p].attempt, watch.id, taken + 1),
            params: crate::template::render(&watch.params, &cell.instance.vars, id),
            // The watch's own timeout: slow evidence is not bad evidence.
            timeout: Some(watch.sample_timeout_for(&cell.instance.vars)),
        };
        let id_owned = id.to_owned();
        let span = info_span!("watch", instance = id, watch = %watch.id);
        let agent = watch.agent.clone();
        // A sample is tracked by `sampling`, not by `running`: nothing cancels it.
        let _ = self.spawn_attempt(&agent, request, None, span, false, move |outcome| {
            let result = match outcome {
                Outcome::Succeeded { output, .. } => machine::SampleResult::Answered(output),
                Outcome::Failed { error, timed_out: true, .. } => machine::SampleResult::TimedOut(error),
                Outcome::Failed { error, .. } => machine::SampleResult::Failed(error),
                Outcome::Cancelled { reason } => machine::SampleResult::TimedOut(reason),
            };
            Message::Sampled { id: id_owned, phase: p, watch: w, result }
        });
    }

    /// Records a sample: its value and what it means for the watch's
    /// condition. Missing values and agent errors are "no data", with the
    /// agent's message kept verbatim.
    pub(super) fn sampled(&mut self, id: &str, p: usize, w: usize, result: machine::SampleResult) {
        self.sampling.remove(&sampling_key(id, p, w));
        if !self.ensure_loaded(id) {
            return;
        }
        let Some(cell) = self.cells.get(id) else {
            return;
        };
        if cell.workflow.phases[p].watches.get(w).is_none() {
            return;
        }
        let event = machine::sample_event(&cell.instance, &cell.workflow, p, w, &result);
        self.apply_and_drive(id, vec![event], Vec::new(), Vec::new(), Answer::None);
    }

    pub(super) fn dispatch(&mut self, id: &str, p: usize, t: usize, attempt: u32, key: String) {
        let Some(cell) = self.cells.get(id) else {
            return;
        };
        if self.running.contains_key(&key) {
            return;
        }
        // The state must still have this attempt in flight.
        match &cell.instance.phases[p].tasks[t].status {
            TaskStatus::Dispatched { key: current, .. } if *current == key => {}
            _ => return,
        }
        let plan = &cell.workflow.phases[p];
        let task = &plan.tasks[t];
        let request = TaskRequest {
            instance: id.to_owned(),
            task: task.id.clone(),
            attempt,
            idempotency_key: key.clone(),
            params: crate::template::render_in(
                &task.params,
                crate::template::Context { vars: &cell.instance.vars, decisions: &machine::decision_inputs(&cell.instance), instance: id },
            ),
            timeout: task.timeout,
        };
        let span = info_span!("task", instance = id, phase = %plan.id, task = %task.id, attempt);
        let id_owned = id.to_owned();
        let task_key = key.clone();
        let agent = task.agent.clone();
        let running = self.spawn_attempt(&agent, request, None, span, true, move |outcome| Message::Finished {
            id: id_owned,
            phase: p,
            task: t,
            attempt,
            key: task_key,
            outcome,
        });
        self.running.insert(key, running);
    }

    /// Delivers a notice through its step's agent in the background,
    /// retried by the step's policy; its outbox entry is deleted once it is
    /// delivered or fails for good. The payload goes into the parameters as
    /// `json` (what `http` and `webhook` post) and `stdin` (what `exec`
    /// reads) unless the definition set those.
    pub(super) fn send_notice(&mut self, id: &str, notice: crate::runtime::notices::Notice) {
        if self.mode != Mode::Drive || self.shutdown.is_some() || self.running.contains_key(&notice.key) {
            return;
        }
        let Some(cell) = self.cells.get(id) else {
            return;
        };
        let instance = id.to_owned();
        let key = notice.key.clone();
        let Some(step) = notice.step(&cell.workflow) else {
            warn!(instance = id, key = %notice.key, "notify: the definition has no step for this notification; it is dropped");
            let _ = self.sender.send(Message::Notified { id: instance, key });
            return;
        };
        let mut params = crate::template::render(&step.params, &cell.instance.vars, id);
        params.entry("json").or_insert_with(|| notice.payload.clone());
        params.entry("stdin").or_insert_with(|| notice.payload.clone());
        let request = TaskRequest {
            instance: instance.clone(),
            task: step.id.clone(),
            attempt: 1,
            idempotency_key: key.clone(),
            params,
            timeout: step.timeout,
        };
        let span = info_span!("notification", instance = id, step = %step.id);
        let task_key = key.clone();
        let running = self.spawn_attempt(&step.agent, request, Some(step.retry.clone()), span, false, move |outcome| {
            match outcome {
                Outcome::Succeeded { .. } => info!(instance = %instance, key = %task_key, "notification sent"),
                Outcome::Failed { error, .. } => warn!(instance = %instance, key = %task_key, %error, "notification failed for good"),
                Outcome::Cancelled { .. } => {}
            }
            Message::Notified { id: instance, key: task_key }
        });
        self.running.insert(key, running);
    }

    /// Runs an agent's attempt in its own tokio task once it holds the
    /// engine's permits (the global limit and the agent's own): task
    /// attempts, compensations, watch samples and notifications all go
    /// through here, so the configured limits bound all of them. With
    /// `retry`, a retryable failure is tried again by that policy within
    /// the task (notifications, which record no attempts); otherwise the
    /// machine decides. `report` turns the outcome into the driver's message.
    fn spawn_attempt(
        &self,
        agent_name: &str,
        request: TaskRequest,
        retry: Option<crate::plan::RetryPolicy>,
        span: tracing::Span,
        keep_log: bool,
        report: impl FnOnce(Outcome) -> Message + Send + 'static,
    ) -> Running {
        let logs = keep_log.then(|| self.shared.logs.clone()).flatten();
        let clock = Arc::clone(&self.shared.clock);
        let sender = self.sender.clone();
        let agent = self.shared.registry.get(agent_name);
        let global = Arc::clone(&self.shared.global_permits);
        let per_agent = self.shared.agent_permits.get(agent_name).cloned();
        let token = CancellationToken::new();
        let cancel = token.clone();
        let agent_name = agent_name.to_owned();
        let handle = tokio::spawn(
            async move {
                let Some(agent) = agent else {
                    let error = format!("agent `{agent_name}` is not registered in this engine");
                    let _ = sender.send(report(Outcome::Failed { error, retryable: false, timed_out: false }));
                    return;
                };
                let attempts = retry.as_ref().map_or(1, |r| r.max_attempts.max(1));
                let mut request = request;
                let mut attempt = 1;
                let outcome = loop {
                    let outcome = {
                        let _global = global.acquire().await;
                        let _per_agent = match &per_agent {
                            Some(semaphore) => Some(semaphore.acquire().await),
                            None => None,
                        };
                        let log = super::super::task_logs::sink(logs.as_deref(), &request, Arc::clone(&clock));
                        run_attempt(Arc::clone(&agent), request.clone(), cancel.clone(), log).await
                    };
                    match (&outcome, &retry) {
                        (Outcome::Failed { retryable: true, error, .. }, Some(policy)) if attempt < attempts => {
                            debug!(attempt, %error, "retrying");
                            tokio::time::sleep(policy.delay(attempt + 1, 0.5)).await;
                            attempt += 1;
                            request.attempt = attempt;
                        }
                        _ => break outcome,
                    }
                };
                // Stopping: what was not reported is found again at recovery.
                if !matches!(outcome, Outcome::Cancelled { .. }) || retry.is_none() {
                    let _ = sender.send(report(outcome));
                }
            }
            .instrument(span),
        );
        Running { token, abort: handle.abort_handle() }
    }
}

pub(super) async fn run_attempt(
    agent: Arc<dyn phasegate_agents::Agent>,
    request: TaskRequest,
    cancel: CancellationToken,
    log: phasegate_agents::LogSink,
) -> Outcome {
    let timeout = request.timeout;
    let started = Instant::now();
    let heartbeat: phasegate_agents::Heartbeat = Arc::new(|progress| debug!(%progress, "heartbeat"));
    let context = TaskContext::new(cancel.clone(), heartbeat).with_log(log);
    let run = agent.run(request, context);
    let limit = async {
        match timeout {
            Some(timeout) => tokio::time::sleep(timeout).await,
            None => std::future::pending::<()>().await,
        }
    };
    // Cancellation wins over a result that arrives at the same time: an agent
    // that observed the token returns an error, which is not a failure.
    let result = tokio::select! {
        biased;
        () = cancel.cancelled() => return Outcome::Cancelled { reason: "cancelled".to_owned() },
        result = run => result,
        () = limit => {
            let timeout = timeout.map(crate::plan::format_duration).unwrap_or_default();
            return Outcome::Failed { error: format!("timed out after {timeout}"), retryable: true, timed_out: true };
        }
    };
    if cancel.is_cancelled() {
        return Outcome::Cancelled { reason: "cancelled".to_owned() };
    }
    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    match result {
        Ok(output) => {
            let size = serde_json::to_vec(&output.0).map(|b| b.len()).unwrap_or(usize::MAX);
            if size > MAX_OUTPUT_BYTES {
                Outcome::Failed {
                    error: format!("the output is {size} bytes; the limit is {MAX_OUTPUT_BYTES}"),
                    retryable: false,
                    timed_out: false,
                }
            } else {
                Outcome::Succeeded { output: output.0, duration_ms }
            }
        }
        Err(error) => Outcome::Failed { error: error.message().to_owned(), retryable: error.is_retryable(), timed_out: false },
    }
}

/// The key of a watch with a sample being taken.
pub(super) fn sampling_key(id: &str, phase: usize, watch: usize) -> String {
    format!("{id}/{phase}/{watch}")
}
