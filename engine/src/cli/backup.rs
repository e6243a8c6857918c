//! `phasegate backup` and `phasegate restore`: a consistent copy of a store
//! (live, through a running server, or opened here) and a copy back into a
//! new data directory.

use std::path::PathBuf;

use serde_json::json;

use super::args::*;
use super::backend::Backend;
use super::common::{command, print_json, runtime};

fn report_json(report: &phasegate_store::BackupReport) -> serde_json::Value {
    json!({"path": report.path, "records": report.records, "instances": report.instances, "bytes": report.bytes})
}

fn absolute(path: &std::path::Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// `phasegate backup DEST`.
pub(super) fn backup(cli: &Cli, args: &BackupArgs) -> u8 {
    // A server resolves relative paths against its own directory: send it an absolute one.
    let dest = absolute(&args.dest);
    command(cli, async |backend: &Backend| {
        let report = backend.backup(&dest).await?;
        match cli.output {
            OutputFormat::Json => print_json(&report_json(&report)),
            OutputFormat::Text => outln!(
                "backed up {} instance(s) ({} records, {} bytes) to {}; restore with `phasegate restore {} --db NEW_PATH`",
                report.instances,
                report.records,
                report.bytes,
                report.path,
                report.path
            ),
        }
        Ok(EXIT_OK)
    })
}

/// `phasegate restore SRC --db PATH`.
pub(super) fn restore(cli: &Cli, args: &RestoreArgs) -> u8 {
    let Ok(runtime) = runtime() else { return EXIT_USAGE };
    if runtime.block_on(super::backend::find_server(&cli.db, &cli.principal())).is_some() {
        return fail!(
            "in_use",
            EXIT_INVALID,
            "a server is running on {}; a restore goes into a new data directory, never over a live store",
            cli.db.display()
        );
    }
    let source = args.source.clone();
    let dest = cli.db.clone();
    let copied =
        runtime.block_on(async move { tokio::task::spawn_blocking(move || phasegate_store::SledStore::restore(&source, &dest)).await });
    match copied {
        Ok(Ok(report)) => {
            match cli.output {
                OutputFormat::Json => print_json(&report_json(&report)),
                OutputFormat::Text => outln!(
                    "restored {} instance(s) ({} records) from {} into {}",
                    report.instances,
                    report.records,
                    args.source.display(),
                    report.path
                ),
            }
            EXIT_OK
        }
        Ok(Err(error)) => {
            eprintln!("error: restore {} --db {}: {error}", args.source.display(), cli.db.display());
            match error {
                phasegate_store::Error::Io(_) | phasegate_store::Error::NoStore { .. } | phasegate_store::Error::InUse { .. } => EXIT_USAGE,
                _ => EXIT_INVALID,
            }
        }
        Err(_) => {
            eprintln!("error: the restore stopped unexpectedly");
            EXIT_USAGE
        }
    }
}
