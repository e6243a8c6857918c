//! Where a CLI command runs: against a live `phasegate serve` for the store
//! (found through the address file in the data directory) or, with none
//! running, against the store opened in this process. Commands are written
//! once against [`Backend`]; the user never needs to know which path was
//! taken.

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::machine::{Instance, Record};
use crate::model::{Source, WorkflowDef};
use crate::plan::{AgentNames, Workflow};
use crate::runtime::identity;
use crate::runtime::{AdvanceReport, DecisionOutcome, DecisionRequest, Error, PendingApproval, StartOptions, Summary};
use crate::{api, server, Engine};

/// The engine a command talks to.
pub(super) enum Backend {
    /// The store, opened by this process.
    Local(Engine),
    /// A live server that owns the store.
    Remote(Remote),
}

/// A client of a live server's control API.
pub(super) struct Remote {
    client: reqwest::Client,
    base: String,
    token: String,
    /// Where the token came from, for messages.
    credential: String,
    /// The principal the caller named (`--as`), which the server checks
    /// against the credential's; none to act as the credential says.
    named: Option<String>,
}

/// The environment variable holding the caller's API token.
pub(super) const TOKEN_ENV: &str = "PHASEGATE_TOKEN";
/// The environment variable naming the credentials file.
pub(super) const CREDENTIALS_ENV: &str = "PHASEGATE_CREDENTIALS";

/// The caller's credentials file: `$PHASEGATE_CREDENTIALS`, or
/// `phasegate/credentials` in the XDG configuration directory.
pub(super) fn credentials_path() -> Option<std::path::PathBuf> {
    if let Some(path) = std::env::var_os(CREDENTIALS_ENV).filter(|p| !p.is_empty()) {
        return Some(path.into());
    }
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|p| !p.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").filter(|p| !p.is_empty()).map(|home| std::path::PathBuf::from(home).join(".config")))?;
    Some(config.join("phasegate").join("credentials"))
}

/// The credentials file's contents (`token = "pgt_…"`).
#[derive(serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Credentials {
    /// The caller's API token.
    pub(super) token: String,
}

/// Reads the credentials file at `path`, if there is one; one that others
/// can read (group or world permissions) is refused, with what to do.
pub(super) fn read_credentials(path: &std::path::Path) -> Result<Option<String>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(format!("{}: cannot read the credentials file: {error}", path.display())),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(format!(
                "{} is readable by others (mode {:o}); it holds your token: `chmod 600 {}`",
                path.display(),
                mode & 0o777,
                path.display()
            ));
        }
    }
    let credentials: Credentials = toml::from_str(&text).map_err(|e| format!("{}: {}", path.display(), e.message().trim()))?;
    Ok(Some(credentials.token.trim().to_owned()))
}

/// The credential to present to a server: `PHASEGATE_TOKEN`, else the
/// credentials file, else the data directory's admin token (operator
/// commands only) when this user can read it.
fn credential(data_dir: &std::path::Path) -> Result<Option<(String, String)>, String> {
    if let Some(token) = std::env::var(TOKEN_ENV).ok().map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()) {
        return Ok(Some((token, TOKEN_ENV.to_owned())));
    }
    if let Some(path) = credentials_path() {
        if let Some(token) = read_credentials(&path)? {
            return Ok(Some((token, path.display().to_string())));
        }
    }
    let admin = data_dir.join(server::TOKEN_FILE);
    Ok(std::fs::read_to_string(&admin).ok().map(|token| (token.trim().to_owned(), format!("the admin token in {}", admin.display()))))
}

