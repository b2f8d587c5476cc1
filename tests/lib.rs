//! Test harness: a real boxd on a temporary socket, state dir and database.
