//! Whether a private message can be sent to someone now (docs/wire.md §6 "Recipient state"); the
//! input is disabled unless the answer is [`RecipientState::Connected`]: nothing is queued for
//! users who cannot receive.

use pchat_core::Privacy;

/// What the sender knows of the recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RecipientFacts {
    /// The recipient is a participant of the chat room now.
    pub in_room: bool,
    /// The recipient's setting, from their participant metadata (`None`: absent or unreadable).
    pub their_privacy: Option<Privacy>,
    pub is_friend: bool,
    /// I blocked them.
    pub i_blocked: bool,
    /// They blocked me.
    pub blocked_me: bool,
}

/// The states the reference client shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecipientState {
    Connected,
    Disconnected,
    /// I blocked them.
    BlockedByOwnUser,
    /// My setting (only friends) keeps me from talking to a non-friend.
    PrivateMessagesBlockedByOwnUser,
    /// Their setting keeps them from receiving from a non-friend.
    PrivateMessagesBlocked,
}

/// The recipient's state, checked in the reference client's order.
pub fn recipient_state(my_privacy: Privacy, r: RecipientFacts) -> RecipientState {
    use RecipientState::*;
    if r.is_friend {
        return if r.in_room { Connected } else { Disconnected };
    }
    if r.i_blocked {
        return BlockedByOwnUser;
    }
    if r.blocked_me || !r.in_room {
        // Being blocked is not revealed: it looks like being away.
        return Disconnected;
    }
    if my_privacy == Privacy::OnlyFriends {
        return PrivateMessagesBlockedByOwnUser;
    }
    if r.their_privacy != Some(Privacy::All) {
        return PrivateMessagesBlocked;
    }
    Connected
}

#[cfg(test)]
mod tests {
    use super::*;
    use RecipientState::*;

    #[test]
    fn the_reference_order() {
        let here = RecipientFacts {
            in_room: true,
            their_privacy: Some(Privacy::All),
            ..Default::default()
        };
        let table = [
            (Privacy::All, here, Connected),
            (
                Privacy::All,
                RecipientFacts {
                    in_room: false,
                    ..here
                },
                Disconnected,
            ),
            (
                Privacy::OnlyFriends,
                RecipientFacts {
                    is_friend: true,
                    their_privacy: Some(Privacy::OnlyFriends),
                    ..here
                },
                Connected,
            ),
            (
                Privacy::All,
                RecipientFacts {
                    is_friend: true,
                    in_room: false,
                    ..here
                },
                Disconnected,
            ),
            (
                Privacy::All,
                RecipientFacts {
                    i_blocked: true,
                    ..here
                },
                BlockedByOwnUser,
            ),
            (
                Privacy::All,
                RecipientFacts {
                    i_blocked: true,
                    in_room: false,
                    ..here
                },
                BlockedByOwnUser,
            ),
            (
                Privacy::All,
                RecipientFacts {
                    blocked_me: true,
                    ..here
                },
                Disconnected,
            ),
            (Privacy::OnlyFriends, here, PrivateMessagesBlockedByOwnUser),
            (
                Privacy::All,
                RecipientFacts {
                    their_privacy: Some(Privacy::OnlyFriends),
                    ..here
                },
                PrivateMessagesBlocked,
            ),
            (
                Privacy::All,
                RecipientFacts {
                    their_privacy: None,
                    ..here
                },
                PrivateMessagesBlocked,
            ),
        ];
        for (i, (mine, facts, want)) in table.into_iter().enumerate() {
            assert_eq!(recipient_state(mine, facts), want, "row {i}: {facts:?}");
        }
    }
}