/// The live server of a data directory, if its address file names one that
/// answers; a stale file (a server that died) is ignored. `named` is the
/// principal the caller named (`--as`), checked by the server. Fails when
/// a server answers but the caller's credentials file is unusable, or
/// there is no credential at all.
///
/// The token is a secret, so it is sent only to a loopback address that the
/// process named in the file (the server that wrote it) is listening on:
/// a file edited to point elsewhere, or a port some other process took
/// after the server died, gets nothing.
pub(super) async fn find_server(data_dir: &std::path::Path, named: Option<&str>) -> Result<Option<Remote>, String> {
    let Some(mut remote) = live_server(data_dir).await else { return Ok(None) };
    let Some((token, from)) = credential(data_dir)? else {
        return Err(format!(
            "a server ({}) owns the store, and there is no credential to give it: set {TOKEN_ENV} to your token, or run `phasegate login` (an admin issues tokens with `phasegate users add NAME`)",
            remote.base
        ));
    };
    remote.token = token;
    remote.credential = from;
    remote.named = named.map(str::to_owned);
    Ok(Some(remote))
}

/// The live server of a data directory, without a credential yet (for
/// commands that only need to know one runs).
pub(super) async fn live_server(data_dir: &std::path::Path) -> Option<Remote> {
    let text = std::fs::read_to_string(server::address_file(data_dir)).ok()?;
    let mut lines = text.lines();
    let base = lines.next()?.trim().to_owned();
    let pid: u32 = lines.next()?.trim().parse().ok()?;
    let address: std::net::SocketAddr = base.strip_prefix("http://")?.parse().ok()?;
    if !address.ip().is_loopback() {
        tracing::warn!(%base, "ignoring a control address that is not on loopback");
        return None;
    }
    if !listener_owned_by(pid, address.port()) {
        return None;
    }
    let client = reqwest::Client::builder().timeout(Duration::from_secs(120)).build().ok()?;
    let alive =
        client.get(format!("{base}/healthz")).timeout(Duration::from_millis(800)).send().await.is_ok_and(|r| r.status().is_success());
    alive.then(|| Remote { client, base, token: String::new(), credential: String::new(), named: None })
}

/// True if process `pid` holds a socket listening on TCP `port` (read from
/// /proc: the socket inodes listening on the port, and `pid`'s open files).
#[cfg(target_os = "linux")]
fn listener_owned_by(pid: u32, port: u16) -> bool {
    let mut inodes = std::collections::BTreeSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else { continue };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state), Some(inode)) = (fields.get(1), fields.get(3), fields.get(9)) else { continue };
            let listening_here = *state == "0A" && local.rsplit_once(':').and_then(|(_, p)| u16::from_str_radix(p, 16).ok()) == Some(port);
            if listening_here {
                inodes.insert(format!("socket:[{inode}]"));
            }
        }
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return false };
    fds.flatten().any(|fd| std::fs::read_link(fd.path()).is_ok_and(|target| inodes.contains(&target.to_string_lossy().into_owned())))
}

/// Elsewhere, the pid cannot be checked against the socket: the loopback rule alone applies.
#[cfg(not(target_os = "linux"))]
fn listener_owned_by(_pid: u32, _port: u16) -> bool {
    true
}

impl Remote {
    /// The server's URL.
    pub(super) fn base(&self) -> &str {
        &self.base
    }

    /// This server, presenting `token`.
    pub(super) fn with_token(mut self, token: String) -> Self {
        self.token = token;
        self.credential = "the token given".to_owned();
        self
    }

    /// Who the server takes the caller to be.
    pub(super) async fn whoami(&self) -> Result<api::WhoAmI, Error> {
        self.get("/v1/whoami").await
    }

    /// Where the credential it presents came from.
    pub(super) fn credential(&self) -> &str {
        &self.credential
    }

