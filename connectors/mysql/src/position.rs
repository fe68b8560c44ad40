//! Where a binlog reader is: file coordinates, MariaDB GTID positions and
//! MySQL GTID sets, and the [`MysqlResume`] point a checkpoint stores.
//!
//! Sits between the reader ([`crate::reader`]), which reports the position
//! after every committed transaction, and the daemon's checkpoint, which
//! persists it only once that transaction is durable in the lake. All three
//! forms are plain text in the checkpoint (`binlog.000042:1234`,
//! `0-1-17,1-2-5`, `3e11fa47-…:1-5:7-9`) so an operator can read and edit them.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A binlog file and a byte offset in it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BinlogFile {
    pub file: String,
    pub pos: u64,
}

impl BinlogFile {
    /// The file's sequence number (`binlog.000042` → 42): binlog files of
    /// one server are numbered in the order they were written.
    pub fn sequence(&self) -> Option<u64> {
        self.file.rsplit('.').next()?.parse().ok()
    }

    /// Parses `file:pos`.
    pub fn parse(text: &str) -> Option<BinlogFile> {
        let (file, pos) = text.rsplit_once(':')?;
        Some(BinlogFile {
            file: file.to_string(),
            pos: pos.parse().ok()?,
        })
    }
}

impl fmt::Display for BinlogFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.pos)
    }
}

impl PartialOrd for BinlogFile {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for BinlogFile {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.sequence(), &self.file, self.pos).cmp(&(other.sequence(), &other.file, other.pos))
    }
}

/// One MariaDB GTID: `domain-server-sequence`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MariaGtid {
    pub domain: u32,
    pub server: u32,
    pub seq: u64,
}

impl MariaGtid {
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
        let seq = u64::from_le_bytes(body.get(0..8)?.try_into().ok()?);
        let domain = u32::from_le_bytes(body.get(8..12)?.try_into().ok()?);
        Some(MariaGtid {
            domain,
            server,
            seq,
        })
    }
}

impl fmt::Display for MariaGtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.domain, self.server, self.seq)
    }
}

/// A MariaDB GTID position: the last GTID applied in each replication
/// domain (what `@@gtid_slave_pos` / `@slave_connect_state` hold).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MariaGtidPos(pub BTreeMap<u32, MariaGtid>);

impl MariaGtidPos {
    /// Parses `0-1-17,1-2-5` (empty text: the empty position).
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

    /// The position after `gtid` was applied.
    pub fn apply(&mut self, gtid: MariaGtid) {
        self.0.insert(gtid.domain, gtid);
    }
}

impl fmt::Display for MariaGtidPos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.values().map(MariaGtid::to_string).collect();
        f.write_str(&parts.join(","))
    }
}

/// A MySQL GTID set: per server UUID, the executed transaction numbers as
/// closed intervals (`uuid:1-5:7-9,uuid2:1-3`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MysqlGtidSet(pub BTreeMap<String, Vec<(u64, u64)>>);

impl MysqlGtidSet {
    pub fn parse(text: &str) -> Option<MysqlGtidSet> {
        let mut set = MysqlGtidSet::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let mut pieces = part.split(':');
            let uuid = pieces.next()?.trim().to_ascii_lowercase();
            if uuid.len() != 36 || uuid.chars().filter(|c| *c == '-').count() != 4 {
                return None;
            }
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

    /// Adds transaction `gno` of server `uuid`.
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

/// Where a MySQL/MariaDB source resumes: always the file coordinates of the
/// end of the last durable transaction, plus the GTID position when the
/// server runs with GTIDs (preferred on resume: it survives a failover to a
/// replica whose file names differ).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MysqlResume {
    pub file: BinlogFile,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mariadb_gtid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mysql_gtid: Option<String>,
}

impl fmt::Display for MysqlResume {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(g) = &self.mariadb_gtid {
            write!(f, " (GTID {g})")?;
        }
        if let Some(g) = &self.mysql_gtid {
            write!(f, " (GTID {g})")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binlog_files_order_by_sequence_then_offset() {
        let a = BinlogFile::parse("binlog.000009:900").unwrap();
        let b = BinlogFile::parse("binlog.000010:4").unwrap();
        assert!(a < b, "file 10 comes after file 9 whatever the offsets");
        assert_eq!(b.sequence(), Some(10));
        assert_eq!(a.to_string(), "binlog.000009:900");
        assert_eq!(BinlogFile::parse("nope"), None);
    }

    #[test]
    fn mariadb_positions() {
        let mut pos = MariaGtidPos::parse("0-1-17, 1-2-5").unwrap();
        assert_eq!(pos.to_string(), "0-1-17,1-2-5");
        pos.apply(MariaGtid::parse("0-3-18").unwrap());
        assert_eq!(pos.to_string(), "0-3-18,1-2-5");
        assert_eq!(MariaGtidPos::parse("").unwrap().to_string(), "");
        assert_eq!(
            MariaGtidPos::parse("0-1-1,0-1-2"),
            None,
            "one GTID per domain"
        );
        assert_eq!(MariaGtidPos::parse("0-1"), None);
        // GTID event body: seq 0x0102 (LE), domain 7 (LE), flags.
        let body = [2, 1, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 1];
        assert_eq!(
            MariaGtid::from_event(9, &body),
            Some(MariaGtid {
                domain: 7,
                server: 9,
                seq: 258
            })
        );
        assert_eq!(MariaGtid::from_event(9, &body[..5]), None);
    }

    #[test]
    fn mysql_gtid_sets() {
        let u1 = "3E11FA47-71CA-11E1-9E33-C80AA9429562";
        let mut set = MysqlGtidSet::parse(&format!(
            "{u1}:1-5:7-9,3e11fa47-71ca-11e1-9e33-c80aa9429563:3"
        ))
        .unwrap();
        assert_eq!(
            set.to_string(),
            "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:7-9,3e11fa47-71ca-11e1-9e33-c80aa9429563:3"
        );
        set.add(u1, 6);
        assert_eq!(
            set.0[&u1.to_ascii_lowercase()],
            vec![(1, 9)],
            "6 joins the intervals"
        );
        assert!(set.contains(u1, 9) && !set.contains(u1, 10));
        assert_eq!(MysqlGtidSet::parse("not-a-uuid:1"), None);
        assert_eq!(MysqlGtidSet::parse(&format!("{u1}:5-1")), None);
        assert_eq!(MysqlGtidSet::parse(&format!("{u1}:0")), None);
    }

    #[test]
    fn resume_points_round_trip_as_json() {
        let resume = MysqlResume {
            file: BinlogFile::parse("binlog.000003:1234").unwrap(),
            mariadb_gtid: Some("0-1-17".into()),
            mysql_gtid: None,
        };
        let json = serde_json::to_string(&resume).unwrap();
        assert_eq!(
            json,
            r#"{"file":{"file":"binlog.000003","pos":1234},"mariadb_gtid":"0-1-17"}"#
        );
        assert_eq!(serde_json::from_str::<MysqlResume>(&json).unwrap(), resume);
        assert_eq!(resume.to_string(), "binlog.000003:1234 (GTID 0-1-17)");
    }
}
