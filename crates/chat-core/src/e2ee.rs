//! End-to-end encryption of private messages and reactions between our clients (docs/e2ee.md).
//!
//! ## Keys
//!
//! Each client session makes a fresh X25519 key pair ([`SessionKey`]); its public half goes
//! into the signed metadata of the token request and comes back to every peer as the LiveKit
//! participant attribute `chat_key` ([`pchat_core::chat_key`]). The private half never leaves
//! this process and is wiped when the session ends (`x25519-dalek`'s `StaticSecret` zeroizes
//! on drop; the derived keys below are held in [`Zeroizing`] buffers).
//!
//! ## Per pair of sessions: HPKE auth mode, once
//!
//! For each (my session key, recipient's session key) the sender runs an RFC 9180 HPKE setup in
//! **auth mode** with the suite DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305
//! (`info` = [`HPKE_INFO`]), which authenticates the sender's session key, and takes from the
//! context's secret exporter a 32-byte message key and a 12-byte base nonce. The receiver does
//! the same setup from the `enc` the sender sends, with the sender's public key from the
//! sender's **attributes** (so a packet sealed with any other key does not open).
//!
//! Why not a whole HPKE single-shot seal per message: it costs four X25519 multiplications per
//! message, measured at ~380 µs for seal + open on the 2-vCPU machine this runs on, against a
//! target of 50 µs (BENCHMARKS.md). The setup is done once per pair and kept ([`MAX_PAIRS`]).
//!
//! ## Per message: ChaCha20-Poly1305
//!
//! `nonce = base_nonce XOR seq` (as RFC 9180 §5.2 forms its own nonces), `seq` counting from 0
//! in each context and sent in clear, so a lost or re-ordered packet does not desynchronise
//! anything. The associated data binds the sender, the recipient, the timestamp and the
//! message id (see [`associated_data`]), so a packet cannot be replayed to another recipient
//! or attributed to another sender or time; a replay to the same recipient is refused by a
//! 64-message window per context ([`OpenError::Replayed`]).
//!
//! Wire: [`crate::packet::Encrypted`] in `Packet.encrypted = 1002`, protocol version 100,
//! with the same topic and destination as a plaintext message. The plaintext sealed is the
//! inner `Packet` (a `chat` or a `chat_reaction`) without its version, and a chat without its
//! timestamp, which travels outside, and a reaction without the reacting address when it is the
//! sender's (restored from the sender's identity on opening). Overhead: at most
//! [`MAX_OVERHEAD`] bytes.

use std::collections::{HashMap, VecDeque};
use std::time::SystemTime;

use chacha20poly1305::aead::{Aead as _, KeyInit as _, Payload as AeadPayload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use hpke::{Deserializable as _, Kem as _, OpModeR, OpModeS, Serializable as _};
use pchat_core::chat_key::ChatKey;
use prost::Message as _;
use zeroize::Zeroizing;

use crate::packet::{self, Encrypted, MAX_PACKET_PAYLOAD, PROTOCOL_VERSION, Packet, PacketMessage};

type Kem = hpke::kem::X25519HkdfSha256;
type Kdf = hpke::kdf::HkdfSha256;
type HpkeAead = hpke::aead::ChaCha20Poly1305;
type PrivateKey = <Kem as hpke::Kem>::PrivateKey;
type PublicKey = <Kem as hpke::Kem>::PublicKey;
type EncappedKey = <Kem as hpke::Kem>::EncappedKey;

/// HPKE `info`: the protocol and its version (domain separation).
pub const HPKE_INFO: &[u8] = b"dcl-private-chat/e2ee/v1";
/// Exporter context of the message key.
const EXPORT_KEY: &[u8] = b"message key";
/// Exporter context of the base nonce.
const EXPORT_NONCE: &[u8] = b"message nonce";
/// Length of the HPKE `enc` (an X25519 public key).
pub const ENC_BYTES: usize = 32;
/// Length of the Poly1305 tag.
pub const TAG_BYTES: usize = 16;
/// Most bytes an encrypted packet is longer than the plaintext packet it replaces (a chat
/// message or one of our reactions, any text length, any `seq` below 2^35): 48 of them are
/// `enc` and the tag.
pub const MAX_OVERHEAD: usize = 64;
/// Most pair contexts kept each way (mine towards peers, peers' towards me); past it the oldest
/// is forgotten (a new setup follows if it is used again). About 150 bytes each.
pub const MAX_PAIRS: usize = 4_096;
/// How far back a message number of a context may be and still be accepted once (the
/// replay window, as IPsec's).
pub const REPLAY_WINDOW: u64 = 64;

/// A session's X25519 key pair. The private key never leaves this value.
pub struct SessionKey {
    secret: PrivateKey,
    public: PublicKey,
    published: ChatKey,
}

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SessionKey(public {})", self.published)
    }
}

