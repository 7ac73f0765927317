//! keymint: a token-exchange authorization server.
#![forbid(unsafe_code)]

pub mod app;
pub mod audit;
pub mod auth;
pub mod bootstrap;
pub mod cli;
pub mod client_ip;
pub mod config;
pub mod crypto;
pub mod db;
pub mod domain;
pub mod error;
pub mod events;
pub mod grants;
pub mod input;
pub mod janitor;
pub mod keys;
pub mod leaks;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod pagination;
pub mod pending;
pub mod powers;
pub mod routes;
pub mod signing_keys;
pub mod startup;
pub mod status_lists;
pub mod telemetry;
pub mod tenants;
pub mod tokens;
pub mod usage;
pub mod validator;

/// The downstream validator's old name, kept so code written against
/// `keymint::verify` still builds; new code uses [`validator`].
#[doc(hidden)]
pub use validator as verify;
