//! Documents as canonical Extended JSON v2 text
//! (<https://www.mongodb.com/docs/manual/reference/mongodb-extended-json/>):
//! every value keeps its BSON type (`{"$numberInt":"1"}`,
//! `{"$date":{"$numberLong":"…"}}`), so the text converts back to the same
//! BSON.
//!
//! Used for the daemon's `_doc` column (the whole document, whatever shape
//! inference decided), for values shape inference keeps as
//! [`crate::FieldType::Json`], and for messages. The text is written here
//! rather than through `serde_json::Value`, whose key order depends on a
//! feature (`preserve_order`) any crate of a build can switch on: fields
//! come out in document order, type wrappers in the specification's order,
//! without spaces, so one document always gives the same bytes.

use std::fmt::Write as _;

use mongodb::bson::{Bson, Document};

/// A document as canonical Extended JSON, deterministically.
pub fn extended_json(document: &Document) -> String {
    let mut out = String::new();
    write_document(&mut out, document);
    out
}

/// One value as canonical Extended JSON, deterministically.
pub fn extended_json_value(value: &Bson) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

fn write_document(out: &mut String, document: &Document) {
    out.push('{');
    for (i, (key, value)) in document.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_string(out, key);
        out.push(':');
        write_value(out, value);
    }
    out.push('}');
}

fn write_string(out: &mut String, text: &str) {
    // Serializing a string cannot fail.
    out.push_str(&serde_json::to_string(text).unwrap_or_default());
}

/// `{"$wrapper":"text"}`.
fn write_wrapped(out: &mut String, wrapper: &str, text: &str) {
    out.push_str("{\"");
    out.push_str(wrapper);
    out.push_str("\":");
    write_string(out, text);
    out.push('}');
}

fn write_value(out: &mut String, value: &Bson) {
    match value {
        Bson::Document(document) => write_document(out, document),
        Bson::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Bson::String(text) => write_string(out, text),
        Bson::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
        Bson::Null => out.push_str("null"),
        Bson::Int32(n) => write_wrapped(out, "$numberInt", &n.to_string()),
        Bson::Int64(n) => write_wrapped(out, "$numberLong", &n.to_string()),
        Bson::Double(f) => write_wrapped(out, "$numberDouble", &double_text(*f)),
        Bson::Decimal128(d) => write_wrapped(out, "$numberDecimal", &d.to_string()),
        Bson::ObjectId(id) => write_wrapped(out, "$oid", &id.to_hex()),
        Bson::Symbol(text) => write_wrapped(out, "$symbol", text),
        Bson::JavaScriptCode(code) => write_wrapped(out, "$code", code),
        Bson::JavaScriptCodeWithScope(code) => {
            out.push_str("{\"$code\":");
            write_string(out, &code.code);
            out.push_str(",\"$scope\":");
            write_document(out, &code.scope);
            out.push('}');
        }
        Bson::DateTime(at) => {
            let _ = write!(
                out,
                "{{\"$date\":{{\"$numberLong\":\"{}\"}}}}",
                at.timestamp_millis()
            );
        }
        Bson::Timestamp(ts) => {
            let _ = write!(
                out,
                "{{\"$timestamp\":{{\"t\":{},\"i\":{}}}}}",
                ts.time, ts.increment
            );
        }
        Bson::Binary(binary) => {
            // The bson crate's own base64 text, written in the spec's order.
            let json = value.clone().into_canonical_extjson();
            let base64 = json["$binary"]["base64"].as_str().unwrap_or_default();
            out.push_str("{\"$binary\":{\"base64\":");
            write_string(out, base64);
            let _ = write!(out, ",\"subType\":\"{:02x}\"}}}}", u8::from(binary.subtype));
        }
        Bson::RegularExpression(regex) => {
            let mut options: Vec<char> = regex.options.chars().collect();
            options.sort_unstable();
            out.push_str("{\"$regularExpression\":{\"pattern\":");
            write_string(out, &regex.pattern);
            out.push_str(",\"options\":");
            write_string(out, &options.into_iter().collect::<String>());
            out.push_str("}}");
        }
        Bson::DbPointer(_) => {
            // The pointer's parts are private to the bson crate: read them
            // from its own rendering.
            let json = value.clone().into_canonical_extjson();
            let pointer = &json["$dbPointer"];
            out.push_str("{\"$dbPointer\":{\"$ref\":");
            write_string(out, pointer["$ref"].as_str().unwrap_or_default());
            out.push_str(",\"$id\":");
            write_wrapped(
                out,
                "$oid",
                pointer["$id"]["$oid"].as_str().unwrap_or_default(),
            );
            out.push_str("}}");
        }
        Bson::Undefined => out.push_str("{\"$undefined\":true}"),
        Bson::MinKey => out.push_str("{\"$minKey\":1}"),
        Bson::MaxKey => out.push_str("{\"$maxKey\":1}"),
    }
}

