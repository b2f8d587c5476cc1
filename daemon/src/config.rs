//! Flags and config file.
