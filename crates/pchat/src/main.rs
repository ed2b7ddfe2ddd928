//! `pchat`: one binary for every part of private chat. Each subcommand reads its configuration
//! from the environment (flags override); `pchat <command> --help` lists the variables.

use std::net::SocketAddr;

use anyhow::Context;
use clap::{Parser, Subcommand};

// The endpoints of the player commands (issue #9): unused until those commands land.
#[allow(dead_code)]
mod args;
mod identity;
mod up;

#[derive(Parser)]
#[command(
    name = "pchat",
    version,
    about = "Decentraland private chat (ADR-208) in Rust"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gatekeeper: LiveKit tokens for the private-messages room, privacy metadata updates.
    Gatekeeper(gatekeeper::GatekeeperConfig),
    /// Run the social service: friendships, blocks and privacy settings over dcl-rpc and HTTP.
    Social(social::SocialConfig),
    /// Run a stand-in privacy source (GET/PUT /v1/users/:address/privacy-settings) for local use.
    PrivacyStub {
        /// Interface to listen on.
        #[arg(long, env = "HTTP_SERVER_HOST", default_value = "127.0.0.1")]
        host: String,
        /// TCP port to listen on.
        #[arg(long, env = "HTTP_SERVER_PORT", default_value_t = 3001)]
        port: u16,
    },
    /// Ask a gatekeeper for a LiveKit token (signed fetch) and print its answer.
    Token {
        /// Gatekeeper base URL.
        #[arg(
            long,
            env = "PCHAT_GATEKEEPER_URL",
            default_value = "http://127.0.0.1:3000"
        )]
        gatekeeper: String,
        /// Owner private key (hex). Default: a new random key.
        #[arg(long, env = "PCHAT_PRIVATE_KEY", hide_env_values = true)]
        private_key: Option<String>,
    },
    /// Chat as a wallet: join the room through the gatekeeper, optionally send one message, and
    /// print what arrives (filtered by the social service's view when --social is given).
    Chat {
        /// Gatekeeper base URL.
        #[arg(
            long,
            env = "PCHAT_GATEKEEPER_URL",
            default_value = "http://127.0.0.1:3000"
        )]
        gatekeeper: String,
        /// Social service WebSocket (e.g. ws://127.0.0.1:3001/); unset: no friends or blocks,
        /// privacy "all".
        #[arg(long, env = "PCHAT_SOCIAL_URL")]
        social: Option<String>,
        /// Owner private key (hex). Default: a new random key.
        #[arg(long, env = "PCHAT_PRIVATE_KEY", hide_env_values = true)]
        private_key: Option<String>,
        /// Recipient address.
        #[arg(long, requires = "message")]
        to: Option<String>,
        /// Text to send to --to.
        #[arg(long, requires = "to")]
        message: Option<String>,
        /// Seconds to print incoming messages (default: 0 when sending, 60 otherwise).
        #[arg(long)]
        listen_seconds: Option<u64>,
    },
    /// Show private chat working: three fresh wallets join the room through the gatekeeper;
    /// Alice writes to Bob (only Bob receives it), then Bob accepts only friends and Alice's next
    /// message is filtered out.
    Demo {
        /// Gatekeeper base URL.
        #[arg(
            long,
            env = "PCHAT_GATEKEEPER_URL",
            default_value = "http://127.0.0.1:3000"
        )]
        gatekeeper: String,
    },
    /// Run the whole system locally: livekit-server, the social service (SQLite in the data
    /// directory) and the gatekeeper, on 127.0.0.1; stops on Ctrl-C or SIGTERM.
    Up(up::UpArgs),
    /// Make a player's key file, or show the address of one.
    #[command(subcommand)]
    Identity(identity::IdentityCommand),
    /// Print signed-fetch headers (ADR-44) for a request, as JSON, with a fresh random wallet
    /// unless --private-key is given.
    SignHeaders {
        /// HTTP method.
        #[arg(long, default_value = "GET")]
        method: String,
        /// URL path (no query string).
        #[arg(long, default_value = "/private-messages/token")]
        path: String,
        /// Metadata JSON.
        #[arg(long, default_value = r#"{"signer":"dcl:explorer"}"#)]
        metadata: String,
        /// Owner private key (hex). Default: a new random key.
        #[arg(long, env = "PCHAT_PRIVATE_KEY", hide_env_values = true)]
        private_key: Option<String>,
    },
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}

