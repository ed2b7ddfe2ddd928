//! The end-to-end tests of the private-chat system live in this crate's `tests/` (the client
//! SDK against the real services, the official npm packages on the other side); this library
//! is what they share, and what the binaries' end-to-end tests (`pchat`, `pchat-tui`) use too.
//!
//! [`System`] is the whole system: a real livekit-server, our social service (PostgreSQL when
//! `PCHAT_TEST_DATABASE_URL` is set, as in CI; SQLite otherwise) and our gatekeeper (the test
//! kit's `TestGatekeeper`), wired as in production (the social service tells the gatekeeper
//! about privacy changes; the gatekeeper reads privacy from the social service), all on
//! loopback ports. [`Player`] is one SDK user in it; [`TestSocial`] is the social service alone,
//! stoppable and restartable on its port. [`ShardedSystem`] is the same services in front of a
//! LiveKit cluster with the private messages spread over several rooms (docs/sharded-rooms.md).
//!
//! The tests are a crate of their own so that the client SDK does not depend, even for its
//! tests, on both servers.

pub mod swarm;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pchat_client::private_chat::{ChatEvent, ChatEvents, PrivateChat, PrivateChatConfig};
use testkit::gatekeeper::{AUTH_TOKEN, TestGatekeeper};
use testkit::{FreshPostgres, LiveKitCluster, LiveKitServer};
use tokio::sync::oneshot;

/// How long a test waits for anything the system should do.
pub const LIMIT: Duration = Duration::from_secs(30);

/// livekit-server, social service and gatekeeper; all stopped when dropped.
pub struct System {
    pub lk: LiveKitServer,
    /// The gatekeeper's base URL.
    pub gatekeeper: String,
    /// The social service's dcl-rpc WebSocket URL.
    pub social_ws: String,
    social: TestSocial,
    _gatekeeper: TestGatekeeper,
    _db: Option<FreshPostgres>,
    _dir: tempfile::TempDir,
}

impl System {
    /// Starts everything and waits until each part answers.
    pub async fn start() -> System {
        let lk = LiveKitServer::start().await.expect("livekit-server");
        let s = Services::start(testkit::gatekeeper::config_for(&lk)).await;
        System {
            lk,
            gatekeeper: s.gatekeeper,
            social_ws: s.social_ws,
            social: s.social,
            _gatekeeper: s.gatekeeper_server,
            _db: s.db,
            _dir: s.dir,
        }
    }

    /// Stops the social service (its connections close).
    pub async fn stop_social(&mut self) {
        self.social.stop().await;
    }

    /// Starts the social service again on the same port.
    pub async fn start_social(&mut self) {
        self.social.restart().await;
    }

    /// Another instance of the social service on the same database, with a bus of its own (no
    /// Redis): what one instance's clients do is not pushed to the other's. For tests whose
    /// players must not learn something at once (e.g. a block).
    pub async fn separate_social(&self) -> TestSocial {
        TestSocial::start(self.social.config.clone()).await
    }

    /// The SDK configuration for this system.
    pub fn config(&self) -> PrivateChatConfig {
        PrivateChatConfig::new(&self.gatekeeper, &self.social_ws)
    }

    /// A new player with a fresh wallet, connected, with its view loaded.
    pub async fn player(&self) -> Player {
        self.player_with(self.config()).await
    }

    /// `N` new players ([`System::player`]), and their addresses in the same order.
    pub async fn players<const N: usize>(&self) -> ([Player; N], [String; N]) {
        let mut players = Vec::with_capacity(N);
        for _ in 0..N {
            players.push(self.player().await);
        }
        let addresses = std::array::from_fn(|i| players[i].address.clone());
        let Ok(players) = players.try_into() else {
            unreachable!("exactly N players were made")
        };
        (players, addresses)
    }

    /// Two new players with `config` ([`System::player_with`]), the first seeing the second
    /// as CONNECTED (so it can write to it).
    pub async fn two_players(&self, config: PrivateChatConfig) -> (Player, Player) {
        let mut first = self.player_with(config.clone()).await;
        let second = self.player_with(config).await;
        first
            .expect_state(&second.address, chat_core::RecipientState::Connected)
            .await;
        (first, second)
    }

