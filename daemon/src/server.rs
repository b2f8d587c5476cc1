//! Wiring: store, cgroups, images, runtime and the API on a Unix socket.