impl SessionKey {
    /// A fresh key pair from the operating system's random source.
    pub fn generate() -> SessionKey {
        let (secret, public) = Kem::gen_keypair();
        SessionKey::from_pair(secret, public)
    }

    /// The key pair RFC 9180 `DeriveKeyPair(ikm)` gives: deterministic, for test vectors only.
    pub fn derive(ikm: &[u8]) -> SessionKey {
        let (secret, public) = Kem::derive_keypair(ikm);
        SessionKey::from_pair(secret, public)
    }

    fn from_pair(secret: PrivateKey, public: PublicKey) -> SessionKey {
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(&public.to_bytes());
        SessionKey {
            secret,
            public,
            published: ChatKey::from_bytes(bytes),
        }
    }

    /// The public key, as published in the `chat_key` attribute.
    pub fn public(&self) -> ChatKey {
        self.published
    }
}

/// Why a message could not be sealed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("only chat messages and reactions are encrypted")]
    NotSealable,
    #[error("the recipient's key is not a usable X25519 key")]
    BadRecipientKey,
    #[error(
        "encrypted, the message would be {0} bytes, over the {MAX_PACKET_PAYLOAD}-byte packet limit"
    )]
    TooLong(usize),
    #[error("not a packet: {0}")]
    Packet(#[from] packet::PacketError),
}

/// Why an encrypted packet was refused. Every one is counted by the SDK under [`OpenError::name`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("the sender has published no encryption key (yet)")]
    NoSenderKey,
    #[error("the encrypted packet is malformed: {0}")]
    Malformed(&'static str),
    #[error(
        "cannot decrypt: tampered with, sealed with a key other than the sender's published one, or for someone else"
    )]
    Undecryptable,
    #[error("a replay of an encrypted message already received")]
    Replayed,
}

impl OpenError {
    /// A short, stable name for counting.
    pub fn name(&self) -> &'static str {
        match self {
            OpenError::NoSenderKey => "e2ee-no-sender-key",
            OpenError::Malformed(_) => "e2ee-malformed",
            OpenError::Undecryptable => "e2ee-undecryptable",
            OpenError::Replayed => "e2ee-replayed",
        }
    }
}

/// A message key and base nonce from one HPKE context.
struct PairKeys {
    key: Zeroizing<[u8; 32]>,
    base_nonce: Zeroizing<[u8; 12]>,
}

impl PairKeys {
    fn export(
        export: impl Fn(&[u8], &mut [u8]) -> Result<(), hpke::HpkeError>,
    ) -> Result<PairKeys, hpke::HpkeError> {
        let mut key = Zeroizing::new([0u8; 32]);
        let mut base_nonce = Zeroizing::new([0u8; 12]);
        export(EXPORT_KEY, key.as_mut_slice())?;
        export(EXPORT_NONCE, base_nonce.as_mut_slice())?;
        Ok(PairKeys { key, base_nonce })
    }

    fn nonce(&self, seq: u64) -> Nonce {
        let mut n = *self.base_nonce;
        for (b, s) in n[4..].iter_mut().zip(seq.to_be_bytes()) {
            *b ^= s;
        }
        Nonce::from(n)
    }

    fn cipher(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(self.key.as_slice()))
    }
}

struct Outgoing {
    enc: [u8; ENC_BYTES],
    keys: PairKeys,
    next_seq: u64,
}

struct Incoming {
    keys: PairKeys,
    /// Highest number accepted, and which of the [`REPLAY_WINDOW`] before it were.
    highest: Option<u64>,
    seen: u64,
}

