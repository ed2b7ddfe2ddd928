//! SocialService request payloads: every request message of `social-proto` decoded from the same
//! arbitrary bytes (and re-encoded: decode(encode(m)) == m), then the bytes handed to the real
//! procedure of the social service's module (request validation, address normalisation,
//! settings, pagination) over a SQLite store in a temporary directory, as one of three callers.
//! The answer must decode as the procedure's response type, and its pagination must be sane.
//!
//! Input: `[procedure index][caller][payload…]`; the index picks one of the 16 procedures
//! private chat implements, in proto order.
#![no_main]

use std::sync::{Arc, OnceLock};

use dcl_rpc_server::{CallContext, Procedure};
use libfuzzer_sys::fuzz_target;
use prost::Message;
use social::App;
use social::gatekeeper::NoGatekeeper;
use social_proto::v2;
use tokio::runtime::Runtime;

const CALLERS: [&str; 3] = [
    "0x1111111111111111111111111111111111111111",
    "0x2222222222222222222222222222222222222222",
    "0x3333333333333333333333333333333333333333",
];

/// The procedures implemented (the rest of the proto are voice and community procedures).
const IMPLEMENTED: usize = 16;

struct Harness {
    rt: Runtime,
    procedures: Vec<(String, Procedure)>,
    _dir: tempfile::TempDir,
}

fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        // /dev/shm keeps SQLite's fsyncs cheap when it exists.
        let dir = tempfile::Builder::new()
            .prefix("social-fuzz")
            .tempdir_in(if std::path::Path::new("/dev/shm").is_dir() {
                "/dev/shm"
            } else {
                "/tmp"
            })
            .expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("social.sqlite").display());
        let app = rt
            .block_on(App::build_with(
                &social::SocialConfig::new(&url),
                Arc::new(NoGatekeeper),
            ))
            .expect("the social service starts");
        let procedures = app.social.module().procedures;
        assert!(procedures.len() >= IMPLEMENTED);
        Harness {
            rt,
            procedures,
            _dir: dir,
        }
    })
}

/// Decodes `bytes` as `M`; what decodes must survive encode → decode unchanged.
fn round_trip<M: Message + Default + PartialEq + std::fmt::Debug>(bytes: &[u8]) {
    if let Ok(m) = M::decode(bytes) {
        let again = M::decode(m.encode_to_vec().as_slice()).expect("re-encoded message decodes");
        assert_eq!(again, m);
    }
}

fn check_page(p: Option<&v2::PaginatedResponse>) {
    if let Some(p) = p {
        assert!(p.total >= 0, "negative total {p:?}");
        assert!(p.page >= 1, "page numbers start at 1: {p:?}");
    }
}

fn check_response(name: &str, bytes: &[u8]) {
    fn dec<M: Message + Default>(name: &str, bytes: &[u8]) -> M {
        M::decode(bytes).unwrap_or_else(|e| panic!("{name} answered an undecodable response: {e}"))
    }
    match name {
        "GetFriends" | "GetMutualFriends" => {
            let r: v2::PaginatedFriendsProfilesResponse = dec(name, bytes);
            check_page(r.pagination_data.as_ref());
        }
        "GetPendingFriendshipRequests" | "GetSentFriendshipRequests" => {
            let r: v2::PaginatedFriendshipRequestsResponse = dec(name, bytes);
            check_page(r.pagination_data.as_ref());
        }
        "GetBlockedUsers" => {
            let r: v2::GetBlockedUsersResponse = dec(name, bytes);
            check_page(r.pagination_data.as_ref());
        }
        "UpsertFriendship" => drop(dec::<v2::UpsertFriendshipResponse>(name, bytes)),
        "GetFriendshipStatus" => drop(dec::<v2::GetFriendshipStatusResponse>(name, bytes)),
        "BlockUser" => drop(dec::<v2::BlockUserResponse>(name, bytes)),
        "UnblockUser" => drop(dec::<v2::UnblockUserResponse>(name, bytes)),
        "GetBlockingStatus" => drop(dec::<v2::GetBlockingStatusResponse>(name, bytes)),
        "GetSocialSettings" => drop(dec::<v2::GetSocialSettingsResponse>(name, bytes)),
        "UpsertSocialSettings" => drop(dec::<v2::UpsertSocialSettingsResponse>(name, bytes)),
        "GetPrivateMessagesSettings" => {
            drop(dec::<v2::GetPrivateMessagesSettingsResponse>(name, bytes))
        }
        _ => {}
    }
}

fuzz_target!(
    init: private_chat_fuzz::seeds::write_if_asked("social_request_payloads"),
    |data: &[u8]| {
    let [which, caller, payload @ ..] = data else {
        return;
    };
    round_trip::<v2::GetFriendsPayload>(payload);
    round_trip::<v2::GetMutualFriendsPayload>(payload);
    round_trip::<v2::GetFriendshipRequestsPayload>(payload);
    round_trip::<v2::UpsertFriendshipPayload>(payload);
    round_trip::<v2::GetFriendshipStatusPayload>(payload);
    round_trip::<v2::BlockUserPayload>(payload);
    round_trip::<v2::UnblockUserPayload>(payload);
    round_trip::<v2::GetBlockedUsersPayload>(payload);
    round_trip::<v2::UpsertSocialSettingsPayload>(payload);
    round_trip::<v2::GetPrivateMessagesSettingsPayload>(payload);

    let h = harness();
    let (name, procedure) = &h.procedures[usize::from(*which) % IMPLEMENTED];
    let ctx = CallContext {
        address: CALLERS[usize::from(*caller) % CALLERS.len()].to_owned(),
        connection_id: 1,
    };
    let payload = payload.to_vec();
    h.rt.block_on(async {
        match procedure {
            Procedure::Unary(f) => match f(ctx, payload).await {
                Ok(bytes) => check_response(name, &bytes),
                Err(e) => assert!(!e.message.is_empty()),
            },
            // Opening a stream validates the request; the stream itself waits for updates.
            Procedure::ServerStream(f) => drop(f(ctx, payload).await),
        }
    });
});
