//! One connection to the room: the signalling WebSocket, one str0m peer connection with the
//! `_reliable` and `_lossy` data channels, pings, and the event loop that drives them.
//!
//! str0m is sans-IO: this loop owns the UDP socket and the timers. The rule str0m sets is
//! "after each change, drain `poll_output()` until it returns a timeout", which [`Session::drain`]
//! does before every wait.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use livekit_protocol as proto;
use proto::signal_request::Message as Req;
use proto::signal_response::Message as Resp;
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::channel::{ChannelConfig, ChannelId};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event as RtcEvent, IceConnectionState, Input, Output, Rtc, RtcConfig};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use crate::channel::Reliability;
use crate::error::{ConnectError, SendError};
use crate::packet::{self, Decoded};
use crate::signal::{self, Incoming, WsStream};
use crate::token::Credentials;
use crate::{Event, Shared};

/// How long the server has to send the JoinResponse.
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long after the join the data channels have to open.
const ESTABLISH_TIMEOUT: Duration = Duration::from_secs(15);
/// Signalling silence (no frame at all, pongs included) after which the connection is dead.
const MAX_SILENCE: Duration = Duration::from_secs(10);
/// Ping period ceiling (the server asks for 5 s).
const MAX_PING_INTERVAL: Duration = Duration::from_secs(5);
/// Messages waiting for room in the SCTP send buffer, at most.
const MAX_BACKLOG: usize = 4096;

/// A request from the application handle.
pub(crate) enum Command {
    Send {
        payload: Vec<u8>,
        destinations: Vec<String>,
        topic: Option<String>,
        reliability: Reliability,
        reply: oneshot::Sender<Result<(), SendError>>,
    },
    Leave {
        reply: oneshot::Sender<()>,
    },
    /// Encoded bytes sent as they are (tests only).
    #[cfg(feature = "test-util")]
    Raw {
        bytes: Vec<u8>,
        reliability: Reliability,
        reply: oneshot::Sender<Result<(), SendError>>,
    },
}

/// How a session ended.
#[derive(Debug)]
pub(crate) enum Ended {
    /// The application asked to leave.
    Left,
    /// The application dropped every handle.
    HandleDropped,
    /// The server ended the session for good (duplicate identity, removed).
    Kicked(String),
    /// The connection failed or died; try again.
    Failed(ConnectError),
}

/// A packet waiting for room in the send buffer, with whom to tell when it is written.
type Queued = (
    Reliability,
    Vec<u8>,
    Option<oneshot::Sender<Result<(), SendError>>>,
);

pub(crate) struct Session<'a> {
    shared: &'a Arc<Shared>,
    ws: WsStream,
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    pending_offer: Option<SdpPendingOffer>,
    reliable: ChannelId,
    lossy: ChannelId,
    reliable_open: bool,
    lossy_open: bool,
    established: bool,
    backlog: VecDeque<Queued>,
    last_signal: Instant,
    ping_interval: Duration,
    me: String,
}

/// Picks the local address the kernel would use to reach `host`.
async fn local_ip_towards(url: &str) -> Result<(IpAddr, SocketAddr), ConnectError> {
    let parsed = url::Url::parse(url).map_err(|e| ConnectError::Signal(e.to_string()))?;
    let host = parsed
        .host_str()
        .ok_or_else(|| ConnectError::Signal("URL has no host".into()))?;
    let port = parsed.port_or_known_default().unwrap_or(443);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let remote = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| ConnectError::Signal(format!("cannot resolve {host}: {e}")))?
        .next()
        .ok_or_else(|| ConnectError::Signal(format!("{host} has no address")))?;
    let probe = std::net::UdpSocket::bind(if remote.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    })
    .map_err(|e| ConnectError::WebRtc(e.to_string()))?;
    probe
        .connect(remote)
        .map_err(|e| ConnectError::WebRtc(e.to_string()))?;
    let local = probe
        .local_addr()
        .map_err(|e| ConnectError::WebRtc(e.to_string()))?;
    Ok((local.ip(), remote))
}

