//! The HTTP input floor: the capped body reader, JSON bodies read so that
//! every bad field is named, and the `Authorization` header. Handlers and
//! extractors turn raw requests into values here; nothing here knows a
//! route.

pub mod authorization;
pub mod body;
pub mod json;
