//! The control API: an HTTP JSON API over a running engine, so the process
//! that owns the store (sled lets one process open it) can take commands
//! from the CLI, scripts and tools.
//!
//! Deny by default: every route but `/healthz` needs a credential, and the
//! principal a request acts as is the credential's, never a name it sends:
//! - a user's API token (`Authorization: Bearer pgt_…`, issued by `phasegate
//!   users add`): decisions and, as permitted, operator commands;
//! - the configured proxy header (`[auth]` in phasegate.toml), believed only
//!   from the configured proxy addresses;
//! - the data directory's admin token (mode 0600): operator commands, users
//!   and backups, never decisions.
//!
//! Operator commands are authorized by `[permissions]` (default: the admin
//! credential and the workflow's `owners`), decisions by the gate as for
//! the CLI. Every refusal is 401 or 403, records nothing, and is logged
//! without the credential. Every error is JSON: `{"error": "...", "kind":
//! "..."}`. docs/api.md lists the routes; docs/trust.md says what each
//! credential can do.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Extension, Path as UrlPath, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

mod cluster;
pub use cluster::HttpForwarder;
mod console;

use crate::api;
use crate::config::{Config, Operation};
use crate::machine::Authentication;
use crate::runtime::identity::{TokenRefusal, ADMIN};
use crate::runtime::{DecisionRequest, Error, StartOptions};
use crate::Engine;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The file, in the data directory, holding the bearer token.
pub const TOKEN_FILE: &str = "control.token";
/// The file, in the data directory, holding the address of the live server.
pub const ADDRESS_FILE: &str = "control.addr";

/// The shortest token accepted from an existing token file, in characters.
pub const MIN_TOKEN_CHARS: usize = 32;

/// Reads the data directory's token, creating it (mode 0600) if absent. An
/// existing token that others could read (group or world permissions) or
/// that is short enough to guess is refused, with what to do.
pub fn ensure_token(data_dir: &Path) -> std::io::Result<String> {
    let path = data_dir.join(TOKEN_FILE);
    if let Ok(token) = std::fs::read_to_string(&path) {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path)?.permissions().mode();
            if mode & 0o077 != 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!(
                        "{} is readable by others (mode {:o}); it is a secret: `chmod 600 {}`, or delete it to have a new one made",
                        path.display(),
                        mode & 0o777,
                        path.display()
                    ),
                ));
            }
        }
        let token = token.trim();
        if !token.is_empty() {
            if token.chars().count() < MIN_TOKEN_CHARS {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "{} holds a token of {} characters, fewer than the {MIN_TOKEN_CHARS} required; delete it to have a random one made",
                        path.display(),
                        token.chars().count()
                    ),
                ));
            }
            return Ok(token.to_owned());
        }
    }
    std::fs::create_dir_all(data_dir)?;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|error| std::io::Error::other(format!("no randomness for the token: {error}")))?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(&path)?;
    std::io::Write::write_all(&mut file, token.as_bytes())?;
    Ok(token)
}

struct Api {
    engine: Arc<Engine>,
    /// The admin credential.
    token: String,
    /// `[permissions]` and `[auth]`.
    config: Config,
    metrics: crate::metrics::Metrics,
    /// The web console's signed-in people.
    sessions: console::Sessions,
    /// The web console's pages.
    templates: minijinja::Environment<'static>,
}

/// Who a request comes from, as its credential proves.
#[derive(Debug, Clone)]
struct Caller {
    /// The principal it acts as.
    principal: String,
    /// How that was established (recorded with decisions).
    auth: Authentication,
    /// The admin credential: operates, never decides.
    admin: bool,
}

impl Caller {
    fn describe(&self) -> String {
        if self.admin {
            "admin token".to_owned()
        } else {
            self.auth.to_string()
        }
    }
}

