//! MySQL GTID sets (`uuid:1-5:7-9,uuid2:1-3`): what `@@gtid_executed`
//! holds, what a checkpoint of a MySQL source stores, and what
//! `COM_BINLOG_DUMP_GTID` sends (as the binary SID block).
//!
//! Sits under [`crate::reader`]: every MySQL GTID event (33) adds its
//! transaction here; a GTID-based resume sends the set to the server, which
//! then streams every transaction not in it.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A MySQL GTID set: per server UUID (lower-case text), the executed
/// transaction numbers as sorted, disjoint, non-adjacent closed intervals.
/// Text form in JSON too.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MysqlGtidSet(pub BTreeMap<String, Vec<(u64, u64)>>);

impl MysqlGtidSet {
    /// Parses `uuid:1-5:7-9,uuid2:3` (whitespace and newlines between parts,
    /// as `@@gtid_executed` prints them, are allowed; empty text is the
    /// empty set). Tagged GTIDs (MySQL 8.4 `uuid:tag:1-5`) are refused.
    pub fn parse(text: &str) -> Option<MysqlGtidSet> {
        let mut set = MysqlGtidSet::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let mut pieces = part.split(':');
            let uuid = pieces.next()?.trim().to_ascii_lowercase();
            uuid_bytes(&uuid)?;
            for interval in pieces {
                let (start, end) = match interval.split_once('-') {
                    Some((a, b)) => (a.parse().ok()?, b.parse().ok()?),
                    None => {
                        let n = interval.parse().ok()?;
                        (n, n)
                    }
                };
                if start == 0 || end < start {
                    return None;
                }
                set.add_interval(&uuid, start, end);
            }
        }
        Some(set)
    }

    /// Adds transaction `gno` of server `uuid` (the set after applying
    /// `uuid:gno`).
    pub fn add(&mut self, uuid: &str, gno: u64) {
        self.add_interval(uuid, gno, gno);
    }

    fn add_interval(&mut self, uuid: &str, start: u64, end: u64) {
        let intervals = self.0.entry(uuid.to_ascii_lowercase()).or_default();
        intervals.push((start, end));
        intervals.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(intervals.len());
        for &(s, e) in intervals.iter() {
            match merged.last_mut() {
                Some(last) if s <= last.1.saturating_add(1) => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        *intervals = merged;
    }

    /// Whether transaction `gno` of `uuid` is in the set.
    pub fn contains(&self, uuid: &str, gno: u64) -> bool {
        self.0
            .get(&uuid.to_ascii_lowercase())
            .is_some_and(|iv| iv.iter().any(|&(s, e)| s <= gno && gno <= e))
    }

    /// The SID block of `COM_BINLOG_DUMP_GTID` (MySQL's `Gtid_set::encode`):
    ///
    /// ```text
    /// n_sids        u64 LE
    /// per SID:      uuid (16 bytes, in text order)
    ///               n_intervals u64 LE
    ///               per interval: start u64 LE (inclusive), end u64 LE (exclusive)
    /// ```
    ///
    /// SIDs in ascending UUID order, intervals ascending.
    pub fn to_sid_block(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.0.len() * 40);
        out.extend_from_slice(&(self.0.len() as u64).to_le_bytes());
        for (uuid, intervals) in &self.0 {
            // Every key was validated on the way in.
            out.extend_from_slice(&uuid_bytes(uuid).unwrap_or([0; 16]));
            out.extend_from_slice(&(intervals.len() as u64).to_le_bytes());
            for &(start, end) in intervals {
                out.extend_from_slice(&start.to_le_bytes());
                out.extend_from_slice(&end.saturating_add(1).to_le_bytes());
            }
        }
        out
    }

    /// Decodes a SID block (the inverse of [`MysqlGtidSet::to_sid_block`]);
    /// `None` when truncated or malformed.
    pub fn from_sid_block(block: &[u8]) -> Option<MysqlGtidSet> {
        let mut rest = block;
        let mut take = |n: usize| -> Option<&[u8]> {
            let (head, tail) = rest.split_at_checked(n)?;
            rest = tail;
            Some(head)
        };
        let u64_at = |bytes: &[u8]| bytes.try_into().ok().map(u64::from_le_bytes);
        let n_sids = u64_at(take(8)?)?;
        let mut set = MysqlGtidSet::default();
        for _ in 0..n_sids {
            let uuid = format_uuid(take(16)?.try_into().ok()?);
            let n_intervals = u64_at(take(8)?)?;
            for _ in 0..n_intervals {
                let start = u64_at(take(8)?)?;
                let end = u64_at(take(8)?)?;
                if start == 0 || end <= start {
                    return None;
                }
                set.add_interval(&uuid, start, end - 1);
            }
        }
        rest.is_empty().then_some(set)
    }

    /// The set as the driver's `Sid`s, for
    /// `BinlogStreamRequest::with_gtid_set` (the driver serializes them into
    /// the block [`MysqlGtidSet::to_sid_block`] describes).
    pub fn to_sids(&self) -> Vec<mysql_async::Sid<'static>> {
        self.0
            .iter()
            .map(|(uuid, intervals)| {
                mysql_async::Sid::new(uuid_bytes(uuid).unwrap_or([0; 16])).with_intervals(
                    intervals
                        .iter()
                        .map(|&(s, e)| mysql_async::GnoInterval::new(s, e.saturating_add(1)))
                        .collect(),
                )
            })
            .collect()
    }
}

