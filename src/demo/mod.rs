//! `lifecycle demo`: a demo account on whatever backends are configured (the embedded
//! default needs no server), one salesperson deactivated through the queue, and what
//! changed.
//!
//! The CRM's own rows the demo (and the tests and benches) start from are in `crm_data`:
//! the service never writes them in production. `waiter` waits for a job to finish.

pub mod crm_data;
pub mod sweep_examples;
pub mod waiter;

use std::sync::Arc;
use std::time::Duration;

use lifecycle_jobs::{Actor, DeactivateSalesperson};

use crate::App;
use crate::queue::worker::{self, WorkerRunError};
use crate::queue::{EnqueueRequest, QueueError};
use crate::store::ledger::JobRecord;
use crate::store::records::{self, Footprint};
use crate::store::{StoreError, Tx};
use crm_data::{NewAccount, NewUser};
use waiter::wait_until_finished;

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Worker(#[from] WorkerRunError),
    #[error("the demo job did not finish within {0:?}")]
    Timeout(Duration),
}

/// The demo account's people.
#[derive(Clone, Copy, Debug)]
pub struct DemoAccount {
    pub account_id: i64,
    pub admin_id: i64,
    pub salesperson_id: i64,
}

/// The demo's result: the job as the ledger has it and the salesperson before and after.
#[derive(Debug)]
pub struct DemoReport {
    pub account: DemoAccount,
    pub job: JobRecord,
    pub before: Footprint,
    pub after: Footprint,
    pub audit_rows: usize,
}

