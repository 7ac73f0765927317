//! JWTs: the ring provider, signing keys and the JWKS, what a token holds.

pub mod crypto;
pub mod issue;
pub mod signing;
pub mod verify;
