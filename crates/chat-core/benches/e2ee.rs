//! End-to-end encryption cost per message, on one thread (issue #12; BENCHMARKS.md).
//!
//! `cargo bench -p chat-core --bench e2ee`
//!
//! On a 155-byte text (the default length limit) and a 1,000-byte one:
//!
//! - `seal_open/*`: [`E2ee::seal`] by the sender then [`E2ee::open`] by the recipient, the
//!   pair's contexts already set up: the steady state, the figure for the < 50 µs target.
//! - `seal/*`, `open/*`: each alone (`open` on packets sealed outside the timing, in order).
//! - `first_message/*`: the first message of a new pair of sessions: the sender's HPKE
//!   `setup_sender`, the recipient's `setup_receiver`, then the seal and the open (both sides
//!   forget the pair before each iteration); `first_seal/*` and `first_open/*`: each side's
//!   share of it.
//! - `hpke_single_shot/*`: for comparison, what `e2ee` does not do: an HPKE auth-mode
//!   `single_shot_seal` + `single_shot_open` per message (a whole setup each way per message).
//!
//! Before the measurements it prints the size overhead (sealed packet − plaintext packet) for a
//! few text lengths and a reaction, and the time per steady-state message measured both as wall
//! time and as the thread's on-CPU time (`/proc/thread-self/schedstat`, Linux): criterion
//! measures wall time on one thread, which is the CPU time of this single-threaded code unless
//! the machine is busy enough to take the core away now and then; the two figures show it.

use std::cell::RefCell;
use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime};

use chat_core::e2ee::{E2ee, HPKE_INFO, SessionKey, associated_data};
use chat_core::packet;
use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use hpke::{Kem as _, OpModeR, OpModeS};
use pchat_core::chat_key::ChatKey;

type Kem = hpke::kem::X25519HkdfSha256;
type Kdf = hpke::kdf::HkdfSha256;
type Aead = hpke::aead::ChaCha20Poly1305;

const ALICE: &str = "0x8ba1f109551bd432803012645ac136ddd64dba72";
const BOB: &str = "0x23c86705dd3a3855d939322c53379d42a4e365ee";
/// The text lengths measured: the default limit (155 characters, ASCII here) and 1,000 bytes.
const LENGTHS: [usize; 2] = [155, 1_000];

fn chat(len: usize, now: SystemTime) -> Vec<u8> {
    packet::encode_message(&"x".repeat(len), now, true)
        .expect("a valid text")
        .0
}

fn pair() -> (E2ee, E2ee) {
    (
        E2ee::new(SessionKey::generate()),
        E2ee::new(SessionKey::generate()),
    )
}

/// Alice sending one chat packet to Bob, again and again.
struct Conversation {
    alice: E2ee,
    bob: E2ee,
    alice_key: ChatKey,
    bob_key: ChatKey,
    plain: Vec<u8>,
    now: SystemTime,
}

impl Conversation {
    fn new(len: usize, now: SystemTime) -> Conversation {
        let (alice, bob) = pair();
        Conversation {
            alice_key: alice.public(),
            bob_key: bob.public(),
            alice,
            bob,
            plain: chat(len, now),
            now,
        }
    }

    /// Seals the chat; `first`: as the first message to a new peer (the HPKE sender setup runs).
    fn seal(&mut self, first: bool) -> Vec<u8> {
        if first {
            self.alice.forget_peer(&self.bob_key);
        }
        self.alice
            .seal(ALICE, BOB, &self.bob_key, black_box(&self.plain), self.now)
            .expect("seal")
    }

    /// Opens a packet; `first`: as the first from a new peer (the HPKE receiver setup runs).
    fn open(&mut self, sealed: &[u8], first: bool) -> Vec<u8> {
        if first {
            self.bob.forget_peer(&self.alice_key);
        }
        self.bob
            .open(ALICE, BOB, Some(&self.alice_key), sealed)
            .expect("open")
    }

    /// One message sealed and opened; `first`: as the first of a new pair of sessions.
    fn message(&mut self, first: bool) -> Vec<u8> {
        let sealed = self.seal(first);
        self.open(&sealed, first)
    }
}

/// The calling thread's on-CPU time so far, from `/proc/thread-self/schedstat` (first field,
/// nanoseconds); `None` where the kernel does not give it.
fn thread_cpu() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

