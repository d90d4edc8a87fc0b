//! The demo account's people the nightly sweeps have something to say about, so that
//! `lifecycle sweep lock-idle --dry-run` right after `lifecycle demo` shows each verdict:
//! one idle long enough to be locked, one idle but a service user, one idle but on the
//! account's exempt list, and one whose lock is a few days off (a warning is due).

use chrono::{DateTime, Duration, Utc};

use super::crm_data::{self, NewUser};
use crate::store::{StoreError, Tx, execute};

pub async fn seed(
    tx: &mut Tx,
    account_id: i64,
    role_id: i64,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let people = [
        ("Ivo", "Idle", "ivo@acme.example", 120, false, false),
        ("Sync", "Service", "sync-bot@acme.example", 150, true, false),
        ("Eva", "Breakglass", "eva@acme.example", 100, false, true),
        ("Wanda", "Warned", "wanda@acme.example", 84, false, false),
    ];
    for (first_name, last_name, email, idle_days, service, exempt) in people {
        let created = now - Duration::days(400);
        let user = crm_data::user(
            tx,
            &NewUser {
                account_id,
                role_id,
                first_name,
                last_name,
                email,
                country: "ES",
                status: "active",
            },
            created,
        )
        .await?;
        execute!(
            tx,
            "UPDATE users SET last_activity_at = $2, is_service_account = $3 WHERE id = $1",
            user,
            now - Duration::days(idle_days),
            service
        )?;
        if exempt {
            execute!(
                tx,
                "INSERT INTO account_sweep_exemptions (account_id, user_id) VALUES ($1, $2)",
                account_id,
                user
            )?;
        }
    }
    Ok(())
}
