//! Verifying keymint tokens in a downstream service, offline, against the
//! issuer's JWKS.
//!
//! ```no_run
//! # async fn run() -> Result<(), keymint::validator::VerifyError> {
//! use keymint::validator::Verifier;
//!
//! let verifier = Verifier::builder("https://auth.example.com")
//!     .audience("https://orders.example.com")
//!     .build()?;
//! let claims = verifier.verify("eyJ…").await?;
//! assert!(claims.has_scope("orders:read"));
//! # Ok(()) }
//! ```
//!
//! The key set is cached for as long as its `Cache-Control: max-age` says
//! (bounded to `[min_refresh, max_cache]`). A token naming a key the cache
//! lacks triggers one refetch, but refetches never happen more often than
//! `min_refresh`, so a flood of forged `kid`s cannot turn into a flood of
//! requests to the issuer. When refetches fail, the keys already held keep
//! working for at most `max_stale` (default 1 h) past their freshness, then
//! every token is refused with [`VerifyError::KeysUnavailable`] until a
//! fetch succeeds: whoever can block the fetch cannot keep a withdrawn key
//! trusted for longer than that.
//!
//! The issuer and JWKS URLs must be `https://`, except on loopback hosts
//! (`localhost`, 127.0.0.0/8, `::1`). Redirects are followed at most three
//! times and only to URLs that pass the same rule, never from https to http
//! ([`redirect_policy`]); the URL the key set finally came from is checked
//! again, so a client given through [`VerifierBuilder::client`] cannot
//! downgrade either.
//!
//! Checks: `typ` is `at+jwt`, the algorithm is the one the key was published
//! with (ES256 or EdDSA), the signature, `iss`, `aud`, `exp`/`nbf`/`iat`
//! within the leeway (5 s by default), and `sub` present.
//!
//! For actix-web, [`Token`] and [`Scoped`] are extractors; they find the
//! verifier in `web::Data<Verifier>`.//!
//! This is the library side of keymint, for the services that accept its
//! tokens; it builds on `tokens` (claims, JWK, the core checks) and nothing
//! in `tokens` knows about it.

mod claims;
mod error;
mod extract;
mod policy;
mod verifier;

pub use claims::Claims;
pub use error::VerifyError;
pub use extract::{Rejection, RequiredScopes, Scoped, Token};
pub use policy::{MAX_CACHE_CEILING, redirect_policy};
pub use verifier::{Verifier, VerifierBuilder};

#[cfg(test)]
mod tests;
