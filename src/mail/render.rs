//! The email templates and their renderer.
//!
//! Every email exists once per language in [`LANGUAGES`], as two templates embedded in the
//! binary (`templates/<lang>/<name>.txt` and `templates/<lang>/<name>.html`):
//!
//! - the `.txt` template has two blocks, `subject` and `body` (the plain-text part);
//! - the `.html` template extends the shared `templates/layout.html` and only fills its
//!   `content` block. The layout also receives `lang` and the rendered `subject`.
//!
//! The per-language footers (`_footer.txt`, `_footer.html`) are included by the text
//! templates and by the layout.
//!
//! Rendering is strict: a variable a template uses but that is missing is an error, never an
//! empty string. `.html` templates are HTML-escaped automatically, `.txt` templates are not.

use std::sync::LazyLock;

use minijinja::{AutoEscape, Environment, Output, State, UndefinedBehavior, Value};

/// Every email the service sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Template {
    /// Welcome with the login and a temporary password, and a single-use confirmation link.
    Credentials,
    /// Locked after too many failed sign-in attempts.
    LockedFailedLogins,
    /// Locked after a period of inactivity.
    LockedIdle,
    /// Unlocked (by an administrator or a password reset).
    Unlocked,
    /// Reactivated: the user can sign in again.
    Reactivated,
    /// A staged warning before an inactivity lock.
    IdleLockWarning,
    /// A warning before the password expires.
    PasswordExpiryWarning,
    /// The password expired and must be changed at the next sign-in.
    PasswordExpired,
}

impl Template {
    pub const ALL: [Template; 8] = [
        Template::Credentials,
        Template::LockedFailedLogins,
        Template::LockedIdle,
        Template::Unlocked,
        Template::Reactivated,
        Template::IdleLockWarning,
        Template::PasswordExpiryWarning,
        Template::PasswordExpired,
    ];

    /// The stable name: the file name of the templates, and what is stored with a message.
    pub fn name(self) -> &'static str {
        match self {
            Template::Credentials => "credentials",
            Template::LockedFailedLogins => "locked_failed_logins",
            Template::LockedIdle => "locked_idle",
            Template::Unlocked => "unlocked",
            Template::Reactivated => "reactivated",
            Template::IdleLockWarning => "idle_lock_warning",
            Template::PasswordExpiryWarning => "password_expiry_warning",
            Template::PasswordExpired => "password_expired",
        }
    }

    /// The template named `name` (as returned by [`Template::name`]).
    pub fn parse(name: &str) -> Option<Template> {
        Template::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The variables the template needs (used in tests and to validate before recording a
    /// message). Exactly these: the templates use every one of them and nothing else.
    pub fn variables(self) -> &'static [&'static str] {
        match self {
            Template::Credentials => &[
                "first_name",
                "last_name",
                "account_name",
                "email",
                "temporary_password",
                "confirm_url",
                "expires_at",
            ],
            Template::LockedFailedLogins => {
                &["first_name", "account_name", "failed_logins", "locked_at"]
            }
            Template::LockedIdle => &["first_name", "account_name", "idle_days", "locked_at"],
            Template::Unlocked | Template::Reactivated | Template::PasswordExpired => {
                &["first_name", "account_name"]
            }
            Template::IdleLockWarning => &[
                "first_name",
                "account_name",
                "idle_days",
                "action_date",
                "days_left",
            ],
            Template::PasswordExpiryWarning => {
                &["first_name", "account_name", "action_date", "days_left"]
            }
        }
    }
}

/// Languages with templates (the languages a user may have); anything else falls back to
/// English. One list: the payloads validate against the same.
pub use lifecycle_jobs::LANGUAGES;

/// One rendered email.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    /// The language actually used (one of [`LANGUAGES`]).
    pub language: &'static str,
    /// A single line.
    pub subject: String,
    /// The plain-text part.
    pub text: String,
    /// The HTML part: a complete document.
    pub html: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The variables are not a JSON object.
    #[error("email `{template}` ({language}): the variables must be a JSON object, not {found}")]
    NotAnObject {
        template: &'static str,
        language: &'static str,
        found: &'static str,
    },
    /// A variable the template needs is absent or null.
    #[error("email `{template}` ({language}): missing variable `{variable}`")]
    MissingVariable {
        template: &'static str,
        language: &'static str,
        variable: &'static str,
    },
    /// The template engine failed (e.g. strict undefined: "undefined value (in <file>:<line>)").
    #[error("email `{template}` ({language}): {error}")]
    Template {
        template: &'static str,
        language: &'static str,
        error: minijinja::Error,
    },
    /// The embedded templates did not load (a syntax error: the unit tests catch it).
    #[error("the email templates cannot be loaded: {0}")]
    Setup(String),
}

