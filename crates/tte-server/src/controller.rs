//! The Controller: takes devices from introducers, sensor updates from devices, and shows both to
//! its operator.
//!
//! | Method | Path | Who | Result |
//! |---|---|---|---|
//! | GET | `/.well-known/tte1/alive` | setup page (CORS `*`) | 200 |
//! | PUT | `/.well-known/tte1/c/{DevURN}/k` | setup page (CORS) | 201 new, 200 same, 409 other secret, 503 full, 429 rate |
//! | PUT | `/.well-known/tte1/s/{DevURN}/v` | device: JWE(DevSecret){SenML} | 204, 400 malformed JWE, 403 not authenticated (or unknown device), 409 replay, 429 rate |
//! | GET | `/devices`, `/devices/{DevURN}/readings` | operator (bearer token) | JSON |
//! | DELETE | `/devices/{DevURN}` | operator (bearer token) | 204, 404 unknown |
//!
//! Who may add a device? The draft leaves the Controller open to the introducer's browser, so the
//! add endpoint carries no credential; it is first-writer-wins (a second add with a different
//! DevSecret is refused, an identical retry succeeds). A squatter who guesses a DevURN can block
//! it but never read or forge its data, since the real device encrypts under the real DevSecret;
//! the operator sees such entries and removes them (`DELETE /devices/{DevURN}`), after which the
//! real introducer's add succeeds. Deployments that want more set
//! `allowed_origins` to their Transfer Agents' origins (browsers then refuse other pages' adds).
//!
//! The update endpoint does not tell an enrolled DevURN from an unknown one: until an update
//! decrypts under the device's DevSecret, every answer (400 for a malformed JWE, 403 for one
//! that does not authenticate) is the same for both.
//!
//! Since anyone may add devices and then post updates under the DevSecret they chose, what that
//! can cost is bounded:
//! - storage, by the store's [`ControllerLimits`](crate::store::ControllerLimits): at most so
//!   many devices (a new one beyond them gets 503 `too_many_devices` until the operator removes
//!   some), and so many readings per device (the oldest are deleted as new ones arrive);
//! - request rates, by per-client token buckets ([`ControllerRates`]) on adds and on updates:
//!   beyond them 429 `rate_limited` with `Retry-After`. The client is the TCP peer (behind a
//!   trusted reverse proxy, the address it forwards), which the router learns only when served
//!   with `ConnectInfo<SocketAddr>` (as [`crate::http::serve_until`] does; or
//!   `into_make_service_with_connect_info::<SocketAddr>()`); served without, requests are not
//!   rate limited (a warning says so once) and only the storage bounds apply.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, put};
use axum::{Json, Router};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tte::api::AddDevice;
use tte::senml::Pack;
use tte::{jwe, Key256};
use xtt_ratelimit::{RateLimiter, RateLimits};

use crate::http::{self, ApiError};
use crate::store::{Added, ControllerStore, Recorded};

/// Per-client request rates of the endpoints anyone may call (a client is an IPv4 address or
/// an IPv6 /64; see [`xtt_ratelimit`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ControllerRates {
    /// Device adds. The default burst takes a whole box ([`tte::bulk::MAX_BOX_COUNT`] devices,
    /// added one request each by `bulk bind`) at once, then one device a second.
    pub adds: RateLimits,
    /// Sensor updates. Many devices may share one address (a NAT): 20 a second, 200 at once.
    pub updates: RateLimits,
}

impl Default for ControllerRates {
    fn default() -> Self {
        Self {
            adds: RateLimits::per_client(1.0, f64::from(tte::bulk::MAX_BOX_COUNT)),
            updates: RateLimits::per_client(20.0, 200.0),
        }
    }
}

/// Everything the Controller needs.
#[derive(Clone)]
pub struct Controller {
    store: Arc<dyn ControllerStore>,
    operator_token: Arc<str>,
    allowed_origins: Option<Vec<HeaderValue>>,
    rates: ControllerRates,
    trusted_proxies: Arc<[IpAddr]>,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Controller { .. }")
    }
}

impl Controller {
    /// A Controller over `store`; `/devices` requires `operator_token`.
    pub fn new(store: Arc<dyn ControllerStore>, operator_token: &str) -> Self {
        Self {
            store,
            operator_token: operator_token.into(),
            allowed_origins: None,
            rates: ControllerRates::default(),
            trusted_proxies: Arc::new([]),
        }
    }

    /// Reverse proxies (e.g. a TLS terminator) whose `X-Forwarded-For` names the client that
    /// adds and updates are charged to (default: none; every client is its TCP peer).
    pub fn with_trusted_proxies(mut self, proxies: Vec<IpAddr>) -> Self {
        self.trusted_proxies = proxies.into();
        self
    }

    /// Sets the per-client rates of adds and updates (default: [`ControllerRates::default`]).
    pub fn with_rates(mut self, rates: ControllerRates) -> Self {
        self.rates = rates;
        self
    }

