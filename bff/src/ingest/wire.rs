//! A batch's body read in one pass. Each event keeps the fields Playdeck reads as values and its
//! `event_data` as the JSON text it came in, which is looked through once, without building it:
//! for what the columns need (host, play, task, role, `ignore_errors`, `res.changed`) and for
//! anything masking or cleaning would change (a secret-looking key, `_ansible_no_log`, a NUL).
//! Data that needs neither is stored as it came; the rest is read as a tree and masked, as
//! before. Most events are the first kind, and reading them this way is most of what makes HTTP
//! ingest keep up with a raw COPY.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize as DeriveDeserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use shared::IngestJob;

use crate::infra::secrets::is_secret_key;

/// The body of `POST /api/v1/ingest/events`.
#[derive(DeriveDeserialize)]
pub(super) struct WireBatch {
    pub(super) source: String,
    pub(super) job: IngestJob,
    #[serde(default)]
    pub(super) events: Vec<WireEvent>,
    #[serde(default)]
    pub(super) provisional: bool,
}

/// One event as sent.
pub(super) enum WireEvent {
    /// The fields Playdeck reads (others are dropped, as before), and `event_data` as sent.
    Object(Map<String, Value>, Option<Box<RawValue>>),
    /// Not a JSON object: refused, naming the event.
    NotObject,
}

/// The top-level fields an event's columns come from (see `event_from_json`).
const FIELDS: &[&str] = &[
    "counter",
    "event",
    "uuid",
    "parent_uuid",
    "created",
    "stdout",
    "start_line",
    "end_line",
    "failed",
    "changed",
    "host",
    "play",
    "task",
    "role",
    "host_name",
    "remote_addr",
];

/// An event's key: one of `FIELDS`, `event_data`, or another (skipped). Read without copying.
enum Key {
    Field(&'static str),
    Data,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, k: &str) -> Result<Key, E> {
                Ok(match k {
                    "event_data" => Key::Data,
                    _ => FIELDS.iter().find(|f| **f == k).map_or(Key::Other, |f| Key::Field(f)),
                })
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> Deserialize<'de> for WireEvent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = WireEvent;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an event")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<WireEvent, A::Error> {
                let mut fields = Map::new();
                let mut data = None;
                while let Some(key) = map.next_key::<Key>()? {
                    match key {
                        // A repeated key: the last one counts, as in a JSON object read whole.
                        Key::Field(name) => {
                            fields.insert(name.to_string(), map.next_value::<Value>()?);
                        }
                        Key::Data => data = Some(map.next_value::<Box<RawValue>>()?),
                        Key::Other => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(WireEvent::Object(fields, data))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<WireEvent, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(WireEvent::NotObject)
            }
            fn visit_bool<E>(self, _: bool) -> Result<WireEvent, E> {
                Ok(WireEvent::NotObject)
            }
            fn visit_i64<E>(self, _: i64) -> Result<WireEvent, E> {
                Ok(WireEvent::NotObject)
            }
            fn visit_u64<E>(self, _: u64) -> Result<WireEvent, E> {
                Ok(WireEvent::NotObject)
            }
            fn visit_f64<E>(self, _: f64) -> Result<WireEvent, E> {
                Ok(WireEvent::NotObject)
            }
            fn visit_str<E>(self, _: &str) -> Result<WireEvent, E> {
                Ok(WireEvent::NotObject)
            }
            fn visit_unit<E>(self) -> Result<WireEvent, E> {
                Ok(WireEvent::NotObject)
            }
        }
        d.deserialize_any(V)
    }
}

/// What the columns need from `event_data`, found in one look through its text; `None` when
/// the data must be read as a tree instead (masking or cleaning would change it, or it is not
/// a well-formed object).
pub(super) fn data_fields(raw: &str) -> Option<Map<String, Value>> {
    let mut de = serde_json::Deserializer::from_str(raw);
    let Fields(found) = Fields::deserialize(&mut de).ok()?;
    de.end().ok()?;
    Some(found)
}

/// The top level of `event_data`: the few fields the columns read, kept as small values; the
/// rest looked through by `Scan`.
struct Fields(Map<String, Value>);

