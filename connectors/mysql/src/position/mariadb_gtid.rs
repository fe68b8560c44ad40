//! MariaDB GTIDs (`domain-server-sequence`) and GTID positions (the last
//! GTID of each replication domain), as the reader meets them in GTID (162)
//! and GTID_LIST (163) events and as a checkpoint stores them.
//!
//! Sits under [`crate::reader`]: every transaction's GTID event is decoded
//! here and applied to the running [`MariaGtidPos`], which becomes the
//! GTID part of the resume point after the transaction.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// One MariaDB GTID: `domain-server-sequence`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MariaGtid {
    /// Replication domain (`gtid_domain_id` of the writer).
    pub domain: u32,
    /// `server_id` of the server that wrote the transaction.
    pub server: u32,
    /// Sequence number, increasing within a domain.
    pub seq: u64,
}

impl MariaGtid {
    /// Parses `domain-server-sequence`.
    pub fn parse(text: &str) -> Option<MariaGtid> {
        let mut parts = text.trim().splitn(3, '-');
        Some(MariaGtid {
            domain: parts.next()?.parse().ok()?,
            server: parts.next()?.parse().ok()?,
            seq: parts.next()?.parse().ok()?,
        })
    }

    /// Decodes the body of a MariaDB GTID event (type 162): sequence number
    /// (8 bytes LE), domain id (4 bytes LE), flags (1 byte); the server id
    /// comes from the event header.
    pub fn from_event(server: u32, body: &[u8]) -> Option<MariaGtid> {
        MariaGtidEvent::parse(server, body).map(|event| event.gtid)
    }
}

impl fmt::Display for MariaGtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.domain, self.server, self.seq)
    }
}

/// The decoded body of a MariaDB GTID event (type 162), which opens every
/// event group (transaction or standalone DDL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MariaGtidEvent {
    /// The group's GTID.
    pub gtid: MariaGtid,
    /// `FL_*` flags (byte 12 of the body).
    pub flags: u8,
    /// Group commit id, present when [`MariaGtidEvent::FL_GROUP_COMMIT_ID`]
    /// is set.
    pub commit_id: Option<u64>,
}

impl MariaGtidEvent {
    /// The group is one statement without BEGIN/COMMIT (DDL).
    pub const FL_STANDALONE: u8 = 1;
    /// A group commit id (8 bytes LE) follows the flags.
    pub const FL_GROUP_COMMIT_ID: u8 = 2;

    /// Decodes an event body: `seq_no` u64 LE, `domain_id` u32 LE, `flags`
    /// u8, then the commit id when flagged. `None` when too short.
    pub fn parse(server: u32, body: &[u8]) -> Option<MariaGtidEvent> {
        let seq = u64::from_le_bytes(body.get(0..8)?.try_into().ok()?);
        let domain = u32::from_le_bytes(body.get(8..12)?.try_into().ok()?);
        let flags = *body.get(12)?;
        let commit_id = if flags & Self::FL_GROUP_COMMIT_ID != 0 {
            Some(u64::from_le_bytes(body.get(13..21)?.try_into().ok()?))
        } else {
            None
        };
        Some(MariaGtidEvent {
            gtid: MariaGtid {
                domain,
                server,
                seq,
            },
            flags,
            commit_id,
        })
    }

    /// Whether the group is a standalone statement (no BEGIN follows).
    pub fn standalone(&self) -> bool {
        self.flags & Self::FL_STANDALONE != 0
    }
}

/// A MariaDB GTID position: the last GTID applied in each replication
/// domain (what `@@gtid_slave_pos` / `@slave_connect_state` hold). Text form
/// `0-1-17,1-2-5`, also in JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MariaGtidPos(pub BTreeMap<u32, MariaGtid>);

impl MariaGtidPos {
    /// Parses `0-1-17,1-2-5` (empty text: the empty position). One GTID per
    /// domain.
    pub fn parse(text: &str) -> Option<MariaGtidPos> {
        let mut pos = MariaGtidPos::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let gtid = MariaGtid::parse(part)?;
            if pos.0.insert(gtid.domain, gtid).is_some() {
                return None;
            }
        }
        Some(pos)
    }

    /// Decodes the body of a GTID_LIST event (type 163): a count (u32 LE,
    /// the low 28 bits; the high 4 are flags), then per GTID its domain
    /// (u32 LE), server (u32 LE) and sequence (u64 LE). A binlog file opens
    /// with one: the position of everything written before the file.
    pub fn from_gtid_list_event(body: &[u8]) -> Option<MariaGtidPos> {
        let count = u32::from_le_bytes(body.get(0..4)?.try_into().ok()?) & 0x0fff_ffff;
        let mut pos = MariaGtidPos::default();
        for i in 0..count as usize {
            let at = 4 + i * 16;
            let entry = body.get(at..at + 16)?;
            let gtid = MariaGtid {
                domain: u32::from_le_bytes(entry[0..4].try_into().ok()?),
                server: u32::from_le_bytes(entry[4..8].try_into().ok()?),
                seq: u64::from_le_bytes(entry[8..16].try_into().ok()?),
            };
            pos.apply(gtid);
        }
        Some(pos)
    }

    /// The position after `gtid` was applied: it replaces its domain's entry.
    pub fn apply(&mut self, gtid: MariaGtid) {
        self.0.insert(gtid.domain, gtid);
    }

    /// Whether `gtid` is at or before this position in its domain (already
    /// applied, given sequence numbers increase within a domain).
    pub fn includes(&self, gtid: &MariaGtid) -> bool {
        self.0.get(&gtid.domain).is_some_and(|g| g.seq >= gtid.seq)
    }

    /// The union of two positions: per domain, the GTID with the higher
    /// sequence number.
    pub fn merged(&self, other: &MariaGtidPos) -> MariaGtidPos {
        let mut out = self.clone();
        for gtid in other.0.values() {
            if !out.includes(gtid) {
                out.apply(*gtid);
            }
        }
        out
    }
}

