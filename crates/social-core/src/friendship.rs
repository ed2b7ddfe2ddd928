//! The friendship state machine.
//!
//! A pair of users has one friendship row and a history of actions. The allowed transitions
//! (new action ← previous action) are:
//!
//! | new | allowed after |
//! |---|---|
//! | request | nothing, cancel, reject, delete |
//! | accept, cancel, reject | request |
//! | delete | accept, block |
//! | block | anything |
//!
//! and who may act: nobody requests themselves; only the requester cancels; only the other side
//! accepts or rejects.

use std::fmt;
use std::str::FromStr;

/// A friendship action, as stored in the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Request,
    Accept,
    Reject,
    Cancel,
    Delete,
    Block,
}

impl Action {
    pub const ALL: [Action; 6] = [
        Action::Request,
        Action::Accept,
        Action::Reject,
        Action::Cancel,
        Action::Delete,
        Action::Block,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Action::Request => "request",
            Action::Accept => "accept",
            Action::Reject => "reject",
            Action::Cancel => "cancel",
            Action::Delete => "delete",
            Action::Block => "block",
        }
    }

    /// Whether the pair are friends after this action.
    pub const fn makes_friends(self) -> bool {
        matches!(self, Action::Accept)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown action name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown friendship action {0:?}")]
pub struct UnknownAction(pub String);

impl FromStr for Action {
    type Err = UnknownAction;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Action::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| UnknownAction(s.to_owned()))
    }
}

/// The latest action on a pair and who took it (lower-case address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastAction {
    pub action: Action,
    pub acting_user: String,
}

/// Why an action is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FriendshipError {
    #[error("you cannot send a friendship request to yourself")]
    SelfRequest,
    #[error("{new} is not allowed after {previous}")]
    InvalidTransition { previous: String, new: Action },
    #[error("only the user who sent the request can cancel it")]
    NotRequester,
    #[error("you cannot {0} your own request")]
    OwnRequest(Action),
    #[error("one of the users has blocked the other")]
    Blocked,
}

/// Whether `new` may follow `previous` (`None`: the pair has no history).
pub fn transition_allowed(previous: Option<Action>, new: Action) -> bool {
    use Action::*;
    match new {
        Request => matches!(previous, None | Some(Cancel) | Some(Reject) | Some(Delete)),
        Accept | Cancel | Reject => previous == Some(Request),
        Delete => matches!(previous, Some(Accept) | Some(Block)),
        Block => true,
    }
}

/// Checks that `acting` may take `new` toward `other` given the pair's last action.
/// Block-table checks (a request to someone who blocked you) are done by the caller with
/// [`FriendshipError::Blocked`].
pub fn validate(
    acting: &str,
    other: &str,
    new: Action,
    last: Option<&LastAction>,
) -> Result<(), FriendshipError> {
    if new == Action::Request && acting == other {
        return Err(FriendshipError::SelfRequest);
    }
    let previous = last.map(|l| l.action);
    if !transition_allowed(previous, new) {
        return Err(FriendshipError::InvalidTransition {
            previous: previous.map_or_else(|| "nothing".to_owned(), |a| a.to_string()),
            new,
        });
    }
    if let Some(last) = last {
        let i_acted_last = last.acting_user == acting;
        match new {
            Action::Accept | Action::Reject if i_acted_last => {
                return Err(FriendshipError::OwnRequest(new));
            }
            Action::Cancel if !i_acted_last => return Err(FriendshipError::NotRequester),
            _ => {}
        }
    }
    Ok(())
}

/// The friendship status as `viewer` sees it (`GetFriendshipStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FriendshipStatus {
    RequestSent,
    RequestReceived,
    Canceled,
    Accepted,
    Rejected,
    Deleted,
    Blocked,
    None,
    BlockedBy,
}

