//! Help text and the usage etcdctl prints with a flag error, in etcdctl's
//! template: NAME / USAGE / DESCRIPTION / OPTIONS / GLOBAL OPTIONS, the flag
//! columns aligned with tabs (Go's tabwriter, tab width 8).

use crate::command::version::{API_VERSION, ETCDCTL_VERSION};
use crate::command::{Command, HELP};
use crate::exit::CtlError;
use crate::flags::{Kind, Spec};
use crate::global;

/// (path, use line after the path, short description, long description).
const DOCS: &[(&str, &str, &str, &str)] = &[
    ("get", "[options] <key> [range_end]", "Gets the key or a range of keys", ""),
    ("put", "[options] <key> <value> (<value> can also be given from stdin)", "Puts the given key into the store", PUT_LONG),
    ("del", "[options] <key> [range_end]", "Removes the specified key or range of keys [key, range_end)", ""),
    ("txn", "[options]", "Txn processes all the requests in one transaction", ""),
    ("watch", "[options] [key or prefix] [range_end] [--] [exec-command arg1 arg2 ...]", "Watches events stream on keys or prefixes", ""),
    ("lock", "<lockname> [exec-command arg1 arg2 ...]", "Acquires a named lock", ""),
    ("elect", "<election-name> [proposal]", "Observes and participates in leader election", ""),
    ("make-mirror", "[options] <destination>", "Makes a mirror at the destination etcd cluster", ""),
    ("compaction", "[options] <revision>", "Compacts the event history in etcd", ""),
    ("version", "", "Prints the version of etcdctl", ""),
    ("move-leader", "<transferee-member-id>", "Transfers leadership to another etcd cluster member.", ""),
    ("defrag", "", "Defragments the storage of the etcd members with given endpoints", ""),
    ("snapshot restore", "<filename> [options]", "Restores an etcd member snapshot to an etcd directory", ""),
    ("snapshot save", "<filename>", "Stores an etcd node backend snapshot to a given file", ""),
    ("snapshot status", "<filename>", "Gets backend snapshot status of a given file", "When --write-out is set to simple, this command prints out comma-separated status lists for each endpoint.\nThe items in the lists are hash, revision, total keys, total size.\n"),
    ("lease grant", "<ttl>", "Creates leases", ""),
    ("lease revoke", "<leaseID>", "Revokes leases", ""),
    ("lease timetolive", "<leaseID> [options]", "Get lease information", ""),
    ("lease list", "", "List all active leases", ""),
    ("lease keep-alive", "[options] <leaseID>", "Keeps leases alive (renew)", ""),
    ("member add", "<memberName> [options]", "Adds a member into the cluster", ""),
    ("member remove", "<memberID>", "Removes a member from the cluster", ""),
    ("member update", "<memberID> [options]", "Updates a member in the cluster", ""),
    ("member list", "", "Lists all members in the cluster", "When --write-out is set to simple, this command prints out comma-separated member lists for each endpoint.\nThe items in the lists are ID, Status, Name, Peer Addrs, Client Addrs, Is Learner.\n"),
    ("member promote", "<memberID>", "Promotes a non-voting member in the cluster", "Promotes a non-voting learner member to a voting one in the cluster.\n"),
    ("endpoint health", "", "Checks the healthiness of endpoints specified in `--endpoints` flag", ""),
    ("endpoint status", "", "Prints out the status of endpoints specified in `--endpoints` flag", "When --write-out is set to simple, this command prints out comma-separated status lists for each endpoint.\nThe items in the lists are endpoint, ID, version, db size, is leader, is learner, raft term, raft index, raft applied index, errors.\n"),
    ("endpoint hashkv", "", "Prints the KV history hash for each endpoint in --endpoints", ""),
    ("check datascale", "[options]", "Check the memory usage of holding data for different workloads on a given server endpoint.", "If no endpoint is provided, localhost will be used. If multiple endpoints are provided, first endpoint will be used.\n"),
    ("check perf", "[options]", "Check the performance of the etcd cluster", ""),
    ("alarm list", "", "Lists all alarms", ""),
    ("alarm disarm", "", "Disarms all alarms", ""),
    ("auth enable", "", "Enables authentication", ""),
    ("auth disable", "", "Disables authentication", ""),
    ("user add", "<user name or user:password> [options]", "Adds a new user", ""),
    ("user delete", "<user name>", "Deletes a user", ""),
    ("user get", "<user name> [options]", "Gets detailed information of a user", ""),
    ("user list", "", "Lists all users", ""),
    ("user passwd", "<user name> [options]", "Changes password of user", ""),
    ("user grant-role", "<user name> <role name>", "Grants a role to a user", ""),
    ("user revoke-role", "<user name> <role name>", "Revokes a role from a user", ""),
    ("role add", "<role name>", "Adds a new role", ""),
    ("role delete", "<role name>", "Deletes a role", ""),
    ("role get", "<role name>", "Gets detailed information of a role", ""),
    ("role list", "", "Lists all roles", ""),
    ("role grant-permission", "[options] <role name> <permission type> <key> [endkey]", "Grants a key to a role", ""),
    ("role revoke-permission", "<role name> <key> [endkey]", "Revokes a key from a role", ""),
];

