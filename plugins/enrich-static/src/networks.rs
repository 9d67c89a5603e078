//! Network zones: a CIDR table that names the zone, site and owner of the
//! addresses in an event's IP fields, by longest-prefix match (IPv4 and IPv6).

use crate::doc::{Doc, Node};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

/// `networks` in the config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworksConfig {
    /// IP field (a column, or a dotted path into `unmapped`) → the prefix of
    /// the keys written for it: `<prefix>_zone`, `<prefix>_site`,
    /// `<prefix>_owner`. Default: `src_endpoint_ip` → `src_endpoint`,
    /// `dst_endpoint_ip` → `dst_endpoint`.
    #[serde(default = "default_fields")]
    pub fields: BTreeMap<String, String>,
    /// The table; the most specific network containing an address wins.
    pub cidrs: Vec<CidrConfig>,
}

fn default_fields() -> BTreeMap<String, String> {
    [("src_endpoint_ip", "src_endpoint"), ("dst_endpoint_ip", "dst_endpoint")]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// One network of the table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CidrConfig {
    /// `10.0.0.0/8`, `2001:db8::/32`, or one address.
    pub cidr: String,
    /// The network zone (`corp`, `dmz`, `prod-vpc`).
    pub zone: Option<String>,
    /// Where it is (`fra1`).
    pub site: Option<String>,
    /// Who runs it (`netops`).
    pub owner: Option<String>,
}

pub struct Networks {
    fields: Vec<(String, String)>,
    /// Per family (v4, v6): prefix lengths present, longest first, and the
    /// networks by (length, masked address).
    lengths: [Vec<u8>; 2],
    table: HashMap<(bool, u8, u128), CidrConfig>,
}

/// An address as (is v6, 128-bit value); v4-mapped v6 addresses are v4.
fn bits(ip: IpAddr) -> (bool, u128) {
    match ip {
        IpAddr::V4(v4) => (false, u128::from(u32::from(v4))),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => (false, u128::from(u32::from(v4))),
            None => (true, u128::from(v6)),
        },
    }
}

fn mask(value: u128, len: u8, v6: bool) -> u128 {
    let width = if v6 { 128 } else { 32 };
    if len == 0 { 0 } else { value & (u128::MAX << (width - u32::from(len))) & (u128::MAX >> (128 - width)) }
}

/// Reads an address as logs write it: `10.0.0.1`, `[2001:db8::1]`,
/// `fe80::1%eth0`, `10.0.0.1:443`, `[::1]:8080`.
pub fn parse_ip(text: &str) -> Option<IpAddr> {
    let t = text.trim();
    if let Ok(ip) = t.parse() {
        return Some(ip);
    }
    let t = match t.strip_prefix('[') {
        Some(rest) => rest.split(']').next()?,
        None if t.matches(':').count() == 1 => t.split(':').next()?,
        None => t,
    };
    t.split('%').next()?.parse().ok()
}

impl Networks {
    pub fn new(config: NetworksConfig) -> Result<Self, String> {
        let mut table = HashMap::new();
        let mut lengths: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
        for entry in config.cidrs {
            let (addr, len) = match entry.cidr.split_once('/') {
                Some((a, l)) => (a, Some(l)),
                None => (entry.cidr.as_str(), None),
            };
            let bad = || {
                format!(
                    "enrich-static: `networks.cidrs`: `{}` is not a network (10.0.0.0/8, 2001:db8::/32)",
                    entry.cidr
                )
            };
            let ip: IpAddr = addr.trim().parse().map_err(|_| bad())?;
            let v6 = ip.is_ipv6();
            let width = if v6 { 128 } else { 32 };
            let len: u8 = match len {
                Some(l) => l.trim().parse().ok().filter(|l| *l <= width).ok_or_else(bad)?,
                None => width,
            };
            if entry.zone.is_none() && entry.site.is_none() && entry.owner.is_none() {
                return Err(format!(
                    "enrich-static: `networks.cidrs`: `{}` sets none of zone, site, owner",
                    entry.cidr
                ));
            }
            let value = match ip {
                IpAddr::V4(v4) => u128::from(u32::from(v4)),
                IpAddr::V6(v6) => u128::from(v6),
            };
            let lens = &mut lengths[usize::from(v6)];
            if !lens.contains(&len) {
                lens.push(len);
            }
            table.insert((v6, len, mask(value, len, v6)), entry);
        }
        for lens in &mut lengths {
            lens.sort_unstable_by(|a, b| b.cmp(a));
        }
        Ok(Networks { fields: config.fields.into_iter().collect(), lengths, table })
    }

