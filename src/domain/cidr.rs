//! CIDR blocks in allow-lists: parseable, with host bits clear.

use ipnet::IpNet;

use crate::domain::text::ascii_quote;

pub fn check(value: &str) -> Result<(), String> {
    let net: IpNet = value
        .parse()
        .map_err(|_| format!("`{}` is not a CIDR", ascii_quote(value)))?;
    if net.trunc() != net {
        return Err(format!("`{value}` has host bits set (use {})", net.trunc()));
    }
    Ok(())
}

/// A stored list of CIDRs (JSON text, validated when written).
pub fn parse_list(json: &str) -> Vec<IpNet> {
    let list: Vec<String> = serde_json::from_str(json).unwrap_or_default();
    list.iter().filter_map(|n| n.parse().ok()).collect()
}

/// Whether `ip` is known and inside one of `nets`.
pub fn admits(nets: &[IpNet], ip: Option<std::net::IpAddr>) -> bool {
    ip.is_some_and(|ip| nets.iter().any(|n| n.contains(&ip)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn host_bits_must_be_clear() {
        assert!(super::check("10.0.0.0/8").is_ok());
        assert!(super::check("2001:db8::/32").is_ok());
        assert!(super::check("10.0.0.1/8").is_err());
        assert!(super::check("300.0.0.0/8").is_err());
    }
}
