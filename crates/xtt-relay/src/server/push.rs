//! Push hook: when one side updates the mailbox, POST the other side's notification token to a
//! configured webhook. The body carries only the token (draft §8: the notification only says
//! that there is an update; the device knows its mailboxes).

use crate::proto::wire::NotificationToken;
use serde::Serialize;
use std::time::Duration;
use url::Url;

/// JSON body POSTed to the webhook.
#[derive(Serialize, Debug)]
struct Notification<'a> {
    event: &'static str,
    #[serde(rename = "notificationToken")]
    notification_token: &'a NotificationToken,
}

/// Sends notifications in the background, after the change is committed.
#[derive(Debug, Clone)]
pub struct Pusher {
    client: reqwest::Client,
    webhook: Url,
}

impl Pusher {
    /// A pusher for `webhook`.
    pub fn new(webhook: Url) -> Result<Self, reqwest::Error> {
        // Platform roots, with ring as rustls's provider (installed before any client is built).
        xtt_tls::install_ring_provider();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()?;
        Ok(Pusher { client, webhook })
    }

    /// Fire and forget: a failed push never fails the request that caused it.
    pub fn notify(&self, token: NotificationToken) {
        let this = self.clone();
        tokio::spawn(async move {
            let body = Notification {
                event: "mailboxUpdated",
                notification_token: &token,
            };
            match this
                .client
                .post(this.webhook.clone())
                .json(&body)
                .send()
                .await
            {
                Ok(resp) if resp.status().is_success() => {
                    tracing::debug!(status = resp.status().as_u16(), "push delivered");
                }
                Ok(resp) => tracing::warn!(status = resp.status().as_u16(), "push webhook refused"),
                Err(e) => tracing::warn!(error = %e.without_url(), "push webhook unreachable"),
            }
        });
    }
}
