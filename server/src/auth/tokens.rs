//! Simple tokens (etcd's `--auth-token=simple`): opaque strings naming a user.
//!
//! A token is created by an `Authenticate` entry in the raft log, so every member
//! learns it at the same index and a client may present it to any of them. The table
//! itself is local: a token lives `--auth-token-ttl` after its last use on this
//! member, and is dropped when its user is deleted or changes password and when
//! authentication is disabled — as etcd's simple token provider does. Expiry reads the
//! clock, but only this table depends on it; the replicated state never does.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

#[derive(Debug)]
struct Entry {
    user: String,
    expires: Instant,
}

/// token -> user, each with its own expiry.
#[derive(Debug)]
pub struct Tokens {
    ttl: Duration,
    table: Mutex<HashMap<String, Entry>>,
}

impl Tokens {
    pub fn new(ttl: Duration) -> Tokens {
        Tokens {
            ttl,
            table: Mutex::default(),
        }
    }

    /// Records `token` for `user`, and forgets the tokens that have expired.
    pub fn assign(&self, token: String, user: String) {
        let now = Instant::now();
        let mut table = self.table.lock();
        table.retain(|_, e| e.expires > now);
        table.insert(
            token,
            Entry {
                user,
                expires: now + self.ttl,
            },
        );
    }

    /// The user `token` names, if it is live; a use extends its life.
    pub fn user(&self, token: &str) -> Option<String> {
        let now = Instant::now();
        let mut table = self.table.lock();
        let entry = table.get_mut(token)?;
        if entry.expires <= now {
            table.remove(token);
            return None;
        }
        entry.expires = now + self.ttl;
        Some(entry.user.clone())
    }

    /// Forgets every token of `user`.
    pub fn invalidate_user(&self, user: &str) {
        self.table.lock().retain(|_, e| e.user != user);
    }

    /// Forgets every token.
    pub fn clear(&self) {
        self.table.lock().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_name_users_until_invalidated() {
        let t = Tokens::new(Duration::from_secs(300));
        t.assign("abc.5".into(), "alice".into());
        t.assign("def.6".into(), "bob".into());
        assert_eq!(t.user("abc.5").as_deref(), Some("alice"));
        assert_eq!(t.user("nope"), None);
        t.invalidate_user("alice");
        assert_eq!(t.user("abc.5"), None);
        assert_eq!(t.user("def.6").as_deref(), Some("bob"));
        t.clear();
        assert_eq!(t.user("def.6"), None);
    }

    #[test]
    fn tokens_expire_after_the_ttl() {
        let t = Tokens::new(Duration::ZERO);
        t.assign("abc.5".into(), "alice".into());
        assert_eq!(t.user("abc.5"), None);
    }
}
