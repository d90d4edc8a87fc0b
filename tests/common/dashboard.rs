//! The dashboard's test fixture: a service with an operator and a viewer and a dead job
//! (`Dashboard`), its sign-in over plain HTTP, and a real headless Chromium driven over
//! WebDriver (`Browser`), shared by the dashboard's test files.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use lifecycle::config::Operator;
use lifecycle::domain::admin::Role;
use lifecycle::domain::credentials::hash_password;
use lifecycle::store::Store;
use lifecycle_jobs::{ActivateSalesperson, Actor};
use uuid::Uuid;

use super::http_client::{Answer, Server, request, serve};
use super::{Backend, TestEnv, World, seed_agent, seed_world};

pub const OPERATOR: (&str, &str) = ("ana", "correct horse battery");
pub const VIEWER: (&str, &str) = ("victor", "viewer only please");
pub const FAILURE_LIMIT: u32 = 3;
pub const SESSION_TTL_MINS: u32 = 30;

pub const LICENSES_OF_USER: &str =
    "SELECT COUNT(*) FROM salesperson_licenses WHERE user_id = $1 AND state = 'active'";

/// A service with an operator and a viewer, and a dead job: an activation refused because
/// the account had no free seat in Spain.
pub struct Dashboard {
    pub env: TestEnv,
    pub server: Server,
    pub world: World,
    pub salesperson: i64,
    pub dead_job: Uuid,
}

pub async fn dashboard(
    backend: Backend,
    adjust: impl FnOnce(&mut lifecycle::config::Settings),
) -> Dashboard {
    let operators = [(OPERATOR, Role::Operator), (VIEWER, Role::Viewer)]
        .map(|((name, password), role)| Operator {
            name: name.into(),
            role,
            password_hash: hash_password(password).unwrap(),
        })
        .to_vec();
    let mut env = TestEnv::start_with(backend, |settings| {
        settings.admin.operators = operators;
        settings.admin.login_failure_limit = FAILURE_LIMIT;
        settings.admin.session_ttl_mins = SESSION_TTL_MINS;
        adjust(settings);
    })
    .await;
    let world = seed_world(&env, 0).await;
    let salesperson = seed_agent(&env, &world, "Bruno", "es").await;
    let job = env
        .run(&ActivateSalesperson {
            account_id: world.account,
            user_id: salesperson,
            actor: Actor::User(world.admin),
            country: "ES".into(),
        })
        .await;
    assert_eq!(job.state, "dead", "no seat in ES: {job:?}");
    let server = serve(&env).await;
    Dashboard {
        env,
        server,
        world,
        salesperson,
        dead_job: job.id,
    }
}

impl Dashboard {
    pub async fn get(&self, path: &str, cookie: &str) -> Answer {
        request(self.server.port, "GET", path, &[("Cookie", cookie)], b"").await
    }

    pub async fn post(&self, path: &str, cookie: &str, form: &str) -> Answer {
        let headers = [
            ("Cookie", cookie),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ];
        request(self.server.port, "POST", path, &headers, form.as_bytes()).await
    }

    /// Signs in through the form as a browser does: the form's CSRF cookie and field, then
    /// the credentials. Returns the answer to the sign-in POST and the cookies to send next.
    pub async fn sign_in(&self, (name, password): (&str, &str)) -> (Answer, String) {
        let form = self.get("/admin/login", "").await;
        assert_eq!(form.status, 200, "{form:?}");
        let login_cookie = set_cookie(&form, "lifecycle_admin_login").expect("a CSRF cookie");
        let csrf = hidden_csrf(&form.body);
        let body = format!(
            "name={}&password={}&csrf={csrf}",
            encode(name),
            encode(password)
        );
        let answer = self.post("/admin/login", &login_cookie, &body).await;
        let cookies = match set_cookie(&answer, "lifecycle_admin") {
            Some(session) => format!("{login_cookie}; {session}"),
            None => login_cookie,
        };
        (answer, cookies)
    }

