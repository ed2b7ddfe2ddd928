//! The shared room's cost curve (issue #11, item 2): N data-only participants in ONE room of one
//! livekit-server, as ADR-208 puts every online player.
//!
//! `cargo bench -p e2e-tests --bench room_scale [-- N N …]` (default 100 250 500 1000)
//!
//! `cargo bench -p e2e-tests --bench room_scale -- --nodes 2 --shards 4 1000` measures the same
//! on a LiveKit cluster of `--nodes` livekit-servers sharing one Redis, the players spread over
//! `--shards` rooms by their home room (docs/sharded-rooms.md), each signalling through the node
//! its address hashes to (as the gatekeeper's `LIVEKIT_NODE_URLS` hands them out), and reports
//! each node's CPU and the rooms it hosts; latencies are then between members of one room.
//!
//! For each N, a fresh livekit-server v1.13.5 on 127.0.0.1 and N of our Rust participants
//! (`livekit_participant`, one tokio task and one UDP socket each) in this process, joining at
//! most 50 at a time. Measured, in this order:
//! - **join**: time until every participant has both data channels open, and until a sample of
//!   20 of them lists all N−1 others (LiveKit announces data-only joiners in 3 s batches);
//! - **rest** (10 s, after 5 s of settling): livekit-server CPU (per cent of one core) and
//!   resident memory, signalling bytes received per participant per second;
//! - **churn** (10 s): each second 1% of N (at least 1) leave and join again; signalling per
//!   participant per second measured on the half that does not churn; server CPU;
//! - **metadata** (10 s): one privacy-metadata change per second through LiveKit's RoomService
//!   (UpdateParticipant, what the gatekeeper's PATCH does), on a random participant;
//! - **latency idle**: one-way latency of 300 packets (64 bytes, reliable, 10 ms apart) from
//!   participant 0 to participant 1 while the others idle;
//! - **latency loaded**: the same pair while 100 others each send 1 packet/s to random others
//!   (15 s; the latencies of all of those packets are reported too).
//!
//! Writes a Markdown table and a fit of each figure to the model (FACTS §5: joins, leaves and
//! metadata changes go to all N participants, so per-client signalling under churn grows with N
//! and the server's work with N²) to stdout, the raw figures to
//! `$CARGO_TARGET_DIR/room-scale.json`, and a plot to `docs/bench/room-scale.png` (or
//! `PCHAT_BENCH_PLOT`). The plot's labels use the DejaVu Sans font from
//! `/usr/share/fonts/truetype/dejavu/` (Debian's `fonts-dejavu-core`) or `PCHAT_BENCH_FONT`.
//!
//! Every phase is bounded in time; a participant that fails to join is counted and reported.

use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e_tests::swarm::{Swarm, percentile};
use gatekeeper::livekit::{LiveKitRoomService, RoomService};
use livekit_participant::Credentials;
use pchat_core::rooms::{home_room, room_name, stable_hash};
use rand::Rng;
use serde_json::json;
use testkit::{LiveKitCluster, LiveKitServer, proc_cpu_time, proc_status_kib};

const ROOM: &str = "private-messages-scale";
const JOIN_CONCURRENCY: usize = 50;
const SETTLE: Duration = Duration::from_secs(5);
const WINDOW: Duration = Duration::from_secs(10);
const LOADED_WINDOW: Duration = Duration::from_secs(15);
const ROSTER_LIMIT: Duration = Duration::from_secs(120);
const LOAD_SENDERS: usize = 100;

const ALL: &str = r#"{"private_messages_privacy":"all"}"#;
const ONLY_FRIENDS: &str = r#"{"private_messages_privacy":"only_friends"}"#;

fn identity(i: usize) -> String {
    format!("0x{i:040x}")
}

/// Where the participants go: one livekit-server, or a cluster of `nodes` sharing Redis with the
/// players spread over `shards` rooms by their home room (`pchat_core::rooms`, as the gatekeeper
/// does with `PRIVATE_MESSAGES_ROOM_SHARDS`).
#[derive(Clone, Copy, Debug)]
struct Setup {
    nodes: usize,
    shards: u32,
}

struct Deployment {
    setup: Setup,
    single: Option<LiveKitServer>,
    cluster: Option<LiveKitCluster>,
}