/// An API error: its status and a JSON body naming what went wrong.
struct ApiError(StatusCode, String, &'static str);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(api::ErrorBody { error: self.1, kind: self.2.to_owned() })).into_response()
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        let status = match &error {
            Error::UnknownInstance(_) => StatusCode::NOT_FOUND,
            Error::Rejected(rejected) => match rejected.kind {
                crate::machine::RejectKind::WrongState => StatusCode::CONFLICT,
                crate::machine::RejectKind::Unknown => StatusCode::NOT_FOUND,
                crate::machine::RejectKind::NotAllowed => StatusCode::FORBIDDEN,
            },
            Error::Conflict(_) | Error::Quarantined { .. } | Error::Corrupt(_) => StatusCode::CONFLICT,
            Error::Definition(_) | Error::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::Store(phasegate_store::Error::SequenceConflict { .. }) => StatusCode::INTERNAL_SERVER_ERROR,
            Error::ShutDown | Error::Store(_) | Error::Remote { .. } => StatusCode::SERVICE_UNAVAILABLE,
        };
        ApiError(status, error.to_string(), error.kind())
    }
}

type ApiResult = Result<Response, ApiError>;

/// The API's routes over `engine`: `token` is the admin credential, and
/// `config` says who may operate and which proxy is trusted. Serve it with
/// `into_make_service_with_connect_info::<SocketAddr>()`, so a proxy's
/// address can be checked (without it, no proxy header is believed). Fails
/// only if the instances cannot be listed to start the metrics from.
pub fn router(engine: Arc<Engine>, token: String, config: Config) -> Result<Router, Error> {
    // Subscribe before listing, so no event falls between the two.
    let mut events = engine.subscribe();
    let metrics = crate::metrics::Metrics::new(Arc::clone(&engine))?;
    let api = Arc::new(Api {
        engine: Arc::clone(&engine),
        token,
        config,
        metrics,
        sessions: console::Sessions::default(),
        templates: console::templates(),
    });
    let counting = Arc::clone(&api);
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(note) => counting.metrics.observe(&note),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    let authenticated = Router::new()
        .route("/v1/instances", get(list).post(start))
        .route("/v1/instances/{id}", get(status))
        .route("/v1/instances/{id}/history", get(history))
        .route("/v1/instances/{id}/definition", get(definition))
        .route("/v1/instances/{id}/report", get(report))
        .route("/v1/instances/{id}/audit", get(audit))
        .route("/v1/instances/{id}/logs", get(logs))
        .route("/v1/instances/{id}/decisions", post(decide))
        .route("/v1/instances/{id}/{operation}", post(operate))
        .route("/v1/approvals", get(approvals))
        .route("/v1/whoami", get(whoami))
        .route("/v1/users", get(users).post(add_user))
        .route("/v1/users/{name}/revoke", post(revoke_user))
        .route("/v1/policy", get(policy).put(set_policy))
        .route("/v1/backup", post(backup))
        .route("/metrics", get(scrape))
        .route_layer(middleware::from_fn_with_state(Arc::clone(&api), authenticate));
    Ok(Router::new()
        .route("/healthz", get(healthz))
        .route("/v1/internal/forward", axum::routing::post(cluster::forwarded))
        .route("/", get(|| async { axum::response::Redirect::to("/console/") }))
        .merge(authenticated)
        .merge(console::routes())
        .fallback(|| async { ApiError(StatusCode::NOT_FOUND, "no such route; see docs/api.md".to_owned(), "not_found") })
        .with_state(api))
}

/// Constant-time comparison (subtle), so the token cannot be guessed byte by byte.
fn same(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq as _;
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// `/healthz`: 200 while the engine works, 503 with the reason once its
/// driver stopped or its store refuses writes (a supervisor restarts it).
async fn healthz(State(api): State<Arc<Api>>) -> Response {
    let (status, mut body) = match api.engine.health() {
        Ok(()) => (StatusCode::OK, json!({"status": "ok"})),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, json!({"status": "unhealthy", "reason": reason})),
    };
    // A cluster node says what it holds.
    if let Some(cluster) = cluster::health(&api) {
        body["cluster"] = cluster;
    }
    (status, Json(body)).into_response()
}

