//! A small real SMTP server for integration tests: it listens on a loopback port, speaks
//! enough SMTP (RFC 5321) for lettre's plain-TCP transport, and keeps every message it
//! accepts, in order, for the test to read.
//!
//! It is not a mock of lettre: the worker under test talks to it over TCP exactly as it
//! would talk to a relay. Outages are simulated for real: [`SmtpSink::stop`] closes the
//! listener and every open connection (connecting is refused), [`SmtpSink::resume`] listens
//! on the same port again, and [`SmtpSink::set_transient_failure`] makes the server answer
//! `MAIL FROM` with a `451` (the server is up but refuses mail for now).
//! [`SmtpSink::set_dawdle`] makes it a slow server: it holds each message's final reply
//! (and keeps the message only then), so a test can act while a sender waits in `DATA`.
//!
//! ```ignore
//! let sink = SmtpSink::start().await;
//! // configure the worker with sink.url() ("smtp://127.0.0.1:<port>"), run the job...
//! let msgs = sink.wait_for(1, Duration::from_secs(5)).await;
//! assert_eq!(msgs[0].subject(), "Bienvenido");
//! assert!(msgs[0].text().contains("contraseña"));
//! ```
#![allow(dead_code)]

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use mail_parser::{Address, Message, MessageParser, MimeHeaders, PartType};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// Host name the sink announces in its greeting and EHLO reply.
const SERVER_NAME: &str = "smtp-sink.test";
/// Size limit announced in EHLO (not enforced beyond the announcement).
const MAX_SIZE: usize = 50 * 1024 * 1024;
/// How long [`SmtpSink::resume`] retries while the OS still says the port is in use.
const RESUME_RETRY_FOR: Duration = Duration::from_secs(5);

/// One message the sink accepted (the `DATA` of one SMTP transaction).
#[derive(Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// The reverse path of `MAIL FROM:<...>`, without the angle brackets (empty for `<>`).
    pub mail_from: String,
    /// The forward paths of every accepted `RCPT TO:<...>`, in order, without brackets.
    pub rcpt_to: Vec<String>,
    /// The message exactly as received, dot-stuffing undone, CRLF line endings kept,
    /// 8-bit bytes untouched.
    pub raw: Vec<u8>,
    /// Which TCP connection delivered it: accepted connections are numbered 1, 2, ... in
    /// the order the sink accepted them (across stop/resume). Shows connection reuse.
    pub connection_id: u64,
}

