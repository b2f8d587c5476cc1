//! `ApiError`: the one place where failures become HTTP statuses and error bodies.
//!
//! Handlers return `Result<_, ApiError>` and use `?`. 4xx answers say what to fix; 5xx
//! answers are generic (the whole error chain goes to the daemon log instead), except a
//! failed container start, whose reason belongs to the user's own container.

use axum::extract::rejection::QueryRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use boxd_types::ErrorBody;

use crate::image::ImageError;
use crate::runtime::shim::ShimError;
use crate::runtime::RuntimeError;

/// Every error an API handler can return.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// From the runtime.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The body is not the JSON the route takes.
    #[error("invalid JSON body: {0}")]
    InvalidJson(String),
    /// A query parameter is invalid.
    #[error("{0}")]
    BadRequest(String),
    /// The body is larger than the route accepts.
    #[error("{what} is larger than the limit of {limit} bytes; raise it with --{flag} (config key {})", flag.replace('-', "_"))]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// The limit in bytes.
        limit: u64,
        /// The daemon flag that sets the limit (the config key is the same with `_`).
        flag: &'static str,
    },
    /// The path exists, the method does not.
    #[error("{method} is not allowed on {path}; see api-spec/openapi.yaml for its methods")]
    MethodNotAllowed {
        /// The method asked.
        method: String,
        /// The path asked.
        path: String,
    },
    /// No route matches.
    #[error("no route for {method} {path}; see api-spec/openapi.yaml")]
    NoRoute {
        /// The method asked.
        method: String,
        /// The path asked.
        path: String,
    },
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::BadRequest(format!("invalid query: {}", r.body_text()))
    }
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        use RuntimeError as R;
        match self {
            ApiError::InvalidJson(_) | ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NoRoute { .. } => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Runtime(e) => match e {
                R::NotFound { .. } => StatusCode::NOT_FOUND,
                R::Store(crate::store::StoreError::NoUsernsSlot(_)) => StatusCode::CONFLICT,
                R::Network(n) => {
                    use crate::network::NetworkError as N;
                    match n {
                        N::Invalid { .. } | N::Overlap { .. } => StatusCode::BAD_REQUEST,
                        N::NotFound(_) => StatusCode::NOT_FOUND,
                        N::NameInUse(_)
                        | N::InUse { .. }
                        | N::PoolExhausted(_)
                        | N::PortInUse(_)
                        | N::AddressInUse(_)
                        | N::AlreadyConnected { .. }
                        | N::NotConnected { .. }
                        | N::PeerNotRunning(_) => StatusCode::CONFLICT,
                        N::Predefined(_) => StatusCode::FORBIDDEN,
                        N::Cni(_) | N::Io { .. } | N::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
                    }
                }
                R::Image(i) if i.is_too_large() => StatusCode::PAYLOAD_TOO_LARGE,
                R::Fs(f) => {
                    use crate::runtime::container_fs::FsError as F;
                    match f.as_ref() {
                        F::NotFound { .. } => StatusCode::NOT_FOUND,
                        F::NotADirectory { .. } | F::SymlinkLoop { .. } => StatusCode::BAD_REQUEST,
                        F::Unsupported(_) => StatusCode::CONFLICT,
                        F::Unpack(i) if i.is_bad_input() => StatusCode::BAD_REQUEST,
                        F::OpenRoot { .. } | F::Io { .. } | F::Unpack(_) => {
                            StatusCode::INTERNAL_SERVER_ERROR
                        }
                    }
                }
                R::Ambiguous { .. } | R::Invalid { .. } | R::NoCommand | R::StartRefused { .. } => {
                    StatusCode::BAD_REQUEST
                }
                R::ExecRefused { .. } | R::ExecMode(_) => StatusCode::BAD_REQUEST,
                R::User(u) if u.is_bad_input() => StatusCode::BAD_REQUEST,
                R::Image(i) if i.is_bad_input() => StatusCode::BAD_REQUEST,
                R::Image(i) if i.is_not_found() => StatusCode::NOT_FOUND,
                R::Image(i) if i.is_upstream() => StatusCode::BAD_GATEWAY,
                R::NameInUse(_)
                | R::AlreadyRunning(_)
                | R::NotRunning(_)
                | R::AlreadyPaused(_)
                | R::NotPaused(_)
                | R::ContainerPaused(_)
                | R::LimitBelowUsage { .. }
                | R::ContainerRunning(_)
                | R::ImageInUse { .. }
                | R::VolumeInUse { .. }
                | R::VolumeExists { .. }
                | R::StdinInUse(_) => StatusCode::CONFLICT,
                // The daemon is a gateway to the shim, and the shim did not answer.
                R::ShimUnresponsive { .. }
                | R::Shim(ShimError::Timeout { .. })
                | R::StopTimedOut(_) => StatusCode::GATEWAY_TIMEOUT,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
        }
    }

    /// The stable `code` of the body.
    pub fn code(&self) -> &'static str {
        use RuntimeError as R;
        match self {
            ApiError::InvalidJson(_) => "invalid_json",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::TooLarge { .. } => "payload_too_large",
            ApiError::NoRoute { .. } => "no_route",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::Runtime(e) => match e {
                R::NotFound { .. } => "not_found",
                R::Store(crate::store::StoreError::NoUsernsSlot(_)) => "userns_exhausted",
                R::Network(n) => {
                    use crate::network::NetworkError as N;
                    match n {
                        N::Invalid { .. } => "bad_request",
                        N::Overlap { .. } => "subnet_overlap",
                        N::NotFound(_) => "not_found",
                        N::NameInUse(_) => "name_in_use",
                        N::InUse { .. } => "network_in_use",
                        N::PoolExhausted(_) => "pool_exhausted",
                        N::PortInUse(_) => "port_in_use",
                        N::AddressInUse(_) => "address_in_use",
                        N::AlreadyConnected { .. } => "already_connected",
                        N::NotConnected { .. } => "not_connected",
                        N::PeerNotRunning(_) => "not_running",
                        N::Predefined(_) => "predefined_network",
                        N::Cni(_) => "network_failed",
                        N::Io { .. } | N::Store(_) => "internal",
                    }
                }
                R::Ambiguous { .. } => "ambiguous_reference",
                R::Invalid { .. } => "bad_request",
                R::NoCommand => "no_command",
                R::StartRefused { .. } | R::StartFailed { .. } => "start_failed",
                R::ExecRefused { .. } | R::ExecFailed { .. } => "exec_failed",
                R::ExecMode(_) => "bad_request",
                R::User(u) if u.is_bad_input() => "bad_user",
                R::Image(ImageError::UnsafeEntry { .. }) => "unsafe_image",
                R::Fs(f) => {
                    use crate::runtime::container_fs::FsError as F;
                    match f.as_ref() {
                        F::NotFound { .. } => "not_found",
                        F::NotADirectory { .. } | F::SymlinkLoop { .. } => "bad_request",
                        F::Unsupported(_) => "unsupported",
                        F::Unpack(i) if i.is_bad_input() => "invalid_archive",
                        F::OpenRoot { .. } | F::Io { .. } | F::Unpack(_) => "internal",
                    }
                }
                R::Image(ImageError::Reference(_)) => "invalid_reference",
                R::Image(i) if i.is_too_large() => "payload_too_large",
                R::Image(i) if i.is_unauthorized() => "registry_unauthorized",
                R::Image(i) if i.is_bad_input() => "invalid_image",
                R::Image(i) if i.is_not_found() => "not_found",
                R::Image(i) if i.is_upstream() => "registry_error",
                R::NameInUse(_) => "name_in_use",
                R::AlreadyRunning(_) => "already_running",
                R::NotRunning(_) => "not_running",
                R::AlreadyPaused(_) => "already_paused",
                R::NotPaused(_) => "not_paused",
                R::ContainerPaused(_) => "container_paused",
                R::LimitBelowUsage { .. } => "limit_below_usage",
                R::ContainerRunning(_) => "container_running",
                R::ImageInUse { .. } => "image_in_use",
                R::VolumeInUse { .. } => "volume_in_use",
                R::VolumeExists { .. } => "name_in_use",
                R::StdinInUse(_) => "stdin_in_use",
                R::ShimUnresponsive { .. } => "shim_unresponsive",
                R::Shim(ShimError::Timeout { .. }) => "shim_unresponsive",
                R::StopTimedOut(_) => "shim_unresponsive",
                _ => "internal",
            },
        }
    }

    fn message(&self) -> String {
        if self.status().is_server_error() {
            return match self {
                ApiError::Runtime(e @ RuntimeError::StartFailed { .. }) => e.to_string(),
                // What a registry did wrong names only the registry and digests.
                ApiError::Runtime(RuntimeError::Image(i)) if i.is_upstream() => {
                    crate::error_chain(self)
                }
                ApiError::Runtime(e @ RuntimeError::ExecFailed { .. }) => e.to_string(),
                // What a CNI plugin said: the operator's network setup, nothing secret.
                ApiError::Runtime(RuntimeError::Network(crate::network::NetworkError::Cni(_))) => {
                    crate::error_chain(self)
                }
                // Names the container and what to do; holds nothing secret.
                ApiError::Runtime(
                    RuntimeError::ShimUnresponsive { .. }
                    | RuntimeError::Shim(ShimError::Timeout { .. })
                    | RuntimeError::StopTimedOut(_),
                ) => crate::error_chain(self),
                _ => "internal error; the daemon log has the details".to_owned(),
            };
        }
        // For bad input the whole chain is the useful message (e.g. which tar entry).
        crate::error_chain(self)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %crate::error_chain(&self), "request failed");
        } else {
            tracing::debug!(error = %crate::error_chain(&self), %status, "request refused");
        }
        let body = ErrorBody {
            code: self.code().to_owned(),
            message: self.message(),
        };
        (status, Json(body)).into_response()
    }
}

