//! etcdctl's password prompt (the `speakeasy` package it uses).
//!
//! The prompt goes to stdout, the terminal's echo is turned off and on again by running
//! stty(1) on stdin, and one line is read from stdin. When stdin is not a terminal (a
//! pipe, say) stty complains on stderr, as it does for etcdctl, and the line is read all
//! the same, so `echo pw | revkvctl --user root get k` behaves as it does with etcdctl.

use std::io::Write;
use std::process::{Command, Stdio};

/// etcdctl's `speakeasy.Ask`: `prompt`, then a line from `read_line` without echo,
/// then a newline; the answer without surrounding whitespace.
pub fn ask(prompt: &str, read_line: &mut dyn FnMut() -> String) -> String {
    let mut out = std::io::stdout();
    let _ = write!(out, "{prompt}");
    let _ = out.flush();
    stty("-echo");
    let line = read_line();
    stty("echo");
    let _ = writeln!(out);
    line.trim().to_owned()
}

/// The stdin line reader [`ask`] uses outside tests.
pub fn read_stdin() -> String {
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    line
}

/// Runs `stty <arg>` on stdin; whether it works does not matter (speakeasy does not
/// look either), only that a terminal stops echoing the password.
fn stty(arg: &str) {
    let _ = Command::new("stty")
        .arg(arg)
        .stdin(Stdio::inherit())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .status();
}
