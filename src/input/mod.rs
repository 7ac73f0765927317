//! The HTTP input floor: the capped body reader, JSON bodies read so that
//! every bad field is named, the token endpoints' strict forms and the
//! credentials each grant presents. Handlers and extractors turn raw
//! requests into values here; nothing here knows a route.

pub mod api_key;
pub mod body;
pub mod client_credentials;
pub mod form;
pub mod json;
pub mod signed;
pub mod token_exchange;