impl Incoming {
    fn check(&self, seq: u64) -> Result<(), OpenError> {
        match self.highest {
            Some(h) if seq <= h => {
                let back = h - seq;
                if back >= REPLAY_WINDOW || self.seen & (1u64 << back) != 0 {
                    Err(OpenError::Replayed)
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }

    fn mark(&mut self, seq: u64) {
        match self.highest {
            Some(h) if seq <= h => self.seen |= 1u64 << (h - seq),
            Some(h) => {
                let shift = seq - h;
                self.seen = if shift >= REPLAY_WINDOW {
                    1
                } else {
                    (self.seen << shift) | 1
                };
                self.highest = Some(seq);
            }
            None => {
                self.highest = Some(seq);
                self.seen = 1;
            }
        }
    }
}

/// A map that forgets its oldest entry past a bound. Hand-written (a map and a queue) rather
/// than the workspace's `quick_cache`: eviction here must be exactly oldest-first and
/// [`E2ee::forget_peer`] removes every entry of one peer, which a cache's API does not offer.
struct Bounded<K, V> {
    map: HashMap<K, V>,
    order: VecDeque<K>,
    max: usize,
}

impl<K: std::hash::Hash + Eq + Clone, V> Bounded<K, V> {
    fn new(max: usize) -> Self {
        Bounded {
            map: HashMap::new(),
            order: VecDeque::new(),
            max: max.max(1),
        }
    }

    fn insert(&mut self, k: K, v: V) {
        if self.map.insert(k.clone(), v).is_none() {
            self.order.push_back(k);
            while self.order.len() > self.max {
                if let Some(old) = self.order.pop_front() {
                    self.map.remove(&old);
                }
            }
        }
    }
}

/// One session's encryption state: my key pair, my contexts towards peers, peers' towards me.
pub struct E2ee {
    key: SessionKey,
    /// `OpModeS::Auth` owns a copy of my key pair: kept rather than rebuilt per setup.
    mode: OpModeS<'static, Kem>,
    outgoing: Bounded<ChatKey, Outgoing>,
    incoming: Bounded<(ChatKey, [u8; ENC_BYTES]), Incoming>,
}

impl std::fmt::Debug for E2ee {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("E2ee")
            .field("key", &self.key)
            .field("outgoing", &self.outgoing.map.len())
            .field("incoming", &self.incoming.map.len())
            .finish()
    }
}

/// The associated data of a message: the label, then the sender and the recipient (lower-case
/// addresses), the timestamp (the `f64`'s 8 bytes, big-endian) and the message id
/// (`"{sender}:{timestamp}"`, as [`crate::message_id`] forms it), each text prefixed by its
/// length as one byte (addresses and ids are far shorter than 256 bytes; longer ones are cut,
/// which cannot happen for the addresses the SDK checks).
pub fn associated_data(sender: &str, recipient: &str, timestamp: f64) -> Vec<u8> {
    let id = crate::message_id(sender, timestamp);
    let mut aad = Vec::with_capacity(HPKE_INFO.len() + 4 + 2 * 42 + 8 + id.len());
    aad.extend_from_slice(HPKE_INFO);
    for text in [sender.as_bytes(), recipient.as_bytes()] {
        push_short(&mut aad, text);
    }
    aad.extend_from_slice(&timestamp.to_bits().to_be_bytes());
    push_short(&mut aad, id.as_bytes());
    aad
}

fn push_short(out: &mut Vec<u8>, text: &[u8]) {
    let text = &text[..text.len().min(255)];
    out.push(u8::try_from(text.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(text);
}

impl E2ee {
    pub fn new(key: SessionKey) -> E2ee {
        let mode = OpModeS::Auth((key.secret.clone(), key.public.clone()));
        E2ee {
            key,
            mode,
            outgoing: Bounded::new(MAX_PAIRS),
            incoming: Bounded::new(MAX_PAIRS),
        }
    }

    /// My public key, as published.
    pub fn public(&self) -> ChatKey {
        self.key.public()
    }

    /// Seals the plaintext packet `payload` (a chat message or a reaction, as
    /// [`crate::packet`] encodes them) from `sender` to `recipient`, whose published key is
    /// `recipient_key`. A reaction is stamped with `now`.
    pub fn seal(
        &mut self,
        sender: &str,
        recipient: &str,
        recipient_key: &ChatKey,
        payload: &[u8],
        now: SystemTime,
    ) -> Result<Vec<u8>, SealError> {
        self.seal_inner(sender, recipient, recipient_key, payload, now, None)
    }

    /// [`E2ee::seal`] with the HPKE ephemeral key derived from `ikm` when a new context is set
    /// up: deterministic output, for test vectors only.
    pub fn seal_with_ephemeral_ikm(
        &mut self,
        sender: &str,
        recipient: &str,
        recipient_key: &ChatKey,
        payload: &[u8],
        now: SystemTime,
        ikm: &[u8; 32],
    ) -> Result<Vec<u8>, SealError> {
        self.seal_inner(sender, recipient, recipient_key, payload, now, Some(ikm))
    }

    fn seal_inner(
        &mut self,
        sender: &str,
        recipient: &str,
        recipient_key: &ChatKey,
        payload: &[u8],
        now: SystemTime,
        ikm: Option<&[u8; 32]>,
    ) -> Result<Vec<u8>, SealError> {
        let (inner, timestamp) = match packet::decode_packet(payload)? {
            Some(PacketMessage::Chat(mut chat)) => {
                let t = chat.timestamp;
                chat.timestamp = 0.0;
                (PacketMessage::Chat(chat), t)
            }
            Some(PacketMessage::ChatReaction(mut r)) => {
                // The reacting address is the sender's: the receiver restores it from the
                // identity LiveKit vouches for (44 bytes saved, and it cannot be forged).
                if r.address.eq_ignore_ascii_case(sender) {
                    r.address.clear();
                }
                (PacketMessage::ChatReaction(r), crate::ole::to_ole(now))
            }
            _ => return Err(SealError::NotSealable),
        };
        let plaintext = Zeroizing::new(
            Packet {
                message: Some(inner),
                protocol_version: 0,
            }
            .encode_to_vec(),
        );
        if !self.outgoing.map.contains_key(recipient_key) {
            let pair = self.setup_outgoing(recipient_key, ikm)?;
            self.outgoing.insert(*recipient_key, pair);
        }
        let pair = self
            .outgoing
            .map
            .get_mut(recipient_key)
            .ok_or(SealError::BadRecipientKey)?;
        let seq = pair.next_seq;
        pair.next_seq += 1;
        let aad = associated_data(sender, recipient, timestamp);
        let ciphertext = pair
            .keys
            .cipher()
            .encrypt(
                &pair.keys.nonce(seq),
                AeadPayload {
                    msg: plaintext.as_slice(),
                    aad: &aad,
                },
            )
            // ChaCha20-Poly1305 fails only past 256 GiB of plaintext.
            .map_err(|_| SealError::TooLong(plaintext.len()))?;
        let sealed = Packet {
            message: Some(PacketMessage::Encrypted(Encrypted {
                enc: pair.enc.to_vec(),
                seq,
                timestamp,
                ciphertext,
            })),
            protocol_version: PROTOCOL_VERSION,
        }
        .encode_to_vec();
        if sealed.len() > MAX_PACKET_PAYLOAD {
            return Err(SealError::TooLong(sealed.len()));
        }
        Ok(sealed)
    }

    fn setup_outgoing(
        &self,
        recipient_key: &ChatKey,
        ikm: Option<&[u8; 32]>,
    ) -> Result<Outgoing, SealError> {
        let pk = PublicKey::from_bytes(recipient_key.as_bytes())
            .map_err(|_| SealError::BadRecipientKey)?;
        let (enc, ctx) = match ikm {
            None => hpke::setup_sender::<HpkeAead, Kdf, Kem>(&self.mode, &pk, HPKE_INFO),
            Some(ikm) => hpke::setup_sender_with_rng::<HpkeAead, Kdf, Kem>(
                &self.mode,
                &pk,
                HPKE_INFO,
                &mut FixedIkm(*ikm),
            ),
        }
        // The only failure is an all-zero shared secret: a low-order "key".
        .map_err(|_| SealError::BadRecipientKey)?;
        let keys = PairKeys::export(|c, out| ctx.export(c, out))
            .map_err(|_| SealError::BadRecipientKey)?;
        let mut enc_bytes = [0u8; ENC_BYTES];
        enc_bytes.copy_from_slice(&enc.to_bytes());
        Ok(Outgoing {
            enc: enc_bytes,
            keys,
            next_seq: 0,
        })
    }

    /// Opens an encrypted packet that `sender` (the identity LiveKit vouches for) sent to
    /// `recipient` (me), with the key the sender published (`None`: none known). Returns the
    /// plaintext packet, as the reference client would have sent it (version 100, the chat's
    /// timestamp restored), for the usual filter.
    pub fn open(
        &mut self,
        sender: &str,
        recipient: &str,
        sender_key: Option<&ChatKey>,
        payload: &[u8],
    ) -> Result<Vec<u8>, OpenError> {
        let envelope = match packet::decode_packet(payload) {
            Ok(Some(PacketMessage::Encrypted(e))) => e,
            _ => return Err(OpenError::Malformed("not an encrypted packet")),
        };
        let sender_key = sender_key.ok_or(OpenError::NoSenderKey)?;
        let enc: [u8; ENC_BYTES] = envelope
            .enc
            .as_slice()
            .try_into()
            .map_err(|_| OpenError::Malformed("enc is not 32 bytes"))?;
        if envelope.ciphertext.len() < TAG_BYTES {
            return Err(OpenError::Malformed("ciphertext shorter than its tag"));
        }
        let slot = (*sender_key, enc);
        let fresh = if self.incoming.map.contains_key(&slot) {
            None
        } else {
            Some(self.setup_incoming(sender_key, &enc)?)
        };
        let pair = match &fresh {
            Some(p) => p,
            None => self
                .incoming
                .map
                .get(&slot)
                .ok_or(OpenError::Undecryptable)?,
        };
        pair.check(envelope.seq)?;
        let aad = associated_data(sender, recipient, envelope.timestamp);
        let plaintext = Zeroizing::new(
            pair.keys
                .cipher()
                .decrypt(
                    &pair.keys.nonce(envelope.seq),
                    AeadPayload {
                        msg: &envelope.ciphertext,
                        aad: &aad,
                    },
                )
                .map_err(|_| OpenError::Undecryptable)?,
        );
        // Authentic from here on: remember the context and the number.
        if let Some(p) = fresh {
            self.incoming.insert(slot, p);
        }
        if let Some(p) = self.incoming.map.get_mut(&slot) {
            p.mark(envelope.seq);
        }
        let inner = Packet::decode(plaintext.as_slice())
            .map_err(|_| OpenError::Malformed("the sealed packet does not decode"))?;
        let message = match inner.message {
            Some(PacketMessage::Chat(mut chat)) => {
                chat.timestamp = envelope.timestamp;
                PacketMessage::Chat(chat)
            }
            Some(PacketMessage::ChatReaction(mut r)) => {
                // Sealed without it: the sender's (see `seal`). A reaction that had none at all
                // gets the sender's too, the only address the receiver can vouch for.
                if r.address.is_empty() {
                    r.address = sender.to_owned();
                }
                PacketMessage::ChatReaction(r)
            }
            _ => {
                return Err(OpenError::Malformed(
                    "the sealed packet is not a chat or a reaction",
                ));
            }
        };
        Ok(Packet {
            message: Some(message),
            protocol_version: PROTOCOL_VERSION,
        }
        .encode_to_vec())
    }

    fn setup_incoming(
        &self,
        sender_key: &ChatKey,
        enc: &[u8; ENC_BYTES],
    ) -> Result<Incoming, OpenError> {
        let pk = PublicKey::from_bytes(sender_key.as_bytes())
            .map_err(|_| OpenError::Malformed("the sender's key is not an X25519 key"))?;
        let enc = EncappedKey::from_bytes(enc).map_err(|_| OpenError::Malformed("bad enc"))?;
        let ctx = hpke::setup_receiver::<HpkeAead, Kdf, Kem>(
            &OpModeR::Auth(pk),
            &self.key.secret,
            &enc,
            HPKE_INFO,
        )
        .map_err(|_| OpenError::Undecryptable)?;
        let keys =
            PairKeys::export(|c, out| ctx.export(c, out)).map_err(|_| OpenError::Undecryptable)?;
        Ok(Incoming {
            keys,
            highest: None,
            seen: 0,
        })
    }

    /// Forgets every context with `peer_key` (both ways), e.g. when that session left.
    pub fn forget_peer(&mut self, peer_key: &ChatKey) {
        self.outgoing.map.remove(peer_key);
        self.outgoing.order.retain(|k| k != peer_key);
        self.incoming.map.retain(|(k, _), _| k != peer_key);
        self.incoming.order.retain(|(k, _)| k != peer_key);
    }

    /// Contexts held (mine towards peers, peers' towards me).
    pub fn contexts(&self) -> (usize, usize) {
        (self.outgoing.map.len(), self.incoming.map.len())
    }
}

/// A "random" source that yields a fixed 32-byte IKM: what `hpke` draws for the ephemeral key
/// (it reads exactly 32 bytes and runs RFC 9180 `DeriveKeyPair` on them). For test vectors.
struct FixedIkm([u8; 32]);

impl hpke::rand_core::TryRng for FixedIkm {
    type Error = core::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok(u32::from_le_bytes([
            self.0[0], self.0[1], self.0[2], self.0[3],
        ]))
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[..8]);
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for (d, s) in dst.iter_mut().zip(self.0.iter().cycle()) {
            *d = *s;
        }
        Ok(())
    }
}

impl hpke::rand_core::TryCryptoRng for FixedIkm {}

/// Whether a message is encrypted end to end, as the application shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protection {
    /// Sealed for me by the sender's published session key.
    Encrypted,
    /// In clear, from a peer that published no key (e.g. the reference client).
    Plaintext,
    /// In clear although the peer has published a key: our client would have encrypted, so
    /// this deserves a warning (a reference client with the same wallet, or a forgery attempt
    /// by whoever can send as that identity).
    PlaintextFromKeyedPeer,
}

impl Protection {
    pub fn is_encrypted(self) -> bool {
        self == Protection::Encrypted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{Payload, decode_payload, encode_message, encode_reaction};
    use std::time::{Duration, UNIX_EPOCH};

    const ALICE: &str = "0x1111111111111111111111111111111111111111";
    const BOB: &str = "0x2222222222222222222222222222222222222222";
    const CAROL: &str = "0x3333333333333333333333333333333333333333";

    fn at() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_764_150_000)
    }

