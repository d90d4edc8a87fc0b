//! Tests of the SMTP sink used by the integration tests: lettre (the worker's own mail
//! client) sends to it over real TCP, and raw SMTP sessions check the protocol details.

#[path = "common/smtp_sink.rs"]
mod smtp_sink;

use std::error::Error as _;
use std::io;
use std::time::Duration;

use lettre::message::MultiPart;
use lettre::message::header::{ContentTransferEncoding, ContentType, HeaderName, HeaderValue};
use lettre::transport::smtp;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use smtp_sink::SmtpSink;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

const WAIT: Duration = Duration::from_secs(10);

/// Plain SMTP to the sink's port, as the worker's "no TLS" relay setting does.
fn transport(sink: &SmtpSink) -> AsyncSmtpTransport<Tokio1Executor> {
    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(sink.port())
        .timeout(Some(Duration::from_secs(10)))
        .build()
}

/// The same through a connection URL, as the worker's configuration gives it.
fn transport_from_url(sink: &SmtpSink) -> AsyncSmtpTransport<Tokio1Executor> {
    AsyncSmtpTransport::<Tokio1Executor>::from_url(&sink.url())
        .expect("smtp:// URL")
        .timeout(Some(Duration::from_secs(10)))
        .build()
}

fn simple_message(to: &str, subject: &str, body: &str) -> Message {
    Message::builder()
        .from("Equipo Ventas <ventas@crm.example>".parse().unwrap())
        .to(to.parse().unwrap())
        .subject(subject)
        .header(ContentType::TEXT_PLAIN)
        .body(body.to_owned())
        .unwrap()
}

