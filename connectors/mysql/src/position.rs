//! Where a binlog reader is: file coordinates, MariaDB GTID positions and
//! MySQL GTID sets, the [`MysqlResume`] point a checkpoint stores, and the
//! [`DumpStart`] a reader asks the server for.
//!
//! Sits between the reader ([`crate::reader`]), which reports the position
//! after every committed transaction, and the daemon's checkpoint, which
//! persists it only once that transaction is durable in the lake. All forms
//! are plain text in JSON (`binlog.000042` + `1234`, `0-1-17,1-2-5`,
//! `3e11fa47-…:1-5:7-9`) so an operator can read and edit them.

mod mariadb_gtid;
mod mysql_gtid;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use mariadb_gtid::{MariaGtid, MariaGtidEvent, MariaGtidPos};
pub use mysql_gtid::{MysqlGtidSet, format_uuid, uuid_bytes};

/// A binlog file and a byte offset in it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BinlogFile {
    /// File name as the server lists it (`binlog.000042`).
    pub file: String,
    /// Byte offset in the file (4 is the first event).
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

/// Where a MySQL/MariaDB source resumes: always the file coordinates of the
/// end of the last durable transaction, plus the GTID position when the
/// server runs with GTIDs (it survives a failover to a replica whose file
/// names differ). This JSON shape is what checkpoints hold:
/// `{"file":{"file":"binlog.000003","pos":1234},"mariadb_gtid":"0-1-17"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MysqlResume {
    /// File coordinates after the last transaction.
    pub file: BinlogFile,
    /// MariaDB GTID position (`0-1-17,1-2-5`) after the last transaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mariadb_gtid: Option<String>,
    /// MySQL executed GTID set after the last transaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mysql_gtid: Option<String>,
}

impl MysqlResume {
    /// How to ask the server for the changes after this point: by GTID when
    /// `prefer_gtid` and a parseable GTID position is present, else by file
    /// coordinates.
    pub fn dump_start(&self, prefer_gtid: bool) -> DumpStart {
        if prefer_gtid {
            if let Some(pos) = self.mariadb_gtid.as_deref().and_then(MariaGtidPos::parse) {
                return DumpStart::MariadbGtid(pos);
            }
            if let Some(set) = self.mysql_gtid.as_deref().and_then(MysqlGtidSet::parse) {
                return DumpStart::MysqlGtid(set);
            }
        }
        DumpStart::File(self.file.clone())
    }
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

/// The start of a binlog dump: file coordinates (`COM_BINLOG_DUMP`), a
/// MariaDB GTID position (`@slave_connect_state`, then `COM_BINLOG_DUMP`),
/// or a MySQL GTID set (`COM_BINLOG_DUMP_GTID`: every transaction not in
/// the set). JSON: `{"file":{"file":"binlog.000003","pos":4}}`,
/// `{"mariadb_gtid":"0-1-17"}`, `{"mysql_gtid":"uuid:1-5"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DumpStart {
    /// From this offset of this file.
    File(BinlogFile),
    /// After this MariaDB GTID position.
    MariadbGtid(MariaGtidPos),
    /// After this MySQL GTID set.
    MysqlGtid(MysqlGtidSet),
}

impl fmt::Display for DumpStart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DumpStart::File(file) => write!(f, "{file}"),
            DumpStart::MariadbGtid(pos) => write!(f, "GTID {pos}"),
            DumpStart::MysqlGtid(set) => write!(f, "GTID set {set}"),
        }
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

    #[test]
    fn dump_starts_prefer_gtids_when_asked() {
        let mut resume = MysqlResume {
            file: BinlogFile::parse("binlog.000003:1234").unwrap(),
            mariadb_gtid: Some("0-1-17".into()),
            mysql_gtid: None,
        };
        assert_eq!(
            resume.dump_start(true),
            DumpStart::MariadbGtid(MariaGtidPos::parse("0-1-17").unwrap())
        );
        assert_eq!(
            resume.dump_start(false),
            DumpStart::File(resume.file.clone())
        );
        resume.mariadb_gtid = None;
        resume.mysql_gtid = Some("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5".into());
        let start = resume.dump_start(true);
        assert!(matches!(start, DumpStart::MysqlGtid(_)), "{start}");
        resume.mysql_gtid = Some("garbage".into());
        assert_eq!(
            resume.dump_start(true),
            DumpStart::File(resume.file.clone())
        );
    }

    #[test]
    fn dump_starts_have_a_stable_json_shape() {
        let cases = [
            (
                DumpStart::File(BinlogFile::parse("binlog.000003:4").unwrap()),
                r#"{"file":{"file":"binlog.000003","pos":4}}"#,
            ),
            (
                DumpStart::MariadbGtid(MariaGtidPos::parse("0-1-17,1-2-5").unwrap()),
                r#"{"mariadb_gtid":"0-1-17,1-2-5"}"#,
            ),
            (
                DumpStart::MysqlGtid(
                    MysqlGtidSet::parse("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:7").unwrap(),
                ),
                r#"{"mysql_gtid":"3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:7"}"#,
            ),
        ];
        for (start, json) in cases {
            assert_eq!(serde_json::to_string(&start).unwrap(), json);
            assert_eq!(serde_json::from_str::<DumpStart>(json).unwrap(), start);
        }
    }
}
