//! Finds a non-finite float (NaN, ±infinity) in a value about to be stored.
//!
//! `serde_json` writes such a float as `null`, so an event holding one would be stored as a value its
//! own type cannot read back: the stream could never load again, and the log is append-only. The
//! check walks the value with a serializer that writes nothing and stops at the first non-finite
//! float, naming the field that holds it.

use std::fmt::{self, Display};

use serde::ser::{self, Serialize};

/// Where the first non-finite float is (a dotted path such as `amount` or `lines[3].price`), or
/// `None` when every float is finite.
pub(super) fn first_non_finite<T: Serialize + ?Sized>(value: &T) -> Option<String> {
    let mut walker = Walker { path: Vec::new() };
    match value.serialize(&mut walker) {
        // "!" marks the value's own Serialize failing, which serde_json reports by itself.
        Err(Found(path)) if path != "!" => Some(path),
        _ => None,
    }
}

/// The walk stopped: either at a non-finite float (its path) or because the value's own
/// `Serialize` failed (an empty path is never produced for that: `serde_json` reports it later).
#[derive(Debug)]
struct Found(String);

impl Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Found {}

impl ser::Error for Found {
    fn custom<M: Display>(_message: M) -> Self {
        // The value's own Serialize failed: serde_json reports that error itself, so the walk only
        // has to stop. The marker cannot be mistaken for a path (paths never start with '!').
        Found(String::from("!"))
    }
}

enum Segment {
    Field(&'static str),
    Key(String),
    Index(usize),
}

struct Walker {
    path: Vec<Segment>,
}

impl Walker {
    fn found(&self) -> Found {
        let mut path = String::new();
        for segment in &self.path {
            match segment {
                Segment::Field(name) => {
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(name);
                }
                Segment::Key(key) => {
                    path.push('[');
                    path.push_str(key);
                    path.push(']');
                }
                Segment::Index(index) => {
                    path.push('[');
                    path.push_str(&index.to_string());
                    path.push(']');
                }
            }
        }
        if path.is_empty() {
            path.push_str("(the value itself)");
        }
        Found(path)
    }

    fn float(&self, value: f64) -> Result<(), Found> {
        if value.is_finite() { Ok(()) } else { Err(self.found()) }
    }

    fn nested<T: Serialize + ?Sized>(&mut self, segment: Segment, value: &T) -> Result<(), Found> {
        self.path.push(segment);
        let walked = value.serialize(&mut *self);
        self.path.pop();
        walked
    }
}

macro_rules! plain_scalars {
    ($($method:ident: $ty:ty),*) => {
        $(fn $method(self, _: $ty) -> Result<(), Found> { Ok(()) })*
    };
}

impl<'a> ser::Serializer for &'a mut Walker {
    type Ok = ();
    type Error = Found;
    type SerializeSeq = Elements<'a>;
    type SerializeTuple = Elements<'a>;
    type SerializeTupleStruct = Elements<'a>;
    type SerializeTupleVariant = Elements<'a>;
    type SerializeMap = Entries<'a>;
    type SerializeStruct = Fields<'a>;
    type SerializeStructVariant = Fields<'a>;

    plain_scalars!(serialize_bool: bool, serialize_i8: i8, serialize_i16: i16, serialize_i32: i32,
        serialize_i64: i64, serialize_i128: i128, serialize_u8: u8, serialize_u16: u16,
        serialize_u32: u32, serialize_u64: u64, serialize_u128: u128, serialize_char: char,
        serialize_str: &str, serialize_bytes: &[u8]);

    fn serialize_f32(self, value: f32) -> Result<(), Found> {
        self.float(f64::from(value))
    }
    fn serialize_f64(self, value: f64) -> Result<(), Found> {
        self.float(value)
    }
    fn serialize_none(self) -> Result<(), Found> {
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Found> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Found> {
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Found> {
        Ok(())
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Result<(), Found> {
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Found> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Found> {
        self.nested(Segment::Field(variant), value)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Elements<'a>, Found> {
        Ok(Elements { walker: self, index: 0, variant: None })
    }
    fn serialize_tuple(self, _: usize) -> Result<Elements<'a>, Found> {
        Ok(Elements { walker: self, index: 0, variant: None })
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Elements<'a>, Found> {
        Ok(Elements { walker: self, index: 0, variant: None })
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Elements<'a>, Found> {
        self.path.push(Segment::Field(variant));
        Ok(Elements { walker: self, index: 0, variant: Some(()) })
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Entries<'a>, Found> {
        Ok(Entries { walker: self, key: None })
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Fields<'a>, Found> {
        Ok(Fields { walker: self, variant: None })
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Fields<'a>, Found> {
        self.path.push(Segment::Field(variant));
        Ok(Fields { walker: self, variant: Some(()) })
    }
}

/// Elements of a sequence or tuple; `variant` is set when a variant name was pushed on the path.
struct Elements<'a> {
    walker: &'a mut Walker,
    index: usize,
    variant: Option<()>,
}

impl Elements<'_> {
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Found> {
        let index = self.index;
        self.index += 1;
        self.walker.nested(Segment::Index(index), value)
    }

    fn end(self) {
        if self.variant.is_some() {
            self.walker.path.pop();
        }
    }
}

macro_rules! elements {
    ($($trait:ident :: $method:ident),*) => {
        $(impl ser::$trait for Elements<'_> {
            type Ok = ();
            type Error = Found;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Found> {
                self.element(value)
            }
            fn end(self) -> Result<(), Found> {
                Elements::end(self);
                Ok(())
            }
        })*
    };
}

elements!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

/// Entries of a map: the key names the path segment of its value.
struct Entries<'a> {
    walker: &'a mut Walker,
    key: Option<String>,
}

