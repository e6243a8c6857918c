//! Who people are: `users add|list|revoke`, `login`, `whoami` and `store
//! policy`. Through a server these need the admin credential (but `whoami`
//! and `login`); against the store with no server, whoever holds the data
//! directory manages its users (docs/trust.md).

use std::io::Read as _;

use super::args::*;
use super::backend::{self, Backend};
use super::common::{command, command_with, print_json, runtime};
use crate::runtime::identity::Policy;

/// `phasegate users add NAME [--role R]...`: the token on standard output, once.
pub(super) fn add(cli: &Cli, args: &UsersAddArgs) -> u8 {
    // A store's first users may come before its first instance.
    command_with(cli, true, async |engine| {
        let issued = engine.add_user(&args.name, &args.roles, &cli.principal()).await?;
        match cli.output {
            OutputFormat::Json => print_json(&issued),
            OutputFormat::Text => {
                outln!("{}", issued.token);
                eprintln!(
                    "issued {} a token (id {}{}); it is shown this once: give it to them for {} or `phasegate login`",
                    issued.user.name,
                    issued.user.token_id,
                    if issued.user.roles.is_empty() { String::new() } else { format!(", roles {}", issued.user.roles.join(", ")) },
                    backend::TOKEN_ENV
                );
            }
        }
        Ok(EXIT_OK)
    })
}

/// `phasegate users list`.
pub(super) fn list(cli: &Cli) -> u8 {
    command(cli, async |engine| {
        let users = engine.users().await?;
        match cli.output {
            OutputFormat::Json => print_json(&users),
            OutputFormat::Text => {
                if users.is_empty() {
                    eprintln!("no users yet: `phasegate users add NAME [--role ROLE]` issues one a token");
                }
                for user in &users {
                    let state = match user.revoked_at {
                        Some(at) => format!("revoked {at} by {}", user.revoked_by),
                        None => "active".to_owned(),
                    };
                    let roles = if user.roles.is_empty() { "-".to_owned() } else { user.roles.join(",") };
                    outln!(
                        "{:<20} {:<28} token {}  issued {} by {}  {state}",
                        user.name,
                        roles,
                        user.token_id,
                        user.created_at,
                        user.created_by
                    );
                }
            }
        }
        Ok(EXIT_OK)
    })
}

/// `phasegate users revoke NAME`.
pub(super) fn revoke(cli: &Cli, args: &UsersRevokeArgs) -> u8 {
    command(cli, async |engine| {
        let user = engine.revoke_user(&args.name, &cli.principal()).await?;
        match cli.output {
            OutputFormat::Json => print_json(&user),
            OutputFormat::Text => outln!("revoked {}'s token {}; the server refuses it from now on", user.name, user.token_id),
        }
        Ok(EXIT_OK)
    })
}

/// `phasegate store policy [--require-authenticated-decisions BOOL]`.
pub(super) fn policy(cli: &Cli, args: &PolicyArgs) -> u8 {
    command(cli, async |engine| {
        let change = args.require_authenticated_decisions.map(|require| Policy { require_authenticated_decisions: require });
        let policy = engine.policy(change).await?;
        match cli.output {
            OutputFormat::Json => print_json(&policy),
            OutputFormat::Text => outln!(
                "require_authenticated_decisions = {}{}",
                policy.require_authenticated_decisions,
                if policy.require_authenticated_decisions {
                    " (decisions go through the server, each with its decider's own credential)"
                } else {
                    " (decisions against the store with no server are recorded as asserted)"
                }
            ),
        }
        Ok(EXIT_OK)
    })
}

/// `phasegate whoami`.
pub(super) fn whoami(cli: &Cli) -> u8 {
    command(cli, async |engine| {
        match engine {
            Backend::Remote(remote) => {
                let me = remote.whoami().await?;
                match cli.output {
                    OutputFormat::Json => print_json(&me),
                    OutputFormat::Text => outln!(
                        "{} ({}, from {}); roles: {}",
                        me.principal,
                        me.authentication,
                        remote.credential(),
                        if me.roles.is_empty() { "none".to_owned() } else { me.roles.join(", ") }
                    ),
                }
            }
            Backend::Local(local) => {
                let named = cli.principal();
                let roles = local.roles();
                let held: Vec<&str> = roles.0.iter().filter(|(_, m)| m.contains(&named)).map(|(r, _)| r.as_str()).collect();
                match cli.output {
                    OutputFormat::Json => print_json(&serde_json::json!({
                        "principal": named, "admin": false, "authentication": "asserted (local, unauthenticated)", "roles": held
                    })),
                    OutputFormat::Text => outln!(
                        "{named} (asserted (local, unauthenticated): no server runs for {}, so commands act as --as, PHASEGATE_USER or USER); roles: {}",
                        cli.db.display(),
                        if held.is_empty() { "none".to_owned() } else { held.join(", ") }
                    ),
                }
            }
        }
        Ok(EXIT_OK)
    })
}

/// `phasegate login`: the token from standard input into the credentials
/// file (mode 0600), checked against the running server when there is one.
pub(super) fn login(cli: &Cli, args: &LoginArgs) -> u8 {
    let Some(path) = args.file.clone().or_else(backend::credentials_path) else {
        return fail!(
            "usage",
            EXIT_USAGE,
            "login: no HOME to keep the credentials in; pass --file FILE or set {}",
            backend::CREDENTIALS_ENV
        );
    };
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        eprintln!("paste your token (from `phasegate users add`), then Enter:");
    }
    let mut text = String::new();
    if let Err(error) = std::io::stdin().take(4096).read_to_string(&mut text) {
        return fail!("usage", EXIT_USAGE, "login: cannot read the token from standard input: {error}");
    }
    let token = text.lines().next().unwrap_or_default().trim().to_owned();
    if !token.starts_with(crate::runtime::identity::TOKEN_PREFIX) || token.len() < 20 {
        return fail!(
            "usage",
            EXIT_USAGE,
            "login: standard input does not hold a phasegate token (they start with {}); pipe in what `phasegate users add` printed",
            crate::runtime::identity::TOKEN_PREFIX
        );
    }
    // With a server running, it says whether the token is good before it is kept.
    let Ok(runtime) = runtime() else { return EXIT_USAGE };
    let checked = runtime.block_on(async {
        match backend::live_server(&cli.db).await {
            Some(remote) => Some(remote.with_token(token.clone()).whoami().await),
            None => None,
        }
    });
    let who = match checked {
        Some(Ok(me)) => Some(me.principal),
        Some(Err(error)) => return super::common::report(&error),
        None => None,
    };
    if let Err(error) = write_private(&path, &token) {
        return fail!("usage", EXIT_USAGE, "login: cannot write {}: {error}", path.display());
    }
    match who {
        Some(who) => eprintln!("logged in as {who}; the token is in {} (mode 0600)", path.display()),
        None => eprintln!("kept the token in {} (mode 0600); no server runs to check it against", path.display()),
    }
    EXIT_OK
}

/// Writes the credentials file readable by its owner only, replacing it whole.
fn write_private(path: &std::path::Path, token: &str) -> std::io::Result<()> {
    let text = toml::to_string(&backend::Credentials { token: token.to_owned() }).map_err(std::io::Error::other)?;
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(parent)?;
    let mut file = tempfile::NamedTempFile::new_in(parent)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        file.as_file().set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    std::io::Write::write_all(&mut file, text.as_bytes())?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}
