use mongodb::bson::{
    Binary, DateTime, Decimal128, JavaScriptCodeWithScope, Regex, Timestamp, doc, oid::ObjectId,
    spec::BinarySubtype,
};

use super::*;
use FieldType as T;

fn oid() -> ObjectId {
    ObjectId::parse_str("599af247bb69cd89961c986d").unwrap()
}

fn uuid() -> Bson {
    Bson::Binary(Binary {
        subtype: BinarySubtype::Uuid,
        bytes: vec![0x42; 16],
    })
}

fn decimal(text: &str) -> Bson {
    Bson::Decimal128(text.parse::<Decimal128>().unwrap())
}

/// A value of every BSON type and the type inferred for it.
fn every_type() -> Vec<(Bson, FieldType)> {
    vec![
        (Bson::Null, T::Null),
        (Bson::Undefined, T::Null),
        (Bson::Boolean(true), T::Bool),
        (Bson::Int32(1), T::Int32),
        (Bson::Int64(1), T::Int64),
        (Bson::Double(1.5), T::Double),
        (decimal("1.10"), T::Decimal128),
        (Bson::String("s".into()), T::String),
        (Bson::ObjectId(oid()), T::ObjectId),
        (
            Bson::DateTime(DateTime::from_millis(1_700_000_000_000)),
            T::DateTime,
        ),
        (
            Bson::Timestamp(Timestamp {
                time: 1,
                increment: 2,
            }),
            T::Timestamp,
        ),
        (
            Bson::Binary(Binary {
                subtype: BinarySubtype::Generic,
                bytes: vec![1, 2, 3],
            }),
            T::Binary,
        ),
        (uuid(), T::Uuid),
        (
            // Subtype 4 but not 16 bytes: not a UUID.
            Bson::Binary(Binary {
                subtype: BinarySubtype::Uuid,
                bytes: vec![1],
            }),
            T::Binary,
        ),
        (
            Bson::RegularExpression(Regex {
                pattern: "^a".into(),
                options: "i".into(),
            }),
            T::Json,
        ),
        (Bson::MinKey, T::Json),
        (Bson::MaxKey, T::Json),
        (Bson::JavaScriptCode("f()".into()), T::Json),
        (
            Bson::JavaScriptCodeWithScope(JavaScriptCodeWithScope {
                code: "f()".into(),
                scope: doc! {},
            }),
            T::Json,
        ),
        (Bson::Symbol("s".into()), T::Json),
        (
            Bson::Document(doc! { "a": 1, "b": { "c": "x" } }),
            T::Document(vec![
                ("a".into(), T::Int32),
                ("b".into(), T::Document(vec![("c".into(), T::String)])),
            ]),
        ),
        (Bson::Array(vec![]), T::Array(Box::new(T::Null))),
        (
            Bson::Array(vec![Bson::Int32(1), Bson::Null, Bson::Int64(2)]),
            T::Array(Box::new(T::Int64)),
        ),
        (
            Bson::Array(vec![Bson::Int32(1), Bson::String("x".into())]),
            T::Array(Box::new(T::Json)),
        ),
    ]
}

#[test]
fn every_bson_type_has_its_field_type() {
    for (value, expected) in every_type() {
        assert_eq!(FieldType::of(&value), expected, "{value:?}");
    }
}