    fn message(text: &str) -> Vec<u8> {
        encode_message(text, at(), true).expect("encode").0
    }

    /// Alice's reaction to a message of Bob's.
    fn alices_reaction() -> crate::Reaction {
        crate::Reaction {
            emoji_index: 3,
            removal: false,
            message_id: crate::message_id(BOB, 45_000.5),
            address: ALICE.to_owned(),
        }
    }

    #[test]
    fn a_message_and_a_reaction_round_trip_and_say_nothing_in_clear() {
        let mut alice = E2ee::new(SessionKey::generate());
        let mut bob = E2ee::new(SessionKey::generate());
        let plain = message("meet me at the plaza");
        let sealed = alice
            .seal(ALICE, BOB, &bob.public(), &plain, at())
            .expect("seal");
        assert!(packet::is_encrypted(&sealed));
        assert!(!sealed.windows(5).any(|w| w == b"plaza"));
        assert_eq!(decode_payload(&sealed), Err(packet::PacketError::Encrypted));
        let opened = bob
            .open(ALICE, BOB, Some(&alice.public()), &sealed)
            .expect("open");
        assert_eq!(opened, plain, "the very packet a reference client sends");

        let reaction = alices_reaction();
        let plain = encode_reaction(&reaction).expect("reaction");
        let sealed = alice
            .seal(ALICE, BOB, &bob.public(), &plain, at())
            .expect("seal");
        let opened = bob
            .open(ALICE, BOB, Some(&alice.public()), &sealed)
            .expect("open");
        assert_eq!(decode_payload(&opened), Ok(Payload::Reaction(reaction)));
        // One setup each way for the pair, however many messages.
        assert_eq!(alice.contexts(), (1, 0));
        assert_eq!(bob.contexts(), (0, 1));
    }

