//! The configuration object in, and the `defaults`/`bounds`/`stats` objects out, through the
//! core's serde derives but without a general-purpose serde bridge: the few shapes these types
//! use (plain objects, numbers, strings, booleans, optional values) are all this module knows.
//! A general bridge, with its error messages, float formatting and string caches, was an eighth
//! of the optimized module (docs/decisions/0028-wasm-size-budget.md).
//!
//! Reading follows the rules the host was written against: a field that is absent (or
//! `undefined` and not an own or inherited property) takes its default; `null` or `undefined`
//! is "none" for an optional setting; other properties of the object are not read; an integer
//! setting accepts a safe integer or a `BigInt` in range. Writing makes every struct a plain
//! object with every field set (a `None` as `undefined`), and every integer a number.

use std::fmt;

use serde::de::value::BorrowedStrDeserializer;
use serde::de::{self, DeserializeOwned, Visitor};
use serde::ser::{self, Impossible, Serialize};
use wasm_bindgen::{JsCast, JsValue};

/// Why a value could not be read or written. The message of the value's serde impl is not
/// kept: formatting it would bring back the code this module exists to leave out. `field` is
/// the top-level property being read when it failed, when there was one.
#[derive(Debug)]
pub(crate) struct Error {
    /// The top-level property being read.
    pub(crate) field: Option<&'static str>,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.field.unwrap_or("value"))
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(_msg: T) -> Self {
        Error { field: None }
    }
}

impl ser::Error for Error {
    fn custom<T: fmt::Display>(_msg: T) -> Self {
        Error { field: None }
    }
}

const FAILED: Error = Error { field: None };

/// Reads `value` as a `T`.
pub(crate) fn from_js<T: DeserializeOwned>(value: JsValue) -> Result<T, Error> {
    T::deserialize(Reader(value))
}

/// Writes `value` as a JS value.
pub(crate) fn to_js<T: Serialize + ?Sized>(value: &T) -> Result<JsValue, Error> {
    value.serialize(Writer)
}

struct Reader(JsValue);

impl<'de> de::Deserializer<'de> for Reader {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let v = self.0;
        if let Some(b) = v.as_bool() {
            return visitor.visit_bool(b);
        }
        if let Some(n) = v.as_f64() {
            // Integer settings (`u32`, `u64`) accept only integer visits; a float setting
            // takes either.
            if js_sys::Number::is_safe_integer(&v) {
                return if n >= 0.0 {
                    visitor.visit_u64(n as u64)
                } else {
                    visitor.visit_i64(n as i64)
                };
            }
            return visitor.visit_f64(n);
        }
        if let Some(s) = v.as_string() {
            return visitor.visit_string(s);
        }
        if v.is_bigint() {
            return match u64::try_from(v) {
                Ok(n) => visitor.visit_u64(n),
                Err(_) => Err(FAILED),
            };
        }
        Err(FAILED)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.0.is_null() || self.0.is_undefined() {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        if !self.0.is_object() {
            return Err(FAILED);
        }
        visitor.visit_map(Fields {
            obj: self.0,
            fields: fields.iter(),
            current: "",
            value: None,
        })
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

/// The properties of an object that the struct being read declares, in its field order.
struct Fields {
    obj: JsValue,
    fields: std::slice::Iter<'static, &'static str>,
    current: &'static str,
    value: Option<JsValue>,
}

impl<'de> de::MapAccess<'de> for Fields {
    type Error = Error;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        for &field in &mut self.fields {
            let key = JsValue::from_str(field);
            let value =
                js_sys::Reflect::get(&self.obj, &key).map_err(|_| Error { field: Some(field) })?;
            if value.is_undefined() && !js_sys::Reflect::has(&self.obj, &key).unwrap_or(false) {
                continue;
            }
            self.current = field;
            self.value = Some(value);
            return seed
                .deserialize(BorrowedStrDeserializer::new(field))
                .map(Some);
        }
        Ok(None)
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let field = self.current;
        let value = self.value.take().ok_or(FAILED)?;
        // The outermost field names the error: it is the setting the user wrote.
        seed.deserialize(Reader(value))
            .map_err(|_| Error { field: Some(field) })
    }
}

struct Writer;

impl ser::Serializer for Writer {
    type Ok = JsValue;
    type Error = Error;
    type SerializeSeq = Impossible<JsValue, Error>;
    type SerializeTuple = Impossible<JsValue, Error>;
    type SerializeTupleStruct = Impossible<JsValue, Error>;
    type SerializeTupleVariant = Impossible<JsValue, Error>;
    type SerializeMap = Impossible<JsValue, Error>;
    type SerializeStruct = Object;
    type SerializeStructVariant = Impossible<JsValue, Error>;