impl ApiError {
    /// The error body, logged as `into_response` does (for errors inside a stream,
    /// after the status has been sent).
    pub fn body(&self) -> ErrorBody {
        if self.status().is_server_error() {
            tracing::error!(error = %crate::error_chain(self), "request failed");
        }
        ErrorBody {
            code: self.code().to_owned(),
            message: self.message(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn an_unresponsive_shim_is_504_naming_the_container_and_the_way_out() {
        let timeout = ShimError::Timeout {
            op: "kill",
            after: Duration::from_secs(2),
        };
        let e = ApiError::Runtime(RuntimeError::ShimUnresponsive {
            container: "web".into(),
            source: timeout,
        });
        assert_eq!(e.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(e.code(), "shim_unresponsive");
        let body = e.body();
        assert!(
            body.message.contains("web")
                && body.message.contains("force=true")
                && body.message.contains("kill within 2s"),
            "{}",
            body.message
        );
        // From a path that does not know the container, still not a bare 500.
        let e = ApiError::Runtime(RuntimeError::Shim(ShimError::Timeout {
            op: "attach",
            after: Duration::from_secs(5),
        }));
        assert_eq!(
            (e.status(), e.code()),
            (StatusCode::GATEWAY_TIMEOUT, "shim_unresponsive")
        );
    }
}
