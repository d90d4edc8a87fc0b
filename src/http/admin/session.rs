//! Who is signed in: the session cookie (its token held in the database only as a digest),
//! the CSRF token every form carries (derived from the session's token, so it is stored
//! nowhere), sign-in with its limits, and sign-out.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use sha2::{Digest, Sha256};

use super::{AdminError, render};
use crate::App;
use crate::config::Operator;
use crate::domain::admin::{Role, failure_delay_ms, sign_in_allowed};
use crate::domain::credentials::{new_secret, verify_password};
use crate::store::{StoreError, admin_operators, admin_sessions};

/// The session cookie; scoped to `/admin`.
pub const SESSION_COOKIE: &str = "lifecycle_admin";
/// Before a session exists, the sign-in form's CSRF token is this cookie's value
/// (double submit: a page on another site can neither read nor set it).
const LOGIN_CSRF_COOKIE: &str = "lifecycle_admin_login";

/// A signed-in operator, for a handler that needs one.
#[derive(Clone, Debug)]
pub struct Signed {
    pub name: String,
    pub role: Role,
    /// The CSRF token of this session, for the forms of the page and the check of a POST.
    pub csrf: String,
    token_sha256: String,
}

impl Signed {
    /// Refuses a POST whose form does not carry this session's CSRF token.
    pub fn check_csrf(&self, sent: &str) -> Result<(), AdminError> {
        if constant_time_eq(sent.as_bytes(), self.csrf.as_bytes()) {
            Ok(())
        } else {
            Err(AdminError::Csrf)
        }
    }

    /// Refuses an action to a viewer.
    pub fn may_act(&self) -> Result<(), AdminError> {
        if self.role.may_act() {
            Ok(())
        } else {
            Err(AdminError::ReadOnly)
        }
    }
}

impl FromRequestParts<Arc<App>> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Response> {
        let refuse = || {
            if parts.method == Method::GET || parts.method == Method::HEAD {
                Redirect::to("/admin/login").into_response()
            } else {
                AdminError::SignedOut.into_response()
            }
        };
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(refuse());
        };
        let token_sha256 = sha256_hex(&token);
        let operator = admin_sessions::operator_of(&app.store, &token_sha256, app.clock.now_ms())
            .await
            .map_err(|error| AdminError::from(error).into_response())?;
        // An operator removed from the configuration or the table loses their sessions at
        // once: each request looks them up again.
        let operator = match operator {
            Some(name) => find_operator(app, &name)
                .await
                .map_err(|error| AdminError::from(error).into_response())?,
            None => None,
        };
        let Some(operator) = operator else {
            return Err(refuse());
        };
        Ok(Signed {
            name: operator.name,
            role: operator.role,
            csrf: sha256_hex(&format!("csrf:{token}")),
            token_sha256,
        })
    }
}

#[derive(serde::Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
}

/// The sign-in form, with a fresh CSRF cookie when the browser has none.
pub async fn sign_in_page(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    sign_in_answer(&app, &headers, StatusCode::OK, None)
}

fn sign_in_answer(
    app: &App,
    headers: &HeaderMap,
    status: StatusCode,
    error: Option<&str>,
) -> Response {
    let csrf = cookie(headers, LOGIN_CSRF_COOKIE).unwrap_or_else(new_secret);
    let page = render(
        "login.html",
        minijinja::context! { csrf => &csrf, error => error },
    );
    let mut response = (status, page).into_response();
    set_cookie(
        &mut response,
        app,
        LOGIN_CSRF_COOKIE,
        &csrf,
        app.settings.admin.session_ttl_mins,
    );
    response
}

