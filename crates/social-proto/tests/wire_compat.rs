//! Wire compatibility with the official TypeScript codecs.
//!
//! Every hex vector below was produced by the `encode` functions of the npm
//! package `@dcl/protocol` (`out-js/decentraland/social_service/v2/
//! social_service_v2.gen.js`, ts-proto + protobufjs), builds
//! `1.0.0-21456739795.commit-eae3f8b` and `1.0.0-35600014993.commit-874bb91`
//! (both gave the same bytes; the vectors marked "newer build only" use
//! fields that exist only in the second). Each test decodes the official
//! bytes with prost, compares with the expected value, and re-encodes to the
//! same bytes.

use prost::Message;
use social_proto::v2::{
    self, BlockUpdate, BlockedUserProfile, BlockedUsersMessagesVisibilitySetting, FriendProfile,
    FriendshipRequestResponse, FriendshipRequests, FriendshipStatus, FriendshipUpdate,
    GetBlockedUsersResponse, GetBlockingStatusResponse, GetFriendsPayload,
    GetFriendshipStatusResponse, GetPrivateMessagesSettingsPayload,
    GetPrivateMessagesSettingsResponse, GetSocialSettingsResponse,
    PaginatedFriendsProfilesResponse, PaginatedFriendshipRequestsResponse, PaginatedResponse,
    Pagination, PrivateMessagePrivacySetting, SituationReactionsVisibility, SocialSettings,
    UpsertFriendshipPayload, UpsertSocialSettingsPayload, UpsertSocialSettingsResponse, User,
};
use social_proto::{
    InvalidRequest, SOCIAL_SERVICE_METHODS, SOCIAL_SERVICE_MODULE, SOCIAL_SERVICE_PROCEDURES,
    common::Color3, procedure_id,
};
use std::fmt::Debug;

const ALICE: &str = "0x1111111111111111111111111111111111111111";
const BOB: &str = "0x2222222222222222222222222222222222222222";
const CAROL: &str = "0x3333333333333333333333333333333333333333";
const PICTURE: &str = "https://example.invalid/a.png";

/// Official bytes → prost value must equal `expected`, and `expected` must
/// encode back to exactly the official bytes.
fn assert_wire<M: Message + Default + PartialEq + Debug>(official_hex: &str, expected: &M) {
    let bytes = hex::decode(official_hex).expect("valid hex vector");
    let decoded = M::decode(bytes.as_slice()).expect("prost decodes the official bytes");
    assert_eq!(&decoded, expected, "decoded value differs");
    assert_eq!(
        hex::encode(expected.encode_to_vec()),
        official_hex,
        "re-encoding differs from the official bytes"
    );
}

fn user(address: &str) -> Option<User> {
    Some(User {
        address: address.to_owned(),
    })
}

fn alice_profile() -> FriendProfile {
    FriendProfile {
        address: ALICE.into(),
        name: "Alice".into(),
        has_claimed_name: true,
        profile_picture_url: PICTURE.into(),
        name_color: None,
    }
}

// ----------------------------------------------------------- friendships ---

#[test]
fn get_friends_payload() {
    assert_wire(
        "0a0408321064",
        &GetFriendsPayload {
            pagination: Some(Pagination {
                limit: 50,
                offset: 100,
            }),
        },
    );
    // A present-but-empty pagination is still sent (explicit presence).
    assert_wire(
        "0a00",
        &GetFriendsPayload {
            pagination: Some(Pagination::default()),
        },
    );
}

#[test]
fn paginated_friends_profiles_response() {
    assert_wire(
        "0a540a2a3078313131313131313131313131313131313131313131313131313131313131313131313131313131311205416c6963651801221d68747470733a2f2f6578616d706c652e696e76616c69642f612e706e670a360a2a3078323232323232323232323232323232323232323232323232323232323232323232323232323232321208426f6223323232321204082a1003",
        &PaginatedFriendsProfilesResponse {
            friends: vec![
                alice_profile(),
                FriendProfile {
                    address: BOB.into(),
                    name: "Bob#2222".into(),
                    has_claimed_name: false,
                    profile_picture_url: String::new(),
                    name_color: None,
                },
            ],
            pagination_data: Some(PaginatedResponse { total: 42, page: 3 }),
        },
    );
}

