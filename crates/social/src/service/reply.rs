//! How a handler's failure becomes its answer, so handlers use `?`: an invalid request or an
//! internal error is the matching case of the response's `oneof` (logged once, here, for an
//! internal error), and a failure of a procedure whose response has no such case is a dcl-rpc
//! remote error.

use dcl_rpc_server::RpcError;
use social_proto::v2;
use social_proto::{InternalServerError, InvalidRequest};
use social_store::StoreError;

/// An internal error, logged with `tracing` when it is made; the client is told only that the
/// server failed.
pub(crate) struct Internal(());

impl Internal {
    pub(crate) fn new(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "social service internal error");
        Internal(())
    }

    fn message(self) -> InternalServerError {
        InternalServerError {
            message: Some("Internal server error".into()),
        }
    }
}

impl From<StoreError> for Internal {
    fn from(e: StoreError) -> Self {
        Internal::new(e)
    }
}

/// Why a handler whose response has both cases answers one of them.
pub(crate) enum Refusal {
    Invalid(InvalidRequest),
    Internal(Internal),
}

impl From<InvalidRequest> for Refusal {
    fn from(e: InvalidRequest) -> Self {
        Refusal::Invalid(e)
    }
}

impl From<Internal> for Refusal {
    fn from(e: Internal) -> Self {
        Refusal::Internal(e)
    }
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        Refusal::Internal(e.into())
    }
}

/// A request the service refuses, with the reason the client sees.
pub(crate) fn invalid(message: impl Into<String>) -> InvalidRequest {
    InvalidRequest {
        message: Some(message.into()),
    }
}

/// A failed read of a procedure whose response has no error arm (GetFriends, GetMutualFriends,
/// GetBlockedUsers, GetBlockingStatus, the connectivity stream's snapshot): a dcl-rpc remote
/// error, never an empty or default answer the client would take for the truth.
pub(crate) fn read_failed(e: impl std::fmt::Display) -> RpcError {
    tracing::error!(error = %e, "social service read failed");
    RpcError::new("Internal server error: the social data could not be read; try again")
}

/// A response with an internal-error case.
pub(crate) trait WithInternal {
    fn internal(e: InternalServerError) -> Self;
}

/// A response with an invalid-request case as well.
pub(crate) trait WithInvalid: WithInternal {
    fn invalid(e: InvalidRequest) -> Self;
}

/// What a handler's error answers for a response `R`: one of its cases, or a remote error.
pub(crate) trait Answer<R> {
    fn answer(self) -> Result<R, RpcError>;
}

impl<R: WithInternal> Answer<R> for Internal {
    fn answer(self) -> Result<R, RpcError> {
        Ok(R::internal(self.message()))
    }
}

impl<R: WithInvalid> Answer<R> for Refusal {
    fn answer(self) -> Result<R, RpcError> {
        Ok(match self {
            Refusal::Invalid(e) => R::invalid(e),
            Refusal::Internal(e) => R::internal(e.message()),
        })
    }
}

impl<R> Answer<R> for RpcError {
    fn answer(self) -> Result<R, RpcError> {
        Err(self)
    }
}

/// `WithInternal` (and with `invalid`, `WithInvalid`) for a response whose `oneof` is the
/// field `response` of the module `$m`.
macro_rules! cases {
    ($resp:ident, $m:ident) => {
        impl WithInternal for v2::$resp {
            #[allow(clippy::needless_update)]
            fn internal(e: InternalServerError) -> Self {
                v2::$resp {
                    response: Some(v2::$m::Response::InternalServerError(e)),
                    ..Default::default()
                }
            }
        }
    };
    ($resp:ident, $m:ident, invalid) => {
        cases!($resp, $m);
        impl WithInvalid for v2::$resp {
            #[allow(clippy::needless_update)]
            fn invalid(e: InvalidRequest) -> Self {
                v2::$resp {
                    response: Some(v2::$m::Response::InvalidRequest(e)),
                    ..Default::default()
                }
            }
        }
    };
}

cases!(
    PaginatedFriendshipRequestsResponse,
    paginated_friendship_requests_response
);
cases!(GetSocialSettingsResponse, get_social_settings_response);
cases!(
    UpsertFriendshipResponse,
    upsert_friendship_response,
    invalid
);
cases!(
    GetFriendshipStatusResponse,
    get_friendship_status_response,
    invalid
);
cases!(BlockUserResponse, block_user_response, invalid);
cases!(UnblockUserResponse, unblock_user_response, invalid);
cases!(
    UpsertSocialSettingsResponse,
    upsert_social_settings_response,
    invalid
);
cases!(
    GetPrivateMessagesSettingsResponse,
    get_private_messages_settings_response,
    invalid
);
