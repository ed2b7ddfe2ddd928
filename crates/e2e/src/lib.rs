//! The end-to-end tests of the private-chat system live in this crate's `tests/` (the client
//! SDK against the real services, the official npm packages on the other side); this library
//! is what they share, and what the binaries' end-to-end tests (`pchat`, `pchat-tui`) use too.
//!
//! [`System`] is the whole system: a real livekit-server, our social service (PostgreSQL when
//! `PCHAT_TEST_DATABASE_URL` is set, as in CI; SQLite otherwise) and our gatekeeper (the test
//! kit's `TestGatekeeper`), wired as in production (the social service tells the gatekeeper
//! about privacy changes; the gatekeeper reads privacy from the social service), all on
//! loopback ports. [`Player`] is one SDK user in it.
//!
//! The tests are a crate of their own so that the client SDK does not depend, even for its
//! tests, on both servers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pchat_client::private_chat::{ChatEvent, ChatEvents, PrivateChat, PrivateChatConfig};
use testkit::gatekeeper::{AUTH_TOKEN, TestGatekeeper};
use testkit::{FreshPostgres, LiveKitServer};
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
    social_addr: SocketAddr,
    database_url: String,
    social_stop: Option<(oneshot::Sender<()>, tokio::task::JoinHandle<()>)>,
    _gatekeeper: TestGatekeeper,
    _db: Option<FreshPostgres>,
    _dir: tempfile::TempDir,
}

impl System {
    /// Starts everything and waits until each part answers.
    pub async fn start() -> System {
        let lk = LiveKitServer::start().await.expect("livekit-server");
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
        let mut config = testkit::gatekeeper::config_for(&lk);
        config.social_service_url = Some(format!("http://{social_addr}"));
        let gk = TestGatekeeper::start(gatekeeper::Builder::new(config))
            .await
            .expect("gatekeeper");
        let mut system = System {
            lk,
            gatekeeper: gk.base_url(),
            social_ws: format!("ws://{social_addr}/"),
            social_addr,
            database_url,
            social_stop: None,
            _gatekeeper: gk,
            _db: db,
            _dir: dir,
        };
        system.serve_social(social_listener).await;
        system
    }

    fn social_config(&self) -> social::SocialConfig {
        let mut config = social::SocialConfig::new(&self.database_url);
        config.gatekeeper_url = Some(self.gatekeeper.clone());
        config.gatekeeper_token = AUTH_TOKEN.into();
        config
    }

    async fn serve_social(&mut self, listener: tokio::net::TcpListener) {
        let app: Arc<social::App> = social::App::build(&self.social_config())
            .await
            .expect("social service");
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = social::serve(listener, app, async {
                let _ = rx.await;
            })
            .await;
        });
        self.social_stop = Some((tx, task));
    }

    /// Stops the social service (its connections close).
    pub async fn stop_social(&mut self) {
        if let Some((tx, task)) = self.social_stop.take() {
            let _ = tx.send(());
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }

    /// Starts the social service again on the same port.
    pub async fn start_social(&mut self) {
        let deadline = tokio::time::Instant::now() + LIMIT;
        let listener = loop {
            match tokio::net::TcpListener::bind(self.social_addr).await {
                Ok(l) => break l,
                Err(e) => {
                    assert!(tokio::time::Instant::now() < deadline, "rebind: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        self.serve_social(listener).await;
    }

    /// The SDK configuration for this system.
    pub fn config(&self) -> PrivateChatConfig {
        PrivateChatConfig::new(&self.gatekeeper, &self.social_ws)
    }

    /// A new player with a fresh wallet, connected, with its view loaded.
    pub async fn player(&self) -> Player {
        self.player_with(self.config()).await
    }

    /// A new player with `config`, connected, with its view loaded.
    pub async fn player_with(&self, config: PrivateChatConfig) -> Player {
        let wallet = authchain::Wallet::random();
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
