//! Black-box tests: real servers, real HTTP, real databases.

// The one helper layer: `helpers` starts servers and databases, `client`
// speaks HTTP to them as `TestApp` methods. Test modules import only these
// two (and `backend_tests!`), never each other, so any one can be read,
// moved or deleted alone.
mod client;
mod helpers;

mod docs;
mod edges;
mod escalation;
mod events;
mod faults;
mod first_run;
mod hardening;
mod health;
mod janitor;
mod keys;
mod leaks;
mod lifecycle;
mod logs;
mod lookups;
mod merge_patch;
mod oauth_powers;
mod powers_matrix;
mod powers_model;
mod readme;
mod replicas;
mod scan_pattern;
mod search;
mod settings;
mod signing;
mod soak;
mod starve;
mod status_lists;
mod status_verify;
mod tenants;
mod token;
mod verify;