#[test]
fn every_value_converts_to_its_own_type() {
    for (value, ty) in every_type() {
        let converted = ty.convert(&value).unwrap_or_else(|| panic!("{value:?}"));
        match ty {
            T::Json => assert_eq!(
                converted,
                Bson::String(crate::extended_json_value(&value)),
                "{value:?}"
            ),
            T::Null => assert_eq!(converted, Bson::Null),
            // Mixed arrays hold each element's JSON text.
            T::Array(ref item) if **item == T::Json => {
                assert_eq!(
                    converted,
                    Bson::Array(vec![
                        Bson::String(r#"{"$numberInt":"1"}"#.into()),
                        Bson::String(r#""x""#.into()),
                    ])
                );
            }
            T::Array(_) if value.as_array().is_some_and(|a| a.contains(&Bson::Null)) => {
                assert_eq!(
                    converted,
                    Bson::Array(vec![Bson::Int64(1), Bson::Null, Bson::Int64(2)])
                );
            }
            _ => assert_eq!(converted, value),
        }
    }
}

#[test]
fn null_joins_anything() {
    for (_, ty) in every_type() {
        assert_eq!(T::Null.widen(&ty), ty);
        assert_eq!(ty.widen(&T::Null), ty);
    }
}

#[test]
fn integers_widen_to_int64_then_double_then_decimal() {
    assert_eq!(T::Int32.widen(&T::Int64), T::Int64);
    assert_eq!(T::Int64.widen(&T::Int32), T::Int64);
    assert_eq!(T::Int32.widen(&T::Double), T::Double);
    assert_eq!(T::Double.widen(&T::Int64), T::Double);
    for number in [T::Int32, T::Int64, T::Double] {
        assert_eq!(number.widen(&T::Decimal128), T::Decimal128);
        assert_eq!(T::Decimal128.widen(&number), T::Decimal128);
    }
    assert_eq!(T::Int64.convert(&Bson::Int32(-7)), Some(Bson::Int64(-7)));
    assert_eq!(T::Double.convert(&Bson::Int64(3)), Some(Bson::Double(3.0)));
    assert_eq!(T::Decimal128.convert(&Bson::Int32(12)), Some(decimal("12")));
    assert_eq!(
        T::Decimal128.convert(&Bson::Int64(-9_007_199_254_740_993)),
        Some(decimal("-9007199254740993"))
    );
    assert_eq!(
        T::Decimal128.convert(&Bson::Double(0.1)),
        Some(decimal("0.1"))
    );
    assert_eq!(
        T::Decimal128.convert(&Bson::Double(-2.5e300)),
        Some(decimal("-2.5E+300"))
    );
}

#[test]
fn uuids_and_other_binaries_widen_to_binary() {
    assert_eq!(T::Uuid.widen(&T::Binary), T::Binary);
    assert_eq!(T::Binary.convert(&uuid()), Some(uuid()));
    let other = Bson::Binary(Binary {
        subtype: BinarySubtype::Generic,
        bytes: vec![1],
    });
    assert_eq!(T::Uuid.convert(&other), None);
}

#[test]
fn documents_widen_field_by_field() {
    let a = FieldType::of(&Bson::Document(doc! { "x": 1, "y": "s" }));
    let b = FieldType::of(&Bson::Document(doc! { "z": true, "x": 2_i64 }));
    assert_eq!(
        a.widen(&b),
        T::Document(vec![
            ("x".into(), T::Int64),
            ("y".into(), T::String),
            ("z".into(), T::Bool),
        ])
    );
    // Absent fields convert to null.
    assert_eq!(
        a.widen(&b).convert(&Bson::Document(doc! { "z": false })),
        Some(Bson::Document(doc! { "x": null, "y": null, "z": false }))
    );
}

#[test]
fn arrays_widen_their_elements() {
    let ints = T::Array(Box::new(T::Int32));
    let doubles = T::Array(Box::new(T::Double));
    assert_eq!(ints.widen(&doubles), doubles);
    assert_eq!(
        T::Array(Box::new(T::Null)).widen(&ints),
        ints,
        "an empty array joins any array"
    );
    assert_eq!(
        doubles.convert(&Bson::Array(vec![Bson::Int32(1), Bson::Double(0.5)])),
        Some(Bson::Array(vec![Bson::Double(1.0), Bson::Double(0.5)]))
    );
}

#[test]
fn anything_else_becomes_json() {
    let document = T::Document(vec![("a".into(), T::Int32)]);
    let array = T::Array(Box::new(T::Int32));
    for (a, b) in [
        (T::String, T::Int32),
        (document.clone(), T::String),
        (array.clone(), document.clone()),
        (T::Bool, T::Int32),
        (T::ObjectId, T::String),
        (T::DateTime, T::Timestamp),
        (T::Json, T::Int32),
        (T::Json, T::Null),
    ] {
        assert_eq!(a.widen(&b), T::Json, "{a:?} + {b:?}");
        assert_eq!(b.widen(&a), T::Json, "{b:?} + {a:?}");
    }
    assert_eq!(
        T::Json.convert(&Bson::Document(doc! { "a": 1 })),
        Some(Bson::String(r#"{"a":{"$numberInt":"1"}}"#.into()))
    );
    assert_eq!(
        T::Json.convert(&Bson::String("x".into())),
        Some(Bson::String(r#""x""#.into()))
    );
    assert_eq!(T::Json.convert(&Bson::Null), Some(Bson::Null));
}

#[test]
fn values_convert_exactly_when_their_type_is_admitted() {
    let all = every_type();
    for (_, ty) in &all {
        for (value, value_type) in &all {
            assert_eq!(
                ty.convert(value).is_some(),
                ty.admits(value_type),
                "{ty:?} converting {value:?}"
            );
        }
    }
}

#[test]
fn observing_widens_and_reports_changes() {
    let mut shape = CollectionShape::new();
    assert!(shape.observe(&doc! { "name": "a", "_id": 1, "n": 1 }));
    assert_eq!(
        shape.fields,
        vec![
            ("_id".into(), T::Int32),
            ("name".into(), T::String),
            ("n".into(), T::Int32),
        ],
        "_id comes first"
    );
    assert!(!shape.observe(&doc! { "_id": 2, "name": "b", "n": 5 }));
    assert!(
        !shape.observe(&doc! { "_id": 3 }),
        "absent fields are nullable"
    );
    assert!(!shape.observe(&doc! { "_id": 4, "name": null }));
    assert!(shape.observe(&doc! { "_id": 5, "n": 2.5 }));
    assert_eq!(shape.field("n"), Some(&T::Double));
    assert!(shape.observe(&doc! { "_id": oid(), "extra": { "deep": [1] } }));
    assert_eq!(shape.field("_id"), Some(&T::Json));
    assert_eq!(shape.fields.last().unwrap().0, "extra");
}

#[test]
fn values_follow_the_shape() {
    let mut shape = CollectionShape::new();
    shape.observe(&doc! { "_id": 1, "n": 1, "tags": ["a"] });
    shape.observe(&doc! { "_id": 2, "n": 2_i64, "when": DateTime::from_millis(5) });
    let document = doc! { "_id": 3, "tags": [], "n": 4 };
    assert_eq!(
        shape.values(&document),
        Some(vec![
            Bson::Int32(3),
            Bson::Int64(4),
            Bson::Array(vec![]),
            Bson::Null,
        ])
    );
    assert_eq!(shape.value(&document, "n"), Some(Bson::Int64(4)));
    assert_eq!(shape.value(&document, "when"), Some(Bson::Null));
    assert_eq!(shape.value(&document, "unknown"), None);
    assert_eq!(
        shape.values(&doc! { "_id": 4, "n": "text" }),
        None,
        "a value of an unobserved type does not fit"
    );
    assert_eq!(
        shape.values(&doc! { "_id": 4, "new": 1 }),
        None,
        "an unobserved field does not fit"
    );
}

#[test]
fn shapes_round_trip_as_json() {
    let mut shape = CollectionShape::new();
    shape.observe(&doc! { "_id": oid(), "a": { "b": [uuid()] }, "r": Bson::MinKey });
    let json = serde_json::to_string(&shape).unwrap();
    assert_eq!(
        serde_json::from_str::<CollectionShape>(&json).unwrap(),
        shape
    );
}
