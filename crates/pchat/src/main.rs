//! `pchat`: one binary for every part of private chat. Each subcommand reads its configuration
//! from the environment (flags override); `pchat <command> --help` lists the variables.

use std::net::SocketAddr;

use anyhow::Context;
use clap::{Parser, Subcommand};

mod args;
mod config;
mod demo;
mod identity;
mod player;
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
    Gatekeeper(config::GatekeeperArgs),
    /// Run the social service: friendships, blocks and privacy settings over dcl-rpc and HTTP.
    Social(config::SocialArgs),
    /// Run a stand-in privacy source (GET/PUT /v1/users/:address/privacy-settings) for local use.
    PrivacyStub {
        /// Interface to listen on.
        #[arg(long, env = "HTTP_SERVER_HOST", default_value = social::config::DEFAULT_HOST)]
        host: String,
        /// TCP port to listen on (the social service's: the stub stands in for it).
        #[arg(long, env = "HTTP_SERVER_PORT", default_value_t = social::config::DEFAULT_PORT)]
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
    /// The terminal chat app: conversations with unread counts and live states, friend
    /// requests, /to /friend /block /unblock /privacy /react /quit (type /help). Keeps a local,
    /// encrypted history unless --no-history.
    Chat {
        /// Keep no local history (default: `<data dir>/pchat/<address>/history.sqlite`).
        #[arg(long)]
        no_history: bool,
        /// Write logs to this file (nothing is logged to the terminal the app draws on).
        #[arg(long, env = "PCHAT_LOG_FILE", value_name = "FILE")]
        log_file: Option<std::path::PathBuf>,
        #[command(flatten)]
        identity: identity::IdentityArgs,
        #[command(flatten)]
        endpoints: args::EndpointArgs,
    },
    /// Send one private message: waits (at most --wait seconds) until the recipient can receive
    /// it, sends it, prints {"sent":true,…}. Exit status: 0 sent, 1 not sent (the line says
    /// why), 2 bad input, 3 a service cannot be reached.
    Send {
        /// The recipient's wallet address.
        address: String,
        /// The message (at most 155 characters).
        text: String,
        /// Longest wait for the recipient to be reachable, in seconds.
        #[arg(long, default_value_t = 10)]
        wait: u64,
        #[command(flatten)]
        identity: identity::IdentityArgs,
        #[command(flatten)]
        endpoints: args::EndpointArgs,
    },
    /// Print what arrives, one JSON object per line ({"type":"message","from":…,"text":…});
    /// dropped packets are summarised on stderr. Until Ctrl-C, or for --seconds.
    Listen {
        /// Stop after this many seconds.
        #[arg(long)]
        seconds: Option<u64>,
        #[command(flatten)]
        identity: identity::IdentityArgs,
        #[command(flatten)]
        endpoints: args::EndpointArgs,
    },
    /// Friends: list, requests, request/accept/reject/cancel/remove <address>.
    Friends {
        #[command(subcommand)]
        command: player::FriendsCommand,
        #[command(flatten)]
        identity: identity::IdentityArgs,
        #[command(flatten)]
        endpoints: args::EndpointArgs,
    },
    /// Block a user (no messages either way; any friendship ends).
    Block {
        address: String,
        #[command(flatten)]
        identity: identity::IdentityArgs,
        #[command(flatten)]
        endpoints: args::EndpointArgs,
    },
    /// Unblock a user.
    Unblock {
        address: String,
        #[command(flatten)]
        identity: identity::IdentityArgs,
        #[command(flatten)]
        endpoints: args::EndpointArgs,
    },
    /// Show my private-messages setting, or set it: all | only-friends.
    Privacy {
        setting: Option<String>,
        #[command(flatten)]
        identity: identity::IdentityArgs,
        #[command(flatten)]
        endpoints: args::EndpointArgs,
    },
    /// Act out ADR-208 with three players and a spammer, every step through the real services,
    /// narrated; exits non-zero if a step does not behave as stated. With no endpoints given it
    /// starts its own system (as `pchat up` does, on free ports, in a temporary directory).
    Demo {
        /// Gatekeeper base URL (with --social: use a running system).
        #[arg(long, env = "PCHAT_GATEKEEPER_URL", requires = "social")]
        gatekeeper: Option<String>,
        /// Social service WebSocket URL.
        #[arg(long, env = "PCHAT_SOCIAL_URL", requires = "gatekeeper")]
        social: Option<String>,
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
            match e.downcast_ref::<player::Failure>() {
                Some(f) => std::process::ExitCode::from(f.code()),
                None => std::process::ExitCode::FAILURE,
            }
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
        Command::Gatekeeper(args) => {
            let config = gatekeeper::GatekeeperConfig::from(args);
            init_tracing();
            let listener = bind(&config.host, config.port).await?;
            let state = gatekeeper::Builder::new(config.clone()).build()?;
            tracing::info!(addr = %listener.local_addr()?, room = %config.room, livekit = %config.livekit_host, "gatekeeper listening");
            gatekeeper::serve(listener, state, shutdown_signal()).await?;
        }
        Command::Social(args) => {
            let config = social::SocialConfig::from(args);
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
        Command::Demo { gatekeeper, social } => match gatekeeper.zip(social) {
            Some((gatekeeper, social)) => demo::run(&gatekeeper, &social).await?,
            None => demo::run_alone().await?,
        },
        Command::Chat {
            no_history,
            log_file,
            identity,
            endpoints,
        } => {
            player::chat(
                &player::Player::load(&identity, &endpoints)?,
                !no_history,
                log_file.as_deref(),
            )
            .await?
        }
        Command::Send {
            address,
            text,
            wait,
            identity,
            endpoints,
        } => {
            let p = player::Player::load(&identity, &endpoints)?;
            player::send(&p, &address, &text, std::time::Duration::from_secs(wait)).await?
        }
        Command::Listen {
            seconds,
            identity,
            endpoints,
        } => player::listen(&player::Player::load(&identity, &endpoints)?, seconds).await?,
        Command::Friends {
            command,
            identity,
            endpoints,
        } => player::friends(&player::Player::load(&identity, &endpoints)?, command).await?,
        Command::Block {
            address,
            identity,
            endpoints,
        } => {
            player::block(
                &player::Player::load(&identity, &endpoints)?,
                &address,
                true,
            )
            .await?
        }
        Command::Unblock {
            address,
            identity,
            endpoints,
        } => {
            player::block(
                &player::Player::load(&identity, &endpoints)?,
                &address,
                false,
            )
            .await?
        }
        Command::Privacy {
            setting,
            identity,
            endpoints,
        } => {
            player::privacy(
                &player::Player::load(&identity, &endpoints)?,
                setting.as_deref(),
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
