//! Who people are: the store's users (a name, roles, and the hash of one
//! API token each) and its policy on unauthenticated decisions. The server
//! authenticates requests against these; the engine merges the users' roles
//! with the configuration's, so a role granted with `phasegate users add
//! NAME --role R` counts at gates like one in phasegate.toml.
//!
//! Only a token's SHA-256 is stored: a token is 256 random bits, so a hash
//! that leaks (a copied data directory) does not give the token back, and
//! no slow password hash is needed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use super::Error;
use crate::machine::{Roles, Timestamp};

/// The prefix of every user token (so a leaked one is recognisable in logs and scanners).
pub const TOKEN_PREFIX: &str = "pgt_";

/// The principal of the server's admin credential (the data directory's token).
pub const ADMIN: &str = "admin";

/// Names no user may take: the admin credential's and the engine's own.
const RESERVED: [&str; 2] = [ADMIN, "phasegate"];

const USER_KEY: &str = "user:";
const POLICY_KEY: &str = "policy";

/// A user, as listings show it (never the token or its hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// The principal the user's requests act as.
    pub name: String,
    /// Roles granted to the user, on top of phasegate.toml's.
    #[serde(default)]
    pub roles: Vec<String>,
    /// The id of the user's token: the first 12 hex digits of its SHA-256.
    pub token_id: String,
    /// When the token was issued.
    pub created_at: Timestamp,
    /// Who issued it.
    pub created_by: String,
    /// When it was revoked, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<Timestamp>,
    /// Who revoked it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub revoked_by: String,
    /// The user's earlier tokens, oldest first: a token id in an old
    /// decision can always be traced to who issued it, when, and when it
    /// was revoked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous: Vec<PastToken>,
}

/// A token a user held before their current one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PastToken {
    /// Its id.
    pub token_id: String,
    /// When it was issued.
    pub created_at: Timestamp,
    /// Who issued it.
    pub created_by: String,
    /// When it was revoked.
    pub revoked_at: Option<Timestamp>,
    /// Who revoked it.
    pub revoked_by: String,
}

impl User {
    /// True while the user's token is accepted.
    pub fn is_active(&self) -> bool {
        self.revoked_at.is_none()
    }
}

/// A user as stored: the listing plus the token's hash.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stored {
    #[serde(flatten)]
    user: User,
    token_sha256: String,
}

/// A newly issued token: shown once, never stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Issued {
    /// The user it was issued to.
    pub user: User,
    /// The token itself.
    pub token: String,
}

/// The store's policy on who may decide.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Refuse decisions whose principal no credential proved (the CLI
    /// against the store with no server, an embedding program's asserted
    /// name), so that every decision goes through the server.
    #[serde(default)]
    pub require_authenticated_decisions: bool,
}

/// Why a presented token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenRefusal {
    /// No user holds it.
    Unknown,
    /// It was the user's, and was revoked.
    Revoked {
        /// Whose it was.
        user: String,
    },
}

/// The users and policy, loaded from the store and kept in step with it.
#[derive(Debug, Default)]
pub(crate) struct Directory {
    config_roles: Roles,
    users: BTreeMap<String, Stored>,
    by_hash: HashMap<String, String>,
    policy: Policy,
    roles: Arc<Roles>,
}

/// A token's SHA-256, in hex.
fn digest(token: &str) -> String {
    sha2::Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks a user name: what may follow `--as` and appear in approver lists.
pub fn check_user_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '@'));
    if !valid {
        return Err(format!(
            "`{name}` is not a user name: use 1 to 64 letters, digits, `.`, `-`, `_` or `@`, starting with a letter or digit"
        ));
    }
    if RESERVED.contains(&name) {
        return Err(format!("`{name}` is reserved (the admin credential's or the engine's own name); choose another"));
    }
    Ok(())
}

fn check_role_name(role: &str) -> Result<(), String> {
    let valid = !role.is_empty()
        && role.len() <= 64
        && role.starts_with(|c: char| c.is_ascii_alphanumeric())
        && role.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if valid {
        Ok(())
    } else {
        Err(format!("--role {role}: not a role name; use letters, digits, `.`, `-` or `_` (as in phasegate.toml's [roles])"))
    }
}