/// Renders `template` in `language` (falls back to "en" for a language without templates,
/// e.g. "de" or "", and maps "pt-BR"/"es_MX" style tags to their primary language) with
/// `vars` (a JSON object).
pub fn render(
    template: Template,
    language: &str,
    vars: &serde_json::Value,
) -> Result<Rendered, RenderError> {
    let language = resolve_language(language);
    let Some(object) = vars.as_object() else {
        return Err(RenderError::NotAnObject {
            template: template.name(),
            language,
            found: json_kind(vars),
        });
    };
    if let Some(&variable) = template
        .variables()
        .iter()
        .find(|&&name| object.get(name).is_none_or(serde_json::Value::is_null))
    {
        return Err(RenderError::MissingVariable {
            template: template.name(),
            language,
            variable,
        });
    }
    render_object(template, language, object)
}

/// The language with templates for a tag: its primary subtag if known, otherwise English.
fn resolve_language(tag: &str) -> &'static str {
    let primary = tag.trim().split(['-', '_']).next().unwrap_or_default();
    LANGUAGES
        .into_iter()
        .find(|language| language.eq_ignore_ascii_case(primary))
        .unwrap_or("en")
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Renders without checking [`Template::variables`] first: the engine alone decides what is
/// missing (the tests use it to check that `variables()` matches the templates).
fn render_object(
    template: Template,
    language: &'static str,
    vars: &serde_json::Map<String, serde_json::Value>,
) -> Result<Rendered, RenderError> {
    let env = ENVIRONMENT
        .as_ref()
        .map_err(|e| RenderError::Setup(e.clone()))?;
    let failed = |error| RenderError::Template {
        template: template.name(),
        language,
        error,
    };
    let name = template.name();

    let mut context = vars.clone();
    context.insert("lang".into(), language.into());

    let text_template = env
        .get_template(&format!("{language}/{name}.txt"))
        .map_err(failed)?;
    let mut captured = text_template
        .render_captured(Value::from_serialize(&context))
        .map_err(failed)?;
    let (subject, body) = captured
        .with_state_mut(|state| {
            let subject = state.render_block("subject")?;
            let body = state.render_block("body")?;
            Ok((subject, body))
        })
        .map_err(failed)?;
    let subject = single_line(&subject);
    let mut text = body.trim().to_owned();
    text.push('\n');

    context.insert("subject".into(), subject.clone().into());
    let html = env
        .get_template(&format!("{language}/{name}.html"))
        .and_then(|t| t.render(Value::from_serialize(&context)))
        .map_err(failed)?;

    Ok(Rendered {
        language,
        subject,
        text,
        html,
    })
}

/// The subject as one line: the lines trimmed and joined with a space (a value with a line
/// break cannot break the header).
fn single_line(subject: &str) -> String {
    subject
        .split(['\r', '\n'])
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// `(name, source)` of the text and HTML templates of one email in one language.
macro_rules! email_files {
    ($lang:literal, $name:literal) => {
        [
            (
                concat!($lang, "/", $name, ".txt"),
                include_str!(concat!("templates/", $lang, "/", $name, ".txt")),
            ),
            (
                concat!($lang, "/", $name, ".html"),
                include_str!(concat!("templates/", $lang, "/", $name, ".html")),
            ),
        ]
    };
}

/// Every template file of one language (the emails of [`Template::ALL`] and the footer).
macro_rules! language_files {
    ($lang:literal) => {
        [
            email_files!($lang, "_footer"),
            email_files!($lang, "credentials"),
            email_files!($lang, "locked_failed_logins"),
            email_files!($lang, "locked_idle"),
            email_files!($lang, "unlocked"),
            email_files!($lang, "reactivated"),
            email_files!($lang, "idle_lock_warning"),
            email_files!($lang, "password_expiry_warning"),
            email_files!($lang, "password_expired"),
        ]
    };
}

const LAYOUT: (&str, &str) = ("layout.html", include_str!("templates/layout.html"));

/// The language files, in the order of [`LANGUAGES`].
static LANGUAGE_FILES: [[[(&str, &str); 2]; 9]; 4] = [
    language_files!("en"),
    language_files!("es"),
    language_files!("fr"),
    language_files!("pt"),
];

static ENVIRONMENT: LazyLock<Result<Environment<'static>, String>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".html") {
            AutoEscape::Html
        } else {
            AutoEscape::None
        }
    });
    env.set_formatter(html_formatter);
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    let files = LANGUAGE_FILES.iter().flatten().flatten();
    for &(name, source) in std::iter::once(&LAYOUT).chain(files) {
        env.add_template(name, source)
            .map_err(|e| format!("{name}: {e}"))?;
    }
    Ok(env)
});

