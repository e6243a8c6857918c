//! Building an engine: its store, agents, roles, limits, clock and mode.

use super::*;

/// Whether the engine runs instances or only records commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Recover at start, decide and dispatch: a process that runs workflows.
    Drive,
    /// Apply commands (start, halt, resume, ...) and nothing else: what a
    /// short CLI command does when no runner holds the store.
    Passive,
}

/// Builds an [`Engine`].
pub struct Builder {
    path: Option<PathBuf>,
    url: Option<String>,
    postgres: phasegate_store::PostgresOptions,
    store: Option<Arc<dyn Store>>,
    registry: Registry,
    mode: Mode,
    max_concurrent_tasks: usize,
    agent_limits: HashMap<String, usize>,
    roles: crate::machine::Roles,
    open_mode: phasegate_store::OpenMode,
    clock: Arc<dyn Clock>,
}

impl Builder {
    /// The built-in agents, driving, 64 concurrent tasks.
    pub(super) fn new() -> Self {
        Builder {
            path: None,
            url: None,
            postgres: phasegate_store::PostgresOptions::default(),
            store: None,
            registry: Registry::with_builtins(),
            mode: Mode::Drive,
            max_concurrent_tasks: 64,
            agent_limits: HashMap::new(),
            roles: crate::machine::Roles::default(),
            open_mode: phasegate_store::OpenMode::Create,
            clock: Arc::new(SystemClock),
        }
    }

    /// Where the engine reads the time (default: the system clock). Tests
    /// pass a [`ManualClock`] and move it, then [`Engine::wake`] the engine.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Whether a missing store is created (the default) or refused with
    /// "no store at PATH": commands that only read, or act on instances that
    /// must exist, never create one.
    pub fn create_store(mut self, create: bool) -> Self {
        self.open_mode = if create { phasegate_store::OpenMode::Create } else { phasegate_store::OpenMode::Existing };
        self
    }

    /// Role membership (role → principals) used to authorize decisions.
    pub fn roles(mut self, roles: crate::machine::Roles) -> Self {
        self.roles = roles;
        self
    }

    /// The data directory of the sled store (created if missing).
    pub fn store_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// Keeps the store in the PostgreSQL database at `url`
    /// (`postgres://USER@HOST:PORT/DATABASE`) instead of sled: a database
    /// other nodes may share. The data directory ([`Builder::store_path`])
    /// then keeps only this node's own files (task logs, the admin token,
    /// the control address).
    pub fn store_url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    /// How this node uses a PostgreSQL store: its lease time and its name
    /// (see [`phasegate_store::PostgresOptions`]).
    pub fn postgres_options(mut self, options: phasegate_store::PostgresOptions) -> Self {
        self.postgres = options;
        self
    }

    /// An already opened store (the in-memory one in tests, say).
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// The agents instances may use (default: the built-ins).
    pub fn agents(mut self, registry: Registry) -> Self {
        self.registry = registry;
        self
    }

    /// Drive instances (default) or only record commands.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Most task attempts running at once, across all instances (default 64).
    pub fn max_concurrent_tasks(mut self, limit: usize) -> Self {
        self.max_concurrent_tasks = limit.max(1);
        self
    }

    /// Most attempts of one agent running at once.
    pub fn agent_limit(mut self, agent: impl Into<String>, limit: usize) -> Self {
        self.agent_limits.insert(agent.into(), limit.max(1));
        self
    }

    /// Opens the store, recovers (in [`Mode::Drive`]) and starts the runtime.
    /// Must be called inside a tokio runtime.
    pub async fn build(self) -> Result<Engine, Error> {
        let has_default_store = self.store.is_none() && self.path.is_none();
        let store: Arc<dyn Store> = match (self.store, &self.url, &self.path) {
            (Some(store), ..) => store,
            (None, Some(url), _) => {
                let (url, mode, options) = (url.clone(), self.open_mode, self.postgres.clone());
                // Opening may wait for another node's leases to expire.
                let opened = tokio::task::spawn_blocking(move || phasegate_store::PostgresStore::open_url(&url, mode, options))
                    .await
                    .map_err(|error| Error::Store(phasegate_store::Error::Io(format!("opening the PostgreSQL store failed: {error}"))))?;
                Arc::new(opened?)
            }
            (None, None, Some(path)) => Arc::new(SledStore::open_with(path, self.open_mode)?),
            (None, None, None) => Arc::new(SledStore::open_with(std::path::Path::new(".phasegate"), self.open_mode)?),
        };
        let mut registry = self.registry;
        let agent_names = registry.names().fold(AgentNames::builtin(), |names, name| names.with(name));
        // The engine's own `report` agent, unless the embedding program
        // registered one of that name.
        if registry.get(super::report_agent::REPORT_AGENT).is_none() {
            let agent = super::report_agent::ReportAgent::new(Arc::clone(&store), agent_names.clone(), Arc::clone(&self.clock));
            registry.register(Arc::new(agent));
        }
        // The first subscriber sees everything since the engine started,
        // recovery included (a receiver made now buffers it).
        let (events, from_start) = broadcast::channel(4096);
        let store_for_identity = Arc::clone(&store);
        let shared = Arc::new(driver::Shared {
            store,
            registry,
            agent_names,
            definitions: load::Definitions::default(),
            logs: self
                .path
                .as_ref()
                .map(|path| path.join(super::task_logs::LOGS_DIR))
                .or_else(|| has_default_store.then(|| std::path::Path::new(".phasegate").join(super::task_logs::LOGS_DIR))),
            identity: std::sync::RwLock::new(super::identity::Directory::load(&*store_for_identity, self.roles)?),
            events,
            failure: watch::channel(None).0,
            clock: self.clock,
            global_permits: Arc::new(tokio::sync::Semaphore::new(self.max_concurrent_tasks)),
            agent_permits: self
                .agent_limits
                .into_iter()
                .map(|(name, limit)| (name, Arc::new(tokio::sync::Semaphore::new(limit))))
                .collect(),
            forwarder: std::sync::OnceLock::new(),
        });
        let (sender, receiver) = mpsc::unbounded_channel();
        let (active_sender, active) = watch::channel(0usize);
        let mut driver = driver::Driver::new(Arc::clone(&shared), self.mode, sender.clone(), receiver, active_sender);
        if self.mode == Mode::Drive {
            driver.recover();
        }
        // A driver task that dies (a panic is a bug, but must not leave a
        // server answering as if healthy) marks the engine failed.
        let driver_task = tokio::spawn(driver.run());
        // A cluster node drops and recovers instances as its leases change.
        if self.mode == Mode::Drive && shared.store.cluster().is_some() {
            super::cluster::watch_ownership(Arc::clone(&shared), sender.clone());
        }
        let watcher = Arc::clone(&shared);
        let handle = tokio::spawn(async move {
            if let Err(error) = driver_task.await {
                let why = match error.try_into_panic() {
                    Ok(panic) => panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "a panic".to_owned()),
                    Err(_) => "it was cancelled".to_owned(),
                };
                watcher.fail(format!("the engine's driver task stopped: {why}"));
            }
        });
        Ok(Engine {
            shared,
            sender,
            active,
            driver: tokio::sync::Mutex::new(Some(handle)),
            from_start: std::sync::Mutex::new(Some(from_start)),
        })
    }
}