#[test]
fn friend_profile_name_color_newer_build_only() {
    assert_wire(
        "0a460a2a3078313131313131313131313131313131313131313131313131313131313131313131313131313131311205416c69636518012a0f0d0000803f150000003f1d0000803e120408011001",
        &PaginatedFriendsProfilesResponse {
            friends: vec![FriendProfile {
                address: ALICE.into(),
                name: "Alice".into(),
                has_claimed_name: true,
                profile_picture_url: String::new(),
                name_color: Some(Color3 {
                    r: 1.0,
                    g: 0.5,
                    b: 0.25,
                }),
            }],
            pagination_data: Some(PaginatedResponse { total: 1, page: 1 }),
        },
    );
}

#[test]
fn upsert_friendship_payload_every_action() {
    use v2::upsert_friendship_payload::{
        AcceptPayload, Action, CancelPayload, DeletePayload, RejectPayload, RequestPayload,
    };
    let with = |action| UpsertFriendshipPayload {
        action: Some(action),
    };

    assert_wire(
        "0a380a2c0a2a3078323232323232323232323232323232323232323232323232323232323232323232323232323232321a086869207468657265",
        &with(Action::Request(RequestPayload {
            user: user(BOB),
            message: Some("hi there".into()),
        })),
    );
    assert_wire(
        "0a2e0a2c0a2a307832323232323232323232323232323232323232323232323232323232323232323232323232323232",
        &with(Action::Request(RequestPayload {
            user: user(BOB),
            message: None,
        })),
    );
    let carol_suffix = "2e0a2c0a2a307833333333333333333333333333333333333333333333333333333333333333333333333333333333";
    // Oneof arms use tags 2, 4, 5, 6 (3 is skipped).
    assert_wire(
        &format!("12{carol_suffix}"),
        &with(Action::Accept(AcceptPayload { user: user(CAROL) })),
    );
    assert_wire(
        &format!("22{carol_suffix}"),
        &with(Action::Reject(RejectPayload { user: user(CAROL) })),
    );
    assert_wire(
        &format!("2a{carol_suffix}"),
        &with(Action::Delete(DeletePayload { user: user(CAROL) })),
    );
    assert_wire(
        &format!("32{carol_suffix}"),
        &with(Action::Cancel(CancelPayload { user: user(CAROL) })),
    );
}

#[test]
fn friendship_update_request_and_block() {
    use v2::friendship_update::{BlockResponse, RequestResponse, Update};
    assert_wire(
        "0a91010a540a2a3078313131313131313131313131313131313131313131313131313131313131313131313131313131311205416c6963651801221d68747470733a2f2f6578616d706c652e696e76616c69642f612e706e6710fbd095ffbc311a0c6265206d7920667269656e64222439623263316631652d303030302d343030302d383030302d303030303030303030303031",
        &FriendshipUpdate {
            update: Some(Update::Request(RequestResponse {
                friend: Some(alice_profile()),
                created_at: 1_700_000_000_123,
                message: Some("be my friend".into()),
                id: "9b2c1f1e-0000-4000-8000-000000000001".into(),
            })),
        },
    );
    assert_wire(
        "322e0a2c0a2a307833333333333333333333333333333333333333333333333333333333333333333333333333333333",
        &FriendshipUpdate {
            update: Some(Update::Block(BlockResponse { user: user(CAROL) })),
        },
    );
}

#[test]
fn friendship_status_response() {
    use v2::get_friendship_status_response::{Ok, Response};
    assert_wire(
        "0a020808",
        &GetFriendshipStatusResponse {
            response: Some(Response::Accepted(Ok {
                status: FriendshipStatus::BlockedBy as i32,
                message: None,
            })),
        },
    );
}

