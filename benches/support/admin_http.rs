//! The dashboard from outside: an operator and a Prometheus token added to a configuration
//! file as an administrator adds them (`lifecycle admin add-operator`, a `[[http.tokens]]`
//! entry with its SHA-256), the sign-in form (CSRF cookie and field, then the POST) and
//! requests over a plain socket, timed from the first byte written to the last read.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::Digest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const OPERATOR: &str = "bench-operator";
pub const PASSWORD: &str = "benchmarks measure twice";
pub const METRICS_TOKEN: &str = "bench-prometheus-token-0123456789abcdef";

/// `config/production.toml` with an operator (hashed by `lifecycle admin add-operator`)
/// and a token that may read `/metrics`, written to `folder`. Returns its path.
pub fn production_config_with_operator(folder: &Path) -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut config = std::fs::read_to_string(manifest.join("config/production.toml"))
        .expect("config/production.toml");
    let operator = super::cli::lifecycle(
        &[
            "admin",
            "add-operator",
            "--name",
            OPERATOR,
            "--role",
            "operator",
        ],
        &[],
        None,
        Some(&format!("{PASSWORD}\n")),
    );
    let digest = hex(&sha2::Sha256::digest(METRICS_TOKEN.as_bytes()));
    config.push_str(&format!(
        "\n{operator}\n[[http.tokens]]\nname = \"bench-prometheus\"\nsha256 = \"{digest}\"\n\
         kinds = []\nmetrics = true\n"
    ));
    let path = folder.join("d1.toml");
    std::fs::write(&path, config).expect("write the configuration");
    path
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// An answer: status, head, body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Answer {
    /// `name=value` of the cookie it sets, if any.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.head
            .lines()
            .filter(|line| line.to_ascii_lowercase().starts_with("set-cookie: "))
            .filter_map(|line| line[12..].split(';').next())
            .find(|pair| {
                pair.split_once('=')
                    .is_some_and(|(key, value)| key == name && !value.is_empty())
            })
            .map(str::to_string)
    }

    /// The value of the form's hidden CSRF field.
    pub fn csrf(&self) -> String {
        let start = self
            .body
            .find("name=\"csrf\" value=\"")
            .unwrap_or_else(|| panic!("a CSRF field: {self:?}"))
            + 19;
        let end = start + self.body[start..].find('"').expect("end of the field");
        self.body[start..end].to_string()
    }
}

/// One request on a fresh connection (`Connection: close`); the answer and its time.
pub async fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (Answer, Duration) {
    let started = Instant::now();
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let mut text = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    text.push_str(body);
    stream.write_all(text.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read");
    let took = started.elapsed();
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").expect("a complete answer");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    (
        Answer {
            status,
            head: head.to_string(),
            body: body.to_string(),
        },
        took,
    )
}

/// Signs in as the operator through the form; returns the cookies a browser would send.
/// The session cookie is `Secure` on the production configuration: sent here over plain
/// HTTP by hand, as the TLS proxy in front would pass it.
pub async fn sign_in(port: u16) -> String {
    let (form, _) = request(port, "GET", "/admin/login", &[], "").await;
    assert_eq!(form.status, 200, "the sign-in form: {form:?}");
    let login = form
        .cookie("lifecycle_admin_login")
        .expect("the form's CSRF cookie");
    let body = format!(
        "name={OPERATOR}&password={}&csrf={}",
        PASSWORD.replace(' ', "+"),
        form.csrf()
    );
    let headers = [
        ("Cookie", login.as_str()),
        ("Content-Type", "application/x-www-form-urlencoded"),
    ];
    let (answer, _) = request(port, "POST", "/admin/login", &headers, &body).await;
    assert_eq!(answer.status, 303, "signed in: {answer:?}");
    let session = answer.cookie("lifecycle_admin").expect("a session cookie");
    format!("{login}; {session}")
}

/// `count` GETs of `path` with `headers`, one after the other; each must answer 200 and
/// contain `expect`. Returns the times in milliseconds.
pub async fn time_gets(
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
    expect: &str,
    count: usize,
) -> Vec<f64> {
    let mut times = Vec::with_capacity(count);
    for _ in 0..count {
        let (answer, took) = request(port, "GET", path, headers, "").await;
        assert_eq!(answer.status, 200, "GET {path}: {answer:?}");
        assert!(
            answer.body.contains(expect),
            "GET {path} should show {expect:?}"
        );
        times.push(took.as_secs_f64() * 1000.0);
    }
    times
}
