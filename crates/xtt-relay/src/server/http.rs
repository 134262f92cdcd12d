//! HTTP routes: thin glue between axum and the sans-IO core. Each handler validates headers and
//! body, runs one store transaction on a blocking thread, and replies only after the commit.
//! Handlers hand the store the clock, not a time: whether a mailbox has expired is decided when
//! the transaction runs, which may be long after the request arrived (the store has one lock).
//!
//! A 408 means nothing happened. Each request gets a [`Deadline`], its start plus the request
//! timeout, and hands it to its store step, which commits only if it can claim the deadline
//! right before committing, and otherwise rolls back ([`StoreError::DeadlinePassed`], answered
//! 408 by the handler). The timeout answers 408 itself only if it claims the deadline first: the
//! request was still uploading its body or waiting for the store, and its store step, which is
//! not cancelled and may run later, will roll back. If a commit has begun, the timeout waits
//! for the handler's answer instead. A create whose mailbox expired while it waited for the
//! store stores nothing and is answered 408 too.

use crate::proto::mailbox::{AccessError, Change, ClaimDigest, Mailbox, Role};
use crate::proto::wire::{
    self, format_timestamp, validate_request_id, CreateMailboxRequest, CreateMailboxResponse,
    ErrorBody, ReadMailboxRequest, ReadSecureContentResponse, UpdateMailboxRequest,
    UpdateMailboxResponse, WireError, HEADER_DEVICE_ATTESTATION, HEADER_DEVICE_CLAIM,
    HEADER_REQUEST_ID,
};
use crate::server::preview;
use crate::server::store::{
    ApplyError, ApplyOutcome, CreateOutcome, Deadline, IdempotencyKey, StoreError,
};
use crate::server::store::{CreateQuota, Creator, QuotaOutcome};
use crate::server::AppState;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Json, Router};
use serde::de::DeserializeOwned;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use uuid::Uuid;

type Shared = Arc<AppState>;

pub(crate) fn router(state: Shared) -> Router {
    let body_limit = state.config.body_limit;
    Router::new()
        .route("/v1/m", post(create))
        .route(
            "/v1/m/{id}",
            axum::routing::get(preview_page)
                .post(read)
                .put(update)
                .patch(relinquish)
                .delete(delete),
        )
        .route_layer(middleware::from_fn(log_request))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(state.clone(), deadline))
        .layer(middleware::from_fn_with_state(state.clone(), rate_limit))
        .layer(middleware::from_fn(echo_request_id))
        .with_state(state)
}

/// An error reply: status and a JSON `{error}` body.
#[derive(Debug)]
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(ErrorBody { error: self.1 })).into_response()
    }
}

impl ApiError {
    /// The reply with a `Retry-After` of `after` (whole seconds, at least one).
    fn retry_after(self, after: std::time::Duration) -> Response {
        let mut response = self.into_response();
        let secs = HeaderValue::from(after.as_secs().max(1));
        response.headers_mut().insert(header::RETRY_AFTER, secs);
        response
    }
}

impl From<WireError> for ApiError {
    fn from(e: WireError) -> Self {
        let status = match e {
            WireError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError(status, e.to_string())
    }
}

impl From<AccessError> for ApiError {
    fn from(e: AccessError) -> Self {
        match e {
            AccessError::NotFound => ApiError(StatusCode::NOT_FOUND, e.to_string()),
            _ => ApiError(StatusCode::UNAUTHORIZED, e.to_string()),
        }
    }
}

impl ApiError {
    /// The reply to a request whose deadline passed before anything was done.
    fn timed_out() -> Self {
        ApiError(
            StatusCode::REQUEST_TIMEOUT,
            "the request took too long; nothing was changed".into(),
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if let StoreError::DeadlinePassed = e {
            return ApiError::timed_out();
        }
        tracing::error!(error = %e, "storage failure");
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, "internal error".into())
    }
}

impl From<ApplyError> for ApiError {
    fn from(e: ApplyError) -> Self {
        match e {
            ApplyError::Access(e) => e.into(),
            ApplyError::Store(e) => e.into(),
        }
    }
}

/// Runs blocking storage work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        tracing::error!(error = %e, "storage task failed");
        Err(ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error".into(),
        ))
    })
}

