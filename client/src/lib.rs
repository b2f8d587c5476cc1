//! `boxd-client`: a typed async client for the boxd REST API.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod models;

/// The daemon's default API socket.
pub const DEFAULT_SOCKET: &str = "/run/boxd.sock";
