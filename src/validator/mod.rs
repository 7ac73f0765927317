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
//! # Status lists
//!
//! A token that carries `"status": {"status_list": {"idx": …, "uri": …}}`
//! (draft-ietf-oauth-status-list-20) is also checked against that entry of
//! the issuer's Token Status List, once the token itself passed every check
//! above (an invalid token never causes a fetch):
//!
//! - The `uri` must be on the issuer's origin (scheme, host and port; no
//!   credentials), else the token is refused without any request: a token
//!   must not be able to send the verifier anywhere. Fetches follow the
//!   https rule and redirect policy of the key set, and the response is
//!   bounded (1 MiB), as is the decompressed list
//!   ([`VerifierBuilder::max_status_list_bytes`], default 4 MiB).
//! - The list token must be signed by a key of the same cached key set
//!   (an unknown `kid` triggers the same bounded refetch), with `typ`
//!   exactly `statuslist+jwt`, `sub` exactly the `uri`, `iat` present and
//!   not ahead, `exp` (if present) not passed, `bits` 1, 2, 4 or 8.
//! - Then the entry decides: VALID (0) passes, INVALID (1) is
//!   [`VerifyError::Revoked`], SUSPENDED (2) [`VerifyError::Suspended`],
//!   any other value [`VerifyError::UnknownStatus`]; an `idx` past the end
//!   of the list is [`VerifyError::StatusIndexOutOfRange`].
//! - A malformed `status` claim, or one without `status_list`, is
//!   [`VerifyError::BadStatus`]. A token without `status` passes (tokens
//!   issued before status lists have none) unless
//!   [`VerifierBuilder::require_status`] is set.
//!
//! Each list is cached under its URI for its `ttl` from the fetch (clamped
//! to `[min_refresh_status, max_cache]`, default floor 1 s); only one fetch
//! of a list runs at a time, and concurrent verifications wait for it.
//! Refetches send `If-None-Match`, and a 304 keeps the list fresh for
//! another `ttl`. When a refetch fails, or brings a list that fails the
//! checks, the cached list keeps serving for at most
//! [`VerifierBuilder::status_max_stale`] past its freshness (default 5 ×
//! its `ttl`), never past its `exp`; after that, and whenever there is no
//! cached list, tokens on it are refused with
//! [`VerifyError::StatusUnavailable`] (or, with no cached list, the reason
//! the list was refused, [`VerifyError::StatusList`]). A failing list is
//! retried at most once per `min_refresh_status`.
//!
//! For actix-web, [`Token`] and [`Scoped`] are extractors; they find the
//! verifier in `web::Data<Verifier>`. They answer 401 `invalid_token` when
//! the token is refused (bad, expired, revoked, suspended, a bad status
//! claim) and 503 when the key set or status list is unavailable or cannot
//! be trusted ([`VerifyError::is_token_refused`]).
//!
//! This is the library side of keymint, for the services that accept its
//! tokens; it builds on `tokens` (claims, JWK, the core checks) and nothing
//! in `tokens` knows about it.

mod claims;
mod error;
mod extract;
mod policy;
mod status;
mod verifier;

pub use claims::Claims;
pub use error::{StatusListProblem, VerifyError};
pub use extract::{Rejection, RequiredScopes, Scoped, Token};
pub use policy::{MAX_CACHE_CEILING, redirect_policy};
pub use verifier::{Verifier, VerifierBuilder};

#[cfg(test)]
mod tests;
