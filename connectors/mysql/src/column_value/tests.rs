use super::*;

fn meta(column_type: ColumnType, type_meta: &[u8]) -> ColumnMeta {
    ColumnMeta {
        index: 0,
        name: Some("c".into()),
        column_type,
        type_meta: type_meta.to_vec(),
        unsigned: false,
        collation: None,
        enum_labels: None,
        set_labels: None,
        nullable: true,
    }
}

fn decode(column: &ColumnMeta, value: Value) -> MysqlValue {
    decode_cell(column, BinlogValue::Value(value), &CharsetMap::builtin()).unwrap()
}

#[test]
fn integers_follow_signedness() {
    let mut column = meta(ColumnType::MYSQL_TYPE_TINY, &[]);
    assert_eq!(decode(&column, Value::Int(-5)), MysqlValue::Int(-5));
    column.unsigned = true;
    assert_eq!(decode(&column, Value::Int(255)), MysqlValue::UInt(255));
    let medium = meta(ColumnType::MYSQL_TYPE_INT24, &[]);
    assert_eq!(
        decode(&medium, Value::Int(0x80_0000)),
        MysqlValue::Int(-8_388_608)
    );
    assert_eq!(decode(&medium, Value::Int(0xff_ffff)), MysqlValue::Int(-1));
    assert_eq!(
        decode(&medium, Value::Int(8_388_607)),
        MysqlValue::Int(8_388_607)
    );
    let big = meta(ColumnType::MYSQL_TYPE_LONGLONG, &[]);
    assert_eq!(
        decode(&big, Value::UInt(u64::MAX)),
        MysqlValue::UInt(u64::MAX)
    );
    assert_eq!(decode(&big, Value::NULL), MysqlValue::Null);
    assert!(
        decode_cell(
            &big,
            BinlogValue::Value(Value::Bytes(vec![1])),
            &CharsetMap::builtin()
        )
        .is_err()
    );
}

#[test]
fn decimals_bits_years() {
    let decimal = meta(ColumnType::MYSQL_TYPE_NEWDECIMAL, &[10, 3]);
    let value = decode(&decimal, Value::Bytes(b"-12.340".to_vec()));
    assert_eq!(value, MysqlValue::Decimal("-12.340".into()));
    assert_eq!(value.decimal_parts(), Some((-12340, 3)));
    assert_eq!(
        MysqlValue::Decimal("7".into()).decimal_parts(),
        Some((7, 0))
    );
    assert_eq!(decimal.decimal_precision_scale(), (10, 3));
    // BIT(10): meta = [bits % 8, bytes].
    let bit = meta(ColumnType::MYSQL_TYPE_BIT, &[2, 1]);
    assert_eq!(
        decode(&bit, Value::Bytes(vec![0x02, 0x01])),
        MysqlValue::Bit {
            value: 0x201,
            width: 10
        }
    );
    let year = meta(ColumnType::MYSQL_TYPE_YEAR, &[]);
    assert_eq!(
        decode(&year, Value::Bytes(b"2024".to_vec())),
        MysqlValue::Year(2024)
    );
    assert_eq!(
        decode(&year, Value::Bytes(b"1900".to_vec())),
        MysqlValue::Year(0)
    );
}

#[test]
fn temporal_values() {
    let date = meta(ColumnType::MYSQL_TYPE_NEWDATE, &[]);
    assert_eq!(
        decode(&date, Value::Date(2024, 2, 29, 0, 0, 0, 0)),
        MysqlValue::Date {
            year: 2024,
            month: 2,
            day: 29
        }
    );
    let time = meta(ColumnType::MYSQL_TYPE_TIME2, &[6]);
    assert_eq!(time.fractional_digits(), 6);
    assert_eq!(
        decode(&time, Value::Time(true, 34, 22, 59, 58, 500_000)),
        MysqlValue::Time {
            negative: true,
            hours: 838,
            minutes: 59,
            seconds: 58,
            micros: 500_000
        }
    );
    let ts = meta(ColumnType::MYSQL_TYPE_TIMESTAMP2, &[3]);
    assert_eq!(
        decode(&ts, Value::Bytes(b"1700000000.123000".to_vec())),
        MysqlValue::Timestamp {
            seconds: 1_700_000_000,
            micros: 123_000
        }
    );
    assert_eq!(
        decode(&ts, Value::Bytes(b"0".to_vec())),
        MysqlValue::Timestamp {
            seconds: 0,
            micros: 0
        }
    );
}

