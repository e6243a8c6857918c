//! The web console: the approval inbox, the instances, each instance's
//! graph, tasks, watches, history and reports, served by `phasegate serve`
//! under `/console` for the people who decide at release gates.
//!
//! It stands on the same identity as the API (docs/trust.md): a person signs
//! in with their API token (or arrives through the trusted proxy), and gets
//! a session cookie (HttpOnly, SameSite=Strict, expiring); every form carries
//! the session's anti-forgery token. A decision from the page is the engine's
//! decision with the session's principal and authentication, and a request
//! id fixed when the form was drawn, so a double submit records once.
//!
//! Pages are server-side templates (minijinja, HTML auto-escaped) and work
//! without JavaScript; the one small script, served from here, refreshes the
//! page's main content when the server says (server-sent events) that an
//! event was made durable.

mod graph;
mod pages;
mod session;

use std::sync::Arc;

use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

use super::Api;
pub(super) use session::Sessions;

/// The console's stylesheet and script: small, written for it, served from the binary.
const CSS: &str = include_str!("static/console.css");
const JS: &str = include_str!("static/console.js");

/// The template environment: every page, compiled in.
pub(super) fn templates() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    for (name, text) in [
        ("base.html", include_str!("templates/base.html")),
        ("login.html", include_str!("templates/login.html")),
        ("inbox.html", include_str!("templates/inbox.html")),
        ("instances.html", include_str!("templates/instances.html")),
        ("instance.html", include_str!("templates/instance.html")),
        ("report.html", include_str!("templates/report.html")),
        ("message.html", include_str!("templates/message.html")),
    ] {
        // The templates are part of the binary: one that does not parse is a defect `every_console_template_parses` catches.
        if let Err(error) = env.add_template(name, text) {
            tracing::error!(template = name, %error, "a console template does not parse");
        }
    }
    env
}

/// The console's routes, under `/console`.
pub(super) fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route("/console/", get(pages::inbox))
        .route("/console/login", get(pages::login_form).post(login))
        .route("/console/logout", post(logout))
        .route("/console/decide", post(pages::decide))
        .route("/console/instances", get(pages::instances))
        .route("/console/instances/{id}", get(pages::instance))
        .route("/console/instances/{id}/reports/{kind}", get(pages::report))
        .route("/console/events", get(events))
        .route("/console/static/console.css", get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS) }))
        .route("/console/static/console.js", get(|| async { ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], JS) }))
}

/// Who a console request comes from: the session's person, or the trusted
/// proxy's.
#[derive(Debug, Clone)]
pub(super) struct Viewer {
    pub(super) caller: super::Caller,
    /// The session's anti-forgery token, for forms.
    pub(super) csrf: String,
    /// A `Set-Cookie` to send (a session made for a proxy's user), if any.
    pub(super) set_cookie: Option<String>,
}

/// A page, or where to go instead.
pub(super) enum Page {
    Html(StatusCode, String, Option<String>),
    Go(String),
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        match self {
            Page::Html(status, body, cookie) => {
                let mut response = (status, Html(body)).into_response();
                if let Some(cookie) = cookie.and_then(|c| header::HeaderValue::from_str(&c).ok()) {
                    response.headers_mut().append(header::SET_COOKIE, cookie);
                }
                secure_headers(response.headers_mut());
                response
            }
            Page::Go(to) => Redirect::to(&to).into_response(),
        }
    }
}

/// Headers every page carries: no framing (clickjacking), no sniffing, only
/// this origin's scripts and styles, and no caching of what a person saw.
fn secure_headers(headers: &mut HeaderMap) {
    for (name, value) in [
        (
            "content-security-policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'",
        ),
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "same-origin"),
        ("cache-control", "no-store"),
    ] {
        if let Ok(value) = header::HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    }
}

/// The viewer of a request, if it is signed in (or comes through the trusted proxy).
pub(super) fn viewer(api: &Api, headers: &HeaderMap, peer: Option<std::net::IpAddr>) -> Result<Option<Viewer>, String> {
    let proxied = match &api.config.auth.proxy_header {
        Some(header) if headers.contains_key(header.as_str()) => Some(super::identify(api, headers, peer).map_err(|(message, who)| {
            tracing::warn!(route = "console", %who, reason = %message, "refused a request");
            message
        })?),
        _ => None,
    };
    let cookie = session::cookie_value(headers);
    let current = cookie.as_deref().and_then(|id| api.sessions.get(id));
    Ok(match (proxied, current) {
        // The proxy names the person on every request; a session only carries the form token.
        (Some(caller), Some(session)) if session.caller.principal == caller.principal => {
            Some(Viewer { caller, csrf: session.csrf, set_cookie: None })
        }
        (Some(caller), _) => {
            let (cookie, session) = api.sessions.open(caller.clone());
            Some(Viewer { caller, csrf: session.csrf, set_cookie: Some(cookie) })
        }
        (None, Some(session)) => Some(Viewer { caller: session.caller, csrf: session.csrf, set_cookie: None }),
        (None, None) => None,
    })
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
    #[serde(default)]
    csrf: String,
}