    /// A signed-in session's cookies and the CSRF token of its forms.
    pub async fn session(&self, who: (&str, &str)) -> (String, String) {
        let (answer, cookies) = self.sign_in(who).await;
        assert_eq!(answer.status, 303, "signed in: {answer:?}");
        let page = self.get("/admin", &cookies).await;
        assert_eq!(page.status, 200, "{page:?}");
        (cookies, hidden_csrf(&page.body))
    }

    pub async fn set_seats_in_spain(&self, seats: i32) {
        let sql = "UPDATE license_pools SET seats = $1 WHERE account_id = $2 AND country = 'ES'";
        match self.env.store() {
            Store::Postgres(pool) => sqlx::query(sql)
                .bind(seats)
                .bind(self.world.account)
                .execute(pool)
                .await
                .map(drop),
            Store::Sqlite(pool) => sqlx::query(sql)
                .bind(seats)
                .bind(self.world.account)
                .execute(pool)
                .await
                .map(drop),
        }
        .unwrap();
    }

    pub async fn job_state(&self, id: Uuid) -> String {
        lifecycle::store::ledger::get(self.env.store(), id)
            .await
            .unwrap()
            .unwrap()
            .state
    }
}

/// `name=value` of the cookie the answer sets, if it sets one with a value.
pub fn set_cookie(answer: &Answer, name: &str) -> Option<String> {
    answer
        .headers
        .lines()
        .filter_map(|line| {
            line.strip_prefix("set-cookie: ")
                .or_else(|| line.strip_prefix("Set-Cookie: "))
        })
        .filter_map(|cookie| cookie.split(';').next())
        .find(|pair| {
            pair.split_once('=')
                .is_some_and(|(key, value)| key == name && !value.is_empty())
        })
        .map(str::to_string)
}

pub fn set_cookie_line(answer: &Answer, name: &str) -> String {
    answer
        .headers
        .lines()
        .find(|line| {
            line.to_ascii_lowercase()
                .starts_with(&format!("set-cookie: {name}="))
        })
        .unwrap_or_else(|| panic!("no {name} cookie: {answer:?}"))
        .to_string()
}

pub fn hidden_csrf(page: &str) -> String {
    let start = page.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    page[start..start + page[start..].find('"').unwrap()].to_string()
}

pub fn encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

// --- In a real browser ---------------------------------------------------------------------

/// Debian's chromedriver on a free port, and a WebDriver session with headless Chromium;
/// both stopped when dropped.
pub struct Browser {
    pub client: Client,
    pub driver: Child,
    pub _profile: tempfile::TempDir,
}

impl Browser {
    pub async fn start() -> Browser {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian's chromium-driver; .ci/run installs it)");
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--disable-background-networking",
                         "--disable-component-update", "--no-first-run",
                         "--window-size=1280,900",
                         format!("--user-data-dir={}", profile.path().display())]
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a WebDriver session with headless Chromium");
        Browser {
            client,
            driver,
            _profile: profile,
        }
    }

    pub async fn text(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|error| panic!("no {css}: {error}"))
            .click()
            .await
            .unwrap();
    }

    pub async fn sign_in(&self, base: &str, (name, password): (&str, &str)) {
        self.client
            .goto(&format!("{base}/admin/login"))
            .await
            .unwrap();
        self.client
            .find(Locator::Css("#name"))
            .await
            .unwrap()
            .send_keys(name)
            .await
            .unwrap();
        self.client
            .find(Locator::Css("#password"))
            .await
            .unwrap()
            .send_keys(password)
            .await
            .unwrap();
        self.client
            .find(Locator::Css("#sign-in"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        self.client
            .wait()
            .for_element(Locator::Css("#counts"))
            .await
            .unwrap();
    }

    /// Saves a PNG of the page to `$DASHBOARD_SCREENSHOTS/<name>.png` when that is set.
    pub async fn screenshot(&self, name: &str) {
        if let Ok(folder) = std::env::var("DASHBOARD_SCREENSHOTS") {
            let png = self.client.screenshot().await.unwrap();
            std::fs::write(format!("{folder}/{name}.png"), png).unwrap();
        }
    }

    /// Ends the WebDriver session (Chromium quits); the driver stops on drop.
    pub async fn stop(self) {
        let _ = self.client.clone().close().await;
    }
}

/// Also when a test fails half-way: no chromedriver outlives its test.
impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