fn header_str<'a>(
    headers: &'a HeaderMap,
    name: &'static str,
    display: &'static str,
) -> Result<Option<&'a str>, WireError> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(Some)
            .map_err(|_| WireError::BadHeader(display, "must be visible ASCII")),
    }
}

fn device_claim(headers: &HeaderMap) -> Result<ClaimDigest, WireError> {
    let text = header_str(headers, HEADER_DEVICE_CLAIM, "Mailbox-Device-Claim")?
        .ok_or(WireError::MissingHeader("Mailbox-Device-Claim"))?;
    let claim = Uuid::try_parse(text.trim())
        .map_err(|_| WireError::BadHeader("Mailbox-Device-Claim", "must be a UUID"))?;
    if claim.is_nil() {
        return Err(WireError::BadHeader(
            "Mailbox-Device-Claim",
            "must not be the nil UUID",
        ));
    }
    Ok(ClaimDigest::of(&claim))
}

fn idempotency_key(headers: &HeaderMap, claim: ClaimDigest) -> Result<IdempotencyKey, WireError> {
    let request_id = header_str(headers, HEADER_REQUEST_ID, "Mailbox-Request-ID")?
        .ok_or(WireError::MissingHeader("Mailbox-Request-ID"))?;
    validate_request_id(request_id)?;
    Ok(IdempotencyKey {
        claim,
        request_id: request_id.to_owned(),
    })
}

fn attestation(headers: &HeaderMap) -> Result<Option<String>, WireError> {
    let Some(text) = header_str(
        headers,
        HEADER_DEVICE_ATTESTATION,
        "Mailbox-Device-Attestation",
    )?
    else {
        return Ok(None);
    };
    if text.len() > wire::MAX_ATTESTATION_LEN {
        return Err(WireError::BadHeader(
            "Mailbox-Device-Attestation",
            "longer than 8 KiB",
        ));
    }
    Ok(Some(text.to_owned()))
}

fn json_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, WireError> {
    serde_json::from_slice(body).map_err(|e| WireError::Json(e.to_string()))
}

fn mailbox_id(raw: &str) -> Result<Uuid, ApiError> {
    // A malformed id names no mailbox.
    Uuid::try_parse(raw).map_err(|_| AccessError::NotFound.into())
}

fn mailbox_url(state: &AppState, id: &Uuid) -> String {
    match state.public_base.join(&format!("v1/m/{id}")) {
        Ok(url) => url.into(),
        Err(_) => format!("{}v1/m/{id}", state.public_base),
    }
}

fn push_supported(state: &AppState) -> bool {
    state.pusher.is_some()
}

async fn create(
    State(state): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(deadline): Extension<Arc<Deadline>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let claim = device_claim(&headers)?;
    let key = idempotency_key(&headers, claim)?;
    let attestation = attestation(&headers)?;
    let request: CreateMailboxRequest = json_body(&body)?;
    // The requested expiration is checked against the arrival time; the store reads the clock
    // again for its own expiry decisions (this mailbox, a repeated create, the per-creator
    // quota).
    let now = state.clock.now();
    let valid = request.validate(now, &state.config.limits)?;
    let mailbox = Mailbox {
        id: Uuid::new_v4(),
        initiator: claim,
        recipient: None,
        rights: valid.rights,
        expires_at: valid.expires_at,
        payload: valid.payload,
        display: valid.display,
        initiator_token: valid.token,
        recipient_token: None,
        attestation,
        receivers_bound: 0,
    };
    let store = state.store.clone();
    let new_id = mailbox.id;
    let max = state.config.max_mailboxes;
    let client =
        crate::server::rate_limit::client_ip(peer.ip(), &headers, &state.config.trusted_proxies);
    let quota = CreateQuota {
        max_mailboxes: max,
        creator: Creator::of(client),
        per_creator: state.config.max_mailboxes_per_creator,
    };
    let clock = state.clock.clone();
    let stored =
        blocking(move || Ok(store.create(&mailbox, &key, &*clock, &quota, &deadline)?)).await?;
    let outcome = match stored {
        QuotaOutcome::Within(outcome) => outcome,
        QuotaOutcome::OverQuota { retry_after_secs } => {
            return Ok(ApiError(StatusCode::TOO_MANY_REQUESTS, quota.refusal())
                .retry_after(std::time::Duration::from_secs(retry_after_secs)));
        }
    };
    let (status, id) = match outcome {
        CreateOutcome::Created => (StatusCode::OK, new_id),
        CreateOutcome::Duplicate(earlier) => (StatusCode::CREATED, earlier),
        CreateOutcome::Full => {
            tracing::warn!(max, "mailbox create refused: the relay is full");
            return Ok(ApiError(
                StatusCode::SERVICE_UNAVAILABLE,
                "the relay holds its maximum number of mailboxes; retry later".into(),
            )
            .retry_after(state.config.sweep_interval));
        }
        CreateOutcome::Expired => {
            return Err(ApiError(
                StatusCode::REQUEST_TIMEOUT,
                "the mailbox expired while the request waited for the relay; nothing was stored"
                    .into(),
            ));
        }
    };
    let body = CreateMailboxResponse {
        url_link: mailbox_url(&state, &id),
        is_push_notification_supported: push_supported(&state),
    };
    Ok((status, Json(body)).into_response())
}

