//! Social service load on PostgreSQL with 100,000 users and 1,000,000 friendships.
//!
//! `cargo bench -p social --bench social_load` (needs `PCHAT_TEST_DATABASE_URL`, which
//! `scripts/setup` provides; knobs `PCHAT_BENCH_USERS`, `PCHAT_BENCH_FRIENDSHIPS`,
//! `PCHAT_BENCH_CLIENTS` (50), `PCHAT_BENCH_SECONDS` (10), `PCHAT_BENCH_WARMUP_SECONDS` (2, run
//! before each read is measured), `SOCIAL_CACHE_TTL_SECONDS` (60; 0 measures without the cache); `PCHAT_BENCH_KEEP=<name>` seeds a
//! database of that name once, keeps it and reuses it on later runs, to measure without
//! re-seeding).
//!
//! 1. Creates a fresh database and seeds it in PostgreSQL itself (`generate_series`): user i is
//!    `0x` + i in hex; friendship k joins users k mod U and (k mod U + 1 + k div U) mod U.
//! 2. Starts the service in this process on 127.0.0.1, connects the clients (one WebSocket each,
//!    one call in flight each), and measures GetPrivateMessagesSettings with 50 addresses and
//!    GetFriends (first page), then UpsertFriendship (new requests) per second.
//!
//! Every loop is bounded by time; all traffic stays on loopback.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Client;
use social::{App, SocialConfig};
use social_proto::v2;
use testkit::FreshPostgres;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn user(i: usize) -> String {
    format!("0x{i:040x}")
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)]
}

