//! ExpirePasswords: must-change-password once a password is older than the maximum age,
//! with its warnings, run in batches by `sweep::batches`.

super::sweep::sweep_handler!(ExpirePasswords, super::sweep::SweepKind::ExpirePasswords);
