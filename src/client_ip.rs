//! The client address every allow-list, limiter, audit record and log line
//! uses: the peer, unless the peer is a configured trusted proxy; then the
//! right-most entry of the one forwarding header named by
//! `server.forwarded_header` that is not a trusted proxy. The other header
//! is never read: a client could add it to forge its address. IPv4-mapped
//! IPv6 is normalised to IPv4. Headers from an untrusted peer are ignored.

use std::net::IpAddr;

use actix_web::HttpRequest;
use actix_web::http::header::HeaderValue;
use ipnet::IpNet;

use crate::config::{ForwardedHeader, ServerSettings};

pub fn normalise(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|net| net.contains(&ip))
}

/// Parses one `Forwarded: for=` or `X-Forwarded-For` node. `None` for what
/// names no address (`unknown`, an obfuscated `_id`, garbage).
fn parse_node(node: &str) -> Option<IpAddr> {
    let node = node.trim().trim_matches('"');
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip);
    }
    // "[2001:db8::1]:4711" or "192.0.2.1:4711"
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    node.rsplit_once(':')?.0.parse().ok()
}

/// Splits at `sep` outside double-quoted strings (RFC 7239 quotes values
/// such as `"[2001:db8::1]:4711"`).
fn split_unquoted(text: &str, sep: char) -> impl Iterator<Item = &str> {
    let mut quoted = false;
    text.split(move |c: char| {
        if c == '"' {
            quoted = !quoted;
        }
        c == sep && !quoted
    })
}

/// The hops one header value lists, left to right; `None` for a hop that
/// names no usable address.
fn hops_of(value: &HeaderValue, header: ForwardedHeader, chain: &mut Vec<Option<IpAddr>>) {
    let Ok(value) = value.to_str() else {
        chain.push(None);
        return;
    };
    for element in split_unquoted(value, ',') {
        if element.trim().is_empty() {
            continue;
        }
        match header {
            ForwardedHeader::XForwardedFor => chain.push(parse_node(element)),
            ForwardedHeader::Forwarded => {
                // An element without `for=` (say, only `proto=https`) names no hop.
                let node = split_unquoted(element, ';').find_map(|pair| {
                    let (name, node) = pair.split_once('=')?;
                    name.trim().eq_ignore_ascii_case("for").then_some(node)
                });
                if let Some(node) = node {
                    chain.push(parse_node(node));
                }
            }
        }
    }
}

/// Every instance of the chosen header, in order, as one chain.
fn forwarded_chain(req: &HttpRequest, header: ForwardedHeader) -> Vec<Option<IpAddr>> {
    let name = match header {
        ForwardedHeader::XForwardedFor => "x-forwarded-for",
        ForwardedHeader::Forwarded => "forwarded",
    };
    let mut chain = Vec::new();
    for value in req.headers().get_all(name) {
        hops_of(value, header, &mut chain);
    }
    chain
}

