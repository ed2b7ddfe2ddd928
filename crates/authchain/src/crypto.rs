//! Ethereum-style keys, addresses and EIP-191 `personal_sign` signatures on secp256k1.
//!
//! Signing is deterministic (RFC 6979) and produces low-S signatures with `v = 27/28`.
//! Recovery accepts `v` in `{0, 1, 27, 28}` and high-S signatures (the malleated twin of a
//! valid signature), because the official Decentraland verifier accepts both.

use std::fmt;
use std::str::FromStr;

use secp256k1::ecdsa::{RecoverableSignature, RecoveryId};
use secp256k1::{Message, PublicKey, SECP256K1, SecretKey};
use sha3::{Digest, Keccak256};

use crate::error::CryptoError;

/// keccak256 of `data`.
pub fn keccak256(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(&Keccak256::digest(data));
    out
}

/// The EIP-191 `personal_sign` digest of `message`:
/// keccak256("\x19Ethereum Signed Message:\n" + utf8 byte length + message).
pub fn eip191_hash(message: &str) -> [u8; 32] {
    let mut hasher = Keccak256::new();
    hasher.update(b"\x19Ethereum Signed Message:\n");
    hasher.update(message.len().to_string().as_bytes());
    hasher.update(message.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(&hasher.finalize());
    out
}

/// A 20-byte Ethereum address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address(pub [u8; 20]);

impl Address {
    /// The address of a public key: the last 20 bytes of keccak256 of the uncompressed point.
    pub fn from_public_key(key: &PublicKey) -> Self {
        let uncompressed = key.serialize_uncompressed();
        let hash = keccak256(&uncompressed[1..]);
        let mut out = [0u8; 20];
        out.copy_from_slice(&hash[12..]);
        Address(out)
    }

    /// `0x` + 40 lower-case hex digits: the form used as a LiveKit identity and in our APIs.
    pub fn to_lower_hex(&self) -> String {
        format!("0x{}", hex::encode(self.0))
    }

    /// EIP-55 mixed-case checksum form, as wallets and `@dcl/crypto` print addresses.
    pub fn to_checksum(&self) -> String {
        let lower = hex::encode(self.0);
        let hash = keccak256(lower.as_bytes());
        let mut out = String::with_capacity(42);
        out.push_str("0x");
        for (i, c) in lower.chars().enumerate() {
            let nibble = (hash[i / 2] >> (if i % 2 == 0 { 4 } else { 0 })) & 0x0f;
            if c.is_ascii_alphabetic() && nibble >= 8 {
                out.push(c.to_ascii_uppercase());
            } else {
                out.push(c);
            }
        }
        out
    }
}

impl FromStr for Address {
    type Err = CryptoError;

    /// Parses `0x` + 40 hex digits in any case. The EIP-55 checksum is not enforced (the
    /// reference services compare addresses case-insensitively).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits = s
            .strip_prefix("0x")
            .or_else(|| s.strip_prefix("0X"))
            .ok_or(CryptoError::InvalidAddress)?;
        if digits.len() != 40 {
            return Err(CryptoError::InvalidAddress);
        }
        let mut out = [0u8; 20];
        hex::decode_to_slice(digits, &mut out).map_err(|_| CryptoError::InvalidAddress)?;
        Ok(Address(out))
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_lower_hex())
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({})", self.to_lower_hex())
    }
}

/// True when `s` is `0x` followed by exactly 40 hex digits.
pub fn is_valid_address(s: &str) -> bool {
    Address::from_str(s).is_ok()
}

/// A secp256k1 private key with its address.
#[derive(Clone)]
pub struct Wallet {
    secret: SecretKey,
    address: Address,
}

impl fmt::Debug for Wallet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wallet")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl Wallet {
    /// A fresh random key.
    pub fn random() -> Self {
        loop {
            let bytes: [u8; 32] = rand::random();
            if let Ok(secret) = SecretKey::from_byte_array(bytes) {
                return Self::from_secret(secret);
            }
        }
    }

    /// A key from 32 raw bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Result<Self, CryptoError> {
        let secret =
            SecretKey::from_byte_array(bytes).map_err(|_| CryptoError::InvalidPrivateKey)?;
        Ok(Self::from_secret(secret))
    }

    /// A key from hex (`0x` prefix optional).
    pub fn from_hex(s: &str) -> Result<Self, CryptoError> {
        let digits = s.strip_prefix("0x").unwrap_or(s);
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(digits, &mut bytes).map_err(|_| CryptoError::InvalidPrivateKey)?;
        Self::from_bytes(bytes)
    }

    fn from_secret(secret: SecretKey) -> Self {
        let public = PublicKey::from_secret_key(SECP256K1, &secret);
        Wallet {
            secret,
            address: Address::from_public_key(&public),
        }
    }

    pub fn address(&self) -> Address {
        self.address
    }

    /// The private key as `0x` + 64 hex digits.
    pub fn secret_hex(&self) -> String {
        format!("0x{}", hex::encode(self.secret.secret_bytes()))
    }

    /// EIP-191 `personal_sign` of `message`: `0x` + r + s + v (v = 27/28), 132 characters.
    pub fn personal_sign(&self, message: &str) -> String {
        let digest = Message::from_digest(eip191_hash(message));
        let sig = SECP256K1.sign_ecdsa_recoverable(digest, &self.secret);
        let (recid, rs) = sig.serialize_compact();
        let v = 27 + i32::from(recid) as u8;
        let mut bytes = [0u8; 65];
        bytes[..64].copy_from_slice(&rs);
        bytes[64] = v;
        format!("0x{}", hex::encode(bytes))
    }
}

