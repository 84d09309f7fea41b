//! Authentication and authorization as observed through the stock `etcdctl` 3.4:
//! enabling auth, credentials, role permissions on keys, txns, leases and watches,
//! which admin commands a non-root user may run, protection of the root user and role,
//! password changes, and auth state across a restart.
//!
//! Every expectation here is etcd 3.4's, observed by running it (`REVKV_TEST_TARGET=etcd`),
//! and must hold unchanged against revkv. Each test starts its own single-member server.
//! Where etcdctl prints a client-side wrapper around the server's error (`lease revoke`,
//! `defrag`, `endpoint hashkv`), the wrapped text is the server's gRPC status message.

use std::io::Read;
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use revkv_tests::etcdctl::{ctl_command, etcdctl_bin, txn_input};
use revkv_tests::{error_line, CmdOutput, Etcdctl, TestServer};

const ROOT: &str = "--user=root:rootpw";
const ALICE: &str = "--user=alice:pw";

const ERR_USER_EMPTY: &str = "Error: etcdserver: user name is empty";
const ERR_AUTH_FAILED: &str =
    "Error: etcdserver: authentication failed, invalid user ID or password";
const ERR_DENIED: &str = "Error: etcdserver: permission denied";
const ERR_AUTH_MGMT: &str = "Error: etcdserver: invalid auth management";
const ERR_NO_ROOT: &str = "Error: etcdserver: root user does not exist";
const ERR_REVOKE_DENIED: &str = "Error: failed to revoke lease (etcdserver: permission denied)";
const ERR_NO_LEASE: &str = "Error: etcdserver: requested lease not found";

/// Role `r` as alice holds it: read on `foo`, readwrite on the prefix `dir/`.
const ROLE_R: &str =
    "Role r\nKV Read:\n\t[dir/, dir0) (prefix dir/)\n\tfoo\nKV Write:\n\t[dir/, dir0) (prefix dir/)\n";

fn start() -> (TestServer, Etcdctl) {
    let server = TestServer::start();
    let ctl = server.etcdctl();
    (server, ctl)
}

/// Runs etcdctl and asserts it failed with exit `code` and the `Error:` line `want`.
#[track_caller]
fn fails(ctl: &Etcdctl, args: &[&str], code: i32, want: &str) {
    let out = ctl.run(args, None);
    assert_eq!(
        out.status.code(),
        Some(code),
        "exit code of etcdctl {args:?}\nstdout: {}\nstderr: {}",
        out.stdout,
        out.stderr
    );
    assert_eq!(error_line(&out.stderr), want, "etcdctl {args:?}");
}

/// `fails` with exit 1 and "permission denied".
#[track_caller]
fn denied(ctl: &Etcdctl, args: &[&str]) {
    fails(ctl, args, 1, ERR_DENIED);
}

/// `fails` with a refused Authenticate: etcdctl authenticates while building its
/// client, and exits 2 (its "bad connection") when that fails.
#[track_caller]
fn auth_fails(ctl: &Etcdctl, args: &[&str]) {
    fails(ctl, args, 2, ERR_AUTH_FAILED);
}

/// etcdctl's stderr without its client-side zap log lines (`{"level":...}`: JSON
/// retry warnings with timestamps, not part of the server's behaviour).
fn messages(stderr: &str) -> String {
    stderr
        .lines()
        .filter(|l| !l.starts_with("{\"level\":"))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// `args` prefixed with `--user=...`.
fn with_user<'a>(user: &'a str, args: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![user];
    v.extend_from_slice(args);
    v
}

/// Creates root (with the root role), role `r` and user alice holding it, then enables
/// auth, checking every line etcdctl prints on the way.
fn setup(ctl: &Etcdctl) {
    let steps: &[(&[&str], &str)] = &[
        (&["user", "add", "root:rootpw"], "User root created\n"),
        (&["role", "add", "root"], "Role root created\n"),
        (
            &["user", "grant-role", "root", "root"],
            "Role root is granted to user root\n",
        ),
        (&["role", "add", "r"], "Role r created\n"),
        (
            &["role", "grant-permission", "r", "read", "foo"],
            "Role r updated\n",
        ),
        (
            &[
                "role",
                "grant-permission",
                "r",
                "readwrite",
                "dir/",
                "--prefix",
            ],
            "Role r updated\n",
        ),
        (&["user", "add", "alice:pw"], "User alice created\n"),
        (
            &["user", "grant-role", "alice", "r"],
            "Role r is granted to user alice\n",
        ),
        (&["auth", "enable"], "Authentication Enabled\n"),
    ];
    for (args, want) in steps {
        assert_eq!(ctl.ok(args), *want, "etcdctl {args:?}");
    }
}

