//! Keys that protect keys.

pub mod master;
