//! `{"cidr": "10.0.0.0/24"}`: an inclusive range of IPv4 or IPv6 addresses.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The addresses a CIDR block covers, as inclusive integer bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpRange {
    /// An IPv4 block.
    V4 {
        /// First address.
        first: u32,
        /// Last address.
        last: u32,
    },
    /// An IPv6 block.
    V6 {
        /// First address.
        first: u128,
        /// Last address.
        last: u128,
    },
}

impl IpRange {
    /// Parses `address/prefix-length`.
    pub fn parse(text: &str) -> Result<IpRange, String> {
        let bad = || format!("{text:?} is not a CIDR block such as 10.0.0.0/24 or 2001:db8::/32");
        let (address, bits) = text.split_once('/').ok_or_else(bad)?;
        if bits.is_empty() || !bits.bytes().all(|b| b.is_ascii_digit()) || bits.len() > 3 {
            return Err(bad());
        }
        let bits: u32 = bits.parse().map_err(|_| bad())?;
        if let Ok(v4) = address.parse::<Ipv4Addr>() {
            if bits > 32 {
                return Err(bad());
            }
            let host = u32::MAX.checked_shr(bits).unwrap_or(0);
            let base = u32::from(v4) & !host;
            return Ok(IpRange::V4 {
                first: base,
                last: base | host,
            });
        }
        if let Ok(v6) = address.parse::<Ipv6Addr>() {
            if bits > 128 {
                return Err(bad());
            }
            let host = u128::MAX.checked_shr(bits).unwrap_or(0);
            let base = u128::from(v6) & !host;
            return Ok(IpRange::V6 {
                first: base,
                last: base | host,
            });
        }
        Err(bad())
    }

    /// Whether a string is an address inside this block.
    pub fn contains(&self, value: &str) -> bool {
        match (self, value.parse::<IpAddr>()) {
            (IpRange::V4 { first, last }, Ok(IpAddr::V4(a))) => {
                (*first..=*last).contains(&u32::from(a))
            }
            (IpRange::V6 { first, last }, Ok(IpAddr::V6(a))) => {
                (*first..=*last).contains(&u128::from(a))
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_blocks_and_rejects_garbage() {
        let r = IpRange::parse("10.0.0.0/24").unwrap();
        assert!(r.contains("10.0.0.255"));
        assert!(!r.contains("10.0.1.0"));
        assert!(!r.contains("10.0.0.256"));
        let r6 = IpRange::parse("2001:db8:1234:1a00::/64").unwrap();
        assert!(r6.contains("2001:0db8:1234:1a00:0000:0000:0000:0000"));
        assert!(!r6.contains("2001:0db8:123f:1a01:0000:0000:0000:0000"));
        assert!(IpRange::parse("0.0.0.0/0").unwrap().contains("1.2.3.4"));
        for bad in [
            "bad-filter",
            "xx.11.xx/8",
            "bad-/64filter",
            "10.0.0.0/33",
            "10.0.0.0",
            "::/129",
            "10.0.0.0/-1",
        ] {
            assert!(IpRange::parse(bad).is_err(), "{bad}");
        }
    }
}
