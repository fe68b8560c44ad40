//! The snapshot's binary COPY decoding agrees with the stream's text
//! decoding, value for value.
//!
//! For a table with one column per supported type family (domains, an enum,
//! a composite, arrays with NULL elements, empty arrays, lower bounds other
//! than 1, two-dimensional arrays, text-formatted types such as interval,
//! inet, money, timetz, xml) and edge-case rows (extreme integers, NaN and
//! infinite floats, negative zero, BC dates, years past 9999, infinite
//! timestamps, NaN in a bounded numeric, bpchar padding, "char" NUL and
//! high-bit bytes), every cell is read twice in one session with the
//! daemon's `SESSION_OPTIONS`:
//!
//! - as the snapshot reads it: `COPY (SELECT <select_expr>…) TO STDOUT
//!   (FORMAT binary)` through `BinaryCopyOutStream`, `RawField` and
//!   `decode_field`;
//! - as the stream reads it: the simple-query protocol returns each value's
//!   type output text (exactly what pgoutput sends), through `parse_text`.
//!
//! Both results must be equal, refusals included (with the same message).
//! The lake types come from `catalog::relation_desc` + `map_type`, as both
//! paths compute them.

use futures::StreamExt;
use tokio_postgres::binary_copy::BinaryCopyOutStream;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};
use tributary::envelope::Value;
use tributary::schema::ColumnType;
use tributary::source::postgres::binary_value::{
    CopyForm, RawField, copy_form, decode_field, select_expr,
};
use tributary::source::postgres::{SESSION_OPTIONS, ValueError, map_type, parse_text};
use tributary_postgres::catalog::{self, TypeCache};

use crate::harness::postgres::{PgCluster, TestDb, pg_error};

const SCHEMA: &str = r#"
CREATE TYPE mood AS ENUM ('sad', 'ok', 'with space', 'NULL');
CREATE TYPE pair AS (a int, b text);
CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
CREATE DOMAIN price AS numeric(12,3);
CREATE DOMAIN short_text AS varchar(10);
CREATE DOMAIN padded AS char(4);
CREATE DOMAIN ip AS inet;
CREATE DOMAIN span AS interval;
CREATE DOMAIN int_list AS integer[];
CREATE TABLE kinds (
    id int PRIMARY KEY,
    b bool, i2 int2, i4 int4, i8 int8, o oid, x xid,
    f4 float4, f8 float8,
    n123 numeric(12,3), n38 numeric(38,0), n102 numeric(10,2), n_free numeric, n_neg numeric(5,-2),
    by bytea,
    d date, tm time, ts timestamp, ts3 timestamp(3), tstz timestamptz,
    txt text, vc varchar(20), bp char(5), nm name, ch "char", js json, jb jsonb, mo mood, u uuid,
    iv interval, ine inet, ci cidr, mac macaddr, mac8 macaddr8, mon money, ttz timetz,
    pt point, rng int4range, vb bit varying, xm xml, tsv tsvector, lsn pg_lsn, comp pair,
    d_pos posint, d_price price, d_short short_text, d_pad padded, d_ip ip, d_span span,
    d_list int_list,
    a_i4 int4[], a_i8 int8[], a_txt text[], a_bp char(3)[], a_num numeric(6,2)[],
    a_ts timestamp[], a_tstz timestamptz[], a_date date[], a_time time[], a_f4 float4[],
    a_f8 float8[], a_bool bool[], a_uuid uuid[], a_json json[], a_jsonb jsonb[], a_mood mood[],
    a_bytea bytea[], a_ch "char"[], a_pos posint[], a_inet inet[], a_iv interval[],
    a_nfree numeric[]
);
"#;

