//! Integration tests against a real daemon.
//!
//! Every test starts its own `boxd` through [`boxd_tests::TestDaemon`] (own socket, dirs
//! and cgroup parent), so the tests run in parallel and clean up after themselves even
//! when they fail. Tests named `root_...` need root; see `require_root!`.
#![forbid(unsafe_code)]

mod attach;
mod bounded;
mod boxctl;
mod crash;
mod delegation;
mod devices;
mod docker_cli;
mod docker_compose;
mod engine;
mod errors;
mod exec;
mod harness;
mod image_refs;
mod images;
mod images_more;
mod isolation;
mod lifecycle;
mod limits;
mod metrics;
mod network;
mod observe;
mod ops;
mod readme;
mod restart;
mod restart_policy;
mod security;
mod security_disk;
mod shim_protocol;
mod spec;
mod systemd;
mod userns;
mod volumes;