/// Top-level keys of `event_data` whose values the columns read.
const DATA_FIELDS: &[&str] =
    &["host", "play", "task", "role", "host_name", "remote_addr", "ignore_errors", "play_uuid", "task_uuid"];

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Fields;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
                let mut found = Map::new();
                while let Some(ScanKey(key)) = map.next_key::<ScanKey>()? {
                    match key {
                        Some(k) if DATA_FIELDS.contains(&k) => {
                            let v = map.next_value::<Small>()?.0;
                            found.insert(k.to_string(), v);
                        }
                        Some("res") => {
                            let Res(changed) = map.next_value::<Res>()?;
                            let mut res = Map::new();
                            if let Some(c) = changed {
                                res.insert("changed".into(), Value::Bool(c));
                            }
                            found.insert("res".into(), Value::Object(res));
                        }
                        _ => {
                            map.next_value::<Scan>()?;
                        }
                    }
                }
                Ok(Fields(found))
            }
        }
        d.deserialize_map(V)
    }
}

/// A key, refused (so the data is read as a tree) when masking would look at it: a secret-looking
/// name or `_ansible_no_log`, or one holding a NUL. Holds the key when it is one `Fields` or
/// `Res` reads.
struct ScanKey(Option<&'static str>);

impl<'de> Deserialize<'de> for ScanKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ScanKey;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: de::Error>(self, k: &str) -> Result<ScanKey, E> {
                if k.contains('\0') || k.starts_with("_ansible_no_log") || is_secret_key(k) {
                    return Err(E::custom("read as a tree"));
                }
                let known = DATA_FIELDS.iter().chain(&["res", "changed"]).find(|f| **f == k).copied();
                Ok(ScanKey(known))
            }
        }
        d.deserialize_str(V)
    }
}

/// Any value, looked through without being built: its keys checked as `ScanKey` does, its
/// strings for NULs.
struct Scan;

impl<'de> Deserialize<'de> for Scan {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScanVisitor)
    }
}

struct ScanVisitor;

impl<'de> Visitor<'de> for ScanVisitor {
    type Value = Scan;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scan, A::Error> {
        while map.next_key::<ScanKey>()?.is_some() {
            map.next_value::<Scan>()?;
        }
        Ok(Scan)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scan, A::Error> {
        while seq.next_element::<Scan>()?.is_some() {}
        Ok(Scan)
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Scan, E> {
        if s.contains('\0') {
            return Err(E::custom("read as a tree"));
        }
        Ok(Scan)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Scan, E> {
        Ok(Scan)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Scan, E> {
        Ok(Scan)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Scan, E> {
        Ok(Scan)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Scan, E> {
        Ok(Scan)
    }
    fn visit_unit<E>(self) -> Result<Scan, E> {
        Ok(Scan)
    }
}

/// A string or a boolean kept; anything else looked through and kept as null (the columns read
/// only strings and booleans from these fields).
struct Small(Value);

impl<'de> Deserialize<'de> for Small {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Small;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a value")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Small, E> {
                ScanVisitor.visit_str::<E>(s)?;
                Ok(Small(Value::String(s.to_string())))
            }
            fn visit_bool<E>(self, b: bool) -> Result<Small, E> {
                Ok(Small(Value::Bool(b)))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Small, E> {
                Ok(Small(Value::Null))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Small, E> {
                Ok(Small(Value::Null))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Small, E> {
                Ok(Small(Value::Null))
            }
            fn visit_unit<E>(self) -> Result<Small, E> {
                Ok(Small(Value::Null))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Small, A::Error> {
                ScanVisitor.visit_map(map)?;
                Ok(Small(Value::Null))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Small, A::Error> {
                ScanVisitor.visit_seq(seq)?;
                Ok(Small(Value::Null))
            }
        }
        d.deserialize_any(V)
    }
}

/// A task's result: whether it changed something; the rest looked through. A result that is
/// not an object is read as a tree.
struct Res(Option<bool>);

impl<'de> Deserialize<'de> for Res {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Res;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a task's result")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Res, A::Error> {
                let mut changed = None;
                while let Some(ScanKey(key)) = map.next_key::<ScanKey>()? {
                    if key == Some("changed") {
                        changed = match map.next_value::<Small>()?.0 {
                            Value::Bool(b) => Some(b),
                            _ => None,
                        };
                    } else {
                        map.next_value::<Scan>()?;
                    }
                }
                Ok(Res(changed))
            }
        }
        d.deserialize_map(V)
    }
}