impl<'a> Session<'a> {
    /// Connects the WebSocket, waits for the JoinResponse, creates the peer connection and sends
    /// the offer. Returns the session and the JoinResponse.
    pub(crate) async fn start(
        shared: &'a Arc<Shared>,
        creds: &Credentials,
    ) -> Result<(Session<'a>, proto::JoinResponse), ConnectError> {
        let mut ws = tokio::time::timeout(
            JOIN_TIMEOUT,
            signal::connect(creds, &signal::join_request()),
        )
        .await
        .map_err(|_| ConnectError::Timeout("signalling connection"))??;
        let join = tokio::time::timeout(JOIN_TIMEOUT, async {
            loop {
                match signal::recv(&mut ws, &shared.stats.signal_bytes).await? {
                    Incoming::Response(m) if matches!(*m, Resp::Join(_)) => {
                        if let Resp::Join(join) = *m {
                            return Ok(join);
                        }
                    }
                    Incoming::Response(m) if matches!(*m, Resp::Leave(_)) => {
                        let reason = if let Resp::Leave(leave) = *m {
                            leave.reason
                        } else {
                            0
                        };
                        return Err(ConnectError::Refused(format!(
                            "leave before join: reason {reason}"
                        )));
                    }
                    Incoming::Closed => {
                        return Err(ConnectError::Signal("closed before the join".into()));
                    }
                    Incoming::Undecodable => shared.stats.count_bad_signal(),
                    _ => {}
                }
            }
        })
        .await
        .map_err(|_| ConnectError::Timeout("JoinResponse"))??;

        let me = join
            .participant
            .as_ref()
            .map(|p| p.identity.clone())
            .unwrap_or_default();
        let (local_ip, _) = local_ip_towards(&creds.url).await?;
        let socket = UdpSocket::bind(SocketAddr::new(local_ip, 0))
            .await
            .map_err(|e| ConnectError::WebRtc(format!("cannot bind UDP: {e}")))?;
        let local = socket
            .local_addr()
            .map_err(|e| ConnectError::WebRtc(e.to_string()))?;

        let mut config = RtcConfig::new().set_ice_lite(false);
        // Consent checks at most 1 s apart, 5 tries: a dead path shows as Disconnected in ~15 s.
        config.set_max_stun_rto(Duration::from_millis(1000));
        config.set_max_stun_retransmits(5);
        let mut rtc = config.build(Instant::now());
        let candidate =
            Candidate::host(local, "udp").map_err(|e| ConnectError::WebRtc(e.to_string()))?;
        rtc.add_local_candidate(candidate);
        let mut change = rtc.sdp_api();
        let reliable = change.add_channel_with_config(ChannelConfig {
            label: "_reliable".into(),
            ordered: true,
            reliability: str0m::channel::Reliability::Reliable,
            ..Default::default()
        });
        let lossy = change.add_channel_with_config(ChannelConfig {
            label: "_lossy".into(),
            ordered: false,
            reliability: str0m::channel::Reliability::MaxRetransmits { retransmits: 0 },
            ..Default::default()
        });
        let (offer, pending) = change
            .apply()
            .ok_or_else(|| ConnectError::WebRtc("no offer was produced".into()))?;
        signal::send(
            &mut ws,
            Req::Offer(proto::SessionDescription {
                r#type: "offer".into(),
                sdp: offer.to_sdp_string(),
                id: 1,
                ..Default::default()
            }),
        )
        .await?;

        let ping_interval =
            Duration::from_secs(join.ping_interval.max(1) as u64).min(MAX_PING_INTERVAL);
        Ok((
            Session {
                shared,
                ws,
                rtc,
                socket,
                local,
                pending_offer: Some(pending),
                reliable,
                lossy,
                reliable_open: false,
                lossy_open: false,
                established: false,
                backlog: VecDeque::new(),
                last_signal: Instant::now(),
                ping_interval,
                me,
            },
            join,
        ))
    }

    pub(crate) fn identity(&self) -> &str {
        &self.me
    }

