//! The leading keywords of a statement, past comments: enough to tell a
//! table DDL from everything else before handing it to the SQL parser.
//!
//! MySQL's executable comments (`/*!50100 … */`, MariaDB's `/*M!… */`)
//! count as statement text, as the server treats them; other comments are
//! skipped.

/// A leading keyword and where it ends in the (unwrapped) text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Word {
    /// Upper-case keyword.
    pub(crate) text: String,
    /// Byte offset just past the word.
    pub(crate) end: usize,
}

/// `sql` with executable-comment markers blanked out (so their content is
/// statement text), everything else unchanged (same byte offsets).
pub(crate) fn unwrap_executable_comments(sql: &str) -> String {
    let bytes = sql.as_bytes();
    let mut out = bytes.to_vec();
    let mut i = 0;
    let mut quote: Option<u8> = None;
    let mut open_executable = 0usize;
    while i < bytes.len() {
        let b = bytes[i];
        if let Some(q) = quote {
            if b == b'\\' {
                i += 2;
                continue;
            }
            if b == q {
                quote = None;
            }
            i += 1;
            continue;
        }
        match b {
            b'\'' | b'"' | b'`' => quote = Some(b),
            b'/' if bytes[i..].starts_with(b"/*!") || bytes[i..].starts_with(b"/*M!") => {
                let mut j = i + if bytes[i + 2] == b'M' { 4 } else { 3 };
                while j < bytes.len() && bytes[j].is_ascii_digit() {
                    j += 1;
                }
                out[i..j].fill(b' ');
                open_executable += 1;
                i = j;
                continue;
            }
            b'/' if bytes[i..].starts_with(b"/*") => {
                // A plain comment: skip to its end untouched.
                match find(bytes, i + 2, b"*/") {
                    Some(end) => i = end + 2,
                    None => i = bytes.len(),
                }
                continue;
            }
            b'*' if open_executable > 0 && bytes[i..].starts_with(b"*/") => {
                out[i..i + 2].fill(b' ');
                open_executable -= 1;
                i += 2;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    // Only ASCII bytes were replaced by ASCII blanks.
    String::from_utf8(out).unwrap_or_else(|_| sql.to_string())
}

fn find(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    bytes
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// Up to `max` leading keywords of `sql`, skipping blanks and comments
/// (`/* */`, `-- `, `#`); stops at the first token that is not a word.
pub(crate) fn leading_words(sql: &str, max: usize) -> Vec<Word> {
    let bytes = sql.as_bytes();
    let mut words = Vec::new();
    let mut i = 0;
    while i < bytes.len() && words.len() < max {
        let b = bytes[i];
        if b.is_ascii_whitespace() {
            i += 1;
        } else if bytes[i..].starts_with(b"/*") {
            i = find(bytes, i + 2, b"*/").map_or(bytes.len(), |end| end + 2);
        } else if b == b'#' || bytes[i..].starts_with(b"-- ") || bytes[i..].starts_with(b"--\n") {
            i = find(bytes, i, b"\n").map_or(bytes.len(), |end| end + 1);
        } else if b.is_ascii_alphabetic() || b == b'_' {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            words.push(Word {
                text: sql[start..i].to_ascii_uppercase(),
                end: i,
            });
        } else {
            break;
        }
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(sql: &str) -> Vec<String> {
        leading_words(sql, 4).into_iter().map(|w| w.text).collect()
    }

    #[test]
    fn words_past_comments() {
        assert_eq!(
            texts("/* c */ -- x\n # y\n alter online table `t` add x int"),
            ["ALTER", "ONLINE", "TABLE"]
        );
        assert_eq!(texts("BEGIN"), ["BEGIN"]);
        assert_eq!(texts("  "), Vec::<String>::new());
        let words = leading_words("drop table t", 2);
        assert_eq!(words[1].end, 10);
    }

    #[test]
    fn executable_comments_become_text() {
        let sql = "/*!40000 ALTER TABLE `t` DISABLE KEYS */";
        let unwrapped = unwrap_executable_comments(sql);
        assert_eq!(unwrapped.len(), sql.len());
        assert_eq!(texts(&unwrapped), ["ALTER", "TABLE"]);
        assert!(unwrapped.trim_end().ends_with("KEYS"));
        let plain = "/* ALTER */ BEGIN";
        assert_eq!(unwrap_executable_comments(plain), plain);
        let quoted = "INSERT INTO t VALUES ('/*!x */')";
        assert_eq!(unwrap_executable_comments(quoted), quoted);
        assert_eq!(
            texts(&unwrap_executable_comments("/*M!100100 DROP TABLE t */")),
            ["DROP", "TABLE", "T"]
        );
    }
}
