//! CIDR blocks in allow-lists: parseable, with host bits clear.

use ipnet::IpNet;

use crate::tokens::issue::ascii_quote;

pub fn check(value: &str) -> Result<(), String> {
    let net: IpNet = value
        .parse()
        .map_err(|_| format!("`{}` is not a CIDR", ascii_quote(value)))?;
    if net.trunc() != net {
        return Err(format!("`{value}` has host bits set (use {})", net.trunc()));
    }
    Ok(())
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