    /// Runs until the session ends.
    pub(crate) async fn run(mut self, commands: &mut mpsc::Receiver<Command>) -> Ended {
        let started = Instant::now();
        let mut buf = vec![0u8; 65_536];
        let mut ping = tokio::time::interval(self.ping_interval);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let ended = loop {
            let deadline = match self.drain().await {
                Ok(t) => t,
                Err(e) => break Ended::Failed(e),
            };
            if !self.rtc.is_alive() {
                break Ended::Failed(ConnectError::WebRtc("the peer connection closed".into()));
            }
            if !self.established && started.elapsed() > ESTABLISH_TIMEOUT {
                break Ended::Failed(ConnectError::Timeout("data channels did not open"));
            }
            if self.last_signal.elapsed() > MAX_SILENCE {
                break Ended::Failed(ConnectError::Timeout(
                    "no answer from the server (ping timeout)",
                ));
            }
            let result: Result<Option<Ended>, ConnectError> = tokio::select! {
                r = self.socket.recv_from(&mut buf) => match r {
                    Ok((n, source)) => self.on_datagram(source, &buf[..n]),
                    Err(e) => Err(ConnectError::WebRtc(format!("UDP receive: {e}"))),
                },
                _ = tokio::time::sleep_until(deadline.into()) => self
                    .rtc
                    .handle_input(Input::Timeout(Instant::now()))
                    .map(|_| None)
                    .map_err(|e| ConnectError::WebRtc(e.to_string())),
                frame = signal::recv(&mut self.ws, &self.shared.stats.signal_bytes) => match frame {
                    Ok(frame) => self.on_signal(frame).await,
                    Err(e) => Err(e),
                },
                _ = ping.tick() => signal::send(
                    &mut self.ws,
                    Req::PingReq(proto::Ping { timestamp: now_ms(), rtt: 0 }),
                )
                .await
                .map(|_| None),
                cmd = commands.recv() => Ok(self.on_command(cmd).await),
            };
            match result {
                Ok(None) => {}
                Ok(Some(ended)) => break ended,
                Err(e) => break Ended::Failed(e),
            }
        };
        for (_, _, reply) in self.backlog.drain(..) {
            if let Some(reply) = reply {
                let _ = reply.send(Err(SendError::NotConnected));
            }
        }
        ended
    }

    fn on_datagram(
        &mut self,
        source: SocketAddr,
        data: &[u8],
    ) -> Result<Option<Ended>, ConnectError> {
        // Anything that is not STUN/DTLS is ignored.
        if let Ok(input) = Receive::new(Protocol::Udp, source, self.local, data) {
            self.rtc
                .handle_input(Input::Receive(Instant::now(), input))
                .map_err(|e| ConnectError::WebRtc(e.to_string()))?;
        }
        Ok(None)
    }

    async fn on_command(&mut self, cmd: Option<Command>) -> Option<Ended> {
        match cmd {
            None => {
                let _ = signal::send(&mut self.ws, leave_request()).await;
                Some(Ended::HandleDropped)
            }
            Some(Command::Leave { reply }) => {
                let _ = signal::send(&mut self.ws, leave_request()).await;
                let _ =
                    tokio::time::timeout(Duration::from_secs(2), futures_close(&mut self.ws)).await;
                self.rtc.disconnect();
                let _ = reply.send(());
                Some(Ended::Left)
            }
            Some(Command::Send {
                payload,
                destinations,
                topic,
                reliability,
                reply,
            }) => {
                if !self.established {
                    let _ = reply.send(Err(SendError::NotConnected));
                } else if self.backlog.len() >= MAX_BACKLOG {
                    // Cannot happen with the bounded command queue and one reply per message,
                    // but never grow without bound.
                    let _ = reply.send(Err(SendError::NotConnected));
                } else {
                    // Numbered here, in queue order, so sequences reach the server increasing.
                    let sequence = match reliability {
                        Reliability::Reliable => self.shared.next_sequence(),
                        Reliability::Lossy => 0,
                    };
                    let bytes = packet::encode_user_packet(
                        &payload,
                        &destinations,
                        topic.as_deref(),
                        reliability,
                        sequence,
                        rand::random(),
                    );
                    self.backlog.push_back((reliability, bytes, Some(reply)));
                }
                None
            }
            #[cfg(feature = "test-util")]
            Some(Command::Raw {
                bytes,
                reliability,
                reply,
            }) => {
                if !self.established || self.backlog.len() >= MAX_BACKLOG {
                    let _ = reply.send(Err(SendError::NotConnected));
                } else {
                    self.backlog.push_back((reliability, bytes, Some(reply)));
                }
                None
            }
        }
    }

