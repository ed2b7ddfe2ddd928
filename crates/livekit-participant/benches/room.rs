//! Room benchmarks against a real livekit-server on loopback, Rust participant vs the official
//! SDK (`@livekit/rtc-node`), measured in one run on the same server.
//!
//! `cargo bench -p livekit-participant --bench room [-- latency|throughput|memory|join]`
//!
//! - latency: one-way latency of 1 KB reliable messages (1,000, one every 5 ms), two Rust
//!   participants in this process vs two SDK participants in one Node process.
//! - throughput: one Rust sender pushing 1 KB reliable messages to one receiver for 5 s as fast
//!   as the transport accepts them; reports the rate and whether anything was lost or lagged.
//! - memory: resident memory per idle connected participant (50 of them), Rust vs SDK.
//! - join: 200 Rust participants join concurrently; time until all are connected.
//!
//! Every loop is bounded in count and time; all traffic stays on 127.0.0.1.

use std::time::{Duration, Instant};

use livekit_participant::{Credentials, Event, Options, Participant, Reliability, StaticToken};
use testkit::LiveKitServer;
use testkit::node;

const ROOM: &str = "private-messages";

fn token(lk: &LiveKitServer, identity: &str) -> String {
    lk.token(ROOM, identity, "")
}

async fn join(lk: &LiveKitServer, identity: &str) -> (Participant, livekit_participant::Events) {
    let opts = Options {
        connect_timeout: Duration::from_secs(120),
        ..Options::default()
    };
    Participant::connect(
        StaticToken(Credentials {
            url: lk.ws_url(),
            token: token(lk, identity),
        }),
        opts,
    )
    .await
    .expect("join")
}

/// The last stdout line that is a JSON object with `key` (the SDK may log to stdout too).
fn json_line(out: &str, key: &str) -> serde_json::Value {
    out.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l.trim()).ok())
        .find(|v| v.get(key).is_some())
        .unwrap_or_else(|| panic!("no JSON line with {key} in: {out}"))
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)]
}

