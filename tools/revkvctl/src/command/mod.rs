//! One module per etcdctl command. Each has `SPECS` (its own flags), a pure
//! `build` from parsed arguments to the request (table-tested), and `execute`.

pub mod alarm;
pub mod auth;
pub mod check;
pub mod compaction;
pub mod defrag;
pub mod del;
pub mod endpoint;
pub mod get;
pub mod lease;
pub mod lock;
pub mod member;
pub mod mirror;
pub mod move_leader;
pub mod put;
pub mod snapshot;
pub mod txn;
pub mod version;
pub mod watch;

use std::io::Write;

use crate::conn::Conn;
use crate::exit::{CtlError, CtlResult};
use crate::flags::{self, Kind, Parsed, Spec};
use crate::global::{self, Global};
use crate::printer::Printer;

/// What one invocation parsed, and access to the cluster.
pub struct Ctx {
    /// Local and global flags, and positional arguments.
    pub parsed: Parsed,
    /// The process environment (for `ETCDCTL_*`).
    pub env: Vec<(String, String)>,
    /// The command's own flags.
    pub specs: &'static [Spec],
}

impl Ctx {
    /// Positional arguments.
    pub fn args(&self) -> &[String] {
        &self.parsed.args
    }

    /// A string flag of the command.
    pub fn str(&self, name: &str) -> String {
        self.parsed.str(self.specs, name)
    }

    /// A bool flag of the command.
    pub fn bool(&self, name: &str) -> bool {
        self.parsed.bool(self.specs, name)
    }

    /// An integer flag of the command.
    pub fn int(&self, name: &str) -> i64 {
        self.parsed.int(self.specs, name)
    }

    /// The global settings with `ETCDCTL_*` applied, and the printer
    /// (etcdctl's `clientConfigFromCmd`).
    pub fn global(&mut self) -> CtlResult<(Global, Printer)> {
        global::apply_env(&mut self.parsed, &self.env)?;
        let g = Global::from_parsed(&self.parsed);
        let p = g.printer()?;
        Ok((g, p))
    }

    /// etcdctl's `mustClientFromCmd`.
    pub async fn client(&mut self) -> CtlResult<(Conn, Printer, Global)> {
        let (g, p) = self.global()?;
        let conn = Conn::connect(&g).await?;
        Ok((conn, p, g))
    }
}

/// Writes command output to stdout right away (watch and keep-alive stream).
pub fn out(bytes: &[u8]) {
    let mut so = std::io::stdout().lock();
    let _ = so.write_all(bytes);
    let _ = so.flush();
}

/// Writes to stderr right away.
pub fn err(bytes: &[u8]) {
    let mut se = std::io::stderr().lock();
    let _ = se.write_all(bytes);
    let _ = se.flush();
}

/// The `-h/--help` flag every command has.
pub const HELP: Spec = Spec::new("help", Kind::Bool, "false", "help for");

/// One runnable command.
pub struct Command {
    /// The words naming it (`["lease", "grant"]`).
    pub path: &'static [&'static str],
    /// Its own flags.
    pub specs: &'static [Spec],
}

