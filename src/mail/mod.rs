//! Mail: the templates ([`render`]) and the transports. A change never sends mail itself:
//! it records the message ([`crate::store::emails`]) in its own transaction and a SendEmail
//! job hands it to the [`Mailer`] here.

pub mod render;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::{MailSettings, MailTransport};
use render::Rendered;

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// Configuration that cannot work: a bad sender or SMTP URL.
    #[error("mail configuration: {0}")]
    Config(String),
    /// The message cannot be built (a recipient address the mail library refuses): sending
    /// again cannot help.
    #[error("cannot build the message: {0}")]
    Message(String),
    /// The server refused for good (5xx: no such mailbox, policy).
    #[error("the mail server refused the message: {0}")]
    Refused(String),
    /// Connection, timeout, 4xx, disk: worth another attempt later.
    #[error("mail delivery failed, will retry: {0}")]
    Unavailable(String),
}

impl MailError {
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            MailError::Config(_) | MailError::Message(_) | MailError::Refused(_)
        )
    }
}

/// One message ready to go.
pub struct OutgoingEmail<'a> {
    pub to_name: &'a str,
    pub to_address: &'a str,
    /// Stable per recorded message, so a receiving system can tell a resend from a new one.
    pub message_id: &'a str,
    pub rendered: &'a Rendered,
}

#[derive(Clone)]
enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    File(AsyncFileTransport<Tokio1Executor>),
}

/// Sends messages over SMTP (production) or as `.eml` files (embedded default).
#[derive(Clone)]
pub struct Mailer {
    transport: Transport,
    from: Mailbox,
    faults: Arc<Faults>,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let transport = match self.transport {
            Transport::Smtp(_) => "smtp",
            Transport::File(_) => "file",
        };
        f.debug_struct("Mailer")
            .field("transport", &transport)
            .field("from", &self.from.to_string())
            .finish()
    }
}

/// Failures a test can ask for, to show that a retried SendEmail does not send twice.
#[derive(Debug, Default)]
struct Faults {
    fail_after_sending: AtomicU32,
}

impl Mailer {
    pub fn from_settings(settings: &MailSettings) -> Result<Self, MailError> {
        let from: Mailbox = settings
            .from
            .parse()
            .map_err(|e| MailError::Config(format!("mail.from {:?}: {e}", settings.from)))?;
        let transport = match settings.transport {
            MailTransport::Smtp => {
                // The URL may hold a password: its parse error is reported without it.
                let builder =
                    AsyncSmtpTransport::<Tokio1Executor>::from_url(settings.smtp_url.expose())
                        .map_err(|e| {
                            MailError::Config(format!("mail.smtp_url is not a valid SMTP URL: {e}"))
                        })?;
                Transport::Smtp(
                    builder
                        .timeout(Some(Duration::from_secs(settings.timeout_secs.max(1))))
                        .build(),
                )
            }
            MailTransport::File => {
                let folder = PathBuf::from(&settings.folder);
                std::fs::create_dir_all(&folder).map_err(|e| {
                    MailError::Config(format!("cannot create mail.folder {folder:?}: {e}"))
                })?;
                Transport::File(AsyncFileTransport::new(folder))
            }
        };
        Ok(Self {
            transport,
            from,
            faults: Arc::default(),
        })
    }

    /// Builds the multipart (text + HTML) message and hands it to the transport.
    pub async fn send(&self, email: &OutgoingEmail<'_>) -> Result<(), MailError> {
        let to = Mailbox::new(
            Some(email.to_name.to_string()),
            email
                .to_address
                .parse()
                .map_err(|e| MailError::Message(format!("recipient address: {e}")))?,
        );
        let mut message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(email.rendered.subject.clone())
            .message_id(Some(email.message_id.to_string()))
            .multipart(MultiPart::alternative_plain_html(
                email.rendered.text.clone(),
                email.rendered.html.clone(),
            ))
            .map_err(|e| MailError::Message(e.to_string()))?;
        message.headers_mut().insert_raw(HeaderValue::new(
            HeaderName::new_from_ascii_str("Content-Language"),
            email.rendered.language.to_string(),
        ));
        match &self.transport {
            Transport::Smtp(smtp) => smtp.send(message).await.map(drop).map_err(|e| {
                if e.is_permanent() {
                    MailError::Refused(e.to_string())
                } else {
                    MailError::Unavailable(e.to_string())
                }
            }),
            Transport::File(file) => file
                .send(message)
                .await
                .map(drop)
                .map_err(|e| MailError::Unavailable(e.to_string())),
        }
    }

    /// Whether the mail server answers: for SMTP, a connection and a NOOP (the configured
    /// timeout applies); the file transport needs no server.
    pub async fn check_connection(&self) -> Result<(), MailError> {
        match &self.transport {
            Transport::Smtp(smtp) => match smtp.test_connection().await {
                Ok(true) => Ok(()),
                Ok(false) => Err(MailError::Unavailable(
                    "the server did not answer a NOOP".into(),
                )),
                Err(error) => Err(MailError::Unavailable(error.to_string())),
            },
            Transport::File(_) => Ok(()),
        }
    }

    /// A Message-ID under the sender's domain: `<local@domain>`.
    pub fn message_id(&self, local: &str) -> String {
        format!("<{local}@{}>", self.from.email.domain())
    }

    /// Test hook: the next `times` SendEmail jobs fail after their message went out.
    #[doc(hidden)]
    pub fn fail_after_sending(&self, times: u32) {
        self.faults
            .fail_after_sending
            .store(times, Ordering::SeqCst);
    }

    /// Whether this SendEmail attempt is to fail after sending (consumes one).
    pub(crate) fn take_failure_after_sending(&self) -> bool {
        self.faults
            .fail_after_sending
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                left.checked_sub(1)
            })
            .is_ok()
    }
}

/// An instant as emails show it: the account's local time with its zone abbreviation
/// (`2026-03-13 13:00 CET`).
pub fn format_instant(at: chrono::DateTime<chrono::Utc>, zone: chrono_tz::Tz) -> String {
    at.with_timezone(&zone)
        .format("%Y-%m-%d %H:%M %Z")
        .to_string()
}
