//! The private-messages rooms a client is in when the gatekeeper spreads the players over K
//! rooms (`PRIVATE_MESSAGES_ROOM_SHARDS`; the design is the repository's
//! `docs/sharded-rooms.md`, the names and home rooms are [`pchat_core::rooms`]).
//!
//! - The client learns K from its first token answer (`room_count`; absent = 1) and stays in its
//!   **home room** for as long as it runs. With K = 1 that is the one room of ADR-208, and
//!   nothing else here does anything.
//! - To **open a conversation** with a peer it joins the peer's home room, lazily, and room 0
//!   (the reference client's only room) when the peer is not there: a reference player is in
//!   room 0 whatever its address. To **write** to a peer that is already in a joined room (say,
//!   one who joined my home room to write to me) it answers there without joining anything.
//! - A peer's state comes from the first joined room it is in, in this order: its home room,
//!   room 0, my home room, the others.
//! - A room other than home (and room 0 with [`RoomsConfig::stay_in_legacy`]) is left once
//!   **idle**: no packet sent or received there, and no open conversation reached through it,
//!   for [`RoomsConfig::idle`]. At most [`RoomsConfig::max_extra`] such rooms are joined at
//!   once; joining one more leaves the least recently used.
//!
//! [`RoomSet`] is that bookkeeping without I/O (unit-tested); [`Rooms`] joins and leaves the
//! rooms with [`livekit_participant::Participant`]s and tokens from the gatekeeper
//! ([`GatekeeperTokens::for_room`]), and forwards the extra rooms' events, tagged with their
//! room, to one channel ([`RoomEvent`]) that [`crate::private_chat`] merges with the home
//! room's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use livekit_participant::{
    ConnectError, ConnectionState, Event, Events, Options, Participant, RemoteParticipant,
    TokenSource, TokenSourceError,
};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::{GatekeeperTokens, RoomInfo};

/// Default [`RoomsConfig::idle`]: 5 minutes.
pub const DEFAULT_IDLE: Duration = Duration::from_secs(300);
/// Default [`RoomsConfig::max_extra`].
pub const DEFAULT_MAX_EXTRA: usize = 8;

/// How a client uses the sharded rooms (nothing of it matters with one room).
#[derive(Debug, Clone)]
pub struct RoomsConfig {
    /// A room other than home is left after this long without use (default 5 min).
    pub idle: Duration,
    /// Most rooms joined besides home (and room 0 when kept): default 8, at least 1.
    pub max_extra: usize,
    /// Stay in room 0 as well as home for as long as the client runs (default false): every
    /// reference player can then reach me, at the cost of room 0's signalling (which grows
    /// with everyone who stays there).
    pub stay_in_legacy: bool,
    /// How often idle rooms are looked for (default 1 s).
    pub sweep_every: Duration,
}

impl Default for RoomsConfig {
    fn default() -> Self {
        RoomsConfig {
            idle: DEFAULT_IDLE,
            max_extra: DEFAULT_MAX_EXTRA,
            stay_in_legacy: false,
            sweep_every: Duration::from_secs(1),
        }
    }
}

/// What [`RoomSet::admit`] decided for a room to be joined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Already in it (home, kept, or joined).
    AlreadyIn,
    /// Join it.
    Join,
    /// Join it after leaving this room (the least recently used) to stay within the bound.
    JoinLeaving(u32),
}

/// Which rooms to be in, without I/O: the rooms, their last use, the open conversations.
#[derive(Debug, Clone)]
pub struct RoomSet {
    count: u32,
    home: u32,
    config: RoomsConfig,
    /// Joined rooms other than the permanent ones, with their last use.
    extra: HashMap<u32, Instant>,
    /// Open conversations and the room each was last reached through.
    open: HashMap<String, u32>,
}

impl RoomSet {
    /// `count` rooms (K), my home room `home`.
    pub fn new(count: u32, home: u32, config: RoomsConfig) -> RoomSet {
        RoomSet {
            count: count.max(1),
            home,
            config,
            extra: HashMap::new(),
            open: HashMap::new(),
        }
    }

    /// K.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// My home room.
    pub fn home(&self) -> u32 {
        self.home
    }

    /// Rooms never left: home, and room 0 when kept.
    pub fn permanent(&self, room: u32) -> bool {
        room == self.home || (self.config.stay_in_legacy && room == 0)
    }

