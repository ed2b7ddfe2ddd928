//! `pchat demo`: the whole of ADR-208 acted out by three players (and a spammer), every step
//! through the real services, narrated; the first step that does not behave as stated ends
//! the demo with an error (non-zero exit).

use std::time::Duration;

use anyhow::{Context, bail, ensure};
use chat_core::RecipientState;
use pchat_client::private_chat::{
    ChatEvent, ChatEvents, DropReason, NotSent, PrivateChat, PrivateChatConfig,
};
use pchat_core::Privacy;

/// Longest wait for any one step.
const STEP: Duration = Duration::from_secs(20);

struct Player {
    name: &'static str,
    address: String,
    chat: PrivateChat,
    events: ChatEvents,
}

impl Player {
    async fn join(name: &'static str, config: &PrivateChatConfig) -> anyhow::Result<Player> {
        let wallet = authchain::Wallet::random();
        let identity =
            authchain::Identity::new(&wallet, chrono::Utc::now() + chrono::Duration::hours(1));
        let (chat, events) = PrivateChat::connect(identity, config.clone())
            .await
            .with_context(|| format!("{name} cannot join"))?;
        let mut p = Player {
            name,
            address: chat.address().to_owned(),
            chat,
            events,
        };
        p.wait("its social view", |e| matches!(e, ChatEvent::ViewChanged))
            .await?;
        say(name, &format!("joined as {}", p.address));
        Ok(p)
    }

    /// Waits (at most [`STEP`]) for an event matching `pred`.
    async fn wait(
        &mut self,
        what: &str,
        mut pred: impl FnMut(&ChatEvent) -> bool,
    ) -> anyhow::Result<ChatEvent> {
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.events.recv_timeout(left).await {
                Some(e) if pred(&e) => return Ok(e),
                Some(_) => {}
                None => bail!("{} saw no {what} within {STEP:?}", self.name),
            }
        }
    }

    /// Waits until this player sees `peer` in `state`.
    async fn wait_state(&mut self, peer: &Player, state: RecipientState) -> anyhow::Result<()> {
        let address = peer.address.clone();
        if self.chat.recipient_state(&address).await? != state {
            self.wait(&format!("{} becoming {state:?}", peer.name), |e| {
                matches!(e, ChatEvent::RecipientState { address: a, state: s } if *a == address && *s == state)
            })
            .await?;
        }
        say(
            self.name,
            &format!("sees {} as {}", peer.name, crate::player::state_name(state)),
        );
        Ok(())
    }

    async fn send(&mut self, to: &Player, text: &str) -> anyhow::Result<()> {
        self.chat
            .send(&to.address, text)
            .await
            .with_context(|| format!("{} cannot write to {}", self.name, to.name))?;
        say(self.name, &format!("→ {}: {text:?}", to.name));
        Ok(())
    }

    async fn receive(&mut self, from: &Player, text: &str) -> anyhow::Result<()> {
        let address = from.address.clone();
        self.wait(&format!("message from {}", from.name), |e| {
            matches!(e, ChatEvent::Message { from, message, .. } if *from == address && message.text == text)
        })
        .await?;
        say(self.name, &format!("received from {}: {text:?}", from.name));
        Ok(())
    }
}

fn say(who: &str, what: &str) {
    println!("{who:<6} {what}");
}

fn step(title: &str) {
    println!("\n== {title}");
}

