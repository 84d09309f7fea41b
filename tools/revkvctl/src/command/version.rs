//! `version`: the etcdctl release whose behaviour revkvctl reproduces.

use super::{out, Ctx};
use crate::exit::CtlResult;

/// The etcdctl version revkvctl matches, output for output.
pub const ETCDCTL_VERSION: &str = "3.4.23";
/// The API version of that release.
pub const API_VERSION: &str = "3.4";

/// Runs `version` (every output format prints the same two lines).
pub fn execute(_ctx: &mut Ctx) -> CtlResult {
    out(format!("etcdctl version: {ETCDCTL_VERSION}\nAPI version: {API_VERSION}\n").as_bytes());
    Ok(())
}