/// Edge-case rows; columns left out are NULL.
const ROWS: &str = r#"
INSERT INTO kinds VALUES (
    1, true, 12, 123456, 1234567890123, 4000000000, '4000000000',
    1.5, 0.1,
    12.345, 99999999999999999999999999999999999999, 12.5, 1.5, 12345,
    '\x00ff10',
    '2024-02-29', '12:34:56.789', '2024-01-02 03:04:05.123456', '2024-01-02 03:04:05.123456',
    '2024-01-02 03:04:05.5+05:30',
    'plain', 'varying', 'ab', 'a name', 'x', '{"b": 1,   "a": [1, 2]}', '{"b": 1,   "a": [1, 2]}',
    'with space', 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11',
    '1 year 2 mons 3 days 04:05:06.7', '192.168.1.1', '10.0.0.0/8', '08:00:2b:01:02:03',
    '08:00:2b:01:02:03:04:05', 1234.5, '12:00:00+05:30',
    '(1.5,2)', '[1,10)', B'1011', '<?xml version="1.0" encoding="UTF-8"?><a>x</a>',
    'a fat cat', '16/B374D848', ROW(1, 'x y'),
    7, 1.5, 'short', 'ab', '10.1.2.3', '1 day',
    '{1,2}',
    '{1,NULL,-2147483648}', '{9223372036854775807}',
    '{"NULL",NULL,"","a,b","quote\"d","back\\slash","  spaced  ",ünïcode}',
    '{a,NULL,ab}', '{1.5,NULL,-3.25}',
    '{"2024-01-02 03:04:05",NULL}', '{"2024-01-02 03:04:05+00","0044-03-15 12:00:00+00 BC"}',
    '{2024-02-29,NULL,0001-01-01}', '{00:00:00,24:00:00}', '{1.5,NaN,-Infinity}',
    '{NaN,Infinity,-Infinity,-0,1.5e300}', '{t,f,NULL}',
    '{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11,NULL}',
    ARRAY['{"k": "v"}'::json, NULL, '[1,  2]'], ARRAY['{"k": "v"}'::jsonb, NULL, '"s"'],
    ARRAY['with space', 'NULL', NULL]::mood[],
    '{"\\x00ff",NULL,"\\x"}', ARRAY['a', E'\\351'::"char", ''::"char", NULL],
    '{1,NULL,3}', '{192.168.1.1,10.0.0.0/8,::1,NULL}', '{"1 day",NULL}', '{NaN,1.5,Infinity}'
);
INSERT INTO kinds (id, b, i2, i4, i8, o, x, f4, f8, n123, n38, n102, n_free, n_neg, by,
    d, tm, ts, ts3, tstz, txt, vc, bp, nm, ch, js, jb, mo, u,
    iv, ine, ci, mon, ttz, d_pos, d_price, d_pad, d_ip,
    a_i4, a_txt, a_bp, a_num, a_date, a_f8, a_ch)
VALUES (
    2, false, -32768, -2147483648, -9223372036854775808, 0, '0',
    'NaN', 'NaN',
    -0.001, -99999999999999999999999999999999999999, -0.01, 'NaN', -99900, '\x',
    '0044-03-15 BC', '24:00:00', '0044-03-15 12:00:00.0005 BC', '1999-12-31 23:59:59.999',
    '0001-01-01 00:00:00+00 BC',
    '', '', '', '', '', '""', '[]', 'sad', '00000000-0000-0000-0000-000000000000',
    '-1 days -00:00:01', '::1', '::/0', -0.01, '00:00:00-12', 1, -0.5, '', '2001:db8::1/64',
    '{}', '{}', '{}', '{}', '{}', '{}', '{}'
);
INSERT INTO kinds (id, i2, i4, i8, o, x, f4, f8, n123, n102, n_free, d, tm, ts, ts3, tstz,
    txt, bp, ch, jb, a_i4, a_txt, a_date, a_f4, a_ch)