/// Runs SQL on the database at `url` (see `testkit::postgres::psql`); the bench stops on an
/// error.
fn psql(url: &str, sql: &str) {
    testkit::postgres::psql(url, sql).expect("psql");
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let users = env_usize("PCHAT_BENCH_USERS", 100_000);
    let friendships = env_usize("PCHAT_BENCH_FRIENDSHIPS", 1_000_000);
    let clients_n = env_usize("PCHAT_BENCH_CLIENTS", 50);
    let seconds = env_usize("PCHAT_BENCH_SECONDS", 10) as u64;
    let warmup = env_usize("PCHAT_BENCH_WARMUP_SECONDS", 2) as u64;
    let keep = std::env::var("PCHAT_BENCH_KEEP")
        .ok()
        .filter(|k| !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
    // A fresh database dropped at the end, or the kept one (created and seeded once).
    let (fresh, existing) = match &keep {
        Some(name) => FreshPostgres::kept(name),
        None => FreshPostgres::create("bench").map(|db| (db, false)),
    }
    .expect(
        "a PostgreSQL database (PCHAT_TEST_DATABASE_URL: run scripts/setup, source .tools/env)",
    );
    let name = fresh.name.clone();
    let db = fresh.url.clone();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async {
        let mut config = SocialConfig::new(&db);
        config.cache_ttl_secs = env_usize("SOCIAL_CACHE_TTL_SECONDS", 60) as u64;
        // Measures the service, not its abuse limits: every client sends far more than 30 a minute.
        config.friendship_rate_limit_per_actor = 0;
        config.friendship_rate_limit_per_pair = 0;
        let app: Arc<App> = App::build(&config).await.expect("service");
        let t = Instant::now();
        let u = users;
        if !existing {
        psql(
            &db,
            &format!(
                "INSERT INTO friendships (id, user_a, user_b, address_requester, address_requested, is_active, last_action, \
                 last_acting_user, last_message, version, created_at, updated_at) \
                 SELECT md5(k::text), least(x, y), greatest(x, y), x, y, 1, 'accept', y, NULL, 2, 0, 0 FROM ( \
                   SELECT k, '0x' || lpad(to_hex(k % {u}), 40, '0') AS x, \
                             '0x' || lpad(to_hex((k % {u} + 1 + k / {u}) % {u}), 40, '0') AS y \
                   FROM generate_series(0, {f} - 1) k) s ON CONFLICT DO NOTHING",
                f = friendships
            ),
        );
        psql(&db, &format!(
            "INSERT INTO social_settings (address, private_messages_privacy, blocked_users_messages_visibility) \
             SELECT '0x' || lpad(to_hex(i), 40, '0'), CASE WHEN i % 3 = 0 THEN 'only_friends' ELSE 'all' END, 'show_messages' \
             FROM generate_series(0, {u} - 1) i"));
        psql(&db, "ANALYZE");
        println!("seeded {users} users and {friendships} friendships in {:.1} s", t.elapsed().as_secs_f64());
        } else {
            println!("reusing database {name}");
        }

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("ws://{}/", listener.local_addr().expect("addr"));
        tokio::spawn(social::serve(listener, app, std::future::pending()));

        // Clients log in with fresh wallets, each given 20 friends among the seeded users (as
        // many as a seeded user has) before it connects, so GetFriends returns a full first page
        // (rows written behind the service's back must be there before it reads them).
        let wallets: Vec<authchain::Wallet> = (0..clients_n).map(|_| authchain::Wallet::random()).collect();
        let mut rows = Vec::new();
        for (ci, w) in wallets.iter().enumerate() {
            let me = w.address().to_string();
            for j in 0..20 {
                let other = user((ci * 997 + j * 4_999) % users);
                let (a, b) = if me < other { (me.clone(), other.clone()) } else { (other.clone(), me.clone()) };
                rows.push(format!("(md5('{a}{b}'), '{a}', '{b}', '{me}', '{other}', 1, 'accept', '{other}', NULL, 2, 0, 0)"));
            }
        }
        psql(&db, &format!(
            "INSERT INTO friendships (id, user_a, user_b, address_requester, address_requested, is_active, last_action, \
             last_acting_user, last_message, version, created_at, updated_at) VALUES {} ON CONFLICT DO NOTHING",
            rows.join(", ")
        ));
        let mut clients = Vec::new();
        for w in &wallets {
            clients.push(Client::connect(&url, w).await);
        }

        for (label, which) in [("GetPrivateMessagesSettings(50)", 0u8), ("GetFriends(first page)", 1u8)] {
            let measure_from = Instant::now() + Duration::from_secs(warmup);
            let deadline = measure_from + Duration::from_secs(seconds);
            let mut tasks = Vec::new();
            for (ci, mut c) in clients.drain(..).enumerate() {
                tasks.push(tokio::spawn(async move {
                    let mut lat = Vec::new();
                    // The requests are built before the clock starts: the client's work is not
                    // the service's.
                    let mut k = ci * 7919;
                    let requests: Vec<_> = (0..256)
                        .map(|_| {
                            k = k.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407) % users.max(1);
                            v2::GetPrivateMessagesSettingsPayload {
                                user: (0..50).map(|j| v2::User { address: user((k + j * 131) % users) }).collect(),
                            }
                        })
                        .collect();
                    let mut n = 0usize;
                    while Instant::now() < deadline {
                        n += 1;
                        let t = Instant::now();
                        let ok = if which == 0 {
                            let req = &requests[n % requests.len()];
                            matches!(
                                c.call::<_, v2::GetPrivateMessagesSettingsResponse>("GetPrivateMessagesSettings", req).await,
                                Ok(v2::GetPrivateMessagesSettingsResponse { response: Some(v2::get_private_messages_settings_response::Response::Ok(_)) })
                            )
                        } else {
                            c.call::<_, v2::PaginatedFriendsProfilesResponse>("GetFriends", &v2::GetFriendsPayload::default())
                                .await
                                .is_ok_and(|r| r.friends.len() == 20)
                        };
                        if ok && t >= measure_from {
                            lat.push(t.elapsed().as_secs_f64() * 1000.0);
                        }
                    }
                    (c, lat)
                }));
            }
            let mut all = Vec::new();
            for t in tasks {
                let (c, lat) = t.await.expect("client");
                clients.push(c);
                all.extend(lat);
            }
            all.sort_by(|a, b| a.total_cmp(b));
            println!(
                "{label:32} {clients_n} clients: {} calls in {seconds} s = {:.0}/s, p50 {:.2} ms, p99 {:.2} ms",
                all.len(),
                all.len() as f64 / seconds as f64,
                quantile(&all, 0.5),
                quantile(&all, 0.99)
            );
        }

        // UpsertFriendship: every call a new request to a seeded user.
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let mut tasks = Vec::new();
        for (ci, mut c) in clients.drain(..).enumerate() {
            tasks.push(tokio::spawn(async move {
                let mut n = 0usize;
                let mut i = 0usize;
                while Instant::now() < deadline {
                    let target = user((ci * 1_000 + i) % users);
                    i += 1;
                    let req = v2::UpsertFriendshipPayload {
                        action: Some(v2::upsert_friendship_payload::Action::Request(v2::upsert_friendship_payload::RequestPayload {
                            user: Some(v2::User { address: target }),
                            message: None,
                        })),
                    };
                    if let Ok(v2::UpsertFriendshipResponse { response: Some(v2::upsert_friendship_response::Response::Accepted(_)) }) =
                        c.call::<_, v2::UpsertFriendshipResponse>("UpsertFriendship", &req).await
                    {
                        n += 1;
                    }
                }
                n
            }));
        }
        let mut total = 0;
        for t in tasks {
            total += t.await.expect("client");
        }
        println!("UpsertFriendship (new requests)    {clients_n} clients: {total} in {seconds} s = {:.0}/s", total as f64 / seconds as f64);
    });
    drop(fresh);
}