impl ser::SerializeMap for Entries<'_> {
    type Ok = ();
    type Error = Found;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Found> {
        // Keys are JSON object keys: a float key would be written as a string, but NaN still
        // cannot be read back as a number, so it is refused like a value.
        self.walker.nested(Segment::Key(String::from("key")), key)?;
        // The key as JSON names the entry (a key that does not serialize is reported later by
        // serde_json itself; here it only names the path less precisely).
        self.key = Some(match serde_json::to_value(key) {
            Ok(serde_json::Value::String(text)) => text,
            Ok(other) => other.to_string(),
            Err(_) => String::from("?"),
        });
        Ok(())
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Found> {
        let key = self.key.take().unwrap_or_else(|| String::from("?"));
        self.walker.nested(Segment::Key(key), value)
    }

    fn end(self) -> Result<(), Found> {
        Ok(())
    }
}

/// Fields of a struct; `variant` is set when a variant name was pushed on the path.
struct Fields<'a> {
    walker: &'a mut Walker,
    variant: Option<()>,
}

impl Fields<'_> {
    fn field<T: Serialize + ?Sized>(&mut self, name: &'static str, value: &T) -> Result<(), Found> {
        self.walker.nested(Segment::Field(name), value)
    }

    fn finish(self) {
        if self.variant.is_some() {
            self.walker.path.pop();
        }
    }
}

impl ser::SerializeStruct for Fields<'_> {
    type Ok = ();
    type Error = Found;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        name: &'static str,
        value: &T,
    ) -> Result<(), Found> {
        self.field(name, value)
    }
    fn end(self) -> Result<(), Found> {
        self.finish();
        Ok(())
    }
}

impl ser::SerializeStructVariant for Fields<'_> {
    type Ok = ();
    type Error = Found;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        name: &'static str,
        value: &T,
    ) -> Result<(), Found> {
        self.field(name, value)
    }
    fn end(self) -> Result<(), Found> {
        self.finish();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::first_non_finite;

    #[derive(serde::Serialize)]
    struct Line {
        price: f64,
    }

    #[derive(serde::Serialize)]
    enum Shape {
        Circle { radius: f32 },
        Pair(f64, f64),
    }

    #[derive(serde::Serialize)]
    struct Order {
        total: f64,
        lines: Vec<Line>,
        by_name: BTreeMap<String, f64>,
        shape: Option<Shape>,
    }

    fn order() -> Order {
        Order {
            total: 1.5,
            lines: vec![Line { price: 1.0 }],
            by_name: BTreeMap::new(),
            shape: None,
        }
    }

    #[test]
    fn finite_values_pass() {
        assert_eq!(first_non_finite(&order()), None);
        assert_eq!(first_non_finite(&f64::MAX), None);
        assert_eq!(first_non_finite("NaN"), None);
    }

    #[test]
    fn each_non_finite_float_is_found_with_its_path() {
        assert_eq!(first_non_finite(&f64::NAN).as_deref(), Some("(the value itself)"));
        let mut bad = order();
        bad.total = f64::INFINITY;
        assert_eq!(first_non_finite(&bad).as_deref(), Some("total"));
        let mut bad = order();
        bad.lines.push(Line { price: f64::NEG_INFINITY });
        assert_eq!(first_non_finite(&bad).as_deref(), Some("lines[1].price"));
        let mut bad = order();
        bad.by_name.insert("tea".into(), f64::NAN);
        assert_eq!(first_non_finite(&bad).as_deref(), Some("by_name[tea]"));
        let mut bad = order();
        bad.shape = Some(Shape::Circle { radius: f32::NAN });
        assert_eq!(first_non_finite(&bad).as_deref(), Some("shape.Circle.radius"));
        let mut bad = order();
        bad.shape = Some(Shape::Pair(0.0, f64::NAN));
        assert_eq!(first_non_finite(&bad).as_deref(), Some("shape.Pair[1]"));
    }
}