impl fmt::Display for MysqlGtidSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|(uuid, intervals)| {
                let iv: Vec<String> = intervals
                    .iter()
                    .map(|&(s, e)| {
                        if s == e {
                            s.to_string()
                        } else {
                            format!("{s}-{e}")
                        }
                    })
                    .collect();
                format!("{uuid}:{}", iv.join(":"))
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

impl TryFrom<String> for MysqlGtidSet {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        MysqlGtidSet::parse(&text)
            .ok_or_else(|| format!("`{text}` is not a MySQL GTID set like uuid:1-5:7,uuid2:1-3"))
    }
}

impl From<MysqlGtidSet> for String {
    fn from(set: MysqlGtidSet) -> String {
        set.to_string()
    }
}

/// The 16 bytes of a UUID in `8-4-4-4-12` hex text form.
pub fn uuid_bytes(text: &str) -> Option<[u8; 16]> {
    let groups: Vec<&str> = text.split('-').collect();
    if groups.iter().map(|g| g.len()).collect::<Vec<_>>() != [8, 4, 4, 4, 12] {
        return None;
    }
    let hex: String = groups.concat();
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// A UUID's 16 bytes as lower-case `8-4-4-4-12` text.
pub fn format_uuid(bytes: &[u8; 16]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const U1: &str = "3E11FA47-71CA-11E1-9E33-C80AA9429562";
    const U2: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429563";

    #[test]
    fn sets_parse_display_add_contains() {
        let mut set = MysqlGtidSet::parse(&format!("{U1}:1-5:7-9,\n{U2}:3")).unwrap();
        assert_eq!(
            set.to_string(),
            "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:7-9,3e11fa47-71ca-11e1-9e33-c80aa9429563:3"
        );
        set.add(U1, 6);
        assert_eq!(
            set.0[&U1.to_ascii_lowercase()],
            vec![(1, 9)],
            "6 joins the intervals"
        );
        assert!(set.contains(U1, 9) && !set.contains(U1, 10));
        set.add(U2, 1);
        assert_eq!(set.0[U2], vec![(1, 1), (3, 3)], "2 is still missing");
        assert_eq!(MysqlGtidSet::parse("").unwrap(), MysqlGtidSet::default());
        assert_eq!(MysqlGtidSet::parse("not-a-uuid:1"), None);
        assert_eq!(
            MysqlGtidSet::parse("3e11fa47-71ca-11e1-9e33-c80aa942956z:1"),
            None
        );
        assert_eq!(MysqlGtidSet::parse(&format!("{U1}:5-1")), None);
        assert_eq!(MysqlGtidSet::parse(&format!("{U1}:0")), None);
        assert_eq!(MysqlGtidSet::parse(&format!("{U1}:tag:1")), None);
    }

    #[test]
    fn uuids_round_trip() {
        let bytes = uuid_bytes(U1).unwrap();
        assert_eq!(bytes[0..4], [0x3e, 0x11, 0xfa, 0x47]);
        assert_eq!(bytes[15], 0x62);
        assert_eq!(format_uuid(&bytes), U1.to_ascii_lowercase());
        assert_eq!(uuid_bytes("3e11fa4771ca11e19e33c80aa9429562"), None);
    }

    /// The layout from the protocol documentation, written out by hand:
    /// `uuid:1-5:7` is one SID with intervals [1,6) and [7,8).
    #[test]
    fn sid_block_layout() {
        let set = MysqlGtidSet::parse(&format!("{U1}:1-5:7")).unwrap();
        let mut expected = vec![1, 0, 0, 0, 0, 0, 0, 0]; // n_sids = 1
        expected.extend_from_slice(&[
            0x3e, 0x11, 0xfa, 0x47, 0x71, 0xca, 0x11, 0xe1, 0x9e, 0x33, 0xc8, 0x0a, 0xa9, 0x42,
            0x95, 0x62,
        ]);
        expected.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 0]); // n_intervals = 2
        expected.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0]);
        expected.extend_from_slice(&[7, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(set.to_sid_block(), expected);
        assert_eq!(MysqlGtidSet::from_sid_block(&expected).unwrap(), set);
        assert_eq!(
            MysqlGtidSet::default().to_sid_block(),
            [0; 8],
            "empty set: n_sids = 0"
        );
        assert_eq!(MysqlGtidSet::from_sid_block(&expected[..30]), None);
        let mut trailing = expected.clone();
        trailing.push(0);
        assert_eq!(MysqlGtidSet::from_sid_block(&trailing), None);
    }

    #[test]
    fn sid_block_orders_sids_and_round_trips() {
        let set = MysqlGtidSet::parse(&format!("{U2}:1-3,{U1}:10:12-20")).unwrap();
        let block = set.to_sid_block();
        assert_eq!(block.len(), 8 + (16 + 8 + 16) + (16 + 8 + 2 * 16));
        assert_eq!(&block[8..24], &uuid_bytes(U1).unwrap(), "U1 sorts first");
        assert_eq!(MysqlGtidSet::from_sid_block(&block).unwrap(), set);
        let sids = set.to_sids();
        assert_eq!(sids.len(), 2);
        assert_eq!(sids[0].uuid(), uuid_bytes(U1).unwrap());
        let intervals: Vec<(u64, u64)> = sids[0]
            .intervals()
            .iter()
            .map(|i| (i.start(), i.end()))
            .collect();
        assert_eq!(intervals, [(10, 11), (12, 21)], "ends are exclusive");
    }

    #[test]
    fn sets_are_text_in_json() {
        let set = MysqlGtidSet::parse(&format!("{U2}:1-3")).unwrap();
        let json = serde_json::to_string(&set).unwrap();
        assert_eq!(json, format!("\"{U2}:1-3\""));
        assert_eq!(serde_json::from_str::<MysqlGtidSet>(&json).unwrap(), set);
    }
}
