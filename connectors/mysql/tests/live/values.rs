//! Every column type through the binlog, decoded into `MysqlValue`s and
//! compared with the values the test inserted.

use mysql_async::prelude::Queryable;
use mysql_async::{Params, Value};
use tributary_mysql::{DecodedEvent, MysqlValue, RowsKind, StartBy};

use crate::harness::{Mariadb, read_decoded, start_reader, utc_session};

const TABLE: &str = "CREATE TABLE app.everything (
    id INT PRIMARY KEY,
    ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED,
    mi MEDIUMINT, miu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED,
    bi BIGINT, biu BIGINT UNSIGNED,
    dec_small DECIMAL(20,4), dec_wide DECIMAL(65,30),
    f FLOAT, d DOUBLE,
    b1 BIT(1), b10 BIT(10), b64 BIT(64),
    c CHAR(10), vc VARCHAR(100), t TEXT, l1 VARCHAR(20) CHARACTER SET latin1,
    bin BINARY(4), vb VARBINARY(10), bl BLOB,
    dt DATE, tm TIME(3), tm0 TIME, dtm DATETIME(6), dtm0 DATETIME, ts TIMESTAMP(6) NULL DEFAULT NULL,
    y YEAR,
    e ENUM('small','medium','large'), s SET('a','b','c','d'),
    j JSON,
    g GEOMETRY
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4";

const COLUMNS: usize = 36;

/// One row: what is inserted (SQL expressions and parameters) and what the
/// binlog must give back.
struct Case {
    sql_values: Vec<&'static str>,
    params: Vec<Value>,
    expected: Vec<MysqlValue>,
}

fn text(s: &str) -> MysqlValue {
    MysqlValue::Text(s.to_string())
}

/// A column bound as a parameter.
fn bound(params: &mut Vec<Value>, value: impl Into<Value>) -> &'static str {
    params.push(value.into());
    "?"
}

fn point_wkb(x: f64, y: f64) -> Vec<u8> {
    let mut wkb = vec![1, 1, 0, 0, 0];
    wkb.extend_from_slice(&x.to_le_bytes());
    wkb.extend_from_slice(&y.to_le_bytes());
    wkb
}

fn max_row() -> Case {
    let mut p = Vec::new();
    let long_text: String = "ünïcödé text 😀 ".repeat(60);
    let blob: Vec<u8> = (0..=255u8).collect();
    let json = r#"{"a": [1, 2.5, "x", null, true], "b": {"c": "ü"}}"#;
    let sql_values = vec![
        bound(&mut p, 1),
        bound(&mut p, i8::MAX),
        bound(&mut p, u8::MAX),
        bound(&mut p, i16::MAX),
        bound(&mut p, u16::MAX),
        bound(&mut p, 8_388_607),
        bound(&mut p, 16_777_215),
        bound(&mut p, i32::MAX),
        bound(&mut p, u32::MAX),
        bound(&mut p, i64::MAX),
        bound(&mut p, u64::MAX),
        "1234567890123456.7890",
        "12345678901234567890123456789012345.123456789012345678901234567890",
        bound(&mut p, 1.5f32),
        bound(&mut p, -2.25e300f64),
        "b'1'",
        "b'1000000001'",
        bound(&mut p, u64::MAX),
        bound(&mut p, "abc"),
        bound(&mut p, "añ😀 ünïcode"),
        bound(&mut p, long_text.clone()),
        bound(&mut p, "ñandú €"),
        "x'01'",
        "x'00ff00'",
        bound(&mut p, blob.clone()),
        "'2024-02-29'",
        "'-838:59:58.500'",
        "'12:34:56'",
        "'2024-02-29 23:59:59.999999'",
        "'1000-01-01 00:00:00'",
        "'2038-01-19 03:14:07.499999'",
        "2155",
        "'large'",
        "'a,d'",
        bound(&mut p, json),
        "ST_GeomFromText('POINT(1 2)', 4326)",
    ];
    let expected = vec![
        MysqlValue::Int(1),
        MysqlValue::Int(i64::from(i8::MAX)),
        MysqlValue::UInt(u64::from(u8::MAX)),
        MysqlValue::Int(i64::from(i16::MAX)),
        MysqlValue::UInt(u64::from(u16::MAX)),
        MysqlValue::Int(8_388_607),
        MysqlValue::UInt(16_777_215),
        MysqlValue::Int(i64::from(i32::MAX)),
        MysqlValue::UInt(u64::from(u32::MAX)),
        MysqlValue::Int(i64::MAX),
        MysqlValue::UInt(u64::MAX),
        MysqlValue::Decimal("1234567890123456.7890".into()),
        MysqlValue::Decimal(
            "12345678901234567890123456789012345.123456789012345678901234567890".into(),
        ),
        MysqlValue::Float(1.5),
        MysqlValue::Double(-2.25e300),
        MysqlValue::Bit { value: 1, width: 1 },
        MysqlValue::Bit {
            value: 0b10_0000_0001,
            width: 10,
        },
        MysqlValue::Bit {
            value: u64::MAX,
            width: 64,
        },
        text("abc"),
        text("añ😀 ünïcode"),
        text(&long_text),
        text("ñandú €"),
        MysqlValue::Bytes(vec![1, 0, 0, 0]),
        MysqlValue::Bytes(vec![0, 0xff, 0]),
        MysqlValue::Bytes(blob),
        MysqlValue::Date {
            year: 2024,
            month: 2,
            day: 29,
        },
        MysqlValue::Time {
            negative: true,
            hours: 838,
            minutes: 59,
            seconds: 58,
            micros: 500_000,
        },
        MysqlValue::Time {
            negative: false,
            hours: 12,
            minutes: 34,
            seconds: 56,
            micros: 0,
        },
        MysqlValue::DateTime {
            year: 2024,
            month: 2,
            day: 29,
            hour: 23,
            minute: 59,
            second: 59,
            micros: 999_999,
        },
        MysqlValue::DateTime {
            year: 1000,
            month: 1,
            day: 1,
            hour: 0,
            minute: 0,
            second: 0,
            micros: 0,
        },
        MysqlValue::Timestamp {
            seconds: i32::MAX as u64,
            micros: 499_999,
        },
        MysqlValue::Year(2155),
        MysqlValue::Enum {
            index: 3,
            label: Some("large".into()),
        },
        MysqlValue::Set {
            bits: 0b1001,
            labels: Some(vec!["a".into(), "d".into()]),
        },
        // MariaDB's JSON is LONGTEXT: the text as written.
        text(json),
        MysqlValue::Geometry {
            srid: 4326,
            wkb: point_wkb(1.0, 2.0),
        },
    ];
    Case {
        sql_values,
        params: p,
        expected,
    }
}

