//! Keys that protect keys.

pub mod check;
pub mod master;
pub mod rotate;