    #[test]
    fn the_overhead_stays_under_64_bytes() {
        let mut alice = E2ee::new(SessionKey::generate());
        let bob = E2ee::new(SessionKey::generate());
        for len in [1, 10, 100, 127, 128, 155, 1_000, 15_000] {
            let plain = message(&"x".repeat(len));
            let sealed = alice
                .seal(ALICE, BOB, &bob.public(), &plain, at())
                .expect("seal");
            let overhead = sealed.len() - plain.len();
            assert!(overhead <= MAX_OVERHEAD, "{len}: {overhead}");
        }
        // The longest text the send rules allow, in 3-byte characters, asking for a receipt:
        // still one packet once sealed.
        let widest = "€".repeat(crate::outgoing::MAX_CHARS_LIMIT);
        let (plain, asked) = encode_message(&widest, at(), true).expect("encode");
        assert!(asked);
        let sealed = alice
            .seal(ALICE, BOB, &bob.public(), &plain, at())
            .expect("fits one packet");
        assert!(sealed.len() <= MAX_PACKET_PAYLOAD);
        // A reaction: its reacting address travels as the sender's identity.
        let reaction = alices_reaction();
        let plain = encode_reaction(&reaction).expect("reaction");
        let sealed = alice
            .seal(ALICE, BOB, &bob.public(), &plain, at())
            .expect("seal");
        assert!(sealed.len() - plain.len() <= MAX_OVERHEAD);
        // Late in a long session the number takes more bytes.
        if let Some(p) = alice.outgoing.map.get_mut(&bob.public()) {
            p.next_seq = 1 << 34;
        }
        let plain = message(&"x".repeat(155));
        let sealed = alice
            .seal(ALICE, BOB, &bob.public(), &plain, at())
            .expect("seal");
        assert!(sealed.len() - plain.len() <= MAX_OVERHEAD);
    }

