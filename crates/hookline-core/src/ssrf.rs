//! Which addresses a delivery may connect to.
//!
//! Refused unless allow-listed: loopback, private (RFC 1918, ULA), link-local (incl. cloud
//! metadata 169.254.169.254), CGNAT, multicast, unspecified, broadcast, documentation and other
//! reserved ranges (IPv6: IETF protocol assignments 2001::/23 with Teredo, discard-only, SRv6,
//! NAT64). IPv6 forms that carry a refused IPv4 address (mapped, compatible, translated, 6to4)
//! are refused; an allow-list entry re-opens an IPv4 address and its mapped form only (the other
//! forms reach a relay or translator, not that host).

use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Debug, Clone, Default)]
pub struct AddressPolicy {
    allow: Vec<IpNet>,
}

impl AddressPolicy {
    pub fn new(allow: Vec<IpNet>) -> Self {
        AddressPolicy { allow }
    }

    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        !is_forbidden(ip) || self.allow.iter().any(|net| net.contains(&ip))
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

pub fn is_forbidden(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, _, _] = ip.octets();
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64/10
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments
        || (a == 192 && b == 88 && ip.octets()[2] == 99) // 6to4 relay anycast (deprecated)
        || (a == 198 && (b == 18 || b == 19)) // benchmarking 198.18/15
        || a >= 240 // reserved
}

fn forbidden_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    let v4 = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (s[0] & 0xffc0) == 0xfec0 // deprecated site-local
        || s[0] == 0x2001 && s[1] == 0x0db8 // documentation
        || s[0] == 0x3fff && s[1] < 0x1000 // documentation 3fff::/20
        || s[0] == 0x2001 && s[1] < 0x0200 // IETF protocol assignments 2001::/23, Teredo included
        || s[0] == 0x0100 && s[1..4] == [0; 3] // discard-only 100::/64
        || s[0] == 0x5f00 // SRv6 segment identifiers, never global
        || s[0] == 0x0064 && s[1] == 0xff9b // NAT64 may reach internal v4
        // Forms that carry an IPv4 address are judged as that address: IPv4-compatible
        // (::a.b.c.d), IPv4-translated (::ffff:0:a.b.c.d, SIIT) and 6to4 (2002:AABB:CCDD::).
        || s[..6] == [0; 6] && forbidden_v4(v4(s[6], s[7]))
        || s[..6] == [0, 0, 0, 0, 0xffff, 0] && forbidden_v4(v4(s[6], s[7]))
        || s[0] == 0x2002 && forbidden_v4(v4(s[1], s[2]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn refuses_every_internal_range() {
        for s in [
            "10.0.0.1",
            "10.255.255.255",
            "172.16.0.1",
            "172.31.255.254",
            "192.168.1.1",
            "100.64.0.1",
            "100.127.255.254",
            "169.254.0.1",
            "169.254.169.254",
            "127.0.0.1",
            "127.255.255.254",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "239.255.255.250",
            "255.255.255.255",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a00:1",
            "64:ff9b:1::a00:1",
            "::ffff:0:7f00:1",
            "::ffff:0:a00:1",
            "2002:7f00:1::",
            "2002:a9fe:a9fe::1",
            "2002:c0a8:101::",
            "2001::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:2::1",
            "2001:10::1",
            "100::1",
            "3fff::1",
            "5f00::1",
            "192.88.99.1",
        ] {
            assert!(is_forbidden(ip(s)), "{s} allowed");
            assert!(!AddressPolicy::default().permits(ip(s)), "{s} permitted");
        }
    }

    #[test]
    fn permits_public_addresses() {
        for s in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700:4700::1111",
            "::ffff:1.1.1.1",
            "2002:101:101::1",
            "2001:4860:4860::8888",
            "2a00:1450:4001::1",
            "::ffff:0:101:101",
        ] {
            assert!(!is_forbidden(ip(s)), "{s} refused");
        }
    }

    #[test]
    fn allow_list_reopens_ranges() {
        let policy = AddressPolicy::new(vec!["127.0.0.0/8".parse().unwrap()]);
        assert!(policy.permits(ip("127.0.0.1")));
        assert!(policy.permits(ip("::ffff:127.0.0.1")));
        assert!(!policy.permits(ip("10.0.0.1")));
        assert!(!policy.permits(ip("::1")));
    }
}