/// A double's canonical text: `1.0`, `-0.0`, `1.5e-7` style digits as Rust
/// prints them (always with a fraction or exponent), `Infinity`,
/// `-Infinity`, `NaN`.
fn double_text(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.to_string();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0.0" } else { "0.0" }.to_string();
    }
    let mut text = f.to_string();
    if f.fract() == 0.0 {
        text.push_str(".0");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::{
        Binary, DateTime, Decimal128, JavaScriptCodeWithScope, Regex, Timestamp, doc,
        oid::ObjectId, spec::BinarySubtype,
    };

    /// One of every BSON type.
    fn every_type() -> Document {
        doc! {
            "_id": ObjectId::parse_str("599af247bb69cd89961c986d").unwrap(),
            "int": 7_i32,
            "long": -9_007_199_254_740_993_i64,
            "double": 1.5,
            "whole": 2.0,
            "zero": -0.0,
            "decimal": "1234.5678".parse::<Decimal128>().unwrap(),
            "text": "caf\u{e9} \"quoted\"\n",
            "flag": true,
            "nothing": null,
            "date": DateTime::from_millis(1_700_000_000_123),
            "before_1970": DateTime::from_millis(-1),
            "ts": Timestamp { time: 1_700_000_000, increment: 3 },
            "bin": Binary { subtype: BinarySubtype::Generic, bytes: vec![0, 1, 2, 255] },
            "uuid": Binary { subtype: BinarySubtype::Uuid, bytes: vec![0x11; 16] },
            "regex": Regex { pattern: "^a.*".into(), options: "ix".into() },
            "min": Bson::MinKey,
            "max": Bson::MaxKey,
            "code": Bson::JavaScriptCode("return 1".into()),
            "scoped": Bson::JavaScriptCodeWithScope(JavaScriptCodeWithScope {
                code: "return x".into(),
                scope: doc! { "x": 1 },
            }),
            "symbol": Bson::Symbol("sym".into()),
            "undefined": Bson::Undefined,
            "nested": { "b": 1, "a": [1_i64, "two", { "c": null }] },
        }
    }

    #[test]
    fn every_type_matches_the_bson_crates_canonical_form() {
        let document = every_type();
        let ours: serde_json::Value = serde_json::from_str(&extended_json(&document)).unwrap();
        let theirs = Bson::Document(document).into_canonical_extjson();
        assert_eq!(ours, theirs);
    }

    #[test]
    fn text_is_byte_stable_and_keeps_field_order() {
        let document = every_type();
        let text = extended_json(&document);
        assert_eq!(text, extended_json(&document.clone()));
        assert!(
            text.starts_with(r#"{"_id":{"$oid":"599af247bb69cd89961c986d"},"int":{"$numberInt":"7"},"long":{"$numberLong":"-9007199254740993"},"double":{"$numberDouble":"1.5"},"whole":{"$numberDouble":"2.0"},"zero":{"$numberDouble":"-0.0"},"decimal":{"$numberDecimal":"1234.5678"}"#),
            "{text}"
        );
        for fragment in [
            r#""ts":{"$timestamp":{"t":1700000000,"i":3}}"#,
            r#""bin":{"$binary":{"base64":"AAEC/w==","subType":"00"}}"#,
            r#""uuid":{"$binary":{"base64":"EREREREREREREREREREREQ==","subType":"04"}}"#,
            r#""regex":{"$regularExpression":{"pattern":"^a.*","options":"ix"}}"#,
            r#""date":{"$date":{"$numberLong":"1700000000123"}}"#,
            r#""before_1970":{"$date":{"$numberLong":"-1"}}"#,
            r#""min":{"$minKey":1},"max":{"$maxKey":1}"#,
            r#""scoped":{"$code":"return x","$scope":{"x":{"$numberInt":"1"}}}"#,
            r#""nested":{"b":{"$numberInt":"1"},"a":[{"$numberLong":"1"},"two",{"c":null}]}"#,
            r#""text":"café \"quoted\"\n""#,
        ] {
            assert!(text.contains(fragment), "{fragment} not in {text}");
        }
    }

    #[test]
    fn regex_options_are_sorted() {
        let regex = Bson::RegularExpression(Regex {
            pattern: "a".into(),
            options: "xmi".into(),
        });
        assert_eq!(
            extended_json_value(&regex),
            r#"{"$regularExpression":{"pattern":"a","options":"imx"}}"#
        );
    }

    #[test]
    fn special_doubles_have_their_names() {
        assert_eq!(double_text(f64::NAN), "NaN");
        assert_eq!(double_text(f64::INFINITY), "Infinity");
        assert_eq!(double_text(f64::NEG_INFINITY), "-Infinity");
        assert_eq!(double_text(1e21), "1000000000000000000000.0");
        assert_eq!(double_text(-0.25), "-0.25");
    }

    #[test]
    fn text_converts_back_to_the_same_bson() {
        let document = every_type();
        let json: serde_json::Value = serde_json::from_str(&extended_json(&document)).unwrap();
        let back = Bson::try_from(json).unwrap();
        assert_eq!(back, Bson::Document(document));
    }
}
