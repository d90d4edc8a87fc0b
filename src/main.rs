//! The `lifecycle` command line: run the workers, migrate, enqueue, inspect jobs, demo.

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use lifecycle::clock::Clock;
use lifecycle::config::{ConfigError, LogFormat, Settings};
use lifecycle::queue::{EnqueueRequest, IdempotencyKey, worker};
use lifecycle::{App, StartError, demo, http};
use lifecycle_jobs::{Actor, DeactivateSalesperson, DeactivateUser, Job, ReassignRecords};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "lifecycle",
    version,
    about = "Account-lifecycle worker and scheduler of a multi-tenant sales CRM"
)]
struct Cli {
    /// A TOML file layered over config/default.toml.
    #[arg(long, global = true, env = "LIFECYCLE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the workers and the HTTP server until SIGINT/SIGTERM.
    Run {
        /// Worker loops in this process (each runs `queue.concurrency` jobs at once); 0
        /// serves the HTTP API alone, for a fleet that scales accepting and running apart.
        #[arg(long, default_value_t = 1)]
        workers: usize,
    },
    /// Create or update the database schema.
    Migrate,
    /// Queue a job.
    Enqueue {
        #[command(subcommand)]
        job: EnqueueCommand,
        /// The same key twice enqueues once; scoped to the job's account, like the keys
        /// sent over HTTP. Used with another job it is refused, and nothing is enqueued.
        #[arg(long, global = true)]
        idempotency_key: Option<String>,
    },
    /// Service tokens of the HTTP API.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Inspect the job ledger and act on it: list, show, retry, discard, pause, resume.
    Jobs {
        #[command(subcommand)]
        command: cli::jobs::JobsCommand,
    },
    /// The dashboard's operators.
    Admin {
        #[command(subcommand)]
        command: cli::admin::AdminCommand,
    },
    /// What happened to a user: their jobs, failed attempts and audit rows, newest first.
    History(cli::history::HistoryArgs),
    /// Create a demo account, deactivate a salesperson through the queue, show what changed.
    Demo,
    /// Each sweep's cron expression, time zone, next firing and last run.
    Schedule,
    /// Preview (--dry-run) or run a sweep: lock-idle, expire-passwords, release-licenses,
    /// prune.
    Sweep {
        #[command(subcommand)]
        sweep: cli::sweep::SweepCommand,
    },
}

#[derive(Subcommand)]
enum EnqueueCommand {
    /// Remove a user's salesperson role; the user keeps platform access.
    DeactivateSalesperson {
        #[arg(long)]
        account: i64,
        #[arg(long)]
        user: i64,
        /// A user id, or "system".
        #[arg(long)]
        actor: String,
        /// Give the contacts to this active user instead of applying the account policy.
        #[arg(long)]
        reassign_contacts_to: Option<i64>,
    },
    /// Deactivate a user: no more logins, tokens revoked, records handed over.
    DeactivateUser {
        #[arg(long)]
        account: i64,
        #[arg(long)]
        user: i64,
        /// A user id, or "system".
        #[arg(long)]
        actor: String,
        /// The active user who receives the opportunities (and contacts); default: the
        /// leader of the user's first team, else of the account's first team.
        #[arg(long)]
        reassign_to: Option<i64>,
        /// Keep the email off the blocklist so a purchase can reactivate the user.
        #[arg(long)]
        allow_reactivation_on_purchase: bool,
    },
    /// Move contacts, open tasks and opportunities from one user to an active one.
    ReassignRecords {
        #[arg(long)]
        account: i64,
        #[arg(long)]
        from: i64,
        #[arg(long)]
        to: i64,
        /// A user id, or "system".
        #[arg(long)]
        actor: String,
    },
    /// Any job kind, its payload as JSON (the schemas are in /v1/openapi.json):
    /// `enqueue json create-user '{"account_id":1,...}'`.
    Json {
        /// The kind: its slug (`create-user`) or name (`user::create`).
        kind: String,
        /// The payload, a JSON object.
        payload: String,
    },
}

impl EnqueueCommand {
    /// The job, validated, as the queue takes it.
    fn into_request(self, idempotency_key: Option<String>) -> anyhow::Result<EnqueueRequest> {
        // An operator's key is a producer's key: scoped to the account, never internal.
        let idempotency_key = idempotency_key.map(IdempotencyKey::Caller);
        fn checked<J: Job>(job: J, key: Option<IdempotencyKey>) -> anyhow::Result<EnqueueRequest> {
            job.validate()?;
            Ok(EnqueueRequest::for_job(&job, key)?)
        }
        match self {
            EnqueueCommand::DeactivateSalesperson {
                account,
                user,
                actor,
                reassign_contacts_to,
            } => checked(
                DeactivateSalesperson {
                    account_id: account,
                    user_id: user,
                    actor: actor.parse::<Actor>()?,
                    reassign_contacts_to,
                    requested_at: None,
                },
                idempotency_key,
            ),
            EnqueueCommand::DeactivateUser {
                account,
                user,
                actor,
                reassign_to,
                allow_reactivation_on_purchase,
            } => checked(
                DeactivateUser {
                    account_id: account,
                    user_id: user,
                    actor: actor.parse::<Actor>()?,
                    reassign_to,
                    allow_reactivation_on_purchase,
                    requested_at: None,
                },
                idempotency_key,
            ),
            EnqueueCommand::ReassignRecords {
                account,
                from,
                to,
                actor,
            } => checked(
                ReassignRecords {
                    account_id: account,
                    from_user_id: from,
                    to_user_id: to,
                    actor: actor.parse::<Actor>()?,
                },
                idempotency_key,
            ),
            EnqueueCommand::Json { kind, payload } => {
                // Validated and its secrets sealed, as the HTTP API does.
                let job = lifecycle_jobs::validate_json(&kind, &payload)?;
                job.check_requested_at(chrono::Utc::now())?;
                Ok(EnqueueRequest {
                    kind: job.name,
                    account_id: Some(job.account_id),
                    payload: job.payload,
                    idempotency_key,
                    run_at_ms: None,
                })
            }
        }
    }
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Mint a random token: prints it once, and the `[[http.tokens]]` entry that holds only
    /// its digest. Give the token to the service; keep it nowhere else.
    New {
        /// Who will hold it (`auth-service`): letters, digits, `-`, `_`, `.`.
        #[arg(long)]
        name: String,
    },
}

