//! The CLI prints an error with `{:#}`: its message and every `source()`'s, joined by ": ".
//! Each cause must appear there exactly once.

use std::error::Error;
use xtt_server::sessions::shared::StorageKey;
use xtt_server::{ServerConfig, ServerError};

/// What `anyhow`'s `{:#}` prints.
fn chain(e: &(dyn Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        next = cause.source();
    }
    text
}

fn assert_once(text: &str, cause: &str) {
    assert_eq!(text.matches(cause).count(), 1, "{cause:?} in {text:?}");
}

#[test]
fn an_io_failure_is_printed_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"").unwrap();
    let config = ServerConfig {
        data_dir: file,
        ..ServerConfig::default()
    };
    let e = xtt_server::open_registry(&config).unwrap_err();
    let text = chain(&e);
    assert!(text.starts_with("creating data directory "), "{text}");
    assert_once(&text, "(os error");
}

#[test]
fn a_wrapped_registry_anchor_or_cookie_key_error_is_printed_once() {
    let e = ServerError::from(xtt_registry::RegistryError::from(
        xtt_registry::Refusal::UnknownGroup,
    ));
    let text = chain(&e);
    assert_eq!(text, "registry: registration refused: unknown DAA group");

    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.keys");
    let e = ServerError::from(xtt_server::cookie_keys::load(&missing).unwrap_err());
    let text = chain(&e);
    assert!(text.starts_with("cookie keys: "), "{text}");
    assert_once(&text, "(os error");

    let e = ServerError::from(xtt_anchors::AnchorError::SelfVouch);
    assert_eq!(chain(&e), "anchor store: an anchor cannot vouch for itself");
}

#[test]
fn a_configuration_file_error_is_printed_once() {
    let e = ServerConfig::from_toml("lisen = \"0.0.0.0:5000\"\n").unwrap_err();
    let text = chain(&e);
    assert!(text.starts_with("invalid configuration file: "), "{text}");
    assert_once(&text, "unknown field");
    // Through the server's error, as the CLI sees it.
    let text = chain(&ServerError::from(e));
    assert_once(&text, "unknown field");
}

#[test]
fn an_existing_session_storage_key_is_refused_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessions.key");
    StorageKey::create(&path).unwrap();
    let e = StorageKey::create(&path).unwrap_err();
    let text = chain(&e);
    assert!(
        text.starts_with("session storage key file ") && text.contains("sessions.key"),
        "{text}"
    );
    assert_once(&text, "refusing to overwrite an existing key");
}