    async fn on_signal(&mut self, frame: Incoming) -> Result<Option<Ended>, ConnectError> {
        let msg = match frame {
            Incoming::Closed => {
                return Err(ConnectError::Signal(
                    "the signalling connection closed".into(),
                ));
            }
            Incoming::Undecodable => {
                self.shared.stats.count_bad_signal();
                self.last_signal = Instant::now();
                return Ok(None);
            }
            Incoming::Nothing => {
                self.last_signal = Instant::now();
                return Ok(None);
            }
            Incoming::Response(m) => *m,
        };
        self.last_signal = Instant::now();
        match msg {
            Resp::Answer(answer) => {
                if let Some(pending) = self.pending_offer.take() {
                    let sdp = SdpAnswer::from_sdp_string(&answer.sdp)
                        .map_err(|e| ConnectError::WebRtc(format!("bad answer: {e}")))?;
                    self.rtc
                        .sdp_api()
                        .accept_answer(pending, sdp)
                        .map_err(|e| ConnectError::WebRtc(format!("answer refused: {e}")))?;
                }
            }
            Resp::Trickle(trickle) => {
                if let Some(candidate) = parse_trickle(&trickle.candidate_init) {
                    self.rtc.add_remote_candidate(candidate);
                }
            }
            Resp::Update(update) => {
                for info in update.participants.iter().filter(|i| i.identity == self.me) {
                    self.shared.note_self(info);
                }
                let mut roster = self.shared.roster.lock().await;
                for info in &update.participants {
                    if let Some(event) = roster.apply(info) {
                        self.shared.emit(Event::from(event));
                    }
                }
                self.shared.note_roster(&mut roster);
            }
            Resp::Leave(leave) => return Ok(Some(on_server_leave(&leave))),
            Resp::RefreshToken(_) | Resp::PongResp(_) | Resp::Pong(_) => {}
            other => {
                tracing::trace!(message = ?std::mem::discriminant(&other), "signal message ignored")
            }
        }
        Ok(None)
    }

    /// Drains str0m's output until its next timeout; writes queued messages when there is room.
    async fn drain(&mut self) -> Result<Instant, ConnectError> {
        loop {
            let output = self
                .rtc
                .poll_output()
                .map_err(|e| ConnectError::WebRtc(e.to_string()))?;
            match output {
                Output::Timeout(t) => {
                    if self.write_backlog() {
                        continue;
                    }
                    return Ok(t);
                }
                Output::Transmit(t) => {
                    if let Err(e) = self.socket.send_to(&t.contents, t.destination).await {
                        tracing::debug!(destination = %t.destination, error = %e, "UDP send failed");
                    }
                }
                Output::Event(event) => self.on_rtc_event(event)?,
            }
        }
    }

    /// Writes the first queued message if the channel has room. True when something was written
    /// (so the caller must drain again).
    fn write_backlog(&mut self) -> bool {
        let Some((reliability, bytes, _)) = self.backlog.front() else {
            return false;
        };
        let id = match reliability {
            Reliability::Reliable => self.reliable,
            Reliability::Lossy => self.lossy,
        };
        let Some(mut channel) = self.rtc.channel(id) else {
            if let Some((_, _, Some(reply))) = self.backlog.pop_front() {
                let _ = reply.send(Err(SendError::NotConnected));
            }
            return true;
        };
        match channel.write(true, bytes) {
            Ok(true) => {
                if let Some((_, _, Some(reply))) = self.backlog.pop_front() {
                    let _ = reply.send(Ok(()));
                }
                true
            }
            Ok(false) => false, // the SCTP buffer is full: wait for acknowledgements
            Err(e) => {
                tracing::debug!(error = %e, "data channel write failed");
                if let Some((_, _, Some(reply))) = self.backlog.pop_front() {
                    let _ = reply.send(Err(SendError::NotConnected));
                }
                true
            }
        }
    }