impl ReceivedMessage {
    /// The message parsed by mail-parser. Panics if it cannot be parsed as a message.
    pub fn parsed(&self) -> Message<'_> {
        MessageParser::default()
            .parse(&self.raw)
            .unwrap_or_else(|| panic!("SMTP sink: cannot parse the received message: {self:?}"))
    }

    /// The raw message as (lossy) UTF-8, for assertions on the wire format.
    pub fn raw_str(&self) -> String {
        String::from_utf8_lossy(&self.raw).into_owned()
    }

    /// The `Subject` header, decoded (RFC 2047 encoded words undone). Panics if absent.
    pub fn subject(&self) -> String {
        self.parsed()
            .subject()
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("SMTP sink: the message has no Subject: {self:?}"))
    }

    /// The decoded `text/plain` body part (transfer encoding and charset undone, line
    /// endings normalised to `\n`). Attachments are skipped. Panics if there is none.
    pub fn text(&self) -> String {
        self.try_text()
            .unwrap_or_else(|| panic!("SMTP sink: the message has no text/plain part: {self:?}"))
    }

    /// Like [`Self::text`], `None` when there is no `text/plain` part.
    pub fn try_text(&self) -> Option<String> {
        self.body_part(false)
    }

    /// The decoded `text/html` body part (transfer encoding and charset undone, line
    /// endings normalised to `\n`). Attachments are skipped. Panics if there is none.
    pub fn html(&self) -> String {
        self.try_html()
            .unwrap_or_else(|| panic!("SMTP sink: the message has no text/html part: {self:?}"))
    }

    /// Like [`Self::html`], `None` when there is no `text/html` part.
    pub fn try_html(&self) -> Option<String> {
        self.body_part(true)
    }

    /// A top-level header's value as sent: unfolded and trimmed, encoded words left as
    /// they are (e.g. `header("Message-ID")` is `Some("<...@...>")`). Case-insensitive
    /// name; the first occurrence if repeated.
    pub fn header(&self, name: &str) -> Option<String> {
        let parsed = self.parsed();
        let raw = parsed.header_raw(name)?;
        Some(unfold(raw))
    }

    /// The `To` header, decoded: `Name <address>` (or just `address`) per recipient,
    /// joined with `", "`. Panics if absent.
    pub fn to(&self) -> String {
        let parsed = self.parsed();
        let to = parsed
            .to()
            .unwrap_or_else(|| panic!("SMTP sink: the message has no To header: {self:?}"));
        format_address(to)
    }

    /// The `From` header, decoded, formatted like [`Self::to`]. Panics if absent.
    pub fn from(&self) -> String {
        let parsed = self.parsed();
        let from = parsed
            .from()
            .unwrap_or_else(|| panic!("SMTP sink: the message has no From header: {self:?}"));
        format_address(from)
    }

    /// The first non-attachment part that is text/html (`html`) or text/plain (`!html`).
    fn body_part(&self, html: bool) -> Option<String> {
        let parsed = self.parsed();
        parsed.parts.iter().find_map(|part| {
            if part
                .content_disposition()
                .is_some_and(|cd| cd.c_type.eq_ignore_ascii_case("attachment"))
            {
                return None;
            }
            match &part.body {
                PartType::Html(body) if html => Some(normalise_newlines(body)),
                PartType::Text(body) if !html => {
                    // `PartType::Text` is any text/*; keep text/plain (the default type).
                    let plain = part.content_type().is_none_or(|ct| {
                        ct.c_type.eq_ignore_ascii_case("text")
                            && ct
                                .c_subtype
                                .as_deref()
                                .is_none_or(|st| st.eq_ignore_ascii_case("plain"))
                    });
                    plain.then(|| normalise_newlines(body))
                }
                _ => None,
            }
        })
    }

    fn summary(&self) -> String {
        let subject = self
            .parsed_subject()
            .unwrap_or_else(|| "<no subject>".to_owned());
        format!(
            "from <{}> to {:?} (connection {}): {subject:?}",
            self.mail_from, self.rcpt_to, self.connection_id
        )
    }

    fn parsed_subject(&self) -> Option<String> {
        MessageParser::default()
            .parse(&self.raw)
            .and_then(|m| m.subject().map(str::to_owned))
    }
}

impl fmt::Debug for ReceivedMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReceivedMessage")
            .field("mail_from", &self.mail_from)
            .field("rcpt_to", &self.rcpt_to)
            .field("connection_id", &self.connection_id)
            .field("raw", &String::from_utf8_lossy(&self.raw))
            .finish()
    }
}

fn normalise_newlines(s: &str) -> String {
    s.replace("\r\n", "\n")
}

/// Undoes header folding (a CRLF followed by white space) and trims.
fn unfold(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {}
            c => out.push(c),
        }
    }
    out.trim().to_owned()
}

