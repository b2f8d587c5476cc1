//! Errors of the Docker face: `{"message": ...}` with Docker's status codes.
//!
//! Statuses come from the same mapping as `/v1` ([`ApiError::status`]), so a 404 is a
//! 404 on both faces; the few places where Docker differs (304 for a start or stop that
//! changes nothing) are decided by the handlers.

use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::api::{ApiError, ApiJson, AppState};
use crate::runtime::RuntimeError;

/// An error answer of the Docker face.
#[derive(Debug)]
pub struct DockerError {
    status: StatusCode,
    message: String,
}

#[derive(Serialize)]
struct Body<'a> {
    message: &'a str,
}

impl DockerError {
    /// An answer with this status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        DockerError {
            status,
            message: message.into(),
        }
    }

    /// A 400 naming what to fix.
    pub fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl From<ApiError> for DockerError {
    fn from(e: ApiError) -> Self {
        let status = e.status();
        // `body` logs a server error with its whole chain, as `/v1` does.
        let message = e.body().message;
        DockerError { status, message }
    }
}

impl From<RuntimeError> for DockerError {
    fn from(e: RuntimeError) -> Self {
        ApiError::from(e).into()
    }
}

impl From<crate::network::NetworkError> for DockerError {
    fn from(e: crate::network::NetworkError) -> Self {
        RuntimeError::from(e).into()
    }
}

impl IntoResponse for DockerError {
    fn into_response(self) -> Response {
        if self.status.is_client_error() {
            tracing::debug!(status = %self.status, message = %self.message, "docker request refused");
        }
        (
            self.status,
            Json(Body {
                message: &self.message,
            }),
        )
            .into_response()
    }
}

/// A JSON body read as `/v1` reads one (size limit, any content type), with Docker's
/// errors. An empty body is `T::default()` (docker-py sends none for some calls).
pub struct DockerJson<T>(pub T);

impl<T> FromRequest<AppState> for DockerJson<T>
where
    T: DeserializeOwned + Default,
{
    type Rejection = DockerError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        if crate::api::declared_length(req.headers()) == Some(0) {
            return Ok(DockerJson(T::default()));
        }
        match ApiJson::<serde_json::Value>::from_request(req, state).await {
            Ok(ApiJson(serde_json::Value::Null)) => Ok(DockerJson(T::default())),
            Ok(ApiJson(v)) => serde_json::from_value(v)
                .map(DockerJson)
                .map_err(|e| DockerError::bad(format!("invalid JSON body: {e}"))),
            Err(ApiError::InvalidJson(m))
                if m.contains("EOF while parsing a value at line 1 column 0") =>
            {
                Ok(DockerJson(T::default()))
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// A query string with Docker's errors.
pub struct DockerQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for DockerQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = DockerError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| DockerQuery(q.0))
            .map_err(|r: QueryRejection| {
                DockerError::bad(format!("invalid query: {}", r.body_text()))
            })
    }
}

/// Docker's query booleans (`httputils.BoolValue`): empty, `0`, `no`, `false` and
/// `none` are false, anything else is true.
pub fn bool_value(v: Option<&str>) -> bool {
    match v {
        None => false,
        Some(v) => !matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "" | "0" | "no" | "false" | "none"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_booleans() {
        for t in ["1", "true", "True", "yes", "anything"] {
            assert!(bool_value(Some(t)), "{t}");
        }
        for f in ["", "0", "no", "false", "FALSE", "none"] {
            assert!(!bool_value(Some(f)), "{f}");
        }
        assert!(!bool_value(None));
    }
}
