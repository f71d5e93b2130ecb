//! Who makes the puts of generated histories: the accounts, hosts and roles they claim
//! (a leaf: `gen.rs` generates them, `acf.rs` models what the rules grant them).

use proptest::prelude::*;

/// The accounts puts claim.
pub const ACCOUNTS: [&str; 2] = ["alice", "bob"];
/// The addresses they come from; `LOCAL` is the one HAG's host.
pub const HOSTS: [&str; 2] = ["127.0.0.1", "10.0.0.7"];
/// The OS group that makes a client `role/operators`.
pub const ROLE: &str = "operators";

/// Who makes a put.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Who {
    pub account: usize,
    /// Authenticated (`ca`), or `anonymous` claiming the account.
    pub ca: bool,
    pub host: usize,
    /// The account is in [`ROLE`] (and in an OS group no rule names besides).
    pub operator: bool,
}

pub fn any_who() -> impl Strategy<Value = Who> {
    (
        0..ACCOUNTS.len(),
        prop::bool::weighted(0.8),
        0..HOSTS.len(),
        any::<bool>(),
    )
        .prop_map(|(account, ca, host, operator)| Who {
            account,
            ca,
            host,
            operator,
        })
}

impl Who {
    pub fn method(&self) -> &'static str {
        if self.ca {
            "ca"
        } else {
            "anonymous"
        }
    }

    /// The account the client claims.
    pub fn account(&self) -> &'static str {
        ACCOUNTS.get(self.account).copied().unwrap_or("")
    }

    /// The account as the rules see it (as QSRV2 forms it): a `ca` account as claimed
    /// (none here holds a `/`), `anonymous/<account>` otherwise, which no UAG names.
    pub fn rules_account(&self) -> String {
        if self.ca {
            self.account().to_string()
        } else {
            format!("anonymous/{}", self.account())
        }
    }

    pub fn host(&self) -> &'static str {
        HOSTS.get(self.host).copied().unwrap_or("")
    }

    /// Its OS groups: only a `ca` account has roles (pvxs looks them up for it).
    pub fn roles(&self) -> Vec<String> {
        let mut roles = Vec::new();
        if self.ca {
            roles.push("staff".to_string());
            if self.operator {
                roles.push(ROLE.to_string());
            }
        }
        roles
    }
}
