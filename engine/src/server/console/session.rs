//! Console sessions: a random id in an HttpOnly, SameSite=Strict cookie,
//! kept in memory with who signed in, their anti-forgery token and when the
//! session ends. A restart signs everyone out (they sign in again); nothing
//! about a session is written to the store.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap};

use super::super::Caller;

/// The session cookie's name.
pub(crate) const COOKIE: &str = "phasegate_session";
/// The sign-in form's anti-forgery cookie.
const LOGIN_COOKIE: &str = "phasegate_login";
/// How long a session lasts from sign-in.
pub(crate) const LIFETIME: Duration = Duration::from_secs(8 * 3600);
/// The most sessions kept at once; the oldest go first beyond it.
const MOST: usize = 10_000;

/// A signed-in person.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub(crate) caller: Caller,
    pub(crate) csrf: String,
    expires: Instant,
}

/// The live sessions.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    live: Mutex<HashMap<String, Session>>,
}

/// 32 random bytes, in hex.
pub(crate) fn random() -> String {
    let mut bytes = [0u8; 32];
    // No randomness means no session: an empty id is never issued or matched.
    if getrandom::fill(&mut bytes).is_err() {
        return String::new();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn cookie_header(name: &str, value: &str, max_age: Duration) -> String {
    cookie::Cookie::build((name, value))
        .path("/console")
        .http_only(true)
        .same_site(cookie::SameSite::Strict)
        .max_age(cookie::time::Duration::seconds(i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX)))
        .build()
        .to_string()
}

fn named(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
        .filter(|v| !v.is_empty())
}

/// The session id a request presents, if any.
pub(crate) fn cookie_value(headers: &HeaderMap) -> Option<String> {
    named(headers, COOKIE)
}

/// The sign-in form's anti-forgery value a request presents, if any.
pub(crate) fn login_cookie_value(headers: &HeaderMap) -> Option<String> {
    named(headers, LOGIN_COOKIE)
}

/// A `Set-Cookie` for the sign-in form's anti-forgery value (ten minutes).
pub(crate) fn login_cookie(value: &str) -> String {
    cookie_header(LOGIN_COOKIE, value, Duration::from_secs(600))
}

/// A `Set-Cookie` that removes the sign-in form's cookie.
pub(crate) fn clear_login_cookie() -> String {
    cookie_header(LOGIN_COOKIE, "", Duration::ZERO)
}

/// A `Set-Cookie` that ends the session in the browser.
pub(crate) fn clear_cookie() -> String {
    cookie_header(COOKIE, "", Duration::ZERO)
}

impl Sessions {
    /// Opens a session for `caller`: its `Set-Cookie` and the session.
    pub(crate) fn open(&self, caller: Caller) -> (String, Session) {
        let id = random();
        let session = Session { caller, csrf: random(), expires: Instant::now() + LIFETIME };
        if let Ok(mut live) = self.live.lock() {
            let now = Instant::now();
            live.retain(|_, s| s.expires > now);
            if live.len() >= MOST {
                if let Some(oldest) = live.iter().min_by_key(|(_, s)| s.expires).map(|(k, _)| k.clone()) {
                    live.remove(&oldest);
                }
            }
            live.insert(id.clone(), session.clone());
        }
        (cookie_header(COOKIE, &id, LIFETIME), session)
    }

    /// The session with this id, while it lasts and its credential is still
    /// good (a revoked token ends its sessions).
    pub(crate) fn get(&self, id: &str) -> Option<Session> {
        if id.is_empty() {
            return None;
        }
        let live = self.live.lock().ok()?;
        live.get(id).filter(|s| s.expires > Instant::now()).cloned()
    }

    /// Ends a session.
    pub(crate) fn close(&self, id: &str) {
        if let Ok(mut live) = self.live.lock() {
            live.remove(id);
        }
    }

    /// Ends every session of `principal` (their token was revoked).
    pub(crate) fn close_all_of(&self, principal: &str) {
        if let Ok(mut live) = self.live.lock() {
            live.retain(|_, s| s.caller.principal != principal);
        }
    }
}