async fn read(
    State(state): State<Shared>,
    Path(raw_id): Path<String>,
    Extension(deadline): Extension<Arc<Deadline>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = mailbox_id(&raw_id)?;
    let claim = device_claim(&headers)?;
    // Reads are not deduplicated: repeating one by the same claim is harmless, and a retry
    // whose first answer was lost must get the content, not an empty 201.
    let request: ReadMailboxRequest = if body.is_empty() {
        ReadMailboxRequest::default()
    } else {
        json_body(&body)?
    };
    let token = request.validate()?;
    let max_receivers = state.config.max_receivers;
    let (store, clock) = (state.store.clone(), state.clock.clone());
    let mailbox = blocking(move || {
        let mut token = token;
        let mut seen = None;
        let mut op = |m: &mut Mailbox| {
            let (_role, change): (Role, Change) = m.read(&claim, token.take(), max_receivers)?;
            seen = Some(m.clone());
            Ok(change)
        };
        store.apply(&id, &*clock, None, &mut op, &deadline)?;
        seen.ok_or(ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error".into(),
        ))
    })
    .await?;
    Ok(Json(ReadSecureContentResponse {
        payload: mailbox.payload.to_wire(),
        display_information: mailbox.display,
        expiration: format_timestamp(mailbox.expires_at),
    })
    .into_response())
}

async fn update(
    State(state): State<Shared>,
    Path(raw_id): Path<String>,
    Extension(deadline): Extension<Arc<Deadline>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = mailbox_id(&raw_id)?;
    let claim = device_claim(&headers)?;
    let key = idempotency_key(&headers, claim)?;
    let request: UpdateMailboxRequest = json_body(&body)?;
    let (payload, token) = request.validate(state.config.limits.max_payload)?;
    let (store, clock) = (state.store.clone(), state.clock.clone());
    let (outcome, notify) = blocking(move || {
        let mut input = Some((payload, token));
        let mut notify = None;
        let mut op = |m: &mut Mailbox| {
            let (payload, token) = input.take().ok_or(AccessError::NotFound)?;
            notify = m.update(&claim, payload, token)?;
            Ok(Change::Updated)
        };
        let outcome = store.apply(&id, &*clock, Some(&key), &mut op, &deadline)?;
        Ok((outcome, notify))
    })
    .await?;
    if let (Some(pusher), Some(token)) = (&state.pusher, notify) {
        pusher.notify(token);
    }
    let status = match outcome {
        ApplyOutcome::Done(_) => StatusCode::OK,
        ApplyOutcome::Duplicate => StatusCode::CREATED,
    };
    Ok((
        status,
        Json(UpdateMailboxResponse {
            is_push_notification_supported: push_supported(&state),
        }),
    )
        .into_response())
}

async fn relinquish(
    State(state): State<Shared>,
    Path(raw_id): Path<String>,
    Extension(deadline): Extension<Arc<Deadline>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    claimant_change(&state, &raw_id, &headers, deadline, |m, claim| {
        m.relinquish(claim).map(|()| Change::Updated)
    })
    .await
}