    /// Restricts which page origins may add devices (default: any).
    pub fn with_allowed_origins(mut self, origins: Vec<HeaderValue>) -> Self {
        self.allowed_origins = Some(origins);
        self
    }

    /// The HTTP routes.
    pub fn router(self) -> Router {
        // A list naming "*" allows any origin, as no list does (tower-http refuses "*" in a list).
        let origin = match &self.allowed_origins {
            Some(list) if !list.iter().any(|o| o == "*") => AllowOrigin::list(list.clone()),
            _ => AllowOrigin::any(),
        };
        let add_cors = CorsLayer::new()
            .allow_origin(origin)
            .allow_methods([Method::PUT])
            .allow_headers([header::CONTENT_TYPE])
            .max_age(std::time::Duration::from_secs(600));
        let alive_cors = CorsLayer::new()
            .allow_origin(AllowOrigin::any())
            .allow_methods([Method::GET]);
        // Inside the CORS layer: preflights are not charged, and a 429 still carries the CORS
        // headers (so the setup page can show it).
        let proxies = self.trusted_proxies.clone();
        let limit = |limits: RateLimits| {
            let state = (Arc::new(RateLimiter::new(limits)), proxies.clone());
            axum::middleware::from_fn_with_state(state, rate_limit)
        };
        let add_route = put(add)
            .layer::<_, Infallible>(limit(self.rates.adds))
            .layer(add_cors);
        let update_route = put(sensor_update).layer::<_, Infallible>(limit(self.rates.updates));
        Router::new()
            .route("/.well-known/tte1/alive", get(alive).layer(alive_cors))
            .route("/.well-known/tte1/c/{urn}/k", add_route)
            .route("/.well-known/tte1/s/{urn}/v", update_route)
            .route("/devices", get(devices))
            .route("/devices/{urn}", delete(remove_device))
            .route("/devices/{urn}/readings", get(readings))
            .fallback(http::not_found)
            .layer(DefaultBodyLimit::max(http::MAX_BODY))
            .layer(http::timeout_layer())
            .with_state(self)
    }
}

/// Set once a request arrived without a peer address (the router served without
/// `ConnectInfo`), so the warning is logged once.
static UNLIMITED_WARNED: AtomicBool = AtomicBool::new(false);

/// Charges the request to its client's bucket; 429 with `Retry-After` when it is empty.
async fn rate_limit(
    State((limiter, proxies)): State<(Arc<RateLimiter>, Arc<[IpAddr]>)>,
    request: Request,
    next: Next,
) -> Response {
    let Some(ConnectInfo(peer)) = request.extensions().get::<ConnectInfo<SocketAddr>>() else {
        if !UNLIMITED_WARNED.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "the Controller is served without peer addresses (ConnectInfo): adds and \
                 updates are not rate limited"
            );
        }
        return next.run(request).await;
    };
    let forwarded = request
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok());
    let client = xtt_ratelimit::forwarded_client(peer.ip(), forwarded, &proxies);
    match limiter.check(client) {
        Ok(()) => next.run(request).await,
        Err(wait) => {
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let mut r = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many requests from this address; retry in {secs} s"),
            )
            .into_response();
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
            r
        }
    }
}

async fn alive() -> Response {
    (
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Json(serde_json::json!({"alive": true, "protocol": "tte1"})),
    )
        .into_response()
}

async fn add(
    State(c): State<Controller>,
    Path(urn): Path<String>,
    b: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let urn = http::urn(&urn)?;
    let mut req: AddDevice = http::json(b)?;
    let key = Key256::from_b64(&req.dev_secret)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_dev_secret", e.to_string()))?;
    let label = req.label.take().filter(|l| !l.trim().is_empty());
    if label.as_ref().is_some_and(|l| {
        l.chars().count() > tte::api::MAX_LABEL_LEN || l.chars().any(char::is_control)
    }) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_label",
            format!(
                "label must be at most {} printable characters",
                tte::api::MAX_LABEL_LEN
            ),
        ));
    }
    let store = c.store.clone();
    let u = urn.clone();
    let added = tokio::task::spawn_blocking(move || {
        store.add_device(&u, &key, label.as_deref(), http::now_secs())
    })
    .await??;
    match added {
        Added::New => Ok(StatusCode::CREATED.into_response()),
        Added::Same => Ok(StatusCode::OK.into_response()),
        Added::Conflict => Err(ApiError::new(
            StatusCode::CONFLICT,
            "device_exists",
            format!("device {urn} is already enrolled here with another secret"),
        )),
        Added::Full => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_devices",
            "this Controller holds as many devices as it may; its operator must remove some first",
        )),
    }
}

