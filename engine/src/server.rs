//! The control API: an HTTP JSON API over a running engine, so the process
//! that owns the store (sled lets one process open it) can take commands
//! from the CLI, scripts and tools.
//!
//! Deny by default: every route but `/healthz` needs `Authorization: Bearer
//! <token>`, the token generated into the data directory with mode 0600.
//! The acting principal is named by `X-Phasegate-Principal` and authorized
//! by the engine exactly as for the CLI (roles from the configuration).
//! Every error is JSON: `{"error": "...", "kind": "..."}`. docs/api.md lists
//! the routes.

use std::path::{Path, PathBuf};

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api;
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
    token: String,
    metrics: crate::metrics::Metrics,
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

/// The API's routes over `engine`, authenticated by `token`. Fails only if
/// the instances cannot be listed to start the metrics from.
pub fn router(engine: Arc<Engine>, token: String) -> Result<Router, Error> {
    // Subscribe before listing, so no event falls between the two.
    let mut events = engine.subscribe();
    let metrics = crate::metrics::Metrics::new(Arc::clone(&engine))?;
    let api = Arc::new(Api { engine: Arc::clone(&engine), token, metrics });
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
        .route("/v1/instances/{id}/decisions", post(decide))
        .route("/v1/instances/{id}/{operation}", post(operate))
        .route("/v1/approvals", get(approvals))
        .route("/v1/backup", post(backup))
        .route("/metrics", get(scrape))
        .route_layer(middleware::from_fn_with_state(Arc::clone(&api), authenticate));
    Ok(Router::new()
        .route("/healthz", get(healthz))
        .merge(authenticated)
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
    match api.engine.health() {
        Ok(()) => Json(json!({"status": "ok"})).into_response(),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "unhealthy", "reason": reason}))).into_response(),
    }
}

/// The credential of an `Authorization` header: the scheme is matched
/// without regard to case (RFC 7235), the token exactly.
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

async fn authenticate(State(api): State<Arc<Api>>, request: Request, next: Next) -> Response {
    let presented = request.headers().get("authorization").and_then(|v| v.to_str().ok()).and_then(bearer);
    match presented {
        Some(token) if same(token, &api.token) => {
            // A failed engine acknowledges nothing: writes are refused.
            if request.method() != axum::http::Method::GET {
                if let Err(reason) = api.engine.health() {
                    return ApiError(StatusCode::SERVICE_UNAVAILABLE, format!("the server refuses writes: {reason}"), "unavailable")
                        .into_response();
                }
            }
            next.run(request).await
        }
        Some(_) => ApiError(StatusCode::UNAUTHORIZED, "the bearer token is wrong".to_owned(), "unauthorized").into_response(),
        None => ApiError(
            StatusCode::UNAUTHORIZED,
            format!("send Authorization: Bearer <token>; the token is in the data directory's {TOKEN_FILE}"),
            "unauthorized",
        )
        .into_response(),
    }
}

fn principal(headers: &HeaderMap) -> Result<String, ApiError> {
    headers
        .get("x-phasegate-principal")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| ApiError(StatusCode::BAD_REQUEST, "name who acts with the X-Phasegate-Principal header".to_owned(), "invalid"))
}

async fn body<T: DeserializeOwned>(body: Body) -> Result<T, ApiError> {
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| ApiError(StatusCode::PAYLOAD_TOO_LARGE, format!("the body is larger than {MAX_BODY_BYTES} bytes"), "too_large"))?;
    let bytes = if bytes.is_empty() { axum::body::Bytes::from_static(b"{}") } else { bytes };
    serde_json::from_slice(&bytes)
        .map_err(|error| ApiError(StatusCode::BAD_REQUEST, format!("the body is not valid JSON for this route: {error}"), "bad_json"))
}

async fn start(State(api): State<Arc<Api>>, request: Request) -> ApiResult {
    let by = principal(request.headers())?;
    let start: api::StartRequest = body(request.into_body()).await?;
    let workflow = api.engine.load_definition(&crate::model::Source::from_text(&start.definition, start.format.into()))?;
    let options = StartOptions { id: start.id, vars: start.vars.into_iter().collect(), started_by: by, baseline: start.baseline };
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

async fn history(State(api): State<Arc<Api>>, UrlPath(id): UrlPath<String>) -> ApiResult {
    Ok(Json(serde_json::to_value(api.engine.history(&id)?).unwrap_or_default()).into_response())
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

async fn decide(State(api): State<Arc<Api>>, UrlPath(id): UrlPath<String>, request: Request) -> ApiResult {
    let by = principal(request.headers())?;
    let decision: api::DecisionBody = body(request.into_body()).await?;
    let kind = decision.decision;
    let outcome = api
        .engine
        .decide(
            &id,
            decision.gate.as_deref(),
            DecisionRequest { kind, principal: by, comment: decision.comment, request_id: decision.request_id, inputs: decision.inputs },
        )
        .await?;
    Ok(Json(serde_json::to_value(outcome).unwrap_or_default()).into_response())
}

async fn operate(State(api): State<Arc<Api>>, UrlPath((id, operation)): UrlPath<(String, String)>, request: Request) -> ApiResult {
    let by = principal(request.headers())?;
    let op: api::OperationBody = body(request.into_body()).await?;
    let engine = &api.engine;
    let seq = match operation.as_str() {
        "halt" => engine.halt(&id, &by, &op.reason, op.cancel_running).await?,
        "resume" => engine.resume(&id, &by).await?,
        "cancel" => engine.cancel(&id, &by, &op.reason).await?,
        "retry" => match (&op.phase, &op.task) {
            (Some(_), Some(_)) => {
                return Err(ApiError(StatusCode::BAD_REQUEST, "retry takes `task` or `phase`, not both".to_owned(), "invalid"));
            }
            (Some(phase), None) => engine.retry_phase(&id, &by, phase).await?,
            (None, task) => engine.retry(&id, &by, task.as_deref()).await?,
        },
        "rollback" => engine.rollback(&id, &by, &op.reason, op.to.as_deref()).await?,
        "signal" => {
            let name = op.name.ok_or_else(|| ApiError(StatusCode::BAD_REQUEST, "a signal needs `name`".to_owned(), "invalid"))?;
            engine.signal(&id, &name, op.data.unwrap_or(Value::Null), &by).await?
        }
        "advance" => {
            let report = engine.advance(&id).await?;
            return Ok(Json(serde_json::to_value(report).unwrap_or_default()).into_response());
        }
        other => {
            return Err(ApiError(
                StatusCode::NOT_FOUND,
                format!("no operation `{other}`; use halt, resume, cancel, retry, rollback, signal, advance or decisions"),
                "not_found",
            ))
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
async fn backup(State(api): State<Arc<Api>>, request: Request) -> ApiResult {
    let wanted: api::BackupRequest = body(request.into_body()).await?;
    let report = api.engine.backup(&wanted.dest).await?;
    Ok(Json(api::BackedUp::from(report)).into_response())
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
