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
    if !trusted_proxies.contains(&peer) {
        return peer;
    }
    let hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    for hop in hops.into_iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) if trusted_proxies.contains(&ip) => continue,
            Ok(ip) => return ip,
            Err(_) => break,
        }
    }
    peer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_behind_trusted_proxies_is_the_rightmost_untrusted_hop() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let (proxy, inner) = (ip("10.0.0.1"), ip("10.0.0.2"));
        let trusted = [proxy, inner];
        let with = |xff: &[&str]| {
            let mut h = axum::http::HeaderMap::new();
            for v in xff {
                h.append("x-forwarded-for", v.parse().unwrap());
            }
            h
        };
        let peer = proxy;
        let h = with(&["1.1.1.1, 2.2.2.2", "10.0.0.2"]);
        assert_eq!(client_ip(peer, &h, &trusted), ip("2.2.2.2"));
        // An untrusted peer's header is ignored.
        assert_eq!(client_ip(ip("3.3.3.3"), &h, &trusted), ip("3.3.3.3"));
        // No header, only proxies, or garbage where the client should be: the peer.
        assert_eq!(client_ip(peer, &with(&[]), &trusted), peer);
        assert_eq!(client_ip(peer, &with(&["10.0.0.2"]), &trusted), peer);
        assert_eq!(client_ip(peer, &with(&["1.1.1.1, junk"]), &trusted), peer);
    }
}
