//! Source positions: where a change sits in its source's log, and where a
//! source resumes after a restart.
//!
//! Two different things, kept apart on purpose:
//! - [`Position`] orders *changes*. Every envelope carries one; the delta files
//!   store it as the sortable `_pos` string so any warehouse can order changes
//!   with a plain string comparison.
//! - [`ResumePoint`] is what the *source* needs to continue (PostgreSQL: the
//!   end LSN of the last transaction whose changes are all durable; later a
//!   MySQL GTID set or a MongoDB resume token).
//!
//! Both are enums so one checkpoint format serves every source kind.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Total order of a change within one source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Position {
    /// PostgreSQL: the transaction's commit LSN, then the change's ordinal
    /// within that transaction (1-based). Transactions arrive in commit order,
    /// so this pair is a total order of every change in the database.
    Postgres { commit_lsn: u64, ordinal: u64 },
    /// MySQL/MariaDB: the binlog file's sequence number and the offset of
    /// the transaction's first event (transactions are written to the binlog
    /// whole, in commit order), then the change's ordinal (1-based).
    Mysql {
        file_seq: u64,
        txn_pos: u64,
        ordinal: u64,
    },
    /// MongoDB: the event's cluster time (`seconds << 32 | increment`), then
    /// its ordinal among events with that cluster time (the operations of
    /// one transaction share it), 1-based.
    Mongo { cluster_time: u64, ordinal: u64 },
}

impl Position {
    /// Fixed-width string that sorts like the position itself (the `_pos`
    /// column): `<commit LSN as 16 hex digits>-<ordinal as 12 digits>`.
    pub fn sort_key(&self) -> String {
        match self {
            Position::Postgres {
                commit_lsn,
                ordinal,
            } => format!("{commit_lsn:016X}-{ordinal:012}"),
            Position::Mysql {
                file_seq,
                txn_pos,
                ordinal,
            } => format!("{file_seq:010}-{txn_pos:016X}-{ordinal:012}"),
            Position::Mongo {
                cluster_time,
                ordinal,
            } => format!("{cluster_time:016X}-{ordinal:012}"),
        }
    }

    /// [`Position::sort_key`] without allocating (the hot path of every
    /// delta row).
    pub fn sort_key_buf(&self) -> SortKey {
        match self {
            Position::Postgres {
                commit_lsn,
                ordinal,
            }
            | Position::Mongo {
                cluster_time: commit_lsn,
                ordinal,
            } => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                let mut bytes = [0u8; SORT_KEY_LEN];
                for (i, b) in bytes[..16].iter_mut().enumerate() {
                    *b = HEX[((commit_lsn >> ((15 - i) * 4)) & 0xF) as usize];
                }
                bytes[16] = b'-';
                let mut n = *ordinal;
                for b in bytes[17..].iter_mut().rev() {
                    *b = b'0' + (n % 10) as u8;
                    n /= 10;
                }
                if n > 0 {
                    // Wider than 12 digits: fall back to the general form.
                    return SortKey::Long(self.sort_key());
                }
                SortKey::Short(bytes)
            }
            Position::Mysql {
                file_seq,
                txn_pos,
                ordinal,
            } => {
                let mut bytes = [0u8; BINLOG_SORT_KEY_LEN];
                let fits = write_decimal(&mut bytes[..10], *file_seq)
                    && write_decimal(&mut bytes[28..], *ordinal);
                if !fits {
                    return SortKey::Long(self.sort_key());
                }
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                bytes[10] = b'-';
                for (i, b) in bytes[11..27].iter_mut().enumerate() {
                    *b = HEX[((txn_pos >> ((15 - i) * 4)) & 0xF) as usize];
                }
                bytes[27] = b'-';
                SortKey::Binlog(bytes)
            }
        }
    }

    /// Inverse of [`Position::sort_key`] for PostgreSQL positions.
    pub fn parse_postgres_sort_key(key: &str) -> Option<Position> {
        let (lsn, ord) = key.split_once('-')?;
        Some(Position::Postgres {
            commit_lsn: u64::from_str_radix(lsn, 16).ok()?,
            ordinal: ord.parse().ok()?,
        })
    }

    /// The transaction this position belongs to (PostgreSQL: commit LSN).
    pub fn transaction_lsn(&self) -> u64 {
        match self {
            Position::Postgres { commit_lsn, .. } => *commit_lsn,
            // File sequence in the high bits, offset (< 2^40) in the low ones.
            Position::Mysql {
                file_seq, txn_pos, ..
            } => (file_seq << 40) | (txn_pos & ((1 << 40) - 1)),
            Position::Mongo { cluster_time, .. } => *cluster_time,
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::Postgres {
                commit_lsn,
                ordinal,
            } => write!(f, "lsn {} change #{ordinal}", format_lsn(*commit_lsn)),
            Position::Mysql {
                file_seq,
                txn_pos,
                ordinal,
            } => write!(f, "binlog #{file_seq} offset {txn_pos} change #{ordinal}"),
            Position::Mongo {
                cluster_time,
                ordinal,
            } => write!(
                f,
                "cluster time {}.{} event #{ordinal}",
                cluster_time >> 32,
                cluster_time & 0xFFFF_FFFF
            ),
        }
    }
}

/// Length of a PostgreSQL sort key: 16 hex digits, `-`, 12 decimal digits.
const SORT_KEY_LEN: usize = 29;

