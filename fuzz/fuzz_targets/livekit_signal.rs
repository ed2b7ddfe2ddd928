//! LiveKit signalling: arbitrary frames through `signal::decode_frame` (the participant's
//! decoder of `SignalResponse`), then what the participant does with each message that needs no
//! socket: the roster (JoinResponse rebuild, ParticipantUpdate apply), trickled ICE candidates
//! (`parse_trickle`) and SDP answers/offers (str0m's parser), leave reasons.
//!
//! Input: frames `[flags][len u16 LE][bytes]` (see `split_frames`), applied in order to one
//! roster. Checked: no panic; the roster never holds the local participant, nor anyone
//! disconnected, and every join/leave event agrees with the roster.
#![no_main]

use libfuzzer_sys::fuzz_target;
use livekit_participant::PresenceState;
use livekit_participant::fuzzing::parse_trickle;
use livekit_participant::roster::{Roster, RosterEvent};
use livekit_participant::signal::{Incoming, decode_frame};
use livekit_protocol as proto;
use private_chat_fuzz::split_frames;
use proto::signal_response::Message as Resp;
use str0m::change::{SdpAnswer, SdpOffer};

const ME: &str = "0x1111111111111111111111111111111111111111";

fn check(roster: &Roster, events: &[RosterEvent]) {
    assert!(
        roster.get(ME).is_none(),
        "the roster holds the local participant"
    );
    for p in roster.participants() {
        assert_ne!(
            p.state,
            PresenceState::Disconnected,
            "{p:?} is in the roster"
        );
        assert!(!p.identity.is_empty());
    }
    for e in events {
        match e {
            RosterEvent::Joined(p)
            | RosterEvent::MetadataChanged { participant: p, .. }
            | RosterEvent::AttributesChanged(p) => {
                assert_eq!(
                    roster.get(&p.identity),
                    Some(p),
                    "event {e:?} disagrees with the roster"
                )
            }
            RosterEvent::Left(p) => {
                assert!(
                    roster.get(&p.identity).is_none(),
                    "{p:?} left but is still there"
                )
            }
        }
    }
}

fuzz_target!(
    init: private_chat_fuzz::seeds::write_if_asked("livekit_signal"),
    |data: &[u8]| {
    let mut roster = Roster::new(ME);
    for (_, bytes) in split_frames(data).into_iter().take(32) {
        let Incoming::Response(msg) = decode_frame(bytes) else {
            continue;
        };
        match *msg {
            Resp::Join(join) => {
                let events = roster.rebuild(ME, &join.other_participants);
                check(&roster, &events);
            }
            Resp::Update(update) => {
                let mut events = Vec::new();
                for info in &update.participants {
                    events.extend(roster.apply(info));
                    check(&roster, events.last().map(std::slice::from_ref).unwrap_or(&[]));
                }
            }
            Resp::Trickle(t) => {
                let _ = parse_trickle(&t.candidate_init);
            }
            Resp::Answer(a) => {
                let _ = SdpAnswer::from_sdp_string(&a.sdp);
            }
            Resp::Offer(o) => {
                let _ = SdpOffer::from_sdp_string(&o.sdp);
            }
            Resp::Leave(l) => {
                let _ = proto::DisconnectReason::try_from(l.reason);
                let _ = proto::leave_request::Action::try_from(l.action);
            }
            _ => {}
        }
    }
});
