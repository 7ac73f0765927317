//! Black-box tests: real servers, real HTTP, real databases.

mod helpers;

mod docs;
mod edges;
mod faults;
mod hardening;
mod health;
mod janitor;
mod keys;
mod lifecycle;
mod logs;
mod readme;
mod settings;
mod tenants;
mod token;
mod verify;
