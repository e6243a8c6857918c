//! Several nodes on one shared store: each instance is driven by the node
//! holding its shard's lease, and a command given to any node reaches it.
//!
//! The store decides who owns what ([`Store::owns`], enforced by the
//! database on every write). The driver loads only what this node owns,
//! drops what it gives up or loses, and recovers what it gains (attempts in
//! flight run again with their idempotency key, as after a crash). The
//! commands that write (start, the operator commands, decisions, advance)
//! are carried to the owner by a [`Forward`]er, the server's node-to-node
//! call, as a [`Forwarded`] command; the owner answers with the same typed
//! outcome or error the caller would have had from it.

use super::*;

use super::forward::{is_not_owner, not_owner};
pub use super::forward::{Forward, Forwarded};

/// How long a command waits for its instance to have a reachable owner
/// (a takeover under way) before it is refused.
const FORWARD_FOR: Duration = Duration::from_secs(30);

impl Engine {
    /// Installs the forwarder that carries commands for instances another
    /// node owns (the server does, in a cluster). Without one, such a
    /// command is refused with the store's `NotOwner` error.
    pub fn set_forwarder(&self, forwarder: Arc<dyn Forward>) {
        let _ = self.shared.forwarder.set(forwarder);
    }

    /// Runs `command` here if this node owns its instance, else on the node
    /// that does; while nobody reachable owns it (a takeover under way),
    /// asks again for up to [`FORWARD_FOR`].
    pub(crate) async fn run_or_forward(&self, command: Forwarded) -> Result<Value, Error> {
        let id = command.instance().to_owned();
        let deadline = std::time::Instant::now() + FORWARD_FOR;
        let mut pause = Duration::from_millis(50);
        loop {
            let outcome = if self.shared.store.owns(&id) {
                self.execute_forwarded(command.clone()).await
            } else {
                match (self.shared.forwarder.get(), self.shared.store.owner(&id)?) {
                    (None, _) => return Err(not_owner(&id)),
                    (Some(forwarder), Some(owner)) if owner.address.is_some() => forwarder.forward(&owner, &command).await,
                    // Nobody holds it, or its owner has not said where it
                    // answers yet: a takeover or a start under way.
                    (Some(_), _) => Err(not_owner(&id)),
                }
            };
            match outcome {
                Err(error) if is_not_owner(&error) && std::time::Instant::now() < deadline => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(500));
                }
                other => return other,
            }
        }
    }

    /// Applies a command this node was handed for an instance it owns (or
    /// was given directly), answering with its outcome as JSON. Refused
    /// with `NotOwner` when this node does not own the instance.
    pub async fn execute_forwarded(&self, command: Forwarded) -> Result<Value, Error> {
        let json =
            |value: Result<Value, serde_json::Error>| value.map_err(|error| Error::Invalid(format!("cannot encode the outcome: {error}")));
        match command {
            Forwarded::Start { id, hash, vars, started_by, baselines } => {
                let workflow = self.shared.definitions.get(&*self.shared.store, &self.shared.agent_names, &hash)?;
                let id = self.request(|reply| Message::Start { id, workflow, hash, vars, started_by, baselines, reply }).await?;
                json(serde_json::to_value(id))
            }
            Forwarded::Operate { id, event } => {
                let seq = self.request(|reply| Message::Operate { id, event, reply }).await?;
                json(serde_json::to_value(seq))
            }
            Forwarded::Decide { id, gate, request } => {
                let outcome = self.request(|reply| Message::Decide { id, gate, request, reply }).await?;
                json(serde_json::to_value(outcome))
            }
            Forwarded::Advance { id } => {
                let report = self.request(|reply| Message::Advance { id, reply }).await?;
                json(serde_json::to_value(report))
            }
        }
    }

    /// This node's part in a cluster (shards, live nodes, renewals,
    /// takeovers), if its store is shared.
    pub fn cluster(&self) -> Option<phasegate_store::ClusterStatus> {
        self.shared.store.cluster()
    }
}

/// How often a cluster node reads the users and the policy again, so a
/// token revoked through another node is refused here within this time.
const IDENTITY_EVERY: Duration = Duration::from_secs(1);

/// Tells the driver whenever what the store leases to this node changes,
/// so it drops what it gave up and recovers what it gained; and reads the
/// users and the policy again every [`IDENTITY_EVERY`].
pub(crate) fn watch_ownership(shared: Arc<super::driver::Shared>, sender: mpsc::UnboundedSender<Message>) {
    tokio::spawn(async move {
        let mut seen = shared.store.ownership_epoch();
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut reloaded = std::time::Instant::now();
        loop {
            tick.tick().await;
            let epoch = shared.store.ownership_epoch();
            if epoch != seen {
                seen = epoch;
                if sender.send(Message::Ownership).is_err() {
                    return;
                }
            }
            if reloaded.elapsed() >= IDENTITY_EVERY {
                reloaded = std::time::Instant::now();
                // Users and policy are read again, so a token issued or
                // revoked through another node counts here too.
                let roles = shared.identity.read().map(|d| d.config_roles()).unwrap_or_default();
                let store = Arc::clone(&shared.store);
                match tokio::task::spawn_blocking(move || super::identity::Directory::load(&*store, roles)).await {
                    Ok(Ok(fresh)) => {
                        if let Ok(mut directory) = shared.identity.write() {
                            *directory = fresh;
                        }
                    }
                    Ok(Err(error)) => tracing::warn!(%error, "could not read the users again"),
                    Err(_) => return,
                }
                if sender.is_closed() {
                    return;
                }
            }
        }
    });
}
