//! Plumbing shared by both services: JSON errors, body limits, bearer tokens, the clock.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tte::api::ErrorBody;

use crate::store::StoreError;

/// Largest request body either service accepts (bytes); larger ones get 413.
pub const MAX_BODY: usize = 16 * 1024;

/// Longest a request may take, body upload included (a slow client cannot hold a task forever).
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Answers 408 to requests that take longer than [`REQUEST_TIMEOUT`].
pub fn timeout_layer() -> tower_http::timeout::TimeoutLayer {
    tower_http::timeout::TimeoutLayer::with_status_code(
        StatusCode::REQUEST_TIMEOUT,
        REQUEST_TIMEOUT,
    )
}

/// An HTTP error with the body `{"error": code, "detail": detail}`.
#[derive(Debug)]
pub struct ApiError {
    /// Status code.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// Human-readable explanation (never contains secrets).
    pub detail: String,
}

impl ApiError {
    /// Builds an error.
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.code.into(),
            detail: self.detail,
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "storage failure");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "storage_error",
            "the server could not access its storage",
        )
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(_: tokio::task::JoinError) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "request handler failed",
        )
    }
}

/// Turns axum's body rejection (413 when over [`MAX_BODY`]) into our JSON error shape.
pub fn body(b: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    b.map_err(|r| {
        let status = r.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                status,
                "body_too_large",
                format!("request body exceeds {MAX_BODY} bytes"),
            )
        } else {
            ApiError::new(status, "bad_body", r.body_text())
        }
    })
}

/// Parses a JSON body.
pub fn json<T: serde::de::DeserializeOwned>(
    b: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let b = body(b)?;
    serde_json::from_slice(&b)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_json", e.to_string()))
}

/// Checks `Authorization: Bearer <token>` against `expected` in constant time (comparing
/// SHA-256 digests, so the token's length does not leak either).
pub fn require_bearer(headers: &HeaderMap, expected: &str) -> Result<(), ApiError> {
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let ok: bool = Sha256::digest(given.as_bytes())
        .ct_eq(&Sha256::digest(expected.as_bytes()))
        .into();
    if ok && !given.is_empty() {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong bearer token",
        ))
    }
}

/// Parses a DevURN path segment.
pub fn urn(s: &str) -> Result<tte::DevUrn, ApiError> {
    tte::DevUrn::parse(s)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_urn", e.to_string()))
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Seconds since the Unix epoch, fractional.
pub fn now_f64() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// JSON 404 for unknown routes.
pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such resource")
}

/// Serves `app` on `listener` until `shutdown` completes, then shuts down gracefully. Through
/// [`xtt_tls::serve`]: a client has [`xtt_tls::serve::HEADER_READ_TIMEOUT`] to send each
/// request head (the [`timeout_layer`] only starts once the head is read), connections are
/// capped overall and per address, and shutdown waits at most
/// [`xtt_tls::serve::SHUTDOWN_GRACE`] for open connections.
pub async fn serve_until(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> std::io::Result<()> {
    serve_with(
        listener,
        app,
        xtt_tls::serve::ServeLimits::default(),
        shutdown,
    )
    .await
}

/// [`serve_until`] within other `limits` (e.g. a trusted proxy exempt from the per-address
/// connection cap).
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    limits: xtt_tls::serve::ServeLimits,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> std::io::Result<()> {
    xtt_tls::serve::serve(listener, app, limits, shutdown).await
}

/// Binds `addr` and serves `app` (as [`serve_until`]) until the task is aborted; returns the
/// bound address.
pub async fn serve(
    addr: std::net::SocketAddr,
    app: axum::Router,
) -> std::io::Result<(
    std::net::SocketAddr,
    tokio::task::JoinHandle<std::io::Result<()>>,
)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let handle = tokio::spawn(serve_until(listener, app, std::future::pending()));
    Ok((local, handle))
}