/// The default formatter, except that HTML escaping leaves `/` alone (minijinja writes
/// `&#x2f;`): URLs in `href` stay readable. `&`, `<`, `>`, `"` and `'` are still escaped,
/// which is what text content and quoted attribute values need.
fn html_formatter(out: &mut Output, state: &State, value: &Value) -> Result<(), minijinja::Error> {
    if state.auto_escape() != AutoEscape::Html || value.is_safe() {
        return minijinja::escape_formatter(out, state, value);
    }
    let raw = value.to_string();
    let mut rest = raw.as_str();
    while let Some(at) = rest.find(['&', '<', '>', '"', '\'']) {
        out.write_str(&rest[..at])?;
        out.write_str(match rest.as_bytes()[at] {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            _ => "&#x27;",
        })?;
        rest = &rest[at + 1..];
    }
    out.write_str(rest)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value as Json, json};

    const URL: &str = "https://crm.example.com/confirm?token=k3y9";

    /// Sample values for every variable of every template (values without HTML specials,
    /// so they appear unchanged in both parts).
    fn sample(template: Template) -> Json {
        let all = json!({
            "first_name": "Ana",
            "last_name": "Silvestri",
            "account_name": "Northwind Traders",
            "email": "ana.silvestri@northwind.example",
            "temporary_password": "Tmp-7qK2-xW9p",
            "confirm_url": URL,
            "expires_at": "2026-11-26 14:00 UTC",
            "failed_logins": 5,
            "locked_at": "2026-11-20 09:12 UTC",
            "idle_days": 90,
            "action_date": "2026-12-01",
            "days_left": 7,
        });
        let only: serde_json::Map<_, _> = template
            .variables()
            .iter()
            .map(|&name| (name.to_owned(), all[name].clone()))
            .collect();
        Json::Object(only)
    }

    fn value_text(value: &Json) -> String {
        match value {
            Json::String(s) => s.clone(),
            other => other.to_string(),
        }
    }

    #[test]
    fn every_template_renders_in_every_language() {
        for template in Template::ALL {
            for language in LANGUAGES {
                let vars = sample(template);
                let r = render(template, language, &vars)
                    .unwrap_or_else(|e| panic!("{}/{language}: {e}", template.name()));
                let what = format!("{}/{language}", template.name());
                assert_eq!(r.language, language, "{what}");
                assert!(!r.subject.is_empty(), "{what}: empty subject");
                assert!(!r.subject.contains(['\n', '\r']), "{what}: {:?}", r.subject);
                assert_eq!(r.subject, r.subject.trim(), "{what}");
                assert!(!r.text.trim().is_empty(), "{what}: empty text");
                assert!(!r.html.trim().is_empty(), "{what}: empty html");
                assert!(
                    r.html.to_ascii_lowercase().starts_with("<!doctype html>"),
                    "{what}: {}",
                    &r.html[..40]
                );
                assert!(
                    r.html.contains(&format!("<html lang=\"{language}\">")),
                    "{what}"
                );
                assert!(r.html.trim_end().ends_with("</html>"), "{what}");
                assert!(r.html.contains("<title>"), "{what}");
                // No leftover template syntax.
                for part in [&r.subject, &r.text, &r.html] {
                    assert!(!part.contains("{{") && !part.contains("{%"), "{what}");
                }
                // Every value appears in both parts.
                for &name in template.variables() {
                    let value = value_text(&vars[name]);
                    assert!(r.text.contains(&value), "{what}: text lacks {name}");
                    assert!(r.html.contains(&value), "{what}: html lacks {name}");
                }
                if template == Template::Credentials {
                    let url_line = r.text.lines().any(|line| line.trim() == URL);
                    assert!(url_line, "{what}: the URL is not on its own line");
                    assert!(r.html.contains(&format!("href=\"{URL}\"")), "{what}");
                }
            }
        }
    }

    #[test]
    fn other_languages_are_translated() {
        for template in Template::ALL {
            let vars = sample(template);
            let en = render(template, "en", &vars).unwrap();
            for language in ["es", "fr", "pt"] {
                let r = render(template, language, &vars).unwrap();
                let what = format!("{}/{language}", template.name());
                assert_ne!(r.subject, en.subject, "{what}: subject");
                assert_ne!(r.text, en.text, "{what}: text");
                assert_ne!(r.html, en.html, "{what}: html");
                // Not merely the English text with a few words changed.
                let en_lines: Vec<_> = en.text.lines().filter(|l| l.len() > 20).collect();
                let shared = r.text.lines().filter(|l| en_lines.contains(l)).count();
                assert!(shared <= 1, "{what}: {shared} English lines");
            }
        }
    }

    #[test]
    fn user_values_are_escaped_in_html_only() {
        let hostile = r#"<script>alert("x")</script> & Co"#;
        for template in Template::ALL {
            for language in LANGUAGES {
                let mut vars = sample(template);
                vars["first_name"] = hostile.into();
                vars["account_name"] = "O'Brien & Sons <Ltd>".into();
                let r = render(template, language, &vars).unwrap();
                let what = format!("{}/{language}", template.name());
                assert!(!r.html.contains("<script"), "{what}: raw script in html");
                assert!(
                    r.html
                        .contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; Co"),
                    "{what}"
                );
                assert!(
                    r.html.contains("O&#x27;Brien &amp; Sons &lt;Ltd&gt;"),
                    "{what}"
                );
                assert!(r.text.contains(hostile), "{what}: text");
                assert!(r.text.contains("O'Brien & Sons <Ltd>"), "{what}: text");
                assert!(
                    !r.text.contains("&lt;") && !r.text.contains("&amp;"),
                    "{what}"
                );
                assert!(
                    !r.subject.contains("&amp;"),
                    "{what}: subject is plain text"
                );
            }
        }
    }

    #[test]
    fn confirm_url_is_an_escaped_href() {
        let url = "https://crm.example.com/confirm?token=abc&user=42";
        for language in LANGUAGES {
            let mut vars = sample(Template::Credentials);
            vars["confirm_url"] = url.into();
            let r = render(Template::Credentials, language, &vars).unwrap();
            assert!(
                r.html
                    .contains(r#"href="https://crm.example.com/confirm?token=abc&amp;user=42""#),
                "{language}"
            );
            assert!(!r.html.contains("token=abc&user"), "{language}");
            assert!(r.text.lines().any(|line| line.trim() == url), "{language}");
        }
    }

    #[test]
    fn unknown_languages_fall_back_to_english() {
        let vars = sample(Template::Unlocked);
        let en = render(Template::Unlocked, "en", &vars).unwrap();
        for tag in ["de", "", "  ", "zz-ZZ", "english"] {
            let r = render(Template::Unlocked, tag, &vars).unwrap();
            assert_eq!(r.language, "en", "{tag:?}");
            assert_eq!(r, en, "{tag:?}");
        }
    }

    #[test]
    fn regional_tags_map_to_their_language() {
        let vars = sample(Template::PasswordExpired);
        for (tag, language) in [
            ("pt-BR", "pt"),
            ("pt_PT", "pt"),
            ("es_MX", "es"),
            ("es-419", "es"),
            ("FR", "fr"),
            ("fr-CA", "fr"),
            ("en-GB", "en"),
        ] {
            let r = render(Template::PasswordExpired, tag, &vars).unwrap();
            let direct = render(Template::PasswordExpired, language, &vars).unwrap();
            assert_eq!(r.language, language, "{tag}");
            assert_eq!(r, direct, "{tag}");
        }
    }

    #[test]
    fn missing_variable_is_an_error_naming_it() {
        let mut vars = sample(Template::Credentials);
        vars.as_object_mut().unwrap().remove("temporary_password");
        let err = render(Template::Credentials, "fr", &vars).unwrap_err();
        assert!(
            matches!(
                err,
                RenderError::MissingVariable {
                    template: "credentials",
                    language: "fr",
                    variable: "temporary_password",
                }
            ),
            "{err:?}"
        );
        let message = err.to_string();
        for part in ["credentials", "fr", "temporary_password"] {
            assert!(message.contains(part), "{message}");
        }

        // null counts as missing
        vars["temporary_password"] = Json::Null;
        assert!(matches!(
            render(Template::Credentials, "en", &vars),
            Err(RenderError::MissingVariable {
                variable: "temporary_password",
                ..
            })
        ));
    }

    #[test]
    fn engine_is_strict_about_undefined_variables() {
        // Without the check of `variables()`, the engine itself refuses.
        let mut vars = sample(Template::Unlocked);
        let object = vars.as_object_mut().unwrap();
        object.remove("first_name");
        let err = render_object(Template::Unlocked, "es", object).unwrap_err();
        assert!(
            matches!(&err, RenderError::Template { error, .. }
                if error.kind() == minijinja::ErrorKind::UndefinedError),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(
            message.contains("unlocked") && message.contains("(es)"),
            "{message}"
        );
    }

    #[test]
    fn variables_are_exactly_what_the_templates_need() {
        for template in Template::ALL {
            for language in LANGUAGES {
                let what = format!("{}/{language}", template.name());
                let vars = sample(template);
                let only = vars.as_object().unwrap();
                assert_eq!(only.len(), template.variables().len(), "{what}");
                // Enough for the engine (strict: anything else used would fail)...
                render_object(template, language, only).unwrap_or_else(|e| panic!("{what}: {e}"));
                // ...and each one is used.
                for &name in template.variables() {
                    let mut fewer = only.clone();
                    fewer.remove(name);
                    assert!(
                        render_object(template, language, &fewer).is_err(),
                        "{what}: `{name}` is listed but not used"
                    );
                    assert!(
                        render(template, language, &Json::Object(fewer)).is_err(),
                        "{what}: {name}"
                    );
                }
            }
        }
    }

    #[test]
    fn template_names_round_trip() {
        for template in Template::ALL {
            assert_eq!(Template::parse(template.name()), Some(template));
        }
        assert_eq!(Template::parse("Credentials"), None);
        assert_eq!(Template::parse(""), None);
        let mut names: Vec<_> = Template::ALL.iter().map(|t| t.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Template::ALL.len());
    }

    #[test]
    fn vars_must_be_an_object() {
        let err = render(Template::Unlocked, "en", &json!(["Ana"])).unwrap_err();
        assert!(matches!(
            err,
            RenderError::NotAnObject {
                found: "an array",
                ..
            }
        ));
    }

    #[test]
    fn subject_stays_on_one_line() {
        for template in Template::ALL {
            let mut vars = sample(template);
            vars["account_name"] = "Northwind\r\nBcc: victim@example.com".into();
            let r = render(template, "en", &vars).unwrap();
            assert!(!r.subject.contains(['\r', '\n']), "{:?}", r.subject);
        }
    }

    #[test]
    fn numbers_render_as_is_and_strings_work_too() {
        let mut vars = sample(Template::IdleLockWarning);
        vars["days_left"] = json!(1);
        vars["idle_days"] = json!("83");
        let r = render(Template::IdleLockWarning, "en", &vars).unwrap();
        assert!(
            r.text.contains("in 1 day,") || r.text.contains("in 1 day "),
            "{}",
            r.text
        );
        assert!(!r.text.contains("1 days"), "{}", r.text);
        assert!(r.text.contains("83 days"), "{}", r.text);
        vars["days_left"] = json!("1");
        let again = render(Template::IdleLockWarning, "en", &vars).unwrap();
        assert_eq!(again, r);

        let mut vars = sample(Template::LockedFailedLogins);
        vars["failed_logins"] = json!(10);
        let r = render(Template::LockedFailedLogins, "pt", &vars).unwrap();
        assert!(r.text.contains("10 tentativas"), "{}", r.text);
    }

    #[test]
    fn html_has_no_external_resources_and_no_style_sheet() {
        for template in Template::ALL {
            for language in LANGUAGES {
                let r = render(template, language, &sample(template)).unwrap();
                let html = r.html.to_ascii_lowercase();
                for banned in ["<script", "<link", "<style", "<img", "src=", "url("] {
                    assert!(
                        !html.contains(banned),
                        "{}/{language}: {banned}",
                        template.name()
                    );
                }
                let links = html.matches("href=").count();
                let expected = if template == Template::Credentials {
                    2
                } else {
                    0
                };
                assert_eq!(links, expected, "{}/{language}", template.name());
            }
        }
    }
}
