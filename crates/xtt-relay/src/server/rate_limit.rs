//! Rate limits of the relay's HTTP API: the token buckets of [`xtt_ratelimit`], charged to the
//! client address (behind a trusted reverse proxy, the one it forwards).

use std::net::IpAddr;

pub use xtt_ratelimit::{RateLimiter, RateLimits};

/// The address a request's rate is charged to: the TCP peer, unless the peer is one of
/// `trusted_proxies` (a TLS-terminating reverse proxy in front of the relay): then the
/// right-most `X-Forwarded-For` entry that is not itself a trusted proxy, i.e. the address the
/// proxies saw. Entries further left are written by the client and could name anyone. Without
/// a usable entry, the peer.
pub fn client_ip(
    peer: IpAddr,
    headers: &axum::http::HeaderMap,
    trusted_proxies: &[IpAddr],
) -> IpAddr {
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok());
    xtt_ratelimit::forwarded_client(peer, forwarded, trusted_proxies)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_forwarded_for_header_counts_in_order() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let (proxy, inner) = (ip("10.0.0.1"), ip("10.0.0.2"));
        let mut h = axum::http::HeaderMap::new();
        for v in ["1.1.1.1, 2.2.2.2", "10.0.0.2"] {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        assert_eq!(client_ip(proxy, &h, &[proxy, inner]), ip("2.2.2.2"));
        assert_eq!(client_ip(ip("3.3.3.3"), &h, &[proxy, inner]), ip("3.3.3.3"));
    }
}