    /// Whether I am (to be) in `room`.
    pub fn contains(&self, room: u32) -> bool {
        self.permanent(room) || self.extra.contains_key(&room)
    }

    /// The rooms I am in: home first, then room 0 when kept, then the others by index.
    pub fn joined(&self) -> Vec<u32> {
        let mut all = vec![self.home];
        if self.config.stay_in_legacy && self.home != 0 {
            all.push(0);
        }
        let mut extra: Vec<u32> = self.extra.keys().copied().collect();
        extra.sort_unstable();
        all.extend(extra);
        all
    }

    /// Where to look for `peer`, in order: its home room, room 0, my home room, then every
    /// other room I am in; only rooms I am in, each once.
    pub fn lookup_order(&self, peer: &str) -> Vec<u32> {
        let mut order = Vec::with_capacity(3 + self.extra.len());
        let first = [pchat_core::rooms::home_room(peer, self.count), 0, self.home];
        for room in first.into_iter().chain(self.joined()) {
            if self.contains(room) && !order.contains(&room) {
                order.push(room);
            }
        }
        order
    }

    /// The rooms to be in to reach `peer`, in order: its home room, then room 0 (only joined
    /// when the peer is not found in its home room; the caller decides).
    pub fn rooms_for(&self, peer: &str) -> [u32; 2] {
        [pchat_core::rooms::home_room(peer, self.count), 0]
    }

    /// Marks `room` as used now (a packet sent or received there).
    pub fn touch(&mut self, room: u32, now: Instant) {
        if let Some(last) = self.extra.get_mut(&room) {
            *last = now;
        }
    }

    /// Decides how to get into `room` now (see [`Admit`]); never refuses. The room left to make
    /// space is the least recently used one that no open conversation needs, else the least
    /// recently used.
    pub fn admit(&self, room: u32) -> Admit {
        if self.contains(room) {
            return Admit::AlreadyIn;
        }
        if self.extra.len() < self.config.max_extra.max(1) {
            return Admit::Join;
        }
        let pinned = |r: &u32| self.open.values().any(|p| p == r);
        let lru = |free: bool| {
            self.extra
                .iter()
                .filter(|(r, _)| !free || !pinned(r))
                .min_by_key(|(r, last)| (**last, **r))
                .map(|(r, _)| *r)
        };
        match lru(true).or_else(|| lru(false)) {
            Some(old) => Admit::JoinLeaving(old),
            None => Admit::Join,
        }
    }

    /// `room` was joined.
    pub fn joined_room(&mut self, room: u32, now: Instant) {
        if !self.permanent(room) {
            self.extra.insert(room, now);
        }
    }

    /// `room` was left.
    pub fn left_room(&mut self, room: u32) {
        self.extra.remove(&room);
    }

    /// A conversation with `peer` is open and reached through `room`.
    pub fn open(&mut self, peer: &str, room: u32, now: Instant) {
        self.open.insert(peer.to_owned(), room);
        self.touch(room, now);
    }

    /// The conversation with `peer` is closed.
    pub fn close(&mut self, peer: &str, now: Instant) {
        if let Some(room) = self.open.remove(peer) {
            // Idle from now on, not since the conversation was opened.
            self.touch(room, now);
        }
    }

    /// The rooms to leave now: not permanent, no open conversation reached through them, and
    /// unused for [`RoomsConfig::idle`].
    pub fn idle(&self, now: Instant) -> Vec<u32> {
        let mut out: Vec<u32> = self
            .extra
            .iter()
            .filter(|(room, last)| {
                now.saturating_duration_since(**last) >= self.config.idle
                    && !self.open.values().any(|r| r == *room)
            })
            .map(|(room, _)| *room)
            .collect();
        out.sort_unstable();
        out
    }
}

/// An event of a room other than home, with its room index.
#[derive(Debug, Clone)]
pub struct RoomEvent {
    pub room: u32,
    pub event: Event,
}

/// Where a peer is reachable: the room's index and participant, and the peer as that room
/// knows it (`None`: in none of my rooms; the participant is then home's).
pub struct Route {
    pub room: u32,
    pub participant: Arc<Participant>,
    pub peer: Option<RemoteParticipant>,
}

struct Joined {
    participant: Arc<Participant>,
    forward: tokio::task::JoinHandle<()>,
}

