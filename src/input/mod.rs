//! The HTTP input floor: the capped body reader, JSON bodies read so that
//! every bad field is named. Handlers and
//! extractors turn raw requests into values here; nothing here knows a
//! route.

pub mod body;
pub mod json;