VALUES (
    3, 32767, 2147483647, 9223372036854775807, 4294967295, '4294967295',
    'Infinity', '-Infinity',
    0.0005, 0, '1e-100', '4713-11-24 BC', '23:59:59.999999', '9999-12-31 23:59:59.999999',
    '0001-01-01 00:00:00', '1970-01-01 00:00:00+00',
    E'tab\there, quote''s, back\\slash, ñ€😀', 'ñ', E'\\351', '{"ü": "\u00e9", "n": null}',
    '[0:1]={5,6}', '{"{braces}", "x y"}', '{"0001-12-31 BC"}',
    '{1e-45,3.4028235e38,-0,0.1}', '{""}'
);
INSERT INTO kinds (id, f4, f8, n_free) VALUES (4, '-0', '5e-324', '-Infinity');
INSERT INTO kinds (id) VALUES (5);
-- Values the lake cannot represent: refused on both paths.
INSERT INTO kinds (id, n102, d, ts, tstz, a_i4, a_txt, a_num, a_tstz, a_date, a_inet)
VALUES (
    6, 'NaN', 'infinity', 'infinity', '-infinity', '{{1,2},{3,4}}', '{{a},{b}}', '{1.5,NaN}',
    '{-infinity}', '{10000-01-01}', '{{1.1.1.1},{2.2.2.2}}'
);
INSERT INTO kinds (id, d, ts, tstz) VALUES (7, '-infinity', '10000-01-01 00:00:00', '294276-12-31 23:59:59.999999+00');
INSERT INTO kinds (id, d, ts) VALUES (8, '5874897-12-31', '294276-12-31 23:59:59.999999');
INSERT INTO kinds (id, d) VALUES (9, '10000-01-01');
"#;

/// Many random floats, decimals and timestamps: the fast paths against the
/// text grammar.
const RANDOM: &str = r#"
SELECT setseed(0.42);
CREATE TABLE randoms (
    id int PRIMARY KEY, f4 float4, f8 float8, n123 numeric(12,3), n38 numeric(38,10),
    ts timestamp, tstz timestamptz, d date, tm time, a_f4 float4[]
);
INSERT INTO randoms
SELECT g,
    ((random() - 0.5) * 10 ^ (random() * 76 - 38))::float4,
    (random() - 0.5) * 10 ^ (random() * 600 - 300),
    round(((random() - 0.5) * 10 ^ (random() * 9))::numeric, 3),
    round(((random() - 0.5) * 10 ^ (random() * 28))::numeric, (random() * 10)::int),
    timestamp '0001-01-01' + random() * (timestamp '9999-12-31' - timestamp '0001-01-01'),
    timestamptz '1900-01-01+00' + random() * interval '300 years',
    date '4713-01-01 BC' + (random() * 5000000)::int,
    time '00:00' + random() * interval '24 hours',
    ARRAY[((random() - 0.5) * 10 ^ (random() * 76 - 38))::float4, NULL]
FROM generate_series(1, 20000) g;
"#;

/// Columns that must be selected as text; every other one is decoded
/// natively.
const TEXT_FORM: &[&str] = &[
    "n_free", "n_neg", "iv", "ine", "ci", "mac", "mac8", "mon", "ttz", "pt", "rng", "vb", "xm",
    "tsv", "lsn", "comp", "d_price", "d_ip", "d_span", "a_inet", "a_iv", "a_nfree",
];