    #[test]
    fn replays_tampering_wrong_keys_and_re_attribution_are_refused() {
        let mut alice = E2ee::new(SessionKey::generate());
        let mut bob = E2ee::new(SessionKey::generate());
        let mut carol = E2ee::new(SessionKey::generate());
        let sealed = alice
            .seal(ALICE, BOB, &bob.public(), &message("for bob only"), at())
            .expect("seal");

        let (alice_key, carol_key) = (alice.public(), carol.public());
        // (Carol opens (else Bob), sender and recipient in the AAD, the sender's published key)
        let cases = [
            // Replayed to Carol (she can see Alice's key too): not hers.
            (
                true,
                ALICE,
                CAROL,
                Some(&alice_key),
                OpenError::Undecryptable,
            ),
            // Bob with the wrong recipient in the AAD (as if it had been re-addressed).
            (
                false,
                ALICE,
                CAROL,
                Some(&alice_key),
                OpenError::Undecryptable,
            ),
            // Attributed to Carol, with Carol's key or Alice's.
            (
                false,
                CAROL,
                BOB,
                Some(&carol_key),
                OpenError::Undecryptable,
            ),
            (
                false,
                CAROL,
                BOB,
                Some(&alice_key),
                OpenError::Undecryptable,
            ),
            // No key published for the sender.
            (false, ALICE, BOB, None, OpenError::NoSenderKey),
        ];
        for (is_carol, sender, recipient, key, refusal) in cases {
            let who = if is_carol { &mut carol } else { &mut bob };
            assert_eq!(who.open(sender, recipient, key, &sealed), Err(refusal));
        }
        // A bit flipped in the ciphertext or the enc, another timestamp, a short enc.
        let envelope = match Packet::decode(sealed.as_slice()).expect("decode").message {
            Some(PacketMessage::Encrypted(e)) => e,
            _ => panic!("encrypted"),
        };
        // (a change to the envelope, whether it makes the packet malformed)
        type Change = (fn(&mut Encrypted), bool);
        let changes: [Change; 4] = [
            (|e| e.ciphertext[3] ^= 0x01, false),
            (|e| e.timestamp += 1.0, false),
            (|e| e.enc[0] ^= 0x01, false),
            (|e| e.enc.truncate(31), true),
        ];
        for (change, malformed) in changes {
            let mut e = envelope.clone();
            change(&mut e);
            let bytes = Packet {
                message: Some(PacketMessage::Encrypted(e)),
                protocol_version: PROTOCOL_VERSION,
            }
            .encode_to_vec();
            match bob.open(ALICE, BOB, Some(&alice_key), &bytes) {
                Err(OpenError::Malformed(_)) => assert!(malformed),
                Err(OpenError::Undecryptable) => assert!(!malformed),
                other => panic!("{other:?}"),
            }
        }
        // Sealed by someone holding another key than the one Alice published (Carol's key
        // pair, claiming to be Alice).
        let forged = carol
            .seal(ALICE, BOB, &bob.public(), &message("trust me"), at())
            .expect("seal");
        assert_eq!(
            bob.open(ALICE, BOB, Some(&alice.public()), &forged),
            Err(OpenError::Undecryptable)
        );
        // Nothing failed was remembered; the genuine packet opens once, then is a replay.
        assert_eq!(bob.contexts(), (0, 0));
        assert!(bob.open(ALICE, BOB, Some(&alice.public()), &sealed).is_ok());
        assert_eq!(
            bob.open(ALICE, BOB, Some(&alice.public()), &sealed),
            Err(OpenError::Replayed)
        );
        assert!(matches!(
            bob.open(ALICE, BOB, Some(&alice.public()), b"\x0a\x00"),
            Err(OpenError::Malformed(_))
        ));
    }

