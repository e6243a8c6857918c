//! The console's pages: what each shows, gathered from the engine into
//! plain serializable rows for the templates.

use std::sync::Arc;

use axum::extract::{Path as UrlPath, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{session, viewer, Page, Viewer};
use crate::machine::{DecisionKind, Target, TaskStatus};
use crate::runtime::{DecisionRequest, Error};
use crate::server::Api;

/// Most rows the instance list shows per page.
pub(crate) const PAGE_SIZE: usize = 100;
/// Most decisions the inbox shows per page (each with its evidence and form).
pub(crate) const INBOX_PAGE: usize = 25;

/// Renders `template` with `context`; a template error is logged and shown as a 500 page.
fn render(api: &Api, template: &str, context: minijinja::Value) -> Result<String, String> {
    api.templates.get_template(template).and_then(|t| t.render(context)).map_err(|error| {
        tracing::error!(template, %error, "a console page did not render");
        format!("the page {template} did not render: {error}")
    })
}

fn me(viewer: Option<&Viewer>) -> minijinja::Value {
    match viewer {
        Some(v) => minijinja::context! {
            principal => v.caller.principal,
            admin => v.caller.admin,
            authentication => v.caller.describe(),
            csrf => v.csrf,
        },
        None => minijinja::Value::from(()),
    }
}

fn page(api: &Api, viewer: Option<&Viewer>, status: StatusCode, template: &str, context: minijinja::Value) -> Response {
    let cookie = viewer.and_then(|v| v.set_cookie.clone());
    let context = minijinja::context! { me => me(viewer), ..context };
    match render(api, template, context) {
        Ok(body) => Page::Html(status, body, cookie).into_response(),
        Err(message) => (StatusCode::INTERNAL_SERVER_ERROR, message).into_response(),
    }
}

/// A page saying one thing (an error, or what a decision did).
pub(super) fn message(api: &Api, viewer: Option<&Viewer>, status: StatusCode, title: &str, text: &str) -> Response {
    page(api, viewer, status, "message.html", minijinja::context! { title, text, status => status.as_u16() })
}

/// The signed-in viewer, or a redirect to the sign-in page.
fn signed_in(api: &Api, request: &Request) -> Result<Viewer, Box<Response>> {
    match viewer(api, request.headers(), crate::server::peer(request)) {
        Ok(Some(viewer)) => Ok(viewer),
        Ok(None) => Err(Box::new(Page::Go("/console/login".to_owned()).into_response())),
        Err(why) => Err(Box::new(message(api, None, StatusCode::UNAUTHORIZED, "Not signed in", &why))),
    }
}

/// The sign-in page with a fresh anti-forgery value (cookie and field).
pub(super) fn login_page(api: &Api, status: StatusCode, error: Option<&str>) -> Response {
    let csrf = session::random();
    let mut response = page(api, None, status, "login.html", minijinja::context! { error, login_csrf => csrf });
    if let Ok(value) = header::HeaderValue::from_str(&session::login_cookie(&csrf)) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// `GET /console/login`.
pub(super) async fn login_form(State(api): State<Arc<Api>>, request: Request) -> Response {
    if let Ok(Some(_)) = viewer(&api, request.headers(), crate::server::peer(&request)) {
        return Page::Go("/console/".to_owned()).into_response();
    }
    login_page(&api, StatusCode::OK, None)
}

/// One criterion as the inbox shows it.
#[derive(Serialize)]
struct CriterionRow {
    label: String,
    level: String,
    verdict: String,
    condition: String,
    values: String,
    detail: String,
}

/// A declared input of an approval, as a form field.
#[derive(Serialize)]
struct InputField {
    name: String,
    description: String,
    required: bool,
    default: String,
    options: Vec<String>,
}

/// One decision waiting for the viewer.
#[derive(Serialize)]
struct Waiting {
    instance: String,
    workflow: String,
    phase: String,
    gate: String,
    subject: &'static str,
    level: usize,
    since: String,
    waited: String,
    deadline: Option<String>,
    escalates: bool,
    needs: String,
    approvals: Vec<String>,
    criteria: Vec<CriterionRow>,
    score: Option<String>,
    warnings: Vec<String>,
    inconclusive: Vec<String>,
    inputs: Vec<InputField>,
    comment_required: bool,
    request_id: String,
    may_decide: bool,
}

fn values_text(values: &std::collections::BTreeMap<String, Value>, sources: &std::collections::BTreeMap<String, String>) -> String {
    values
        .iter()
        .map(|(path, value)| match sources.get(path) {
            Some(source) => format!("{path} = {value} (from {source})"),
            None => format!("{path} = {value}"),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn waiting_row(api: &Api, viewer: &Viewer, pending: &crate::runtime::PendingApproval, now: crate::machine::Timestamp) -> Waiting {
    let roles = api.engine.roles();
    let loaded = api.engine.instance(&pending.instance).ok();
    let mut criteria = Vec::new();
    let mut inputs = Vec::new();
    let mut comment_required = false;
    let mut subject = "gate";
    let mut escalates = false;
    if let Some((instance, workflow)) = &loaded {
        let p = workflow.phase_index(&pending.phase);
        let g = p.and_then(|p| workflow.phases[p].gates.iter().position(|g| g.id == pending.gate));
        let target = match (p, g) {
            (Some(p), Some(g)) => {
                if let Some(evaluation) = &instance.phases[p].gates[g].evaluation {
                    criteria = evaluation
                        .criteria
                        .iter()
                        .map(|c| CriterionRow {
                            label: c.label.clone(),
                            level: format!("{:?}", c.level).to_lowercase(),
                            verdict: crate::report::verdict_name(c.verdict).to_owned(),
                            condition: c.condition.clone(),
                            values: values_text(&c.values, &c.sources),
                            detail: c.detail.clone(),
                        })
                        .collect();
                }
                Some(Target::gate(workflow, p, g))
            }
            _ => Target::halt_named(workflow, &pending.phase, &pending.gate),
        };
        if let Some(target) = target {
            subject = target.subject.noun();
            if let Some(approval) = target.approval {
                comment_required = approval.comment_required;
                escalates = pending.level < approval.escalation.len();
                inputs = approval
                    .inputs
                    .iter()
                    .map(|(name, input)| InputField {
                        name: name.clone(),
                        description: input.describe(name),
                        required: input.var.default.is_none(),
                        default: input
                            .var
                            .default
                            .as_ref()
                            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                            .unwrap_or_default(),
                        options: input.options.iter().map(|o| o.as_str().map_or_else(|| o.to_string(), str::to_owned)).collect(),
                    })
                    .collect();
            }
        }
    }
    let approvers: Vec<crate::plan::Principal> = pending.approvers.iter().filter_map(|a| crate::plan::Principal::parse(a)).collect();
    Waiting {
        instance: pending.instance.clone(),
        workflow: pending.workflow.clone(),
        phase: pending.phase.clone(),
        gate: pending.gate.clone(),
        subject,
        level: pending.level,
        since: pending.since.to_string(),
        waited: crate::plan::format_duration(std::time::Duration::from_secs(now.since(pending.since) / 1000)),
        deadline: pending.deadline.map(|d| d.to_string()),
        escalates,
        needs: pending.still_needed_among(&roles),
        approvals: pending.approvals.clone(),
        criteria,
        score: pending
            .score
            .as_ref()
            .map(|s| format!("{} % ({} band: pass ≥ {} %, warning ≥ {} %)", s.percent, s.band.name(), s.bands.pass, s.bands.warning)),
        warnings: pending.warnings.clone(),
        inconclusive: pending.inconclusive.clone(),
        inputs,
        comment_required,
        request_id: uuid::Uuid::now_v7().to_string(),
        may_decide: !viewer.caller.admin && roles.allows(&approvers, &viewer.caller.principal).is_some(),
    }
}

#[derive(Deserialize)]
pub(super) struct InboxQuery {
    done: Option<String>,
    page: Option<usize>,
}

/// `GET /console/`: every decision waiting for the viewer, with its evidence and the form.
pub(super) async fn inbox(State(api): State<Arc<Api>>, Query(query): Query<InboxQuery>, request: Request) -> Response {
    let viewer = match signed_in(&api, &request) {
        Ok(viewer) => viewer,
        Err(response) => return *response,
    };
    // The admin decides nothing: it sees everything that waits, without forms.
    let number = query.page.unwrap_or(1).max(1);
    let whose = if viewer.caller.admin { None } else { Some(viewer.caller.principal.as_str()) };
    let (pending, more) = match api.engine.approvals_page(whose, (number - 1) * INBOX_PAGE, INBOX_PAGE) {
        Ok(found) => found,
        Err(error) => return message(&api, Some(&viewer), StatusCode::SERVICE_UNAVAILABLE, "The inbox is unavailable", &error.to_string()),
    };
    let now = api.engine.now();
    let rows: Vec<Waiting> = pending.iter().map(|p| waiting_row(&api, &viewer, p, now)).collect();
    page(
        &api,
        Some(&viewer),
        StatusCode::OK,
        "inbox.html",
        minijinja::context! { title => "Inbox", nav => "inbox", rows, done => query.done, live => "", page => number, more, first => (number - 1) * INBOX_PAGE + 1 },
    )
}

/// `POST /console/decide`: the form's decision, as the viewer. The
/// anti-forgery token must be the session's; the request id makes a second
/// submit of the same form record nothing more.
pub(super) async fn decide(State(api): State<Arc<Api>>, request: Request) -> Response {
    let viewer = match viewer(&api, request.headers(), crate::server::peer(&request)) {
        Ok(Some(viewer)) => viewer,
        Ok(None) => return message(&api, None, StatusCode::UNAUTHORIZED, "Not signed in", "Sign in to decide."),
        Err(why) => return message(&api, None, StatusCode::UNAUTHORIZED, "Not signed in", &why),
    };
    let Ok(Form(fields)) = <Form<Vec<(String, String)>> as axum::extract::FromRequest<()>>::from_request(request, &()).await else {
        return message(&api, Some(&viewer), StatusCode::BAD_REQUEST, "Not a decision", "The form could not be read.");
    };
    let field = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap_or_default();
    if field("csrf").is_empty() || !crate::server::same(field("csrf"), &viewer.csrf) {
        tracing::warn!(route = "POST /console/decide", who = %viewer.caller.principal, reason = "the form's anti-forgery token is not this session's", "refused a request");
        return message(&api, Some(&viewer), StatusCode::FORBIDDEN, "Refused", "This form was not issued to your session (it may be forged, or your session was renewed). Nothing was recorded; open the inbox again.");
    }
    if viewer.caller.admin {
        return message(
            &api,
            Some(&viewer),
            StatusCode::FORBIDDEN,
            "Refused",
            "The admin token operates; it cannot decide. Sign in with your own token.",
        );
    }
    let kind = match field("decision") {
        "approve" => DecisionKind::Approve,
        "reject" => DecisionKind::Reject,
        "hold" => DecisionKind::Hold,
        "escalate" => DecisionKind::Escalate,
        other => {
            return message(
                &api,
                Some(&viewer),
                StatusCode::BAD_REQUEST,
                "Not a decision",
                &format!("`{other}` is not approve, reject, hold or escalate."),
            )
        }
    };
    let inputs: serde_json::Map<String, Value> = fields
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("input.").map(|name| (name.to_owned(), v)))
        .filter(|(_, v)| !v.is_empty())
        .map(|(name, v)| (name, Value::String(v.clone())))
        .collect();
    let (instance, gate) = (field("instance").to_owned(), field("gate").to_owned());
    let decision = DecisionRequest {
        kind,
        principal: viewer.caller.principal.clone(),
        auth: viewer.caller.auth.clone(),
        comment: field("comment").trim().to_owned(),
        request_id: field("request_id").to_owned(),
        inputs,
    };
    match api.engine.decide(&instance, Some(&gate), decision).await {
        Ok(outcome) => {
            let what = format!(
                "{} {}/{} {} by {}{}",
                outcome.subject.noun(),
                outcome.phase,
                outcome.gate,
                outcome.kind.past(),
                outcome.principal,
                if outcome.replayed { " (already recorded: nothing changed)" } else { "" }
            );
            let mut response = Page::Go(format!("/console/?done={}", urlencode(&format!("{}: {what}", outcome.instance)))).into_response();
            if let Some(cookie) = viewer.set_cookie.as_ref().and_then(|c| header::HeaderValue::from_str(c).ok()) {
                response.headers_mut().append(header::SET_COOKIE, cookie);
            }
            response
        }
        Err(error) => {
            let status = match &error {
                Error::Forbidden(_) => StatusCode::FORBIDDEN,
                Error::UnknownInstance(_) => StatusCode::NOT_FOUND,
                Error::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
                _ => StatusCode::CONFLICT,
            };
            if status == StatusCode::FORBIDDEN {
                tracing::warn!(route = "POST /console/decide", who = %viewer.caller.principal, reason = %error, "refused a request");
            }
            message(&api, Some(&viewer), status, "The decision was not recorded", &error.to_string())
        }
    }
}

/// `text` as a URL query value.
fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[derive(Deserialize)]
pub(super) struct ListQuery {
    status: Option<String>,
    workflow: Option<String>,
    page: Option<usize>,
}

#[derive(Serialize)]
struct Row {
    id: String,
    workflow: String,
    status: String,
    started_by: String,
    started_at: String,
    updated_at: String,
    current: String,
}

/// `GET /console/instances[?status=S&workflow=W&page=N]`.
pub(super) async fn instances(State(api): State<Arc<Api>>, Query(query): Query<ListQuery>, request: Request) -> Response {
    let viewer = match signed_in(&api, &request) {
        Ok(viewer) => viewer,
        Err(response) => return *response,
    };
    let status = match query.status.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(text) => match text.parse::<crate::machine::EffectiveStatus>() {
            Ok(status) => Some(status),
            Err(_) => {
                return message(&api, Some(&viewer), StatusCode::BAD_REQUEST, "No such status", &format!("`{text}` is not a status."))
            }
        },
    };
    let workflow = query.workflow.clone().filter(|w| !w.is_empty());
    let page_number = query.page.unwrap_or(1).max(1);
    let listed = match api.engine.list_page(status, workflow.as_deref(), (page_number - 1) * PAGE_SIZE, PAGE_SIZE) {
        Ok(listed) => listed,
        Err(error) => return message(&api, Some(&viewer), StatusCode::SERVICE_UNAVAILABLE, "The list is unavailable", &error.to_string()),
    };
    let rows: Vec<Row> = listed
        .rows
        .into_iter()
        .map(|(id, s)| Row {
            id,
            workflow: s.workflow,
            status: s.status.as_str().to_owned(),
            started_by: s.started_by,
            started_at: s.started_at.to_string(),
            updated_at: s.updated_at.to_string(),
            current: s.current.join(", "),
        })
        .collect();
    let statuses: Vec<&str> = <crate::machine::EffectiveStatus as strum::VariantArray>::VARIANTS.iter().map(|s| s.as_str()).collect();
    page(
        &api,
        Some(&viewer),
        StatusCode::OK,
        "instances.html",
        minijinja::context! {
            title => "Instances", nav => "instances", rows, statuses,
            status => query.status, workflow, page => page_number, more => listed.more, live => "",
        },
    )
}

#[derive(Serialize)]
struct TaskRow {
    phase: String,
    id: String,
    status: String,
    attempts: u32,
    detail: String,
    output: String,
}

#[derive(Serialize)]
struct WatchRow {
    phase: String,
    id: String,
    firing: bool,
    last: String,
    chart: String,
    samples: usize,
}

#[derive(Serialize)]
struct HistoryRow {
    seq: u64,
    at: String,
    text: String,
}

fn task_detail(status: &TaskStatus) -> (String, String) {
    match status {
        TaskStatus::Succeeded { output, duration_ms, .. } => {
            (format!("{duration_ms} ms"), serde_json::to_string_pretty(output).unwrap_or_default())
        }
        TaskStatus::Failed { error, .. } => (error.clone(), String::new()),
        _ => (String::new(), String::new()),
    }
}

/// A small line chart of a watch's recent samples, as inline SVG (values
/// scaled to the chart; the numbers are in the table beside it).
fn sparkline(values: &[f64]) -> String {
    if values.len() < 2 {
        return String::new();
    }
    let (width, height) = (160.0, 32.0);
    let (low, high) = values.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| (l.min(*v), h.max(*v)));
    let span = if (high - low).abs() < f64::EPSILON { 1.0 } else { high - low };
    let step = width / (values.len() - 1) as f64;
    let points: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, v)| format!("{:.1},{:.1}", i as f64 * step, height - 2.0 - (v - low) / span * (height - 4.0)))
        .collect();
    format!(
        "<svg class=\"spark\" viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\" role=\"img\" aria-label=\"recent samples from {low} to {high}\"><polyline fill=\"none\" stroke=\"currentColor\" stroke-width=\"2\" points=\"{}\"/></svg>",
        points.join(" ")
    )
}