    /// A new player with `config`, connected, with its view loaded.
    pub async fn player_with(&self, config: PrivateChatConfig) -> Player {
        Player::connect(authchain::Wallet::random(), config).await
    }
}

impl Player {
    /// `wallet`'s player with `config`, connected, with its view loaded.
    pub async fn connect(wallet: authchain::Wallet, config: PrivateChatConfig) -> Player {
        let identity =
            authchain::Identity::new(&wallet, chrono::Utc::now() + chrono::Duration::hours(1));
        let (chat, events) = PrivateChat::connect(identity, config)
            .await
            .expect("connects");
        let mut player = Player {
            address: chat.address().to_owned(),
            chat,
            events,
        };
        player
            .expect("the social view", |e| matches!(e, ChatEvent::ViewChanged))
            .await;
        player
    }
}

/// The social service (PostgreSQL when `PCHAT_TEST_DATABASE_URL` is set, SQLite otherwise) and
/// the gatekeeper, wired to each other as in production.
pub struct Services {
    /// The gatekeeper's base URL.
    pub gatekeeper: String,
    /// The social service's dcl-rpc WebSocket URL.
    pub social_ws: String,
    social: TestSocial,
    gatekeeper_server: TestGatekeeper,
    db: Option<FreshPostgres>,
    dir: tempfile::TempDir,
}

impl Services {
    /// Starts the social service and a gatekeeper with `gatekeeper_config` (its social service
    /// URL set to this one's).
    pub async fn start(gatekeeper_config: gatekeeper::GatekeeperConfig) -> Services {
        let dir = tempfile::tempdir().expect("tmp");
        let db = std::env::var("PCHAT_TEST_DATABASE_URL")
            .ok()
            .map(|_| FreshPostgres::create("sdk").expect("fresh database"));
        let database_url = match &db {
            Some(db) => db.url.clone(),
            None => format!("sqlite://{}", dir.path().join("social.sqlite").display()),
        };
        let social_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let social_addr = social_listener.local_addr().expect("addr");
        let mut config = gatekeeper_config;
        config.social_service_url = Some(format!("http://{social_addr}"));
        let gk = TestGatekeeper::start(gatekeeper::Builder::new(config))
            .await
            .expect("gatekeeper");
        let mut config = social::SocialConfig::new(&database_url);
        config.gatekeeper_url = Some(gk.base_url());
        config.gatekeeper_token = AUTH_TOKEN.into();
        let social = TestSocial::serve(social_listener, config).await;
        Services {
            gatekeeper: gk.base_url(),
            social_ws: social.ws_url(),
            social,
            gatekeeper_server: gk,
            db,
            dir,
        }
    }
}

/// The same services as [`System`] in front of a [`LiveKitCluster`] (every node handed out),
/// with the private messages spread over `shards` rooms (`PRIVATE_MESSAGES_ROOM_SHARDS`).
pub struct ShardedSystem {
    pub cluster: LiveKitCluster,
    pub services: Services,
}

impl ShardedSystem {
    /// Starts a cluster of `nodes` nodes and the services, K = `shards`.
    pub async fn start(nodes: usize, shards: u32) -> ShardedSystem {
        let cluster = LiveKitCluster::start(nodes).await.expect("cluster");
        let mut config = testkit::gatekeeper::config_for_cluster(&cluster);
        config.room_shards = shards;
        let services = Services::start(config).await;
        ShardedSystem { cluster, services }
    }

    /// The SDK configuration for this system.
    pub fn config(&self) -> PrivateChatConfig {
        PrivateChatConfig::new(&self.services.gatekeeper, &self.services.social_ws)
    }
}