    /// The most specific network holding `ip`.
    pub fn lookup(&self, ip: IpAddr) -> Option<&CidrConfig> {
        let (v6, value) = bits(ip);
        self.lengths[usize::from(v6)].iter().find_map(|&len| self.table.get(&(v6, len, mask(value, len, v6))))
    }

    pub fn apply(&self, event: &mut Doc) {
        for (field, prefix) in &self.fields {
            let Ok(Some(Node::String(text))) = event.top().path(field) else { continue };
            let Some(network) = parse_ip(text).and_then(|ip| self.lookup(ip)) else { continue };
            for (name, value) in [("zone", &network.zone), ("site", &network.site), ("owner", &network.owner)] {
                let key = format!("{prefix}_{name}");
                if let Some(value) = value
                    && event.absent(&key)
                {
                    event.insert(&key, value.clone().into());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn networks() -> Networks {
        let config: NetworksConfig = serde_json::from_value(json!({"cidrs": [
            {"cidr": "10.0.0.0/8", "zone": "corp", "owner": "netops"},
            {"cidr": "10.20.0.0/16", "zone": "prod", "site": "fra1"},
            {"cidr": "10.20.30.40", "zone": "bastion"},
            {"cidr": "0.0.0.0/0", "zone": "internet"},
            {"cidr": "2001:db8::/32", "zone": "v6-lab"},
            {"cidr": "2001:db8:1::/48", "zone": "v6-prod", "site": "ams2"},
        ]}))
        .unwrap();
        Networks::new(config).unwrap()
    }

    #[test]
    fn longest_prefix_wins() {
        let n = networks();
        let zone = |ip: &str| n.lookup(parse_ip(ip).unwrap()).and_then(|c| c.zone.clone());
        assert_eq!(zone("10.1.2.3").as_deref(), Some("corp"));
        assert_eq!(zone("10.20.1.1").as_deref(), Some("prod"));
        assert_eq!(zone("10.20.30.40").as_deref(), Some("bastion"));
        assert_eq!(zone("203.0.113.9").as_deref(), Some("internet"));
        assert_eq!(zone("2001:db8:ffff::1").as_deref(), Some("v6-lab"));
        assert_eq!(zone("2001:db8:1:2::1").as_deref(), Some("v6-prod"));
        assert_eq!(zone("2001:dead::1"), None);
        // v4-mapped v6, brackets, zones and ports as logs write them
        assert_eq!(zone("::ffff:10.20.1.1").as_deref(), Some("prod"));
        assert_eq!(zone("[2001:db8:1::5]:443").as_deref(), Some("v6-prod"));
        assert_eq!(zone("10.1.2.3:22").as_deref(), Some("corp"));
        assert_eq!(zone("fe80::1%eth0"), None);
    }

    #[test]
    fn writes_zone_site_owner_for_each_field_without_overwriting() {
        let n = networks();
        let event = json!({"src_endpoint_ip": "10.20.1.1", "dst_endpoint_ip": "2001:db8:1::5",
                           "src_endpoint_owner": "kept"});
        let event = crate::doc::edit(event, |doc| n.apply(doc));
        assert_eq!(event["src_endpoint_zone"], "prod");
        assert_eq!(event["src_endpoint_site"], "fra1");
        assert_eq!(event["src_endpoint_owner"], "kept");
        assert_eq!(event["dst_endpoint_zone"], "v6-prod");
        assert_eq!(event["dst_endpoint_site"], "ams2");
        assert!(event.get("dst_endpoint_owner").is_none());
    }

    #[test]
    fn bad_networks_are_rejected() {
        let bad = |cidr: &str| {
            let config: NetworksConfig =
                serde_json::from_value(json!({"cidrs": [{"cidr": cidr, "zone": "z"}]})).unwrap();
            Networks::new(config).err().unwrap()
        };
        assert!(bad("10.0.0.0/33").contains("`10.0.0.0/33`"));
        assert!(bad("corp").contains("`corp`"));
        let config: NetworksConfig = serde_json::from_value(json!({"cidrs": [{"cidr": "10.0.0.0/8"}]})).unwrap();
        assert!(Networks::new(config).err().unwrap().contains("none of zone"));
    }
}