/// The credential of an `Authorization` header: the scheme is matched
/// without regard to case (RFC 7235), the token exactly.
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// A refusal of a request's credential or authority: answered with
/// `status`, logged with who and what (never the credential).
fn refuse(status: StatusCode, message: String, route: &str, who: &str) -> ApiError {
    tracing::warn!(status = status.as_u16(), %route, %who, reason = %message, "refused a request");
    let kind = if status == StatusCode::UNAUTHORIZED { "unauthorized" } else { "forbidden" };
    ApiError(status, message, kind)
}

/// The address a request came from, when the server was started with
/// connection info (as `phasegate serve` is).
fn peer(request: &Request) -> Option<IpAddr> {
    request.extensions().get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip())
}

async fn authenticate(State(api): State<Arc<Api>>, mut request: Request, next: Next) -> Response {
    let peer = peer(&request);
    let route = format!("{} {}", request.method(), request.uri().path());
    let caller = match identify(&api, request.headers(), peer) {
        Ok(caller) => caller,
        Err((message, who)) => return refuse(StatusCode::UNAUTHORIZED, message, &route, &who).into_response(),
    };
    // A request cannot name someone other than its credential's principal.
    let named = request.headers().get("x-phasegate-principal").map(|v| v.to_str().map(str::trim));
    match named {
        None => {}
        Some(Ok(named)) if named == caller.principal => {}
        Some(named) => {
            let named = named.unwrap_or("(not text)");
            let message = format!(
                "the credential is {}'s ({}); a request cannot act as {named}: drop --as (or X-Phasegate-Principal), or use {named}'s own token",
                caller.principal,
                caller.describe()
            );
            return refuse(StatusCode::FORBIDDEN, message, &route, &caller.principal).into_response();
        }
    }
    // A failed engine acknowledges nothing: writes are refused.
    if request.method() != axum::http::Method::GET {
        if let Err(reason) = api.engine.health() {
            return ApiError(StatusCode::SERVICE_UNAVAILABLE, format!("the server refuses writes: {reason}"), "unavailable")
                .into_response();
        }
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}

/// The caller a request's credential proves, or why there is none (the
/// message, and who it claimed to be, for the log).
fn identify(api: &Api, headers: &HeaderMap, peer: Option<IpAddr>) -> Result<Caller, (String, String)> {
    let peer_text = peer.map_or_else(|| "an unknown address".to_owned(), |ip| ip.to_string());
    if let Some(header) = &api.config.auth.proxy_header {
        if let Some(value) = headers.get(header.as_str()) {
            let trusted = peer.is_some_and(|ip| api.config.auth.trusted_proxies.contains(&ip));
            if !trusted {
                return Err((
                    format!("the {header} header is believed only from the configured proxy; this request came from {peer_text}"),
                    format!("{header} from {peer_text}"),
                ));
            }
            let name = value.to_str().unwrap_or_default().trim();
            crate::runtime::identity::check_user_name(name)
                .map_err(|why| (format!("the proxy's {header} header does not name a user: {why}"), format!("proxy {peer_text}")))?;
            return Ok(Caller {
                principal: name.to_owned(),
                auth: Authentication::Proxy { header: header.clone(), proxy: peer_text },
                admin: false,
            });
        }
    }
    let presented = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(bearer);
    let Some(token) = presented else {
        return Err((
            format!(
                "send Authorization: Bearer <token>: your own token (an admin issues it with `phasegate users add NAME`), or the admin token in the data directory's {TOKEN_FILE}"
            ),
            "no credential".to_owned(),
        ));
    };
    if same(token, &api.token) {
        return Ok(Caller { principal: ADMIN.to_owned(), auth: Authentication::Unrecorded, admin: true });
    }
    match api.engine.authenticate(token) {
        Ok(user) => Ok(Caller { principal: user.name, auth: Authentication::Token { token: user.token_id }, admin: false }),
        Err(TokenRefusal::Revoked { user }) => Err((
            format!("this token was revoked; ask an admin for a new one (`phasegate users add {user}`)"),
            format!("{user} (revoked token)"),
        )),
        Err(TokenRefusal::Unknown) => Err(("the bearer token is not one this server issued".to_owned(), "an unknown token".to_owned())),
    }
}

/// Refuses anyone but the admin credential.
fn admin_only(caller: &Caller, what: &str) -> Result<(), ApiError> {
    if caller.admin {
        Ok(())
    } else {
        Err(refuse(
            StatusCode::FORBIDDEN,
            format!("{what} needs the admin credential (the data directory's {TOKEN_FILE}); {} is not it", caller.principal),
            what,
            &caller.principal,
        ))
    }
}

/// Authorizes an operator command: the admin credential, those
/// `[permissions]` names for it, or (when it names none) the workflow's owners.
fn may_operate(api: &Api, caller: &Caller, operation: Operation, owners: &[crate::plan::Principal], what: &str) -> Result<(), ApiError> {
    if caller.admin {
        return Ok(());
    }
    let (allowed, source) = match api.config.permitted(operation) {
        Some(entries) => (entries, "phasegate.toml's [permissions]"),
        None => (owners.to_vec(), "the workflow's owners"),
    };
    let roles = api.engine.roles();
    if roles.allows(&allowed, &caller.principal).is_some() {
        return Ok(());
    }
    let list =
        if allowed.is_empty() { "nobody".to_owned() } else { allowed.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ") };
    Err(refuse(
        StatusCode::FORBIDDEN,
        format!(
            "{} may not {} {what}: {} is allowed to the admin credential and {list} ({source})",
            caller.principal,
            operation.name(),
            operation.name()
        ),
        what,
        &caller.principal,
    ))
}

async fn body<T: DeserializeOwned>(body: Body) -> Result<T, ApiError> {
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| ApiError(StatusCode::PAYLOAD_TOO_LARGE, format!("the body is larger than {MAX_BODY_BYTES} bytes"), "too_large"))?;
    let bytes = if bytes.is_empty() { axum::body::Bytes::from_static(b"{}") } else { bytes };
    serde_json::from_slice(&bytes)
        .map_err(|error| ApiError(StatusCode::BAD_REQUEST, format!("the body is not valid JSON for this route: {error}"), "bad_json"))
}

async fn start(State(api): State<Arc<Api>>, Extension(caller): Extension<Caller>, request: Request) -> ApiResult {
    let start: api::StartRequest = body(request.into_body()).await?;
    let workflow = api.engine.load_definition(&crate::model::Source::from_text(&start.definition, start.format.into()))?;
    may_operate(&api, &caller, Operation::Start, &workflow.owners, &format!("workflow {}", workflow.name))?;
    let options =
        StartOptions { id: start.id, vars: start.vars.into_iter().collect(), started_by: caller.principal, baseline: start.baseline };
    let id = api.engine.start(workflow, options).await?;
    Ok((StatusCode::CREATED, Json(api::Started { id })).into_response())
}

#[derive(Deserialize)]
struct ListQuery {
    status: Option<crate::machine::EffectiveStatus>,
}

async fn list(State(api): State<Arc<Api>>, Query(query): Query<ListQuery>) -> ApiResult {
    let rows: Vec<api::Listed> = api.engine.list(query.status)?.into_iter().map(|(id, summary)| api::Listed { id, summary }).collect();
    Ok(Json(rows).into_response())
}

async fn status(State(api): State<Arc<Api>>, UrlPath(id): UrlPath<String>) -> ApiResult {
    let (instance, _) = api.engine.instance(&id)?;
    let mut value = serde_json::to_value(&instance).unwrap_or_default();
    value["effective_status"] = json!(instance.effective_status());
    Ok(Json(value).into_response())
}

/// The longest `GET /v1/instances/{id}/history?wait_ms=` waits.
pub const MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

#[derive(Deserialize)]
struct HistoryQuery {
    after: Option<u64>,
    wait_ms: Option<u64>,
}

/// `GET /v1/instances/{id}/history[?after=SEQ[&wait_ms=N]]`: every record,
/// or those after SEQ, waiting up to N ms (at most 30 s) for one when there
/// are none yet (a long poll for followers).
async fn history(State(api): State<Arc<Api>>, UrlPath(id): UrlPath<String>, Query(query): Query<HistoryQuery>) -> ApiResult {
    let records = match query.after {
        None => api.engine.history(&id)?,
        Some(after) => {
            let wait = std::time::Duration::from_millis(query.wait_ms.unwrap_or(0)).min(MAX_WAIT);
            api.engine.history_after(&id, after, wait).await?
        }
    };
    Ok(Json(serde_json::to_value(records).unwrap_or_default()).into_response())
}

#[derive(Deserialize)]
struct LogsQuery {
    task: Option<String>,
    attempt: Option<u32>,
    #[serde(default)]
    from: usize,
}

/// `GET /v1/instances/{id}/logs[?task=T][&attempt=N][&from=LINE]`: what the
/// tasks printed, per attempt (the latest when none is named).
async fn logs(State(api): State<Arc<Api>>, UrlPath(id): UrlPath<String>, Query(query): Query<LogsQuery>) -> ApiResult {
    let found = api.engine.task_logs(&id, query.task.as_deref(), query.attempt, query.from)?;
    Ok(Json(serde_json::to_value(found).unwrap_or_default()).into_response())
}

#[derive(Deserialize)]
struct AuditQuery {
    head: Option<String>,
}

/// `GET /v1/instances/{id}/audit[?head=SEQ:HASH]`: the audit chain checked.
async fn audit(State(api): State<Arc<Api>>, UrlPath(id): UrlPath<String>, Query(query): Query<AuditQuery>) -> ApiResult {
    let head = query
        .head
        .as_deref()
        .map(crate::runtime::audit::ChainHead::parse)
        .transpose()
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("head: {e}"), "invalid"))?;
    Ok(Json(serde_json::to_value(api.engine.audit(&id, head.as_ref())?).unwrap_or_default()).into_response())
}