impl Deployment {
    async fn start(setup: Setup) -> Deployment {
        if setup.nodes <= 1 {
            Deployment {
                setup,
                single: Some(LiveKitServer::start().await.expect("livekit-server")),
                cluster: None,
            }
        } else {
            let cluster = LiveKitCluster::start(setup.nodes)
                .await
                .expect("livekit cluster");
            // Room k on node k mod nodes: LiveKit's own selector picks a random node per room,
            // which with K = 4 on 2 nodes stacks every room on one node once in eight runs; the
            // bench measures the design with the rooms spread, as an operator can pin them.
            for k in 0..setup.shards.max(1) {
                cluster
                    .create_room_on(&room_name(ROOM, k), k as usize % setup.nodes)
                    .await
                    .expect("CreateRoom");
            }
            Deployment {
                setup,
                single: None,
                cluster: Some(cluster),
            }
        }
    }

    fn nodes(&self) -> Vec<&LiveKitServer> {
        match (&self.single, &self.cluster) {
            (Some(lk), _) => vec![lk],
            (None, Some(c)) => c.nodes.iter().collect(),
            (None, None) => Vec::new(),
        }
    }

    fn room_of(&self, identity: &str) -> String {
        room_name(ROOM, home_room(identity, self.setup.shards))
    }

    /// A participant's credentials: its home room, signalling through node `hash mod nodes` (as
    /// the gatekeeper's `LIVEKIT_NODE_URLS` picks it).
    fn credentials(&self, identity: &str) -> Credentials {
        let nodes = self.nodes();
        let node = nodes[(stable_hash(identity.bytes()) % nodes.len() as u64) as usize];
        Credentials {
            url: node.ws_url(),
            token: node.token(&self.room_of(identity), identity, ALL),
        }
    }
}

/// CPU used by processes over a window, as per cent of one core (each, and in total).
struct CpuMeter {
    pids: Vec<u32>,
    cpu: Vec<Duration>,
    at: Instant,
}

impl CpuMeter {
    fn start(pids: &[u32]) -> CpuMeter {
        CpuMeter {
            pids: pids.to_vec(),
            cpu: pids
                .iter()
                .map(|&p| proc_cpu_time(p).unwrap_or_default())
                .collect(),
            at: Instant::now(),
        }
    }
    fn each(&self) -> Vec<f64> {
        let wall = self.at.elapsed().as_secs_f64();
        self.pids
            .iter()
            .zip(&self.cpu)
            .map(|(&p, &before)| {
                let used = proc_cpu_time(p).unwrap_or_default().saturating_sub(before);
                100.0 * used.as_secs_f64() / wall
            })
            .collect()
    }
    fn percent(&self) -> f64 {
        self.each().iter().sum()
    }
}