/// Every command revkvctl knows.
pub const COMMANDS: &[Command] = &[
    Command {
        path: &["get"],
        specs: get::SPECS,
    },
    Command {
        path: &["put"],
        specs: put::SPECS,
    },
    Command {
        path: &["del"],
        specs: del::SPECS,
    },
    Command {
        path: &["txn"],
        specs: txn::SPECS,
    },
    Command {
        path: &["watch"],
        specs: watch::SPECS,
    },
    Command {
        path: &["lock"],
        specs: lock::LOCK_SPECS,
    },
    Command {
        path: &["elect"],
        specs: lock::ELECT_SPECS,
    },
    Command {
        path: &["make-mirror"],
        specs: mirror::SPECS,
    },
    Command {
        path: &["compaction"],
        specs: compaction::SPECS,
    },
    Command {
        path: &["version"],
        specs: &[],
    },
    Command {
        path: &["move-leader"],
        specs: &[],
    },
    Command {
        path: &["defrag"],
        specs: defrag::SPECS,
    },
    Command {
        path: &["snapshot", "restore"],
        specs: snapshot::RESTORE_SPECS,
    },
    Command {
        path: &["snapshot", "save"],
        specs: &[],
    },
    Command {
        path: &["snapshot", "status"],
        specs: &[],
    },
    Command {
        path: &["lease", "grant"],
        specs: &[],
    },
    Command {
        path: &["lease", "revoke"],
        specs: &[],
    },
    Command {
        path: &["lease", "timetolive"],
        specs: lease::TTL_SPECS,
    },
    Command {
        path: &["lease", "list"],
        specs: &[],
    },
    Command {
        path: &["lease", "keep-alive"],
        specs: lease::KEEPALIVE_SPECS,
    },
    Command {
        path: &["member", "add"],
        specs: member::ADD_SPECS,
    },
    Command {
        path: &["member", "remove"],
        specs: &[],
    },
    Command {
        path: &["member", "update"],
        specs: member::UPDATE_SPECS,
    },
    Command {
        path: &["member", "list"],
        specs: &[],
    },
    Command {
        path: &["member", "promote"],
        specs: &[],
    },
    Command {
        path: &["endpoint", "health"],
        specs: endpoint::SPECS,
    },
    Command {
        path: &["endpoint", "status"],
        specs: endpoint::SPECS,
    },
    Command {
        path: &["endpoint", "hashkv"],
        specs: endpoint::HASHKV_SPECS,
    },
    Command {
        path: &["check", "datascale"],
        specs: check::DATASCALE_SPECS,
    },
    Command {
        path: &["check", "perf"],
        specs: check::PERF_SPECS,
    },
    Command {
        path: &["alarm", "list"],
        specs: &[],
    },
    Command {
        path: &["alarm", "disarm"],
        specs: &[],
    },
    Command {
        path: &["auth", "enable"],
        specs: &[],
    },
    Command {
        path: &["auth", "disable"],
        specs: &[],
    },
    Command {
        path: &["user", "add"],
        specs: auth::USER_ADD_SPECS,
    },
    Command {
        path: &["user", "delete"],
        specs: &[],
    },
    Command {
        path: &["user", "get"],
        specs: auth::USER_GET_SPECS,
    },
    Command {
        path: &["user", "list"],
        specs: &[],
    },
    Command {
        path: &["user", "passwd"],
        specs: auth::USER_PASSWD_SPECS,
    },
    Command {
        path: &["user", "grant-role"],
        specs: &[],
    },
    Command {
        path: &["user", "revoke-role"],
        specs: &[],
    },
    Command {
        path: &["role", "add"],
        specs: &[],
    },
    Command {
        path: &["role", "delete"],
        specs: &[],
    },
    Command {
        path: &["role", "get"],
        specs: &[],
    },
    Command {
        path: &["role", "list"],
        specs: &[],
    },
    Command {
        path: &["role", "grant-permission"],
        specs: auth::GRANT_SPECS,
    },
    Command {
        path: &["role", "revoke-permission"],
        specs: auth::REVOKE_SPECS,
    },
];