impl Directory {
    /// Loads the users and the policy from `store`.
    pub(crate) fn load(store: &dyn phasegate_store::Store, config_roles: Roles) -> Result<Self, Error> {
        let mut directory = Directory { config_roles, ..Directory::default() };
        for (key, bytes) in store.settings(USER_KEY)? {
            let stored: Stored =
                serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt(format!("store setting {key}: not a user record: {e}")))?;
            directory.by_hash.insert(stored.token_sha256.clone(), stored.user.name.clone());
            directory.users.insert(stored.user.name.clone(), stored);
        }
        if let Some((_, bytes)) = store.settings(POLICY_KEY)?.into_iter().find(|(key, _)| key == POLICY_KEY) {
            directory.policy =
                serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt(format!("store setting {POLICY_KEY}: not a policy: {e}")))?;
        }
        directory.rebuild_roles();
        Ok(directory)
    }

    /// The roles phasegate.toml gives, which a reload keeps.
    pub(crate) fn config_roles(&self) -> Roles {
        self.config_roles.clone()
    }

    fn rebuild_roles(&mut self) {
        let mut roles: BTreeMap<String, BTreeSet<String>> = self.config_roles.0.clone();
        for stored in self.users.values().filter(|s| s.user.is_active()) {
            for role in &stored.user.roles {
                roles.entry(role.clone()).or_default().insert(stored.user.name.clone());
            }
        }
        self.roles = Arc::new(Roles(roles));
    }

    /// The role membership: phasegate.toml's, plus the active users' roles.
    pub(crate) fn roles(&self) -> Arc<Roles> {
        Arc::clone(&self.roles)
    }

    pub(crate) fn policy(&self) -> Policy {
        self.policy
    }

    /// Every user, by name.
    pub(crate) fn users(&self) -> Vec<User> {
        self.users.values().map(|s| s.user.clone()).collect()
    }

    /// The user holding `token`, if it is current.
    pub(crate) fn authenticate(&self, token: &str) -> Result<User, TokenRefusal> {
        let name = self.by_hash.get(&digest(token)).ok_or(TokenRefusal::Unknown)?;
        let stored = self.users.get(name).ok_or(TokenRefusal::Unknown)?;
        if stored.user.is_active() {
            Ok(stored.user.clone())
        } else {
            Err(TokenRefusal::Revoked { user: name.clone() })
        }
    }

    /// Issues `name` a new token (refused while they hold a current one) and stores its hash.
    pub(crate) fn add(
        &mut self,
        store: &dyn phasegate_store::Store,
        name: &str,
        roles: &[String],
        by: &str,
        now: Timestamp,
    ) -> Result<Issued, Error> {
        check_user_name(name).map_err(Error::Invalid)?;
        for role in roles {
            check_role_name(role).map_err(Error::Invalid)?;
        }
        if let Some(existing) = self.users.get(name) {
            if existing.user.is_active() {
                return Err(Error::Conflict(format!(
                    "user {name} already holds a token ({}); revoke it first (`phasegate users revoke {name}`) to issue a new one",
                    existing.user.token_id
                )));
            }
        }
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|error| Error::Invalid(format!("no randomness for a token: {error}")))?;
        let token = format!("{TOKEN_PREFIX}{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>());
        let hash = digest(&token);
        let roles: Vec<String> = roles.iter().cloned().collect::<BTreeSet<_>>().into_iter().collect();
        let previous = match self.users.get(name) {
            Some(old) => {
                let mut previous = old.user.previous.clone();
                previous.push(PastToken {
                    token_id: old.user.token_id.clone(),
                    created_at: old.user.created_at,
                    created_by: old.user.created_by.clone(),
                    revoked_at: old.user.revoked_at,
                    revoked_by: old.user.revoked_by.clone(),
                });
                previous
            }
            None => Vec::new(),
        };
        let user = User {
            name: name.to_owned(),
            roles,
            token_id: hash[..12].to_owned(),
            created_at: now,
            created_by: by.to_owned(),
            revoked_at: None,
            revoked_by: String::new(),
            previous,
        };
        let stored = Stored { user: user.clone(), token_sha256: hash.clone() };
        self.write(store, &stored)?;
        if let Some(old) = self.users.insert(name.to_owned(), stored) {
            self.by_hash.remove(&old.token_sha256);
        }
        self.by_hash.insert(hash, name.to_owned());
        self.rebuild_roles();
        Ok(Issued { user, token })
    }

    /// Revokes `name`'s token: it is refused from now on, and their roles from the store lapse.
    pub(crate) fn revoke(&mut self, store: &dyn phasegate_store::Store, name: &str, by: &str, now: Timestamp) -> Result<User, Error> {
        let Some(existing) = self.users.get(name) else {
            let known: Vec<&str> = self.users.keys().map(String::as_str).collect();
            return Err(Error::Invalid(format!(
                "no user {name}{}",
                crate::suggest::closest(name, known.iter().copied()).map(|s| format!("; did you mean {s}?")).unwrap_or_default()
            )));
        };
        if !existing.user.is_active() {
            return Err(Error::Conflict(format!("user {name}'s token was already revoked by {}", existing.user.revoked_by)));
        }
        let mut stored = existing.clone();
        stored.user.revoked_at = Some(now);
        stored.user.revoked_by = by.to_owned();
        self.write(store, &stored)?;
        let user = stored.user.clone();
        self.users.insert(name.to_owned(), stored);
        self.rebuild_roles();
        Ok(user)
    }

    pub(crate) fn set_policy(&mut self, store: &dyn phasegate_store::Store, policy: Policy) -> Result<(), Error> {
        let bytes = serde_json::to_vec(&policy).map_err(|e| Error::Invalid(e.to_string()))?;
        store.put_setting(POLICY_KEY, Some(&bytes))?;
        self.policy = policy;
        Ok(())
    }

    fn write(&self, store: &dyn phasegate_store::Store, stored: &Stored) -> Result<(), Error> {
        let bytes = serde_json::to_vec(stored).map_err(|e| Error::Invalid(e.to_string()))?;
        store.put_setting(&format!("{USER_KEY}{}", stored.user.name), Some(&bytes))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use phasegate_store::Store as _;

    fn store() -> phasegate_store::MemoryStore {
        phasegate_store::MemoryStore::in_memory()
    }

    #[test]
    fn a_token_authenticates_its_user_until_revoked_and_only_its_hash_is_stored() {
        let store = store();
        let mut directory = Directory::load(&store, Roles::default()).expect("load");
        let issued = directory.add(&store, "alice", &["qa".to_owned()], ADMIN, Timestamp(5)).expect("add");
        assert!(issued.token.starts_with(TOKEN_PREFIX) && issued.token.len() == TOKEN_PREFIX.len() + 64);
        assert_eq!(directory.authenticate(&issued.token).expect("current").name, "alice");
        assert_eq!(directory.authenticate("pgt_guess"), Err(TokenRefusal::Unknown));
        let stored: Vec<u8> = store.settings("user:").expect("settings").into_iter().flat_map(|(_, v)| v).collect();
        assert!(!String::from_utf8_lossy(&stored).contains(&issued.token), "the token itself is never stored");
        assert!(directory.roles().0["qa"].contains("alice"));

        // Loaded again, the same token works; revoked, it is refused by name and the role lapses.
        let mut directory = Directory::load(&store, Roles::default()).expect("reload");
        assert_eq!(directory.authenticate(&issued.token).expect("current").token_id, issued.user.token_id);
        directory.revoke(&store, "alice", ADMIN, Timestamp(9)).expect("revoke");
        assert_eq!(directory.authenticate(&issued.token), Err(TokenRefusal::Revoked { user: "alice".to_owned() }));
        assert!(!directory.roles().0.get("qa").is_some_and(|m| m.contains("alice")));
        let directory = Directory::load(&store, Roles::default()).expect("reload");
        assert!(directory.authenticate(&issued.token).is_err(), "the revocation is durable");
    }

    #[test]
    fn bad_names_a_second_token_and_unknown_users_are_refused_and_change_nothing() {
        let store = store();
        let mut directory = Directory::load(&store, Roles::default()).expect("load");
        for bad in ["", "admin", "phasegate", "role:x", "has space", "-dash"] {
            assert!(directory.add(&store, bad, &[], ADMIN, Timestamp(1)).is_err(), "{bad:?} is refused");
        }
        assert!(directory.add(&store, "bob", &["bad role".to_owned()], ADMIN, Timestamp(1)).is_err());
        assert!(store.settings("").expect("settings").is_empty(), "nothing was stored");
        let first = directory.add(&store, "bob", &[], ADMIN, Timestamp(1)).expect("add");
        assert!(matches!(directory.add(&store, "bob", &[], ADMIN, Timestamp(2)), Err(Error::Conflict(_))));
        assert!(directory.authenticate(&first.token).is_ok(), "the first token still works");
        assert!(directory.revoke(&store, "bobby", ADMIN, Timestamp(3)).unwrap_err().to_string().contains("did you mean bob"));
        directory.revoke(&store, "bob", ADMIN, Timestamp(3)).expect("revoke");
        let second = directory.add(&store, "bob", &[], ADMIN, Timestamp(4)).expect("a revoked user gets a new token");
        assert!(directory.authenticate(&first.token).is_err() && directory.authenticate(&second.token).is_ok());
        let bob = &directory.users()[0];
        assert_eq!(bob.previous.len(), 1, "the first token's record is kept");
        assert_eq!((bob.previous[0].token_id.as_str(), bob.previous[0].revoked_at), (first.user.token_id.as_str(), Some(Timestamp(3))));
    }
}
