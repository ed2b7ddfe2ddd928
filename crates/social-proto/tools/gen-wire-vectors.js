// Regenerates the hex vectors used by tests/wire_compat.rs from the official
// TypeScript codecs of @dcl/protocol. Node is needed only to run this script,
// never at test time. Run it from a scratch directory outside the repository:
//
//   mkdir -p /tmp/dclproto && cd /tmp/dclproto && npm init -y
//   npm install --ignore-scripts @dcl/protocol@1.0.0-35600014993.commit-874bb91
//   node /path/to/crates/social-proto/tools/gen-wire-vectors.js /tmp/dclproto --latest
//
// `--latest` adds vectors for fields that older builds lack (name_color,
// show_situation_reactions); omit it for 1.0.0-21456739795.commit-eae3f8b.
const path = require('path');
const root = process.argv[2];
const latest = process.argv.includes('--latest');
const m = require(path.join(root, 'node_modules/@dcl/protocol/out-js/decentraland/social_service/v2/social_service_v2.gen.js'));
const hex = (T, v) => Buffer.from(T.encode(T.fromPartial(v)).finish()).toString('hex');
const out = {};
const alice = '0x1111111111111111111111111111111111111111';
const bob = '0x2222222222222222222222222222222222222222';
const carol = '0x3333333333333333333333333333333333333333';

out.get_friends_payload = hex(m.GetFriendsPayload, { pagination: { limit: 50, offset: 100 } });
out.get_friends_payload_zero_pagination = hex(m.GetFriendsPayload, { pagination: { limit: 0, offset: 0 } });
out.paginated_friends = hex(m.PaginatedFriendsProfilesResponse, {
  friends: [
    { address: alice, name: 'Alice', hasClaimedName: true, profilePictureUrl: 'https://example.invalid/a.png' },
    { address: bob, name: 'Bob#2222', hasClaimedName: false, profilePictureUrl: '' },
  ],
  paginationData: { total: 42, page: 3 },
});
out.upsert_request = hex(m.UpsertFriendshipPayload, { action: { $case: 'request', request: { user: { address: bob }, message: 'hi there' } } });
out.upsert_request_no_message = hex(m.UpsertFriendshipPayload, { action: { $case: 'request', request: { user: { address: bob } } } });
for (const c of ['accept', 'reject', 'delete', 'cancel']) {
  out['upsert_' + c] = hex(m.UpsertFriendshipPayload, { action: { $case: c, [c]: { user: { address: carol } } } });
}
out.social_settings = hex(m.SocialSettings, { privateMessagesPrivacy: m.PrivateMessagePrivacySetting.ONLY_FRIENDS, blockedUsersMessagesVisibility: m.BlockedUsersMessagesVisibilitySetting.DO_NOT_SHOW_MESSAGES });
out.get_social_settings_ok = hex(m.GetSocialSettingsResponse, { response: { $case: 'ok', ok: { settings: { privateMessagesPrivacy: 1, blockedUsersMessagesVisibility: 1 } } } });
out.get_social_settings_defaults = hex(m.GetSocialSettingsResponse, { response: { $case: 'ok', ok: { settings: { privateMessagesPrivacy: 0, blockedUsersMessagesVisibility: 0 } } } });
out.upsert_social_settings_payload = hex(m.UpsertSocialSettingsPayload, { privateMessagesPrivacy: 0 });
out.upsert_social_settings_response = hex(m.UpsertSocialSettingsResponse, { response: { $case: 'ok', ok: { privateMessagesPrivacy: 1, blockedUsersMessagesVisibility: 0 } } });
out.get_pm_settings_payload = hex(m.GetPrivateMessagesSettingsPayload, { user: [{ address: alice }, { address: bob }] });
out.get_pm_settings_ok = hex(m.GetPrivateMessagesSettingsResponse, { response: { $case: 'ok', ok: { settings: [
  { user: { address: alice }, privateMessagesPrivacy: 1, isFriend: true },
  { user: { address: bob }, privateMessagesPrivacy: 0, isFriend: false },
] } } });
out.get_pm_settings_invalid = hex(m.GetPrivateMessagesSettingsResponse, { response: { $case: 'invalidRequest', invalidRequest: { message: 'too many users' } } });
out.block_update_blocked = hex(m.BlockUpdate, { address: alice, isBlocked: true });
out.block_update_unblocked = hex(m.BlockUpdate, { address: alice, isBlocked: false });
out.friendship_update_request = hex(m.FriendshipUpdate, { update: { $case: 'request', request: {
  friend: { address: alice, name: 'Alice', hasClaimedName: true, profilePictureUrl: 'https://example.invalid/a.png' },
  createdAt: 1700000000123, message: 'be my friend', id: '9b2c1f1e-0000-4000-8000-000000000001' } } });
out.friendship_update_block = hex(m.FriendshipUpdate, { update: { $case: 'block', block: { user: { address: carol } } } });
out.friendship_status_ok = hex(m.GetFriendshipStatusResponse, { response: { $case: 'accepted', accepted: { status: m.FriendshipStatus.BLOCKED_BY } } });
out.pending_requests = hex(m.PaginatedFriendshipRequestsResponse, { response: { $case: 'requests', requests: { requests: [
  { friend: { address: bob, name: 'Bob', hasClaimedName: false, profilePictureUrl: '' }, createdAt: 1, id: 'r1' } ] } },
  paginationData: { total: 1, page: 1 } });
out.blocking_status = hex(m.GetBlockingStatusResponse, { blockedUsers: [alice, bob], blockedByUsers: [carol] });
out.blocked_users = hex(m.GetBlockedUsersResponse, { profiles: [{ address: carol, name: 'Carol', hasClaimedName: true, profilePictureUrl: 'p', blockedAt: 1700000000000 }], paginationData: { total: 1, page: 1 } });
if (latest) {
  out.social_settings_all3 = hex(m.SocialSettings, { privateMessagesPrivacy: 1, blockedUsersMessagesVisibility: 1, showSituationReactions: 1 });
  out.friend_with_name_color = hex(m.PaginatedFriendsProfilesResponse, { friends: [{ address: alice, name: 'Alice', hasClaimedName: true, profilePictureUrl: '', nameColor: { r: 1, g: 0.5, b: 0.25 } }], paginationData: { total: 1, page: 1 } });
}
console.log(JSON.stringify(out, null, 1));
