//! Helpers shared by the fuzz targets, and their seed inputs ([`seeds`]).

pub mod seeds;

/// The parties of the `e2ee_open` target: fixed addresses and key material.
pub mod e2ee_keys {
    pub const ALICE: &str = "0x1111111111111111111111111111111111111111";
    pub const BOB: &str = "0x2222222222222222222222222222222222222222";
    pub const ALICE_IKM: &[u8] = b"fuzz: alice's session key ikm...";
    pub const BOB_IKM: &[u8] = b"fuzz: bob's session key ikm.....";
    pub const OTHER_IKM: &[u8] = b"fuzz: someone else's key ikm....";
}

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

/// The fixed clock of the signed-fetch target (2026-05-28T19:33:20Z); the seeds are signed at it.
pub const FUZZ_NOW_MS: i64 = 1_780_000_400_000;

/// The fixed wallets of the signed-fetch target: wallet k has the secret key `[k + 1; 32]`.
pub fn fixed_wallet(k: usize) -> authchain::Wallet {
    let byte = u8::try_from(k % 200).unwrap_or(0) + 1;
    authchain::Wallet::from_bytes([byte; 32]).expect("a valid secret key")
}

/// Splits `data` into `name=value` lines (UTF-8 only; other lines are skipped).
pub fn parse_lines(data: &[u8]) -> impl Iterator<Item = (&str, &str)> {
    data.split(|b| *b == b'\n').filter_map(|line| {
        let line = std::str::from_utf8(line).ok()?;
        line.split_once('=')
    })
}

/// Polls a future that must not wait for anything (verification without I/O) to completion.
pub fn poll_ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    match f.as_mut().poll(&mut cx) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("a future without I/O returned Pending"),
    }
}

/// Splits `data` into frames: each is `[flags: u8][len: u16 LE][len bytes]` (a short tail is
/// taken as it is). Used by the session target and written by the seed generator.
pub fn split_frames(mut data: &[u8]) -> Vec<(u8, &[u8])> {
    let mut out = Vec::new();
    while let [flags, lo, hi, rest @ ..] = data {
        let len = usize::from(u16::from_le_bytes([*lo, *hi])).min(rest.len());
        out.push((*flags, &rest[..len]));
        data = &rest[len..];
    }
    out
}

/// The inverse of [`split_frames`].
pub fn join_frames(frames: &[(u8, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (flags, bytes) in frames {
        out.push(*flags);
        let len = u16::try_from(bytes.len()).expect("frame under 64 KiB");
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(bytes);
    }
    out
}
