//! ReadDisplayInformationFromMailbox: an OpenGraph page for link previews in messaging apps
//! (draft-vinokurov-tigress-http-00 §6.5). Static HTML, no script at all (draft §8.1.2 warns
//! about third-party scripts on this page), and a Content-Security-Policy that forbids any.

use crate::proto::wire::DisplayInformation;

/// Headers sent with the page.
pub const CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; img-src https: http:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Escapes text for both element content and double-quoted attributes.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The page for one mailbox; `page_url` is the mailbox URL (no secret: the relay never has it).
pub fn render(display: &DisplayInformation, page_url: &str) -> String {
    let title = escape(&display.title);
    let description = escape(&display.description);
    let image = escape(&display.image_url);
    let url = escape(page_url);
    format!(
        r#"<!DOCTYPE html>
<html lang="en" prefix="og: https://ogp.me/ns#">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex, nofollow">
<meta name="referrer" content="no-referrer">
<title>{title}</title>
<meta property="og:title" content="{title}">
<meta property="og:type" content="website">
<meta property="og:description" content="{description}">
<meta property="og:url" content="{url}">
<meta property="og:image" content="{image}">
</head>
<body>
<h1>{title}</h1>
<p>{description}</p>
<p><img src="{image}" alt="{title}" width="300"></p>
<p>Open this link on the device that should receive the credential.</p>
</body>
</html>
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_display_information_is_inert() {
        let page = render(
            &DisplayInformation {
                title: "<script>alert(1)</script>".into(),
                description: "\" onload=\"x".into(),
                image_url: "https://e.example/a.png?x=1&y='2'".into(),
            },
            "https://relay.example/v1/m/x",
        );
        assert!(!page.contains("<script>"));
        assert!(page.contains("&lt;script&gt;"));
        assert!(page.contains("content=\"&quot; onload=&quot;x\""));
        assert!(page.contains("x=1&amp;y=&#39;2&#39;"));
    }
}
