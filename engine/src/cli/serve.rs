//! `phasegate serve`: drive the store's instances (like `run`) and serve the
//! control API, so the CLI and other tools work while this process owns the
//! store.

use std::sync::Arc;

use super::args::*;
use super::common::{report, runtime};
use crate::server;
use crate::Mode;

/// `phasegate serve`.
pub(super) fn serve(cli: &Cli, args: &ServeArgs) -> u8 {
    if !args.listen.ip().is_loopback() && !args.allow_remote {
        eprintln!(
            "error: --listen {}: not a loopback address; the control API listens on loopback unless --allow-remote is given (it always requires the token)",
            args.listen
        );
        return EXIT_USAGE;
    }
    let config = match cli.config() {
        Ok(config) => config,
        Err(message) => return fail!("usage", EXIT_USAGE, "{message}"),
    };
    let Ok(runtime) = runtime() else { return EXIT_USAGE };
    runtime.block_on(async {
        let engine = match super::common::open_engine_with(cli, Mode::Drive, args.concurrency, true, true).await {
            Ok(engine) => Arc::new(engine),
            Err(status) => return status,
        };
        let token = match server::ensure_token(&cli.db) {
            Ok(token) => token,
            Err(error) => {
                eprintln!("error: cannot create the token in {}: {error}", cli.db.display());
                engine.shutdown().await;
                return EXIT_USAGE;
            }
        };
        let listener = match tokio::net::TcpListener::bind(args.listen).await {
            Ok(listener) => listener,
            Err(error) => {
                eprintln!("error: cannot listen on {}: {error}; choose another with --listen", args.listen);
                engine.shutdown().await;
                return EXIT_USAGE;
            }
        };
        let url = listener.local_addr().map_or_else(|_| args.listen.to_string(), |a| format!("http://{a}"));
        // A cluster node tells the others where it answers, and forwards
        // them the commands for instances they own.
        if engine.cluster().is_some() {
            match engine.store().cluster_secret() {
                Ok(Some(secret)) => engine.set_forwarder(Arc::new(server::HttpForwarder::new(secret))),
                Ok(None) => eprintln!("warning: the store has no cluster secret; run `phasegate store migrate`: commands for other nodes' instances are refused"),
                Err(error) => eprintln!("warning: cannot read the cluster secret ({error}); commands for other nodes' instances are refused"),
            }
            engine.store().advertise(url.trim_start_matches("http://"));
        }
        let address_file = server::address_file(&cli.db);
        if let Err(error) = std::fs::write(&address_file, format!("{url}\n{}\n", std::process::id())) {
            eprintln!("error: cannot write {}: {error}", address_file.display());
            engine.shutdown().await;
            return EXIT_USAGE;
        }
        eprintln!(
            "serving the control API on {url} (admin token in {}; people use their own: `phasegate users add NAME`); the CLI uses it while this runs",
            cli.db.join(server::TOKEN_FILE).display()
        );
        if let Some(header) = &config.auth.proxy_header {
            let from: Vec<String> = config.auth.trusted_proxies.iter().map(ToString::to_string).collect();
            eprintln!("believing the {header} header from {} only", from.join(", "));
        }
        let app = match server::router(Arc::clone(&engine), token, config) {
            Ok(app) => app,
            Err(error) => {
                engine.shutdown().await;
                return report(&error);
            }
        };
        // Soaks and `for` windows say in the log that they are alive, and how much is left.
        let progress = tokio::spawn(super::progress::log(Arc::clone(&engine)));
        // A failed engine (its driver stopped, its store refuses writes)
        // fails closed: the server stops and the process exits non-zero, so
        // a supervisor restarts it on a store that works.
        let watched = Arc::clone(&engine);
        // The peer's address, so a proxy header is believed only from a trusted proxy.
        let served = axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>())
            .with_graceful_shutdown(async move {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    why = watched.failed() => eprintln!("error: stopping: {why}"),
                }
            })
            .await;
        let _ = std::fs::remove_file(&address_file);
        progress.abort();
        engine.shutdown().await;
        if let Err(why) = engine.health() {
            eprintln!("error: the engine failed: {why}; nothing after the failure was acknowledged");
            return EXIT_INVALID;
        }
        match served {
            Ok(()) => EXIT_OK,
            Err(error) => {
                eprintln!("error: the control API stopped: {error}");
                EXIT_USAGE
            }
        }
    })
}