    fn on_rtc_event(&mut self, event: RtcEvent) -> Result<(), ConnectError> {
        match event {
            RtcEvent::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                return Err(ConnectError::WebRtc("ICE disconnected".into()));
            }
            RtcEvent::ChannelOpen(id, _) => {
                if id == self.reliable {
                    self.reliable_open = true;
                } else if id == self.lossy {
                    self.lossy_open = true;
                }
                if self.reliable_open && self.lossy_open && !self.established {
                    self.established = true;
                    self.shared.set_connected(true);
                }
            }
            RtcEvent::ChannelClose(id) if id == self.reliable || id == self.lossy => {
                return Err(ConnectError::WebRtc("a data channel was closed".into()));
            }
            RtcEvent::ChannelData(data) => {
                let reliability = if data.id == self.lossy {
                    Reliability::Lossy
                } else {
                    Reliability::Reliable
                };
                match packet::decode(&data.data, reliability) {
                    Ok(Decoded::User { packet, nonce, .. }) => {
                        if self.shared.admit(&packet.sender, &nonce) {
                            self.shared.emit(Event::Data(packet));
                        } else {
                            self.shared.stats.count_duplicate();
                        }
                    }
                    Ok(Decoded::Other) => {}
                    Err(_) => self.shared.stats.count_bad_packet(),
                }
            }
            RtcEvent::Closed => {
                return Err(ConnectError::WebRtc("the peer connection closed".into()));
            }
            _ => {}
        }
        Ok(())
    }
}

fn leave_request() -> Req {
    Req::Leave(proto::LeaveRequest {
        reason: proto::DisconnectReason::ClientInitiated as i32,
        action: proto::leave_request::Action::Disconnect as i32,
        ..Default::default()
    })
}

async fn futures_close(ws: &mut WsStream) {
    let _ = ws.close(None).await;
}

/// What to do when the server sends a LeaveRequest.
fn on_server_leave(leave: &proto::LeaveRequest) -> Ended {
    let reason = proto::DisconnectReason::try_from(leave.reason)
        .map(|r| r.as_str_name().to_owned())
        .unwrap_or_else(|_| leave.reason.to_string());
    let action = proto::leave_request::Action::try_from(leave.action)
        .unwrap_or(proto::leave_request::Action::Disconnect);
    let final_reasons = [
        proto::DisconnectReason::DuplicateIdentity as i32,
        proto::DisconnectReason::ParticipantRemoved as i32,
    ];
    if action == proto::leave_request::Action::Disconnect && final_reasons.contains(&leave.reason) {
        Ended::Kicked(reason)
    } else {
        Ended::Failed(ConnectError::Left(reason))
    }
}

/// A trickled candidate: `{"candidate":"candidate:…","sdpMid":…}`.
pub fn parse_trickle(init: &str) -> Option<Candidate> {
    let value: serde_json::Value = serde_json::from_str(init).ok()?;
    let text = value.get("candidate")?.as_str()?;
    let text = text.strip_prefix("a=").unwrap_or(text);
    if text.is_empty() {
        return None;
    }
    Candidate::from_sdp_string(text).ok()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trickle_candidates_parse_and_garbage_does_not() {
        assert!(parse_trickle(r#"{"candidate":"candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host","sdpMid":"0","sdpMLineIndex":0}"#).is_some());
        assert!(parse_trickle(r#"{"candidate":""}"#).is_none());
        assert!(parse_trickle("not json").is_none());
        assert!(parse_trickle(r#"{"candidate":"candidate:x"}"#).is_none());
    }

    #[test]
    fn duplicate_identity_is_final_other_leaves_reconnect() {
        let dup = proto::LeaveRequest {
            reason: proto::DisconnectReason::DuplicateIdentity as i32,
            ..Default::default()
        };
        assert!(matches!(on_server_leave(&dup), Ended::Kicked(_)));
        let shutdown = proto::LeaveRequest {
            reason: proto::DisconnectReason::ServerShutdown as i32,
            ..Default::default()
        };
        assert!(matches!(on_server_leave(&shutdown), Ended::Failed(_)));
    }
}
