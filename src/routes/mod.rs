//! HTTP handlers, one file per resource. Handlers extract, call one service
//! function and serialize; the route table itself lives in `startup.rs`.

pub mod audit;
pub mod console;
pub mod docs;
pub mod event_streams;
pub mod fallback;
pub mod health;
pub mod keys;
pub mod leaks;
pub mod oauth;
pub mod settings;
pub mod signing_keys;
pub mod status_lists;
pub mod tenants;
pub mod token;
pub mod wake;
pub mod wellknown;
