//! `boxd`: a container daemon for one Linux host.
//!
//! Calls go one way: [`api`] → [`runtime`] → [`store`] / [`cgroups`] / [`image`] /
//! [`network`];
//! [`events`] is the bus every layer publishes on. [`server`] wires them together.
#![forbid(unsafe_code)]

pub mod api;
pub mod cgroups;
pub mod compat;
pub mod config;
pub mod events;
pub mod fault;
pub mod image;
pub mod metrics;
pub mod network;
pub mod runtime;
pub mod server;
pub mod store;

/// Formats an error and its whole `source()` chain on one line (`a: b: c`), for logs.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        out.push_str(": ");
        out.push_str(&e.to_string());
        cur = e.source();
    }
    out
}
