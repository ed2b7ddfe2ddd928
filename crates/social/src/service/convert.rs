//! Conversions between the wire types (`social_proto::v2`) and the domain's (`social_core`,
//! `pchat_core`), and reading the request fields every procedure shares (a user, a page).

use pchat_core::{Privacy, normalize_address};
use social_core::{
    BlockedMessagesVisibility, FriendshipStatus, SettingsChange, SituationReactions, SocialSettings,
};
use social_proto::InvalidRequest;
use social_proto::v2;

use super::reply::invalid;
use super::{DEFAULT_PAGE, MAX_PAGE};

/// (limit, offset) from an optional Pagination, clamped.
pub(super) fn page(p: Option<v2::Pagination>) -> (i64, i64) {
    match p {
        Some(p) => {
            let limit = if p.limit <= 0 {
                DEFAULT_PAGE
            } else {
                i64::from(p.limit).min(MAX_PAGE)
            };
            (limit, i64::from(p.offset.max(0)))
        }
        None => (DEFAULT_PAGE, 0),
    }
}

/// The response's pagination: both numbers saturate at `i32::MAX` (the wire type) instead of
/// wrapping around (an offset near `i32::MAX` with a page size of 1 used to give page −2³¹).
pub(super) fn paginated(total: i64, limit: i64, offset: i64) -> v2::PaginatedResponse {
    v2::PaginatedResponse {
        total: i32::try_from(total.max(0)).unwrap_or(i32::MAX),
        page: i32::try_from(offset.max(0) / limit.max(1) + 1).unwrap_or(i32::MAX),
    }
}

/// The address inside an optional `User`, validated and lower-cased.
pub(super) fn user_address(user: Option<&v2::User>) -> Result<String, InvalidRequest> {
    let user = user.ok_or_else(|| invalid("missing user"))?;
    normalize_address(&user.address)
        .map_err(|_| invalid(format!("invalid address {:?}", user.address)))
}

pub(super) fn privacy_to_proto(p: Privacy) -> i32 {
    match p {
        Privacy::All => v2::PrivateMessagePrivacySetting::All as i32,
        Privacy::OnlyFriends => v2::PrivateMessagePrivacySetting::OnlyFriends as i32,
    }
}

fn visibility_to_proto(v: BlockedMessagesVisibility) -> i32 {
    match v {
        BlockedMessagesVisibility::ShowMessages => {
            v2::BlockedUsersMessagesVisibilitySetting::ShowMessages as i32
        }
        BlockedMessagesVisibility::DoNotShowMessages => {
            v2::BlockedUsersMessagesVisibilitySetting::DoNotShowMessages as i32
        }
    }
}

pub(super) fn status_to_proto(s: FriendshipStatus) -> i32 {
    use v2::FriendshipStatus as P;
    (match s {
        FriendshipStatus::RequestSent => P::RequestSent,
        FriendshipStatus::RequestReceived => P::RequestReceived,
        FriendshipStatus::Canceled => P::Canceled,
        FriendshipStatus::Accepted => P::Accepted,
        FriendshipStatus::Rejected => P::Rejected,
        FriendshipStatus::Deleted => P::Deleted,
        FriendshipStatus::Blocked => P::Blocked,
        FriendshipStatus::None => P::None,
        FriendshipStatus::BlockedBy => P::BlockedBy,
    }) as i32
}

pub(super) fn settings_to_proto(s: &SocialSettings) -> v2::SocialSettings {
    v2::SocialSettings {
        private_messages_privacy: privacy_to_proto(s.private_messages_privacy),
        blocked_users_messages_visibility: visibility_to_proto(s.blocked_users_messages_visibility),
        show_situation_reactions: match s.show_situation_reactions {
            SituationReactions::Show => v2::SituationReactionsVisibility::Show as i32,
            SituationReactions::Hide => v2::SituationReactionsVisibility::Hide as i32,
        },
    }
}

/// One optional setting of an upsert: absent is `None`, a number the enum `P` does not know is
/// an invalid request naming the field.
fn setting<P: TryFrom<i32>, T>(
    value: Option<i32>,
    field: &str,
    from_proto: impl FnOnce(P) -> T,
) -> Result<Option<T>, InvalidRequest> {
    value
        .map(|v| {
            P::try_from(v)
                .map(from_proto)
                .map_err(|_| invalid(format!("unknown {field}")))
        })
        .transpose()
}

/// The change an UpsertSocialSettings asks for (at least one field; each one known).
pub(super) fn settings_change(
    req: &v2::UpsertSocialSettingsPayload,
) -> Result<SettingsChange, InvalidRequest> {
    use v2::BlockedUsersMessagesVisibilitySetting as V;
    use v2::PrivateMessagePrivacySetting as P;
    use v2::SituationReactionsVisibility as R;
    if req.private_messages_privacy.is_none()
        && req.blocked_users_messages_visibility.is_none()
        && req.show_situation_reactions.is_none()
    {
        return Err(invalid("At least one setting must be given"));
    }
    Ok(SettingsChange {
        private_messages_privacy: setting(
            req.private_messages_privacy,
            "private_messages_privacy",
            |p| match p {
                P::All => Privacy::All,
                P::OnlyFriends => Privacy::OnlyFriends,
            },
        )?,
        blocked_users_messages_visibility: setting(
            req.blocked_users_messages_visibility,
            "blocked_users_messages_visibility",
            |v| match v {
                V::ShowMessages => BlockedMessagesVisibility::ShowMessages,
                V::DoNotShowMessages => BlockedMessagesVisibility::DoNotShowMessages,
            },
        )?,
        show_situation_reactions: setting(
            req.show_situation_reactions,
            "show_situation_reactions",
            |r| match r {
                R::Show => SituationReactions::Show,
                R::Hide => SituationReactions::Hide,
            },
        )?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found while writing the `social_request_payloads` fuzz target: `GetFriends` with `limit: 1,
    /// offset: i32::MAX` answered page −2147483648 (the page number wrapped around).
    #[test]
    fn page_numbers_do_not_wrap_for_huge_offsets() {
        let (limit, offset) = page(Some(v2::Pagination {
            limit: 1,
            offset: i32::MAX,
        }));
        let p = paginated(i64::MAX, limit, offset);
        assert_eq!(p.page, i32::MAX);
        assert_eq!(p.total, i32::MAX);
        assert_eq!(paginated(0, 0, 0).page, 1);
        assert_eq!(paginated(120, 50, 100).page, 3);
        assert_eq!(paginated(-5, 50, 0).total, 0);
    }
}
