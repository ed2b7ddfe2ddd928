//! Social settings (`social_settings`): who may send private messages, and whether messages
//! from blocked users are shown. A user without a row has the defaults.

use std::str::FromStr;

pub use pchat_core::Privacy;

/// Whether to show messages from blocked users (a client-side choice).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum BlockedMessagesVisibility {
    #[default]
    ShowMessages,
    DoNotShowMessages,
}

impl BlockedMessagesVisibility {
    pub const fn as_str(self) -> &'static str {
        match self {
            BlockedMessagesVisibility::ShowMessages => "show_messages",
            BlockedMessagesVisibility::DoNotShowMessages => "do_not_show_messages",
        }
    }
}

impl FromStr for BlockedMessagesVisibility {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "show_messages" => Ok(BlockedMessagesVisibility::ShowMessages),
            "do_not_show_messages" => Ok(BlockedMessagesVisibility::DoNotShowMessages),
            other => Err(format!(
                "unknown blocked_users_messages_visibility {other:?}"
            )),
        }
    }
}

/// Whether to show situation reactions (a client-side choice).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SituationReactions {
    #[default]
    Show,
    Hide,
}

impl SituationReactions {
    pub const fn as_str(self) -> &'static str {
        match self {
            SituationReactions::Show => "show",
            SituationReactions::Hide => "hide",
        }
    }
}

impl FromStr for SituationReactions {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "show" => Ok(SituationReactions::Show),
            "hide" => Ok(SituationReactions::Hide),
            other => Err(format!("unknown show_situation_reactions {other:?}")),
        }
    }
}

/// One user's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SocialSettings {
    pub private_messages_privacy: Privacy,
    pub blocked_users_messages_visibility: BlockedMessagesVisibility,
    pub show_situation_reactions: SituationReactions,
}

/// A change to some of a user's settings (`None`: keep).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SettingsChange {
    pub private_messages_privacy: Option<Privacy>,
    pub blocked_users_messages_visibility: Option<BlockedMessagesVisibility>,
    pub show_situation_reactions: Option<SituationReactions>,
}

impl SettingsChange {
    pub fn is_empty(&self) -> bool {
        *self == SettingsChange::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_allow_everyone() {
        let s = SocialSettings::default();
        assert_eq!(s.private_messages_privacy, Privacy::All);
        assert_eq!(
            s.blocked_users_messages_visibility,
            BlockedMessagesVisibility::ShowMessages
        );
        assert_eq!(
            "do_not_show_messages".parse(),
            Ok(BlockedMessagesVisibility::DoNotShowMessages)
        );
        assert!("hide".parse::<BlockedMessagesVisibility>().is_err());
        assert_eq!(s.show_situation_reactions, SituationReactions::Show);
        assert_eq!("hide".parse(), Ok(SituationReactions::Hide));
        assert!("HIDE".parse::<SituationReactions>().is_err());
        assert!(SettingsChange::default().is_empty());
    }
}