/// The status from `viewer`'s side. Blocks take precedence over the history.
pub fn status_for(
    viewer: &str,
    last: Option<&LastAction>,
    i_blocked: bool,
    blocked_me: bool,
) -> FriendshipStatus {
    if i_blocked {
        return FriendshipStatus::Blocked;
    }
    if blocked_me {
        return FriendshipStatus::BlockedBy;
    }
    let Some(last) = last else {
        return FriendshipStatus::None;
    };
    match last.action {
        Action::Request if last.acting_user == viewer => FriendshipStatus::RequestSent,
        Action::Request => FriendshipStatus::RequestReceived,
        Action::Cancel => FriendshipStatus::Canceled,
        Action::Accept => FriendshipStatus::Accepted,
        Action::Reject => FriendshipStatus::Rejected,
        Action::Delete => FriendshipStatus::Deleted,
        // The block row is gone (unblocked) but no delete followed: nothing is active.
        Action::Block => FriendshipStatus::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: &str = "0xaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const THEM: &str = "0xbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    /// Every (previous action, who took it, new action, who acts) combination, checked against
    /// the table in the module documentation.
    #[test]
    fn every_transition_and_actor_combination() {
        let previous_options: Vec<Option<(Action, &str)>> = std::iter::once(None)
            .chain(
                Action::ALL
                    .iter()
                    .flat_map(|a| [Some((*a, ME)), Some((*a, THEM))]),
            )
            .collect();
        let mut checked = 0;
        for previous in &previous_options {
            let last = previous.map(|(action, who)| LastAction {
                action,
                acting_user: who.to_owned(),
            });
            for new in Action::ALL {
                for (actor, other) in [(ME, THEM), (THEM, ME)] {
                    let result = validate(actor, other, new, last.as_ref());
                    let prev_action = previous.map(|(a, _)| a);
                    let allowed_by_table = match new {
                        Action::Request => matches!(
                            prev_action,
                            None | Some(Action::Cancel | Action::Reject | Action::Delete)
                        ),
                        Action::Accept | Action::Cancel | Action::Reject => {
                            prev_action == Some(Action::Request)
                        }
                        Action::Delete => {
                            matches!(prev_action, Some(Action::Accept | Action::Block))
                        }
                        Action::Block => true,
                    };
                    let last_by_actor = previous.is_some_and(|(_, who)| who == actor);
                    let allowed_for_actor = match new {
                        Action::Accept | Action::Reject => !last_by_actor,
                        Action::Cancel => last_by_actor,
                        _ => true,
                    };
                    let expected = allowed_by_table && (previous.is_none() || allowed_for_actor);
                    assert_eq!(
                        result.is_ok(),
                        expected,
                        "{previous:?} then {new} by {actor}: {result:?}"
                    );
                    if !allowed_by_table {
                        assert!(matches!(
                            result,
                            Err(FriendshipError::InvalidTransition { .. })
                        ));
                    }
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 13 * 6 * 2);
    }

    #[test]
    fn nobody_requests_themselves() {
        assert_eq!(
            validate(ME, ME, Action::Request, None),
            Err(FriendshipError::SelfRequest)
        );
    }

    #[test]
    fn statuses_from_each_side() {
        let req = LastAction {
            action: Action::Request,
            acting_user: ME.into(),
        };
        assert_eq!(
            status_for(ME, Some(&req), false, false),
            FriendshipStatus::RequestSent
        );
        assert_eq!(
            status_for(THEM, Some(&req), false, false),
            FriendshipStatus::RequestReceived
        );
        assert_eq!(status_for(ME, None, false, false), FriendshipStatus::None);
        assert_eq!(
            status_for(ME, Some(&req), true, false),
            FriendshipStatus::Blocked
        );
        assert_eq!(
            status_for(ME, None, false, true),
            FriendshipStatus::BlockedBy
        );
        for (a, s) in [
            (Action::Accept, FriendshipStatus::Accepted),
            (Action::Cancel, FriendshipStatus::Canceled),
            (Action::Reject, FriendshipStatus::Rejected),
            (Action::Delete, FriendshipStatus::Deleted),
        ] {
            assert_eq!(
                status_for(
                    ME,
                    Some(&LastAction {
                        action: a,
                        acting_user: THEM.into()
                    }),
                    false,
                    false
                ),
                s
            );
        }
    }

    #[test]
    fn actions_round_trip_through_text() {
        for a in Action::ALL {
            assert_eq!(a.as_str().parse::<Action>(), Ok(a));
        }
        assert!("befriend".parse::<Action>().is_err());
    }
}