fn min_row() -> Case {
    let mut p = Vec::new();
    let sql_values = vec![
        bound(&mut p, 2),
        bound(&mut p, i8::MIN),
        "0",
        bound(&mut p, i16::MIN),
        "0",
        bound(&mut p, -8_388_608),
        "0",
        bound(&mut p, i32::MIN),
        "0",
        bound(&mut p, i64::MIN),
        "0",
        "-0.0001",
        "-1.000000000000000000000000000001",
        bound(&mut p, -0.25f32),
        "0",
        "b'0'",
        "b'0'",
        "0",
        "''",
        "''",
        "''",
        "''",
        "x'00000000'",
        "x''",
        "x''",
        "'0000-00-00'",
        "'00:00:00'",
        "'-00:00:01'",
        "'0000-00-00 00:00:00'",
        "'9999-12-31 23:59:59'",
        "'1970-01-01 00:00:01'",
        "0",
        "'small'",
        "''",
        "'[]'",
        "ST_GeomFromText('LINESTRING(0 0, 1 1)')",
    ];
    let mut line = vec![1, 2, 0, 0, 0, 2, 0, 0, 0];
    for v in [0.0f64, 0.0, 1.0, 1.0] {
        line.extend_from_slice(&v.to_le_bytes());
    }
    let zero_time = MysqlValue::Time {
        negative: false,
        hours: 0,
        minutes: 0,
        seconds: 0,
        micros: 0,
    };
    let expected = vec![
        MysqlValue::Int(2),
        MysqlValue::Int(i64::from(i8::MIN)),
        MysqlValue::UInt(0),
        MysqlValue::Int(i64::from(i16::MIN)),
        MysqlValue::UInt(0),
        MysqlValue::Int(-8_388_608),
        MysqlValue::UInt(0),
        MysqlValue::Int(i64::from(i32::MIN)),
        MysqlValue::UInt(0),
        MysqlValue::Int(i64::MIN),
        MysqlValue::UInt(0),
        MysqlValue::Decimal("-0.0001".into()),
        MysqlValue::Decimal("-1.000000000000000000000000000001".into()),
        MysqlValue::Float(-0.25),
        MysqlValue::Double(0.0),
        MysqlValue::Bit { value: 0, width: 1 },
        MysqlValue::Bit {
            value: 0,
            width: 10,
        },
        MysqlValue::Bit {
            value: 0,
            width: 64,
        },
        text(""),
        text(""),
        text(""),
        text(""),
        MysqlValue::Bytes(vec![0, 0, 0, 0]),
        MysqlValue::Bytes(vec![]),
        MysqlValue::Bytes(vec![]),
        MysqlValue::Date {
            year: 0,
            month: 0,
            day: 0,
        },
        zero_time.clone(),
        MysqlValue::Time {
            negative: true,
            hours: 0,
            minutes: 0,
            seconds: 1,
            micros: 0,
        },
        MysqlValue::DateTime {
            year: 0,
            month: 0,
            day: 0,
            hour: 0,
            minute: 0,
            second: 0,
            micros: 0,
        },
        MysqlValue::DateTime {
            year: 9999,
            month: 12,
            day: 31,
            hour: 23,
            minute: 59,
            second: 59,
            micros: 0,
        },
        MysqlValue::Timestamp {
            seconds: 1,
            micros: 0,
        },
        MysqlValue::Year(0),
        MysqlValue::Enum {
            index: 1,
            label: Some("small".into()),
        },
        MysqlValue::Set {
            bits: 0,
            labels: Some(vec![]),
        },
        text("[]"),
        MysqlValue::Geometry { srid: 0, wkb: line },
    ];
    Case {
        sql_values,
        params: p,
        expected,
    }
}