    async fn send<T: DeserializeOwned>(&self, request: reqwest::RequestBuilder) -> Result<T, Error> {
        let request = request.bearer_auth(&self.token);
        let request = match &self.named {
            Some(named) => request.header("x-phasegate-principal", named),
            None => request,
        };
        let response =
            request.send().await.map_err(|error| Error::Invalid(format!("the server at {} did not answer: {error}", self.base)))?;
        let status = response.status();
        let body: Value = response.json().await.map_err(|error| Error::Invalid(format!("the server's answer is not JSON: {error}")))?;
        if status.is_success() {
            return serde_json::from_value(body).map_err(|error| Error::Invalid(format!("unexpected answer from the server: {error}")));
        }
        let message = body["error"].as_str().unwrap_or("the server refused the request").to_owned();
        // The server's error, as the same kind of error a local command gives.
        Err(match body["kind"].as_str() {
            Some("forbidden") => Error::Forbidden(message),
            Some("unauthorized") => Error::Forbidden(format!("{message} (credential: {})", self.credential)),
            Some("conflict") => Error::Conflict(message),
            Some("not_found") => Error::Remote { kind: "not_found", message },
            Some("rejected") => Error::Remote { kind: "rejected", message },
            Some("quarantined") => Error::Remote { kind: "quarantined", message },
            Some("store" | "unavailable" | "shut_down") => Error::Remote { kind: "store", message },
            _ => Error::Invalid(message),
        })
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Error> {
        self.send(self.client.get(format!("{}{path}", self.base))).await
    }

    async fn post<T: DeserializeOwned>(&self, path: &str, body: &impl serde::Serialize) -> Result<T, Error> {
        self.send(self.client.post(format!("{}{path}", self.base)).json(&body)).await
    }
}

/// `text` as one URL path segment or query value: everything but RFC 3986's
/// unreserved characters percent-encoded.
fn encode(text: &str) -> String {
    const RESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
    percent_encoding::utf8_percent_encode(text, RESERVED).to_string()
}

impl Backend {
    /// The instance's state and its pinned workflow.
    pub(super) async fn instance(&self, id: &str) -> Result<(Instance, Arc<Workflow>), Error> {
        match self {
            Backend::Local(engine) => engine.instance(id),
            Backend::Remote(remote) => {
                let id = encode(id);
                let instance: Instance = remote.get(&format!("/v1/instances/{id}")).await?;
                let definition: WorkflowDef = remote.get(&format!("/v1/instances/{id}/definition")).await?;
                // The server may provide agents this process does not: accept every name the definition uses.
                let mut names = AgentNames::builtin();
                for phase in &definition.phases {
                    for task in &phase.tasks {
                        names = names.with(task.agent.clone());
                    }
                    for watch in &phase.watches {
                        names = names.with(watch.agent.clone());
                    }
                }
                let workflow = crate::plan::validate(&definition, &names).map_err(Error::Definition)?;
                Ok((instance, Arc::new(workflow)))
            }
        }
    }

    /// Every event of an instance.
    pub(super) async fn history(&self, id: &str) -> Result<Vec<Record>, Error> {
        match self {
            Backend::Local(engine) => engine.history(id),
            Backend::Remote(remote) => remote.get(&format!("/v1/instances/{}/history", encode(id))).await,
        }
    }

    /// The records after `after`, waiting up to `wait` for one through a
    /// server (the store opened here has no one else writing to it).
    pub(super) async fn history_after(&self, id: &str, after: u64, wait: Duration) -> Result<Vec<Record>, Error> {
        match self {
            Backend::Local(engine) => engine.history_after(id, after, Duration::ZERO).await,
            Backend::Remote(remote) => {
                let wait_ms = wait.min(server::MAX_WAIT).as_millis();
                remote.get(&format!("/v1/instances/{}/history?after={after}&wait_ms={wait_ms}", encode(id))).await
            }
        }
    }

    /// What the tasks of an instance printed (see [`Engine::task_logs`]).
    pub(super) async fn task_logs(
        &self,
        id: &str,
        task: Option<&str>,
        attempt: Option<u32>,
        from: usize,
    ) -> Result<Vec<crate::runtime::task_logs::AttemptLog>, Error> {
        match self {
            Backend::Local(engine) => engine.task_logs(id, task, attempt, from),
            Backend::Remote(remote) => {
                let mut query = format!("?from={from}");
                if let Some(task) = task {
                    query.push_str(&format!("&task={}", encode(task)));
                }
                if let Some(attempt) = attempt {
                    query.push_str(&format!("&attempt={attempt}"));
                }
                remote.get(&format!("/v1/instances/{}/logs{query}", encode(id))).await
            }
        }
    }

