//! The jobs pages: thin handlers that read through `store::admin`, act through
//! `queue::admin`, and hand plain values to the templates, which escape them. The jobs list,
//! its bulk actions, a job's page and a user's are each in their own file; the overview and
//! the operators' actions are beside this module.

pub mod bulk;
mod filter;
pub mod job;
pub mod jobs;
pub mod users;

use super::view::{acting, operator, shown, time};