async fn definition(State(api): State<Arc<Api>>, UrlPath(id): UrlPath<String>) -> ApiResult {
    let (_, workflow) = api.engine.instance(&id)?;
    Ok(Json(serde_json::to_value(&workflow.definition).unwrap_or_default()).into_response())
}

#[derive(Deserialize)]
struct ReportQuery {
    kind: String,
    phase: Option<String>,
    format: Option<String>,
    since: Option<String>,
    until: Option<String>,
}

async fn report(State(api): State<Arc<Api>>, UrlPath(id): UrlPath<String>, Query(query): Query<ReportQuery>) -> ApiResult {
    let kind = crate::report::Kind::parse(&query.kind).map_err(|e| ApiError(StatusCode::BAD_REQUEST, e, "invalid"))?;
    let instant = |field: &str, text: &Option<String>| {
        text.as_deref()
            .map(crate::report::parse_instant)
            .transpose()
            .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("{field}: {e}"), "invalid"))
    };
    let (since, until) = (instant("since", &query.since)?, instant("until", &query.until)?);
    let (instance, workflow) = api.engine.instance(&id)?;
    let history = api.engine.history(&id)?;
    let input = crate::report::Input {
        instance: &instance,
        workflow: &workflow,
        history: &history,
        now: api.engine.now(),
        phase: query.phase.as_deref(),
        since,
        until,
    };
    let rendered = crate::report::render(kind, &input).map_err(|e| ApiError(StatusCode::CONFLICT, e, "rejected"))?;
    Ok(match query.format.as_deref() {
        Some("md") => ([("content-type", "text/markdown; charset=utf-8")], rendered.markdown).into_response(),
        _ => Json(rendered.data).into_response(),
    })
}

