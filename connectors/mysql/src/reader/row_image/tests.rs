//! Cell decoding on hand-made bytes. Whole rows events are checked against
//! `mysql_common` by the live tests (debug builds compare every event).

use super::*;

fn read(cell: Cell, bytes: &[u8]) -> Value {
    let mut data = bytes;
    let value = value(cell, &mut data).expect("decodes");
    assert!(data.is_empty(), "{cell:?} left {data:?}");
    value
}

#[test]
fn integers_as_mysql_common_gives_them() {
    assert_eq!(
        read(Cell::Tiny { unsigned: false }, &[0xff]),
        Value::Int(-1)
    );
    assert_eq!(
        read(Cell::Tiny { unsigned: true }, &[0xff]),
        Value::Int(255)
    );
    assert_eq!(
        read(Cell::Short { unsigned: false }, &[0xfe, 0xff]),
        Value::Int(-2)
    );
    assert_eq!(
        read(Cell::Long { unsigned: true }, &[0xff, 0xff, 0xff, 0xff]),
        Value::Int(4_294_967_295)
    );
    // MEDIUMINT: no sign extension, signed or not.
    assert_eq!(
        read(Cell::Int24, &[0xff, 0xff, 0xff]),
        Value::Int(16_777_215)
    );
    assert_eq!(
        read(Cell::LongLong { unsigned: true }, &[0xff; 8]),
        Value::UInt(u64::MAX)
    );
    assert_eq!(
        read(Cell::LongLong { unsigned: true }, &[1, 0, 0, 0, 0, 0, 0, 0]),
        Value::Int(1)
    );
    assert_eq!(
        read(Cell::LongLong { unsigned: false }, &[0xff; 8]),
        Value::Int(-1)
    );
    assert_eq!(read(Cell::Year, &[124]), Value::Bytes(b"2024".to_vec()));
    assert_eq!(read(Cell::Enum { bytes: 2 }, &[3, 1]), Value::Int(259));
}

#[test]
fn strings_and_blobs() {
    assert_eq!(
        read(Cell::Var { wide: false }, &[2, b'h', b'i']),
        Value::Bytes(b"hi".to_vec())
    );
    assert_eq!(
        read(Cell::Var { wide: true }, &[1, 0, b'x']),
        Value::Bytes(b"x".to_vec())
    );
    assert_eq!(
        read(Cell::Blob { length_bytes: 3 }, &[1, 0, 0, 7]),
        Value::Bytes(vec![7])
    );
    let mut short: &[u8] = &[5, b'a'];
    assert!(value(Cell::Var { wide: false }, &mut short).is_err());
}

#[test]
fn temporal_values() {
    // TIMESTAMP2(6): 1 s and 5 µs.
    assert_eq!(
        read(Cell::Timestamp2 { dec: 6 }, &[0, 0, 0, 1, 0, 0, 5]),
        Value::Bytes(b"1.000005".to_vec())
    );
    assert_eq!(
        read(Cell::Timestamp2 { dec: 0 }, &[0, 0, 0, 7]),
        Value::Bytes(b"7".to_vec())
    );
    // DATETIME2(0) 2024-01-02 03:04:05: ((2024*13+1)<<22 | 2<<17 | 3<<12 | 4<<6 | 5) + 2^39.
    let packed: u64 = ((2024 * 13 + 1) << 22) | (2 << 17) | (3 << 12) | (4 << 6) | 5;
    let raw = (packed + 0x80_0000_0000).to_be_bytes();
    assert_eq!(
        read(Cell::DateTime2 { dec: 0 }, &raw[3..]),
        Value::Date(2024, 1, 2, 3, 4, 5, 0)
    );
    // TIME2(0) -01:00:00.
    let hms: i64 = 1 << 12;
    let raw = ((0x80_0000 - hms) as u32).to_be_bytes();
    assert_eq!(
        read(Cell::Time2 { dec: 0 }, &raw[1..]),
        Value::Time(true, 0, 1, 0, 0, 0)
    );
    // DATE 2024-02-29.
    let date: u32 = (2024 << 9) | (2 << 5) | 29;
    assert_eq!(
        read(Cell::NewDate, &date.to_le_bytes()[..3]),
        Value::Date(2024, 2, 29, 0, 0, 0, 0)
    );
}

#[test]
fn timestamp_text_as_mysql_common_formats_it() {
    for (sec, usec) in [
        (0, 0),
        (7, 0),
        (1_700_000_000, 5),
        (1_700_000_000, 999_999),
        (i32::MAX, 120_000),
        (-5, 0),
        (-5, 10),
        (3, -1),
    ] {
        let expected = if usec == 0 {
            format!("{sec}")
        } else {
            format!("{sec}.{usec:06}")
        };
        assert_eq!(
            timestamp_text(sec, usec),
            expected.into_bytes(),
            "{sec} {usec}"
        );
    }
}

#[test]
fn decimals_as_text() {
    let dec = |bytes: &[u8], precision, scale| match read(Cell::Decimal { precision, scale }, bytes)
    {
        Value::Bytes(b) => String::from_utf8(b).expect("text"),
        other => panic!("{other:?}"),
    };
    // The MySQL manual's example: DECIMAL(14,4).
    assert_eq!(
        dec(&[0x81, 0x0D, 0xFB, 0x38, 0xD2, 0x04, 0xD2], 14, 4),
        "1234567890.1234"
    );
    assert_eq!(
        dec(&[0x7E, 0xF2, 0x04, 0xC7, 0x2D, 0xFB, 0x2D], 14, 4),
        "-1234567890.1234"
    );
    // DECIMAL(10,2) 0.50 and 0.
    assert_eq!(dec(&[0x80, 0, 0, 0, 50], 10, 2), "0.50");
    assert_eq!(dec(&[0x80, 0, 0, 0, 0], 10, 2), "0.00");
    // DECIMAL(5,0) -7.
    assert_eq!(dec(&[0x7F, 0xFF, 0xF8], 5, 0), "-7");
}
