//! cgroups (being built).