impl Drop for Joined {
    fn drop(&mut self) {
        self.forward.abort();
    }
}

/// The rooms a client is in (see the module docs).
pub struct Rooms {
    home: Arc<Participant>,
    tokens: GatekeeperTokens,
    options: Options,
    set: Mutex<RoomSet>,
    /// Joined rooms other than home. Never held across an await, so looking a peer up never
    /// waits for a join.
    extra: Mutex<HashMap<u32, Joined>>,
    /// Held while rooms are joined or left, so two callers never join the same room twice.
    changing: tokio::sync::Mutex<()>,
    events: mpsc::Sender<RoomEvent>,
}

/// The home room's token source: the first answer says K (and so which room is home); every
/// token after that is for the home room.
struct HomeTokens {
    tokens: GatekeeperTokens,
    learnt: Arc<OnceLock<RoomInfo>>,
}

impl TokenSource for HomeTokens {
    fn credentials(&self) -> livekit_participant::token::TokenFuture {
        let tokens = self.tokens.clone();
        let learnt = self.learnt.clone();
        Box::pin(async move {
            let fail = TokenSourceError::new;
            let me = tokens.identity.address().to_lower_hex();
            match learnt.get() {
                // One room: the reference's request, every time, as without shards.
                Some(info) if info.count == 1 => tokens.fetch().await.map_err(fail),
                Some(info) => tokens.for_room(info.index).fetch().await.map_err(fail),
                None => {
                    let (creds, first) = tokens.fetch_with_room().await.map_err(fail)?;
                    let home = pchat_core::rooms::home_room(&me, first.count);
                    let info = RoomInfo {
                        index: home,
                        count: first.count,
                    };
                    let _ = learnt.set(info);
                    if home == first.index {
                        Ok(creds)
                    } else {
                        tokens.for_room(home).fetch().await.map_err(fail)
                    }
                }
            }
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Rooms {
    /// Joins my home room with tokens from `tokens` (learning K from the first answer), and
    /// room 0 too when [`RoomsConfig::stay_in_legacy`] asks for it. Returns the rooms, the home
    /// room's events, and the other rooms' events (at most `capacity` waiting).
    pub async fn connect(
        tokens: GatekeeperTokens,
        options: Options,
        config: RoomsConfig,
        capacity: usize,
    ) -> Result<(Rooms, Events, mpsc::Receiver<RoomEvent>), ConnectError> {
        let learnt = Arc::new(OnceLock::new());
        let home_tokens = HomeTokens {
            tokens: tokens.clone(),
            learnt: learnt.clone(),
        };
        let (home, home_events) = Participant::connect(home_tokens, options.clone()).await?;
        let info = learnt
            .get()
            .copied()
            .unwrap_or(RoomInfo { index: 0, count: 1 });
        let keep_legacy = config.stay_in_legacy && info.index != 0;
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let rooms = Rooms {
            home: Arc::new(home),
            tokens,
            options,
            set: Mutex::new(RoomSet::new(info.count, info.index, config)),
            extra: Mutex::new(HashMap::new()),
            changing: tokio::sync::Mutex::new(()),
            events: tx,
        };
        if keep_legacy {
            let joined = rooms.join(0).await?;
            lock(&rooms.extra).insert(0, joined);
        }
        Ok((rooms, home_events, rx))
    }

    /// The home room's participant.
    pub fn home(&self) -> &Arc<Participant> {
        &self.home
    }

    /// K.
    pub fn count(&self) -> u32 {
        lock(&self.set).count()
    }

    /// My home room's index.
    pub fn home_index(&self) -> u32 {
        lock(&self.set).home()
    }

    /// The rooms I am in now (home first).
    pub fn joined(&self) -> Vec<u32> {
        lock(&self.set).joined()
    }

    async fn join(&self, room: u32) -> Result<Joined, ConnectError> {
        let (participant, mut events) =
            Participant::connect(self.tokens.for_room(room), self.options.clone()).await?;
        let tx = self.events.clone();
        let forward = tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                if tx.send(RoomEvent { room, event }).await.is_err() {
                    return;
                }
            }
        });
        tracing::debug!(room, "joined a private-messages room");
        Ok(Joined {
            participant: Arc::new(participant),
            forward,
        })
    }

    /// Where `peer` is now (see [`Route`]), without joining anything.
    pub async fn find(&self, peer: &str) -> Route {
        let order = lock(&self.set).lookup_order(peer);
        let home_index = self.home_index();
        for room in order {
            let participant = if room == home_index {
                Some(self.home.clone())
            } else {
                lock(&self.extra).get(&room).map(|j| j.participant.clone())
            };
            let Some(participant) = participant else {
                continue;
            };
            if let Some(found) = participant.participant(peer).await {
                return Route {
                    room,
                    participant,
                    peer: Some(found),
                };
            }
        }
        Route {
            room: home_index,
            participant: self.home.clone(),
            peer: None,
        }
    }

    /// Makes sure I am in the rooms that reach `peer`: its home room, and room 0 when it is not
    /// there. With one room, nothing. A room that cannot be joined is logged and skipped (the
    /// peer's state then says it is not reachable). With `open`, the conversation keeps the
    /// room it is reached through from going idle.
    pub async fn reach(&self, peer: &str, open: bool) {
        if self.count() == 1 {
            return;
        }
        let rooms = lock(&self.set).rooms_for(peer);
        for room in rooms {
            self.enter(room).await;
            let route = self.find(peer).await;
            if route.peer.is_some() {
                let mut set = lock(&self.set);
                if open {
                    set.open(peer, route.room, Instant::now());
                } else {
                    set.touch(route.room, Instant::now());
                }
                return;
            }
        }
    }

    /// Reaches `peer` for a send: nothing to do when it is already in one of my rooms.
    pub async fn reach_to_send(&self, peer: &str) {
        if self.count() > 1 && self.find(peer).await.peer.is_none() {
            self.reach(peer, false).await;
        }
    }

    /// Joins `room` unless already in it (leaving the least recently used room when at the
    /// bound).
    async fn enter(&self, room: u32) {
        let _changing = self.changing.lock().await;
        let admit = lock(&self.set).admit(room);
        let leave = match admit {
            Admit::AlreadyIn => return,
            Admit::Join => None,
            Admit::JoinLeaving(old) => Some(old),
        };
        if let Some(old) = leave {
            self.leave_room(old).await;
        }
        match self.join(room).await {
            Ok(joined) => {
                lock(&self.extra).insert(room, joined);
                lock(&self.set).joined_room(room, Instant::now());
            }
            Err(e) => tracing::warn!(room, error = %e, "cannot join a private-messages room"),
        }
    }

    /// Leaves the extra room `room` (the caller holds `changing`).
    async fn leave_room(&self, room: u32) {
        lock(&self.set).left_room(room);
        let joined = lock(&self.extra).remove(&room);
        if let Some(j) = joined {
            j.participant.leave().await;
        }
    }

    /// A packet was sent or received in `room`.
    pub fn used(&self, room: u32) {
        lock(&self.set).touch(room, Instant::now());
    }

    /// The conversation with `peer` was closed: its room may go idle.
    pub fn closed(&self, peer: &str) {
        lock(&self.set).close(peer, Instant::now());
    }

    /// Leaves the rooms idle now; true if any was left. Does not wait for a join in progress
    /// (the next sweep will do).
    pub async fn sweep(&self) -> bool {
        let idle = lock(&self.set).idle(Instant::now());
        if idle.is_empty() {
            return false;
        }
        let Ok(_changing) = self.changing.try_lock() else {
            return false;
        };
        // Looked at again under the lock: a join may have used a room meanwhile.
        let idle = lock(&self.set).idle(Instant::now());
        for room in &idle {
            tracing::debug!(room, "leaving an idle private-messages room");
            self.leave_room(*room).await;
        }
        !idle.is_empty()
    }

    /// Leaves every room.
    pub async fn leave_all(&self) {
        let _changing = self.changing.lock().await;
        let rooms: Vec<u32> = lock(&self.extra).keys().copied().collect();
        for room in rooms {
            self.leave_room(room).await;
        }
        self.home.leave().await;
    }

    /// Whether the room `room` is connected now (home or joined).
    pub fn is_connected(&self, room: u32) -> bool {
        if room == self.home_index() {
            return self.home.state() == ConnectionState::Connected;
        }
        lock(&self.extra)
            .get(&room)
            .is_some_and(|j| j.participant.state() == ConnectionState::Connected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(max_extra: usize, stay_in_legacy: bool) -> RoomsConfig {
        RoomsConfig {
            idle: Duration::from_secs(60),
            max_extra,
            stay_in_legacy,
            sweep_every: Duration::from_secs(1),
        }
    }

    /// An address whose home room among `count` is `room`.
    fn peer_in(room: u32, count: u32) -> String {
        (0u32..)
            .map(|i| format!("0x{i:040x}"))
            .find(|a| pchat_core::rooms::home_room(a, count) == room)
            .expect("some address")
    }

    #[test]
    fn home_is_always_in_and_room_0_only_when_kept() {
        let s = RoomSet::new(4, 2, config(8, false));
        assert_eq!(s.joined(), [2]);
        assert!(s.permanent(2) && !s.permanent(0));
        assert_eq!(s.admit(2), Admit::AlreadyIn);
        assert_eq!(s.admit(0), Admit::Join);
        let s = RoomSet::new(4, 2, config(8, true));
        assert_eq!(s.joined(), [2, 0]);
        assert_eq!(s.admit(0), Admit::AlreadyIn);
        // Home 0 and kept: one room, not two.
        assert_eq!(RoomSet::new(4, 0, config(8, true)).joined(), [0]);
    }

    #[test]
    fn a_peer_is_looked_for_at_its_home_then_room_0_then_mine() {
        let t = Instant::now();
        let mut s = RoomSet::new(4, 2, config(8, false));
        let p3 = peer_in(3, 4);
        // Only my home is joined.
        assert_eq!(s.lookup_order(&p3), [2]);
        assert_eq!(s.rooms_for(&p3), [3, 0]);
        s.joined_room(0, t);
        s.joined_room(1, t);
        s.joined_room(3, t);
        assert_eq!(s.lookup_order(&p3), [3, 0, 2, 1]);
        let p2 = peer_in(2, 4);
        assert_eq!(s.lookup_order(&p2), [2, 0, 1, 3]);
    }

    #[test]
    fn idle_rooms_are_left_unless_a_conversation_needs_them() {
        let t = Instant::now();
        let mut s = RoomSet::new(4, 2, config(8, true));
        s.joined_room(1, t);
        s.joined_room(3, t);
        s.open("0xabc", 3, t);
        assert!(s.idle(t + Duration::from_secs(59)).is_empty());
        // Room 0 is kept, room 3 holds an open conversation: only room 1 goes.
        assert_eq!(s.idle(t + Duration::from_secs(60)), [1]);
        s.left_room(1);
        // Closing the conversation starts room 3's idle time then.
        let closed = t + Duration::from_secs(100);
        s.close("0xabc", closed);
        assert!(s.idle(closed + Duration::from_secs(59)).is_empty());
        // Use postpones it.
        s.touch(3, closed + Duration::from_secs(30));
        assert!(s.idle(closed + Duration::from_secs(60)).is_empty());
        assert_eq!(s.idle(closed + Duration::from_secs(90)), [3]);
        // Home and kept room 0 never go.
        assert_eq!(s.joined(), [2, 0, 3]);
    }

    #[test]
    fn joining_past_the_bound_leaves_the_least_recently_used_free_room() {
        let t = Instant::now();
        let mut s = RoomSet::new(8, 0, config(2, false));
        s.joined_room(1, t);
        s.joined_room(2, t + Duration::from_secs(1));
        assert_eq!(s.admit(3), Admit::JoinLeaving(1));
        // Room 1 holds an open conversation: room 2 goes instead.
        s.open("0xabc", 1, t);
        assert_eq!(s.admit(3), Admit::JoinLeaving(2));
        // Both held: the least recently used anyway (the bound holds).
        s.open("0xdef", 2, t + Duration::from_secs(2));
        assert_eq!(s.admit(3), Admit::JoinLeaving(1));
        assert_eq!(s.admit(2), Admit::AlreadyIn);
    }

    #[test]
    fn one_room_means_home_0_and_nothing_else() {
        let s = RoomSet::new(1, 0, RoomsConfig::default());
        let p = peer_in(0, 1);
        assert_eq!(s.joined(), [0]);
        assert_eq!(s.rooms_for(&p), [0, 0]);
        assert_eq!(s.lookup_order(&p), [0]);
        assert_eq!(s.admit(0), Admit::AlreadyIn);
    }
}
