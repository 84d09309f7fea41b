//! revkvctl's `auth`, `user` and `role` commands against stock etcdctl 3.4's: the same
//! history of command lines run by each CLI against its own fresh server, compared
//! byte for byte (stdout, stderr without etcdctl's zap log lines, exit code).
//!
//! It covers the commands' arguments, requests and printing, permissions, `--user`
//! and the password prompts (answered on stdin, so both run stty on a pipe) included, against either target (`REVKV_TEST_TARGET=etcd|revkv`); what the server
//! answers is checked in `etcdctl_auth.rs` and `etcd_client_auth.rs`.

use std::time::Duration;

use revkv_tests::etcdctl::etcdctl_bin;
use revkv_tests::revkvctl::{revkvctl_bin, run_cli, without_client_logs};
use revkv_tests::TestServer;

const LIMIT: Duration = Duration::from_secs(20);

#[test]
fn auth_user_and_role_commands_match_etcdctl() {
    let (etcdctl, revkvctl) = (etcdctl_bin(), revkvctl_bin());
    let (sa, sb) = (TestServer::start(), TestServer::start());
    let root = "--user=root:rootpw";
    let history: &[(&[&str], Option<&str>)] = &[
        (&["auth", "enable"], None),
        (&["user", "add", "root:rootpw"], None),
        (&["role", "add", "root"], None),
        (&["user", "grant-role", "root", "root"], None),
        (&["role", "add", "reader"], None),
        (&["role", "grant-permission", "reader", "read", "foo"], None),
        (
            &[
                "role",
                "grant-permission",
                "reader",
                "readwrite",
                "dir/",
                "--prefix",
            ],
            None,
        ),
        (
            &["role", "grant-permission", "reader", "write", "a", "z"],
            None,
        ),
        (
            &[
                "role",
                "grant-permission",
                "reader",
                "READ",
                "",
                "--from-key",
            ],
            None,
        ),
        (&["role", "grant-permission", "reader", "bogus", "k"], None),
        (
            &[
                "role",
                "grant-permission",
                "reader",
                "read",
                "k",
                "--prefix",
                "--from-key",
            ],
            None,
        ),
        (
            &[
                "role",
                "grant-permission",
                "reader",
                "read",
                "k",
                "e",
                "--prefix",
            ],
            None,
        ),
        (&["role", "grant-permission", "reader", "read"], None),
        (&["role", "get", "reader"], None),
        (&["user", "add", "alice", "--new-user-password=pw"], None),
        (
            &["user", "add", "bob", "--interactive=false"],
            Some("secret\n"),
        ),
        (&["user", "add", "carol", "--no-password"], None),
        (&["user", "add", ":x"], None),
        (&["user", "add"], None),
        (&["user", "grant-role", "alice", "reader"], None),
        (&["user", "grant-role", "alice"], None),
        (&["user", "get", "alice"], None),
        (&["user", "get", "alice", "--detail"], None),
        (&["user", "list"], None),
        (&["role", "list"], None),
        (&["user", "list", "x"], None),
        (
            &["user", "passwd", "alice", "--interactive=false"],
            Some("pw2\n"),
        ),
        (&["user", "passwd"], None),
        (&["user", "revoke-role", "alice", "reader"], None),
        (&["user", "revoke-role", "alice"], None),
        (&["role", "revoke-permission", "reader", "foo"], None),
        (
            &["role", "revoke-permission", "reader", "dir/", "--prefix"],
            None,
        ),
        (
            &["role", "revoke-permission", "reader", "", "--from-key"],
            None,
        ),
        (&["role", "revoke-permission", "reader", "a", "z"], None),
        (&["role", "revoke-permission", "reader"], None),
        (&["role", "get", "reader"], None),
        // Asked for on stdin, as etcdctl's prompt asks: twice, and they must match.
        (&["user", "add", "dave"], Some("pw\npw\n")),
        (&["user", "add", "erin"], Some("a\nb\n")),
        (&["user", "add", "fay"], Some("\n")),
        (&["user", "passwd", "dave"], Some("x\nx\n")),
        (&["user", "delete", "bob"], None),
        (&["user", "get", "bob"], None),
        (&["role", "delete", "reader"], None),
        // With auth on, requests need a user: root's, a wrong password, none.
        (&["auth", "enable"], None),
        (&[root, "user", "list"], None),
        (&[root, "put", "k", "v"], None),
        (&["--user=alice:pw2", "get", "k"], None),
        (&["--user=root:wrong", "user", "list"], None),
        // A --user without its password asks for it; none given means no login.
        (&["--user=root", "user", "list"], Some("rootpw\n")),
        (&["--user=root", "user", "list"], Some("wrong\n")),
        (&["--user=root", "user", "list"], None),
        (&["user", "list"], None),
        (&[root, "auth", "disable"], None),
        (&["user", "list"], None),
    ];
    for (args, stdin) in history {
        let input = stdin.map(str::as_bytes);
        let want = without_client_logs(run_cli(&etcdctl, &sa.endpoint(), args, input, &[], LIMIT));
        let got = without_client_logs(run_cli(&revkvctl, &sb.endpoint(), args, input, &[], LIMIT));
        assert_eq!(
            got, want,
            "revkvctl differs from etcdctl for {args:?}\n--- etcdctl ---\n{}{}\n--- revkvctl ---\n{}{}",
            want.stdout, want.stderr, got.stdout, got.stderr
        );
    }
}
