//! `lifecycle run` as a child process of a test, on the test's database, queue namespace and
//! SMTP sink, killed however the test ends.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lifecycle::config::QueueBackend;

use super::TestEnv;

/// A running `lifecycle run`.
pub struct Service {
    pub child: Child,
    pub port: u16,
}

impl Service {
    /// Starts `lifecycle run` with the test's settings plus `extra` variables; its output goes
    /// to `log` (or nowhere). Waits until its HTTP port answers.
    pub async fn start(env: &TestEnv, extra: &[(&str, &str)], log: Option<&Path>) -> Service {
        Self::start_with_args(env, &[], extra, log).await
    }

    /// [`Service::start`] with arguments after `run` (`--workers 0`).
    pub async fn start_with_args(
        env: &TestEnv,
        args: &[&str],
        extra: &[(&str, &str)],
        log: Option<&Path>,
    ) -> Service {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let (stdout, stderr) = match log {
            Some(path) => {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .expect("log file");
                (Stdio::from(file.try_clone().unwrap()), Stdio::from(file))
            }
            None => (Stdio::null(), Stdio::inherit()),
        };
        let mut command = lifecycle_command(env);
        command
            .arg("run")
            .args(args)
            .env("LIFECYCLE__HTTP__BIND", format!("127.0.0.1:{port}"))
            .stdout(stdout)
            .stderr(stderr);
        for (name, value) in extra {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("lifecycle run starts");
        let started = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the service did not start"
            );
            assert!(child.try_wait().unwrap().is_none(), "the service exited");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Service { child, port }
    }

    /// `kill -9`: no chance to finish or put anything back.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for the exit (30 s at most, else the test fails).
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the service did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The variable of `[schedule.<sweep>] <key>`: `LIFECYCLE__SCHEDULE__PRUNE__CRON`.
pub fn schedule_variable(sweep: &str, key: &str) -> String {
    format!(
        "LIFECYCLE__SCHEDULE__{}__{}",
        sweep.to_uppercase(),
        key.to_uppercase()
    )
}

/// The `lifecycle` binary set up for the test's database, queue namespace and SMTP sink,
/// with every sweep unscheduled (a test schedules one with [`schedule_variable`]).
pub fn lifecycle_command(env: &TestEnv) -> Command {
    let settings = &env.app.settings;
    let backend = match settings.queue.backend {
        QueueBackend::Database => "database",
        QueueBackend::Redis => "redis",
    };
    let mut command = Command::new(env!("CARGO_BIN_EXE_lifecycle"));
    command
        .env_remove("LIFECYCLE_ENV")
        .env("DATABASE_URL", settings.database.url.expose())
        .env("REDIS_URL", settings.queue.redis_url.expose())
        .env("SMTP_URL", env.sink.url())
        .env("LIFECYCLE__MAIL__TRANSPORT", "smtp")
        .env("LIFECYCLE__QUEUE__BACKEND", backend)
        .env("LIFECYCLE__QUEUE__NAMESPACE", &settings.queue.namespace)
        .env(
            "LIFECYCLE__QUEUE__EVENTS_STREAM",
            &settings.queue.events_stream,
        )
        .env("LIFECYCLE__QUEUE__POLL_INTERVAL_MS", "20")
        .env(
            "RUST_LOG",
            std::env::var("CHILD_LOG").unwrap_or_else(|_| "warn".into()),
        );
    for sweep in lifecycle::schedule::SWEEPS {
        command.env(schedule_variable(sweep.name, "cron"), "");
    }
    command
}