/// Length of a binlog sort key: 10 digits, `-`, 16 hex digits, `-`, 12 digits.
const BINLOG_SORT_KEY_LEN: usize = 40;

/// Writes `n` as zero-padded decimal filling `out`; `false` if it is wider.
fn write_decimal(out: &mut [u8], mut n: u64) -> bool {
    for b in out.iter_mut().rev() {
        *b = b'0' + (n % 10) as u8;
        n /= 10;
    }
    n == 0
}

/// A sort key on the stack (see [`Position::sort_key_buf`]).
#[derive(Debug, Clone)]
pub enum SortKey {
    Short([u8; SORT_KEY_LEN]),
    Binlog([u8; BINLOG_SORT_KEY_LEN]),
    Long(String),
}

impl SortKey {
    pub fn as_str(&self) -> &str {
        match self {
            SortKey::Short(bytes) => std::str::from_utf8(bytes).expect("ASCII digits"),
            SortKey::Binlog(bytes) => std::str::from_utf8(bytes).expect("ASCII digits"),
            SortKey::Long(s) => s,
        }
    }
}

/// Where a source continues after a restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ResumePoint {
    /// PostgreSQL: restart streaming from this LSN (the end LSN of the last
    /// fully durable transaction). Also the slot's flush LSN we report.
    Postgres { lsn: u64 },
    /// MySQL/MariaDB: the binlog coordinates (and GTID position, when the
    /// server uses GTIDs) after the last fully durable transaction.
    Mysql(tributary_mysql::MysqlResume),
    /// MongoDB: the resume token (canonical Extended JSON of the event's
    /// `_id`) after the last durable event, resumed with `startAfter`; before
    /// the first event, only the cluster time the stream starts at.
    Mongo {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
        /// `seconds << 32 | increment`.
        cluster_time: u64,
    },
}

impl ResumePoint {
    /// Whether `self` is further along the same source's log than `other`.
    pub fn is_after(&self, other: &ResumePoint) -> bool {
        match (self, other) {
            (ResumePoint::Postgres { lsn: a }, ResumePoint::Postgres { lsn: b }) => a > b,
            (ResumePoint::Mysql(a), ResumePoint::Mysql(b)) => a.file > b.file,
            (
                ResumePoint::Mongo {
                    token: ta,
                    cluster_time: a,
                },
                ResumePoint::Mongo {
                    token: tb,
                    cluster_time: b,
                },
            ) => a > b || (a == b && ta != tb && ta.is_some()),
            _ => false,
        }
    }
}

impl fmt::Display for ResumePoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResumePoint::Postgres { lsn } => write!(f, "lsn {}", format_lsn(*lsn)),
            ResumePoint::Mysql(resume) => write!(f, "binlog {resume}"),
            ResumePoint::Mongo {
                token,
                cluster_time,
            } => {
                write!(
                    f,
                    "cluster time {}.{}",
                    cluster_time >> 32,
                    cluster_time & 0xFFFF_FFFF
                )?;
                if let Some(token) = token {
                    write!(f, " (resume token {token})")?;
                }
                Ok(())
            }
        }
    }
}

/// PostgreSQL's `XXX/XXXXXXXX` text form of an LSN.
pub fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

/// Parses PostgreSQL's `XXX/XXXXXXXX` LSN text form.
pub fn parse_lsn(text: &str) -> Option<u64> {
    let (hi, lo) = text.trim().split_once('/')?;
    let hi = u64::from_str_radix(hi, 16).ok()?;
    let lo = u64::from_str_radix(lo, 16).ok()?;
    if hi > u32::MAX as u64 || lo > u32::MAX as u64 {
        return None;
    }
    Some((hi << 32) | lo)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_key_orders_like_position() {
        let a = Position::Postgres {
            commit_lsn: 0x1_0000_0000,
            ordinal: 9,
        };
        let b = Position::Postgres {
            commit_lsn: 0x1_0000_0000,
            ordinal: 10,
        };
        let c = Position::Postgres {
            commit_lsn: 0x2_0000_0000,
            ordinal: 1,
        };
        assert!(a < b && b < c);
        assert!(a.sort_key() < b.sort_key() && b.sort_key() < c.sort_key());
        assert_eq!(Position::parse_postgres_sort_key(&b.sort_key()), Some(b));
        for p in [
            a,
            b,
            c,
            Position::Postgres {
                commit_lsn: u64::MAX,
                ordinal: 999_999_999_999,
            },
        ] {
            assert_eq!(p.sort_key_buf().as_str(), p.sort_key());
        }
        let wide = Position::Postgres {
            commit_lsn: 1,
            ordinal: 1_000_000_000_000,
        };
        assert_eq!(wide.sort_key_buf().as_str(), wide.sort_key());
        for (file_seq, txn_pos, ordinal) in [
            (1, 4, 1),
            (42, 0xDEAD_BEEF, 999_999_999_999),
            (9_999_999_999, u64::MAX, 7),
            (10_000_000_000, 1, 1),
            (1, 1, 1_000_000_000_000),
        ] {
            let p = Position::Mysql {
                file_seq,
                txn_pos,
                ordinal,
            };
            assert_eq!(p.sort_key_buf().as_str(), p.sort_key());
        }
    }

    #[test]
    fn lsn_text_round_trips() {
        assert_eq!(parse_lsn("16/B374D848"), Some(0x16_B374_D848));
        assert_eq!(format_lsn(0x16_B374_D848), "16/B374D848");
        assert_eq!(parse_lsn("nope"), None);
    }
}