/// `POST /console/login`: a token for a session. The login form's own
/// anti-forgery token (a cookie and a field that must match) keeps another
/// site from signing a person in as someone else.
async fn login(State(api): State<Arc<Api>>, headers: HeaderMap, Form(form): Form<LoginForm>) -> Response {
    let expected = session::login_cookie_value(&headers).unwrap_or_default();
    if expected.is_empty() || !super::same(&expected, &form.csrf) {
        tracing::warn!(route = "POST /console/login", reason = "the sign-in form's anti-forgery token did not match", "refused a request");
        return pages::message(
            &api,
            None,
            StatusCode::FORBIDDEN,
            "Sign-in refused",
            "The sign-in form had expired or did not come from this console. Open the sign-in page again.",
        );
    }
    let mut bearer = HeaderMap::new();
    if let Ok(value) = header::HeaderValue::from_str(&format!("Bearer {}", form.token.trim())) {
        bearer.insert(header::AUTHORIZATION, value);
    }
    match super::identify(&api, &bearer, None) {
        Ok(caller) => {
            let (cookie, _) = api.sessions.open(caller);
            let mut response = Redirect::to("/console/").into_response();
            if let Ok(value) = header::HeaderValue::from_str(&cookie) {
                response.headers_mut().append(header::SET_COOKIE, value);
            }
            if let Ok(value) = header::HeaderValue::from_str(&session::clear_login_cookie()) {
                response.headers_mut().append(header::SET_COOKIE, value);
            }
            response
        }
        Err((message, who)) => {
            tracing::warn!(route = "POST /console/login", %who, reason = %message, "refused a request");
            pages::login_page(&api, StatusCode::UNAUTHORIZED, Some(&message))
        }
    }
}

#[derive(Deserialize)]
struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /console/logout`: ends the session.
async fn logout(State(api): State<Arc<Api>>, headers: HeaderMap, Form(form): Form<LogoutForm>) -> Response {
    if let Some(id) = session::cookie_value(&headers) {
        if let Some(current) = api.sessions.get(&id) {
            if super::same(&current.csrf, &form.csrf) {
                api.sessions.close(&id);
            }
        }
    }
    let mut response = Redirect::to("/console/login").into_response();
    if let Ok(value) = header::HeaderValue::from_str(&session::clear_cookie()) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

#[derive(Deserialize)]
struct EventsQuery {
    instance: Option<String>,
}

/// `GET /console/events[?instance=ID]`: a server-sent event each time an
/// event (of that instance) is made durable, so an open page refreshes
/// without polling the store.
async fn events(State(api): State<Arc<Api>>, Query(query): Query<EventsQuery>, request: Request) -> Response {
    let peer = super::peer(&request);
    match viewer(&api, request.headers(), peer) {
        Ok(Some(_)) => {}
        _ => return (StatusCode::UNAUTHORIZED, "sign in first").into_response(),
    }
    use tokio_stream::StreamExt as _;
    let stream = tokio_stream::wrappers::BroadcastStream::new(api.engine.subscribe()).filter_map(move |note| {
        let note = note.ok()?;
        if query.instance.as_deref().is_some_and(|wanted| wanted != note.instance) {
            return None;
        }
        let status = note.status.map(|s| s.as_str()).unwrap_or_default();
        Some(Ok::<_, std::convert::Infallible>(SseEvent::default().event("durable").data(format!(
            "{} {} {status}",
            note.instance,
            note.record.seq()
        ))))
    });
    Sse::new(stream).keep_alive(KeepAlive::default()).into_response()
}

#[cfg(test)]
mod tests {
    /// Every page is part of the binary: one that does not parse fails here, not in front of a person.
    #[test]
    fn every_console_template_parses() {
        let env = super::templates();
        for name in ["base.html", "login.html", "inbox.html", "instances.html", "instance.html", "report.html", "message.html"] {
            assert!(env.get_template(name).is_ok(), "{name} parses");
        }
        let page = env
            .get_template("message.html")
            .and_then(|t| t.render(minijinja::context! { title => "<b>t</b>", text => "<script>x</script>", status => 403 }))
            .expect("renders");
        assert!(page.contains("&lt;script&gt;x&lt;") && !page.contains("<script>x"), "text is escaped: {page}");
    }
}
