//! The client address every allow-list, limiter, audit record and log line
//! uses: the peer, unless the peer is a configured trusted proxy; then the
//! right-most `X-Forwarded-For` (or `Forwarded: for=`) entry that is not a
//! trusted proxy. IPv4-mapped IPv6 is normalised to IPv4. Headers from an
//! untrusted peer are ignored.

use std::net::IpAddr;

use actix_web::HttpRequest;
use ipnet::IpNet;

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

/// Parses one `Forwarded: for=` or `X-Forwarded-For` node.
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

fn forwarded_chain(req: &HttpRequest) -> Vec<IpAddr> {
    let headers = req.headers();
    let mut chain = Vec::new();
    if headers.contains_key("forwarded") {
        for value in headers.get_all("forwarded") {
            let Ok(value) = value.to_str() else { continue };
            for element in value.split(',') {
                for pair in element.split(';') {
                    if let Some((name, node)) = pair.split_once('=')
                        && name.trim().eq_ignore_ascii_case("for")
                        && let Some(ip) = parse_node(node)
                    {
                        chain.push(ip);
                    }
                }
            }
        }
    } else {
        for value in headers.get_all("x-forwarded-for") {
            let Ok(value) = value.to_str() else { continue };
            chain.extend(value.split(',').filter_map(parse_node));
        }
    }
    chain
}

/// The address of the client that sent `req`.
pub fn client_ip(req: &HttpRequest, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = normalise(req.peer_addr()?.ip());
    if trusted.is_empty() || !is_trusted(peer, trusted) {
        return Some(peer);
    }
    let mut client = peer;
    for hop in forwarded_chain(req).into_iter().rev() {
        let hop = normalise(hop);
        client = hop;
        if !is_trusted(hop, trusted) {
            break;
        }
    }
    Some(client)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn untrusted_peers_headers_are_ignored() {
        let req = TestRequest::default()
            .peer_addr("203.0.113.9:1234".parse().unwrap())
            .insert_header(("X-Forwarded-For", "10.9.9.9"))
            .to_http_request();
        assert_eq!(
            client_ip(&req, &nets(&["127.0.0.0/8"])),
            Some("203.0.113.9".parse().unwrap())
        );
    }

    #[test]
    fn trusted_peer_yields_rightmost_untrusted_hop() {
        let req = TestRequest::default()
            .peer_addr("127.0.0.1:1234".parse().unwrap())
            .insert_header(("X-Forwarded-For", "198.51.100.1, 203.0.113.7, 10.0.0.2"))
            .to_http_request();
        assert_eq!(
            client_ip(&req, &nets(&["127.0.0.0/8", "10.0.0.0/8"])),
            Some("203.0.113.7".parse().unwrap())
        );
        let req = TestRequest::default()
            .peer_addr("127.0.0.1:1234".parse().unwrap())
            .insert_header(("Forwarded", "for=198.51.100.1, for=\"[2001:db8::1]:4711\""))
            .to_http_request();
        assert_eq!(
            client_ip(&req, &nets(&["127.0.0.0/8"])),
            Some("2001:db8::1".parse().unwrap())
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