#[test]
fn character_data_uses_the_collation() {
    let mut column = meta(ColumnType::MYSQL_TYPE_VARCHAR, &[40, 0]);
    assert_eq!(
        decode(&column, Value::Bytes(b"abc".to_vec())),
        MysqlValue::RawText {
            collation: None,
            bytes: b"abc".to_vec()
        },
        "no charset metadata: bytes kept"
    );
    column.collation = Some(45);
    assert_eq!(
        decode(&column, Value::Bytes("añ😀".as_bytes().to_vec())),
        MysqlValue::Text("añ😀".into())
    );
    column.collation = Some(8);
    assert_eq!(
        decode(&column, Value::Bytes(vec![0xf1])),
        MysqlValue::Text("ñ".into())
    );
    column.collation = Some(BINARY_COLLATION);
    assert_eq!(
        decode(&column, Value::Bytes(vec![1, 0])),
        MysqlValue::Bytes(vec![1, 0])
    );
    // BINARY(4): STRING with meta [real type 0xfe, length 4], padded back.
    let mut binary = meta(ColumnType::MYSQL_TYPE_STRING, &[0xfe, 4]);
    binary.collation = Some(BINARY_COLLATION);
    assert_eq!(binary.fixed_length(), Some(4));
    assert_eq!(
        decode(&binary, Value::Bytes(vec![7])),
        MysqlValue::Bytes(vec![7, 0, 0, 0])
    );
    column.collation = Some(9999);
    assert!(matches!(
        decode(&column, Value::Bytes(b"x".to_vec())),
        MysqlValue::RawText {
            collation: Some(9999),
            ..
        }
    ));
}

#[test]
fn enums_and_sets_with_and_without_labels() {
    let mut column = meta(ColumnType::MYSQL_TYPE_ENUM, &[0xf7, 1]);
    assert_eq!(
        decode(&column, Value::Int(2)),
        MysqlValue::Enum {
            index: 2,
            label: None
        }
    );
    column.enum_labels = Some(vec!["small".into(), "large".into()]);
    assert_eq!(
        decode(&column, Value::Int(2)),
        MysqlValue::Enum {
            index: 2,
            label: Some("large".into())
        }
    );
    assert_eq!(
        decode(&column, Value::Int(0)),
        MysqlValue::Enum {
            index: 0,
            label: None
        },
        "the empty error value"
    );
    let mut set = meta(ColumnType::MYSQL_TYPE_SET, &[0xf8, 2]);
    set.set_labels = Some((0..10).map(|i| format!("m{i}")).collect());
    assert_eq!(
        decode(&set, Value::Bytes(vec![0b0000_0101, 0b0000_0010])),
        MysqlValue::Set {
            bits: 0b10_0000_0101,
            labels: Some(vec!["m0".into(), "m2".into(), "m9".into()])
        }
    );
}

#[test]
fn geometry_strips_the_srid() {
    let column = meta(ColumnType::MYSQL_TYPE_GEOMETRY, &[4]);
    let mut bytes = 4326u32.to_le_bytes().to_vec();
    bytes.extend_from_slice(&[1, 1, 0, 0, 0]);
    assert_eq!(
        decode(&column, Value::Bytes(bytes)),
        MysqlValue::Geometry {
            srid: 4326,
            wkb: vec![1, 1, 0, 0, 0]
        }
    );
}

#[test]
fn minimal_images_mark_absent_columns_unchanged() {
    let mut a = meta(ColumnType::MYSQL_TYPE_LONG, &[]);
    let mut b = meta(ColumnType::MYSQL_TYPE_LONG, &[]);
    a.index = 0;
    b.index = 1;
    let row = decode_row(
        &[a.clone(), b.clone()],
        Some(&[false, true]),
        vec![BinlogValue::Value(Value::Int(9))],
        &CharsetMap::builtin(),
    )
    .unwrap();
    assert_eq!(row, [MysqlValue::Unchanged, MysqlValue::Int(9)]);
    let short = decode_row(&[a, b], None, vec![], &CharsetMap::builtin());
    assert!(short.is_err());
}