const PUT_LONG: &str = "Puts the given key into the store.

When <value> begins with '-', <value> is interpreted as a flag.
Insert '--' for workaround:

$ put <key> -- <value>
$ put -- <key> <value>

If <value> isn't given as a command line argument and '--ignore-value' is not specified,
this command tries to read the value from standard input.

If <lease> isn't given as a command line argument and '--ignore-lease' is not specified,
this command tries to read the value from standard input.

For example,
$ cat file | put <key>
will store the content of the file to <key>.
";

/// One flag as etcdctl's help shows it: `  -w, --write-out="simple"`.
fn flag_cell(s: &Spec) -> String {
    let lead = match s.short {
        Some(c) => format!("  -{c}, --{}", s.name),
        None => format!("      --{}", s.name),
    };
    match s.kind {
        Kind::Bool => format!("{lead}[={}]", s.default),
        Kind::Str => format!("{lead}=\"{}\"", s.default),
        _ => format!("{lead}={}", s.default),
    }
}

/// Two columns aligned as Go's `tabwriter.NewWriter(out, 0, 8, 1, '\t', 0)`, each
/// line starting with `lead`.
fn aligned<'a>(rows: impl IntoIterator<Item = (String, &'a str)>, lead: &str) -> String {
    let rows: Vec<(String, &str)> = rows.into_iter().collect();
    let width = rows
        .iter()
        .map(|(c, _)| c.chars().count())
        .max()
        .unwrap_or(0)
        + 1;
    let col = width.div_ceil(8) * 8;
    let mut out = String::new();
    for (cell, text) in &rows {
        let len = cell.chars().count();
        out.push_str(lead);
        out.push_str(cell);
        out.push_str(&"\t".repeat((col - len).div_ceil(8)));
        out.push_str(text);
        out.push('\n');
    }
    out
}

/// Flag lines, sorted by name, as etcdctl's help shows them.
fn flag_block(specs: &[Spec]) -> String {
    let mut specs: Vec<&Spec> = specs.iter().filter(|s| !s.hidden).collect();
    specs.sort_by_key(|s| s.name);
    aligned(specs.iter().map(|s| (flag_cell(s), s.usage)), "")
}

/// The `-h` flag as a command (or group) named `name` shows it.
fn help_flag(name: &str) -> Spec {
    let usage: &'static str = Box::leak(format!("help for {name}").into_boxed_str());
    let mut help = HELP.short('h');
    help.usage = usage;
    help
}

/// etcdctl's command groups: name, use line after the name, short description.
const GROUPS: &[(&str, &str, &str)] = &[
    ("alarm", "<subcommand>", "Alarm related commands"),
    (
        "auth",
        "<enable or disable>",
        "Enable or disable authentication",
    ),
    (
        "check",
        "<subcommand>",
        "commands for checking properties of the etcd cluster",
    ),
    ("endpoint", "<subcommand>", "Endpoint related commands"),
    ("lease", "<subcommand>", "Lease related commands"),
    ("member", "<subcommand>", "Membership related commands"),
    ("role", "<subcommand>", "Role related commands"),
    ("snapshot", "<subcommand>", "Manages etcd node snapshots"),
    ("user", "<subcommand>", "User related commands"),
];

fn doc(path: &str) -> (&'static str, &'static str, &'static str) {
    DOCS.iter()
        .find(|d| d.0 == path)
        .map(|d| (d.1, d.2, d.3))
        .unwrap_or(("", "", ""))
}