async fn decide(
    State(api): State<Arc<Api>>,
    Extension(caller): Extension<Caller>,
    UrlPath(id): UrlPath<String>,
    request: Request,
) -> ApiResult {
    let route = format!("POST /v1/instances/{id}/decisions");
    if caller.admin {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            "the admin credential operates; it cannot decide. Decide with your own token (an admin issues it with `phasegate users add NAME`)"
                .to_owned(),
            &route,
            ADMIN,
        ));
    }
    let decision: api::DecisionBody = body(request.into_body()).await?;
    let request = DecisionRequest {
        kind: decision.decision,
        principal: caller.principal.clone(),
        auth: caller.auth,
        comment: decision.comment,
        request_id: decision.request_id,
        inputs: decision.inputs,
    };
    match api.engine.decide(&id, decision.gate.as_deref(), request).await {
        Ok(outcome) => Ok(Json(serde_json::to_value(outcome).unwrap_or_default()).into_response()),
        Err(Error::Forbidden(message)) => Err(refuse(StatusCode::FORBIDDEN, message, &route, &caller.principal)),
        Err(error) => Err(error.into()),
    }
}

async fn operate(
    State(api): State<Arc<Api>>,
    Extension(caller): Extension<Caller>,
    UrlPath((id, operation)): UrlPath<(String, String)>,
    request: Request,
) -> ApiResult {
    let op: api::OperationBody = body(request.into_body()).await?;
    let engine = &api.engine;
    let kind = match operation.as_str() {
        "halt" => Operation::Halt,
        "resume" => Operation::Resume,
        "cancel" => Operation::Cancel,
        "retry" => Operation::Retry,
        "rollback" => Operation::Rollback,
        "signal" => Operation::Signal,
        "advance" => Operation::Advance,
        other => {
            return Err(ApiError(
                StatusCode::NOT_FOUND,
                format!("no operation `{other}`; use halt, resume, cancel, retry, rollback, signal, advance or decisions"),
                "not_found",
            ))
        }
    };
    let (_, workflow) = engine.instance(&id)?;
    may_operate(&api, &caller, kind, &workflow.owners, &format!("instance {id}"))?;
    let by = caller.principal;
    let seq = match kind {
        Operation::Halt => engine.halt(&id, &by, &op.reason, op.cancel_running).await?,
        Operation::Resume => engine.resume(&id, &by).await?,
        Operation::Cancel => engine.cancel(&id, &by, &op.reason).await?,
        Operation::Retry => match (&op.phase, &op.task) {
            (Some(_), Some(_)) => {
                return Err(ApiError(StatusCode::BAD_REQUEST, "retry takes `task` or `phase`, not both".to_owned(), "invalid"));
            }
            (Some(phase), None) => engine.retry_phase(&id, &by, phase).await?,
            (None, task) => engine.retry(&id, &by, task.as_deref()).await?,
        },
        Operation::Rollback => engine.rollback(&id, &by, &op.reason, op.to.as_deref()).await?,
        Operation::Signal => {
            let name = op.name.ok_or_else(|| ApiError(StatusCode::BAD_REQUEST, "a signal needs `name`".to_owned(), "invalid"))?;
            engine.signal(&id, &name, op.data.unwrap_or(Value::Null), &by).await?
        }
        Operation::Advance => {
            let report = engine.advance(&id).await?;
            return Ok(Json(serde_json::to_value(report).unwrap_or_default()).into_response());
        }
        // Not an instance's operation: `kind` above never names it.
        Operation::Start => {
            return Err(ApiError(StatusCode::NOT_FOUND, "start with POST /v1/instances".to_owned(), "not_found"));
        }
    };
    let status = engine.instance(&id).ok().map(|(i, _)| i.effective_status());
    Ok(Json(api::Operated { instance: id, seq, status }).into_response())
}

