//! Keys that protect keys.

pub mod master;
pub mod rotate;