/// How the command line resolved.
pub enum Resolved {
    /// A runnable command and the arguments left for its flag parser.
    Run(&'static Command, Vec<String>),
    /// A word that names no command at this level.
    Unknown(String, Vec<&'static str>),
    /// Only a group (or nothing) was named.
    Group(Vec<&'static str>),
}

/// Finds the command: the first non-flag words, matched by unique prefix at each
/// level as cobra's `EnablePrefixMatching` does.
pub fn resolve(args: &[String]) -> Resolved {
    let mut path: Vec<&'static str> = Vec::new();
    let mut rest: Vec<String> = Vec::new();
    let mut i = 0;
    let mut done = false;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        if done {
            rest.push(a.clone());
            continue;
        }
        if a == "--" {
            rest.push(a.clone());
            done = true;
            continue;
        }
        if a.starts_with('-') && a.len() > 1 {
            rest.push(a.clone());
            if flags::takes_value(global::SPECS, a) && i < args.len() {
                rest.push(args[i].clone());
                i += 1;
            }
            continue;
        }
        // A word: the next level of the command path, if the path is still open.
        let level: Vec<&'static str> = children(&path);
        if level.is_empty() {
            rest.push(a.clone());
            done = true;
            continue;
        }
        let exact = level.iter().find(|c| **c == a.as_str());
        let matches: Vec<&&'static str> =
            level.iter().filter(|c| c.starts_with(a.as_str())).collect();
        match (exact, matches.as_slice()) {
            (Some(c), _) => path.push(c),
            (None, [c]) => path.push(c),
            _ => return Resolved::Unknown(a.clone(), path),
        }
    }
    match COMMANDS.iter().find(|c| c.path == path.as_slice()) {
        Some(c) => Resolved::Run(c, rest),
        None => Resolved::Group(path),
    }
}

/// The command words one level below `path` (empty once `path` is runnable).
fn children(path: &[&'static str]) -> Vec<&'static str> {
    if COMMANDS.iter().any(|c| c.path == path) {
        return Vec::new();
    }
    let mut out: Vec<&'static str> = COMMANDS
        .iter()
        .filter(|c| c.path.len() > path.len() && c.path[..path.len()] == *path)
        .map(|c| c.path[path.len()])
        .collect();
    out.dedup();
    out
}

/// Runs a resolved command.
pub async fn run(cmd: &'static Command, mut ctx: Ctx) -> CtlResult {
    match cmd.path {
        ["get"] => get::execute(&mut ctx).await,
        ["put"] => put::execute(&mut ctx).await,
        ["del"] => del::execute(&mut ctx).await,
        ["txn"] => txn::execute(&mut ctx).await,
        ["watch"] => watch::execute(&mut ctx).await,
        ["lock"] => lock::lock(&mut ctx).await,
        ["elect"] => lock::elect(&mut ctx).await,
        ["make-mirror"] => mirror::execute(&mut ctx).await,
        ["compaction"] => compaction::execute(&mut ctx).await,
        ["version"] => version::execute(&mut ctx),
        ["move-leader"] => move_leader::execute(&mut ctx).await,
        ["defrag"] => defrag::execute(&mut ctx).await,
        ["snapshot", "save"] => snapshot::execute(&mut ctx).await,
        ["snapshot", "status"] => snapshot::status(&mut ctx),
        ["snapshot", "restore"] => snapshot::restore(&mut ctx),
        ["lease", sub] => lease::execute(sub, &mut ctx).await,
        ["member", sub] => member::execute(sub, &mut ctx).await,
        ["endpoint", sub] => endpoint::execute(sub, &mut ctx).await,
        ["alarm", sub] => alarm::execute(sub, &mut ctx).await,
        ["check", "perf"] => check::perf(&mut ctx).await,
        ["check", "datascale"] => check::datascale(&mut ctx).await,
        [group @ ("auth" | "user" | "role"), sub] => auth::execute(group, sub, &mut ctx).await,
        _ => Err(CtlError::error(format!("unknown command {:?}", cmd.path))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| (*x).to_owned()).collect()
    }

    #[test]
    fn commands_resolve_by_unique_prefix_around_global_flags() {
        let cases: &[(&[&str], &[&str], &[&str])] = &[
            (&["get", "foo"], &["get"], &["foo"]),
            (
                &["--endpoints", "x:1", "put", "k", "v"],
                &["put"],
                &["--endpoints", "x:1", "k", "v"],
            ),
            (&["compact", "4"], &["compaction"], &["4"]),
            (
                &["-w", "json", "lease", "grant", "10"],
                &["lease", "grant"],
                &["-w", "json", "10"],
            ),
            (&["mem", "li"], &["member", "list"], &[]),
            (
                &["watch", "k", "--", "echo", "get"],
                &["watch"],
                &["k", "--", "echo", "get"],
            ),
        ];
        for (input, path, rest) in cases {
            match resolve(&argv(input)) {
                Resolved::Run(c, r) => {
                    assert_eq!(c.path, *path, "{input:?}");
                    assert_eq!(r, argv(rest), "{input:?}");
                }
                _ => panic!("{input:?} did not resolve"),
            }
        }
        assert!(matches!(resolve(&argv(&["bogus"])), Resolved::Unknown(w, _) if w == "bogus"));
        assert!(matches!(resolve(&argv(&["lease"])), Resolved::Group(p) if p == ["lease"]));
    }
}
