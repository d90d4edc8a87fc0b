//! `lifecycle admin`: the dashboard's operators.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context, bail};
use clap::Subcommand;
use lifecycle::domain::admin::Role;
use lifecycle::domain::credentials::hash_password;

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Read a password (stdin, or a prompt on a terminal) and print the `[[admin.operators]]`
    /// entry that holds only its argon2id hash. Add it to the configuration file.
    AddOperator {
        /// The name to sign in with: letters, digits, `-`, `_`, `.`, `@`.
        #[arg(long)]
        name: String,
        /// `operator` (reads and retries) or `viewer` (reads only).
        #[arg(long)]
        role: String,
    },
}

/// The shortest password accepted.
const MIN_PASSWORD_CHARS: usize = 12;

pub fn execute(command: AdminCommand) -> anyhow::Result<()> {
    match command {
        AdminCommand::AddOperator { name, role } => {
            let entry = operator_entry(&name, &role, &read_password()?)?;
            print!("{entry}");
            Ok(())
        }
    }
}

/// The configuration entry of an operator, checked.
pub fn operator_entry(name: &str, role: &str, password: &str) -> anyhow::Result<String> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
    {
        bail!("invalid --name {name:?}: use letters, digits, '-', '_', '.' and '@'");
    }
    let Some(role) = Role::parse(role) else {
        bail!("invalid --role {role:?}: use \"operator\" or \"viewer\"");
    };
    if password.chars().count() < MIN_PASSWORD_CHARS {
        bail!("the password must have at least {MIN_PASSWORD_CHARS} characters");
    }
    let hash = hash_password(password)?;
    Ok(format!(
        "[[admin.operators]]\nname = \"{name}\"\nrole = \"{}\"\npassword_hash = \"{hash}\"\n",
        role.as_str()
    ))
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
