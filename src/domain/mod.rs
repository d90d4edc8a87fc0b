//! The rules of the account lifecycle as plain functions and types: no I/O, so each rule
//! is tested on its own and shared by every handler that needs it.

pub mod admin;
pub mod billing;
pub mod confirmation;
pub mod credentials;
pub mod email;
pub mod guards;
pub mod lockout;
pub mod reassignment;
pub mod seats;
pub mod sweeps;
pub mod user;