fn format_address(address: &Address<'_>) -> String {
    address
        .iter()
        .map(|addr| {
            let email = addr.address().unwrap_or_default();
            match addr.name() {
                Some(name) if !name.is_empty() => format!("{name} <{email}>"),
                _ => email.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// State shared by the sink handle, the accept loop and the connection tasks.
struct Shared {
    messages: Mutex<Vec<ReceivedMessage>>,
    /// The number of stored messages, for [`SmtpSink::wait_for`].
    stored: watch::Sender<usize>,
    transient_failure: AtomicBool,
    /// How long to wait, in ms, before answering a message's data (0: answer at once).
    dawdle_ms: AtomicU64,
    /// How many messages have reached the wait so far, for [`SmtpSink::wait_for_dawdling`].
    dawdling: watch::Sender<usize>,
    /// Bumped by [`SmtpSink::stop_dawdling`]: ends the waits under way.
    dawdle_released: watch::Sender<u64>,
    next_connection_id: AtomicU64,
    /// Tasks serving open connections; aborted (and awaited) by [`SmtpSink::stop`].
    connections: Mutex<JoinSet<()>>,
}

impl Shared {
    fn messages(&self) -> MutexGuard<'_, Vec<ReceivedMessage>> {
        self.messages.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn connections(&self) -> MutexGuard<'_, JoinSet<()>> {
        self.connections.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn store(&self, message: ReceivedMessage) {
        let count = {
            let mut messages = self.messages();
            messages.push(message);
            messages.len()
        };
        self.stored.send_replace(count);
    }
}

/// A running SMTP sink on `127.0.0.1:<port>`. Dropping it stops it.
pub struct SmtpSink {
    port: u16,
    shared: Arc<Shared>,
    /// The accept loop; `None` while stopped.
    accept_task: Mutex<Option<JoinHandle<()>>>,
}

impl SmtpSink {
    /// Binds `127.0.0.1:0` and starts accepting connections.
    pub async fn start() -> SmtpSink {
        let listener = bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
            .unwrap_or_else(|e| panic!("SMTP sink: cannot bind 127.0.0.1:0: {e}"));
        let port = listener
            .local_addr()
            .expect("SMTP sink: listener address")
            .port();
        let shared = Arc::new(Shared {
            messages: Mutex::new(Vec::new()),
            stored: watch::Sender::new(0),
            transient_failure: AtomicBool::new(false),
            dawdle_ms: AtomicU64::new(0),
            dawdling: watch::Sender::new(0),
            dawdle_released: watch::Sender::new(0),
            next_connection_id: AtomicU64::new(1),
            connections: Mutex::new(JoinSet::new()),
        });
        let accept_task = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        SmtpSink {
            port,
            shared,
            accept_task: Mutex::new(Some(accept_task)),
        }
    }

    /// The port it listens on (the same across stop/resume).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `smtp://127.0.0.1:<port>`: plain SMTP, for lettre's `from_url`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Whether it is listening (not between [`Self::stop`] and [`Self::resume`]).
    pub fn is_running(&self) -> bool {
        self.accept_task_slot().is_some()
    }

    /// A snapshot of the messages received so far, in the order they were accepted.
    pub fn messages(&self) -> Vec<ReceivedMessage> {
        self.shared.messages().clone()
    }

    /// How many messages were received so far.
    pub fn count(&self) -> usize {
        self.shared.messages().len()
    }

    /// The received messages with `addr` among their envelope recipients (`RCPT TO`),
    /// compared case-insensitively.
    pub fn messages_to(&self, addr: &str) -> Vec<ReceivedMessage> {
        self.shared
            .messages()
            .iter()
            .filter(|m| m.rcpt_to.iter().any(|r| r.eq_ignore_ascii_case(addr)))
            .cloned()
            .collect()
    }

    /// Forgets the messages received so far.
    pub fn clear(&self) {
        self.shared.messages().clear();
        self.shared.stored.send_replace(0);
    }

    /// Waits until at least `n` messages were received and returns them all (a snapshot,
    /// possibly more than `n`). Panics, listing what did arrive, if fewer than `n` arrive
    /// within `timeout`.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<ReceivedMessage> {
        let mut stored = self.shared.stored.subscribe();
        let reached = tokio::time::timeout(timeout, stored.wait_for(|count| *count >= n)).await;
        if reached.is_err() {
            let received = self.messages();
            let listing = if received.is_empty() {
                "nothing".to_owned()
            } else {
                received
                    .iter()
                    .enumerate()
                    .map(|(i, m)| format!("\n  #{}: {}", i + 1, m.summary()))
                    .collect::<String>()
            };
            panic!(
                "SMTP sink on port {}: expected at least {n} message(s) within {timeout:?}, \
                 received {}: {listing}",
                self.port,
                received.len()
            );
        }
        self.messages()
    }

    /// While `true`, `MAIL FROM` is answered `451 4.3.0 try again later` (a transient
    /// error): the server is up but accepts no mail.
    pub fn set_transient_failure(&self, fail: bool) {
        self.shared.transient_failure.store(fail, Ordering::SeqCst);
    }

    /// Makes the server slow: after the data of each message it waits `delay` (or until
    /// [`Self::stop_dawdling`]) before it keeps the message and answers `250`, as a server
    /// that takes its time to accept does. `Duration::ZERO` answers at once again.
    pub fn set_dawdle(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.shared.dawdle_ms.store(ms, Ordering::SeqCst);
    }

    /// Answers at once from now on, and ends the waits under way (their messages are kept
    /// and accepted).
    pub fn stop_dawdling(&self) {
        self.shared.dawdle_ms.store(0, Ordering::SeqCst);
        self.shared
            .dawdle_released
            .send_modify(|generation| *generation += 1);
    }

    /// Waits until at least `n` messages (in all) have reached the dawdle, i.e. their
    /// senders are waiting for the server's answer to `DATA`. Panics after `timeout`.
    pub async fn wait_for_dawdling(&self, n: usize, timeout: Duration) {
        let mut dawdling = self.shared.dawdling.subscribe();
        let reached = tokio::time::timeout(timeout, dawdling.wait_for(|count| *count >= n)).await;
        assert!(
            reached.is_ok(),
            "SMTP sink on port {}: fewer than {n} message(s) reached DATA within {timeout:?}",
            self.port
        );
    }

    /// Simulates an outage: closes the listener and every open connection. When it
    /// returns, connecting to the port is refused and pooled client connections are dead.
    /// Messages already received are kept. No-op if already stopped.
    pub async fn stop(&self) {
        let accept_task = self.accept_task_slot().take();
        if let Some(task) = accept_task {
            task.abort();
            // The task's future (which owns the listener) is dropped before this resolves.
            let _ = task.await;
        }
        let mut connections = std::mem::take(&mut *self.shared.connections());
        connections.abort_all();
        // Each aborted task's future (owning its socket) is dropped before it is reaped.
        while connections.join_next().await.is_some() {}
    }

    /// Ends an outage: listens on the same port again, retrying for a few seconds while
    /// the OS reports the address in use. No-op if running. Panics if it cannot bind.
    pub async fn resume(&self) {
        if self.is_running() {
            return;
        }
        let addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, self.port);
        let deadline = Instant::now() + RESUME_RETRY_FOR;
        let listener = loop {
            match bind(addr) {
                Ok(listener) => break listener,
                Err(e) if e.kind() == io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("SMTP sink: cannot bind {addr} again: {e}"),
            }
        };
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&self.shared)));
        let mut slot = self.accept_task_slot();
        if slot.is_some() {
            // A concurrent resume won; keep its listener.
            task.abort();
        } else {
            *slot = Some(task);
        }
    }

    fn accept_task_slot(&self) -> MutexGuard<'_, Option<JoinHandle<()>>> {
        self.accept_task.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        if let Some(task) = self.accept_task_slot().take() {
            task.abort();
        }
        self.shared.connections().abort_all();
    }
}