async fn bind(host: &str, port: u16) -> anyhow::Result<tokio::net::TcpListener> {
    let addr: SocketAddr = format!("{host}:{port}")
        .parse()
        .with_context(|| format!("invalid listen address {host}:{port}"))?;
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // One line on stderr for any error, its causes joined with ": ".
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Up(args) => {
            up::init_tracing();
            up::run(args).await?
        }
        Command::Identity(command) => identity::run(command)?,
        Command::Gatekeeper(config) => {
            init_tracing();
            let listener = bind(&config.host, config.port).await?;
            let state = gatekeeper::Builder::new(config.clone()).build()?;
            tracing::info!(addr = %listener.local_addr()?, room = %config.room, livekit = %config.livekit_host, "gatekeeper listening");
            gatekeeper::serve(listener, state, shutdown_signal()).await?;
        }
        Command::Social(config) => {
            init_tracing();
            let listener = bind(&config.host, config.port).await?;
            let app = social::App::build(&config).await?;
            tracing::info!(addr = %listener.local_addr()?, database = %redact(&config.database_url), "social service listening");
            social::serve(listener, app, shutdown_signal()).await?;
        }
        Command::PrivacyStub { host, port } => {
            init_tracing();
            let listener = bind(&host, port).await?;
            tracing::info!(addr = %listener.local_addr()?, "privacy stub listening");
            gatekeeper::stub::PrivacyStub::default()
                .serve(listener, shutdown_signal())
                .await?;
        }
        Command::Token {
            gatekeeper,
            private_key,
        } => {
            let owner = wallet(private_key.as_deref())?;
            let expiration = chrono::Utc::now() + chrono::Duration::minutes(10);
            let id = authchain::Identity::new(&owner, expiration);
            let (status, body) = pchat_client::GatekeeperTokens::new(&gatekeeper, id)
                .request()
                .await
                .map_err(anyhow::Error::msg)?;
            println!("wallet:  {}", owner.address().to_lower_hex());
            match reqwest::StatusCode::from_u16(status) {
                Ok(code) => println!("status:  {code}"),
                Err(_) => println!("status:  {status}"),
            }
            println!("answer:  {body}");
            if !(200..300).contains(&status) {
                anyhow::bail!("the gatekeeper refused the request");
            }
        }
        Command::Demo { gatekeeper } => demo(&gatekeeper).await?,
        Command::Chat {
            gatekeeper,
            social,
            private_key,
            to,
            message,
            listen_seconds,
        } => {
            let owner = wallet(private_key.as_deref())?;
            let listen = listen_seconds.unwrap_or(if to.is_some() { 0 } else { 60 });
            chat(
                &gatekeeper,
                social.as_deref(),
                &owner,
                to.zip(message),
                listen,
            )
            .await?
        }
        Command::SignHeaders {
            method,
            path,
            metadata,
            private_key,
        } => {
            let owner = wallet(private_key.as_deref())?;
            let expiration = chrono::Utc::now() + chrono::Duration::minutes(10);
            let id = authchain::Identity::new(&owner, expiration);
            let headers = id.signed_fetch_headers(&method, &path, authchain::now_ms(), &metadata);
            let map: serde_json::Map<String, serde_json::Value> = headers
                .into_iter()
                .map(|(k, v)| (k, serde_json::Value::String(v)))
                .collect();
            println!("{}", serde_json::Value::Object(map));
        }
    }
    Ok(())
}

