//! What a sweep's batch writes: the users it locks or makes change their password (one
//! statement for every account of the batch on PostgreSQL; the batch audits what they
//! return, `JobTx::audit_batch`), and the staged-warning markers that make each warning go
//! out once.

use chrono::{DateTime, Utc};

use crate::store::audit::Changed;
use crate::store::{StoreError, Tx, fetch_optional};

/// Runs `set` on those of `due` (a user each: who, in which account, the audit detail)
/// still `active` and matching `still_due`, each in its own account (`$1` the instant), and
/// returns the changed users, to be audited (a rerun changes none twice).
async fn change_due(
    tx: &mut Tx,
    at: DateTime<Utc>,
    set: &'static str,
    still_due: &'static str,
    due: &[Changed],
) -> Result<Vec<Changed>, StoreError> {
    if due.is_empty() {
        return Ok(Vec::new());
    }
    let changed: Vec<(i64, i64)> = match tx {
        // One statement for every account of the batch, each id paired with its account.
        Tx::Postgres(tx) => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "UPDATE users u SET {set}, updated_at = $1
                   FROM UNNEST($2::int8[], $3::int8[]) AS due (account_id, id)
                  WHERE u.id = due.id AND u.account_id = due.account_id
                    AND u.status = 'active' {still_due}
                RETURNING u.account_id, u.id"
            )))
            .bind(at)
            .bind(due.iter().map(|user| user.account_id).collect::<Vec<_>>())
            .bind(due.iter().map(|user| user.entity_id).collect::<Vec<_>>())
            .fetch_all(&mut **tx)
            .await?
        }
        // In process: a statement per user costs no round trip.
        Tx::Sqlite(tx) => {
            let sql = format!(
                "UPDATE users SET {set}, updated_at = $1
                  WHERE account_id = $2 AND id = $3 AND status = 'active' {still_due}
              RETURNING account_id, id"
            );
            let mut changed = Vec::new();
            for user in due {
                let row: Option<(i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
                    .bind(at)
                    .bind(user.account_id)
                    .bind(user.entity_id)
                    .fetch_optional(&mut **tx)
                    .await?;
                changed.extend(row);
            }
            changed
        }
    };
    let changed: std::collections::HashSet<(i64, i64)> = changed.into_iter().collect();
    let changed: Vec<Changed> = due
        .iter()
        .filter(|user| changed.contains(&(user.account_id, user.entity_id)))
        .cloned()
        .collect();
    Ok(changed)
}

/// Locks (`idle`) those of `due` still active at `at`; returns the users this call locked,
/// with their audit detail.
pub async fn lock_idle(
    tx: &mut Tx,
    at: DateTime<Utc>,
    due: &[Changed],
) -> Result<Vec<Changed>, StoreError> {
    change_due(tx, at, "status = 'locked', lock_reason = 'idle'", "", due).await
}

/// Sets must-change-password at `at` on those of `due` still active without it; returns
/// the users this call changed, with their audit detail.
pub async fn require_password_change(
    tx: &mut Tx,
    at: DateTime<Utc>,
    due: &[Changed],
) -> Result<Vec<Changed>, StoreError> {
    change_due(
        tx,
        at,
        "must_change_password = TRUE",
        "AND must_change_password = FALSE",
        due,
    )
    .await
}

/// Records that warning `stage_days` of `kind` for `deadline` goes to `user_id`; `false`
/// when it was recorded before (then it must not be sent again).
pub async fn mark_warning(
    tx: &mut Tx,
    user_id: i64,
    kind: &str,
    deadline: DateTime<Utc>,
    stage_days: u32,
    at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    #[derive(sqlx::FromRow)]
    struct Inserted {
        #[allow(dead_code)]
        user_id: i64,
    }
    let inserted = fetch_optional!(
        tx,
        Inserted,
        "INSERT INTO user_warning_markers (user_id, kind, deadline, stage_days, sent_at)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING user_id",
        user_id,
        kind,
        deadline,
        i64::from(stage_days),
        at
    )?;
    Ok(inserted.is_some())
}

/// A warning due to a user: stage `stage_days` before `deadline`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WarningDue {
    pub user_id: i64,
    pub deadline: DateTime<Utc>,
    pub stage_days: u32,
}

/// [`mark_warning`] for a batch's warnings of `kind` at once (one statement on
/// PostgreSQL); returns those recorded now, which are the ones to send.
pub async fn mark_warnings(
    tx: &mut Tx,
    kind: &str,
    due: &[WarningDue],
    at: DateTime<Utc>,
) -> Result<Vec<WarningDue>, StoreError> {
    let pg = match tx {
        Tx::Postgres(pg) if due.len() > 1 => pg,
        _ => {
            let mut marked = Vec::with_capacity(due.len());
            for warning in due {
                if mark_warning(
                    tx,
                    warning.user_id,
                    kind,
                    warning.deadline,
                    warning.stage_days,
                    at,
                )
                .await?
                {
                    marked.push(*warning);
                }
            }
            return Ok(marked);
        }
    };
    let inserted: Vec<(i64, DateTime<Utc>, i64)> = sqlx::query_as(
        "INSERT INTO user_warning_markers (user_id, kind, deadline, stage_days, sent_at)
         SELECT user_id, $2, deadline, stage_days, $3
           FROM UNNEST($1::int8[], $4::timestamptz[], $5::int8[])
             AS due (user_id, deadline, stage_days)
         ON CONFLICT DO NOTHING RETURNING user_id, deadline, stage_days::int8",
    )
    .bind(
        due.iter()
            .map(|warning| warning.user_id)
            .collect::<Vec<_>>(),
    )
    .bind(kind)
    .bind(at)
    .bind(
        due.iter()
            .map(|warning| warning.deadline)
            .collect::<Vec<_>>(),
    )
    .bind(
        due.iter()
            .map(|warning| i64::from(warning.stage_days))
            .collect::<Vec<_>>(),
    )
    .fetch_all(&mut **pg)
    .await?;
    Ok(due
        .iter()
        .filter(|warning| {
            inserted.iter().any(|(user, deadline, stage)| {
                *user == warning.user_id
                    && *deadline == warning.deadline
                    && *stage == i64::from(warning.stage_days)
            })
        })
        .copied()
        .collect())
}
