//! `phasegate backup` and `phasegate restore`: a consistent copy of a store
//! (live, through a running server, or opened here) and a copy back into a
//! new data directory; and `phasegate audit verify`, which checks that the
//! stored logs are the ones written.

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
    if runtime.block_on(super::backend::live_server(&cli.db)).is_some() {
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

/// `phasegate audit verify [ID] [--head SEQ:HASH]`: exit 0 when every chain
/// holds, 1 naming the first record that does not match.
pub(super) fn audit_verify(cli: &Cli, args: &AuditVerifyArgs) -> u8 {
    let head = match args.head.as_deref().map(crate::runtime::audit::ChainHead::parse).transpose() {
        Ok(head) => head,
        Err(problem) => return fail!("usage", EXIT_USAGE, "--head: {problem}"),
    };
    command(cli, async |backend: &Backend| {
        let ids = match &args.id {
            Some(id) => vec![id.clone()],
            None => backend.list(None).await?.into_iter().map(|(id, _)| id).collect(),
        };
        let mut audits = Vec::with_capacity(ids.len());
        for id in &ids {
            audits.push(backend.audit(id, head.as_ref()).await?);
        }
        let broken = audits.iter().filter(|a| !a.ok()).count();
        match cli.output {
            OutputFormat::Json => print_json(&json!({"ok": broken == 0, "instances": audits})),
            OutputFormat::Text => {
                for audit in &audits {
                    let head = audit.head.as_ref().map_or_else(|| "no records".to_owned(), ToString::to_string);
                    let older = if audit.unlinked > 0 {
                        format!(" ({} written before the chain, committed to by the rest)", audit.unlinked)
                    } else {
                        String::new()
                    };
                    match &audit.broken {
                        None => outln!("ok      {}: {} records{older}, head {head}", audit.instance, audit.events),
                        Some(why) => outln!("BROKEN  {}: {why}", audit.instance),
                    }
                }
                if broken > 0 {
                    outln!("{broken} of {} instance(s) do not match their audit chain", audits.len());
                }
            }
        }
        Ok(if broken == 0 { EXIT_OK } else { EXIT_INVALID })
    })
}

/// `phasegate store migrate --store URL`.
pub(super) fn migrate(cli: &Cli) -> u8 {
    let url = match cli.store_url() {
        Ok(Some(url)) => url,
        Ok(None) => {
            return fail!(
                "usage",
                EXIT_USAGE,
                "`store migrate` upgrades a PostgreSQL store: give it with --store postgres://USER@HOST:PORT/DATABASE (a sled store in --db needs no migration)"
            )
        }
        Err(message) => return fail!("usage", EXIT_USAGE, "{message}"),
    };
    let Ok(runtime) = runtime() else { return EXIT_USAGE };
    let migrated =
        runtime.block_on(async move { tokio::task::spawn_blocking(move || phasegate_store::PostgresBackend::migrate(&url)).await });
    match migrated {
        Ok(Ok((before, after))) => {
            match cli.output {
                OutputFormat::Json => print_json(&json!({"before": before, "after": after})),
                OutputFormat::Text if before == after => outln!("the schema is at version {after}, this phasegate's: nothing to do"),
                OutputFormat::Text if before == 0 => outln!("created the phasegate schema (version {after})"),
                OutputFormat::Text => outln!("migrated the schema from version {before} to {after}"),
            }
            EXIT_OK
        }
        Ok(Err(error)) => fail!("store", EXIT_USAGE, "{error}"),
        Err(error) => fail!("store", EXIT_USAGE, "the migration stopped: {error}"),
    }
}

/// `phasegate store copy --from DIR|URL --to DIR|URL`.
pub(super) fn copy(cli: &Cli, args: &CopyArgs) -> u8 {
    let Ok(runtime) = runtime() else { return EXIT_USAGE };
    if !phasegate_store::postgres::is_url(&args.from)
        && runtime.block_on(super::backend::live_server(std::path::Path::new(&args.from))).is_some()
    {
        return fail!(
            "in_use",
            EXIT_INVALID,
            "a server is running on {}; stop it first (or copy it live with `phasegate backup`, then copy the backup)",
            args.from
        );
    }
    let (from, to) = (args.from.clone(), args.to.clone());
    let copied = runtime.block_on(async move { tokio::task::spawn_blocking(move || phasegate_store::postgres::copy(&from, &to)).await });
    match copied {
        Ok(Ok(report)) => {
            match cli.output {
                OutputFormat::Json => print_json(&report_json(&report)),
                OutputFormat::Text => outln!(
                    "copied {} instance(s) ({} records, {} bytes) into {}",
                    report.instances,
                    report.records,
                    report.bytes,
                    report.path
                ),
            }
            EXIT_OK
        }
        Ok(Err(error)) => fail!("store", EXIT_USAGE, "{error}"),
        Err(error) => fail!("store", EXIT_USAGE, "the copy stopped: {error}"),
    }
}