    fn serialize_bool(self, v: bool) -> Result<JsValue, Error> {
        Ok(JsValue::from_bool(v))
    }
    fn serialize_i8(self, v: i8) -> Result<JsValue, Error> {
        self.serialize_f64(v.into())
    }
    fn serialize_i16(self, v: i16) -> Result<JsValue, Error> {
        self.serialize_f64(v.into())
    }
    fn serialize_i32(self, v: i32) -> Result<JsValue, Error> {
        self.serialize_f64(v.into())
    }
    fn serialize_i64(self, v: i64) -> Result<JsValue, Error> {
        self.serialize_f64(v as f64)
    }
    fn serialize_u8(self, v: u8) -> Result<JsValue, Error> {
        self.serialize_f64(v.into())
    }
    fn serialize_u16(self, v: u16) -> Result<JsValue, Error> {
        self.serialize_f64(v.into())
    }
    fn serialize_u32(self, v: u32) -> Result<JsValue, Error> {
        self.serialize_f64(v.into())
    }
    /// Counters and byte sizes stay far below 2^53, where a number stops being exact.
    fn serialize_u64(self, v: u64) -> Result<JsValue, Error> {
        self.serialize_f64(v as f64)
    }
    fn serialize_f32(self, v: f32) -> Result<JsValue, Error> {
        self.serialize_f64(v.into())
    }
    fn serialize_f64(self, v: f64) -> Result<JsValue, Error> {
        Ok(JsValue::from_f64(v))
    }
    fn serialize_char(self, v: char) -> Result<JsValue, Error> {
        Ok(JsValue::from_str(v.encode_utf8(&mut [0; 4])))
    }
    fn serialize_str(self, v: &str) -> Result<JsValue, Error> {
        Ok(JsValue::from_str(v))
    }
    fn serialize_bytes(self, _v: &[u8]) -> Result<JsValue, Error> {
        Err(FAILED)
    }
    fn serialize_none(self) -> Result<JsValue, Error> {
        Ok(JsValue::UNDEFINED)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<JsValue, Error> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<JsValue, Error> {
        Ok(JsValue::UNDEFINED)
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<JsValue, Error> {
        Ok(JsValue::UNDEFINED)
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<JsValue, Error> {
        Ok(JsValue::from_str(variant))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<JsValue, Error> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<JsValue, Error> {
        Err(FAILED)
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, Error> {
        Err(FAILED)
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, Error> {
        Err(FAILED)
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct, Error> {
        Err(FAILED)
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, Error> {
        Err(FAILED)
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, Error> {
        Err(FAILED)
    }
    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStruct, Error> {
        Ok(Object(js_sys::Object::new()))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, Error> {
        Err(FAILED)
    }
}

/// A struct being written: a plain object.
struct Object(js_sys::Object);

impl ser::SerializeStruct for Object {
    type Ok = JsValue;
    type Error = Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        let value = value.serialize(Writer)?;
        js_sys::Reflect::set(&self.0, &JsValue::from_str(key), &value).map_err(|_| FAILED)?;
        Ok(())
    }

    fn end(self) -> Result<JsValue, Error> {
        Ok(self.0.unchecked_into())
    }
}
