//! Reading HTTP answers with a bound. `reqwest`'s `text()`, `bytes()` and `json()` read a
//! whole body into memory before anything can look at its length, so a server (or anything
//! between it and the client) could make a client hold whatever it streams until the request's
//! timeout. Every client in the workspace reads bodies through here instead.

/// What an error page is worth keeping for a message (see [`error_text`]).
pub const MAX_ERROR_TEXT: usize = 4096;

/// Reading a body failed.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The body was longer than the caller accepts; nothing beyond the limit was read.
    #[error("the answer is longer than {limit} bytes; not read further")]
    TooLarge {
        /// What was accepted.
        limit: usize,
    },
    /// The connection failed while reading.
    #[error("reading the answer failed: {}", crate::error_chain(.0))]
    Transport(#[source] reqwest::Error),
}

/// The body of `resp`, at most `limit` bytes. A `Content-Length` above the limit is refused
/// before any byte is read; otherwise the body is read chunk by chunk and given up on as soon
/// as it passes the limit.
pub async fn read_limited(mut resp: reqwest::Response, limit: usize) -> Result<Vec<u8>, BodyError> {
    if resp
        .content_length()
        .is_some_and(|n| usize::try_from(n).map_or(true, |n| n > limit))
    {
        return Err(BodyError::TooLarge { limit });
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(BodyError::Transport)? {
        if body.len().saturating_add(chunk.len()) > limit {
            return Err(BodyError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The body of an error answer as text for a message: at most [`MAX_ERROR_TEXT`] bytes, lossy
/// UTF-8, and a short note instead when it is longer or cannot be read.
pub async fn error_text(resp: reqwest::Response) -> String {
    match read_limited(resp, MAX_ERROR_TEXT).await {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(BodyError::TooLarge { limit }) => format!("(an error page of more than {limit} bytes)"),
        Err(BodyError::Transport(_)) => "(the error page could not be read)".into(),
    }
}