/// `GET /console/instances/{id}`.
pub(super) async fn instance(State(api): State<Arc<Api>>, UrlPath(id): UrlPath<String>, request: Request) -> Response {
    let viewer = match signed_in(&api, &request) {
        Ok(viewer) => viewer,
        Err(response) => return *response,
    };
    let (instance, workflow) = match api.engine.instance(&id) {
        Ok(found) => found,
        Err(error) => return message(&api, Some(&viewer), StatusCode::NOT_FOUND, "No such instance", &error.to_string()),
    };
    let history = api.engine.history(&id).unwrap_or_default();
    let graph = super::graph::svg(&instance, &workflow);
    let mut tasks = Vec::new();
    let mut watches = Vec::new();
    for (p, phase) in instance.phases.iter().enumerate() {
        for task in &phase.tasks {
            let (detail, output) = task_detail(&task.status);
            tasks.push(TaskRow {
                phase: workflow.phases[p].id.clone(),
                id: task.id.clone(),
                status: task.status.kind().to_owned(),
                attempts: task.attempts,
                detail,
                output,
            });
        }
        for watch in &phase.watches {
            let values: Vec<f64> = watch.samples.iter().filter_map(|s| s.value).collect();
            let last = watch
                .samples
                .last()
                .map(|s| format!("{} at {}", s.value.map_or_else(|| "no data".to_owned(), |v| v.to_string()), s.at))
                .unwrap_or_default();
            watches.push(WatchRow {
                phase: workflow.phases[p].id.clone(),
                id: watch.id.clone(),
                firing: watch.firing,
                last,
                chart: sparkline(&values),
                samples: watch.samples.len(),
            });
        }
    }
    let timeline: Vec<HistoryRow> = history
        .iter()
        .rev()
        .map(|r| HistoryRow { seq: r.seq(), at: r.at().to_string(), text: crate::describe::event(r.event()) })
        .collect();
    let rolled_back =
        matches!(instance.status, crate::machine::InstanceStatus::RollingBack { .. } | crate::machine::InstanceStatus::RolledBack { .. });
    let rollback = instance.rollback.as_ref().map(|r| format!("rollback by {}: {}", r.by, r.reason)).filter(|_| rolled_back);
    page(
        &api,
        Some(&viewer),
        StatusCode::OK,
        "instance.html",
        minijinja::context! {
            title => format!("Instance {id}"), nav => "instances", live => id.clone(),
            id, workflow => workflow.name.clone(), status => instance.effective_status().as_str(),
            started_by => instance.started_by.clone(), graph => minijinja::Value::from_safe_string(graph),
            tasks, watches => watches.into_iter().map(|w| minijinja::context! {
                phase => w.phase, id => w.id, firing => w.firing, last => w.last, samples => w.samples,
                chart => minijinja::Value::from_safe_string(w.chart),
            }).collect::<Vec<_>>(),
            timeline, rollback, reports => crate::report::Kind::ALL.iter().map(|(name, _)| *name).collect::<Vec<_>>(),
        },
    )
}

