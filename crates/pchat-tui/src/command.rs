//! The commands typed in the input line.

use pchat_core::{Privacy, normalize_address};

use crate::sdk::SocialAction;

/// A parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `/to <address>`
    To(String),
    /// `/friend …`, `/block`, `/unblock`, `/privacy`
    Social(SocialAction),
    /// `/react <emoji>`
    React(String),
    /// `/encrypt require|allow`: refuse plaintext in this conversation, or allow it again.
    RequireEncryption(bool),
    Help,
    Quit,
}

/// Why a command line was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("unknown command {0}: /help lists them")]
    Unknown(String),
    #[error("usage: {0}")]
    Usage(&'static str),
    #[error("{0:?} is not a wallet address (0x and 40 hex digits)")]
    BadAddress(String),
    #[error("{0:?} is not one of the reference client's reaction emoji")]
    UnknownEmoji(String),
}

/// The help text, one command a line.
pub const HELP: &[(&str, &str)] = &[
    ("/to <address>", "open the conversation with a wallet"),
    ("/friend request <address> [message]", "ask to be friends"),
    ("/friend accept|reject <address>", "answer a friend request"),
    ("/friend cancel <address>", "take back your request"),
    ("/friend remove <address>", "end a friendship"),
    (
        "/block <address>, /unblock <address>",
        "block or unblock a wallet",
    ),
    (
        "/privacy all|only-friends",
        "who may send you private messages",
    ),
    (
        "/react <emoji>",
        "react to the last message of this conversation",
    ),
    (
        "/encrypt require|allow",
        "refuse (or allow) plaintext in this conversation",
    ),
    ("/help, /quit", "this help; leave (also Ctrl-C)"),
    ("Tab, Shift-Tab", "next / previous conversation"),
    ("PageUp, PageDown", "scroll the conversation"),
    ("//text", "send a message that starts with /"),
];

fn address(arg: Option<&str>, usage: &'static str) -> Result<String, CommandError> {
    let a = arg.ok_or(CommandError::Usage(usage))?;
    normalize_address(a).map_err(|_| CommandError::BadAddress(a.to_owned()))
}

/// Parses a line that starts with `/`.
pub fn parse_command(line: &str) -> Result<Command, CommandError> {
    let line = line.trim();
    let mut words = line.split_whitespace();
    let name = words.next().unwrap_or("");
    match name {
        "/to" => {
            let a = address(words.next(), "/to <address>")?;
            if words.next().is_some() {
                return Err(CommandError::Usage("/to <address>"));
            }
            Ok(Command::To(a))
        }
        "/friend" => {
            const USAGE: &str = "/friend request|accept|reject|cancel|remove <address>";
            let verb = words.next().ok_or(CommandError::Usage(USAGE))?;
            let who = address(words.next(), USAGE)?;
            let rest: Vec<&str> = words.collect();
            let action = match verb {
                "request" => SocialAction::Request {
                    to: who,
                    message: if rest.is_empty() {
                        None
                    } else {
                        Some(rest.join(" "))
                    },
                },
                _ if !rest.is_empty() => return Err(CommandError::Usage(USAGE)),
                "accept" => SocialAction::Accept(who),
                "reject" => SocialAction::Reject(who),
                "cancel" => SocialAction::Cancel(who),
                "remove" | "delete" => SocialAction::Remove(who),
                _ => return Err(CommandError::Usage(USAGE)),
            };
            Ok(Command::Social(action))
        }
        "/block" | "/unblock" => {
            let usage = if name == "/block" {
                "/block <address>"
            } else {
                "/unblock <address>"
            };
            let who = address(words.next(), usage)?;
            if words.next().is_some() {
                return Err(CommandError::Usage(usage));
            }
            Ok(Command::Social(if name == "/block" {
                SocialAction::Block(who)
            } else {
                SocialAction::Unblock(who)
            }))
        }
        "/privacy" => {
            const USAGE: &str = "/privacy all|only-friends";
            let p = match (words.next(), words.next()) {
                (Some("all"), None) => Privacy::All,
                (Some("only-friends" | "only_friends"), None) => Privacy::OnlyFriends,
                _ => return Err(CommandError::Usage(USAGE)),
            };
            Ok(Command::Social(SocialAction::Privacy(p)))
        }
        "/react" => {
            let emoji = words.next().ok_or(CommandError::Usage("/react <emoji>"))?;
            if words.next().is_some() {
                return Err(CommandError::Usage("/react <emoji>"));
            }
            if chat_core::reaction::emoji_index(emoji).is_none() {
                return Err(CommandError::UnknownEmoji(emoji.chars().take(16).collect()));
            }
            Ok(Command::React(emoji.to_owned()))
        }
        "/encrypt" => {
            const USAGE: &str = "/encrypt require|allow";
            match (words.next(), words.next()) {
                (Some("require" | "on"), None) => Ok(Command::RequireEncryption(true)),
                (Some("allow" | "off"), None) => Ok(Command::RequireEncryption(false)),
                _ => Err(CommandError::Usage(USAGE)),
            }
        }
        "/help" => Ok(Command::Help),
        "/quit" | "/exit" => Ok(Command::Quit),
        other => Err(CommandError::Unknown(other.chars().take(32).collect())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0x00000000000000000000000000000000000000aA";

    #[test]
    fn commands_parse() {
        let a = A.to_ascii_lowercase();
        assert_eq!(
            parse_command(&format!("/to {A}")),
            Ok(Command::To(a.clone()))
        );
        assert_eq!(
            parse_command(&format!("/friend request {A} hi there")),
            Ok(Command::Social(SocialAction::Request {
                to: a.clone(),
                message: Some("hi there".into())
            }))
        );
        assert_eq!(
            parse_command(&format!("/friend remove {A}")),
            Ok(Command::Social(SocialAction::Remove(a.clone())))
        );
        assert_eq!(
            parse_command("/privacy only-friends"),
            Ok(Command::Social(SocialAction::Privacy(Privacy::OnlyFriends)))
        );
        assert_eq!(parse_command("/react 👍"), Ok(Command::React("👍".into())));
        assert_eq!(
            parse_command("/react xyz"),
            Err(CommandError::UnknownEmoji("xyz".into()))
        );
        assert_eq!(parse_command("/quit"), Ok(Command::Quit));
        assert_eq!(
            parse_command("/to 0x12"),
            Err(CommandError::BadAddress("0x12".into()))
        );
        assert!(matches!(
            parse_command("/nope"),
            Err(CommandError::Unknown(_))
        ));
        assert!(matches!(
            parse_command("/privacy some"),
            Err(CommandError::Usage(_))
        ));
        assert!(matches!(
            parse_command(&format!("/friend hug {A}")),
            Err(CommandError::Usage(_))
        ));
    }
}