/// The id of a fresh lease granted with a long TTL (`user`: `--user=...` flags, if any),
/// as etcdctl prints it.
#[track_caller]
fn grant_lease(ctl: &Etcdctl, user: &[&str]) -> String {
    let mut args = user.to_vec();
    args.extend(["lease", "grant", "600"]);
    let out = ctl.ok(&args);
    out.strip_prefix("lease ")
        .and_then(|r| r.split_once(' '))
        .map(|(id, _)| id.to_owned())
        .unwrap_or_else(|| panic!("unexpected grant output {out:?}"))
}

#[test]
fn enable_requires_a_root_user_and_etcdctl_adds_the_root_role() {
    let (_s, ctl) = start();
    // No root user: the server refuses, and etcdctl exits 1.
    fails(&ctl, &["auth", "enable"], 1, ERR_NO_ROOT);
    assert_eq!(
        ctl.ok(&["user", "add", "root:rootpw"]),
        "User root created\n"
    );
    // root without the root role: the server answers "root user does not have root
    // role" (see etcd_client_auth.rs); etcdctl 3.4 reacts by creating the role, granting
    // it to root and enabling again, so the command succeeds.
    assert_eq!(ctl.ok(&["auth", "enable"]), "Authentication Enabled\n");
    assert_eq!(ctl.ok(&[ROOT, "role", "list"]), "root\n");
    assert_eq!(
        ctl.ok(&[ROOT, "user", "get", "root"]),
        "User: root\nRoles: root\n"
    );
    assert_eq!(
        ctl.ok(&[ROOT, "role", "get", "root"]),
        "Role root\nKV Read:\nKV Write:\n"
    );
    // Enabling again is a no-op success.
    assert_eq!(
        ctl.ok(&[ROOT, "auth", "enable"]),
        "Authentication Enabled\n"
    );
}

#[test]
fn requests_need_valid_credentials_once_enabled() {
    let (s, ctl) = start();
    setup(&ctl);
    fails(&ctl, &["get", "foo"], 1, ERR_USER_EMPTY);
    fails(&ctl, &["put", "foo", "bar"], 1, ERR_USER_EMPTY);
    // A failed Authenticate happens while etcdctl builds its client: exit code 2
    // (etcdctl's "bad connection"), the server's message as the error line.
    auth_fails(&ctl, &["--user=root:wrong", "get", "foo"]);
    auth_fails(&ctl, &["--user=nobody:pw", "get", "foo"]);
    assert_eq!(ctl.ok(&[ROOT, "put", "foo", "bar"]), "OK\n");
    assert_eq!(ctl.ok(&[ROOT, "get", "foo"]), "foo\nbar\n");
    assert_eq!(ctl.ok(&[ALICE, "get", "foo"]), "foo\nbar\n");

    // `endpoint health` does a linearizable get of the key "health": etcdctl counts a
    // permission-denied answer as healthy but "user name is empty" as unhealthy.
    let prefix = format!(
        "{} is healthy: successfully committed proposal",
        s.endpoint()
    );
    let out = ctl.run(&[ALICE, "endpoint", "health"], None);
    assert!(out.status.success(), "{out:?}");
    assert!(messages(&out.stderr).starts_with(&prefix), "{out:?}");
    let out = ctl.run(&["endpoint", "health"], None);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        messages(&out.stderr).starts_with(&format!(
            "{} is unhealthy: failed to commit proposal: etcdserver: user name is empty\n",
            s.endpoint()
        )),
        "{out:?}"
    );
    assert_eq!(error_line(&out.stderr), "Error: unhealthy cluster");
}

