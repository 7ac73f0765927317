//! Black-box tests: real servers, real HTTP, real databases.

mod helpers;

mod docs;
mod edges;
mod escalation;
mod faults;
mod hardening;
mod health;
mod janitor;
mod keys;
mod lifecycle;
mod logs;
mod oauth_powers;
mod readme;
mod settings;
mod soak;
mod tenants;
mod token;
mod verify;