/// `etcdctl <cmd> --help`.
pub fn command_help(cmd: &Command) -> String {
    let path = cmd.path.join(" ");
    let (use_line, short, long) = doc(&path);
    let mut out = format!("NAME:\n\t{path} - {short}\n\nUSAGE:\n\tetcdctl {path}");
    if !use_line.is_empty() {
        out.push(' ');
        out.push_str(use_line);
    }
    out.push_str(" [flags]\n\n");
    if !long.is_empty() {
        out.push_str("DESCRIPTION:\n");
        for l in long.lines() {
            out.push('\t');
            out.push_str(l);
            out.push('\n');
        }
        out.push('\n');
    }
    let (inherited, mut local): (Vec<Spec>, Vec<Spec>) =
        cmd.specs.iter().partition(|s| s.inherited);
    local.push(help_flag(cmd.path[cmd.path.len() - 1]));
    out.push_str("OPTIONS:\n");
    out.push_str(&flag_block(&local));
    out.push_str("\nGLOBAL OPTIONS:\n");
    let globals: Vec<Spec> = global::SPECS.iter().copied().chain(inherited).collect();
    out.push_str(&flag_block(&globals));
    out.push('\n');
    out
}

/// The help of etcdctl itself (`path` empty) or of a command group (`etcdctl lease`),
/// in etcdctl's template: the commands sorted and aligned, then the flags.
pub fn group_help(path: &[&str]) -> String {
    let Some(group) = path.first() else {
        let mut commands: Vec<(String, &str)> = DOCS
            .iter()
            .map(|(p, _, short, _)| ((*p).to_owned(), *short))
            .collect();
        commands.push(("help".to_owned(), "Help about any command"));
        commands.sort();
        let mut globals: Vec<Spec> = global::SPECS.to_vec();
        globals.push(help_flag("etcdctl"));
        return format!(
            "NAME:\n\tetcdctl - A simple command line client for etcd3.\n\nUSAGE:\n\tetcdctl [flags]\n\nVERSION:\n\t{ETCDCTL_VERSION}\n\nAPI VERSION:\n\t{API_VERSION}\n\n\nCOMMANDS:\n{}\nOPTIONS:\n{}\n",
            aligned(commands, "\t"),
            flag_block(&globals)
        );
    };
    let (_, use_line, short) =
        GROUPS
            .iter()
            .find(|g| g.0 == *group)
            .copied()
            .unwrap_or((group, "<subcommand>", ""));
    let mut commands: Vec<(String, &str)> = Vec::new();
    let mut local: Vec<Spec> = Vec::new();
    for cmd in crate::command::COMMANDS
        .iter()
        .filter(|c| c.path[0] == *group)
    {
        let (_, sub_short, _) = doc(&cmd.path.join(" "));
        commands.push((cmd.path[1..].join(" "), sub_short));
        // A group's own flags are those its commands inherit (`endpoint --cluster`).
        for s in cmd.specs.iter().filter(|s| s.inherited) {
            if !local.iter().any(|l| l.name == s.name) {
                local.push(*s);
            }
        }
    }
    commands.sort();
    local.push(help_flag(group));
    format!(
        "NAME:\n\t{group} - {short}\n\nUSAGE:\n\tetcdctl {group} {use_line} [flags]\n\nAPI VERSION:\n\t{API_VERSION}\n\n\nCOMMANDS:\n{}\nOPTIONS:\n{}\nGLOBAL OPTIONS:\n{}\n",
        aligned(commands, "\t"),
        flag_block(&local),
        flag_block(global::SPECS)
    )
}

/// A bad flag: cobra prints the error, etcdctl's usage on stdout, and the error
/// again on the way out (exit 1).
pub fn flag_error(cmd: &Command, e: &str) -> CtlError {
    crate::command::err(format!("Error: {e}\n\n").as_bytes());
    crate::command::out(command_help(cmd).as_bytes());
    CtlError::error(e)
}

/// An unknown command word (cobra's wording; exit 1).
pub fn unknown_command(word: &str, path: &[&str]) -> CtlError {
    let parent = if path.is_empty() {
        "etcdctl".to_owned()
    } else {
        format!("etcdctl {}", path.join(" "))
    };
    let msg = format!("unknown command {word:?} for {parent:?}");
    crate::command::err(format!("Error: {msg}\nRun '{parent} --help' for usage.\n").as_bytes());
    CtlError::error(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_columns_align_with_tabs_as_etcdctl() {
        let block = flag_block(crate::command::get::SPECS);
        assert!(
            block
                .starts_with("      --consistency=\"l\"\t\t\tLinearizable(l) or Serializable(s)\n"),
            "{block}"
        );
        assert!(
            block.contains("      --print-value-only[=false]\tOnly write values"),
            "{block}"
        );
        let g = flag_block(global::SPECS);
        assert!(
            g.starts_with("      --cacert=\"\"\t\t\t\tverify certificates"),
            "{g}"
        );
        assert!(
            g.contains("      --endpoints=[127.0.0.1:2379]\t\tgRPC endpoints\n"),
            "{g}"
        );
    }
}
