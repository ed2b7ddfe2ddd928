//! Where connection credentials come from. Tokens expire (5 minutes from the gatekeeper), so
//! every (re)connect asks the source again.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// A LiveKit URL (ws:// or wss://) and an access token.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub url: String,
    pub token: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// The error a token source gives: the source's own typed error, shared so that it can be
/// cloned into [`ConnectError`](crate::ConnectError)s (reach it with [`TokenSourceError::get`]).
#[derive(Clone)]
pub struct TokenSourceError(Arc<dyn std::error::Error + Send + Sync + 'static>);

impl TokenSourceError {
    pub fn new(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        TokenSourceError(Arc::new(error))
    }

    /// The source's error.
    pub fn get(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.0
    }

    /// The source's error as `E`, when it is one.
    pub fn downcast_ref<E: std::error::Error + 'static>(&self) -> Option<&E> {
        self.0.downcast_ref()
    }
}

impl std::fmt::Debug for TokenSourceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.0, f)
    }
}

impl std::fmt::Display for TokenSourceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&*self.0, f)
    }
}

impl std::error::Error for TokenSourceError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl PartialEq for TokenSourceError {
    /// The same error, or errors that read the same.
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.to_string() == other.0.to_string()
    }
}

impl Eq for TokenSourceError {}

/// A future returned by a token source.
pub type TokenFuture = Pin<Box<dyn Future<Output = Result<Credentials, TokenSourceError>> + Send>>;

/// Supplies fresh credentials for each connection attempt.
pub trait TokenSource: Send + Sync + 'static {
    fn credentials(&self) -> TokenFuture;
}

/// Always the same credentials (tests, or tokens minted with the API key).
#[derive(Debug, Clone)]
pub struct StaticToken(pub Credentials);

impl TokenSource for StaticToken {
    fn credentials(&self) -> TokenFuture {
        let c = self.0.clone();
        Box::pin(async move { Ok(c) })
    }
}

/// Any async closure.
pub struct FnTokenSource<F>(pub F);

impl<F, Fut> TokenSource for FnTokenSource<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Credentials, TokenSourceError>> + Send + 'static,
{
    fn credentials(&self) -> TokenFuture {
        Box::pin((self.0)())
    }
}

impl<T: TokenSource + ?Sized> TokenSource for Arc<T> {
    fn credentials(&self) -> TokenFuture {
        (**self).credentials()
    }
}
