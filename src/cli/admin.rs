//! `lifecycle admin`: the dashboard's operators, printed as a configuration entry or kept
//! in the database (`--store`), and removed from it.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context, bail};
use clap::Subcommand;
use lifecycle::App;
use lifecycle::clock::Clock;
use lifecycle::config::{Operator, Settings};
use lifecycle::domain::admin::Role;
use lifecycle::domain::credentials::hash_password;
use lifecycle::store::admin_operators;

use super::UsageError;

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Read a password (stdin, or a prompt on a terminal) and print the `[[admin.operators]]`
    /// entry that holds only its argon2id hash (add it to the configuration file), or with
    /// `--store` keep the operator in the database.
    AddOperator {
        /// The name to sign in with: letters, digits, `-`, `_`, `.`, `@`.
        #[arg(long)]
        name: String,
        /// `operator` (reads and acts) or `viewer` (reads only).
        #[arg(long)]
        role: String,
        /// Keep the operator in the database (`admin_operators`) instead of printing an
        /// entry: the service signs them in without a restart.
        #[arg(long)]
        store: bool,
    },
    /// Remove an operator kept in the database; their sessions end at once.
    RemoveOperator {
        #[arg(long)]
        name: String,
    },
}

/// The shortest password accepted.
const MIN_PASSWORD_CHARS: usize = 12;

pub async fn execute(settings: Settings, command: AdminCommand) -> anyhow::Result<()> {
    match command {
        AdminCommand::AddOperator { name, role, store } => {
            // The arguments are checked before the password is asked for.
            let role = checked(&name, &role)?;
            let operator = operator(&name, role, &read_password()?)?;
            if !store {
                print!("{}", entry(&operator));
                return Ok(());
            }
            if settings.admin.operator(&name).is_some() {
                return Err(UsageError(format!(
                    "invalid --name {name:?}: the configuration file lists this operator already"
                ))
                .into());
            }
            let app = App::start(settings, Clock::System).await?;
            let added = admin_operators::insert(&app.store, &operator, app.clock.now_ms()).await;
            app.store.close().await;
            if !added? {
                bail!("an operator named {name:?} is in the database already");
            }
            eprintln!("operator {name:?} ({}) stored", role.as_str());
            Ok(())
        }
        AdminCommand::RemoveOperator { name } => {
            let app = App::start(settings, Clock::System).await?;
            let removed = admin_operators::remove(&app.store, &name).await;
            app.store.close().await;
            if !removed? {
                bail!(
                    "no operator named {name:?} in the database (one in the configuration file is \
                     removed by deleting its entry)"
                );
            }
            eprintln!("operator {name:?} removed; their sessions ended");
            Ok(())
        }
    }
}

/// The role, once the name and the role are valid.
fn checked(name: &str, role: &str) -> Result<Role, UsageError> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
    {
        return Err(UsageError(format!(
            "invalid --name {name:?}: use letters, digits, '-', '_', '.' and '@'"
        )));
    }
    Role::parse(role).ok_or_else(|| {
        UsageError(format!(
            "invalid --role {role:?}: use \"operator\" or \"viewer\""
        ))
    })
}

/// The operator, the password checked and hashed.
fn operator(name: &str, role: Role, password: &str) -> anyhow::Result<Operator> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(UsageError(format!(
            "the password must have at least {MIN_PASSWORD_CHARS} characters"
        ))
        .into());
    }
    Ok(Operator {
        name: name.to_string(),
        role,
        password_hash: hash_password(password)?,
    })
}

/// The configuration entry of an operator.
fn entry(operator: &Operator) -> String {
    format!(
        "[[admin.operators]]\nname = \"{}\"\nrole = \"{}\"\npassword_hash = \"{}\"\n",
        operator.name,
        operator.role.as_str(),
        operator.password_hash
    )
}

/// One line from stdin; on a terminal, after a prompt on stderr and without echo (`stty`).
/// The line ending is not part of the password.
fn read_password() -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    let terminal = stdin.is_terminal();
    let stty = |setting: &str| {
        let _ = std::process::Command::new("stty")
            .arg(setting)
            .stdin(std::process::Stdio::inherit())
            .status();
    };
    if terminal {
        eprint!("password (at least {MIN_PASSWORD_CHARS} characters): ");
        std::io::stderr().flush().ok();
        stty("-echo");
    }
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if terminal {
        stty("echo");
        eprintln!();
    }
    read.context("cannot read the password from stdin")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}
