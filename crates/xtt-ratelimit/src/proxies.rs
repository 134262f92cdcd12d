//! Which client a request behind trusted reverse proxies comes from.

use std::net::IpAddr;

/// The address a request is charged to: the TCP `peer`, unless the peer is one of
/// `trusted_proxies` (a TLS-terminating reverse proxy in front of the service): then the
/// right-most `X-Forwarded-For` entry that is not itself a trusted proxy, i.e. the address the
/// proxies saw. Entries further left are written by the client and could name anyone. Without a
/// usable entry, the peer. `forwarded_for` is the header's values in the order received (each
/// may list several addresses, comma-separated).
pub fn forwarded_client<'a>(
    peer: IpAddr,
    forwarded_for: impl IntoIterator<Item = &'a str>,
    trusted_proxies: &[IpAddr],
) -> IpAddr {
    // A dual-stack listener sees IPv4 peers as ::ffff:a.b.c.d; hops may be written either way.
    let trusted = |ip: IpAddr| {
        trusted_proxies
            .iter()
            .any(|t| t.to_canonical() == ip.to_canonical())
    };
    if !trusted(peer) {
        return peer;
    }
    let hops: Vec<&str> = forwarded_for
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    for hop in hops.into_iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) if trusted(ip) => continue,
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
        let xff = ["1.1.1.1, 2.2.2.2", "10.0.0.2"];
        assert_eq!(forwarded_client(proxy, xff, &trusted), ip("2.2.2.2"));
        // An untrusted peer's header is ignored.
        assert_eq!(
            forwarded_client(ip("3.3.3.3"), xff, &trusted),
            ip("3.3.3.3")
        );
        // No header, only proxies, or garbage where the client should be: the peer.
        assert_eq!(forwarded_client(proxy, [], &trusted), proxy);
        assert_eq!(forwarded_client(proxy, ["10.0.0.2"], &trusted), proxy);
        assert_eq!(forwarded_client(proxy, ["1.1.1.1, junk"], &trusted), proxy);
        // The proxy seen through a dual-stack listener is still the proxy.
        let mapped = ip("::ffff:10.0.0.1");
        assert_eq!(forwarded_client(mapped, xff, &trusted), ip("2.2.2.2"));
    }
}