fn null_row() -> Case {
    let mut sql_values = vec!["3"];
    sql_values.extend(std::iter::repeat_n("NULL", COLUMNS - 1));
    let mut expected = vec![MysqlValue::Int(3)];
    expected.extend(std::iter::repeat_n(MysqlValue::Null, COLUMNS - 1));
    Case {
        sql_values,
        params: vec![],
        expected,
    }
}

fn after_image(event: &DecodedEvent) -> Vec<MysqlValue> {
    let DecodedEvent::Rows { rows, .. } = event else {
        panic!("{event:?}")
    };
    rows[0].1.clone().unwrap()
}

#[tokio::test]
async fn every_type_decodes_to_the_inserted_value() {
    let Some(server) = Mariadb::start(&[]) else {
        return;
    };
    let opts = server.cdc_user().await;
    let mut root = utc_session(server.opts("root")).await;
    root.query_drop("CREATE DATABASE app CHARACTER SET utf8mb4")
        .await
        .unwrap();
    root.query_drop(TABLE).await.unwrap();
    let mut reader = start_reader(4500, opts, None, StartBy::FileCoordinates).await;
    let cases = [max_row(), min_row(), null_row()];
    for case in &cases {
        assert_eq!(case.sql_values.len(), COLUMNS);
        assert_eq!(case.expected.len(), COLUMNS);
        let sql = format!(
            "INSERT INTO app.everything VALUES ({})",
            case.sql_values.join(", ")
        );
        root.exec_drop(sql, Params::Positional(case.params.clone()))
            .await
            .unwrap();
    }
    let events = read_decoded(&mut reader, cases.len()).await;
    let rows: Vec<&DecodedEvent> = events
        .iter()
        .filter(|e| matches!(e, DecodedEvent::Rows { .. }))
        .collect();
    assert_eq!(rows.len(), cases.len());
    let DecodedEvent::Rows {
        columns,
        table,
        kind,
        ..
    } = rows[0]
    else {
        panic!()
    };
    assert_eq!(
        (table.database.as_str(), table.name.as_str()),
        ("app", "everything")
    );
    assert_eq!(*kind, RowsKind::Insert);
    assert_eq!(
        columns[1].name.as_deref(),
        Some("ti"),
        "FULL metadata names columns"
    );
    for (case, event) in cases.iter().zip(rows) {
        let decoded = after_image(event);
        for (i, (got, want)) in decoded.iter().zip(&case.expected).enumerate() {
            assert_eq!(
                got,
                want,
                "column {} of row {:?}",
                columns[i].name.as_deref().unwrap_or("?"),
                case.expected[0]
            );
        }
    }

    // Updates and deletes carry both images; a MINIMAL image marks the
    // columns it leaves out as unchanged.
    root.query_drop(
        "UPDATE app.everything SET vc = 'changed', d = 0.5 WHERE id = 1;
         DELETE FROM app.everything WHERE id = 2;
         SET SESSION binlog_row_image = 'MINIMAL';
         UPDATE app.everything SET vc = 'minimal' WHERE id = 1;",
    )
    .await
    .unwrap();
    let events = read_decoded(&mut reader, 3).await;
    let changes: Vec<&DecodedEvent> = events
        .iter()
        .filter(|e| matches!(e, DecodedEvent::Rows { .. }))
        .collect();
    let DecodedEvent::Rows {
        kind: RowsKind::Update,
        rows,
        ..
    } = changes[0]
    else {
        panic!("{:?}", changes[0])
    };
    let (before, after) = (rows[0].0.as_ref().unwrap(), rows[0].1.as_ref().unwrap());
    assert_eq!(before, &cases[0].expected);
    let mut want = cases[0].expected.clone();
    want[19] = text("changed");
    want[14] = MysqlValue::Double(0.5);
    assert_eq!(after, &want);
    let DecodedEvent::Rows {
        kind: RowsKind::Delete,
        rows,
        ..
    } = changes[1]
    else {
        panic!("{:?}", changes[1])
    };
    assert_eq!(rows[0].0.as_ref().unwrap(), &cases[1].expected);
    assert!(rows[0].1.is_none());
    let DecodedEvent::Rows { rows, .. } = changes[2] else {
        panic!()
    };
    let (before, after) = (rows[0].0.as_ref().unwrap(), rows[0].1.as_ref().unwrap());
    assert_eq!(
        before[0],
        MysqlValue::Int(1),
        "MINIMAL before image: the key"
    );
    assert!(before[1..].iter().all(|v| *v == MysqlValue::Unchanged));
    assert_eq!(after[19], text("minimal"));
    assert!(
        after
            .iter()
            .enumerate()
            .all(|(i, v)| i == 19 || *v == MysqlValue::Unchanged),
        "{after:?}"
    );
}