/// Acts the scenario out against the services at `gatekeeper` and `social`.
pub async fn run(gatekeeper: &str, social: &str) -> anyhow::Result<()> {
    let config = PrivateChatConfig::new(gatekeeper, social);
    step("Three players join the room through the gatekeeper");
    let mut alice = Player::join("alice", &config).await?;
    let mut bob = Player::join("bob", &config).await?;
    let mut carol = Player::join("carol", &config).await?;

    step("Alice and Bob become friends through the social service");
    alice
        .chat
        .social()
        .request_friendship(&bob.address, Some("hi, it's Alice"))
        .await?;
    say("alice", "asks bob to be friends");
    let a = alice.address.clone();
    bob.wait(
        "alice's request",
        |e| matches!(e, ChatEvent::FriendshipRequested { from, .. } if *from == a),
    )
    .await?;
    say("bob", "received alice's friendship request");
    bob.chat.social().accept(&alice.address).await?;
    say("bob", "accepts");
    let b = bob.address.clone();
    alice
        .wait(
            "bob's acceptance",
            |e| matches!(e, ChatEvent::FriendshipAccepted { by } if *by == b),
        )
        .await?;
    say("alice", "is now bob's friend");

    step("Carol, a stranger, writes to Bob (Bob accepts messages from everyone)");
    carol.chat.open_conversation(&bob.address).await?;
    carol.wait_state(&bob, RecipientState::Connected).await?;
    carol.send(&bob, "hello Bob, I'm Carol").await?;
    bob.receive(&carol, "hello Bob, I'm Carol").await?;

    step("Bob accepts messages only from friends (UpsertSocialSettings)");
    bob.chat.set_privacy(Privacy::OnlyFriends).await?;
    say("bob", "sets private messages to only-friends");
    carol
        .wait_state(&bob, RecipientState::PrivateMessagesBlocked)
        .await?;
    match carol.chat.send(&bob.address, "are you there?").await {
        Err(NotSent::Recipient { state, .. }) => say(
            "carol",
            &format!(
                "cannot write to bob: {} (nothing sent)",
                crate::player::state_name(state)
            ),
        ),
        other => bail!("carol's message should have been refused, got {other:?}"),
    }
    alice.wait_state(&bob, RecipientState::Connected).await?;
    alice.send(&bob, "friends still get through").await?;
    bob.receive(&alice, "friends still get through").await?;

    step("Bob blocks Alice; both sides see it");
    bob.chat.social().block(&alice.address).await?;
    say("bob", "blocks alice");
    bob.wait_state(&alice, RecipientState::BlockedByOwnUser)
        .await?;
    let b = bob.address.clone();
    alice
        .wait(
            "bob's block",
            |e| matches!(e, ChatEvent::BlockedBy { address, blocked: true } if *address == b),
        )
        .await?;
    say("alice", "was blocked by bob");
    alice.wait_state(&bob, RecipientState::Disconnected).await?;
    ensure!(
        alice.chat.send(&bob.address, "why?").await.is_err(),
        "alice's message to bob should have been refused"
    );
    say("alice", "cannot write to bob any more");

    step("A participant broadcasts spam with no destination: everyone filters it");
    let spammer_identity = authchain::Identity::new(
        &authchain::Wallet::random(),
        chrono::Utc::now() + chrono::Duration::hours(1),
    );
    let (spammer, _spam_events) = livekit_participant::Participant::connect(
        pchat_client::GatekeeperTokens::new(gatekeeper, spammer_identity),
        livekit_participant::Options::default(),
    )
    .await
    .context("the spammer cannot join")?;
    let payload = chat_core::packet::encode("BUY CHEAP LAND", std::time::SystemTime::now())?;
    spammer
        .send(
            &payload,
            &[],
            None,
            livekit_participant::Reliability::Reliable,
        )
        .await?;
    say("spam", "broadcasts \"BUY CHEAP LAND\" to the whole room");
    for p in [&mut alice, &mut bob, &mut carol] {
        match p
            .wait("the spam (dropped)", |e| {
                matches!(e, ChatEvent::Message { .. } | ChatEvent::Dropped { .. })
            })
            .await?
        {
            ChatEvent::Dropped { reason, .. } => {
                ensure!(
                    reason == DropReason::Filter(chat_core::Rejected::EmptyTopic),
                    "{} dropped the spam for the wrong reason: {reason}",
                    p.name
                );
                say(p.name, &format!("dropped the spam: {reason}"));
            }
            other => bail!("{} showed the spam: {other:?}", p.name),
        }
    }
    spammer.leave().await;

    for p in [alice, bob, carol] {
        p.chat.close().await;
    }
    println!("\nEvery step behaved as ADR-208 says: private chat works.");
    Ok(())
}

/// `pchat demo` with no endpoints: starts its own system (livekit-server, social service on
/// SQLite, gatekeeper) on free loopback ports in a temporary directory, runs the demo against
/// it, and stops it.
pub async fn run_alone() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("pchat-demo-{:016x}", rand::random::<u64>()));
    println!("starting a local system (livekit-server, social service, gatekeeper)…");
    let system = crate::up::LocalSystem::start(crate::up::Options::any_free_ports(dir.clone()))
        .await
        .context("cannot start the local system")?;
    let endpoints = system.endpoints().clone();
    println!(
        "gatekeeper {}  social {}  livekit {}",
        endpoints.gatekeeper, endpoints.social, endpoints.livekit
    );
    let outcome = run(&endpoints.gatekeeper, &endpoints.social).await;
    system.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}
