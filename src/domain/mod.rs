//! Types parsed at the edge: once a value is one of these, it is valid.

pub mod audience;
pub mod cidr;
pub mod events;
pub mod key_prefix;
pub mod lists;
pub mod merge_patch;
pub mod owner;
pub mod scope;
pub mod sender_key;
pub mod status_list;
pub mod text;
