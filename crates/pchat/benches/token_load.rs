//! Load test of `GET /private-messages/token`.
//!
//! `cargo bench -p pchat --bench token_load`
//!
//! Starts `pchat privacy-stub` and `pchat gatekeeper` (release build) as their own processes on
//! 127.0.0.1, signs headers for `WALLETS` distinct wallets, then keeps `CONNECTIONS` keep-alive
//! connections busy for `SECONDS` seconds (after a warm-up) and reports throughput, latency
//! percentiles and the gatekeeper's resident memory. The load generator runs on the same machine.
//! Knobs: PCHAT_BENCH_CONNECTIONS (64), PCHAT_BENCH_WALLETS (128), PCHAT_BENCH_SECONDS (10).
//! Every loop is bounded by time; all traffic stays on loopback.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn wait_up(url: &str) {
    let client = reqwest::Client::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(15) {
        if client.get(url).send().await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{url} did not come up");
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` / `cargo bench -- --list`
    }
    let connections = env_usize("PCHAT_BENCH_CONNECTIONS", 64);
    let wallets = env_usize("PCHAT_BENCH_WALLETS", 128);
    let seconds = env_usize("PCHAT_BENCH_SECONDS", 10) as u64;
    let bin = env!("CARGO_BIN_EXE_pchat");

    let stub_port = free_port();
    let _stub = Proc(
        Command::new(bin)
            .args(["privacy-stub", "--port", &stub_port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("privacy stub"),
    );
    let gk_port = free_port();
    let gk = Proc(
        Command::new(bin)
            .arg("gatekeeper")
            .env("HTTP_SERVER_PORT", gk_port.to_string())
            .env("PROD_LIVEKIT_HOST", "ws://127.0.0.1:7880")
            .env("PROD_LIVEKIT_API_KEY", "benchkey")
            .env(
                "PROD_LIVEKIT_API_SECRET",
                "bench-secret-0123456789abcdef0123456789",
            )
            .env(
                "SOCIAL_SERVICE_URL",
                format!("http://127.0.0.1:{stub_port}"),
            )
            .env("COMMS_GATEKEEPER_AUTH_TOKEN", "bench")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("gatekeeper"),
    );
    let gk_pid = gk.0.id();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async move {
        let base = format!("http://127.0.0.1:{gk_port}");
        wait_up(&format!("{base}/ping")).await;
        wait_up(&format!("http://127.0.0.1:{stub_port}/ping")).await;

        // Signed headers for distinct wallets (valid for the 60 s window; no nonce).
        let expiration = chrono::Utc::now() + chrono::Duration::minutes(10);
        let now = authchain::now_ms();
        let signed: Arc<Vec<Vec<(String, String)>>> = Arc::new(
            (0..wallets)
                .map(|_| {
                    let id = authchain::Identity::new(&authchain::Wallet::random(), expiration);
                    id.signed_fetch_headers("GET", "/private-messages/token", now, r#"{"signer":"dcl:explorer"}"#)
                })
                .collect(),
        );
        let rss_before = testkit::proc_status_kib(gk_pid, "VmRSS:").unwrap_or(0);

        let measuring = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let errors = Arc::new(AtomicU64::new(0));
        let warmup = Duration::from_secs(2);
        let mut tasks = Vec::new();
        // Requests are written as raw HTTP/1.1 on one keep-alive connection per task (like wrk),
        // so that the load generator takes as little of the shared CPU as it can.
        let addr: std::net::SocketAddr = format!("127.0.0.1:{gk_port}").parse().expect("addr");
        let requests: Arc<Vec<Vec<u8>>> = Arc::new(
            signed
                .iter()
                .map(|headers| {
                    let mut r = format!("GET /private-messages/token HTTP/1.1\r\nhost: {addr}\r\n");
                    for (k, v) in headers {
                        r.push_str(&format!("{k}: {v}\r\n"));
                    }
                    r.push_str("\r\n");
                    r.into_bytes()
                })
                .collect(),
        );
        for c in 0..connections {
            let (requests, measuring, stop, errors) =
                (requests.clone(), measuring.clone(), stop.clone(), errors.clone());
            tasks.push(tokio::spawn(async move {
                let mut hist = Histogram::<u64>::new_with_bounds(1, 10_000_000, 3).expect("hist");
                let mut conn = Http1::connect(addr).await.expect("connect");
                let mut i = c;
                while !stop.load(Ordering::Relaxed) {
                    let req = &requests[i % requests.len()];
                    i += connections;
                    let t = Instant::now();
                    let ok = match conn.exchange(req).await {
                        Ok(status) => status == 200,
                        Err(_) => {
                            conn = match Http1::connect(addr).await {
                                Ok(c) => c,
                                Err(_) => break,
                            };
                            false
                        }
                    };
                    if measuring.load(Ordering::Relaxed) {
                        if ok {
                            let _ = hist.record(t.elapsed().as_micros().max(1) as u64);
                        } else {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                hist
            }));
        }
        tokio::time::sleep(warmup).await;
        measuring.store(true, Ordering::Relaxed);
        let started = Instant::now();
        let mut peak_rss = 0;
        while started.elapsed() < Duration::from_secs(seconds) {
            tokio::time::sleep(Duration::from_millis(250)).await;
            peak_rss = peak_rss.max(testkit::proc_status_kib(gk_pid, "VmRSS:").unwrap_or(0));
        }
        measuring.store(false, Ordering::Relaxed);
        let elapsed = started.elapsed();
        stop.store(true, Ordering::Relaxed);
        let mut total = Histogram::<u64>::new_with_bounds(1, 10_000_000, 3).expect("hist");
        for t in tasks {
            if let Ok(h) = t.await {
                total.add(h).expect("merge");
            }
        }
        let n = total.len();
        println!("token endpoint load: {connections} connections, {wallets} wallets, {seconds} s measured");
        println!("  requests ok     {n}");
        println!("  errors          {}", errors.load(Ordering::Relaxed));
        println!("  throughput      {:.0} req/s", n as f64 / elapsed.as_secs_f64());
        println!("  latency p50     {:.2} ms", total.value_at_quantile(0.50) as f64 / 1000.0);
        println!("  latency p99     {:.2} ms", total.value_at_quantile(0.99) as f64 / 1000.0);
        println!("  latency max     {:.2} ms", total.max() as f64 / 1000.0);
        println!("  gatekeeper RSS  idle {:.1} MiB, peak under load {:.1} MiB (VmHWM {:.1} MiB)",
            rss_before as f64 / 1024.0, peak_rss as f64 / 1024.0, testkit::proc_status_kib(gk_pid, "VmHWM:").unwrap_or(0) as f64 / 1024.0);
    });
}

/// A minimal HTTP/1.1 keep-alive client for the load loop: writes a prepared request and reads
/// one response (status line, headers, Content-Length body). Only for this benchmark, where a
/// full client's CPU cost would be charged to the server under test.
struct Http1 {
    stream: tokio::net::TcpStream,
    buf: Vec<u8>,
}

impl Http1 {
    async fn connect(addr: std::net::SocketAddr) -> std::io::Result<Self> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Http1 {
            stream,
            buf: Vec::with_capacity(4096),
        })
    }

    async fn exchange(&mut self, request: &[u8]) -> std::io::Result<u16> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_owned());
        self.stream.write_all(request).await?;
        self.buf.clear();
        loop {
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(Duration::from_secs(5), self.stream.read(&mut chunk))
                .await
                .map_err(|_| bad("timeout"))??;
            if n == 0 {
                return Err(bad("closed"));
            }
            self.buf.extend_from_slice(&chunk[..n]);
            let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let head = std::str::from_utf8(&self.buf[..end]).map_err(|_| bad("utf8"))?;
            let status: u16 = head
                .get(9..12)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| bad("status"))?;
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .ok_or_else(|| bad("content-length"))?;
            if self.buf.len() >= end + 4 + len {
                return Ok(status);
            }
        }
    }
}
