//! A plain HTTP/1.1 client over a raw socket: requests as a producer service sends them,
//! answers exactly as they come off the wire.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An HTTP response as read off the socket.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|error| panic!("not JSON ({error}): {self:?}"))
    }

    /// The field a 400 names.
    pub fn field(&self) -> String {
        assert_eq!(self.status, 400, "{self:?}");
        self.json()["field"].as_str().expect("a field").to_string()
    }
}

/// One request on a fresh connection (`Connection: close`), the whole answer read back.
pub async fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Answer {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.expect("write head");
    // The server may answer (413) and close before reading a large body: a failed write is
    // then expected, and the answer is still there to read.
    let _ = stream.write_all(body).await;
    let mut raw = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buffer = [0u8; 8192];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => raw.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer to {method} {path}");
    let raw = String::from_utf8(raw).expect("a UTF-8 answer");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a complete answer");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "the helper reads only Content-Length bodies: {head}"
    );
    Answer {
        status,
        headers: head.to_string(),
        body: body.to_string(),
    }
}

/// The service's router on 127.0.0.1:<port>, stopped when dropped.
pub struct Server {
    pub port: u16,
    _stop: tokio::sync::oneshot::Sender<()>,
}

pub async fn serve(env: &super::TestEnv) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(lifecycle::http::serve(
        env.app.clone(),
        listener,
        async move {
            let _ = stopped.await;
        },
    ));
    Server { port, _stop: stop }
}
