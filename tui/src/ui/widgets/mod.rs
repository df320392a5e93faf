//! Widgets the views share.

pub mod halfblock;