impl fmt::Debug for SmtpSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpSink")
            .field("port", &self.port)
            .field("running", &self.is_running())
            .field("messages", &self.count())
            .finish()
    }
}

/// A listener with SO_REUSEADDR, so the port can be bound again right after a stop even
/// though the connections the sink closed linger in TIME_WAIT.
fn bind(addr: SocketAddrV4) -> io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::V4(addr))?;
    socket.listen(128)
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _peer)) => stream,
            Err(_) => {
                // E.g. too many open files: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let id = shared.next_connection_id.fetch_add(1, Ordering::SeqCst);
        let mut connections = shared.connections();
        // Reap finished connection tasks so the set does not grow without bound.
        while connections.try_join_next().is_some() {}
        connections.spawn(serve(stream, id, Arc::clone(&shared)));
    }
}

/// The SMTP transaction being built on a connection.
#[derive(Default)]
struct Transaction {
    mail_from: Option<String>,
    rcpt_to: Vec<String>,
}

async fn serve(stream: TcpStream, connection_id: u64, shared: Arc<Shared>) {
    // Any I/O error just ends the connection.
    let _ = serve_io(stream, connection_id, &shared).await;
}

async fn serve_io(stream: TcpStream, connection_id: u64, shared: &Shared) -> io::Result<()> {
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    let mut greeted = false;
    let mut tx = Transaction::default();
    let mut line = Vec::new();

    reply(
        &mut writer,
        &format!("220 {SERVER_NAME} ESMTP smtp-sink\r\n"),
    )
    .await?;
    loop {
        line.clear();
        if !read_line(&mut reader, &mut line).await? {
            return Ok(());
        }
        let Ok(command_line) = std::str::from_utf8(trim_eol(&line)) else {
            reply(&mut writer, "500 5.5.2 Syntax error: not UTF-8\r\n").await?;
            continue;
        };
        let (verb, arg) = match command_line.split_once(' ') {
            Some((verb, arg)) => (verb, arg.trim()),
            None => (command_line, ""),
        };
        match verb.to_ascii_uppercase().as_str() {
            "EHLO" | "HELO" if arg.is_empty() => {
                reply(&mut writer, "501 5.5.4 Syntax: EHLO hostname\r\n").await?;
            }
            "EHLO" => {
                greeted = true;
                tx = Transaction::default();
                let ehlo = format!(
                    "250-{SERVER_NAME} greets {arg}\r\n\
                     250-8BITMIME\r\n\
                     250-SMTPUTF8\r\n\
                     250-ENHANCEDSTATUSCODES\r\n\
                     250 SIZE {MAX_SIZE}\r\n"
                );
                reply(&mut writer, &ehlo).await?;
            }
            "HELO" => {
                greeted = true;
                tx = Transaction::default();
                reply(&mut writer, &format!("250 {SERVER_NAME}\r\n")).await?;
            }
            "MAIL" => {
                if !greeted {
                    reply(&mut writer, "503 5.5.1 Send EHLO/HELO first\r\n").await?;
                } else if tx.mail_from.is_some() {
                    reply(&mut writer, "503 5.5.1 Nested MAIL command\r\n").await?;
                } else if let Some(path) = parse_path(arg, "FROM:") {
                    if shared.transient_failure.load(Ordering::SeqCst) {
                        reply(&mut writer, "451 4.3.0 try again later\r\n").await?;
                    } else {
                        tx.mail_from = Some(path);
                        reply(&mut writer, "250 2.1.0 Ok\r\n").await?;
                    }
                } else {
                    reply(&mut writer, "501 5.5.4 Syntax: MAIL FROM:<address>\r\n").await?;
                }
            }
            "RCPT" => {
                if tx.mail_from.is_none() {
                    reply(&mut writer, "503 5.5.1 Need MAIL before RCPT\r\n").await?;
                } else if let Some(path) = parse_path(arg, "TO:").filter(|p| !p.is_empty()) {
                    tx.rcpt_to.push(path);
                    reply(&mut writer, "250 2.1.5 Ok\r\n").await?;
                } else {
                    reply(&mut writer, "501 5.5.4 Syntax: RCPT TO:<address>\r\n").await?;
                }
            }
            "DATA" => {
                if tx.mail_from.is_none() {
                    reply(&mut writer, "503 5.5.1 Need MAIL command\r\n").await?;
                } else if tx.rcpt_to.is_empty() {
                    reply(&mut writer, "503 5.5.1 Need RCPT (recipient)\r\n").await?;
                } else if !arg.is_empty() {
                    reply(&mut writer, "501 5.5.4 Syntax: DATA\r\n").await?;
                } else {
                    reply(&mut writer, "354 End data with <CR><LF>.<CR><LF>\r\n").await?;
                    let Some(raw) = read_data(&mut reader).await? else {
                        // The client went away mid-message: nothing is stored.
                        return Ok(());
                    };
                    dawdle(shared).await;
                    let tx = std::mem::take(&mut tx);
                    shared.store(ReceivedMessage {
                        mail_from: tx.mail_from.unwrap_or_default(),
                        rcpt_to: tx.rcpt_to,
                        raw,
                        connection_id,
                    });
                    reply(&mut writer, "250 2.0.0 Ok: queued\r\n").await?;
                }
            }
            "RSET" => {
                tx = Transaction::default();
                reply(&mut writer, "250 2.0.0 Ok\r\n").await?;
            }
            "NOOP" => reply(&mut writer, "250 2.0.0 Ok\r\n").await?,
            "QUIT" => {
                reply(&mut writer, "221 2.0.0 Bye\r\n").await?;
                let _ = writer.shutdown().await;
                return Ok(());
            }
            _ => reply(&mut writer, "502 5.5.2 Command not recognized\r\n").await?,
        }
    }
}

