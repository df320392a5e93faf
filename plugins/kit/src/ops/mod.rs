//! Custom candle ops with fast CPU implementations, shared by every plugin. Each has the
//! plain candle composition it replaces as its test oracle, and falls back to that
//! composition on devices it does not implement (CUDA).

pub mod conv;
