//! Many raw room participants in one process, for the scale benches (`benches/room_scale.rs`).
//!
//! A [`Swarm`] is N [`livekit_participant::Participant`]s (our data-only participant, without
//! the SDK's social side: the benches measure what the *room* costs), each with a task draining
//! its events so that no queue fills. Packets sent with [`Swarm::send_timed`] carry the time they
//! were sent (nanoseconds since the swarm's epoch; the whole swarm is one process, so one clock),
//! and the receiving member's task records the one-way latency in the swarm's [`Recorder`]
//! while recording is on.
//!
//! Bounds: every join has the participant's own connect timeout (30 s) and at most
//! `concurrency` joins are in flight; the recorder keeps at most [`MAX_SAMPLES`] latencies.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use livekit_participant::{
    ConnectError, Credentials, Event, Events, Options, Participant, Reliability, SendError,
    StaticToken,
};
use tokio::task::JoinHandle;

/// The topic of the timed packets.
pub const TIMED_TOPIC: &str = "timed";
/// Most latency samples kept (further ones are counted, not kept).
pub const MAX_SAMPLES: usize = 1_000_000;
/// Bytes of a timed packet: about a private message (a 30-character chat packet is ~60 bytes).
const TIMED_PACKET_BYTES: usize = 64;

/// Latencies of the timed packets received while recording is on.
pub struct Recorder {
    epoch: Instant,
    recording: AtomicBool,
    samples: Mutex<Vec<Duration>>,
    received: AtomicU64,
}

impl Recorder {
    fn record(&self, payload: &[u8]) {
        self.received.fetch_add(1, Ordering::Relaxed);
        if !self.recording.load(Ordering::Relaxed) {
            return;
        }
        let Some(sent) = payload
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
        else {
            return;
        };
        let latency = self
            .epoch
            .elapsed()
            .saturating_sub(Duration::from_nanos(sent));
        let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        if samples.len() < MAX_SAMPLES {
            samples.push(latency);
        }
    }

    /// Starts recording latencies afresh.
    pub fn start(&self) {
        self.samples
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.recording.store(true, Ordering::Relaxed);
    }

    /// Stops recording and returns the latencies recorded, sorted.
    pub fn stop(&self) -> Vec<Duration> {
        self.recording.store(false, Ordering::Relaxed);
        let mut samples =
            std::mem::take(&mut *self.samples.lock().unwrap_or_else(|e| e.into_inner()));
        samples.sort();
        samples
    }

    /// Timed packets received so far (recorded or not).
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }
}

/// One participant of the swarm.
pub struct Member {
    pub identity: String,
    pub participant: Arc<Participant>,
    drain: JoinHandle<()>,
}

impl Drop for Member {
    fn drop(&mut self) {
        self.drain.abort();
    }
}

/// N participants and their drains.
pub struct Swarm {
    pub members: Vec<Member>,
    pub recorder: Arc<Recorder>,
    /// Members whose join failed, with why.
    pub failed: Vec<(String, ConnectError)>,
}

/// Options for the swarm's participants: the defaults, with the announcement hold off (the
/// benches wait for the roster themselves) and no reconnection back-off surprises.
pub fn options() -> Options {
    Options {
        announce_wait: Duration::ZERO,
        ..Options::default()
    }
}

fn drain(mut events: Events, recorder: Arc<Recorder>) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            if let Event::Data(packet) = event
                && packet.topic.as_deref() == Some(TIMED_TOPIC)
            {
                recorder.record(&packet.payload);
            }
        }
    })
}

/// Joins one participant with `credentials`; its events are drained into `recorder`.
pub async fn join_one(
    identity: String,
    credentials: Credentials,
    recorder: Arc<Recorder>,
) -> Result<Member, (String, ConnectError)> {
    match Participant::connect(StaticToken(credentials), options()).await {
        Ok((participant, events)) => Ok(Member {
            identity,
            participant: Arc::new(participant),
            drain: drain(events, recorder),
        }),
        Err(e) => Err((identity, e)),
    }
}

impl Swarm {
    /// Joins every `(identity, credentials)`, at most `concurrency` at a time, and returns when
    /// each has joined or failed.
    pub async fn join(who: Vec<(String, Credentials)>, concurrency: usize) -> Swarm {
        let recorder = Arc::new(Recorder {
            epoch: Instant::now(),
            recording: AtomicBool::new(false),
            samples: Mutex::new(Vec::new()),
            received: AtomicU64::new(0),
        });
        let gate = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
        let tasks: Vec<_> = who
            .into_iter()
            .map(|(identity, credentials)| {
                let gate = gate.clone();
                let recorder = recorder.clone();
                tokio::spawn(async move {
                    let _permit = gate.acquire_owned().await;
                    join_one(identity, credentials, recorder).await
                })
            })
            .collect();
        let mut members = Vec::with_capacity(tasks.len());
        let mut failed = Vec::new();
        for task in tasks {
            match task.await {
                Ok(Ok(member)) => members.push(member),
                Ok(Err(failure)) => failed.push(failure),
                Err(e) => failed.push((
                    String::new(),
                    ConnectError::Signal(format!("join task: {e}")),
                )),
            }
        }
        Swarm {
            members,
            recorder,
            failed,
        }
    }

    /// Signalling bytes received so far by the members at `indices`.
    pub fn signal_bytes(&self, indices: impl IntoIterator<Item = usize>) -> u64 {
        indices
            .into_iter()
            .filter_map(|i| self.members.get(i))
            .map(|m| m.participant.stats().signal_bytes_received)
            .sum()
    }

    /// Sends a timed packet from member `from` to member `to`.
    pub async fn send_timed(&self, from: usize, to: usize) -> Result<(), SendError> {
        let (Some(sender), Some(receiver)) = (self.members.get(from), self.members.get(to)) else {
            return Err(SendError::Closed);
        };
        let mut payload = vec![0u8; TIMED_PACKET_BYTES];
        let now = self.recorder.epoch.elapsed().as_nanos() as u64;
        payload[..8].copy_from_slice(&now.to_le_bytes());
        sender
            .participant
            .send(
                &payload,
                std::slice::from_ref(&receiver.identity),
                Some(TIMED_TOPIC),
                Reliability::Reliable,
            )
            .await
    }

    /// How many others each member at `indices` sees in its roster.
    pub async fn roster_sizes(&self, indices: impl IntoIterator<Item = usize>) -> Vec<usize> {
        let mut sizes = Vec::new();
        for i in indices {
            if let Some(m) = self.members.get(i) {
                sizes.push(m.participant.participants().await.len());
            }
        }
        sizes
    }

    /// Every member leaves (at most `concurrency` at a time).
    pub async fn leave_all(self, concurrency: usize) {
        let gate = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
        let tasks: Vec<_> = self
            .members
            .into_iter()
            .map(|m| {
                let gate = gate.clone();
                tokio::spawn(async move {
                    let _permit = gate.acquire_owned().await;
                    m.participant.leave().await;
                })
            })
            .collect();
        for t in tasks {
            let _ = t.await;
        }
    }
}

/// The value at quantile `q` (0..=1) of sorted samples.
pub fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}