fn print_overheads(now: SystemTime) {
    println!(
        "e2ee size overhead (sealed packet - plaintext packet, bytes), first message of a pair (seq 0) and 1,000th (seq 999):"
    );
    let reaction = chat_core::Reaction::add(42, chat_core::message_id(BOB, 46_000.5), ALICE);
    let payloads = [1, 20, 155, 500, 1_000, 10_000]
        .map(|len| (format!("chat, {len}-byte text"), chat(len, now)))
        .into_iter()
        .chain([(
            "reaction (its timestamp travels outside)".to_owned(),
            packet::encode_reaction(&reaction).expect("reaction"),
        )]);
    for (what, plain) in payloads {
        let (mut alice, bob) = pair();
        let sizes: Vec<usize> = (0..1_000)
            .map(|_| {
                alice
                    .seal(ALICE, BOB, &bob.public(), &plain, now)
                    .expect("seal")
                    .len()
            })
            .collect();
        println!(
            "  {what}: {} bytes -> +{} (seq 0), +{} (seq 999)",
            plain.len(),
            sizes[0] - plain.len(),
            sizes[999] - plain.len()
        );
    }
}

/// Wall time and thread CPU time per run of `f`, over `runs` runs.
fn per_run(runs: u32, mut f: impl FnMut()) -> (Duration, Option<Duration>) {
    let cpu0 = thread_cpu();
    let wall0 = Instant::now();
    for _ in 0..runs {
        f();
    }
    let wall = wall0.elapsed() / runs;
    let cpu = cpu0.zip(thread_cpu()).map(|(a, b)| (b - a) / runs);
    (wall, cpu)
}

fn print_cpu_time(now: SystemTime) {
    for len in LENGTHS {
        let mut conversation = Conversation::new(len, now);
        for (what, first, runs) in [("seal+open", false, 20_000), ("first message", true, 500)] {
            let (wall, cpu) = per_run(runs, || {
                black_box(conversation.message(first));
            });
            let cpu = cpu.map_or("unknown (no /proc/thread-self/schedstat)".to_owned(), |c| {
                format!("{c:.2?}")
            });
            println!(
                "e2ee {what}, {len}-byte text, {runs} runs: per message wall {wall:.2?}, thread CPU {cpu}"
            );
        }
    }
    // A part of the steady state that is not the AEAD: the associated data (it formats the
    // message id), built once by the seal and once by the open.
    let timestamp = chat_core::ole::to_ole(now);
    let (wall, _) = per_run(100_000, || {
        black_box(associated_data(black_box(ALICE), BOB, black_box(timestamp)));
    });
    println!("e2ee associated_data, built once per seal and once per open: {wall:.2?}");
}

fn bench(c: &mut Criterion) {
    let now = SystemTime::now();
    print_overheads(now);
    print_cpu_time(now);

    // `first_seal`/`first_open`: the sender's and the receiver's share of a new pair's setup.
    type Step = fn(&mut Conversation, bool) -> Vec<u8>;
    let steps: [(&str, Step, bool); 4] = [
        ("seal_open", Conversation::message, false),
        ("first_message", Conversation::message, true),
        ("seal", Conversation::seal, false),
        ("first_seal", Conversation::seal, true),
    ];
    for (name, step, first) in steps {
        let mut group = c.benchmark_group(name);
        for len in LENGTHS {
            let mut conversation = Conversation::new(len, now);
            group.bench_function(BenchmarkId::from_parameter(len), |b| {
                b.iter(|| step(&mut conversation, first))
            });
        }
        group.finish();
    }

    for (name, first) in [("open", false), ("first_open", true)] {
        let mut group = c.benchmark_group(name);
        for len in LENGTHS {
            // Both closures need the conversation (the setup seals, the timed routine opens).
            let conversation = RefCell::new(Conversation::new(len, now));
            // Each packet opens once (a second time is a replay): a fresh one is sealed,
            // untimed, for each iteration; they arrive in order.
            group.bench_function(BenchmarkId::from_parameter(len), |b| {
                b.iter_batched_ref(
                    || conversation.borrow_mut().seal(false),
                    |sealed| conversation.borrow_mut().open(sealed, first),
                    BatchSize::SmallInput,
                )
            });
        }
        group.finish();
    }

    let mut group = c.benchmark_group("hpke_single_shot");
    for len in LENGTHS {
        let (sk_s, pk_s) = Kem::gen_keypair();
        let (sk_r, pk_r) = Kem::gen_keypair();
        let sender = OpModeS::Auth((sk_s, pk_s.clone()));
        let receiver = OpModeR::Auth(pk_s);
        let plain = chat(len, now);
        let aad = associated_data(ALICE, BOB, 46_000.5);
        group.bench_function(BenchmarkId::from_parameter(len), |b| {
            b.iter(|| {
                let (enc, ct) = hpke::single_shot_seal::<Aead, Kdf, Kem>(
                    &sender,
                    &pk_r,
                    HPKE_INFO,
                    black_box(&plain),
                    &aad,
                )
                .expect("seal");
                hpke::single_shot_open::<Aead, Kdf, Kem>(
                    &receiver, &sk_r, &enc, HPKE_INFO, &ct, &aad,
                )
                .expect("open")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