async fn sensor_update(
    State(c): State<Controller>,
    Path(urn): Path<String>,
    b: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let urn = http::urn(&urn)?;
    let body = http::body(b)?;
    // Until the update decrypts, nothing in the answer may depend on whether the DevURN is
    // enrolled: otherwise anyone could list enrolled DevURNs. So the JWE's form is checked
    // before the device is looked up (the same 400 for every DevURN), and an unknown device
    // is refused exactly as a JWE that does not authenticate (403), after the same work.
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "bad_jwe", "body is not UTF-8 text"))?;
    jwe::peek_header(text)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_jwe", e.to_string()))?;
    let store = c.store.clone();
    let u = urn.clone();
    let key = tokio::task::spawn_blocking(move || store.device_key(&u)).await??;
    let known = key.is_some();
    let key = key.unwrap_or_else(|| Key256::from_bytes([0; 32]));
    let rejected = || {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "jwe_rejected",
            format!(
                "the update does not authenticate for device {urn}: it is not enrolled here, or \
                 the JWE was not made for it under its DevSecret"
            ),
        )
    };
    let d = match jwe::decrypt(&key, &urn, text) {
        Ok(d) if known => d,
        _ => return Err(rejected()),
    };
    let seq = d.header.seq.ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "missing_seq",
            "sensor updates need a `seq` counter in the protected header",
        )
    })?;
    let pack = Pack::from_json(&d.plaintext)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_senml", e.to_string()))?;
    let readings = pack
        .resolve(http::now_f64())
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_senml", e.to_string()))?;
    let store = c.store.clone();
    let u = urn.clone();
    match tokio::task::spawn_blocking(move || store.record(&u, seq, &readings)).await?? {
        Recorded::Stored => Ok(StatusCode::NO_CONTENT.into_response()),
        Recorded::Replay { last } => Err(ApiError::new(
            StatusCode::CONFLICT,
            "replay",
            format!("seq {seq} is not above the last accepted {last}"),
        )),
        Recorded::UnknownDevice => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_device",
            format!("device {urn} is not enrolled here"),
        )),
    }
}

async fn devices(State(c): State<Controller>, headers: HeaderMap) -> Result<Response, ApiError> {
    http::require_bearer(&headers, &c.operator_token)?;
    let store = c.store.clone();
    let list = tokio::task::spawn_blocking(move || store.devices()).await??;
    Ok(Json(list).into_response())
}

async fn remove_device(
    State(c): State<Controller>,
    Path(urn): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    http::require_bearer(&headers, &c.operator_token)?;
    let urn = http::urn(&urn)?;
    let store = c.store.clone();
    let u = urn.clone();
    if tokio::task::spawn_blocking(move || store.remove_device(&u)).await?? {
        tracing::info!(%urn, "device removed by the operator");
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_device",
            format!("device {urn} is not enrolled here"),
        ))
    }
}

#[derive(serde::Deserialize)]
struct Limit {
    limit: Option<u32>,
}

async fn readings(
    State(c): State<Controller>,
    Path(urn): Path<String>,
    Query(q): Query<Limit>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    http::require_bearer(&headers, &c.operator_token)?;
    let urn = http::urn(&urn)?;
    let limit = q.limit.unwrap_or(100).clamp(1, 10_000);
    let store = c.store.clone();
    let u = urn.clone();
    match tokio::task::spawn_blocking(move || store.readings(&u, limit)).await?? {
        Some(list) => Ok(Json(list).into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_device",
            format!("device {urn} is not enrolled here"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt as _;

    /// The Access-Control-Allow-Origin a browser's preflight from `from` gets for an add.
    async fn preflight(origins: &[&str], from: &str) -> Option<String> {
        let dir = tempfile::tempdir().unwrap();
        let store =
            crate::store::sqlite::SqliteControllerStore::open(&dir.path().join("c.db")).unwrap();
        let list = origins.iter().map(|o| HeaderValue::from_str(o).unwrap());
        let app = Controller::new(Arc::new(store), "an-operator-token-0123")
            .with_allowed_origins(list.collect())
            .router();
        let req = axum::http::Request::builder()
            .method(Method::OPTIONS)
            .uri("/.well-known/tte1/c/urn:dev:mac:0200000000000001/k")
            .header(header::ORIGIN, from)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "PUT")
            .body(axum::body::Body::empty())
            .unwrap();
        let r = app.oneshot(req).await.unwrap();
        let allowed = r.headers().get(header::ACCESS_CONTROL_ALLOW_ORIGIN);
        allowed.map(|v| v.to_str().unwrap().to_owned())
    }

    #[tokio::test]
    async fn a_star_in_the_origin_list_allows_any_origin() {
        let (ta, other) = ("https://ta.example", "https://other.example");
        assert_eq!(preflight(&["*"], other).await.as_deref(), Some("*"));
        assert_eq!(preflight(&[ta], ta).await.as_deref(), Some(ta));
        assert_eq!(preflight(&[ta], other).await, None);
    }
}
