//! The operator's commands beyond running the service, one file per command group: each
//! holds its clap arguments and what it does, so `main.rs` only lists them and dispatches.

pub mod admin;
pub mod history;
pub mod jobs;
pub mod schedule;
pub mod sweep;
pub mod sweep_release_prune;

/// A command's argument refused before anything ran: the CLI exits 2 for it, as for an
/// argument clap refuses (see `exit_code` in main.rs).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);
