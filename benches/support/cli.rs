//! The `lifecycle` command run as an operator runs it, and the machine's load beside a
//! figure (the benchmarks run on machines busy with other work).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// Runs the `lifecycle` command (`args`, with `vars`, in `cwd` or the crate's folder, `stdin`
/// written to it) as an operator does; panics unless it succeeds. Returns its stdout.
pub fn lifecycle(
    args: &[&str],
    vars: &[(&str, String)],
    cwd: Option<&Path>,
    stdin: Option<&str>,
) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_lifecycle"));
    command
        .args(args)
        .env_remove("LIFECYCLE_ENV")
        .env_remove("RUST_LOG")
        .current_dir(cwd.unwrap_or(Path::new(env!("CARGO_MANIFEST_DIR"))))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in vars {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("lifecycle starts");
    if let Some(mut input) = child.stdin.take() {
        input
            .write_all(stdin.unwrap_or_default().as_bytes())
            .expect("write stdin");
    }
    let output = child.wait_with_output().expect("lifecycle finishes");
    assert!(
        output.status.success(),
        "lifecycle {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The machine's load averages (1, 5, 15 minutes) as `/proc/loadavg` reports them.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}
