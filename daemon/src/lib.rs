//! `boxd`: a container daemon for one Linux host.
//!
//! Calls go one way: [`api`] → [`runtime`] → [`store`] / [`cgroups`] / [`image`];
//! [`events`] is the bus every layer publishes on. [`server`] wires them together.
#![forbid(unsafe_code)]

pub mod api;
pub mod cgroups;
pub mod config;
pub mod events;
pub mod image;
pub mod runtime;
pub mod server;
pub mod store;
