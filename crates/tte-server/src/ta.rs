//! The Transfer Agent: registers devices for the manufacturer, serves the setup page, takes the
//! introducer's bind (OTP single use), and tells each device its Controller, encrypted.
//!
//! | Method | Path | Who | Result |
//! |---|---|---|---|
//! | POST | `/.well-known/tte1/d/{DevURN}` | manufacturer (bearer token) | 201, 409 exists |
//! | GET | `/.well-known/tte1/{DevURN}/s?otp=` and `/.well-known/tte1/d/{DevURN}/s?otp=` | introducer | setup page |
//! | PUT | `/.well-known/tte1/d/{DevURN}/c` | introducer (`otp`, `conturl`) | 204 (also when repeated with the same `conturl`), 403 wrong OTP or unknown device, 409 used for another Controller |
//! | PUT | `/.well-known/tte1/b/c` | introducer, box label (see [`tte::bulk`]) | 204 / as above |
//! | GET | `/.well-known/tte1/{DevURN}/c` | device | 200 JWE, 404 unknown or unbound |
//!
//! Setup and bind do not tell a registered DevURN from an unknown one: they answer an unknown
//! device as a wrong OTP (403 `wrong_otp`, the setup page's `bad-otp`). Fetch does tell a
//! *bound* device apart: it answers 200 (a JWE only the device can read) for a bound device and
//! 404 for an unknown or unbound one, so anyone can learn which DevURNs are bound. That cannot
//! be hidden without the device authenticating its fetch, which the protocol does not have;
//! what the answer carries (the Controller URL) stays readable only under the TaSecret.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use rand_core::OsRng;
use subtle::ConstantTimeEq;
use tte::api::{Bind, BulkBind, CreateDevice};
use tte::otp::OtpHasher;
use tte::{jwe, ContUrl, DevUrn, Key256, Otp};

use crate::http::{self, ApiError};
use crate::setup_page;
use crate::store::{BindOutcome, Created, StoreError, TaStore};

/// Everything the Transfer Agent needs.
#[derive(Clone)]
pub struct TransferAgent {
    store: Arc<dyn TaStore>,
    hasher: Arc<OtpHasher>,
    manufacturer_token: Arc<str>,
}

impl std::fmt::Debug for TransferAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TransferAgent { .. }")
    }
}

impl TransferAgent {
    /// A Transfer Agent over `store`, hashing OTPs under `otp_key`, accepting device
    /// registrations bearing `manufacturer_token`.
    pub fn new(store: Arc<dyn TaStore>, otp_key: Key256, manufacturer_token: &str) -> Self {
        Self {
            store,
            hasher: Arc::new(OtpHasher::new(otp_key)),
            manufacturer_token: manufacturer_token.into(),
        }
    }

    /// The HTTP routes.
    pub fn router(self) -> Router {
        Router::new()
            .route("/.well-known/tte1/d/{urn}", post(create))
            .route("/.well-known/tte1/d/{urn}/s", get(setup))
            .route("/.well-known/tte1/{urn}/s", get(setup))
            .route("/.well-known/tte1/d/{urn}/c", put(bind))
            .route("/.well-known/tte1/b/c", put(bulk_bind))
            .route("/.well-known/tte1/{urn}/c", get(fetch))
            .route("/.well-known/tte1/setup.js", get(setup_page::script))
            .route("/.well-known/tte1/setup.css", get(setup_page::style))
            .fallback(http::not_found)
            .layer(DefaultBodyLimit::max(http::MAX_BODY))
            .layer(http::timeout_layer())
            .with_state(self)
    }
}

async fn create(
    State(ta): State<TransferAgent>,
    Path(urn): Path<String>,
    headers: HeaderMap,
    b: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    http::require_bearer(&headers, &ta.manufacturer_token)?;
    let urn = http::urn(&urn)?;
    let req: CreateDevice = http::json(b)?;
    let otp = Otp::from_b64(&req.otp).map_err(bad("bad_otp"))?;
    let ta_secret = Key256::from_b64(&req.ta_secret).map_err(bad("bad_ta_secret"))?;
    let hash = ta.hasher.hash(&urn, &otp);
    let store = ta.store.clone();
    let urn2 = urn.clone();
    // A repeat of a registration that landed (a reply lost, a manufacturing run resumed after a
    // crash) carries the same OTP and TaSecret: it is answered 200, so the manufacturer can
    // retry without knowing which attempt landed. Anything else under a known DevURN is a
    // conflict. The stored values never change once written, so reading them after the insert
    // races with nothing but a bind, which makes the device conflict as it should.
    let same = tokio::task::spawn_blocking(move || -> Result<Option<bool>, StoreError> {
        match store.create_device(&urn2, &hash, &ta_secret, http::now_secs())? {
            Created::New => Ok(None),
            Created::Exists => {
                let state = store.device_state(&urn2)?;
                let stored = store.fetch(&urn2)?;
                Ok(Some(match (state, stored) {
                    (Some(state), Some((stored_secret, None))) => {
                        !state.bound
                            && bool::from(state.otp_hash.as_slice().ct_eq(&hash[..]))
                            && stored_secret == ta_secret
                    }
                    _ => false,
                }))
            }
        }
    })
    .await??;
    match same {
        None => Ok(StatusCode::CREATED.into_response()),
        Some(true) => Ok(StatusCode::OK.into_response()),
        Some(false) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "exists",
            format!("device {urn} is already registered"),
        )),
    }
}

