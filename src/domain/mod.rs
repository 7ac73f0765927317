//! Types parsed at the edge: once a value is one of these, it is valid.

pub mod scope;
