//! The log sequence number (LSN) newtype.
//!
//! Every position in the data path — where a message starts, where a commit
//! ends, what the daemon has made durable and acknowledges — is an LSN. This
//! type is what crosses the crate boundary, so checkpoints and logs always
//! show PostgreSQL's own `X/X` hexadecimal form (`16/B374D848`), which an
//! operator can paste into `pg_replication_slots` queries unchanged.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A PostgreSQL write-ahead-log position (`XLogRecPtr`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lsn(pub u64);

impl Lsn {
    /// The invalid position (`0/0`); PostgreSQL uses it for "none".
    pub const ZERO: Lsn = Lsn(0);

    /// The raw 64-bit value.
    pub const fn value(self) -> u64 {
        self.0
    }

    /// Whether this is the invalid position `0/0`.
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

/// Why a string is not an LSN.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid LSN {input:?}: expected PostgreSQL's X/X hexadecimal form, e.g. 16/B374D848")]
pub struct ParseLsnError {
    input: String,
}

impl FromStr for Lsn {
    type Err = ParseLsnError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseLsnError {
            input: s.to_owned(),
        };
        let (hi, lo) = s.trim().split_once('/').ok_or_else(err)?;
        let valid =
            |p: &str| !p.is_empty() && p.len() <= 8 && p.bytes().all(|b| b.is_ascii_hexdigit());
        if !valid(hi) || !valid(lo) {
            return Err(err());
        }
        let hi = u32::from_str_radix(hi, 16).map_err(|_| err())?;
        let lo = u32::from_str_radix(lo, 16).map_err(|_| err())?;
        Ok(Lsn((u64::from(hi) << 32) | u64::from(lo)))
    }
}

impl Serialize for Lsn {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Lsn {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl From<u64> for Lsn {
    fn from(v: u64) -> Self {
        Lsn(v)
    }
}

impl From<Lsn> for u64 {
    fn from(l: Lsn) -> Self {
        l.0
    }
}

impl From<pg_walstream::Lsn> for Lsn {
    fn from(l: pg_walstream::Lsn) -> Self {
        Lsn(l.0)
    }
}

impl From<Lsn> for pg_walstream::Lsn {
    fn from(l: Lsn) -> Self {
        pg_walstream::Lsn(l.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_matches_postgres() {
        assert_eq!(Lsn(0).to_string(), "0/0");
        assert_eq!(Lsn(0x16_B374_D848).to_string(), "16/B374D848");
        assert_eq!(Lsn(u64::MAX).to_string(), "FFFFFFFF/FFFFFFFF");
    }

    #[test]
    fn parse_round_trips_and_accepts_lowercase() {
        for v in [0u64, 1, 0x16_B374_D848, u64::MAX, 0xFFFF_FFFF] {
            assert_eq!(Lsn(v).to_string().parse::<Lsn>().unwrap(), Lsn(v));
        }
        assert_eq!("16/b374d848".parse::<Lsn>().unwrap(), Lsn(0x16_B374_D848));
        assert_eq!("0/00000010".parse::<Lsn>().unwrap(), Lsn(0x10));
    }

    #[test]
    fn parse_rejects_garbage() {
        for bad in [
            "",
            "0",
            "/",
            "1/",
            "/1",
            "x/1",
            "1/1/1",
            "123456789/0",
            "+1/0",
            "-1/0",
        ] {
            assert!(bad.parse::<Lsn>().is_err(), "{bad:?} should not parse");
        }
        let msg = "nope".parse::<Lsn>().unwrap_err().to_string();
        assert!(msg.contains("X/X"), "{msg}");
    }

    #[test]
    fn serde_uses_the_text_form() {
        let json = serde_json::to_string(&Lsn(0x1_0000_0020)).unwrap();
        assert_eq!(json, "\"1/20\"");
        let back: Lsn = serde_json::from_str(&json).unwrap();
        assert_eq!(back, Lsn(0x1_0000_0020));
        assert!(serde_json::from_str::<Lsn>("\"zz\"").is_err());
    }

    #[test]
    fn conversions_and_order() {
        let w: pg_walstream::Lsn = Lsn(42).into();
        assert_eq!(Lsn::from(w), Lsn(42));
        assert_eq!(u64::from(Lsn::from(7u64)), 7);
        assert!(Lsn(1) < Lsn(0x1_0000_0000));
    }
}