fn bad<E: std::fmt::Display>(code: &'static str) -> impl Fn(E) -> ApiError {
    move |e| ApiError::new(StatusCode::BAD_REQUEST, code, e.to_string())
}

#[derive(serde::Deserialize)]
struct OtpQuery {
    otp: Option<String>,
}

async fn setup(
    State(ta): State<TransferAgent>,
    Path(urn): Path<String>,
    Query(q): Query<OtpQuery>,
) -> Result<Response, ApiError> {
    let Ok(urn) = DevUrn::parse(&urn) else {
        return Ok(setup_page::render(
            StatusCode::BAD_REQUEST,
            None,
            setup_page::PageState::Unknown,
        ));
    };
    let store = ta.store.clone();
    let u = urn.clone();
    let state = tokio::task::spawn_blocking(move || store.device_state(&u)).await??;
    let otp = q.otp.as_deref().and_then(|o| Otp::from_b64(o).ok());
    // An unregistered DevURN is answered exactly as a wrong OTP is: otherwise anyone could list
    // which DevURNs (MAC addresses, often sequential) a Transfer Agent knows. The OTP is
    // checked against a dummy hash then, so the two take the same work as well.
    let (status, page) = match (state, otp) {
        (_, None) => (StatusCode::BAD_REQUEST, setup_page::PageState::BadOtp),
        (None, Some(otp)) => {
            let _ = ta.hasher.verify(&urn, &otp, &[0; 32]);
            (StatusCode::FORBIDDEN, setup_page::PageState::BadOtp)
        }
        (Some(s), Some(otp)) if !ta.hasher.verify(&urn, &otp, &s.otp_hash) => {
            (StatusCode::FORBIDDEN, setup_page::PageState::BadOtp)
        }
        (Some(s), Some(_)) if s.bound => (StatusCode::CONFLICT, setup_page::PageState::Used),
        (Some(_), Some(_)) => (StatusCode::OK, setup_page::PageState::Ready),
    };
    Ok(setup_page::render(status, Some(&urn), page))
}

async fn bind(
    State(ta): State<TransferAgent>,
    Path(urn): Path<String>,
    b: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let urn = http::urn(&urn)?;
    let req: Bind = http::json(b)?;
    let otp = Otp::from_b64(&req.otp).map_err(bad("bad_otp"))?;
    let conturl = ContUrl::parse(&req.conturl).map_err(bad("bad_conturl"))?;
    let hasher = ta.hasher.clone();
    let check = move |u: &DevUrn, stored: &[u8]| hasher.verify(u, &otp, stored);
    run_bind(&ta, vec![urn], check, conturl).await
}

async fn bulk_bind(
    State(ta): State<TransferAgent>,
    b: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req: BulkBind = http::json(b)?;
    let urns = req.range.urns().map_err(bad("bad_range"))?;
    let master = Key256::from_b64(&req.master).map_err(bad("bad_master"))?;
    let conturl = ContUrl::parse(&req.conturl).map_err(bad("bad_conturl"))?;
    let hasher = ta.hasher.clone();
    let check = move |u: &DevUrn, stored: &[u8]| {
        hasher.verify(u, &tte::bulk::derive_otp(&master, u), stored)
    };
    run_bind(&ta, urns, check, conturl).await
}

async fn run_bind(
    ta: &TransferAgent,
    urns: Vec<DevUrn>,
    check: impl Fn(&DevUrn, &[u8]) -> bool + Send + Sync + 'static,
    conturl: ContUrl,
) -> Result<Response, ApiError> {
    let store = ta.store.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        store.bind(&urns, &check, conturl.as_str(), http::now_secs())
    })
    .await??;
    match outcome {
        BindOutcome::Bound => Ok(StatusCode::NO_CONTENT.into_response()),
        // Not registered and wrong OTP are one answer, so DevURNs cannot be enumerated.
        BindOutcome::NotFound(u) | BindOutcome::WrongOtp(u) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "wrong_otp",
            format!("the one-time password for {u} is wrong"),
        )),
        BindOutcome::AlreadyBound(u) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "otp_used",
            format!("the one-time password for {u} was already used to bind another Controller"),
        )),
    }
}

async fn fetch(
    State(ta): State<TransferAgent>,
    Path(urn): Path<String>,
) -> Result<Response, ApiError> {
    let urn = http::urn(&urn)?;
    let store = ta.store.clone();
    let u = urn.clone();
    let row = tokio::task::spawn_blocking(move || store.fetch(&u)).await??;
    // Unknown and not-yet-bound look the same to the device: "ask again later".
    let Some((key, Some(conturl))) = row else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_bound",
            "no Controller is known for this device (yet)",
        ));
    };
    let body = jwe::encrypt(
        &key,
        &urn,
        None,
        Some("text/uri-list"),
        conturl.as_bytes(),
        &mut OsRng,
    );
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(jwe::MEDIA_TYPE),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body,
    )
        .into_response())
}
