//! Character sets of text columns: which collation id (as the table map's
//! charset metadata gives it) means which character set, and how that
//! character set's bytes become a Rust `String`.
//!
//! Sits under [`crate::column_value`]: CHAR/VARCHAR/TEXT cells arrive as
//! bytes plus a collation id; `binary` means the column holds bytes
//! (BINARY/VARBINARY/BLOB), anything else is decoded here.
//!
//! The built-in map covers the collations of `utf8mb4`, `utf8mb3`, `latin1`,
//! `ascii` and `binary` that MySQL 5.7/8 and MariaDB 10.x ship; a server's
//! full list can be loaded with [`CharsetMap::load`] (it adds ids such as
//! MariaDB 10.10+'s UCA-14 collations).

use std::collections::HashMap;

use mysql_async::prelude::Queryable;

use crate::error::MysqlError;

/// The collation id of the `binary` character set.
pub const BINARY_COLLATION: u16 = 63;

/// Collation id → character set name.
#[derive(Debug, Clone)]
pub struct CharsetMap(HashMap<u16, String>);

impl Default for CharsetMap {
    fn default() -> Self {
        CharsetMap::builtin()
    }
}

impl CharsetMap {
    /// The common collations, without asking a server.
    pub fn builtin() -> CharsetMap {
        let mut map = HashMap::new();
        let mut add = |charset: &str, ids: &mut dyn Iterator<Item = u16>| {
            for id in ids {
                map.insert(id, charset.to_string());
            }
        };
        add("latin1", &mut [5, 8, 15, 31, 47, 48, 49, 94].into_iter());
        add("ascii", &mut [11, 65].into_iter());
        add("binary", &mut [63].into_iter());
        add(
            "utf8mb3",
            &mut [33, 76, 83].into_iter().chain(192..=215).chain([223]),
        );
        add(
            "utf8mb4",
            &mut [45, 46].into_iter().chain(224..=247).chain(255..=323),
        );
        CharsetMap(map)
    }

    /// The built-in map plus every collation the server lists.
    pub async fn load(conn: &mut mysql_async::Conn) -> Result<CharsetMap, MysqlError> {
        let rows: Vec<(u64, String)> = conn
            .query("SELECT ID, CHARACTER_SET_NAME FROM information_schema.COLLATIONS WHERE ID IS NOT NULL")
            .await
            .map_err(|e| MysqlError::from_driver(e, "reading the server's collations", "-"))?;
        let mut map = CharsetMap::builtin();
        for (id, charset) in rows {
            if let Ok(id) = u16::try_from(id) {
                map.0.insert(id, charset.to_ascii_lowercase());
            }
        }
        Ok(map)
    }

    /// The character set of collation `id` (`utf8` is reported as `utf8mb3`).
    pub fn charset(&self, id: u16) -> Option<&str> {
        self.0.get(&id).map(|name| {
            if name == "utf8" {
                "utf8mb3"
            } else {
                name.as_str()
            }
        })
    }
}

/// `bytes` of character set `charset` as text; `None` when the bytes are
/// not valid in it or the character set is not one this crate decodes
/// (then the caller keeps the bytes).
pub fn decode_text(charset: &str, bytes: &[u8]) -> Option<String> {
    match charset {
        "utf8mb4" | "utf8mb3" | "utf8" => String::from_utf8(bytes.to_vec()).ok(),
        "ascii" => bytes
            .is_ascii()
            .then(|| String::from_utf8_lossy(bytes).into_owned()),
        "latin1" => Some(bytes.iter().map(|&b| latin1_char(b)).collect()),
        "ucs2" | "utf16" => decode_utf16(bytes, u16::from_be_bytes),
        "utf16le" => decode_utf16(bytes, u16::from_le_bytes),
        "utf32" => bytes
            .chunks(4)
            .map(|c| {
                let c: [u8; 4] = c.try_into().ok()?;
                char::from_u32(u32::from_be_bytes(c))
            })
            .collect(),
        _ => None,
    }
}

fn decode_utf16(bytes: &[u8], unit: fn([u8; 2]) -> u16) -> Option<String> {
    if bytes.len() % 2 != 0 {
        return None;
    }
    let units: Vec<u16> = bytes.chunks_exact(2).map(|c| unit([c[0], c[1]])).collect();
    String::from_utf16(&units).ok()
}

/// MySQL's `latin1` is Windows-1252 (with the five unassigned bytes kept as
/// the C1 control of the same value).
fn latin1_char(byte: u8) -> char {
    const HIGH: [u16; 32] = [
        0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
        0x2039, 0x0152, 0x008D, 0x017D, 0x008F, 0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
        0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178,
    ];
    match byte {
        0x80..=0x9F => char::from_u32(u32::from(HIGH[usize::from(byte - 0x80)]))
            .unwrap_or(char::REPLACEMENT_CHARACTER),
        _ => char::from(byte),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_ids() {
        let map = CharsetMap::builtin();
        assert_eq!(map.charset(45), Some("utf8mb4"));
        assert_eq!(map.charset(255), Some("utf8mb4"), "utf8mb4_0900_ai_ci");
        assert_eq!(map.charset(33), Some("utf8mb3"));
        assert_eq!(map.charset(8), Some("latin1"));
        assert_eq!(map.charset(BINARY_COLLATION), Some("binary"));
        assert_eq!(map.charset(9999), None);
    }

    #[test]
    fn texts_decode_per_charset() {
        assert_eq!(decode_text("utf8mb4", "añ😀".as_bytes()).unwrap(), "añ😀");
        assert_eq!(decode_text("utf8mb4", &[0xff]), None);
        assert_eq!(decode_text("latin1", &[0x61, 0xf1, 0x80]).unwrap(), "añ€");
        assert_eq!(decode_text("ascii", b"abc").unwrap(), "abc");
        assert_eq!(decode_text("ascii", &[0xc3]), None);
        assert_eq!(
            decode_text("utf16", &[0x00, 0x61, 0xd8, 0x3d, 0xde, 0x00]).unwrap(),
            "a😀"
        );
        assert_eq!(decode_text("utf16le", &[0x61, 0x00]).unwrap(), "a");
        assert_eq!(decode_text("utf32", &[0, 0, 0, 0x61]).unwrap(), "a");
        assert_eq!(decode_text("big5", b"x"), None);
    }
}
