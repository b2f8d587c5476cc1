//! The error type of [`Client`](crate::Client): one variant per way a call can fail.
//!
//! The daemon's own refusals arrive as [`Error::Api`] with the HTTP status and the stable
//! `code` of its `ErrorBody`, so callers can match on `code` (`not_found`,
//! `already_running`, `image_in_use`, ...) instead of parsing sentences. Everything else is
//! a transport or decoding failure on this side.

use std::path::PathBuf;

/// Anything that can go wrong talking to the daemon.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The daemon answered with an error status and an `ErrorBody`.
    #[error("{message} ({status} {code})")]
    Api {
        /// HTTP status code (400, 404, 409, 413, 500, ...).
        status: u16,
        /// Stable `snake_case` code from the body (`not_found`, `container_running`, ...);
        /// `unknown` when the body was not an `ErrorBody`.
        code: String,
        /// The daemon's sentence for a person.
        message: String,
    },
    /// The socket could not be connected to: no daemon, a stale socket, or no permission.
    #[error("cannot connect to the boxd daemon at {}: {}", path.display(), connect_hint(source))]
    Connect {
        /// The socket path that was tried.
        path: PathBuf,
        /// Why the connect failed.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP exchange failed (handshake, sending, or reading the answer).
    #[error("http exchange with the daemon failed")]
    Http(#[source] hyper::Error),
    /// A request could not be built (an id or query value the URI cannot carry).
    #[error("failed to build the request")]
    BuildRequest(#[source] hyper::http::Error),
    /// A request body could not be serialised.
    #[error("failed to encode the request body")]
    Encode(#[source] serde_json::Error),
    /// The daemon's answer (or one line of a stream) was not the JSON expected.
    #[error("failed to decode the daemon's answer")]
    Decode(#[source] serde_json::Error),
    /// One line of an NDJSON stream grew past the limit without a newline.
    #[error("stream line longer than {limit} bytes")]
    LineTooLong {
        /// The limit in bytes.
        limit: usize,
    },
    /// A file to upload could not be opened or inspected.
    #[error("failed to open {}", path.display())]
    OpenFile {
        /// The file.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// Local I/O failed.
    #[error("i/o failed")]
    Io(#[source] std::io::Error),
}

impl Error {
    /// The HTTP status of an [`Error::Api`], `None` for every other variant.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The daemon's error code of an [`Error::Api`], `None` for every other variant.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Whether the daemon said the thing asked for does not exist (404).
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }
}

/// What to do about a failed connect, by its cause.
fn connect_hint(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::PermissionDenied => {
            "permission denied: the socket is for root and the `boxd` group \
             (`usermod -aG boxd $USER`, then log in again)"
        }
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
            "is it running? (`systemctl start boxd`, or start `boxd` as root)"
        }
        _ => "is it running?",
    }
}
