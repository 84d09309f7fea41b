//! etcdctl's exit codes (`pkg/cobrautl`) and the error a command ends with.

use std::fmt;

/// Everything went fine.
pub const SUCCESS: i32 = 0;
/// The request failed (server error, timeout).
pub const ERROR: i32 = 1;
/// The client could not be set up or a stream broke.
pub const BAD_CONNECTION: i32 = 2;
/// Bad input on stdin (txn, interactive watch).
pub const INVALID_INPUT: i32 = 3;
/// An output format the command does not support.
pub const BAD_FEATURE: i32 = 4;
/// A long-running command was stopped (watch cancelled, snapshot failed).
pub const INTERRUPTED: i32 = 5;
/// Bad arguments.
pub const BAD_ARGS: i32 = 128;

/// How a command ends when it does not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CtlError {
    /// Process exit code.
    pub code: i32,
    /// Printed as `Error: <message>` on stderr; `None` when the command already
    /// printed what etcdctl prints.
    pub message: Option<String>,
}

impl CtlError {
    /// `Error: <message>` and exit with `code`.
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        CtlError {
            code,
            message: Some(message.into()),
        }
    }

    /// Exit with `code` and print nothing more.
    pub fn silent(code: i32) -> Self {
        CtlError {
            code,
            message: None,
        }
    }

    /// A bad-arguments error (exit 128).
    pub fn bad_args(message: impl Into<String>) -> Self {
        Self::new(BAD_ARGS, message)
    }

    /// A failed request (exit 1).
    pub fn error(message: impl Into<String>) -> Self {
        Self::new(ERROR, message)
    }
}

impl fmt::Display for CtlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.message {
            Some(m) => write!(f, "{m} (exit {})", self.code),
            None => write!(f, "exit {}", self.code),
        }
    }
}

/// Result of a command.
pub type CtlResult<T = ()> = Result<T, CtlError>;
