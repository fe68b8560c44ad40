//! What the binlog says about each column of a table: type, the type's
//! binlog metadata (width, scale, fractional digits), signedness, collation
//! and — with `binlog_row_metadata = FULL` — name and ENUM/SET labels.
//!
//! Sits between a TABLE_MAP event (read by [`crate::reader`]) and
//! [`crate::column_value`], which needs these facts to turn the cells of
//! the following rows events into [`crate::MysqlValue`]s.

use mysql_async::binlog::events::{OptionalMetaExtractor, OptionalMetadataField, TableMapEvent};
use mysql_async::consts::ColumnType;

use crate::error::MysqlError;

/// One column as the table map describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnMeta {
    /// Position in the table (and in full row images).
    pub index: usize,
    /// Name, when the binlog carries names (`binlog_row_metadata = FULL`).
    pub name: Option<String>,
    /// The real type (ENUM/SET resolved from their STRING wrapper).
    pub column_type: ColumnType,
    /// The type's binlog metadata bytes.
    pub type_meta: Vec<u8>,
    /// `UNSIGNED` (numeric columns; false when the binlog does not say).
    pub unsigned: bool,
    /// Collation id of a character, ENUM or SET column, when the binlog
    /// says (`binlog_row_metadata` MINIMAL or FULL).
    pub collation: Option<u16>,
    /// ENUM labels in declaration order (`binlog_row_metadata = FULL`).
    pub enum_labels: Option<Vec<String>>,
    /// SET member labels in bit order (`binlog_row_metadata = FULL`).
    pub set_labels: Option<Vec<String>>,
    /// May be NULL.
    pub nullable: bool,
}

impl ColumnMeta {
    /// The name, or `@N` (1-based position) when the binlog has none.
    pub fn display_name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("@{}", self.index + 1))
    }

    /// Fractional-second digits of TIME2/DATETIME2/TIMESTAMP2 columns.
    pub fn fractional_digits(&self) -> u8 {
        match self.column_type {
            ColumnType::MYSQL_TYPE_TIME2
            | ColumnType::MYSQL_TYPE_DATETIME2
            | ColumnType::MYSQL_TYPE_TIMESTAMP2 => self.type_meta.first().copied().unwrap_or(0),
            _ => 0,
        }
    }

    /// Width in bits of a BIT column.
    pub fn bit_width(&self) -> u16 {
        match self.type_meta[..] {
            [bits, bytes, ..] => u16::from(bytes) * 8 + u16::from(bits),
            _ => 0,
        }
    }

    /// Declared (precision, scale) of a DECIMAL column.
    pub fn decimal_precision_scale(&self) -> (u8, u8) {
        match self.type_meta[..] {
            [precision, scale, ..] => (precision, scale),
            _ => (0, 0),
        }
    }

    /// Maximum length in bytes of a CHAR/BINARY column (`MYSQL_TYPE_STRING`).
    pub fn fixed_length(&self) -> Option<usize> {
        if self.column_type != ColumnType::MYSQL_TYPE_STRING {
            return None;
        }
        match self.type_meta[..] {
            [byte0, byte1, ..] if byte0 & 0x30 != 0x30 => {
                Some(usize::from(byte1) | (usize::from((byte0 & 0x30) ^ 0x30) << 4))
            }
            [_, byte1, ..] => Some(usize::from(byte1)),
            _ => None,
        }
    }
}

/// Every column of `table`, in table order.
pub fn columns_of(table: &TableMapEvent<'_>) -> Result<Vec<ColumnMeta>, MysqlError> {
    let bad = |what: String| MysqlError::Definite {
        message: format!(
            "cannot read the table map of {}.{}: {what}",
            table.database_name(),
            table.table_name()
        ),
    };
    let extractor = OptionalMetaExtractor::new(table.iter_optional_meta())
        .map_err(|e| bad(format!("optional metadata: {e}")))?;
    let mut signedness = extractor.iter_signedness();
    let mut charsets = extractor.iter_charset();
    let mut enum_set_charsets = extractor.iter_enum_and_set_charset();
    let mut names = extractor.iter_column_name();
    let (enum_labels, set_labels) = labels(table).map_err(|e| bad(e.to_string()))?;
    let (mut enum_labels, mut set_labels) = (enum_labels.into_iter(), set_labels.into_iter());
    let nulls = table.null_bitmask();
    let count = usize::try_from(table.columns_count()).map_err(|e| bad(e.to_string()))?;
    let mut out = Vec::with_capacity(count);
    for index in 0..count {
        let column_type = table
            .get_column_type(index)
            .map_err(|e| bad(format!("column {}: {e}", index + 1)))?
            .ok_or_else(|| bad(format!("column {} has no type", index + 1)))?;
        let type_meta = table
            .get_column_metadata(index)
            .map(<[u8]>::to_vec)
            .unwrap_or_default();
        let unsigned = column_type.is_numeric_type() && signedness.next().unwrap_or(false);
        let collation = if column_type.is_character_type() {
            charsets
                .next()
                .transpose()
                .map_err(|e| bad(e.to_string()))?
        } else if column_type.is_enum_or_set_type() {
            enum_set_charsets
                .next()
                .transpose()
                .map_err(|e| bad(e.to_string()))?
        } else {
            None
        };
        let name = names
            .next()
            .transpose()
            .map_err(|e| bad(e.to_string()))?
            .map(|n| n.name().into_owned());
        let (enum_names, set_names) = match column_type {
            ColumnType::MYSQL_TYPE_ENUM => (enum_labels.next(), None),
            ColumnType::MYSQL_TYPE_SET => (None, set_labels.next()),
            _ => (None, None),
        };
        out.push(ColumnMeta {
            index,
            name,
            column_type,
            type_meta,
            unsigned,
            collation,
            enum_labels: enum_names,
            set_labels: set_names,
            nullable: nulls.get(index).is_some_and(|b| *b),
        });
    }
    Ok(out)
}

/// ENUM and SET labels, one list per ENUM (resp. SET) column in order.
type Labels = (Vec<Vec<String>>, Vec<Vec<String>>);

fn labels(table: &TableMapEvent<'_>) -> std::io::Result<Labels> {
    let (mut enums, mut sets) = (Vec::new(), Vec::new());
    for field in table.iter_optional_meta() {
        match field? {
            OptionalMetadataField::EnumStrValue(values) => {
                for column in values.iter_values() {
                    let column = column?;
                    enums.push(
                        column
                            .values()
                            .iter()
                            .map(|v| v.value().into_owned())
                            .collect(),
                    );
                }
            }
            OptionalMetadataField::SetStrValue(values) => {
                for column in values.iter_values() {
                    let column = column?;
                    sets.push(
                        column
                            .values()
                            .iter()
                            .map(|v| v.value().into_owned())
                            .collect(),
                    );
                }
            }
            _ => {}
        }
    }
    Ok((enums, sets))
}
