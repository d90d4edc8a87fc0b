//! LockIdleUsers: the nightly idle lock with its warnings, exemptions and breaker, run in
//! batches by `sweep::batches`.

super::sweep::sweep_handler!(LockIdleUsers, super::sweep::SweepKind::LockIdle);
