//! The terminal chat app connected to a private-chat system, for manual runs and the `tmux`
//! end-to-end test (`pchat chat` is the product's entry point; this is the same app).
//!
//! Environment: `PCHAT_PRIVATE_KEY` (the wallet's key, 0x + 64 hex digits; required),
//! `PCHAT_GATEKEEPER_URL` (default `http://127.0.0.1:3000`), `PCHAT_SOCIAL_URL` (default
//! `ws://127.0.0.1:3001/`), `PCHAT_NO_HISTORY=1` to keep no local history (default: kept in
//! `<data dir>/pchat/<address>/history.sqlite`). Logs go to `PCHAT_LOG_FILE` if set (never to
//! the terminal the app draws on).

use std::time::Duration;

use pchat_client::private_chat::{PrivateChat, PrivateChatConfig};
use pchat_tui::{RunOptions, app::AppOptions, open_wallet_history, run};

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let key = std::env::var("PCHAT_PRIVATE_KEY").map_err(
        |_| "PCHAT_PRIVATE_KEY is not set (the wallet's private key, 0x + 64 hex digits)",
    )?;
    let digits = key.trim().trim_start_matches("0x");
    let bytes: [u8; 32] = hex::decode(digits)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or("PCHAT_PRIVATE_KEY is not 0x + 64 hex digits")?;
    let wallet = authchain::Wallet::from_bytes(bytes)?;
    let identity =
        authchain::Identity::new(&wallet, chrono::Utc::now() + chrono::Duration::hours(24));
    let config = PrivateChatConfig::new(
        &env_or("PCHAT_GATEKEEPER_URL", "http://127.0.0.1:3000"),
        &env_or("PCHAT_SOCIAL_URL", "ws://127.0.0.1:3001/"),
    );
    if let Ok(path) = std::env::var("PCHAT_LOG_FILE") {
        let file = std::fs::File::create(path)?;
        tracing_subscriber::fmt()
            .with_writer(std::sync::Mutex::new(file))
            .with_ansi(false)
            .init();
    }
    let (chat, events) = tokio::time::timeout(
        Duration::from_secs(30),
        PrivateChat::connect(identity, config),
    )
    .await
    .map_err(|_| "could not connect within 30 s")??;
    let history = if std::env::var("PCHAT_NO_HISTORY").is_ok_and(|v| v == "1") {
        None
    } else {
        Some(open_wallet_history(&wallet).await?)
    };
    run(
        chat,
        events,
        RunOptions {
            app: AppOptions::local(),
            history,
        },
    )
    .await?;
    Ok(())
}