/// The secp256k1 group order n, big-endian.
const CURVE_ORDER: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe,
    0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36, 0x41, 0x41,
];
/// n / 2, big-endian: signatures with s above this are "high-S".
const HALF_ORDER: [u8; 32] = [
    0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0x5d, 0x57, 0x6e, 0x73, 0x57, 0xa4, 0x50, 0x1d, 0xdf, 0xe9, 0x2f, 0x46, 0x68, 0x1b, 0x20, 0xa0,
];

/// n - s for a 32-byte big-endian s < n.
fn negate_scalar(s: &mut [u8; 32]) {
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let mut d = CURVE_ORDER[i] as i16 - s[i] as i16 - borrow;
        if d < 0 {
            d += 256;
            borrow = 1;
        } else {
            borrow = 0;
        }
        s[i] = d as u8;
    }
}

/// Recovers the address that produced an EIP-191 signature of `message`.
///
/// `signature` is `0x` + 130 hex digits (r, s, v). Accepts v = 0/1/27/28 and high-S signatures
/// (normalised to low-S with the recovery id flipped before recovery).
pub fn recover_personal(message: &str, signature: &str) -> Result<Address, CryptoError> {
    recover_digest(&eip191_hash(message), signature)
}

/// Recovers the signer of a 32-byte digest from a 65-byte `0x`-hex signature.
pub fn recover_digest(digest: &[u8; 32], signature: &str) -> Result<Address, CryptoError> {
    let digits = signature.strip_prefix("0x").unwrap_or(signature);
    if digits.len() != 130 {
        return Err(CryptoError::MalformedSignature);
    }
    let mut bytes = [0u8; 65];
    hex::decode_to_slice(digits, &mut bytes).map_err(|_| CryptoError::MalformedSignature)?;
    let mut recid = match bytes[64] {
        0 | 27 => 0u8,
        1 | 28 => 1u8,
        _ => return Err(CryptoError::MalformedSignature),
    };
    let mut s = [0u8; 32];
    s.copy_from_slice(&bytes[32..64]);
    if s > HALF_ORDER && s < CURVE_ORDER {
        negate_scalar(&mut s);
        recid ^= 1;
        bytes[32..64].copy_from_slice(&s);
    }
    let recid = RecoveryId::from_u8_masked(recid);
    let sig = RecoverableSignature::from_compact(&bytes[..64], recid)
        .map_err(|_| CryptoError::MalformedSignature)?;
    let key = SECP256K1
        .recover_ecdsa(Message::from_digest(*digest), &sig)
        .map_err(|_| CryptoError::RecoveryFailed)?;
    Ok(Address::from_public_key(&key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_matches_eip55_examples() {
        for a in [
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
            "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
        ] {
            let parsed: Address = a.parse().expect("valid");
            assert_eq!(parsed.to_checksum(), a);
        }
    }

    #[test]
    fn sign_then_recover_round_trips() {
        let w = Wallet::random();
        let sig = w.personal_sign("hello");
        assert_eq!(sig.len(), 132);
        assert_eq!(
            recover_personal("hello", &sig).expect("recovers"),
            w.address()
        );
        assert_ne!(recover_personal("hellO", &sig).ok(), Some(w.address()));
    }

    #[test]
    fn high_s_twin_and_v01_recover_the_same_address() {
        let w = Wallet::random();
        let sig = w.personal_sign("msg");
        let mut bytes = hex::decode(&sig[2..]).expect("hex");
        // v = 0/1
        bytes[64] -= 27;
        let v01 = format!("0x{}", hex::encode(&bytes));
        assert_eq!(recover_personal("msg", &v01).expect("v01"), w.address());
        // s -> n - s, v flipped
        let mut s = [0u8; 32];
        s.copy_from_slice(&bytes[32..64]);
        negate_scalar(&mut s);
        bytes[32..64].copy_from_slice(&s);
        bytes[64] = 27 + (bytes[64] ^ 1);
        let twin = format!("0x{}", hex::encode(&bytes));
        assert_eq!(recover_personal("msg", &twin).expect("twin"), w.address());
    }

    #[test]
    fn malformed_signatures_are_errors() {
        assert!(recover_personal("m", "").is_err());
        assert!(recover_personal("m", "0x1234").is_err());
        assert!(recover_personal("m", &format!("0x{}", "zz".repeat(65))).is_err());
        assert!(recover_personal("m", &format!("0x{}1f", "11".repeat(64))).is_err());
        assert!(recover_personal("m", &format!("0x{}1b", "00".repeat(64))).is_err());
    }

    #[test]
    fn addresses_parse_strictly() {
        assert!(is_valid_address(
            "0x23c86705dd3a3855d939322c53379d42a4e365ee"
        ));
        assert!(is_valid_address(
            "0x23C86705Dd3a3855D939322C53379d42A4E365ee"
        ));
        assert!(!is_valid_address(
            "23c86705dd3a3855d939322c53379d42a4e365ee"
        ));
        assert!(!is_valid_address(
            "0x23c86705dd3a3855d939322c53379d42a4e365e"
        ));
        assert!(!is_valid_address(
            "0x23c86705dd3a3855d939322c53379d42a4e365eg"
        ));
        assert!(!is_valid_address(""));
    }
}