#[test]
fn pending_friendship_requests() {
    use v2::paginated_friendship_requests_response::Response;
    assert_wire(
        "0a3b0a390a310a2a3078323232323232323232323232323232323232323232323232323232323232323232323232323232321203426f621001220272311a0408011001",
        &PaginatedFriendshipRequestsResponse {
            response: Some(Response::Requests(FriendshipRequests {
                requests: vec![FriendshipRequestResponse {
                    friend: Some(FriendProfile {
                        address: BOB.into(),
                        name: "Bob".into(),
                        has_claimed_name: false,
                        profile_picture_url: String::new(),
                        name_color: None,
                    }),
                    created_at: 1,
                    message: None,
                    id: "r1".into(),
                }],
            })),
            pagination_data: Some(PaginatedResponse { total: 1, page: 1 }),
        },
    );
}

// ---------------------------------------------------------------- blocks ---

#[test]
fn block_update() {
    assert_wire(
        "0a2a3078313131313131313131313131313131313131313131313131313131313131313131313131313131311001",
        &BlockUpdate {
            address: ALICE.into(),
            is_blocked: true,
        },
    );
    assert_wire(
        "0a2a307831313131313131313131313131313131313131313131313131313131313131313131313131313131",
        &BlockUpdate {
            address: ALICE.into(),
            is_blocked: false,
        },
    );
}

#[test]
fn blocking_status_and_blocked_users() {
    assert_wire(
        "0a2a3078313131313131313131313131313131313131313131313131313131313131313131313131313131310a2a307832323232323232323232323232323232323232323232323232323232323232323232323232323232122a307833333333333333333333333333333333333333333333333333333333333333333333333333333333",
        &GetBlockingStatusResponse {
            blocked_users: vec![ALICE.into(), BOB.into()],
            blocked_by_users: vec![CAROL.into()],
        },
    );
    assert_wire(
        "0a3f0a2a30783333333333333333333333333333333333333333333333333333333333333333333333333333333312054361726f6c18012201702880d095ffbc31120408011001",
        &GetBlockedUsersResponse {
            profiles: vec![BlockedUserProfile {
                address: CAROL.into(),
                name: "Carol".into(),
                has_claimed_name: true,
                profile_picture_url: "p".into(),
                blocked_at: Some(1_700_000_000_000),
                name_color: None,
            }],
            pagination_data: Some(PaginatedResponse { total: 1, page: 1 }),
        },
    );
}

// ------------------------------------------------------ social settings ---

#[test]
fn social_settings_both_enums() {
    let settings = SocialSettings {
        private_messages_privacy: PrivateMessagePrivacySetting::OnlyFriends as i32,
        blocked_users_messages_visibility: BlockedUsersMessagesVisibilitySetting::DoNotShowMessages
            as i32,
        show_situation_reactions: SituationReactionsVisibility::Show as i32,
    };
    assert_wire("08011001", &settings);
    assert_eq!(
        settings.private_messages_privacy(),
        PrivateMessagePrivacySetting::OnlyFriends
    );

    use v2::get_social_settings_response::{Ok, Response};
    assert_wire(
        "0a060a0408011001",
        &GetSocialSettingsResponse {
            response: Some(Response::Ok(Ok {
                settings: Some(settings),
            })),
        },
    );
    // All-default settings: the enums are omitted, the messages are not.
    assert_wire(
        "0a020a00",
        &GetSocialSettingsResponse {
            response: Some(Response::Ok(Ok {
                settings: Some(SocialSettings::default()),
            })),
        },
    );
}

#[test]
fn social_settings_situation_reactions_newer_build_only() {
    assert_wire(
        "080110011801",
        &SocialSettings {
            private_messages_privacy: PrivateMessagePrivacySetting::OnlyFriends as i32,
            blocked_users_messages_visibility:
                BlockedUsersMessagesVisibilitySetting::DoNotShowMessages as i32,
            show_situation_reactions: SituationReactionsVisibility::Hide as i32,
        },
    );
}

