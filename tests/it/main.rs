//! Integration tests against a real daemon.