/// The `std::io::Error` somewhere in an error's source chain.
fn io_error_kind(err: &smtp::Error) -> Option<io::ErrorKind> {
    let mut source = err.source();
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            return Some(io.kind());
        }
        source = e.source();
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_alternative_with_accents_is_received_decoded() {
    let sink = SmtpSink::start().await;
    assert_eq!(sink.url(), format!("smtp://127.0.0.1:{}", sink.port()));
    let mailer = transport_from_url(&sink);

    let text = "Hola José,\n\nTu contraseña temporal es «Xy7-ñ».\nConfiguração concluída.\n";
    let html = "<p>Hola <b>José</b>, tu contraseña temporal es «Xy7-ñ».</p>\
                <p>Configuração concluída.</p>";
    let message = Message::builder()
        .from("Equipo Ventas <ventas@crm.example>".parse().unwrap())
        .to("José Núñez <jose@cliente.example>".parse().unwrap())
        .subject("Configuração de tu contraseña")
        .message_id(Some("<bienvenida-42@crm.example>".to_owned()))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("Content-Language"),
            "es".to_owned(),
        ))
        .multipart(MultiPart::alternative_plain_html(
            text.to_owned(),
            html.to_owned(),
        ))
        .unwrap();
    mailer
        .send(message)
        .await
        .expect("lettre sends to the sink");

    let received = sink.wait_for(1, WAIT).await;
    assert_eq!(received.len(), 1, "exactly one message: {received:?}");
    assert_eq!(sink.count(), 1);
    let msg = &received[0];
    assert_eq!(msg.mail_from, "ventas@crm.example");
    assert_eq!(msg.rcpt_to, vec!["jose@cliente.example".to_owned()]);
    assert_eq!(msg.subject(), "Configuração de tu contraseña");
    assert_eq!(msg.text(), text);
    assert_eq!(msg.html(), html);
    assert!(msg.html().contains("<b>José</b>"));
    assert_eq!(msg.to(), "José Núñez <jose@cliente.example>");
    assert_eq!(msg.from(), "Equipo Ventas <ventas@crm.example>");
    assert_eq!(
        msg.header("Message-ID").as_deref(),
        Some("<bienvenida-42@crm.example>")
    );
    assert_eq!(msg.header("content-language").as_deref(), Some("es"));
    assert_eq!(msg.header("X-Not-There"), None);
    // lettre transfer-encodes non-ASCII text parts: the wire form is 7-bit.
    assert!(msg.raw.is_ascii(), "{}", msg.raw_str());
    assert!(!msg.raw_str().contains("contraseña"));
    assert_eq!(sink.messages_to("JOSE@cliente.example").len(), 1);
    assert!(sink.messages_to("otro@cliente.example").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_bit_body_bytes_are_kept_intact() {
    let sink = SmtpSink::start().await;
    let mailer = transport(&sink);

    let body = "Olá, sua senha é «ação-ñ» — obrigado.\n";
    let message = Message::builder()
        .from("ventas@crm.example".parse().unwrap())
        .to("ana@cliente.example".parse().unwrap())
        .subject("Configuração")
        .header(ContentType::TEXT_PLAIN)
        .header(ContentTransferEncoding::EightBit)
        .body(body.to_owned())
        .unwrap();
    mailer.send(message).await.expect("lettre sends 8-bit mail");

    let msg = &sink.wait_for(1, WAIT).await[0];
    let wire_body = body.replace('\n', "\r\n");
    assert!(
        msg.raw
            .windows(wire_body.len())
            .any(|w| w == wire_body.as_bytes()),
        "raw UTF-8 bytes kept: {msg:?}"
    );
    // lettre ends a single-part body with CRLF and then sends `CRLF . CRLF`: the
    // message as received (RFC 5321) ends with one blank line more than was built.
    assert_eq!(msg.text(), format!("{body}\n"));
    assert_eq!(msg.subject(), "Configuração");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_messages_over_one_pooled_connection_arrive_in_order() {
    let sink = SmtpSink::start().await;
    let mailer = transport(&sink);

    for (i, to) in [
        "a@cliente.example",
        "b@cliente.example",
        "a@cliente.example",
    ]
    .into_iter()
    .enumerate()
    {
        let subject = format!("Mensaje {}", i + 1);
        mailer
            .send(simple_message(to, &subject, "hola\n"))
            .await
            .unwrap_or_else(|e| panic!("message {}: {e}", i + 1));
        // lettre hands a used connection back to its pool from a spawned task: give it
        // the moment it needs, or the next send opens a second connection.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let received = sink.wait_for(3, WAIT).await;
    let subjects: Vec<_> = received.iter().map(|m| m.subject()).collect();
    assert_eq!(subjects, ["Mensaje 1", "Mensaje 2", "Mensaje 3"]);
    assert!(
        received
            .iter()
            .all(|m| m.connection_id == received[0].connection_id),
        "one pooled connection: {received:?}"
    );
    let to_a: Vec<_> = sink
        .messages_to("a@cliente.example")
        .iter()
        .map(|m| m.subject())
        .collect();
    assert_eq!(to_a, ["Mensaje 1", "Mensaje 3"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leading_dots_survive_dot_stuffing() {
    let sink = SmtpSink::start().await;
    let mailer = transport(&sink);

    let body = "first line\n.hidden line\n.\n..two dots\nlast line\n";
    mailer
        .send(simple_message("a@cliente.example", "Puntos", body))
        .await
        .unwrap();
    mailer
        .send(simple_message("a@cliente.example", "Después", "ok\n"))
        .await
        .unwrap();

    let received = sink.wait_for(2, WAIT).await;
    // (`\n` more: see eight_bit_body_bytes_are_kept_intact.)
    assert_eq!(received[0].text(), format!("{body}\n"));
    assert!(
        received[0]
            .raw_str()
            .contains("\r\n.hidden line\r\n.\r\n..two dots\r\n"),
        "{:?}",
        received[0]
    );
    assert_eq!(received[1].subject(), "Después");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_refuses_connections_and_resume_listens_again_on_the_same_port() {
    let sink = SmtpSink::start().await;
    let port = sink.port();
    let mailer = transport(&sink);

    mailer
        .send(simple_message("a@cliente.example", "Antes", "1\n"))
        .await
        .expect("sink up");
    // Let lettre park the connection in its pool: stop() must break it.
    tokio::time::sleep(Duration::from_millis(100)).await;

    sink.stop().await;
    assert!(!sink.is_running());
    let refused = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect_err("connecting while stopped is refused");
    assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);

    let err = mailer
        .send(simple_message("a@cliente.example", "Durante", "2\n"))
        .await
        .expect_err("sending while the sink is stopped fails");
    assert!(!err.is_transient() && !err.is_permanent(), "{err:?}");
    assert_eq!(
        io_error_kind(&err),
        Some(io::ErrorKind::ConnectionRefused),
        "{err:?}"
    );
    assert_eq!(sink.count(), 1);

    sink.resume().await;
    assert!(sink.is_running());
    assert_eq!(sink.port(), port);
    // The same transport (same pool) delivers again.
    mailer
        .send(simple_message("a@cliente.example", "Después", "3\n"))
        .await
        .expect("sink up again");
    let received = sink.wait_for(2, WAIT).await;
    let subjects: Vec<_> = received.iter().map(|m| m.subject()).collect();
    assert_eq!(subjects, ["Antes", "Después"]);
    assert_ne!(received[0].connection_id, received[1].connection_id);

    // A second outage works the same way.
    sink.stop().await;
    sink.stop().await; // idempotent
    assert!(
        transport(&sink)
            .send(simple_message("a@cliente.example", "No", "4\n"))
            .await
            .is_err()
    );
    sink.resume().await;
    transport_from_url(&sink)
        .send(simple_message("a@cliente.example", "Otra vez", "5\n"))
        .await
        .expect("sink up after the second outage");
    assert_eq!(sink.wait_for(3, WAIT).await[2].subject(), "Otra vez");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failure_is_a_transient_smtp_error() {
    let sink = SmtpSink::start().await;
    let mailer = transport(&sink);

    sink.set_transient_failure(true);
    let err = mailer
        .send(simple_message("a@cliente.example", "Rechazado", "1\n"))
        .await
        .expect_err("451 to MAIL FROM");
    assert!(err.is_transient(), "{err:?}");
    assert_eq!(err.status().map(|c| c.to_string()).as_deref(), Some("451"));
    assert!(err.to_string().contains("try again later"), "{err}");
    assert_eq!(sink.count(), 0);

    sink.set_transient_failure(false);
    mailer
        .send(simple_message("a@cliente.example", "Aceptado", "2\n"))
        .await
        .expect("delivered once the failure is lifted");
    let received = sink.wait_for(1, WAIT).await;
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].subject(), "Aceptado");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[should_panic(expected = "expected at least 1 message(s) within 200ms, received 0: nothing")]
async fn wait_for_panics_when_nothing_arrives() {
    let sink = SmtpSink::start().await;
    sink.wait_for(1, Duration::from_millis(200)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[should_panic(expected = "expected at least 2 message(s)")]
async fn wait_for_panic_lists_what_was_received() {
    let sink = SmtpSink::start().await;
    transport(&sink)
        .send(simple_message("a@cliente.example", "Solo uno", "1\n"))
        .await
        .unwrap();
    let result = tokio::spawn(async move { sink.wait_for(2, Duration::from_millis(200)).await })
        .await
        .expect_err("wait_for panics");
    let payload = result.into_panic();
    let message = payload
        .downcast_ref::<String>()
        .expect("panic message")
        .clone();
    assert!(message.contains("\"Solo uno\""), "{message}");
    assert!(message.contains("a@cliente.example"), "{message}");
    panic!("{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_returns_when_a_late_message_arrives() {
    let sink = SmtpSink::start().await;
    let mailer = transport(&sink);
    let send = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        mailer
            .send(simple_message("a@cliente.example", "Tarde", "1\n"))
            .await
    });
    let received = sink.wait_for(1, WAIT).await;
    assert_eq!(received[0].subject(), "Tarde");
    send.await.unwrap().unwrap();
}

/// A raw SMTP client that writes commands in small pieces, to split lines across reads.
struct RawClient {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl RawClient {
    async fn connect(sink: &SmtpSink) -> (RawClient, String) {
        let stream = TcpStream::connect(("127.0.0.1", sink.port()))
            .await
            .unwrap();
        stream.set_nodelay(true).unwrap();
        let (reader, writer) = stream.into_split();
        let mut client = RawClient {
            reader: BufReader::new(reader),
            writer,
        };
        let greeting = client.reply().await;
        (client, greeting)
    }

    /// Writes `bytes` a few at a time, flushing (and pausing) between pieces.
    async fn send_split(&mut self, bytes: &[u8]) {
        for piece in bytes.chunks(3) {
            self.writer.write_all(piece).await.unwrap();
            self.writer.flush().await.unwrap();
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Reads one (possibly multi-line) reply, returned with its lines joined by `\n`.
    async fn reply(&mut self) -> String {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(WAIT, self.reader.read_line(&mut line))
                .await
                .expect("reply in time")
                .unwrap();
            assert!(n > 0, "connection closed; got so far: {lines:?}");
            assert!(line.ends_with("\r\n"), "CRLF-terminated reply: {line:?}");
            let line = line.trim_end().to_owned();
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line);
            if last {
                return lines.join("\n");
            }
        }
    }

    async fn command(&mut self, command: &str) -> String {
        self.send_split(format!("{command}\r\n").as_bytes()).await;
        self.reply().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_smtp_session_split_lines_sequence_errors_and_two_messages() {
    let sink = SmtpSink::start().await;
    let (mut c, greeting) = RawClient::connect(&sink).await;
    assert!(greeting.starts_with("220 "), "{greeting}");

    assert!(
        c.command("MAIL FROM:<x@y.example>")
            .await
            .starts_with("503 ")
    );
    let ehlo = c.command("EHLO client.example").await;
    assert!(ehlo.starts_with("250-"), "{ehlo}");
    for extension in ["8BITMIME", "SMTPUTF8", "SIZE"] {
        assert!(ehlo.contains(extension), "{ehlo}");
    }
    assert!(
        !ehlo.contains("STARTTLS") && !ehlo.contains("AUTH"),
        "{ehlo}"
    );
    assert!(ehlo.lines().last().unwrap().starts_with("250 "), "{ehlo}");

    assert!(c.command("RCPT TO:<a@b.example>").await.starts_with("503 "));
    assert!(c.command("DATA").await.starts_with("503 "));
    assert!(c.command("VRFY someone").await.starts_with("502 "));
    assert!(c.command("HELLO").await.starts_with("502 "));
    assert!(c.command("NOOP").await.starts_with("250 "));

    // A transaction abandoned with RSET is not stored.
    assert!(
        c.command("MAIL FROM:<gone@y.example>")
            .await
            .starts_with("250 ")
    );
    assert!(
        c.command("MAIL FROM:<again@y.example>")
            .await
            .starts_with("503 ")
    );
    assert!(c.command("RSET").await.starts_with("250 "));
    assert!(c.command("DATA").await.starts_with("503 "));

    // Message 1: parameters after the path are ignored; raw 8-bit bytes; dot-stuffing.
    let from = "mail from: <ventas@crm.example> BODY=8BITMIME SMTPUTF8";
    assert!(c.command(from).await.starts_with("250 "));
    assert!(c.command("DATA").await.starts_with("503 "), "needs RCPT");
    assert!(
        c.command("RCPT TO:<uno@cliente.example>")
            .await
            .starts_with("250 ")
    );
    assert!(
        c.command("rcpt to:<dos@cliente.example>")
            .await
            .starts_with("250 ")
    );
    assert!(c.command("DATA").await.starts_with("354 "));
    let data = "Subject: =?utf-8?q?Configura=C3=A7=C3=A3o?=\r\n\
                Content-Type: text/plain; charset=utf-8\r\n\
                Content-Transfer-Encoding: 8bit\r\n\
                \r\n\
                contraseña\r\n\
                ..dot\r\n\
                ...\r\n\
                \r\n.\r\n";
    c.send_split(data.as_bytes()).await;
    assert!(c.reply().await.starts_with("250 "));

    // Message 2 on the same connection, with a null reverse path.
    assert!(c.command("MAIL FROM:<>").await.starts_with("250 "));
    assert!(
        c.command("RCPT TO:<tres@cliente.example>")
            .await
            .starts_with("250 ")
    );
    assert!(c.command("DATA").await.starts_with("354 "));
    c.send_split(b"Subject: dos\r\n\r\n.\r\n").await;
    assert!(c.reply().await.starts_with("250 "));

    assert!(c.command("QUIT").await.starts_with("221 "));
    let mut rest = Vec::new();
    c.reader.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty(), "closed after QUIT");

    let received = sink.wait_for(2, WAIT).await;
    assert_eq!(received.len(), 2);
    let first = &received[0];
    assert_eq!(first.mail_from, "ventas@crm.example");
    assert_eq!(
        first.rcpt_to,
        ["uno@cliente.example", "dos@cliente.example"]
    );
    let expected_raw = "Subject: =?utf-8?q?Configura=C3=A7=C3=A3o?=\r\n\
                        Content-Type: text/plain; charset=utf-8\r\n\
                        Content-Transfer-Encoding: 8bit\r\n\
                        \r\n\
                        contraseña\r\n\
                        .dot\r\n\
                        ..\r\n\
                        \r\n";
    assert_eq!(first.raw, expected_raw.as_bytes());
    assert_eq!(first.subject(), "Configuração");
    assert!(
        first.text().starts_with("contraseña\n.dot\n..\n"),
        "{first:?}"
    );
    let second = &received[1];
    assert_eq!(second.mail_from, "");
    assert_eq!(second.rcpt_to, ["tres@cliente.example"]);
    assert_eq!(second.raw, b"Subject: dos\r\n\r\n");
    assert_eq!(first.connection_id, second.connection_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_drops_open_connections() {
    let sink = SmtpSink::start().await;
    let (mut c, _) = RawClient::connect(&sink).await;
    assert!(c.command("EHLO client.example").await.starts_with("250"));
    sink.stop().await;
    let mut rest = Vec::new();
    let read = tokio::time::timeout(WAIT, c.reader.read_to_end(&mut rest))
        .await
        .expect("the connection is closed by stop()");
    // Closed: end of stream (or a reset), nothing more said.
    assert!(read.is_err() || rest.is_empty(), "{read:?} {rest:?}");
    sink.resume().await;
    let (mut c, greeting) = RawClient::connect(&sink).await;
    assert!(greeting.starts_with("220 "));
    assert!(c.command("QUIT").await.starts_with("221 "));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_sink_closes_the_port() {
    let sink = SmtpSink::start().await;
    let port = sink.port();
    let (mut c, _) = RawClient::connect(&sink).await;
    drop(sink);
    let mut rest = Vec::new();
    let read = tokio::time::timeout(WAIT, c.reader.read_to_end(&mut rest))
        .await
        .expect("the connection is closed on drop");
    assert!(read.is_err() || rest.is_empty(), "{read:?} {rest:?}");
    // The listener task is aborted asynchronously: allow it a moment.
    let mut refused = false;
    for _ in 0..100 {
        if TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "port {port} still accepts connections after drop");
}