/// Positions are ordered when one is at or after the other in every domain
/// (a domain missing from a position is before any GTID of it); they are
/// unordered when each is ahead somewhere, or when they name different
/// servers for the same sequence number.
impl PartialOrd for MariaGtidPos {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        if self == other {
            return Some(Ordering::Equal);
        }
        let (mut less, mut greater) = (false, false);
        let domains = self.0.keys().chain(other.0.keys());
        for domain in domains {
            match (self.0.get(domain), other.0.get(domain)) {
                (Some(a), Some(b)) => match a.seq.cmp(&b.seq) {
                    Ordering::Less => less = true,
                    Ordering::Greater => greater = true,
                    Ordering::Equal if a.server != b.server => return None,
                    Ordering::Equal => {}
                },
                (Some(_), None) => greater = true,
                (None, Some(_)) => less = true,
                (None, None) => {}
            }
        }
        match (less, greater) {
            (true, false) => Some(Ordering::Less),
            (false, true) => Some(Ordering::Greater),
            _ => None,
        }
    }
}

impl fmt::Display for MariaGtidPos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.values().map(MariaGtid::to_string).collect();
        f.write_str(&parts.join(","))
    }
}

impl TryFrom<String> for MariaGtidPos {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        MariaGtidPos::parse(&text)
            .ok_or_else(|| format!("`{text}` is not a MariaDB GTID position like 0-1-17,1-2-5"))
    }
}

impl From<MariaGtidPos> for String {
    fn from(pos: MariaGtidPos) -> String {
        pos.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gtid(text: &str) -> MariaGtid {
        MariaGtid::parse(text).unwrap()
    }

    #[test]
    fn positions_parse_display_and_apply() {
        let mut pos = MariaGtidPos::parse("0-1-17, 1-2-5").unwrap();
        assert_eq!(pos.to_string(), "0-1-17,1-2-5");
        pos.apply(gtid("0-3-18"));
        assert_eq!(pos.to_string(), "0-3-18,1-2-5");
        assert_eq!(MariaGtidPos::parse("").unwrap().to_string(), "");
        assert_eq!(MariaGtidPos::parse("0-1-1,0-1-2"), None, "one per domain");
        assert_eq!(MariaGtidPos::parse("0-1"), None);
        assert_eq!(MariaGtidPos::parse("0-1-x"), None);
        assert!(pos.includes(&gtid("0-1-18")) && !pos.includes(&gtid("0-1-19")));
        assert!(!pos.includes(&gtid("7-1-1")), "unknown domain");
    }

    #[test]
    fn positions_order_per_domain_and_merge() {
        let a = MariaGtidPos::parse("0-1-5,1-1-3").unwrap();
        let b = MariaGtidPos::parse("0-1-6,1-1-3").unwrap();
        let c = MariaGtidPos::parse("0-1-4,1-1-9").unwrap();
        assert!(a < b);
        assert!(b > a);
        assert_eq!(a.partial_cmp(&c), None, "each ahead in one domain");
        assert!(MariaGtidPos::parse("0-1-5").unwrap() < a, "missing domain");
        assert_eq!(
            MariaGtidPos::parse("0-1-5")
                .unwrap()
                .partial_cmp(&MariaGtidPos::parse("0-2-5").unwrap()),
            None,
            "same sequence, different servers: diverged"
        );
        assert_eq!(a.merged(&c).to_string(), "0-1-5,1-1-9");
    }

    #[test]
    fn gtid_event_bodies_decode() {
        // seq 0x0102 (LE), domain 7 (LE), flags STANDALONE.
        let body = [2, 1, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 1];
        let event = MariaGtidEvent::parse(9, &body).unwrap();
        assert_eq!(event.gtid, gtid("7-9-258"));
        assert!(event.standalone());
        assert_eq!(event.commit_id, None);
        assert_eq!(MariaGtid::from_event(9, &body[..5]), None);
        // With a group commit id.
        let mut body = vec![5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
        body.extend_from_slice(&77u64.to_le_bytes());
        let event = MariaGtidEvent::parse(1, &body).unwrap();
        assert_eq!((event.commit_id, event.standalone()), (Some(77), false));
        assert_eq!(MariaGtidEvent::parse(1, &body[..15]), None);
    }

    #[test]
    fn gtid_list_event_bodies_decode() {
        // The MariaDB KB example: one GTID 0-10124-3584.
        let body = [
            0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x8c, 0x27, 0x00, 0x00, 0x00, 0x0e,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        ];
        let pos = MariaGtidPos::from_gtid_list_event(&body).unwrap();
        assert_eq!(pos.to_string(), "0-10124-3584");
        assert_eq!(MariaGtidPos::from_gtid_list_event(&body[..10]), None);
        let empty = MariaGtidPos::from_gtid_list_event(&[0, 0, 0, 0]).unwrap();
        assert!(empty.0.is_empty());
    }

    #[test]
    fn positions_are_text_in_json() {
        let pos = MariaGtidPos::parse("0-1-17,1-2-5").unwrap();
        let json = serde_json::to_string(&pos).unwrap();
        assert_eq!(json, r#""0-1-17,1-2-5""#);
        assert_eq!(serde_json::from_str::<MariaGtidPos>(&json).unwrap(), pos);
        assert!(serde_json::from_str::<MariaGtidPos>(r#""0-1""#).is_err());
    }
}
