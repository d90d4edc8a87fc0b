//! The rules of the account lifecycle as plain functions and types: no I/O, so each rule
//! is tested on its own and shared by every handler that needs it.

pub mod billing;
pub mod guards;
pub mod reassignment;
pub mod user;
pub mod confirmation;
pub mod lockout;
pub mod seats;
pub mod credentials;
