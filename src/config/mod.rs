//! Typed settings, layered as `config/default.toml` (embedded) ← `--config FILE`
//! ← `KEYMINT__SECTION__FIELD` environment ← command-line flags.
//!
//! Everything read here is checked once, before anything starts; an error names
//! the configuration path (`signing.prepublish_s`) so the operator knows what to
//! fix. Derived values (the issuer, the admin audience, the database backend)
//! are resolved here so the rest of the code never second-guesses them.//!
//! `settings` holds the types, `load` the layering and the checks.

mod load;
mod settings;

pub use load::is_loopback_host;
pub use settings::*;

#[cfg(test)]
mod tests;