/// Creates the demo account: an admin, two team leaders, a salesperson in Spain with
/// contacts, tasks and playbooks, licenses in Spain and Portugal and a Spanish phone
/// number; and the idle, exempt and warned people of `sweep_examples`.
pub async fn seed_account(
    tx: &mut Tx,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<DemoAccount, StoreError> {
    let account_id = crm_data::account(
        tx,
        &NewAccount {
            name: "Acme Iberia (demo)",
            time_zone: "Europe/Madrid",
            billing_anchor_day: 31,
            contacts_policy: "unassign",
        },
        now,
    )
    .await?;
    let admin_role = crm_data::role(tx, account_id, "Administrator", 100, true).await?;
    let manager_role = crm_data::role(tx, account_id, "Sales manager", 50, true).await?;
    let rep_role = crm_data::role(tx, account_id, "Sales representative", 10, false).await?;
    let person = |role_id, first_name, last_name, email, country| NewUser {
        account_id,
        role_id,
        first_name,
        last_name,
        email,
        country,
        status: "active",
    };
    let admin_id = crm_data::user(
        tx,
        &person(admin_role, "Alex", "Admin", "alex@acme.example", "ES"),
        now,
    )
    .await?;
    let north_lead = crm_data::user(
        tx,
        &person(manager_role, "Nora", "North", "nora@acme.example", "ES"),
        now,
    )
    .await?;
    let south_lead = crm_data::user(
        tx,
        &person(manager_role, "Sam", "South", "sam@acme.example", "PT"),
        now,
    )
    .await?;
    let salesperson_id = crm_data::user(
        tx,
        &person(rep_role, "Ana", "Garcia", "ana@acme.example", "ES"),
        now,
    )
    .await?;
    let colleague = crm_data::user(
        tx,
        &person(rep_role, "Luis", "Lopez", "luis@acme.example", "ES"),
        now,
    )
    .await?;

    let north = crm_data::team(tx, account_id, "North", north_lead, now).await?;
    let south = crm_data::team(tx, account_id, "South", south_lead, now).await?;
    crm_data::team_member(tx, north, salesperson_id, now).await?;
    crm_data::team_member(tx, south, colleague, now).await?;

    crm_data::license_pool(tx, account_id, "ES", 3).await?;
    crm_data::license_pool(tx, account_id, "PT", 2).await?;
    crm_data::license(tx, account_id, salesperson_id, "ES", now).await?;
    crm_data::license(tx, account_id, colleague, "ES", now).await?;
    crm_data::license(tx, account_id, south_lead, "PT", now).await?;
    crm_data::phone_number(tx, account_id, "ES", "+34 910 000 000", true).await?;

    for name in ["Inbound leads", "Renewals"] {
        let playbook = crm_data::playbook(tx, account_id, name).await?;
        crm_data::playbook_member(tx, playbook, salesperson_id, now).await?;
    }
    for name in ["Iberdrola", "Mercadona", "Telefonica"] {
        crm_data::contact(tx, account_id, Some(salesperson_id), name, now).await?;
    }
    for (title, state) in [
        ("Call back Mercadona", "created"),
        ("Send proposal to Iberdrola", "in_progress"),
        ("Onboard Telefonica", "completed"),
    ] {
        crm_data::task(tx, account_id, Some(salesperson_id), title, state, now).await?;
    }
    crm_data::opportunity(tx, account_id, salesperson_id, "Mercadona expansion", now).await?;
    sweep_examples::seed(tx, account_id, rep_role, now).await?;
    Ok(DemoAccount {
        account_id,
        admin_id,
        salesperson_id,
    })
}

/// Seeds the account, enqueues the deactivation, runs a worker until the job has finished
/// and reports what changed.
pub async fn run(app: Arc<App>) -> Result<DemoReport, DemoError> {
    let mut tx = app.store.begin().await?;
    let account = seed_account(&mut tx, app.clock.now()).await?;
    let before = records::footprint(&mut tx, account.salesperson_id)
        .await?
        .expect("the demo salesperson exists");
    tx.commit().await?;

    let job = DeactivateSalesperson {
        account_id: account.account_id,
        user_id: account.salesperson_id,
        actor: Actor::User(account.admin_id),
        reassign_contacts_to: None,
        requested_at: None,
    };
    let enqueued = app
        .queue
        .enqueue(EnqueueRequest::for_job(&job, None)?)
        .await?;

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(worker::run_until(app.clone(), 1, async move {
        let _ = stopped.await;
        Ok(())
    }));
    let record = wait_until_finished(&app, enqueued.id, Duration::from_secs(60)).await;
    let _ = stop.send(());
    worker.await.expect("the demo worker does not panic")?;
    let record = record?;

    let mut tx = app.store.begin().await?;
    let after = records::footprint(&mut tx, account.salesperson_id)
        .await?
        .expect("the demo salesperson exists");
    let audit_rows = crate::store::audit::for_job(&mut tx, enqueued.id)
        .await?
        .len();
    tx.commit().await?;
    Ok(DemoReport {
        account,
        job: record,
        before,
        after,
        audit_rows,
    })
}

impl DemoReport {
    /// The report as a short table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let job = &self.job;
        out.push_str(&format!(
            "DeactivateSalesperson job {} for user {} (account {}): {} after {} attempt(s){}\n\n",
            job.id,
            self.account.salesperson_id,
            self.account.account_id,
            job.state,
            job.attempts,
            job.last_error
                .as_deref()
                .map(|e| format!(", error: {e}"))
                .unwrap_or_default()
        ));
        let rows = [
            (
                "user status",
                self.before.status.clone(),
                self.after.status.clone(),
            ),
            (
                "salesperson license",
                self.before.license_state.clone().unwrap_or_default(),
                self.after.license_state.clone().unwrap_or_default(),
            ),
            (
                "playbooks",
                self.before.playbooks.to_string(),
                self.after.playbooks.to_string(),
            ),
            (
                "contacts assigned",
                self.before.contacts.to_string(),
                self.after.contacts.to_string(),
            ),
            (
                "open tasks assigned",
                self.before.open_tasks.to_string(),
                self.after.open_tasks.to_string(),
            ),
            (
                "completed tasks",
                self.before.completed_tasks.to_string(),
                self.after.completed_tasks.to_string(),
            ),
            (
                "opportunities owned",
                self.before.opportunities.to_string(),
                self.after.opportunities.to_string(),
            ),
        ];
        out.push_str(&format!("{:<22} {:>12} {:>12}\n", "", "before", "after"));
        for (what, before, after) in rows {
            out.push_str(&format!("{what:<22} {before:>12} {after:>12}\n"));
        }
        out.push_str(&format!("\naudit rows written: {}\n", self.audit_rows));
        out
    }
}