pub async fn sign_in(
    State(app): State<Arc<App>>,
    address: ClientAddress,
    headers: HeaderMap,
    axum::Form(form): axum::Form<SignInForm>,
) -> Result<Response, AdminError> {
    let expected = cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or_default();
    if expected.is_empty() || !constant_time_eq(form.csrf.as_bytes(), expected.as_bytes()) {
        return Err(AdminError::Csrf);
    }
    let settings = &app.settings.admin;
    let now_ms = app.clock.now_ms();
    let window_start = now_ms - i64::from(settings.login_failure_window_mins) * 60_000;
    let mut recent = 0;
    for (scope, subject) in [("name", form.name.as_str()), ("address", &address.0)] {
        let failures =
            admin_sessions::failures_since(&app.store, scope, subject, window_start).await?;
        if !sign_in_allowed(failures, settings.login_failure_limit) {
            return Err(AdminError::TooManyFailures(
                settings.login_failure_window_mins,
            ));
        }
        recent = recent.max(failures);
    }
    let known = find_operator(&app, &form.name).await?;
    let Some(operator) = authenticate(known.as_ref(), &form.password) else {
        admin_sessions::record_failure(&app.store, &form.name, &address.0, now_ms, window_start)
            .await?;
        tracing::warn!(address = %address.0, "dashboard sign-in refused");
        tokio::time::sleep(std::time::Duration::from_millis(failure_delay_ms(
            recent + 1,
        )))
        .await;
        return Ok(sign_in_answer(
            &app,
            &headers,
            StatusCode::UNAUTHORIZED,
            Some("Wrong name or password."),
        ));
    };
    let token = new_secret();
    let ttl_mins = settings.session_ttl_mins;
    admin_sessions::create(
        &app.store,
        &sha256_hex(&token),
        &operator.name,
        now_ms,
        now_ms + i64::from(ttl_mins) * 60_000,
    )
    .await?;
    tracing::info!(operator = %operator.name, "dashboard sign-in");
    let mut response = Redirect::to("/admin").into_response();
    set_cookie(&mut response, &app, SESSION_COOKIE, &token, ttl_mins);
    Ok(response)
}

/// The operator of that name: from the configuration first, then from the database
/// (`lifecycle admin add-operator --store`).
pub async fn find_operator(app: &App, name: &str) -> Result<Option<Operator>, StoreError> {
    if let Some(operator) = app.settings.admin.operator(name) {
        return Ok(Some(operator.clone()));
    }
    admin_operators::find(&app.store, name).await
}

/// The operator whose password this is; the hash is checked even for an unknown name, so
/// the answer takes as long either way.
fn authenticate<'a>(operator: Option<&'a Operator>, password: &str) -> Option<&'a Operator> {
    // A real hash of nothing anyone knows: verifying against it costs what a real one does.
    static UNKNOWN: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        crate::domain::credentials::hash_password(&new_secret()).unwrap_or_default()
    });
    let hash = operator.map_or(UNKNOWN.as_str(), |operator| operator.password_hash.as_str());
    let matches = verify_password(password, hash);
    operator.filter(|_| matches)
}

#[derive(serde::Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    pub csrf: String,
}

pub async fn sign_out(
    State(app): State<Arc<App>>,
    signed: Signed,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Result<Response, AdminError> {
    signed.check_csrf(&form.csrf)?;
    admin_sessions::delete(&app.store, &signed.token_sha256).await?;
    let mut response = Redirect::to("/admin/login").into_response();
    set_cookie(&mut response, &app, SESSION_COOKIE, "", 0);
    Ok(response)
}

/// The client's address, for the per-address limit of failed sign-ins.
pub struct ClientAddress(String);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let address = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or_else(|| "unknown".to_string(), |info| info.0.ip().to_string());
        Ok(ClientAddress(address))
    }
}

fn set_cookie(response: &mut Response, app: &App, name: &str, value: &str, ttl_mins: u32) {
    let secure = if app.settings.admin.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{name}={value}; Path=/admin; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        u64::from(ttl_mins) * 60
    );
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, value)| *key == name && !value.is_empty())
        .map(|(_, value)| value.to_string())
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
