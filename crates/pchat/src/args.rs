//! Arguments shared by the player commands: the endpoints (and, in [`crate::identity`], the
//! identity). Flatten them into a command with `#[command(flatten)]` and call
//! [`EndpointArgs::validate`] before connecting anywhere.

use url::Url;

/// The gatekeeper's default: the one `pchat up` (and `scripts/dev`) starts.
pub const DEFAULT_GATEKEEPER_URL: &str = "http://127.0.0.1:3000";
/// The social service's default: the one `pchat up` (and `scripts/dev`) starts.
pub const DEFAULT_SOCIAL_URL: &str = "ws://127.0.0.1:3001/";

/// Where the services are.
#[derive(Debug, Clone, clap::Args)]
pub struct EndpointArgs {
    /// Gatekeeper base URL (http or https).
    #[arg(long, env = "PCHAT_GATEKEEPER_URL", default_value = DEFAULT_GATEKEEPER_URL, value_name = "URL")]
    pub gatekeeper: String,
    /// Social service WebSocket URL (ws or wss).
    #[arg(long, env = "PCHAT_SOCIAL_URL", default_value = DEFAULT_SOCIAL_URL, value_name = "URL")]
    pub social: String,
    /// Turn end-to-end encryption off: publish no session key, send everything in the
    /// reference client's plaintext (docs/e2ee.md). Default: on.
    #[arg(long, env = "PCHAT_NO_E2EE")]
    pub no_e2ee: bool,
    /// Refuse to send a message in plaintext (to a peer without an encryption key). Default:
    /// off (plaintext to such peers, shown as such).
    #[arg(long, env = "PCHAT_REQUIRE_ENCRYPTION", conflicts_with = "no_e2ee")]
    pub require_encryption: bool,
}

impl Default for EndpointArgs {
    fn default() -> Self {
        EndpointArgs {
            gatekeeper: DEFAULT_GATEKEEPER_URL.into(),
            social: DEFAULT_SOCIAL_URL.into(),
            no_e2ee: false,
            require_encryption: false,
        }
    }
}

/// Validated endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// The gatekeeper's base URL, without a trailing `/` (as `GatekeeperTokens` takes it).
    pub gatekeeper: String,
    /// The social service's WebSocket URL.
    pub social: String,
    /// End-to-end encryption on.
    pub e2ee: bool,
    /// Plaintext sends refused.
    pub require_encryption: bool,
}

/// An endpoint that cannot be used. One line each.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    #[error("{flag} {value:?} is not a URL ({reason})")]
    NotUrl {
        flag: &'static str,
        value: String,
        reason: String,
    },
    #[error("{flag} {value:?} must start with {expected} (e.g. {example})")]
    Scheme {
        flag: &'static str,
        value: String,
        expected: &'static str,
        example: &'static str,
    },
    #[error("{flag} {value:?} must not carry a user name, password, query or fragment")]
    Extra { flag: &'static str, value: String },
}

impl EndpointArgs {
    /// Checks both URLs (scheme, host, nothing that would be ignored) without connecting.
    pub fn validate(&self) -> Result<Endpoints, EndpointError> {
        let gatekeeper = check(
            "--gatekeeper/PCHAT_GATEKEEPER_URL",
            &self.gatekeeper,
            &["http", "https"],
            "http:// or https://",
            DEFAULT_GATEKEEPER_URL,
        )?;
        let social = check(
            "--social/PCHAT_SOCIAL_URL",
            &self.social,
            &["ws", "wss"],
            "ws:// or wss://",
            DEFAULT_SOCIAL_URL,
        )?;
        Ok(Endpoints {
            gatekeeper: gatekeeper.as_str().trim_end_matches('/').to_owned(),
            social: social.as_str().to_owned(),
            e2ee: !self.no_e2ee,
            require_encryption: self.require_encryption,
        })
    }
}

fn check(
    flag: &'static str,
    value: &str,
    schemes: &[&str],
    expected: &'static str,
    example: &'static str,
) -> Result<Url, EndpointError> {
    let url = Url::parse(value.trim()).map_err(|e| EndpointError::NotUrl {
        flag,
        value: value.to_owned(),
        reason: e.to_string(),
    })?;
    if !schemes.contains(&url.scheme()) {
        return Err(EndpointError::Scheme {
            flag,
            value: value.to_owned(),
            expected,
            example,
        });
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(EndpointError::NotUrl {
            flag,
            value: value.to_owned(),
            reason: "no host".into(),
        });
    }
    if !url.username().is_empty()
        || url.password().is_some()
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(EndpointError::Extra {
            flag,
            value: value.to_owned(),
        });
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(g: &str, s: &str) -> EndpointArgs {
        EndpointArgs {
            gatekeeper: g.into(),
            social: s.into(),
            ..EndpointArgs::default()
        }
    }

    #[test]
    fn defaults_are_valid() {
        let e = EndpointArgs::default().validate().expect("valid");
        assert_eq!(e.gatekeeper, "http://127.0.0.1:3000");
        assert_eq!(e.social, "ws://127.0.0.1:3001/");
    }

    #[test]
    fn wrong_schemes_and_garbage_are_refused() {
        for (g, s) in [
            ("ws://127.0.0.1:3000", DEFAULT_SOCIAL_URL),
            ("127.0.0.1:3000", DEFAULT_SOCIAL_URL),
            ("", DEFAULT_SOCIAL_URL),
            (DEFAULT_GATEKEEPER_URL, "http://127.0.0.1:3001/"),
            (DEFAULT_GATEKEEPER_URL, "ws://"),
            ("http://u:p@127.0.0.1:3000", DEFAULT_SOCIAL_URL),
            (DEFAULT_GATEKEEPER_URL, "ws://127.0.0.1:3001/?x=1"),
        ] {
            let e = args(g, s).validate().expect_err(&format!("{g} {s}"));
            let msg = e.to_string();
            assert!(!msg.contains('\n'), "{msg}");
            assert!(msg.contains("PCHAT_"), "{msg}");
        }
    }

    #[test]
    fn a_trailing_slash_on_the_gatekeeper_is_dropped() {
        let e = args("https://gk.example.org/", "wss://social.example.org/")
            .validate()
            .expect("valid");
        assert_eq!(e.gatekeeper, "https://gk.example.org");
    }
}