/// Our social service on a loopback port, which a test can stop and start again on that same
/// port (clients then reconnect to the address they know).
pub struct TestSocial {
    pub addr: SocketAddr,
    config: social::SocialConfig,
    app: Option<Arc<social::App>>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestSocial {
    /// Builds the service from `config` and serves it on a fresh 127.0.0.1 port.
    pub async fn start(config: social::SocialConfig) -> TestSocial {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        TestSocial::serve(listener, config).await
    }

    /// Builds the service from `config` and serves it on `listener` (bound by a caller that
    /// needed the address first).
    pub async fn serve(
        listener: tokio::net::TcpListener,
        config: social::SocialConfig,
    ) -> TestSocial {
        let mut service = TestSocial {
            addr: listener.local_addr().expect("addr"),
            config,
            app: None,
            stop: None,
            task: None,
        };
        service.serve_on(listener).await;
        service
    }

    async fn serve_on(&mut self, listener: tokio::net::TcpListener) {
        let app = social::App::build(&self.config)
            .await
            .expect("social service");
        let (stop, stopped) = oneshot::channel::<()>();
        self.task = Some(tokio::spawn(social::serve(
            listener,
            app.clone(),
            async move {
                let _ = stopped.await;
            },
        )));
        self.app = Some(app);
        self.stop = Some(stop);
    }

    /// `ws://127.0.0.1:<port>/`: the dcl-rpc WebSocket URL.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/", self.addr)
    }

    /// The running service (its store, its bus), for tests that act behind the clients' backs.
    pub fn app(&self) -> Arc<social::App> {
        self.app.clone().expect("running")
    }

    /// Stops the service (its connections close) and waits for it, up to [`LIMIT`].
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(LIMIT, task).await;
        }
    }

    /// Serves a new instance (same configuration) on the same port, retrying the bind for up to
    /// [`LIMIT`] while the old socket is released.
    pub async fn restart(&mut self) {
        let deadline = tokio::time::Instant::now() + LIMIT;
        let listener = loop {
            match tokio::net::TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e) => {
                    assert!(tokio::time::Instant::now() < deadline, "rebind: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        self.serve_on(listener).await;
    }
}

impl Drop for TestSocial {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// One SDK user: its address, its chat and the events it has not read yet.
pub struct Player {
    pub address: String,
    pub chat: PrivateChat,
    pub events: ChatEvents,
}

impl Player {
    /// Waits for an event matching `pred`, skipping others; panics after [`LIMIT`].
    pub async fn expect(
        &mut self,
        what: &str,
        mut pred: impl FnMut(&ChatEvent) -> bool,
    ) -> ChatEvent {
        let deadline = tokio::time::Instant::now() + LIMIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.events.recv_timeout(left).await {
                Some(e) if pred(&e) => return e,
                Some(_) => {}
                None => panic!("{}: no {what} within {LIMIT:?}", self.address),
            }
        }
    }

    /// Collects what arrives for `d` and returns the events matching `pred`.
    pub async fn collect_for(
        &mut self,
        d: Duration,
        mut pred: impl FnMut(&ChatEvent) -> bool,
    ) -> Vec<ChatEvent> {
        let deadline = tokio::time::Instant::now() + d;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return seen;
            }
            match self.events.recv_timeout(left).await {
                Some(e) if pred(&e) => seen.push(e),
                Some(_) => {}
                None => return seen,
            }
        }
    }

    /// Opens a conversation with `peer` (so its state is pushed) and waits until its state is
    /// `state`.
    pub async fn expect_state(&mut self, peer: &str, state: chat_core::RecipientState) {
        if self.chat.open_conversation(peer).await.ok() == Some(state) {
            return;
        }
        let peer = peer.to_owned();
        self.expect(&format!("{peer} becoming {state:?}"), |e| {
            matches!(e, ChatEvent::RecipientState { address, state: s } if *address == peer && *s == state)
        })
        .await;
    }

    /// Waits for a message from `from` with `text`.
    pub async fn expect_message(&mut self, from: &str, text: &str) {
        let (from, text) = (from.to_owned(), text.to_owned());
        self.expect(&format!("{text:?} from {from}"), |e| {
            matches!(e, ChatEvent::Message { from: f, message, .. } if *f == from && message.text == text)
        })
        .await;
    }
}