async fn latency(lk: &LiveKitServer) {
    const COUNT: usize = 1000;
    let (a, _ea) = join(lk, "lat-a").await;
    let (_b, mut eb) = join(lk, "lat-b").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let epoch = Instant::now();
    let receiver = tokio::spawn(async move {
        let mut lat = Vec::with_capacity(COUNT);
        while lat.len() < COUNT {
            match eb.recv_timeout(Duration::from_secs(10)).await {
                Some(Event::Data(p)) => {
                    let sent = u64::from_le_bytes(p.payload[..8].try_into().expect("8 bytes"));
                    lat.push((epoch.elapsed().as_nanos() as u64 - sent) as f64 / 1e6);
                }
                Some(_) => {}
                None => break,
            }
        }
        lat
    });
    let to = vec!["lat-b".to_owned()];
    let mut buf = vec![0u8; 1000];
    for _ in 0..COUNT {
        buf[..8].copy_from_slice(&(epoch.elapsed().as_nanos() as u64).to_le_bytes());
        a.send(&buf, &to, Some("lat-b"), Reliability::Reliable)
            .await
            .expect("send");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut lat = receiver.await.expect("receiver");
    lat.sort_by(|x, y| x.total_cmp(y));
    println!(
        "latency  rust→rust  1 KB reliable: p50 {:.2} ms, p99 {:.2} ms ({} of {COUNT} received)",
        quantile(&lat, 0.5),
        quantile(&lat, 0.99),
        lat.len()
    );
    let out = node::run(
        "bench-sdk.mjs",
        &[
            "latency",
            &lk.ws_url(),
            &token(lk, "sdk-lat-a"),
            &token(lk, "sdk-lat-b"),
            &COUNT.to_string(),
        ],
        Duration::from_secs(120),
    )
    .await
    .expect("sdk latency");
    let v = json_line(&out, "p50_ms");
    println!(
        "latency  sdk→sdk    1 KB reliable: p50 {:.2} ms, p99 {:.2} ms ({} of {COUNT} received)",
        v["p50_ms"].as_f64().unwrap_or(f64::NAN),
        v["p99_ms"].as_f64().unwrap_or(f64::NAN),
        v["received"]
    );
}

async fn throughput(lk: &LiveKitServer) {
    const SECONDS: u64 = 3;
    let (a, _ea) = join(lk, "tp-a").await;
    let (_b, eb) = join(lk, "tp-b").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (count_tx, count_rx) = tokio::sync::watch::channel((0u64, Instant::now()));
    let receiver = tokio::spawn(async move {
        let mut eb = eb;
        let mut n = 0u64;
        while let Some(e) = eb.recv_timeout(Duration::from_secs(5)).await {
            if matches!(e, Event::Data(_)) {
                n += 1;
                let _ = count_tx.send((n, Instant::now()));
            }
        }
    });
    let to = vec!["tp-b".to_owned()];
    let buf = vec![7u8; 1000];
    let mut total_sent = 0u64;
    let mut best = 0u64;
    // Paced steps: a rate is sustained when every message arrives within 100 ms of the end of
    // the step (no loss, no backlog building up).
    for rate in [2_000u64, 4_000, 6_000, 8_000, 10_000, 12_000, 14_000] {
        let per_tick = rate / 100;
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        let start = Instant::now();
        let mut sent = 0u64;
        while start.elapsed() < Duration::from_secs(SECONDS) {
            tick.tick().await;
            for _ in 0..per_tick {
                a.send(&buf, &to, Some("tp-b"), Reliability::Reliable)
                    .await
                    .expect("send");
                sent += 1;
            }
        }
        let stopped = Instant::now();
        let achieved = sent as f64 / stopped.duration_since(start).as_secs_f64();
        total_sent += sent;
        let mut rx = count_rx.clone();
        let caught_up = tokio::time::timeout(
            Duration::from_secs(5),
            rx.wait_for(|(n, _)| *n >= total_sent),
        )
        .await
        .is_ok();
        let (received, last) = *count_rx.borrow();
        let lag = last.saturating_duration_since(stopped);
        let sustained =
            caught_up && lag < Duration::from_millis(100) && achieved >= rate as f64 * 0.95;
        println!(
            "throughput rust→rust 1 KB reliable at {rate} msg/s: sent {sent} ({achieved:.0}/s), {} received, last one {:.0} ms after the sender stopped{}",
            if received >= total_sent {
                "all"
            } else {
                "NOT all"
            },
            lag.as_secs_f64() * 1000.0,
            if sustained { "" } else { "  ← not sustained" }
        );
        if !sustained {
            break;
        }
        best = rate;
        total_sent = received;
    }
    println!("throughput rust→rust 1 KB reliable: highest sustained rate {best} msg/s");
    receiver.abort();
}

async fn memory(lk: &LiveKitServer) {
    const N: usize = 50;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = testkit::rss_kib();
    let mut held = Vec::new();
    for i in 0..N {
        held.push(join(lk, &format!("idle-rust-{i}")).await);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = testkit::rss_kib();
    println!(
        "memory   rust: {N} idle participants add {:.1} MiB = {:.0} KiB each (process {:.1} → {:.1} MiB)",
        (after - before) as f64 / 1024.0,
        (after - before) as f64 / N as f64,
        before as f64 / 1024.0,
        after as f64 / 1024.0
    );
    drop(held);
    let dir = std::env::temp_dir().join(format!("pchat-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("tokens.txt");
    let tokens: Vec<String> = (0..N)
        .map(|i| token(lk, &format!("idle-sdk-{i}")))
        .collect();
    std::fs::write(&file, tokens.join("\n")).expect("tokens");
    let out = node::run(
        "bench-sdk.mjs",
        &["idle", &lk.ws_url(), &file.display().to_string()],
        Duration::from_secs(240),
    )
    .await
    .expect("sdk idle");
    let _ = std::fs::remove_dir_all(&dir);
    let v = json_line(&out, "loaded_kib");
    let (b, l) = (
        v["baseline_kib"].as_u64().unwrap_or(0),
        v["loaded_kib"].as_u64().unwrap_or(0),
    );
    println!(
        "memory   sdk:  {N} idle participants add {:.1} MiB = {:.0} KiB each (process {:.1} → {:.1} MiB)",
        (l - b) as f64 / 1024.0,
        (l - b) as f64 / N as f64,
        b as f64 / 1024.0,
        l as f64 / 1024.0
    );
}

async fn join_many(lk: &LiveKitServer) {
    const N: usize = 200;
    let start = Instant::now();
    let results = futures_util::future::join_all((0..N).map(|i| {
        let id = format!("many-{i:03}");
        async move {
            let opts = Options {
                connect_timeout: Duration::from_secs(120),
                ..Options::default()
            };
            let r = Participant::connect(
                StaticToken(Credentials {
                    url: lk.ws_url(),
                    token: token(lk, &id),
                }),
                opts,
            )
            .await;
            (r, start.elapsed())
        }
    }))
    .await;
    let ok: Vec<_> = results.iter().filter(|(r, _)| r.is_ok()).collect();
    let slowest = ok.iter().map(|(_, t)| *t).max().unwrap_or_default();
    let mut times: Vec<f64> = ok.iter().map(|(_, t)| t.as_secs_f64()).collect();
    times.sort_by(|a, b| a.total_cmp(b));
    println!(
        "join     {} of {N} Rust participants connected (both channels open); all done {:.1} s after the start (median {:.1} s); RSS {:.1} MiB",
        ok.len(),
        slowest.as_secs_f64(),
        if times.is_empty() {
            0.0
        } else {
            quantile(&times, 0.5)
        },
        testkit::rss_kib() as f64 / 1024.0
    );
    for (r, _) in &results {
        if let Err(e) = r {
            println!("  failed: {e}");
            break;
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let all = args.is_empty();
    let want = |name: &str| all || args.iter().any(|a| a == name);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let lk = LiveKitServer::start()
            .await
            .expect("livekit-server (run scripts/setup)");
        if want("latency") {
            latency(&lk).await;
        }
        if want("throughput") {
            throughput(&lk).await;
        }
        if want("memory") {
            memory(&lk).await;
        }
        if want("join") {
            join_many(&lk).await;
        }
    });
}
