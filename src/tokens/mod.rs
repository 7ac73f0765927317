//! JWTs: the ring provider, signing keys and the JWKS, what a token holds.

pub mod issue;
pub mod ring_provider;
pub mod signing;
pub mod verify;
