//! PostgreSQL type → lake [`ColumnType`] mapping.
//!
//! Runs when a pgoutput Relation message arrives: each column's resolved
//! [`PgTypeInfo`] (domains already reduced to their base type by the
//! connector) becomes a lake type. The README's type table mirrors this file;
//! anything without a richer mapping is written as text, with one warning per
//! column so nobody is surprised.

use tributary_postgres::{PgTypeInfo, PgTypeKind};

use crate::schema::ColumnType;

/// Built-in type OIDs we map to non-text lake types (from `pg_type.dat`).
mod oid {
    pub const BOOL: u32 = 16;
    pub const BYTEA: u32 = 17;
    pub const INT8: u32 = 20;
    pub const INT2: u32 = 21;
    pub const INT4: u32 = 23;
    pub const TEXT: u32 = 25;
    pub const OID: u32 = 26;
    pub const JSON: u32 = 114;
    pub const FLOAT4: u32 = 700;
    pub const FLOAT8: u32 = 701;
    pub const MONEY: u32 = 790;
    pub const MACADDR: u32 = 829;
    pub const INET: u32 = 869;
    pub const CIDR: u32 = 650;
    pub const MACADDR8: u32 = 774;
    pub const BPCHAR: u32 = 1042;
    pub const VARCHAR: u32 = 1043;
    pub const DATE: u32 = 1082;
    pub const TIME: u32 = 1083;
    pub const TIMESTAMP: u32 = 1114;
    pub const TIMESTAMPTZ: u32 = 1184;
    pub const INTERVAL: u32 = 1186;
    pub const TIMETZ: u32 = 1266;
    pub const NUMERIC: u32 = 1700;
    pub const UUID: u32 = 2950;
    pub const JSONB: u32 = 3802;
    pub const NAME: u32 = 19;
    pub const CHAR: u32 = 18;
    pub const XID: u32 = 28;
}

/// How a column is mapped, and whether the mapping is a text fallback for a
/// type we do not know (which deserves a warning).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub column_type: ColumnType,
    pub fallback: bool,
}

/// Maps a resolved PostgreSQL type with its type modifier.
pub fn map_type(info: &PgTypeInfo, typmod: i32) -> Mapping {
    match &info.kind {
        PgTypeKind::Domain { base } => map_type(base, typmod),
        PgTypeKind::Enum => known(ColumnType::Text),
        PgTypeKind::Array { element } => {
            let inner = map_type(element, typmod);
            match inner.column_type {
                ColumnType::List { .. } => Mapping {
                    column_type: ColumnType::Text,
                    fallback: true,
                },
                element => Mapping {
                    column_type: ColumnType::List {
                        element: Box::new(element),
                    },
                    fallback: inner.fallback,
                },
            }
        }
        _ => map_base(info.oid, typmod),
    }
}

fn known(column_type: ColumnType) -> Mapping {
    Mapping {
        column_type,
        fallback: false,
    }
}

fn map_base(type_oid: u32, typmod: i32) -> Mapping {
    let t = match type_oid {
        oid::BOOL => ColumnType::Bool,
        oid::INT2 => ColumnType::Int16,
        oid::INT4 => ColumnType::Int32,
        oid::INT8 => ColumnType::Int64,
        oid::OID | oid::XID => ColumnType::Int64,
        oid::FLOAT4 => ColumnType::Float32,
        oid::FLOAT8 => ColumnType::Float64,
        oid::NUMERIC => numeric_type(typmod),
        oid::BYTEA => ColumnType::Binary,
        oid::DATE => ColumnType::Date,
        oid::TIME => ColumnType::Time,
        oid::TIMESTAMP => ColumnType::Timestamp,
        oid::TIMESTAMPTZ => ColumnType::TimestampTz,
        oid::TEXT
        | oid::VARCHAR
        | oid::BPCHAR
        | oid::NAME
        | oid::CHAR
        | oid::JSON
        | oid::JSONB
        | oid::UUID
        | oid::INTERVAL
        | oid::TIMETZ
        | oid::INET
        | oid::CIDR
        | oid::MACADDR
        | oid::MACADDR8
        | oid::MONEY => ColumnType::Text,
        _ => {
            return Mapping {
                column_type: ColumnType::Text,
                fallback: true,
            };
        }
    };
    known(t)
}

/// `numeric(p,s)` with p ≤ 38 is exact in Decimal128; unconstrained numeric
/// (typmod -1) or wider ones are kept as their exact text.
fn numeric_type(typmod: i32) -> ColumnType {
    if typmod < 4 {
        return ColumnType::Text;
    }
    let packed = typmod - 4;
    let precision = (packed >> 16) & 0xFFFF;
    // The scale is an 11-bit signed field since PostgreSQL 15 (negative scales).
    let raw_scale = packed & 0x7FF;
    let scale = if raw_scale & 0x400 != 0 {
        raw_scale - 0x800
    } else {
        raw_scale
    };
    if (1..=38).contains(&precision) && (0..=precision).contains(&scale) {
        ColumnType::Decimal {
            precision: precision as u8,
            scale: scale as i8,
        }
    } else {
        ColumnType::Text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(oid: u32) -> PgTypeInfo {
        PgTypeInfo {
            oid,
            name: String::from("t"),
            schema: "pg_catalog".into(),
            typmod: -1,
            kind: PgTypeKind::Base,
        }
    }

    #[test]
    fn numeric_typmod_decodes_precision_and_scale() {
        // numeric(12,2): typmod = ((12 << 16) | 2) + 4
        let typmod = ((12 << 16) | 2) + 4;
        assert_eq!(
            map_type(&base(oid::NUMERIC), typmod).column_type,
            ColumnType::Decimal {
                precision: 12,
                scale: 2
            }
        );
        assert_eq!(
            map_type(&base(oid::NUMERIC), -1).column_type,
            ColumnType::Text
        );
        let wide = ((50 << 16) | 2) + 4;
        assert_eq!(
            map_type(&base(oid::NUMERIC), wide).column_type,
            ColumnType::Text
        );
    }

    #[test]
    fn domains_and_arrays_follow_their_base() {
        let domain = PgTypeInfo {
            oid: 99999,
            name: "posint".into(),
            schema: "public".into(),
            typmod: -1,
            kind: PgTypeKind::Domain {
                base: Box::new(base(oid::INT4)),
            },
        };
        assert_eq!(map_type(&domain, -1).column_type, ColumnType::Int32);
        let array = PgTypeInfo {
            oid: 1007,
            name: "integer[]".into(),
            schema: "pg_catalog".into(),
            typmod: -1,
            kind: PgTypeKind::Array {
                element: Box::new(base(oid::INT4)),
            },
        };
        assert_eq!(
            map_type(&array, -1).column_type,
            ColumnType::List {
                element: Box::new(ColumnType::Int32)
            }
        );
    }

    #[test]
    fn unknown_types_fall_back_to_text_with_warning_flag() {
        let point = base(600);
        let m = map_type(&point, -1);
        assert_eq!(m.column_type, ColumnType::Text);
        assert!(m.fallback);
        assert!(!map_type(&base(oid::UUID), -1).fallback);
    }
}