/// The token and the configuration entry `token new` prints.
fn new_token(name: &str) -> anyhow::Result<String> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        bail!("invalid --name {name:?}: use letters, digits, '-', '_' and '.'");
    }
    let (token, digest) = http::api::new_service_token();
    Ok(format!(
        "token for {name} (shown once: hand it to the service, store it nowhere else):\n\
         \n    {token}\n\n\
         its entry for the configuration file (only the digest; grant what it needs):\n\
         \n[[http.tokens]]\n\
         name = \"{name}\"\n\
         sha256 = \"{digest}\"\n\
         kinds = []              # slugs or names it may enqueue, e.g. [\"record-login\"]\n\
         system = false          # may it send \"actor\": \"system\"?\n\
         # accounts = [1, 2]     # the accounts it may act for; absent: every account\n\
         check_tokens = false    # may it call POST /v1/tokens/check?\n",
        token = token.expose()
    ))
}

/// Exit codes: 0 success; 1 a failure at run time (a database, Redis or port that cannot be
/// reached, a job refused); 2 a usage or configuration error (clap uses 2 for bad arguments
/// too). Every failure is one line on stderr, `error: ...`, without a backtrace: the causes
/// are in the message, once.
#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match execute(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", one_line(&error));
            ExitCode::from(exit_code(&error))
        }
    }
}

/// The error and its causes on one line, each cause only if the text so far does not already
/// say it (our errors include their cause in their message; a `context` does not).
fn one_line(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let message = cause.to_string();
        if text.contains(&message) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&message);
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn exit_code(error: &anyhow::Error) -> u8 {
    let configuration = error.chain().any(|cause| {
        cause.is::<ConfigError>()
            || cause.is::<cli::UsageError>()
            || cause
                .downcast_ref::<StartError>()
                .is_some_and(StartError::is_configuration)
    });
    if configuration { 2 } else { 1 }
}

async fn execute(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::load(cli.config.as_deref())?;
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new(&settings.log.filter)),
        )
        .with_writer(std::io::stderr);
    match settings.log.format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }

    match cli.command {
        Command::Migrate => {
            let app = App::start(settings, Clock::System).await?;
            app.store.close().await;
            eprintln!("migrations applied");
        }
        Command::Run { workers } => run(settings, workers).await?,
        Command::Enqueue {
            job,
            idempotency_key,
        } => {
            let request = job.into_request(idempotency_key.clone())?;
            let app = App::start(settings, Clock::System).await?;
            // A key holding another job is an error (non-zero exit), naming that job.
            let enqueued = app.queue.enqueue(request).await?;
            if let (false, Some(key)) = (enqueued.created, &idempotency_key) {
                eprintln!(
                    "idempotency key {key} already used: job {}, not enqueued again",
                    enqueued.id
                );
            }
            println!("{}", enqueued.id);
        }
        Command::Token {
            command: TokenCommand::New { name },
        } => print!("{}", new_token(&name)?),
        Command::Jobs { command } => {
            let app = App::start(settings, Clock::System).await?;
            cli::jobs::run(&app, command).await?;
        }
        Command::History(args) => {
            let app = App::start(settings, Clock::System).await?;
            cli::history::run(&app, args).await?;
        }
        Command::Admin { command } => cli::admin::execute(settings, command).await?,
        Command::Demo => {
            // The demo plays its own scenario: a sweep fired by its worker (the catch-up of
            // last night's tick) would change what `sweep --dry-run` shows afterwards.
            let mut settings = settings;
            lifecycle::schedule::unschedule_all(&mut settings.schedule);
            let app = App::start(settings, Clock::System).await?;
            let report = demo::run(app.clone()).await?;
            print!("{}", report.table());
            app.store.close().await;
        }
        Command::Schedule => {
            let app = App::start(settings, Clock::System).await?;
            print!("{}", cli::schedule::table(&app, chrono::Utc::now()).await?);
            app.store.close().await;
        }
        Command::Sweep { sweep } => cli::sweep::execute(settings, sweep).await?,
    }
    Ok(())
}

async fn run(settings: Settings, workers: usize) -> anyhow::Result<()> {
    // Installed first: a SIGTERM during start-up stops the service cleanly once it is up.
    let shutdown = worker::shutdown_signal();
    let bind = settings.http.bind.clone();
    let app = App::start_service(settings, Clock::System).await?;
    let listener = tokio::net::TcpListener::bind(&bind)
        .await
        .with_context(|| format!("cannot listen on {bind}"))?;
    tracing::info!(%bind, "listening");
    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(http::serve(Arc::clone(&app), listener, async move {
        let _ = http_stopped.await;
    }));
    if workers == 0 {
        tracing::info!("no workers: serving the API only");
        shutdown.await?;
    } else {
        worker::run_until(app.clone(), workers, shutdown).await?;
    }
    let _ = stop_http.send(());
    server.await??;
    app.store.close().await;
    Ok(())
}
