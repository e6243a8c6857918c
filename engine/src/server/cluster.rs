//! Node to node: the call that carries a command to the node owning its
//! instance (`POST /v1/internal/forward`), authenticated by the secret the
//! nodes of one database share, which it keeps in a table of its own.
//!
//! The node that took the request has authenticated and authorized its
//! caller already; what it forwards is the resolved command with the
//! caller's proven principal (a decision keeps how it was authenticated),
//! never the caller's credential.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};

use super::{same, Api, ApiError, ApiResult};
use crate::runtime::cluster::{Forward, Forwarded};
use crate::runtime::Error;

/// The header a forwarded command carries the cluster's secret in.
pub(super) const SECRET_HEADER: &str = "x-phasegate-cluster-secret";

/// Forwards commands over HTTP to the owner's advertised address: what a
/// cluster node installs with [`Engine::set_forwarder`](crate::Engine::set_forwarder)
/// (`phasegate serve` does), with the secret of [`phasegate_store::Store::cluster_secret`].
pub struct HttpForwarder {
    client: reqwest::Client,
    secret: String,
}

impl HttpForwarder {
    /// A forwarder presenting `secret` (the store's cluster secret).
    pub fn new(secret: String) -> Self {
        let client =
            reqwest::Client::builder().timeout(std::time::Duration::from_secs(60)).build().unwrap_or_else(|_| reqwest::Client::new());
        HttpForwarder { client, secret }
    }
}

/// The engine error an owner's refusal stands for, so the caller gets the
/// same status and kind it would have had from the owner itself.
fn owner_error(status: u16, kind: &str, message: String) -> Error {
    match kind {
        "forbidden" => Error::Forbidden(message),
        "conflict" => Error::Conflict(message),
        "invalid" => Error::Invalid(message),
        "not_owner" => Error::Remote { kind: "not_owner", message },
        "not_found" => Error::Remote { kind: "not_found", message },
        "rejected" => Error::Remote { kind: "rejected", message },
        "quarantined" => Error::Remote { kind: "quarantined", message },
        _ if status == 422 => Error::Invalid(message),
        _ => Error::Remote { kind: "store", message },
    }
}

#[async_trait::async_trait]
impl Forward for HttpForwarder {
    async fn forward(&self, owner: &phasegate_store::NodeAddress, command: &Forwarded) -> Result<Value, Error> {
        let Some(address) = &owner.address else {
            return Err(Error::Remote { kind: "not_owner", message: format!("node {} has not said where it answers yet", owner.node) });
        };
        let url = format!("http://{address}/v1/internal/forward");
        let response = match self.client.post(&url).header(SECRET_HEADER, &self.secret).json(command).send().await {
            Ok(response) => response,
            // The owner died or is restarting: a takeover will follow.
            Err(error) => {
                return Err(Error::Remote {
                    kind: "not_owner",
                    message: format!("node {} at {address} did not answer: {error}", owner.node),
                })
            }
        };
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status == 200 {
            return Ok(body["ok"].clone());
        }
        let message = body["error"].as_str().unwrap_or("the owning node refused the command").to_owned();
        Err(owner_error(status, body["kind"].as_str().unwrap_or(""), message))
    }
}

/// `POST /v1/internal/forward`: runs a command another node forwarded, if
/// it carries the cluster's secret and this node owns the instance.
pub(super) async fn forwarded(State(api): State<Arc<Api>>, headers: HeaderMap, body: axum::body::Bytes) -> ApiResult {
    let expected = api.engine.store().cluster_secret().map_err(Error::from)?;
    let given = headers.get(SECRET_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default();
    match expected {
        Some(secret) if same(given, &secret) => {}
        _ => {
            tracing::warn!(route = "POST /v1/internal/forward", "refused a forwarded command without the cluster's secret");
            return Err(ApiError(StatusCode::UNAUTHORIZED, "not a node of this cluster".to_owned(), "unauthorized"));
        }
    }
    let command: Forwarded = serde_json::from_slice(&body)
        .map_err(|error| ApiError(StatusCode::BAD_REQUEST, format!("not a forwarded command: {error}"), "bad_json"))?;
    let value = api.engine.execute_forwarded(command).await?;
    Ok((StatusCode::OK, Json(json!({ "ok": value }))).into_response())
}

/// What `/healthz` says of this node's part in a cluster.
pub(super) fn health(api: &Api) -> Option<Value> {
    api.engine.cluster().map(|c| {
        json!({"node": c.node, "shards": c.shards, "live_nodes": c.live_nodes, "renewals": c.renewals, "takeovers": c.takeovers, "released": c.released})
    })
}