#[test]
fn role_permissions_limit_reads_and_writes() {
    let (_s, ctl) = start();
    setup(&ctl);
    assert_eq!(ctl.ok(&[ROOT, "put", "foo", "bar"]), "OK\n");
    assert_eq!(ctl.ok(&[ROOT, "put", "secret", "s"]), "OK\n");

    // read on foo only.
    assert_eq!(ctl.ok(&[ALICE, "get", "foo"]), "foo\nbar\n");
    denied(&ctl, &[ALICE, "put", "foo", "x"]);
    denied(&ctl, &[ALICE, "del", "foo"]);
    denied(&ctl, &[ALICE, "get", "secret"]);
    // A range is permitted only if one granted range covers all of it.
    denied(&ctl, &[ALICE, "get", "--prefix", ""]);
    denied(&ctl, &[ALICE, "get", "a", "z"]);
    denied(&ctl, &[ALICE, "get", "foo", "--prefix"]);
    denied(&ctl, &[ALICE, "get", "dir", "--prefix"]);

    // readwrite on dir/*.
    assert_eq!(ctl.ok(&[ALICE, "put", "dir/a", "1"]), "OK\n");
    assert_eq!(ctl.ok(&[ALICE, "put", "dir/b", "2"]), "OK\n");
    assert_eq!(ctl.ok(&[ALICE, "get", "dir/a"]), "dir/a\n1\n");
    assert_eq!(
        ctl.ok(&[ALICE, "get", "dir/", "--prefix"]),
        "dir/a\n1\ndir/b\n2\n"
    );
    assert_eq!(ctl.ok(&[ALICE, "get", "dir/a", "dir/b"]), "dir/a\n1\n");
    assert_eq!(ctl.ok(&[ALICE, "del", "dir/a"]), "1\n");
    assert_eq!(ctl.ok(&[ALICE, "del", "dir/", "--prefix"]), "1\n");
    assert_eq!(ctl.ok(&[ROOT, "get", "secret"]), "secret\ns\n");
}