    /// Instances with their summaries.
    pub(super) async fn list(&self, status: Option<crate::machine::EffectiveStatus>) -> Result<Vec<(String, Summary)>, Error> {
        match self {
            Backend::Local(engine) => engine.list(status),
            Backend::Remote(remote) => {
                let path = status.map_or_else(|| "/v1/instances".to_owned(), |s| format!("/v1/instances?status={}", s.as_str()));
                let rows: Vec<api::Listed> = remote.get(&path).await?;
                Ok(rows.into_iter().map(|row| (row.id, row.summary)).collect())
            }
        }
    }

    /// Decisions people are waiting for.
    pub(super) async fn approvals(&self, principal: Option<&str>) -> Result<Vec<PendingApproval>, Error> {
        match self {
            Backend::Local(engine) => engine.approvals(principal),
            Backend::Remote(remote) => {
                let path = principal.map_or_else(|| "/v1/approvals".to_owned(), |p| format!("/v1/approvals?for={}", encode(p)));
                remote.get(&path).await
            }
        }
    }

    /// Starts an instance of a definition.
    pub(super) async fn start(&self, source: &Source, options: StartOptions) -> Result<String, Error> {
        match self {
            Backend::Local(engine) => {
                let workflow = engine.load_definition(source)?;
                engine.start(workflow, options).await
            }
            Backend::Remote(remote) => {
                let body = api::StartRequest {
                    definition: source.text.clone(),
                    format: source.format.into(),
                    vars: options.vars.into_iter().collect(),
                    id: options.id,
                    baseline: options.baseline,
                };
                let answer: api::Started = remote.post("/v1/instances", &body).await?;
                Ok(answer.id)
            }
        }
    }

    /// A decision at a gate or trigger halt.
    pub(super) async fn decide(&self, id: &str, gate: Option<&str>, request: DecisionRequest) -> Result<DecisionOutcome, Error> {
        match self {
            Backend::Local(engine) => engine.decide(id, gate, request).await,
            Backend::Remote(remote) => {
                let body = api::DecisionBody {
                    decision: request.kind,
                    gate: gate.map(str::to_owned),
                    comment: request.comment,
                    request_id: request.request_id,
                    inputs: request.inputs,
                };
                remote.post(&format!("/v1/instances/{}/decisions", encode(id)), &body).await
            }
        }
    }

    /// Moves an instance on, or says what blocks it.
    pub(super) async fn advance(&self, id: &str) -> Result<AdvanceReport, Error> {
        match self {
            Backend::Local(engine) => engine.advance(id).await,
            Backend::Remote(remote) => remote.post(&format!("/v1/instances/{}/advance", encode(id)), &api::OperationBody::default()).await,
        }
    }

    /// An operator command (halt, resume, cancel, retry, rollback, signal);
    /// returns the sequence number it was recorded at.
    pub(super) async fn operate(&self, id: &str, operation: Operation<'_>) -> Result<u64, Error> {
        match self {
            Backend::Local(engine) => match operation {
                Operation::Halt { by, reason, cancel_running } => engine.halt(id, by, reason, cancel_running).await,
                Operation::Resume { by } => engine.resume(id, by).await,
                Operation::Cancel { by, reason } => engine.cancel(id, by, reason).await,
                Operation::Retry { by, task } => engine.retry(id, by, task).await,
                Operation::RetryPhase { by, phase } => engine.retry_phase(id, by, phase).await,
                Operation::Rollback { by, reason, to } => engine.rollback(id, by, reason, to).await,
                Operation::Signal { by, name, data } => engine.signal(id, name, data, by).await,
            },
            Backend::Remote(remote) => {
                let none = api::OperationBody::default();
                let (path, body) = match operation {
                    Operation::Halt { reason, cancel_running, .. } => {
                        ("halt", api::OperationBody { reason: reason.to_owned(), cancel_running, ..none })
                    }
                    Operation::Resume { .. } => ("resume", none),
                    Operation::Cancel { reason, .. } => ("cancel", api::OperationBody { reason: reason.to_owned(), ..none }),
                    Operation::Retry { task, .. } => ("retry", api::OperationBody { task: task.map(str::to_owned), ..none }),
                    Operation::RetryPhase { phase, .. } => ("retry", api::OperationBody { phase: Some(phase.to_owned()), ..none }),
                    Operation::Rollback { reason, to, .. } => {
                        ("rollback", api::OperationBody { reason: reason.to_owned(), to: to.map(str::to_owned), ..none })
                    }
                    Operation::Signal { name, data, .. } => {
                        ("signal", api::OperationBody { name: Some(name.to_owned()), data: Some(data), ..none })
                    }
                };
                let answer: api::Operated = remote.post(&format!("/v1/instances/{}/{path}", encode(id)), &body).await?;
                Ok(answer.seq)
            }
        }
    }