#[derive(Deserialize)]
pub(super) struct ReportQuery {
    format: Option<String>,
    phase: Option<String>,
}

/// `GET /console/instances/{id}/reports/{kind}[?format=md|json][&phase=P]`:
/// a report as a page, or downloaded as Markdown or JSON.
pub(super) async fn report(
    State(api): State<Arc<Api>>,
    UrlPath((id, kind)): UrlPath<(String, String)>,
    Query(query): Query<ReportQuery>,
    request: Request,
) -> Response {
    let viewer = match signed_in(&api, &request) {
        Ok(viewer) => viewer,
        Err(response) => return *response,
    };
    let kind = match crate::report::Kind::parse(&kind) {
        Ok(kind) => kind,
        Err(why) => return message(&api, Some(&viewer), StatusCode::NOT_FOUND, "No such report", &why),
    };
    let (instance, workflow) = match api.engine.instance(&id) {
        Ok(found) => found,
        Err(error) => return message(&api, Some(&viewer), StatusCode::NOT_FOUND, "No such instance", &error.to_string()),
    };
    let history = api.engine.history(&id).unwrap_or_default();
    let input = crate::report::Input {
        instance: &instance,
        workflow: &workflow,
        history: &history,
        now: api.engine.now(),
        phase: query.phase.as_deref().filter(|p| !p.is_empty()),
        since: None,
        until: None,
    };
    let rendered = match crate::report::render(kind, &input) {
        Ok(rendered) => rendered,
        Err(why) => return message(&api, Some(&viewer), StatusCode::CONFLICT, "This report cannot be made yet", &why),
    };
    let file = format!("{}-{}", instance.id, kind.name());
    match query.format.as_deref() {
        Some("md") => (
            [
                (header::CONTENT_TYPE, "text/markdown; charset=utf-8".to_owned()),
                (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{file}.md\"")),
            ],
            rendered.markdown,
        )
            .into_response(),
        Some("json") => (
            [
                (header::CONTENT_TYPE, "application/json".to_owned()),
                (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{file}.json\"")),
            ],
            serde_json::to_string_pretty(&rendered.data).unwrap_or_default(),
        )
            .into_response(),
        _ => {
            let html = markdown_html(&rendered.markdown);
            page(
                &api,
                Some(&viewer),
                StatusCode::OK,
                "report.html",
                minijinja::context! {
                    title => format!("{} report: {id}", kind.name()), nav => "instances", live => id.clone(), id, kind => kind.name(),
                    body => minijinja::Value::from_safe_string(html),
                },
            )
        }
    }
}

/// A report's Markdown as HTML. Raw HTML in it (a comment someone typed,
/// say) is shown as text, never passed through.
fn markdown_html(markdown: &str) -> String {
    use pulldown_cmark::{Event, Options, Parser};
    let parser = Parser::new_ext(markdown, Options::ENABLE_TABLES).map(|event| match event {
        Event::Html(text) | Event::InlineHtml(text) => Event::Text(text),
        other => other,
    });
    let mut html = String::new();
    pulldown_cmark::html::push_html(&mut html, parser);
    html
}