/// `pchat chat`; every wait is bounded.
async fn chat(
    gatekeeper: &str,
    social: Option<&str>,
    owner: &authchain::Wallet,
    send: Option<(String, String)>,
    listen_seconds: u64,
) -> anyhow::Result<()> {
    use pchat_client::{ChatClient, GatekeeperTokens, Received, RecipientState, SocialView};
    use std::time::Duration;
    let identity = authchain::Identity::new(owner, chrono::Utc::now() + chrono::Duration::hours(1));
    let me = owner.address().to_lower_hex();
    let (client, mut inbox) = ChatClient::connect(
        GatekeeperTokens::new(gatekeeper, identity.clone()),
        &me,
        SocialView::default(),
        chat_core::Filter::new(),
    )
    .await
    .context("cannot join the chat room")?;
    println!("joined as {me}");
    if let Some(url) = social {
        let s = pchat_client::social::SocialClient::connect(url, &identity)
            .await
            .context("cannot reach the social service")?;
        s.keep_current(&client).await?;
        println!("social view from {url}");
    }
    if let Some((to, text)) = send {
        let started = tokio::time::Instant::now();
        let state = loop {
            let state = client.recipient_state(&to).await;
            if state == RecipientState::Connected || started.elapsed() > Duration::from_secs(10) {
                break state;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        anyhow::ensure!(
            state == RecipientState::Connected,
            "cannot write to {to}: {state:?} (nothing is queued for users who cannot receive)"
        );
        client.send(&to, &text).await?;
        println!("sent to {to}: {text:?}");
        // `send` returns once the message is handed to the data channel; give it a moment on
        // the wire before leaving closes the connection.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let until = tokio::time::Instant::now() + Duration::from_secs(listen_seconds);
    while let Some(left) = until.checked_duration_since(tokio::time::Instant::now()) {
        match inbox.next_timeout(left).await {
            Some(Received::Message { from, message }) => println!("{from}: {}", message.text),
            Some(Received::Dropped { from, reason }) => println!("(dropped from {from}: {reason})"),
            Some(Received::Lagged { dropped }) => {
                eprintln!("({dropped} messages lost: output was read too slowly)")
            }
            None => break,
        }
    }
    client.leave().await;
    Ok(())
}

/// `pchat demo`; every wait is bounded.
async fn demo(gatekeeper: &str) -> anyhow::Result<()> {
    use pchat_client::{ChatClient, GatekeeperTokens, Received, RecipientState, SocialView};
    use std::time::Duration;
    const WAIT: Duration = Duration::from_secs(15);

    let join = |name: &'static str| async move {
        let wallet = authchain::Wallet::random();
        let identity =
            authchain::Identity::new(&wallet, chrono::Utc::now() + chrono::Duration::hours(1));
        let address = wallet.address().to_lower_hex();
        let (client, inbox) = ChatClient::connect(
            GatekeeperTokens::new(gatekeeper, identity),
            &address,
            SocialView::default(),
            chat_core::Filter::new(),
        )
        .await
        .with_context(|| format!("{name} cannot join"))?;
        println!("{name:6} joined as {address}");
        anyhow::Ok((client, inbox))
    };
    let (alice, _alice_in) = join("alice").await?;
    let (bob, mut bob_in) = join("bob").await?;
    let (carol, mut carol_in) = join("carol").await?;

    let started = tokio::time::Instant::now();
    while alice.recipient_state(bob.address()).await != RecipientState::Connected {
        anyhow::ensure!(started.elapsed() < WAIT, "alice never saw bob in the room");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    alice.send(bob.address(), "hi Bob, it's Alice").await?;
    println!("alice  → bob: \"hi Bob, it's Alice\"");
    match bob_in.next_timeout(WAIT).await {
        Some(Received::Message { from, message }) => {
            println!("bob    received from {from}: {:?}", message.text)
        }
        other => anyhow::bail!("bob did not get the message: {other:?}"),
    }
    match carol_in.next_timeout(Duration::from_millis(500)).await {
        None => println!("carol  received nothing (messages go to one wallet)"),
        Some(other) => anyhow::bail!("carol should not receive anything: {other:?}"),
    }

    bob.set_social_view(SocialView {
        privacy: pchat_core::Privacy::OnlyFriends,
        ..SocialView::default()
    });
    println!("bob    now accepts messages only from friends");
    alice.send(bob.address(), "still there?").await?;
    println!("alice  → bob: \"still there?\"");
    match bob_in.next_timeout(WAIT).await {
        Some(Received::Dropped { from, reason }) => {
            println!("bob    filtered out a message from {from}: {reason}")
        }
        other => anyhow::bail!("bob should have filtered the message: {other:?}"),
    }
    for c in [alice, bob, carol] {
        c.leave().await;
    }
    println!("private chat works.");
    Ok(())
}

fn wallet(private_key: Option<&str>) -> anyhow::Result<authchain::Wallet> {
    match private_key {
        Some(k) => authchain::Wallet::from_hex(k).context("invalid private key"),
        None => Ok(authchain::Wallet::random()),
    }
}

/// A database URL without its password, for logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}
