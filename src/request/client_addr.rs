//! The client's address for the sign-in rate limit. Behind a reverse proxy every connection comes
//! from the proxy, so `X-Forwarded-For` is read, but only when the connection comes from one of
//! `trusted_proxies`: the list is walked from the right (the entry the nearest proxy appended),
//! skipping trusted proxies, and the first address that is not one is the client. Anyone else's
//! `X-Forwarded-For` is ignored, so a client cannot choose the address it is limited under.

use super::headers::{visible_ascii, Headers};
use crate::config::{canonical, ProxyNet};
use std::net::{IpAddr, SocketAddr};

pub fn client_address(peer: SocketAddr, headers: &(impl Headers + ?Sized), trusted: &[ProxyNet]) -> IpAddr {
    let peer = canonical(peer.ip());
    let is_trusted = |address: &IpAddr| trusted.iter().any(|net| net.contains(address));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Option<Vec<IpAddr>> = headers
        .all("x-forwarded-for")
        .flat_map(|value| visible_ascii(value).unwrap_or("").split(','))
        .map(|hop| parse_hop(hop.trim()))
        .collect();
    let Some(hops) = hops.filter(|h| !h.is_empty()) else { return peer };
    hops.iter().rev().find(|hop| !is_trusted(hop)).or(hops.first()).copied().unwrap_or(peer)
}

/// One `X-Forwarded-For` entry: an address, possibly with a port (`1.2.3.4:5`, `[::1]:5`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let address = hop.parse::<IpAddr>().ok().or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))?;
    Some(canonical(address))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderMap;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in xff {
            map.append("x-forwarded-for", value.parse().unwrap());
        }
        map
    }

    fn nets(list: &[&str]) -> Vec<ProxyNet> {
        list.iter().map(|s| ProxyNet::try_from(s.to_string()).unwrap()).collect()
    }

    fn peer(ip: &str) -> SocketAddr {
        SocketAddr::new(ip.parse().unwrap(), 40000)
    }

    #[test]
    fn forwarded_for_counts_only_from_trusted_proxies() {
        let trusted = nets(&["10.0.0.0/8"]);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(client_address(peer("203.0.113.9"), &headers(&["198.51.100.1"]), &trusted), ip("203.0.113.9"));
        assert_eq!(client_address(peer("10.0.0.2"), &headers(&["198.51.100.1"]), &trusted), ip("198.51.100.1"));
        assert_eq!(client_address(peer("10.0.0.2"), &headers(&[]), &trusted), ip("10.0.0.2"));
        assert_eq!(client_address(peer("10.0.0.2"), &headers(&["198.51.100.1"]), &[]), ip("10.0.0.2"));
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let trusted = nets(&["10.0.0.0/8", "192.0.2.1"]);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // The client forged the first entry; the proxies appended the real one and themselves.
        let xff = headers(&["6.6.6.6, 198.51.100.7", "10.1.1.1"]);
        assert_eq!(client_address(peer("192.0.2.1"), &xff, &trusted), ip("198.51.100.7"));
        let all_trusted = headers(&["10.9.9.9, 10.1.1.1"]);
        assert_eq!(client_address(peer("10.0.0.2"), &all_trusted, &trusted), ip("10.9.9.9"));
        let with_ports = headers(&["[2001:db8::1]:443, 198.51.100.8:5000"]);
        assert_eq!(client_address(peer("::ffff:10.0.0.2"), &with_ports, &trusted), ip("198.51.100.8"));
        assert_eq!(client_address(peer("10.0.0.2"), &headers(&["not-an-address"]), &trusted), ip("10.0.0.2"));
    }
}
