//! Quoting helpers for the SQL this crate builds (publication DDL) and prints in remedies.

/// Quote an SQL identifier unless it is a plain lower-case name.
pub fn quote_ident(name: &str) -> String {
    let plain = !name.is_empty()
        && name.bytes().enumerate().all(|(i, b)| {
            b == b'_' || b.is_ascii_lowercase() || (i > 0 && (b.is_ascii_digit() || b == b'$'))
        });
    if plain && !is_reserved(name) {
        name.to_owned()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// `schema.table`, each part quoted as needed.
pub fn qualified(schema: &str, table: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(table))
}

/// Quote an SQL string literal.
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A few reserved words that are plausible table/column/publication names.
fn is_reserved(name: &str) -> bool {
    matches!(
        name,
        "all"
            | "user"
            | "order"
            | "table"
            | "select"
            | "from"
            | "where"
            | "group"
            | "limit"
            | "offset"
            | "check"
            | "column"
            | "default"
            | "primary"
            | "references"
            | "window"
            | "end"
            | "to"
            | "for"
            | "in"
            | "on"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote_ident("orders"), "orders");
        assert_eq!(quote_ident("Orders"), "\"Orders\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_ident("1x"), "\"1x\"");
        assert_eq!(quote_ident("user"), "\"user\"");
        assert_eq!(qualified("public", "My Table"), "public.\"My Table\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
    }
}
