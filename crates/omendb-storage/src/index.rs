//! Indexes over the sorted keys of immutable segments: the learned
//! primary-key index and the encodings that turn key values into its `u64`
//! key space.

pub mod key_encoding;
pub(crate) mod learned;