/// A session with the daemon's session options.
async fn session(db: &TestDb) -> Client {
    let mut config: tokio_postgres::Config = db.conninfo.parse().expect("conninfo");
    config.options(SESSION_OPTIONS);
    let (client, connection) = config
        .connect(NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect: {}", pg_error(&e)));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

struct Column {
    name: String,
    form: CopyForm,
    column_type: ColumnType,
    expr: String,
}

type Decoded = Result<Value, ValueError>;

/// Reads every cell of `table` both ways; returns (column, per-row results
/// as (binary, text)).
async fn read_both_ways(
    client: &Client,
    table: &str,
) -> (Vec<Column>, Vec<Vec<(Decoded, Decoded)>>) {
    let mut types = TypeCache::new();
    let rel = catalog::relation_desc(client, &mut types, "public", table)
        .await
        .expect("relation_desc")
        .expect("table exists");
    let columns: Vec<Column> = rel
        .columns
        .iter()
        .map(|c| {
            let column_type = map_type(&c.type_info, c.type_modifier).column_type;
            let quoted = format!("\"{}\"", c.name);
            Column {
                name: c.name.clone(),
                form: copy_form(&c.type_info, &column_type),
                expr: select_expr(&quoted, &c.type_info, &column_type),
                column_type,
            }
        })
        .collect();

    let exprs: Vec<&str> = columns.iter().map(|c| c.expr.as_str()).collect();
    let copy = format!(
        "COPY (SELECT {} FROM {table} ORDER BY id) TO STDOUT (FORMAT binary)",
        exprs.join(", ")
    );
    let stream = client
        .copy_out(copy.as_str())
        .await
        .unwrap_or_else(|e| panic!("{copy}: {}", pg_error(&e)));
    let rows = BinaryCopyOutStream::new(stream, &vec![Type::BYTEA; columns.len()]);
    futures::pin_mut!(rows);
    let mut binary: Vec<Vec<Decoded>> = Vec::new();
    while let Some(row) = rows.next().await {
        let row = row.unwrap_or_else(|e| panic!("{copy}: {}", pg_error(&e)));
        binary.push(
            columns
                .iter()
                .enumerate()
                .map(|(i, c)| match row.try_get::<Option<RawField>>(i).unwrap() {
                    None => Ok(Value::Null),
                    Some(raw) => decode_field(c.form, &c.column_type, raw.0),
                })
                .collect(),
        );
    }

    let names: Vec<String> = columns.iter().map(|c| format!("\"{}\"", c.name)).collect();
    let query = format!("SELECT {} FROM {table} ORDER BY id", names.join(", "));
    let messages = client
        .simple_query(&query)
        .await
        .unwrap_or_else(|e| panic!("{query}: {}", pg_error(&e)));
    let text: Vec<Vec<Decoded>> = messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(
                columns
                    .iter()
                    .enumerate()
                    .map(|(i, c)| match row.get(i) {
                        None => Ok(Value::Null),
                        Some(t) => parse_text(&c.column_type, t),
                    })
                    .collect(),
            ),
            _ => None,
        })
        .collect();
    assert_eq!(binary.len(), text.len(), "row counts of {table}");
    let pairs = binary
        .into_iter()
        .zip(text)
        .map(|(b, t)| b.into_iter().zip(t).collect())
        .collect();
    (columns, pairs)
}

/// Every cell where the two paths differ (NaN compared through `{:?}`).
fn mismatches(table: &str, columns: &[Column], rows: &[Vec<(Decoded, Decoded)>]) -> Vec<String> {
    let mut out = Vec::new();
    for (r, row) in rows.iter().enumerate() {
        for (c, (binary, text)) in row.iter().enumerate() {
            let (b, t) = (format!("{binary:?}"), format!("{text:?}"));
            if b != t {
                out.push(format!(
                    "{table} row {} column {} ({:?}, {}): binary {b} != text {t}",
                    r + 1,
                    columns[c].name,
                    columns[c].column_type,
                    columns[c].expr
                ));
            }
        }
    }
    out
}

