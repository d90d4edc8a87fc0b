//! The operator's commands beyond running the service, one file per command group: each
//! holds its clap arguments and what it does, so `main.rs` only lists them and dispatches.

pub mod admin;
pub mod history;
pub mod jobs;
pub mod schedule;
pub mod sweep;
pub mod sweep_release_prune;