#[derive(Default, Clone, Debug)]
struct Figures {
    n: usize,
    nodes: usize,
    shards: u32,
    /// Each node's CPU under churn (% of one core) and the rooms it hosts.
    node_churn_cpu: Vec<f64>,
    node_rest_cpu: Vec<f64>,
    placement: Vec<usize>,
    joined: usize,
    join_s: f64,
    roster_s: f64,
    join_bytes: f64,
    rest_cpu: f64,
    rest_rss_mib: f64,
    rest_bytes: f64,
    bench_cpu_rest: f64,
    churn_cpu: f64,
    churn_bytes: f64,
    churn_rejoin_failures: usize,
    meta_cpu: f64,
    meta_bytes: f64,
    idle_p50_ms: f64,
    idle_p99_ms: f64,
    load_p50_ms: f64,
    load_p99_ms: f64,
    load_packets: usize,
    send_errors: usize,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Signalling received by `indices` per participant per second since `before` (a
/// [`Swarm::signal_bytes`] reading taken `window` ago).
fn bytes_rate(swarm: &Swarm, indices: &[usize], before: u64, window: Duration) -> f64 {
    let after = swarm.signal_bytes(indices.iter().copied());
    after.saturating_sub(before) as f64 / indices.len().max(1) as f64 / window.as_secs_f64()
}

async fn probe(swarm: &Swarm, to: usize, count: usize, gap: Duration, errors: &mut usize) {
    for _ in 0..count {
        if swarm.send_timed(0, to).await.is_err() {
            *errors += 1;
        }
        tokio::time::sleep(gap).await;
    }
}

async fn measure(n: usize, setup: Setup) -> Figures {
    let mut f = Figures {
        n,
        nodes: setup.nodes.max(1),
        shards: setup.shards.max(1),
        ..Figures::default()
    };
    let lk = Deployment::start(setup).await;
    let pids: Vec<u32> = lk
        .nodes()
        .iter()
        .map(|node| node.pid().expect("livekit-server pid"))
        .collect();
    let me = std::process::id();

    // Join.
    let who: Vec<_> = (0..n)
        .map(|i| {
            let id = identity(i);
            let c = lk.credentials(&id);
            (id, c)
        })
        .collect();
    let started = Instant::now();
    let mut swarm = Swarm::join(who, JOIN_CONCURRENCY).await;
    f.join_s = started.elapsed().as_secs_f64();
    f.joined = swarm.members.len();
    for (id, e) in swarm.failed.iter().take(5) {
        eprintln!("N={n}: {id} did not join: {e}");
    }
    // Who is in which room (members' indices).
    let mut rooms: std::collections::BTreeMap<String, Vec<usize>> = Default::default();
    for (i, m) in swarm.members.iter().enumerate() {
        rooms.entry(lk.room_of(&m.identity)).or_default().push(i);
    }
    let room_size = |i: usize| rooms[&lk.room_of(&swarm.members[i].identity)].len();
    let sample: Vec<usize> = (0..f.joined).step_by((f.joined / 20).max(1)).collect();
    let deadline = Instant::now() + ROSTER_LIMIT;
    loop {
        let sizes = swarm.roster_sizes(sample.iter().copied()).await;
        if sizes
            .iter()
            .zip(&sample)
            .all(|(&s, &i)| s + 1 >= room_size(i))
        {
            f.roster_s = started.elapsed().as_secs_f64();
            break;
        }
        if Instant::now() > deadline {
            eprintln!("N={n}: rosters incomplete after {ROSTER_LIMIT:?}: {sizes:?}");
            f.roster_s = f64::NAN;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!(
        "N={n}: {} joined in {:.1} s, rosters complete at {:.1} s",
        f.joined, f.join_s, f.roster_s
    );
    if let Some(cluster) = &lk.cluster {
        f.placement = vec![0; cluster.nodes.len()];
        for (room, members) in &rooms {
            let node = cluster.room_node(room).await.ok().flatten();
            eprintln!(
                "N={n}: room {room}: {} participants, on node {node:?}",
                members.len()
            );
            if let Some(node) = node {
                f.placement[node] += 1;
            }
        }
    }
    tokio::time::sleep(SETTLE).await;
    let everyone: Vec<usize> = (0..f.joined).collect();
    // What joining cost each participant in signalling: its JoinResponse (every participant
    // already there) and the announcements of those who came after it.
    f.join_bytes = swarm.signal_bytes(everyone.iter().copied()) as f64 / f.joined.max(1) as f64;

    // Rest.
    let server = CpuMeter::start(&pids);
    let bench = CpuMeter::start(&[me]);
    let before = swarm.signal_bytes(everyone.iter().copied());
    tokio::time::sleep(WINDOW).await;
    f.rest_bytes = bytes_rate(&swarm, &everyone, before, WINDOW);
    f.node_rest_cpu = server.each();
    f.rest_cpu = f.node_rest_cpu.iter().sum();
    f.bench_cpu_rest = bench.percent();
    f.rest_rss_mib = pids
        .iter()
        .map(|&p| proc_status_kib(p, "VmRSS:").unwrap_or(0) as f64 / 1024.0)
        .sum();
    eprintln!(
        "N={n}: rest: server {:.1}% CPU, {:.0} MiB; {:.0} B/participant/s; bench process {:.1}% CPU",
        f.rest_cpu, f.rest_rss_mib, f.rest_bytes, f.bench_cpu_rest
    );

    // Churn: 1% per second of the upper half leave and rejoin; the lower half is measured.
    let stable: Vec<usize> = (0..f.joined / 2).collect();
    let churners: Vec<usize> = (f.joined / 2..f.joined).collect();
    let per_second = (n / 100).max(1);
    let server = CpuMeter::start(&pids);
    let before = swarm.signal_bytes(stable.iter().copied());
    let window_start = Instant::now();
    let mut next = 0usize;
    for second in 0..WINDOW.as_secs() {
        let tick = window_start + Duration::from_secs(second);
        tokio::time::sleep_until(tick.into()).await;
        let batch: Vec<usize> = (0..per_second)
            .map(|k| churners[(next + k) % churners.len()])
            .collect();
        next += per_second;
        // Rejoin this second's batch concurrently, bounded by the second itself.
        let mut joins = Vec::new();
        for &i in &batch {
            let old = swarm.members[i].participant.clone();
            let id = swarm.members[i].identity.clone();
            let c = lk.credentials(&id);
            let recorder = swarm.recorder.clone();
            joins.push((
                i,
                tokio::spawn(async move {
                    old.leave().await;
                    e2e_tests::swarm::join_one(id, c, recorder).await
                }),
            ));
        }
        for (i, j) in joins {
            match tokio::time::timeout(Duration::from_secs(30), j).await {
                Ok(Ok(Ok(member))) => swarm.members[i] = member,
                _ => f.churn_rejoin_failures += 1,
            }
        }
    }
    tokio::time::sleep_until((window_start + WINDOW).into()).await;
    f.churn_bytes = bytes_rate(&swarm, &stable, before, WINDOW);
    f.node_churn_cpu = server.each();
    f.churn_cpu = f.node_churn_cpu.iter().sum();
    eprintln!(
        "N={n}: churn {per_second}/s: server {:.1}% CPU; {:.0} B/participant/s; {} rejoin failures",
        f.churn_cpu, f.churn_bytes, f.churn_rejoin_failures
    );
    tokio::time::sleep(SETTLE).await;

    // Metadata: one privacy change per second.
    let first = lk.nodes()[0];
    let room_service = LiveKitRoomService::new(
        &first.http_url(),
        &first.api_key,
        &first.api_secret,
        Duration::from_secs(5),
    );
    let server = CpuMeter::start(&pids);
    let before = swarm.signal_bytes(everyone.iter().copied());
    let window_start = Instant::now();
    for second in 0..WINDOW.as_secs() {
        tokio::time::sleep_until((window_start + Duration::from_secs(second)).into()).await;
        let i = rand::rng().random_range(0..f.joined);
        let metadata = if second % 2 == 0 { ONLY_FRIENDS } else { ALL };
        let identity = &swarm.members[i].identity;
        if let Err(e) = room_service
            .update_participant_metadata(&lk.room_of(identity), identity, metadata)
            .await
        {
            eprintln!("N={n}: metadata change failed: {e}");
        }
    }
    tokio::time::sleep_until((window_start + WINDOW).into()).await;
    f.meta_bytes = bytes_rate(&swarm, &everyone, before, WINDOW);
    f.meta_cpu = server.percent();
    eprintln!(
        "N={n}: metadata 1/s: server {:.1}% CPU; {:.0} B/participant/s",
        f.meta_cpu, f.meta_bytes
    );

    // Latency, idle: participant 0 to the next one in its room.
    let home0 = &rooms[&lk.room_of(&swarm.members[0].identity)];
    let partner = home0.iter().copied().find(|&i| i != 0).unwrap_or(1);
    swarm.recorder.start();
    probe(
        &swarm,
        partner,
        300,
        Duration::from_millis(10),
        &mut f.send_errors,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = swarm.recorder.stop();
    f.idle_p50_ms = ms(percentile(&idle, 0.5));
    f.idle_p99_ms = ms(percentile(&idle, 0.99));
    eprintln!(
        "N={n}: idle latency n={} p50 {:.2} ms p99 {:.2} ms",
        idle.len(),
        f.idle_p50_ms,
        f.idle_p99_ms
    );

    // Latency with 100 senders at 1 packet/s each to random others; the probe pair is 0 → 1.
    let swarm = Arc::new(swarm);
    let senders: Vec<usize> = (1..f.joined)
        .filter(|&i| i != partner)
        .take(LOAD_SENDERS)
        .collect();
    let room_of_member: Vec<Arc<Vec<usize>>> = {
        let shared: std::collections::BTreeMap<&String, Arc<Vec<usize>>> = rooms
            .iter()
            .map(|(r, m)| (r, Arc::new(m.clone())))
            .collect();
        swarm
            .members
            .iter()
            .map(|m| shared[&lk.room_of(&m.identity)].clone())
            .collect()
    };
    let errors = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    swarm.recorder.start();
    let stop_at = Instant::now() + LOADED_WINDOW;
    let mut load = Vec::new();
    for &s in &senders {
        let swarm = swarm.clone();
        let errors = errors.clone();
        let mates = room_of_member[s].clone();
        load.push(tokio::spawn(async move {
            // Spread the senders over the second.
            let offset = Duration::from_millis(rand::rng().random_range(0..1000));
            tokio::time::sleep(offset).await;
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            while Instant::now() < stop_at {
                tick.tick().await;
                // A random other participant of the sender's room.
                let mut to = mates[rand::rng().random_range(0..mates.len())];
                if to == s && mates.len() > 1 {
                    to = mates[(mates.iter().position(|&m| m == s).unwrap_or(0) + 1) % mates.len()];
                }
                if swarm.send_timed(s, to).await.is_err() {
                    errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }));
    }
    // The probe pair keeps writing 0 → 1 at 20 packets/s meanwhile.
    let mut probe_errors = 0;
    probe(
        &swarm,
        partner,
        (LOADED_WINDOW.as_millis() / 50) as usize - 20,
        Duration::from_millis(50),
        &mut probe_errors,
    )
    .await;
    for t in load {
        let _ = t.await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let loaded = swarm.recorder.stop();
    f.load_packets = loaded.len();
    f.load_p50_ms = ms(percentile(&loaded, 0.5));
    f.load_p99_ms = ms(percentile(&loaded, 0.99));
    f.send_errors += errors.load(std::sync::atomic::Ordering::Relaxed) + probe_errors;
    eprintln!(
        "N={n}: loaded: {} packets (probe pair and 100 senders) p50 {:.2} ms p99 {:.2} ms; {} send errors",
        loaded.len(),
        f.load_p50_ms,
        f.load_p99_ms,
        f.send_errors
    );

    match Arc::try_unwrap(swarm) {
        Ok(swarm) => swarm.leave_all(JOIN_CONCURRENCY).await,
        Err(_) => eprintln!("N={n}: swarm still shared; dropped without leaving"),
    }
    drop(lk);
    f
}

/// Least squares fit of `y = c0 + c1·x + … + c_d·x^d` (d ≤ 2). Hand-written: the normal
/// equations of a 3×3 system are a dozen lines, and a linear-algebra crate for this alone would
/// outweigh the bench.
fn fit(xs: &[f64], ys: &[f64], degree: usize) -> Vec<f64> {
    let m = degree + 1;
    // The augmented normal equations: row r is Σ x^(r+c) for c < m, then Σ y·x^r.
    let mut a = vec![vec![0.0; m + 1]; m];
    for (&x, &y) in xs.iter().zip(ys) {
        if !y.is_finite() {
            continue;
        }
        for (r, row) in a.iter_mut().enumerate() {
            for (c, cell) in row.iter_mut().take(m).enumerate() {
                *cell += x.powi((r + c) as i32);
            }
            row[m] += y * x.powi(r as i32);
        }
    }
    // Gauss-Jordan with partial pivoting.
    for col in 0..m {
        let pivot = (col..m)
            .max_by(|&p, &q| a[p][col].abs().total_cmp(&a[q][col].abs()))
            .unwrap_or(col);
        a.swap(col, pivot);
        let d = a[col][col];
        if d.abs() < 1e-300 {
            return vec![f64::NAN; m];
        }
        a[col].iter_mut().skip(col).for_each(|v| *v /= d);
        let pivot_row = a[col].clone();
        for (r, row) in a.iter_mut().enumerate() {
            if r != col {
                let k = row[col];
                for (v, p) in row.iter_mut().zip(&pivot_row).skip(col) {
                    *v -= k * p;
                }
            }
        }
    }
    a.iter().map(|row| row[m]).collect()
}

fn eval(c: &[f64], x: f64) -> f64 {
    c.iter()
        .enumerate()
        .map(|(i, k)| k * x.powi(i as i32))
        .sum()
}

fn show(c: &[f64]) -> String {
    match c {
        [a, b] => format!("{a:.3} + {b:.4}·N"),
        [a, b, q] => format!("{a:.3} + {b:.4}·N + {q:.3e}·N²"),
        _ => format!("{c:?}"),
    }
}

/// The smallest N (searched up to 10⁶) at which the fitted `c` reaches `limit`.
fn reach(c: &[f64], limit: f64) -> Option<f64> {
    let mut n = 1.0;
    while n < 1e6 {
        if eval(c, n) >= limit {
            return Some(n);
        }
        n *= 1.01;
    }
    None
}

fn plot(figures: &[Figures], fits: &Fits, path: &str) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    let font_path = std::env::var("PCHAT_BENCH_FONT")
        .unwrap_or_else(|_| "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf".into());
    let font = std::fs::read(&font_path)
        .map_err(|e| format!("cannot read the plot font {font_path}: {e}"))?;
    let font: &'static [u8] = Box::leak(font.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, font)
        .map_err(|_| "the plot font is not a usable TrueType font")?;

    let root = BitMapBackend::new(path, (1400, 1000)).into_drawing_area();
    root.fill(&WHITE)?;
    let panels = root.split_evenly((2, 2));
    let max_n = figures.iter().map(|f| f.n).max().unwrap_or(1000) as f64 * 1.1;
    let ns: Vec<f64> = (0..=100).map(|i| max_n * i as f64 / 100.0).collect();

    type Series<'a> = (&'a str, RGBColor, Vec<(f64, f64)>, Option<&'a [f64]>);
    let draw = |area: &DrawingArea<BitMapBackend, plotters::coord::Shift>,
                title: &str,
                y_label: &str,
                series: Vec<Series>|
     -> Result<(), Box<dyn std::error::Error>> {
        let y_max = series
            .iter()
            .flat_map(|(_, _, pts, _)| pts.iter().map(|p| p.1))
            .filter(|y| y.is_finite())
            .fold(0.0_f64, f64::max)
            * 1.2
            + 1e-9;
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..max_n, 0.0..y_max)?;
        chart
            .configure_mesh()
            .x_desc("participants in the room (N)")
            .y_desc(y_label)
            .label_style(("sans-serif", 14))
            .draw()?;
        for (name, color, pts, curve) in series {
            chart
                .draw_series(
                    pts.iter()
                        .filter(|p| p.1.is_finite())
                        .map(|&p| Circle::new(p, 5, color.filled())),
                )?
                .label(name)
                .legend(move |(x, y)| Circle::new((x + 10, y), 5, color.filled()));
            if let Some(c) = curve {
                chart.draw_series(LineSeries::new(
                    ns.iter()
                        .map(|&n| (n, eval(c, n)))
                        .filter(|p| p.1 >= 0.0 && p.1 <= y_max),
                    color.stroke_width(2),
                ))?;
            }
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .position(SeriesLabelPosition::UpperLeft)
            .draw()?;
        Ok(())
    };
    let pts = |g: fn(&Figures) -> f64| -> Vec<(f64, f64)> {
        figures.iter().map(|f| (f.n as f64, g(f))).collect()
    };
    draw(
        &panels[0],
        "livekit-server CPU",
        "% of one core",
        vec![
            ("at rest", BLUE, pts(|f| f.rest_cpu), Some(&fits.rest_cpu)),
            (
                "1%/s churn",
                RED,
                pts(|f| f.churn_cpu),
                Some(&fits.churn_cpu),
            ),
            (
                "1 metadata change/s",
                GREEN,
                pts(|f| f.meta_cpu),
                Some(&fits.meta_cpu),
            ),
        ],
    )?;
    draw(
        &panels[1],
        "signalling received per participant",
        "bytes per second",
        vec![
            (
                "at rest",
                BLUE,
                pts(|f| f.rest_bytes),
                Some(&fits.rest_bytes),
            ),
            (
                "1%/s churn",
                RED,
                pts(|f| f.churn_bytes),
                Some(&fits.churn_bytes),
            ),
            (
                "1 metadata change/s",
                GREEN,
                pts(|f| f.meta_bytes),
                Some(&fits.meta_bytes),
            ),
        ],
    )?;
    draw(
        &panels[2],
        "joining",
        "seconds",
        vec![
            ("all connected", BLUE, pts(|f| f.join_s), Some(&fits.join)),
            ("all listed by all", RED, pts(|f| f.roster_s), None),
        ],
    )?;
    draw(
        &panels[3],
        "one-way latency of a private message",
        "milliseconds",
        vec![
            ("idle p50", BLUE, pts(|f| f.idle_p50_ms), None),
            ("idle p99", CYAN, pts(|f| f.idle_p99_ms), None),
            ("100 senders p50", RED, pts(|f| f.load_p50_ms), None),
            ("100 senders p99", MAGENTA, pts(|f| f.load_p99_ms), None),
        ],
    )?;
    root.present()?;
    Ok(())
}

/// The figures of a cluster / sharded run, one line per N.
fn sharded_report(figures: &[Figures]) {
    println!();
    println!(
        "| nodes | rooms (K) | N | rooms per node | signalling to join, per participant | signalling at rest | signalling, 1%/s churn | each node's CPU at rest | each node's CPU, 1%/s churn | latency idle p50/p99 | latency, 100 senders p50/p99 |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let list = |v: &[f64]| {
        v.iter()
            .map(|c| format!("{c:.1} %"))
            .collect::<Vec<_>>()
            .join(" + ")
    };
    for f in figures {
        println!(
            "| {} | {} | {} | {:?} | {:.0} KiB | {:.0} B/s | {:.0} B/s | {} | {} | {:.2} / {:.2} ms | {:.2} / {:.2} ms |",
            f.nodes,
            f.shards,
            f.n,
            f.placement,
            f.join_bytes / 1024.0,
            f.rest_bytes,
            f.churn_bytes,
            list(&f.node_rest_cpu),
            list(&f.node_churn_cpu),
            f.idle_p50_ms,
            f.idle_p99_ms,
            f.load_p50_ms,
            f.load_p99_ms,
        );
    }
}

struct Fits {
    rest_cpu: Vec<f64>,
    churn_cpu: Vec<f64>,
    meta_cpu: Vec<f64>,
    rest_bytes: Vec<f64>,
    churn_bytes: Vec<f64>,
    meta_bytes: Vec<f64>,
    join: Vec<f64>,
    join_bytes: Vec<f64>,
}

fn main() {
    let mut setup = Setup {
        nodes: 1,
        shards: 1,
    };
    let mut ns = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--nodes" => setup.nodes = args.next().and_then(|v| v.parse().ok()).unwrap_or(1),
            "--shards" => setup.shards = args.next().and_then(|v| v.parse().ok()).unwrap_or(1),
            other => {
                if let Ok(n) = other.parse() {
                    ns.push(n);
                }
            }
        }
    }
    if ns.is_empty() {
        ns = vec![100, 250, 500, 1000];
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut figures = Vec::new();
    for &n in &ns {
        let f = runtime.block_on(measure(n, setup));
        println!("{f:?}");
        figures.push(f);
    }
    if setup.nodes > 1 || setup.shards > 1 {
        sharded_report(&figures);
        return;
    }

    let xs: Vec<f64> = figures.iter().map(|f| f.n as f64).collect();
    let col = |g: fn(&Figures) -> f64| -> Vec<f64> { figures.iter().map(g).collect() };
    // The model allows an N² term (work ∝ changes × recipients); a negative one is noise, so
    // then the straight line is kept.
    let model = |ys: &[f64]| {
        let q = fit(&xs, ys, if figures.len() >= 3 { 2 } else { 1 });
        if q.len() == 3 && q[2] < 0.0 {
            fit(&xs, ys, 1)
        } else {
            q
        }
    };
    let fits = Fits {
        rest_cpu: fit(&xs, &col(|f| f.rest_cpu), 1),
        churn_cpu: model(&col(|f| f.churn_cpu)),
        meta_cpu: fit(&xs, &col(|f| f.meta_cpu), 1),
        rest_bytes: fit(&xs, &col(|f| f.rest_bytes), 1),
        churn_bytes: fit(&xs, &col(|f| f.churn_bytes), 1),
        meta_bytes: fit(&xs, &col(|f| f.meta_bytes), 1),
        join: model(&col(|f| f.join_s)),
        join_bytes: fit(&xs, &col(|f| f.join_bytes), 1),
    };

    println!();
    println!(
        "| N | joined | all connected | all listed | signalling to join, per participant | server CPU at rest | server RSS | signalling at rest | churn 1%/s: signalling, server CPU | 1 metadata change/s: signalling, server CPU | latency idle p50/p99 | latency, 100 senders p50/p99 |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for f in &figures {
        println!(
            "| {} | {} | {:.1} s | {:.1} s | {:.0} KiB | {:.1} % | {:.0} MiB | {:.0} B/s | {:.0} B/s, {:.1} % | {:.0} B/s, {:.1} % | {:.2} / {:.2} ms | {:.2} / {:.2} ms |",
            f.n,
            f.joined,
            f.join_s,
            f.roster_s,
            f.join_bytes / 1024.0,
            f.rest_cpu,
            f.rest_rss_mib,
            f.rest_bytes,
            f.churn_bytes,
            f.churn_cpu,
            f.meta_bytes,
            f.meta_cpu,
            f.idle_p50_ms,
            f.idle_p99_ms,
            f.load_p50_ms,
            f.load_p99_ms,
        );
    }
    println!();
    println!("fits (N = participants; CPU in % of one core, signalling in bytes/participant/s):");
    println!("- server CPU at rest: {}", show(&fits.rest_cpu));
    println!("- server CPU, 1%/s churn: {}", show(&fits.churn_cpu));
    println!(
        "- server CPU, 1 metadata change/s: {}",
        show(&fits.meta_cpu)
    );
    println!("- signalling at rest: {}", show(&fits.rest_bytes));
    println!("- signalling, 1%/s churn: {}", show(&fits.churn_bytes));
    println!(
        "- signalling, 1 metadata change/s: {}",
        show(&fits.meta_bytes)
    );
    println!("- time until all connected (s): {}", show(&fits.join));
    println!(
        "- signalling to join, bytes per participant: {}",
        show(&fits.join_bytes)
    );
    for f in &figures {
        // Each churn step is one leave and one join, each announced to everyone.
        let events = 2.0 * (f.n / 100).max(1) as f64;
        println!(
            "- N={}: {:.0} bytes per participant per roster change; {:.0} bytes per metadata change",
            f.n,
            f.churn_bytes / events,
            f.meta_bytes - f.rest_bytes
        );
    }
    for (what, limit) in [("one core (100 %)", 100.0), ("both cores (200 %)", 200.0)] {
        match reach(&fits.churn_cpu, limit) {
            Some(n) => {
                println!("- under 1%/s churn the server's fitted CPU reaches {what} at N ≈ {n:.0}")
            }
            None => println!(
                "- under 1%/s churn the server's fitted CPU never reaches {what} below N = 10⁶"
            ),
        }
    }
    let raw: Vec<_> = figures
        .iter()
        .map(|f| {
            json!({
                "n": f.n, "joined": f.joined, "join_s": f.join_s, "roster_s": f.roster_s,
                "join_bytes_per_participant": f.join_bytes,
                "rest_cpu_percent": f.rest_cpu, "rest_rss_mib": f.rest_rss_mib,
                "rest_bytes_per_participant_s": f.rest_bytes, "bench_cpu_rest_percent": f.bench_cpu_rest,
                "churn_cpu_percent": f.churn_cpu, "churn_bytes_per_participant_s": f.churn_bytes,
                "churn_rejoin_failures": f.churn_rejoin_failures,
                "meta_cpu_percent": f.meta_cpu, "meta_bytes_per_participant_s": f.meta_bytes,
                "idle_p50_ms": f.idle_p50_ms, "idle_p99_ms": f.idle_p99_ms,
                "loaded_p50_ms": f.load_p50_ms, "loaded_p99_ms": f.load_p99_ms,
                "loaded_packets": f.load_packets, "send_errors": f.send_errors,
            })
        })
        .collect();
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    let json_path = format!("{target}/room-scale.json");
    match std::fs::write(
        &json_path,
        serde_json::to_string_pretty(&raw).unwrap_or_default(),
    ) {
        Ok(()) => println!("raw figures: {json_path}"),
        Err(e) => eprintln!("cannot write {json_path}: {e}"),
    }
    let plot_path = std::env::var("PCHAT_BENCH_PLOT").unwrap_or_else(|_| {
        testkit::workspace_root()
            .join("docs/bench/room-scale.png")
            .display()
            .to_string()
    });
    if let Some(dir) = std::path::Path::new(&plot_path).parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    match plot(&figures, &fits, &plot_path) {
        Ok(()) => println!("plot: {plot_path}"),
        Err(e) => eprintln!("no plot: {e}"),
    }
}