#[derive(Deserialize)]
struct ApprovalsQuery {
    r#for: Option<String>,
}

async fn approvals(State(api): State<Arc<Api>>, Query(query): Query<ApprovalsQuery>) -> ApiResult {
    Ok(Json(serde_json::to_value(api.engine.approvals(query.r#for.as_deref())?).unwrap_or_default()).into_response())
}

/// `POST /v1/backup {"dest": PATH}`: a consistent copy of the live store into
/// a new directory on the server's machine.
async fn backup(State(api): State<Arc<Api>>, Extension(caller): Extension<Caller>, request: Request) -> ApiResult {
    admin_only(&caller, "POST /v1/backup")?;
    let wanted: api::BackupRequest = body(request.into_body()).await?;
    let report = api.engine.backup(&wanted.dest).await?;
    Ok(Json(api::BackedUp::from(report)).into_response())
}

/// `GET /v1/whoami`: the caller, as the server sees them.
async fn whoami(State(api): State<Arc<Api>>, Extension(caller): Extension<Caller>) -> Json<api::WhoAmI> {
    let roles = api.engine.roles().0.iter().filter(|(_, members)| members.contains(&caller.principal)).map(|(r, _)| r.clone()).collect();
    Json(api::WhoAmI { authentication: caller.describe(), principal: caller.principal, admin: caller.admin, roles })
}

async fn users(State(api): State<Arc<Api>>, Extension(caller): Extension<Caller>) -> ApiResult {
    admin_only(&caller, "GET /v1/users")?;
    Ok(Json(api.engine.users()).into_response())
}

/// `POST /v1/users {"name", "roles"}` (admin): the new token, shown once.
async fn add_user(State(api): State<Arc<Api>>, Extension(caller): Extension<Caller>, request: Request) -> ApiResult {
    admin_only(&caller, "POST /v1/users")?;
    let wanted: api::AddUser = body(request.into_body()).await?;
    let issued = api.engine.add_user(&wanted.name, &wanted.roles, &caller.principal)?;
    tracing::info!(user = %issued.user.name, token_id = %issued.user.token_id, "issued a user token");
    Ok((StatusCode::CREATED, Json(issued)).into_response())
}

async fn revoke_user(State(api): State<Arc<Api>>, Extension(caller): Extension<Caller>, UrlPath(name): UrlPath<String>) -> ApiResult {
    admin_only(&caller, "POST /v1/users/{name}/revoke")?;
    let user = api.engine.revoke_user(&name, &caller.principal)?;
    // The console's sessions of that token end with it.
    api.sessions.close_all_of(&user.name);
    tracing::info!(user = %user.name, token_id = %user.token_id, "revoked a user token");
    Ok(Json(user).into_response())
}

async fn policy(State(api): State<Arc<Api>>) -> Json<crate::runtime::identity::Policy> {
    Json(api.engine.policy())
}

async fn set_policy(State(api): State<Arc<Api>>, Extension(caller): Extension<Caller>, request: Request) -> ApiResult {
    admin_only(&caller, "PUT /v1/policy")?;
    let policy: crate::runtime::identity::Policy = body(request.into_body()).await?;
    api.engine.set_policy(policy)?;
    Ok(Json(policy).into_response())
}

async fn scrape(State(api): State<Arc<Api>>) -> ApiResult {
    let text = api
        .metrics
        .encode()
        .map_err(|_| ApiError(StatusCode::INTERNAL_SERVER_ERROR, "the metrics did not encode".to_owned(), "internal"))?;
    Ok(([("content-type", crate::metrics::CONTENT_TYPE)], text).into_response())
}

/// Where a data directory's live server listens, if its address file says so.
pub fn address_file(data_dir: &Path) -> PathBuf {
    data_dir.join(ADDRESS_FILE)
}
