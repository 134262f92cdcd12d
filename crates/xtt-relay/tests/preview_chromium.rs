//! The OpenGraph preview page rendered by a real headless Chromium (Debian's `chromium`), with
//! the og: tags read back from the DOM Chromium built (`--dump-dom` serialises the live DOM
//! after load). Fails, never skips, when Chromium is missing: scripts/test.sh installs it.

mod common;

use common::*;
use std::time::Duration;
use xtt_relay::client;
use xtt_relay::proto::wire::DisplayInformation;

/// Attribute `content` of `<meta property="{property}" ...>` in serialised HTML.
fn og(dom: &str, property: &str) -> Option<String> {
    let needle = format!("property=\"{property}\"");
    let at = dom.find(&needle)?;
    let tag_start = dom[..at].rfind('<')?;
    let tag_end = at + dom[at..].find('>')?;
    let tag = &dom[tag_start..tag_end];
    let content = tag.find("content=\"")? + "content=\"".len();
    let value = &tag[content..content + tag[content..].find('"')?];
    Some(
        value
            .replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}

fn chromium() -> &'static str {
    for candidate in ["chromium", "chromium-browser", "google-chrome"] {
        if std::process::Command::new(candidate)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return candidate;
        }
    }
    panic!("no headless Chromium found: install Debian's `chromium` (scripts/test.sh does)");
}

#[tokio::test]
async fn preview_og_tags_render_in_headless_chromium() {
    let browser = chromium();
    let relay = start(config()).await;
    let display = DisplayInformation {
        title: "Car Key <Model 3> & \"spare\"".into(),
        description: "Valid until Sunday; owner's car".into(),
        image_url: "http://127.0.0.1:9/car.png?size=large&v=2".into(),
    };
    let mut request = share_request(&info("t"), "RD");
    request.display = display.clone();
    let shared = client::share(&relay.client, &relay.base, &request)
        .await
        .unwrap();
    let page_url = shared.link.api_url().to_string();

    let profile = tempfile::tempdir().unwrap();
    let output = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::process::Command::new(browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--disable-extensions",
                "--timeout=10000",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("--dump-dom")
            .arg(&page_url)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("chromium hung")
    .expect("chromium did not run");
    let dom = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && dom.contains("<html"),
        "chromium failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        og(&dom, "og:title").as_deref(),
        Some(display.title.as_str()),
        "{dom}"
    );
    assert_eq!(
        og(&dom, "og:description").as_deref(),
        Some(display.description.as_str())
    );
    assert_eq!(
        og(&dom, "og:image").as_deref(),
        Some(display.image_url.as_str())
    );
    assert_eq!(og(&dom, "og:url").as_deref(), Some(page_url.as_str()));
    // The title stayed text: no element was created from it, and the page has no script.
    assert!(!dom.contains("<model"), "{dom}");
    assert!(!dom.to_ascii_lowercase().contains("<script"), "{dom}");
    // The secret never reaches the relay, so it cannot be on the page.
    let secret = shared.link.secret().unwrap().encode();
    assert!(!dom.contains(secret.as_str()));
}

#[test]
fn og_extractor_reads_serialised_meta_tags() {
    let dom =
        r#"<html><head><meta property="og:title" content="A &amp; &quot;B&quot;"></head></html>"#;
    assert_eq!(og(dom, "og:title").as_deref(), Some("A & \"B\""));
    assert_eq!(og(dom, "og:image"), None);
}
