//! keymint: a token-exchange authorization server.
#![forbid(unsafe_code)]

pub mod cli;
pub mod config;
pub mod db;
pub mod error;
pub mod routes;
pub mod startup;
pub mod telemetry;