#[test]
fn upsert_social_settings() {
    // `optional` enum set to its zero value is still on the wire.
    assert_wire(
        "0800",
        &UpsertSocialSettingsPayload {
            private_messages_privacy: Some(PrivateMessagePrivacySetting::All as i32),
            blocked_users_messages_visibility: None,
            show_situation_reactions: None,
        },
    );
    use v2::upsert_social_settings_response::Response;
    assert_wire(
        "0a020801",
        &UpsertSocialSettingsResponse {
            response: Some(Response::Ok(SocialSettings {
                private_messages_privacy: PrivateMessagePrivacySetting::OnlyFriends as i32,
                ..SocialSettings::default()
            })),
        },
    );
}

#[test]
fn private_messages_settings() {
    assert_wire(
        "0a2c0a2a3078313131313131313131313131313131313131313131313131313131313131313131313131313131310a2c0a2a307832323232323232323232323232323232323232323232323232323232323232323232323232323232",
        &GetPrivateMessagesSettingsPayload {
            user: vec![
                User {
                    address: ALICE.into(),
                },
                User {
                    address: BOB.into(),
                },
            ],
        },
    );

    use v2::get_private_messages_settings_response::{Ok, PrivateMessagesSettings, Response};
    assert_wire(
        "0a640a320a2c0a2a307831313131313131313131313131313131313131313131313131313131313131313131313131313131100118010a2e0a2c0a2a307832323232323232323232323232323232323232323232323232323232323232323232323232323232",
        &GetPrivateMessagesSettingsResponse {
            response: Some(Response::Ok(Ok {
                settings: vec![
                    PrivateMessagesSettings {
                        user: user(ALICE),
                        private_messages_privacy: PrivateMessagePrivacySetting::OnlyFriends as i32,
                        is_friend: true,
                    },
                    PrivateMessagesSettings {
                        user: user(BOB),
                        private_messages_privacy: PrivateMessagePrivacySetting::All as i32,
                        is_friend: false,
                    },
                ],
            })),
        },
    );
    assert_wire(
        "1a100a0e746f6f206d616e79207573657273",
        &GetPrivateMessagesSettingsResponse {
            response: Some(Response::InvalidRequest(InvalidRequest {
                message: Some("too many users".into()),
            })),
        },
    );
}

// ------------------------------------------------------------ procedures ---

#[test]
fn procedure_table() {
    assert_eq!(SOCIAL_SERVICE_MODULE, "SocialService");
    assert_eq!(SOCIAL_SERVICE_PROCEDURES.len(), 33);
    assert_eq!(
        SOCIAL_SERVICE_METHODS.len(),
        SOCIAL_SERVICE_PROCEDURES.len()
    );

    let idx = |name: &str| SOCIAL_SERVICE_PROCEDURES.iter().position(|p| *p == name);
    assert_eq!(idx("GetFriends"), Some(0));
    assert_eq!(idx("SubscribeToBlockUpdates"), Some(12));
    assert_eq!(idx("GetSocialSettings"), Some(13));
    assert_eq!(idx("UpsertSocialSettings"), Some(14));
    assert_eq!(idx("GetPrivateMessagesSettings"), Some(15));
    assert_eq!(
        SOCIAL_SERVICE_PROCEDURES.last(),
        Some(&"MuteSpeakerFromCommunityVoiceChat")
    );
    assert_eq!(procedure_id("GetSocialSettings"), Some(14));
    assert_eq!(procedure_id("NoSuchProcedure"), None);

    for (m, name) in SOCIAL_SERVICE_METHODS.iter().zip(SOCIAL_SERVICE_PROCEDURES) {
        assert_eq!(m.name, *name);
        assert!(!m.client_streaming);
        assert_eq!(
            m.server_streaming,
            name.starts_with("SubscribeTo"),
            "{name}"
        );
    }
    let get_settings = &SOCIAL_SERVICE_METHODS[13];
    assert_eq!(get_settings.input_type, "google.protobuf.Empty");
    assert_eq!(
        get_settings.output_type,
        "decentraland.social_service.v2.GetSocialSettingsResponse"
    );
}

#[test]
fn empty_request_is_unit() {
    // google.protobuf.Empty maps to `()`: an empty payload decodes fine.
    <() as Message>::decode(&[][..]).expect("empty payload");
    assert!(().encode_to_vec().is_empty());
}