    #[test]
    fn the_replay_window_accepts_late_packets_once() {
        let mut alice = E2ee::new(SessionKey::generate());
        let mut bob = E2ee::new(SessionKey::generate());
        let sealed: Vec<Vec<u8>> = (0..100)
            .map(|i| {
                alice
                    .seal(ALICE, BOB, &bob.public(), &message(&format!("m{i}")), at())
                    .expect("seal")
            })
            .collect();
        let open =
            |bob: &mut E2ee, i: usize| bob.open(ALICE, BOB, Some(&alice.public()), &sealed[i]);
        assert!(open(&mut bob, 10).is_ok());
        assert!(open(&mut bob, 5).is_ok(), "late but in the window");
        assert_eq!(open(&mut bob, 5), Err(OpenError::Replayed));
        assert!(open(&mut bob, 99).is_ok());
        assert_eq!(
            open(&mut bob, 10),
            Err(OpenError::Replayed),
            "out of the window"
        );
        assert!(open(&mut bob, 98).is_ok());
        assert!(
            open(&mut bob, 36).is_ok(),
            "99 - 36 = 63: the window's last slot"
        );
    }

    #[test]
    fn a_new_session_key_means_a_new_context_and_the_old_one_no_longer_opens() {
        let mut alice = E2ee::new(SessionKey::generate());
        let bob_old = E2ee::new(SessionKey::generate());
        let mut bob_new = E2ee::new(SessionKey::generate());
        let to_old = alice
            .seal(ALICE, BOB, &bob_old.public(), &message("old"), at())
            .expect("seal");
        // Bob reconnected with a new key: the packet for his old key does not open.
        assert_eq!(
            bob_new.open(ALICE, BOB, Some(&alice.public()), &to_old),
            Err(OpenError::Undecryptable)
        );
        alice.forget_peer(&bob_old.public());
        let to_new = alice
            .seal(ALICE, BOB, &bob_new.public(), &message("new"), at())
            .expect("seal");
        assert!(
            bob_new
                .open(ALICE, BOB, Some(&alice.public()), &to_new)
                .is_ok()
        );
        assert_eq!(alice.contexts(), (1, 0));
    }

    #[test]
    fn the_contexts_are_bounded() {
        let mut alice = E2ee::new(SessionKey::generate());
        alice.outgoing.max = 3;
        for _ in 0..5 {
            let peer = SessionKey::generate().public();
            alice
                .seal(ALICE, BOB, &peer, &message("hi"), at())
                .expect("seal");
        }
        assert_eq!(alice.contexts(), (3, 0));
    }

    #[test]
    fn only_chats_and_reactions_are_sealed() {
        let mut alice = E2ee::new(SessionKey::generate());
        let bob = SessionKey::generate().public();
        let receipt = packet::encode_receipt("0xabc:45000").expect("receipt");
        assert_eq!(
            alice.seal(ALICE, BOB, &bob, &receipt, at()),
            Err(SealError::NotSealable)
        );
        let zero = ChatKey::from_bytes([0; 32]);
        assert_eq!(
            alice.seal(ALICE, BOB, &zero, &message("hi"), at()),
            Err(SealError::BadRecipientKey)
        );
    }
}
