//! What every command shares: the async runtime, opening the engine on
//! `--db`, running a command against a live server or the local store, and
//! reporting an engine error with its exit status.

use super::args::{Cli, EXIT_INVALID, EXIT_USAGE};
use super::backend::Backend;
use crate::runtime::Error;
use crate::{Engine, Mode};

pub(super) fn runtime() -> Result<tokio::runtime::Runtime, u8> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|error| {
        eprintln!("error: cannot start the async runtime: {error}");
        EXIT_USAGE
    })
}

/// Opens the engine on `--db`, with the roles and limits of the configuration.
pub(super) async fn open_engine(cli: &Cli, mode: Mode, concurrency: usize, create: bool) -> Result<Engine, u8> {
    open_engine_with(cli, mode, concurrency, create, false).await
}

/// [`open_engine`], as a node sharing a PostgreSQL store with others when
/// `shared` (what `serve` does; a CLI command or `run` holds it alone).
pub(super) async fn open_engine_with(cli: &Cli, mode: Mode, concurrency: usize, create: bool, shared: bool) -> Result<Engine, u8> {
    let config = cli.config().map_err(|message| fail!("usage", EXIT_USAGE, "{message}"))?;
    let concurrency = config.limits.max_concurrent_tasks.unwrap_or(concurrency);
    let mut builder =
        Engine::builder().store_path(&cli.db).create_store(create).mode(mode).max_concurrent_tasks(concurrency).roles(config.roles());
    if let Some(url) = cli.store_url().map_err(|message| fail!("usage", EXIT_USAGE, "{message}"))? {
        let mut options = config.store.postgres_options().map_err(|message| fail!("usage", EXIT_USAGE, "{message}"))?;
        options.shared = shared;
        builder = builder.store_url(url).postgres_options(options);
    }
    for (agent, limit) in &config.limits.agents {
        builder = builder.agent_limit(agent.clone(), *limit);
    }
    builder.build().await.map_err(|error| report(&error))
}

/// Prints an engine error and returns the exit status it calls for: 2 for
/// usage or I/O (no store, a store in use or damaged), 1 for everything
/// refused or failed.
pub(super) fn report(error: &Error) -> u8 {
    let code = match error {
        Error::Store(
            phasegate_store::Error::Io(_)
            | phasegate_store::Error::InUse { .. }
            | phasegate_store::Error::NewerFormat { .. }
            | phasegate_store::Error::NoStore { .. }
            | phasegate_store::Error::OldSchema { .. }
            | phasegate_store::Error::LostData { .. },
        ) => EXIT_USAGE,
        _ => EXIT_INVALID,
    };
    match error {
        // Diagnostics print their own `error:` prefix, one per problem.
        Error::Definition(diagnostics) if super::output::json_errors() => super::output::error("invalid", &diagnostics.to_string(), code),
        Error::Definition(diagnostics) => {
            eprintln!("{diagnostics}");
            code
        }
        other => super::output::error(other.kind(), &other.to_string(), code),
    }
}

/// Prints one JSON document on standard output.
pub(super) fn print_json<T: serde::Serialize + ?Sized>(value: &T) {
    super::output::with_stdout(|out| {
        serde_json::to_writer_pretty(&mut *out, value)?;
        writeln!(out)
    });
}

/// Runs one short command against the store without driving anything:
/// opens the engine in passive mode, runs `body`, shuts the engine down, and
/// turns an error into its message and exit status. `body` returns the exit
/// status of success.
pub(super) fn command(cli: &Cli, body: impl AsyncFnOnce(&Backend) -> Result<u8, Error>) -> u8 {
    command_with(cli, false, body)
}

/// [`command`], creating the store when `create` and there is none (only
/// `start` does: every other command needs a store that exists).
pub(super) fn command_with(cli: &Cli, create: bool, body: impl AsyncFnOnce(&Backend) -> Result<u8, Error>) -> u8 {
    let Ok(runtime) = runtime() else { return EXIT_USAGE };
    runtime.block_on(async {
        // A live server owns the store: talk to it. Otherwise open the store here.
        let backend = match super::backend::find_server(&cli.db, cli.named()).await {
            Ok(Some(remote)) => Backend::Remote(remote),
            Ok(None) => match open_engine(cli, Mode::Passive, 1, create).await {
                Ok(engine) => Backend::Local(engine),
                Err(status) => return status,
            },
            Err(message) => return fail!("unauthorized", EXIT_USAGE, "{message}"),
        };
        let result = body(&backend).await;
        backend.shutdown().await;
        result.unwrap_or_else(|error| report(&error))
    })
}