/// The wait of a slow server before it answers a message's data ([`SmtpSink::set_dawdle`]).
async fn dawdle(shared: &Shared) {
    let delay = Duration::from_millis(shared.dawdle_ms.load(Ordering::SeqCst));
    if delay.is_zero() {
        return;
    }
    // Subscribed before announcing the wait, so a release right after it is not missed.
    let mut released = shared.dawdle_released.subscribe();
    released.mark_unchanged();
    shared.dawdling.send_modify(|count| *count += 1);
    tokio::select! {
        _ = tokio::time::sleep(delay) => {}
        _ = released.changed() => {}
    }
}

async fn reply(writer: &mut (impl AsyncWriteExt + Unpin), text: &str) -> io::Result<()> {
    writer.write_all(text.as_bytes()).await?;
    writer.flush().await
}

/// Reads one line, terminator included, however the bytes are split across TCP reads.
/// `false` at end of stream (a trailing partial line is dropped).
async fn read_line(
    reader: &mut (impl AsyncBufReadExt + Unpin),
    line: &mut Vec<u8>,
) -> io::Result<bool> {
    let n = reader.read_until(b'\n', line).await?;
    Ok(n > 0 && line.ends_with(b"\n"))
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Reads the message after `354` up to the line holding a single `.`, undoing
/// dot-stuffing and keeping every other byte. `None` if the stream ends first.
async fn read_data(reader: &mut (impl AsyncBufReadExt + Unpin)) -> io::Result<Option<Vec<u8>>> {
    let mut raw = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if !read_line(reader, &mut line).await? {
            return Ok(None);
        }
        if trim_eol(&line) == b"." {
            return Ok(Some(raw));
        }
        let unstuffed = line.strip_prefix(b".").unwrap_or(&line);
        raw.extend_from_slice(unstuffed);
    }
}

/// Parses `FROM:<path> [params]` / `TO:<path> [params]` (keyword case-insensitive, space
/// allowed after the colon, parameters ignored) into the path without brackets.
fn parse_path(arg: &str, keyword: &str) -> Option<String> {
    let head = arg.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = arg[keyword.len()..].trim_start();
    let rest = rest.strip_prefix('<')?;
    let end = rest.find('>')?;
    Some(rest[..end].to_owned())
}
