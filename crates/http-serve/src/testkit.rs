//! Client-side probes for tests of a server run by [`crate::serve`]: a slow header sender, idle
//! sockets, a kept-alive connection and a timed `GET`. They speak just enough HTTP/1.1 over a
//! raw socket to do what a real client library would not (send a header one byte at a time,
//! keep a connection silent); every wait is bounded.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends the head of `GET /ping` one byte every `interval`, never finishing it, until the server
/// closes the connection. Returns how long that took, or `None` if it was still open after
/// `max` (or the head ran out first).
pub async fn slow_header_sender(
    addr: SocketAddr,
    interval: Duration,
    max: Duration,
) -> io::Result<Option<Duration>> {
    let mut stream = TcpStream::connect(addr).await?;
    let started = Instant::now();
    let head = b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let (mut reader, mut writer) = stream.split();
    let trickle = async {
        for byte in head {
            if writer.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(interval).await;
        }
        // Out of bytes (or the write failed): wait for the reader to see the close.
        std::future::pending::<()>().await;
    };
    let closed = async {
        let mut buf = [0u8; 1024];
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    let outcome = tokio::time::timeout(max, async {
        tokio::select! {
            () = trickle => {}
            () = closed => {}
        }
    })
    .await;
    Ok(outcome.ok().map(|()| started.elapsed()))
}

/// Opens `n` connections that send nothing.
pub async fn idle_sockets(addr: SocketAddr, n: usize) -> io::Result<Vec<TcpStream>> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(TcpStream::connect(addr).await?);
    }
    Ok(out)
}

/// How many of `sockets` the server has closed (read end of file or an error) within `wait`.
pub async fn count_closed(sockets: &mut [TcpStream], wait: Duration) -> usize {
    let deadline = tokio::time::Instant::now() + wait;
    let mut closed = 0;
    for s in sockets.iter_mut() {
        let mut buf = [0u8; 256];
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => closed += 1,
            // Data (a response) or still open at the deadline.
            Ok(Ok(_)) | Err(_) => {}
        }
    }
    closed
}

/// One `GET path` on a new connection with `Connection: close`; the status code and body, or
/// an error if it took longer than `max`.
pub async fn get(addr: SocketAddr, path: &str, max: Duration) -> io::Result<(u16, String)> {
    tokio::time::timeout(max, async {
        let mut stream = TcpStream::connect(addr).await?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        parse_response(&raw)
    })
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("GET {path}: no answer")))?
}

/// `GET path` on a new kept-alive connection; returns the status and the open connection after
/// the whole response has arrived.
pub async fn keep_alive_get(
    addr: SocketAddr,
    path: &str,
    max: Duration,
) -> io::Result<(u16, TcpStream)> {
    tokio::time::timeout(max, async {
        let mut stream = TcpStream::connect(addr).await?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "closed before the response ended",
                ));
            }
            raw.extend_from_slice(&buf[..n]);
            if let Some((status, body_start, length)) = head_of(&raw)?
                && raw.len() >= body_start + length
            {
                return Ok((status, stream));
            }
        }
    })
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("GET {path}: no answer")))?
}

/// Waits until the server closes `stream`; how long that took, or `None` after `max`.
pub async fn closed_within(stream: &mut TcpStream, max: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 256];
    tokio::time::timeout(max, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .ok()
    .map(|()| started.elapsed())
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_owned())
}

/// The status, where the body starts and its `Content-Length` (0 if absent), once the head is in.
fn head_of(raw: &[u8]) -> io::Result<Option<(u16, usize, usize)>> {
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| invalid("head is not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| invalid("no status line"))?;
    let length = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.trim().parse::<usize>())
        .transpose()
        .map_err(|_| invalid("bad content-length"))?
        .unwrap_or(0);
    Ok(Some((status, end + 4, length)))
}

fn parse_response(raw: &[u8]) -> io::Result<(u16, String)> {
    let (status, body_start, _) = head_of(raw)?.ok_or_else(|| invalid("no response head"))?;
    Ok((
        status,
        String::from_utf8_lossy(&raw[body_start..]).into_owned(),
    ))
}