#[test]
fn txn_needs_permission_for_every_compare_and_op() {
    let (_s, ctl) = start();
    setup(&ctl);
    assert_eq!(ctl.ok(&[ROOT, "put", "foo", "bar"]), "OK\n");
    let txn = |compares: &[&str], success: &[&str], failure: &[&str]| {
        ctl.run(
            &[ALICE, "txn"],
            Some(txn_input(compares, success, failure).as_bytes()),
        )
    };
    let denied = |out: CmdOutput| {
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert_eq!(error_line(&out.stderr), ERR_DENIED);
    };
    // A compare on a key alice may not read.
    denied(txn(&[r#"value("secret") = "x""#], &["put dir/c 1"], &[]));
    // A write (success branch) or a read (failure branch) she may not do: every op
    // of both branches is checked, whichever branch would run.
    denied(txn(&[r#"value("foo") = "bar""#], &["put foo 1"], &[]));
    denied(txn(&[r#"value("foo") = "bar""#], &["get secret"], &[]));
    denied(txn(
        &[r#"value("foo") = "bar""#],
        &["get dir/c"],
        &["put foo z"],
    ));
    denied(txn(
        &[r#"value("foo") = "nope""#],
        &["get dir/c"],
        &["put foo z"],
    ));
    assert_eq!(ctl.ok(&[ROOT, "get", "dir/c"]), "", "nothing was applied");

    let out = txn(&[r#"value("foo") = "bar""#], &["put dir/c 1"], &["get foo"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, "SUCCESS\n\nOK\n");
    let out = txn(&[], &["del dir/ --prefix"], &[]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, "SUCCESS\n\n1\n");
}

#[test]
fn admin_commands_for_a_user_without_the_root_role() {
    let (s, ctl) = start();
    setup(&ctl);
    // Auth management needs the root role.
    for args in [
        &["user", "list"][..],
        &["role", "list"],
        &["role", "add", "x"],
        &["user", "add", "bob:pw"],
        &["user", "get", "root"],
        &["role", "get", "root"],
        &["auth", "disable"],
        &["auth", "enable"],
    ] {
        denied(&ctl, &with_user(ALICE, args));
    }
    // Even for herself: changing a password is an admin operation.
    let out = ctl.run(
        &[ALICE, "user", "passwd", "alice", "--interactive=false"],
        Some(b"pw2\n"),
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(error_line(&out.stderr), ERR_DENIED);

    // Maintenance RPCs that check for admin answer with the auth package's error,
    // which etcd 3.4 does not map to a gRPC status: code Unknown, "auth: ..." text.
    let denied = "rpc error: code = Unknown desc = auth: permission denied";
    let out = ctl.run(&[ALICE, "defrag"], None);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        messages(&out.stderr),
        format!(
            "Failed to defragment etcd member[{}] ({denied})\n",
            s.endpoint()
        )
    );
    let out = ctl.run(&[ALICE, "endpoint", "hashkv"], None);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        messages(&out.stderr),
        format!(
            "Failed to get the hash of endpoint {} ({denied})\nError: {denied}\n",
            s.endpoint()
        )
    );
    let snap = tempfile::tempdir().expect("tempdir");
    let path = snap.path().join("snap.db");
    let path = path.to_str().expect("utf8 path");
    let out = ctl.run(&[ALICE, "snapshot", "save", path], None);
    // etcdctl exits 5 when the snapshot stream fails.
    assert_eq!(out.status.code(), Some(5), "{out:?}");
    assert_eq!(error_line(&out.stderr), format!("Error: {denied}"));

    // etcd 3.4 checks nothing on these: any authenticated (or anonymous) user may.
    let member = ctl.ok(&[ALICE, "member", "list"]);
    assert!(member.contains(", started, default, "), "{member:?}");
    assert!(ctl
        .ok(&[ALICE, "endpoint", "status"])
        .starts_with(&format!("{}, ", s.endpoint())));
    assert_eq!(ctl.ok(&[ALICE, "alarm", "list"]), "");
    assert_eq!(ctl.ok(&[ALICE, "alarm", "disarm"]), "");
    assert_eq!(ctl.ok(&[ROOT, "put", "dir/x", "1"]), "OK\n");
    assert_eq!(
        ctl.ok(&[ALICE, "compaction", "1"]),
        "compacted revision 1\n"
    );
    let lease = grant_lease(&ctl, &[ALICE]);
    assert_eq!(
        ctl.ok(&[ALICE, "lease", "list"]),
        format!("found 1 leases\n{lease}\n")
    );
}

#[test]
fn admin_commands_without_a_user() {
    let (s, ctl) = start();
    setup(&ctl);
    let empty = "rpc error: code = Unknown desc = auth: user name is empty";
    let out = ctl.run(&["defrag"], None);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        messages(&out.stderr),
        format!(
            "Failed to defragment etcd member[{}] ({empty})\n",
            s.endpoint()
        )
    );
    let out = ctl.run(&["endpoint", "hashkv"], None);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(error_line(&out.stderr), format!("Error: {empty}"));
    fails(&ctl, &["user", "list"], 1, ERR_USER_EMPTY);
    fails(&ctl, &["auth", "disable"], 1, ERR_USER_EMPTY);
    fails(&ctl, &["user", "get", "alice"], 1, ERR_USER_EMPTY);

    // No check at all in 3.4: cluster membership, status, alarms, compaction, leases.
    assert!(ctl.ok(&["member", "list"]).contains(", started, default, "));
    assert!(ctl
        .ok(&["endpoint", "status"])
        .starts_with(&format!("{}, ", s.endpoint())));
    assert_eq!(ctl.ok(&["alarm", "list"]), "");
    assert_eq!(ctl.ok(&[ROOT, "put", "dir/x", "1"]), "OK\n");
    assert_eq!(ctl.ok(&["compaction", "2"]), "compacted revision 2\n");
    let lease = grant_lease(&ctl, &[]);
    assert_eq!(
        ctl.ok(&["lease", "revoke", &lease]),
        format!("lease {lease} revoked\n")
    );
}

#[test]
fn user_and_role_get_print_roles_and_permissions() {
    let (_s, ctl) = start();
    setup(&ctl);
    assert_eq!(
        ctl.ok(&[ROOT, "user", "get", "alice"]),
        "User: alice\nRoles: r\n"
    );
    assert_eq!(
        ctl.ok(&[ROOT, "user", "get", "alice", "--detail"]),
        format!("User: alice\n\n{ROLE_R}")
    );
    assert_eq!(ctl.ok(&[ROOT, "role", "get", "r"]), ROLE_R);
    assert_eq!(ctl.ok(&[ROOT, "user", "list"]), "alice\nroot\n");
    assert_eq!(ctl.ok(&[ROOT, "role", "list"]), "r\nroot\n");
    // A user may read herself and the roles she holds.
    assert_eq!(
        ctl.ok(&[ALICE, "user", "get", "alice"]),
        "User: alice\nRoles: r\n"
    );
    assert_eq!(ctl.ok(&[ALICE, "role", "get", "r"]), ROLE_R);

    // Errors of the management commands.
    let cases: &[(&[&str], &str)] = &[
        (&["user", "add", "alice:pw"], "user name already exists"),
        (&["role", "add", "r"], "role name already exists"),
        (&["role", "add", ""], "role name is empty"),
        (&["user", "get", "nosuch"], "user name not found"),
        (&["role", "get", "nosuch"], "role name not found"),
        (&["user", "delete", "nosuch"], "user name not found"),
        (&["role", "delete", "nosuch"], "role name not found"),
        (
            &["user", "grant-role", "alice", "nosuch"],
            "role name not found",
        ),
        (
            &["user", "grant-role", "nosuch", "r"],
            "user name not found",
        ),
        (
            &["user", "revoke-role", "alice", "root"],
            "role is not granted to the user",
        ),
        (
            &["role", "revoke-permission", "r", "nothere"],
            "permission is not granted to the role",
        ),
        (
            &["role", "revoke-permission", "nosuch", "x"],
            "role name not found",
        ),
    ];
    for (args, msg) in cases {
        fails(
            &ctl,
            &with_user(ROOT, args),
            1,
            &format!("Error: etcdserver: {msg}"),
        );
    }
    // Granting a role the user already has is a success.
    assert_eq!(
        ctl.ok(&[ROOT, "user", "grant-role", "alice", "r"]),
        "Role r is granted to user alice\n"
    );
    assert_eq!(
        ctl.ok(&[ROOT, "user", "get", "alice"]),
        "User: alice\nRoles: r\n"
    );
}

#[test]
fn root_user_and_role_are_protected_while_enabled() {
    let (_s, ctl) = start();
    setup(&ctl);
    fails(&ctl, &[ROOT, "user", "delete", "root"], 1, ERR_AUTH_MGMT);
    fails(
        &ctl,
        &[ROOT, "user", "revoke-role", "root", "root"],
        1,
        ERR_AUTH_MGMT,
    );
    fails(&ctl, &[ROOT, "role", "delete", "root"], 1, ERR_AUTH_MGMT);
    // The root role's permissions and root's other roles are not protected.
    assert_eq!(
        ctl.ok(&[ROOT, "role", "grant-permission", "root", "read", "x"]),
        "Role root updated\n"
    );
    assert_eq!(
        ctl.ok(&[ROOT, "role", "revoke-permission", "root", "x"]),
        "Permission of key x is revoked from role root\n"
    );
    assert_eq!(
        ctl.ok(&[ROOT, "user", "grant-role", "root", "r"]),
        "Role r is granted to user root\n"
    );
    assert_eq!(
        ctl.ok(&[ROOT, "user", "revoke-role", "root", "r"]),
        "Role r is revoked from user root\n"
    );
    // Another user with the root role is an admin too.
    assert_eq!(
        ctl.ok(&[ROOT, "user", "add", "bob:pw"]),
        "User bob created\n"
    );
    assert_eq!(
        ctl.ok(&[ROOT, "user", "grant-role", "bob", "root"]),
        "Role root is granted to user bob\n"
    );
    assert_eq!(
        ctl.ok(&["--user=bob:pw", "user", "list"]),
        "alice\nbob\nroot\n"
    );
    assert_eq!(ctl.ok(&["--user=bob:pw", "get", "secret"]), "");
    // A deleted user cannot authenticate any more.
    assert_eq!(
        ctl.ok(&[ROOT, "user", "delete", "bob"]),
        "User bob deleted\n"
    );
    auth_fails(&ctl, &["--user=bob:pw", "get", "foo"]);

    // With auth disabled, root loses its protection.
    assert_eq!(
        ctl.ok(&[ROOT, "auth", "disable"]),
        "Authentication Disabled\n"
    );
    assert_eq!(
        ctl.ok(&["user", "revoke-role", "root", "root"]),
        "Role root is revoked from user root\n"
    );
    // etcdctl's `auth enable` then tries to add the root role, which exists.
    fails(
        &ctl,
        &["auth", "enable"],
        1,
        "Error: etcdserver: role name already exists",
    );
    assert_eq!(ctl.ok(&["get", "foo"]), "", "auth stayed disabled");
    assert_eq!(ctl.ok(&["user", "delete", "root"]), "User root deleted\n");
    fails(&ctl, &["auth", "enable"], 1, ERR_NO_ROOT);
}

#[test]
fn auth_disable_restores_open_access() {
    let (_s, ctl) = start();
    setup(&ctl);
    denied(&ctl, &[ALICE, "auth", "disable"]);
    assert_eq!(
        ctl.ok(&[ROOT, "auth", "disable"]),
        "Authentication Disabled\n"
    );
    assert_eq!(ctl.ok(&["put", "foo", "bar"]), "OK\n");
    assert_eq!(ctl.ok(&["get", "foo"]), "foo\nbar\n");
    assert_eq!(ctl.ok(&["user", "list"]), "alice\nroot\n");
    // Disabling twice is fine.
    assert_eq!(ctl.ok(&["auth", "disable"]), "Authentication Disabled\n");
    // Authenticate answers "authentication is not enabled", which etcdctl ignores:
    // any credentials, even wrong ones, are accepted and no token is sent.
    assert_eq!(ctl.ok(&["--user=root:wrong", "get", "foo"]), "foo\nbar\n");
    assert_eq!(ctl.ok(&[ALICE, "put", "secret", "x"]), "OK\n");
    // Users, roles and permissions are kept and apply again once re-enabled.
    assert_eq!(ctl.ok(&["auth", "enable"]), "Authentication Enabled\n");
    fails(&ctl, &["get", "foo"], 1, ERR_USER_EMPTY);
    denied(&ctl, &[ALICE, "get", "secret"]);
    assert_eq!(ctl.ok(&[ALICE, "get", "foo"]), "foo\nbar\n");
}

#[test]
fn password_change_replaces_the_old_password() {
    let (_s, ctl) = start();
    setup(&ctl);
    assert_eq!(
        ctl.ok_stdin(
            &[ROOT, "user", "passwd", "alice", "--interactive=false"],
            "pw2\n"
        ),
        "Password updated\n"
    );
    auth_fails(&ctl, &[ALICE, "get", "foo"]);
    assert_eq!(ctl.ok(&["--user=alice:pw2", "get", "foo"]), "");
    // `user add --interactive=false` reads the password from stdin as well.
    assert_eq!(
        ctl.ok_stdin(
            &[ROOT, "user", "add", "bob", "--interactive=false"],
            "bobpw\n"
        ),
        "User bob created\n"
    );
    denied(&ctl, &["--user=bob:bobpw", "get", "foo"]);
    auth_fails(&ctl, &["--user=bob:other", "get", "foo"]);
}

#[test]
fn auth_state_survives_a_restart() {
    let (mut s, ctl) = start();
    setup(&ctl);
    assert_eq!(ctl.ok(&[ROOT, "put", "foo", "bar"]), "OK\n");
    // /health keeps answering healthy with auth on (its own read is not refused as
    // unhealthy), so the harness's restart works unchanged.
    s.restart();
    fails(&ctl, &["get", "foo"], 1, ERR_USER_EMPTY);
    auth_fails(&ctl, &["--user=root:wrong", "get", "foo"]);
    assert_eq!(ctl.ok(&[ROOT, "get", "foo"]), "foo\nbar\n");
    assert_eq!(ctl.ok(&[ALICE, "get", "foo"]), "foo\nbar\n");
    denied(&ctl, &[ALICE, "put", "foo", "x"]);
    assert_eq!(ctl.ok(&[ROOT, "role", "get", "r"]), ROLE_R);
    assert_eq!(ctl.ok(&[ROOT, "user", "list"]), "alice\nroot\n");
}

/// Runs `etcdctl <args>` and waits (bounded) for it to exit by itself; a process still
/// running at the deadline is killed and the test fails.
fn run_to_exit(ctl: &Etcdctl, args: &[&str]) -> (ExitStatus, String, String) {
    const LIMIT: Duration = Duration::from_secs(30);
    let mut child: Child = ctl_command(&etcdctl_bin(), ctl.endpoint(), args, false)
        .spawn()
        .expect("spawn etcdctl");
    let deadline = Instant::now() + LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("etcdctl {args:?} still running after {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (mut out, mut err) = (String::new(), String::new());
    if let Some(mut p) = child.stdout.take() {
        p.read_to_string(&mut out).expect("read stdout");
    }
    if let Some(mut p) = child.stderr.take() {
        p.read_to_string(&mut err).expect("read stderr");
    }
    (status, out, err)
}

#[test]
fn watch_without_permission_is_canceled_by_the_server() {
    let (_s, ctl) = start();
    setup(&ctl);
    // etcd answers the create request with created+canceled and a cancel reason;
    // etcdctl prints it and exits 5 at once instead of watching.
    let (status, out, err) = run_to_exit(&ctl, &[ALICE, "watch", "secret"]);
    assert_eq!(status.code(), Some(5));
    assert_eq!(out, "");
    assert_eq!(
        messages(&err),
        "watch was canceled (rpc error: code = PermissionDenied desc = etcdserver: permission denied)\n\
         Error: watch is canceled by the server\n"
    );
    let (status, out, err) = run_to_exit(&ctl, &[ALICE, "watch", "a", "z"]);
    assert_eq!((status.code(), out.as_str()), (Some(5), ""));
    assert!(messages(&err).starts_with("watch was canceled (rpc error: code = PermissionDenied"));
    // Without a user the reason is "user name is empty".
    let (status, out, err) = run_to_exit(&ctl, &["watch", "foo"]);
    assert_eq!(status.code(), Some(5));
    assert_eq!(out, "");
    assert_eq!(
        messages(&err),
        "watch was canceled (rpc error: code = InvalidArgument desc = etcdserver: user name is empty)\n\
         Error: watch is canceled by the server\n"
    );
}

#[test]
fn lease_revoke_and_put_with_lease_need_write_on_the_attached_keys() {
    let (_s, ctl) = start();
    setup(&ctl);
    // A lease (granted by root) carrying a key alice may not write.
    let lease = grant_lease(&ctl, &[ROOT]);
    assert_eq!(
        ctl.ok(&[ROOT, "put", "secret", "s", "--lease", &lease]),
        "OK\n"
    );
    // Attaching another key to it, even one she may write, is denied...
    denied(&ctl, &[ALICE, "put", "dir/l", "1", "--lease", &lease]);
    // ...and so is revoking it (which would delete `secret`).
    fails(
        &ctl,
        &[ALICE, "lease", "revoke", &lease],
        1,
        ERR_REVOKE_DENIED,
    );
    fails(
        &ctl,
        &["lease", "revoke", &lease],
        1,
        "Error: failed to revoke lease (etcdserver: user name is empty)",
    );
    // Reading the lease and keeping it alive need no key permission in 3.4.
    let ttl = ctl.ok(&[ALICE, "lease", "timetolive", &lease, "--keys"]);
    assert!(ttl.ends_with(", attached keys([secret])\n"), "{ttl:?}");
    assert_eq!(
        ctl.ok(&[ALICE, "lease", "keep-alive", "--once", &lease]),
        format!("lease {lease} keepalived with TTL(600)\n")
    );
    assert_eq!(ctl.ok(&[ROOT, "get", "secret"]), "secret\ns\n");

    // A lease whose keys she may all write (granted by root or by herself): fine.
    let lease = grant_lease(&ctl, &[ROOT]);
    assert_eq!(
        ctl.ok(&[ALICE, "put", "dir/l", "1", "--lease", &lease]),
        "OK\n"
    );
    assert_eq!(
        ctl.ok(&[ALICE, "lease", "revoke", &lease]),
        format!("lease {lease} revoked\n")
    );
    assert_eq!(
        ctl.ok(&[ALICE, "get", "dir/l"]),
        "",
        "revoke deleted the key"
    );

    // Her own lease becomes unusable for her once root attaches a key she can't write.
    let lease = grant_lease(&ctl, &[ALICE]);
    assert_eq!(
        ctl.ok(&[ALICE, "put", "dir/m", "1", "--lease", &lease]),
        "OK\n"
    );
    assert_eq!(
        ctl.ok(&[ROOT, "put", "secret2", "1", "--lease", &lease]),
        "OK\n"
    );
    denied(&ctl, &[ALICE, "put", "dir/n", "1", "--lease", &lease]);
    fails(
        &ctl,
        &[ALICE, "lease", "revoke", &lease],
        1,
        ERR_REVOKE_DENIED,
    );
    assert_eq!(
        ctl.ok(&[ROOT, "lease", "revoke", &lease]),
        format!("lease {lease} revoked\n")
    );
    fails(
        &ctl,
        &[ALICE, "lease", "revoke", &lease],
        1,
        "Error: failed to revoke lease (etcdserver: requested lease not found)",
    );
    // The key's own permission is checked before the lease's existence.
    denied(&ctl, &[ALICE, "put", "foo", "x", "--lease", "1234"]);
    fails(
        &ctl,
        &[ALICE, "put", "dir/x", "x", "--lease", "1234"],
        1,
        ERR_NO_LEASE,
    );
}