async fn delete(
    State(state): State<Shared>,
    Path(raw_id): Path<String>,
    Extension(deadline): Extension<Arc<Deadline>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    claimant_change(&state, &raw_id, &headers, deadline, |m, claim| {
        m.authorize_delete(claim).map(|_| Change::Deleted)
    })
    .await
}

/// A change without a body that the holder of the `Mailbox-Device-Claim` asks for: applied at
/// most once per request id, answered with a status only.
async fn claimant_change(
    state: &Shared,
    raw_id: &str,
    headers: &HeaderMap,
    deadline: Arc<Deadline>,
    change: fn(&mut Mailbox, &ClaimDigest) -> Result<Change, AccessError>,
) -> Result<Response, ApiError> {
    let id = mailbox_id(raw_id)?;
    let claim = device_claim(headers)?;
    let key = idempotency_key(headers, claim)?;
    let (store, clock) = (state.store.clone(), state.clock.clone());
    let outcome = blocking(move || {
        let mut op = |m: &mut Mailbox| change(m, &claim);
        Ok(store.apply(&id, &*clock, Some(&key), &mut op, &deadline)?)
    })
    .await?;
    Ok(status_only(outcome))
}

fn status_only(outcome: ApplyOutcome) -> Response {
    match outcome {
        ApplyOutcome::Done(_) => StatusCode::OK.into_response(),
        ApplyOutcome::Duplicate => StatusCode::CREATED.into_response(),
    }
}

async fn preview_page(
    State(state): State<Shared>,
    Path(raw_id): Path<String>,
) -> Result<Response, ApiError> {
    let id = mailbox_id(&raw_id)?;
    let (store, clock) = (state.store.clone(), state.clock.clone());
    let mailbox = blocking(move || Ok(store.get(&id, &*clock)?))
        .await?
        .ok_or(AccessError::NotFound)?;
    let page = preview::render(&mailbox.display, &mailbox_url(&state, &id));
    let mut response = page.into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(preview::CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Echoes `Mailbox-Request-ID` on every response (draft §5.1), errors included.
async fn echo_request_id(request: Request, next: Next) -> Response {
    let id = request.headers().get(HEADER_REQUEST_ID).cloned();
    let mut response = next.run(request).await;
    if let Some(id) = id {
        response.headers_mut().insert(HEADER_REQUEST_ID, id);
    }
    response
}

/// Answers 408 to a request not done within the relay's request timeout: a body that never
/// arrives would otherwise hold its connection and task forever (hyper bounds only the head).
/// The request's [`Deadline`] is the same instant; the 408 is sent only if the timeout claims
/// it before a store step began to commit (that step, and any later one, then rolls back), and
/// otherwise the handler's answer is awaited: see the module docs.
async fn deadline(State(state): State<Shared>, mut request: Request, next: Next) -> Response {
    let at = tokio::time::Instant::now() + state.request_timeout;
    let deadline = Arc::new(Deadline::at(at.into_std()));
    request.extensions_mut().insert(deadline.clone());
    let run = next.run(request);
    tokio::pin!(run);
    tokio::select! {
        response = &mut run => return response,
        () = tokio::time::sleep_until(at) => {}
    }
    if !deadline.time_out() {
        // A commit has begun: the change is made, and the client must hear how it ended.
        return run.await;
    }
    let mut response = ApiError::timed_out().into_response();
    // The unread rest of the body makes the connection unusable.
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

async fn rate_limit(
    State(state): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    let client = crate::server::rate_limit::client_ip(
        peer.ip(),
        request.headers(),
        &state.config.trusted_proxies,
    );
    match state.limiter.check(client) {
        Ok(()) => next.run(request).await,
        Err(wait) => {
            ApiError(StatusCode::TOO_MANY_REQUESTS, "rate limited".into()).retry_after(wait)
        }
    }
}

/// One structured line per request: method, route template, status, latency. Never the
/// mailbox id, claims, tokens, addresses or bodies.
async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let start = Instant::now();
    let response = next.run(request).await;
    let micros = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
    tracing::info!(
        target: "xtt_relay::access",
        %method,
        route,
        status = response.status().as_u16(),
        micros,
        "request"
    );
    response
}
