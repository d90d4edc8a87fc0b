//! The dry-run of a user sweep: per account, who would be affected and why, judged by the
//! same rules the run applies, through read-only transactions: it changes nothing.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{AccountRules, Action, Breaker, Scope, SweepKind, signals};
use crate::config::SweepSettings;
use crate::domain::sweeps;
use crate::store::{Store, StoreError};

/// One user the run would touch (or would have, but for an exemption or the breaker).
#[derive(Clone, Debug, Serialize)]
pub struct PreviewRow {
    pub user_id: i64,
    pub email: String,
    pub last_activity: DateTime<Utc>,
    pub days_idle: i64,
    pub deadline: Option<DateTime<Utc>>,
    /// `lock`, `expire_password`, `warn_7d`, `exempt:<why>`, `held_by_breaker`.
    pub verdict: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct AccountPreview {
    pub account_id: i64,
    pub account_name: String,
    pub active_users: u64,
    pub would_change: u64,
    pub share: f64,
    pub breaker: Breaker,
    pub users: Vec<PreviewRow>,
}

/// Judges every account of `scope` as a run at `scope.at` would.
pub async fn preview(
    store: &Store,
    settings: &SweepSettings,
    kind: SweepKind,
    scope: &Scope,
) -> Result<Vec<AccountPreview>, StoreError> {
    let batch = i64::from(settings.batch_size);
    let mut previews = Vec::new();
    let mut after = 0;
    loop {
        let accounts = super::accounts_page(store, scope, after).await?;
        let Some(last) = accounts.last() else {
            return Ok(previews);
        };
        after = last.account.id;
        for account in &accounts {
            let account_id = account.account.id;
            let mut tx = store.begin_read().await?;
            let rules = AccountRules::load(&mut tx, kind, settings, account, scope.at).await?;
            tx.rollback().await?;
            let mut rows = Vec::new();
            let counts = super::judge_all(
                store,
                &rules,
                account_id,
                scope.at,
                batch,
                |user, deadline, action| {
                    let verdict = match action {
                        Action::Act if kind == SweepKind::LockIdle => "lock".to_string(),
                        Action::Act => "expire_password".to_string(),
                        Action::Warn(stage) => format!("warn_{stage}d"),
                        Action::Exempt(why) => format!("exempt:{}", why.as_str()),
                        Action::Nothing => return,
                    };
                    let last_seen = signals(&user.facts()).last_seen();
                    rows.push(PreviewRow {
                        user_id: user.user.id,
                        email: user.user.email.clone(),
                        last_activity: last_seen,
                        days_idle: sweeps::whole_days(last_seen, scope.at),
                        deadline,
                        verdict,
                    });
                },
            )
            .await?;
            let mut tx = store.begin_read().await?;
            let breaker =
                super::breaker(&mut tx, &rules, settings, account_id, scope, counts).await?;
            tx.rollback().await?;
            if breaker.blocks() {
                for row in rows.iter_mut().filter(|row| row.verdict == "lock") {
                    row.verdict = "held_by_breaker".to_string();
                }
            }
            previews.push(AccountPreview {
                account_id,
                account_name: account.account.name.clone(),
                active_users: counts.active_users,
                would_change: counts.would_act,
                share: sweeps::lock_share(counts.would_act, counts.active_users),
                breaker,
                users: rows,
            });
        }
    }
}

/// The previews as a table, one block per account.
pub fn table(previews: &[AccountPreview]) -> String {
    let mut out = String::new();
    for account in previews {
        out.push_str(&format!(
            "account {} ({}): {} active, {} due ({:.1}%), breaker {:?}\n",
            account.account_id,
            account.account_name,
            account.active_users,
            account.would_change,
            account.share * 100.0,
            account.breaker
        ));
        if account.users.is_empty() {
            out.push_str("  nobody affected\n");
            continue;
        }
        out.push_str(&format!(
            "  {:>6}  {:<32} {:<20} {:>9}  {:<20} {}\n",
            "user", "email", "last activity", "days idle", "deadline", "verdict"
        ));
        for row in &account.users {
            out.push_str(&format!(
                "  {:>6}  {:<32} {:<20} {:>9}  {:<20} {}\n",
                row.user_id,
                row.email,
                row.last_activity.format("%Y-%m-%d %H:%M UTC"),
                row.days_idle,
                row.deadline
                    .map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string())
                    .unwrap_or_else(|| "-".into()),
                row.verdict
            ));
        }
    }
    out
}