    /// The audit chain of instance `id`, checked (against `head` too, when given).
    pub(super) async fn audit(
        &self,
        id: &str,
        head: Option<&crate::runtime::audit::ChainHead>,
    ) -> Result<crate::runtime::audit::Audit, Error> {
        match self {
            Backend::Local(engine) => engine.audit(id, head),
            Backend::Remote(remote) => {
                let query = head.map_or_else(String::new, |h| format!("?head={}", encode(&h.to_string())));
                remote.get(&format!("/v1/instances/{}/audit{query}", encode(id))).await
            }
        }
    }

    /// A consistent copy of the store into a new directory `dest`.
    pub(super) async fn backup(&self, dest: &std::path::Path) -> Result<phasegate_store::BackupReport, Error> {
        match self {
            Backend::Local(engine) => engine.backup(dest).await,
            Backend::Remote(remote) => {
                let answer: api::BackedUp = remote.post("/v1/backup", &api::BackupRequest { dest: dest.to_owned() }).await?;
                Ok(answer.into())
            }
        }
    }

    /// Issues user `name` a token (admin only, through a server).
    pub(super) async fn add_user(&self, name: &str, roles: &[String], by: &str) -> Result<identity::Issued, Error> {
        match self {
            Backend::Local(engine) => engine.add_user(name, roles, by),
            Backend::Remote(remote) => remote.post("/v1/users", &api::AddUser { name: name.to_owned(), roles: roles.to_vec() }).await,
        }
    }

    /// Revokes user `name`'s token.
    pub(super) async fn revoke_user(&self, name: &str, by: &str) -> Result<identity::User, Error> {
        match self {
            Backend::Local(engine) => engine.revoke_user(name, by),
            Backend::Remote(remote) => remote.post(&format!("/v1/users/{}/revoke", encode(name)), &serde_json::json!({})).await,
        }
    }

    /// The store's users.
    pub(super) async fn users(&self) -> Result<Vec<identity::User>, Error> {
        match self {
            Backend::Local(engine) => Ok(engine.users()),
            Backend::Remote(remote) => remote.get("/v1/users").await,
        }
    }

    /// The store's policy, set to `change` first when given.
    pub(super) async fn policy(&self, change: Option<identity::Policy>) -> Result<identity::Policy, Error> {
        match (self, change) {
            (Backend::Local(engine), Some(policy)) => engine.set_policy(policy).map(|()| policy),
            (Backend::Local(engine), None) => Ok(engine.policy()),
            (Backend::Remote(remote), Some(policy)) => {
                remote.send(remote.client.put(format!("{}/v1/policy", remote.base)).json(&policy)).await
            }
            (Backend::Remote(remote), None) => remote.get("/v1/policy").await,
        }
    }

    /// Closes the store (local) or does nothing (remote).
    pub(super) async fn shutdown(&self) {
        if let Backend::Local(engine) = self {
            engine.shutdown().await;
        }
    }
}

/// An operator command, with who gives it.
pub(super) enum Operation<'a> {
    Halt { by: &'a str, reason: &'a str, cancel_running: bool },
    Resume { by: &'a str },
    Cancel { by: &'a str, reason: &'a str },
    Retry { by: &'a str, task: Option<&'a str> },
    RetryPhase { by: &'a str, phase: &'a str },
    Rollback { by: &'a str, reason: &'a str, to: Option<&'a str> },
    Signal { by: &'a str, name: &'a str, data: Value },
}