/// The address of the client that sent `req`.
pub fn client_ip(req: &HttpRequest, server: &ServerSettings) -> Option<IpAddr> {
    let trusted = &server.trusted_proxies;
    let peer = normalise(req.peer_addr()?.ip());
    if trusted.is_empty() || !is_trusted(peer, trusted) {
        return Some(peer);
    }
    let mut client = peer;
    for hop in forwarded_chain(req, server.forwarded_header)
        .into_iter()
        .rev()
    {
        // A hop that names no address ends the walk at the last trusted
        // proxy: skipping it would believe whatever stands to its left,
        // which the client wrote.
        let Some(hop) = hop else { break };
        client = normalise(hop);
        if !is_trusted(client, trusted) {
            break;
        }
    }
    Some(client)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Overrides, Settings};
    use actix_web::test::TestRequest;

    fn server(trusted: &str, header: &str) -> ServerSettings {
        let layer =
            format!("[server]\ntrusted_proxies = {trusted}\nforwarded_header = \"{header}\"\n");
        Settings::from_toml(&[&layer], &Overrides::default())
            .unwrap()
            .server
    }

    fn from_loopback(headers: &[(&'static str, &'static str)]) -> HttpRequest {
        let mut req = TestRequest::default().peer_addr("127.0.0.1:1234".parse().unwrap());
        for header in headers {
            req = req.append_header(*header);
        }
        req.to_http_request()
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn untrusted_peers_headers_are_ignored() {
        let req = TestRequest::default()
            .peer_addr("203.0.113.9:1234".parse().unwrap())
            .insert_header(("X-Forwarded-For", "10.9.9.9"))
            .to_http_request();
        let settings = server("[\"127.0.0.0/8\"]", "x-forwarded-for");
        assert_eq!(client_ip(&req, &settings), ip("203.0.113.9"));
    }

    #[test]
    fn trusted_peer_yields_rightmost_untrusted_hop() {
        let req = from_loopback(&[("X-Forwarded-For", "198.51.100.1, 203.0.113.7, 10.0.0.2")]);
        let settings = server("[\"127.0.0.0/8\", \"10.0.0.0/8\"]", "x-forwarded-for");
        assert_eq!(client_ip(&req, &settings), ip("203.0.113.7"));
        let req = from_loopback(&[(
            "Forwarded",
            "for=198.51.100.1, for=\"[2001:db8::1]:4711\";proto=https",
        )]);
        let settings = server("[\"127.0.0.0/8\"]", "forwarded");
        assert_eq!(client_ip(&req, &settings), ip("2001:db8::1"));
    }

    #[test]
    fn only_the_configured_header_is_read() {
        let both = from_loopback(&[
            ("Forwarded", "for=203.0.113.7"),
            ("X-Forwarded-For", "198.51.100.1"),
        ]);
        let xff = server("[\"127.0.0.0/8\"]", "x-forwarded-for");
        let forwarded = server("[\"127.0.0.0/8\"]", "forwarded");
        assert_eq!(client_ip(&both, &xff), ip("198.51.100.1"));
        assert_eq!(client_ip(&both, &forwarded), ip("203.0.113.7"));
        // The other header alone changes nothing: the peer stays the client.
        let only_forwarded = from_loopback(&[("Forwarded", "for=203.0.113.7")]);
        assert_eq!(client_ip(&only_forwarded, &xff), ip("127.0.0.1"));
        let only_xff = from_loopback(&[("X-Forwarded-For", "203.0.113.7")]);
        assert_eq!(client_ip(&only_xff, &forwarded), ip("127.0.0.1"));
    }

    #[test]
    fn several_instances_form_one_chain_in_order() {
        let trusted = "[\"127.0.0.0/8\", \"10.0.0.0/8\"]";
        let req = from_loopback(&[
            ("X-Forwarded-For", "198.51.100.1"),
            ("X-Forwarded-For", "203.0.113.7, 10.0.0.2"),
        ]);
        assert_eq!(
            client_ip(&req, &server(trusted, "x-forwarded-for")),
            ip("203.0.113.7")
        );
        let req = from_loopback(&[
            ("Forwarded", "for=198.51.100.1"),
            ("Forwarded", "for=203.0.113.7"),
            ("Forwarded", "for=10.0.0.2;by=10.0.0.3"),
        ]);
        assert_eq!(
            client_ip(&req, &server(trusted, "forwarded")),
            ip("203.0.113.7")
        );
    }

    #[test]
    fn a_hop_naming_no_address_stops_the_walk() {
        let trusted = "[\"127.0.0.0/8\", \"10.0.0.0/8\"]";
        let req = from_loopback(&[("Forwarded", "for=203.0.113.7, for=unknown, for=10.0.0.2")]);
        assert_eq!(
            client_ip(&req, &server(trusted, "forwarded")),
            ip("10.0.0.2")
        );
        let req = from_loopback(&[("X-Forwarded-For", "203.0.113.7, _hidden")]);
        assert_eq!(
            client_ip(&req, &server(trusted, "x-forwarded-for")),
            ip("127.0.0.1")
        );
        // A quoted comma does not split an element into two hops.
        let req = from_loopback(&[("Forwarded", "for=\"203.0.113.7,198.51.100.1\"")]);
        assert_eq!(
            client_ip(&req, &server(trusted, "forwarded")),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn mapped_ipv4_is_normalised() {
        assert_eq!(
            normalise("::ffff:192.0.2.1".parse().unwrap()),
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
    }
}