fn cell<'a>(
    columns: &[Column],
    rows: &'a [Vec<(Decoded, Decoded)>],
    id: usize,
    name: &str,
) -> &'a Decoded {
    let c = columns
        .iter()
        .position(|c| c.name == name)
        .unwrap_or_else(|| panic!("no column {name}"));
    &rows[id - 1][c].0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_copy_decodes_exactly_like_pgoutput_text() {
    let db = PgCluster::shared().create_database("binary_values").await;
    db.execute(SCHEMA).await;
    db.execute(ROWS).await;
    let client = session(&db).await;
    let (columns, rows) = read_both_ways(&client, "kinds").await;

    for c in &columns {
        let want_text = TEXT_FORM.contains(&c.name.as_str());
        assert_eq!(
            matches!(c.form, CopyForm::Text),
            want_text,
            "column {} ({:?}) is read as {:?} by {}",
            c.name,
            c.column_type,
            c.form,
            c.expr
        );
    }
    let problems = mismatches("kinds", &columns, &rows);
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // The rows really exercise what they claim to.
    let text = |s: &str| Ok(Value::Text(s.into()));
    assert_eq!(cell(&columns, &rows, 1, "bp"), &text("ab   "));
    assert_eq!(cell(&columns, &rows, 1, "d_pad"), &text("ab  "));
    assert_eq!(cell(&columns, &rows, 1, "ine"), &text("192.168.1.1"));
    assert_eq!(cell(&columns, &rows, 1, "d_ip"), &text("10.1.2.3"));
    assert_eq!(cell(&columns, &rows, 1, "xm"), &text("<a>x</a>"));
    assert_eq!(
        cell(&columns, &rows, 1, "u"),
        &text("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
    );
    assert_eq!(
        cell(&columns, &rows, 1, "jb"),
        &text(r#"{"a": [1, 2], "b": 1}"#)
    );
    assert_eq!(
        cell(&columns, &rows, 1, "n123"),
        &Ok(Value::Decimal(12_345))
    );
    assert_eq!(cell(&columns, &rows, 2, "n123"), &Ok(Value::Decimal(-1)));
    assert_eq!(cell(&columns, &rows, 3, "n123"), &Ok(Value::Decimal(1)));
    assert_eq!(cell(&columns, &rows, 2, "ch"), &text(""));
    assert_eq!(cell(&columns, &rows, 3, "ch"), &text("\\351"));
    assert_eq!(
        cell(&columns, &rows, 1, "a_i4"),
        &Ok(Value::List(vec![
            Value::Int32(1),
            Value::Null,
            Value::Int32(i32::MIN)
        ]))
    );
    assert_eq!(cell(&columns, &rows, 2, "a_i4"), &Ok(Value::List(vec![])));
    assert_eq!(
        cell(&columns, &rows, 1, "a_bp"),
        &Ok(Value::List(vec![
            Value::Text("a  ".into()),
            Value::Null,
            Value::Text("ab ".into())
        ]))
    );
    assert!(matches!(cell(&columns, &rows, 2, "d"), Ok(Value::Date(d)) if *d < -700_000));
    assert_eq!(
        format!("{:?}", cell(&columns, &rows, 4, "f4")),
        "Ok(Float32(-0.0))"
    );
    for (id, name) in [(2, "f8"), (2, "f4"), (3, "f4"), (3, "f8"), (1, "a_f8")] {
        assert!(cell(&columns, &rows, id, name).is_ok(), "{id} {name}");
    }
    // Refusals, identical on both paths (checked above), really happen.
    for (id, name) in [
        (6, "n102"),
        (6, "d"),
        (6, "ts"),
        (6, "tstz"),
        (6, "a_i4"),
        (6, "a_txt"),
        (6, "a_num"),
        (6, "a_tstz"),
        (6, "a_date"),
        (6, "a_inet"),
        (7, "d"),
        (7, "ts"),
        (7, "tstz"),
        (8, "d"),
        (8, "ts"),
        (9, "d"),
    ] {
        assert!(
            cell(&columns, &rows, id, name).is_err(),
            "row {id} column {name} should be refused: {:?}",
            cell(&columns, &rows, id, name)
        );
    }
    let nan = cell(&columns, &rows, 6, "n102").as_ref().unwrap_err();
    assert!(
        nan.0.contains("NaN") && nan.0.contains("decimal(10,2)"),
        "{nan}"
    );
    assert!(
        cell(&columns, &rows, 6, "a_i4")
            .as_ref()
            .unwrap_err()
            .0
            .contains("multi-dimensional")
    );

    db.execute(RANDOM).await;
    let (columns, rows) = read_both_ways(&client, "randoms").await;
    assert!(
        columns
            .iter()
            .all(|c| matches!(c.form, CopyForm::Binary(_)))
    );
    assert_eq!(rows.len(), 20_000);
    let problems = mismatches("randoms", &columns, &rows);
    assert!(
        problems.is_empty(),
        "{} mismatches, first ones:\n{}",
        problems.len(),
        problems[..problems.len().min(20)].join("\n")
    );
}
