//! Outbound safety: targets must not reach into the server's own network unless the
//! operator allows it. Loopback, private, link-local, unique-local, unspecified and
//! multicast addresses are refused unless an allowed CIDR covers them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An IP network, `addr/len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    len: u8,
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Cidr, String> {
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or CIDR"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match len {
            None => max,
            Some(l) => l
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|l| *l <= max)
                .ok_or_else(|| format!("{s:?}: prefix length must be 0 to {max}"))?,
        };
        Ok(Cidr { addr, len })
    }
}

impl Cidr {
    /// Compared in the IPv6 space, IPv4 as IPv4-mapped (`::ffff:a.b.c.d`), so an IPv4
    /// network and the same network written IPv4-mapped are the same set.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let (net, len) = match self.addr {
            IpAddr::V4(v4) => (v4.to_ipv6_mapped(), self.len.saturating_add(96)),
            IpAddr::V6(v6) => (v6, self.len),
        };
        let ip = match ip {
            IpAddr::V4(v4) => v4.to_ipv6_mapped(),
            IpAddr::V6(v6) => v6,
        };
        let len = u32::from(len.min(128));
        let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
        u128::from(net) & mask == u128::from(ip) & mask
    }
}

/// The IPv4 address an IPv6 address stands for, where routing it would reach that IPv4
/// address: IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`, deprecated but
/// still routed by some stacks), NAT64 (`64:ff9b::/96`) and 6to4 (`2002:AABB:CCDD::/48`).
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(tail),
        // `::` and `::1` are IPv6's own unspecified and loopback addresses.
        [0, 0, 0, 0, 0, 0, _, _] if u128::from(v6) > 1 => Some(tail),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(tail),
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::new(
            (hi >> 8) as u8,
            hi as u8,
            (lo >> 8) as u8,
            lo as u8,
        )),
        _ => None,
    }
}

fn internal_v4(v4: Ipv4Addr) -> bool {
    let [a, b, c, _] = v4.octets();
    v4.is_loopback()
        || v4.is_private()
        || v4.is_link_local()
        || v4.is_unspecified()
        || v4.is_multicast()
        || v4.is_broadcast()
        || a == 0 // 0.0.0.0/8, "this network"
        || (a == 100 && (b & 0xc0) == 64) // 100.64.0.0/10, carrier-grade NAT
        || (a == 192 && b == 0 && c == 0) // 192.0.0.0/24, IETF protocol assignments
        || (a == 198 && (b & 0xfe) == 18) // 198.18.0.0/15, benchmarking
        || a >= 240 // 240.0.0.0/4, reserved
}

fn internal_v6(v6: Ipv6Addr) -> bool {
    let first = v6.segments()[0];
    v6.is_loopback()
        || v6.is_unspecified()
        || v6.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (first & 0xffc0) == 0xfe80 // link local fe80::/10
        || (first & 0xffc0) == 0xfec0 // site local fec0::/10 (deprecated)
        || embedded_v4(v6).is_some_and(internal_v4)
}

/// Which addresses targets may connect to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    pub allow: Vec<Cidr>,
}

impl AddressPolicy {
    /// `Err(reason)` when connecting to `ip` is refused.
    pub fn check(&self, ip: IpAddr) -> Result<(), String> {
        if self.allow.iter().any(|c| c.contains(ip)) {
            return Ok(());
        }
        let internal = match ip {
            IpAddr::V4(v4) => internal_v4(v4),
            IpAddr::V6(v6) => internal_v6(v6),
        };
        if internal {
            Err(format!(
                "refused to connect to {ip}: loopback, private and link-local addresses need --target-allow-cidr"
            ))
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn refuses_internal_addresses_by_default() {
        let p = AddressPolicy::default();
        for bad in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "224.0.0.1",
            "::127.0.0.1",
            "::10.0.0.1",
            "64:ff9b::7f00:1",
            "2002:7f00:1::",
            "2002:a9fe:a9fe::1",
            "fec0::1",
            "0.1.2.3",
            "198.18.0.1",
            "240.0.0.1",
        ] {
            assert!(p.check(ip(bad)).is_err(), "{bad}");
        }
        for good in [
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700::1111",
            "172.32.0.1",
            "::8.8.8.8",
            "2002:808:808::1",
        ] {
            assert_eq!(p.check(ip(good)), Ok(()), "{good}");
        }
    }

    #[test]
    fn allowed_cidrs_open_exactly_their_range() {
        let p = AddressPolicy {
            allow: vec![
                "127.0.0.0/8".parse().unwrap(),
                "fd00::/8".parse().unwrap(),
                "10.0.0.5".parse().unwrap(),
            ],
        };
        assert_eq!(p.check(ip("127.5.5.5")), Ok(()));
        assert_eq!(p.check(ip("::ffff:127.0.0.1")), Ok(()));
        assert_eq!(p.check(ip("fdff::1")), Ok(()));
        assert_eq!(p.check(ip("10.0.0.5")), Ok(()));
        assert!(p.check(ip("10.0.0.6")).is_err());
        assert!(p.check(ip("::1")).is_err());
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("nope".parse::<Cidr>().is_err());
        assert!(
            "10.0.0.0/7"
                .parse::<Cidr>()
                .unwrap()
                .contains(ip("11.255.255.255"))
        );
    }

    #[test]
    fn mapped_and_short_prefixes_never_panic() {
        // An IPv4-mapped allow entry used to index past the end of an IPv4 address.
        let mapped = AddressPolicy {
            allow: vec!["::ffff:127.0.0.1/128".parse().unwrap()],
        };
        assert_eq!(mapped.check(ip("127.0.0.1")), Ok(()));
        assert_eq!(mapped.check(ip("::ffff:127.0.0.1")), Ok(()));
        assert!(mapped.check(ip("127.0.0.2")).is_err());
        let mapped_net = AddressPolicy {
            allow: vec!["::ffff:10.0.0.0/104".parse().unwrap()],
        };
        assert_eq!(mapped_net.check(ip("10.9.9.9")), Ok(()));
        assert!(mapped_net.check(ip("192.168.0.1")).is_err());
        for any in ["0.0.0.0/0", "::/0"] {
            let all = AddressPolicy {
                allow: vec![any.parse().unwrap()],
            };
            for addr in ["127.0.0.1", "::1", "10.0.0.1", "fd00::1"] {
                let expected = any == "::/0" || addr.contains('.');
                assert_eq!(all.check(ip(addr)).is_ok(), expected, "{any} {addr}");
            }
        }
    }
}
