//! The YAML document as a tree of nodes that each know their line and column, so
//! that problems found after parsing can still be reported at the right place.

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;
use std::fmt;
use std::ops::Range;

/// A position in the file, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    pub line: u64,
    pub column: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    /// Past `i64::MAX` (up to `u64::MAX`): still a number to range-check, not a float.
    UInt(u64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub pos: Pos,
    /// The node's bytes in the text, for editing it in place (`config::edit`). A
    /// scalar: its text with quotes; a container: from its start only (a block list:
    /// its first `-`, or the first item's content when the list sits at its key's
    /// column; a block mapping: its first key; flow ones: `[` or `{`). Empty at
    /// `usize::MAX` if the parser gave no byte offsets (never for text).
    pub span: Range<usize>,
    /// Where the value is written: `pos` except for an alias (`*name`: the anchored
    /// value) and a value a merge key (`<<`) brought in.
    pub defined: Pos,
    pub value: Value,
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<Value>::deserialize(deserializer)?;
        let span = spanned.referenced.span();
        let to_usize = |n: Option<u64>| n.and_then(|n| usize::try_from(n).ok());
        let start = to_usize(span.byte_offset()).unwrap_or(usize::MAX);
        let len = to_usize(span.byte_len()).unwrap_or(0);
        Ok(Node {
            pos: Pos {
                line: spanned.referenced.line(),
                column: spanned.referenced.column(),
            },
            span: start..start.saturating_add(len),
            defined: Pos {
                line: spanned.defined.line(),
                column: spanned.defined.column(),
            },
            value: spanned.value,
        })
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or(Value::UInt(v), Value::Int))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Value::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some((key, value)) = map.next_entry::<Node, Node>()? {
            entries.push((key, value));
        }
        Ok(Value::Map(entries))
    }
}

impl Node {
    /// Written elsewhere: an alias (`*name`) or a value a merge key (`<<`) brought in.
    pub fn is_alias(&self) -> bool {
        self.pos != self.defined
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// A key as text (YAML allows non-string keys; we show them as written).
    pub fn key_text(&self) -> String {
        match &self.value {
            Value::Str(s) => s.clone(),
            Value::Int(i) => i.to_string(),
            Value::UInt(u) => u.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Float(f) => f.to_string(),
            Value::Null => "~".into(),
            Value::Seq(_) | Value::Map(_) => "<complex key>".into(),
        }
    }

    pub fn entries(&self) -> Option<&[(Node, Node)]> {
        match &self.value {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    pub fn get(&self, key: &str) -> Option<(&Node, &Node)> {
        self.entries()?
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(k, v)| (k, v))
    }

    /// Where to report a problem at `path` below this node: the deepest node found,
    /// preferring the key when the path ends at a map entry.
    pub fn locate(&self, path: &[String]) -> Pos {
        let Some((first, rest)) = path.split_first() else {
            return self.pos;
        };
        match &self.value {
            Value::Map(entries) => match entries.iter().find(|(k, _)| k.key_text() == *first) {
                Some((key, _)) if rest.is_empty() => key.pos,
                Some((_, value)) => value.locate(rest),
                None => self.pos,
            },
            Value::Seq(items) => match first.parse::<usize>().ok().and_then(|i| items.get(i)) {
                Some(item) => item.locate(rest),
                None => self.pos,
            },
            _ => self.pos,
        }
    }

    /// The value at `path` (for type errors: point at the value, not the key).
    pub fn value_at(&self, path: &[String]) -> Option<&Node> {
        let Some((first, rest)) = path.split_first() else {
            return Some(self);
        };
        match &self.value {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.key_text() == *first)
                .and_then(|(_, v)| v.value_at(rest)),
            Value::Seq(items) => first
                .parse::<usize>()
                .ok()
                .and_then(|i| items.get(i))
                .and_then(|v| v.value_at(rest)),
            _ => None,
        }
    }

    /// The tree as JSON, for deserialising typed sections with serde.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::UInt(u) => J::from(*u),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::Str(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.key_text(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_of_keys_and_values() {
        let text = "a: 1\nb:\n  c: [x, \"y\"]\n  d: true\n";
        let root: Node = serde_saphyr::from_str(text).unwrap();
        assert_eq!(
            root.locate(&["b".into(), "d".into()]),
            Pos { line: 4, column: 3 }
        );
        let c = root.value_at(&["b".into(), "c".into()]).unwrap();
        assert_eq!(c.pos, Pos { line: 3, column: 6 });
        let y = root
            .value_at(&["b".into(), "c".into(), "1".into()])
            .unwrap();
        assert_eq!(
            y.pos,
            Pos {
                line: 3,
                column: 10
            }
        );
        assert_eq!(y.as_str(), Some("y"));
        assert_eq!(
            root.to_json(),
            serde_json::json!({"a": 1, "b": {"c": ["x", "y"], "d": true}})
        );
    }

    #[test]
    fn bytes_and_where_an_alias_is_defined() {
        let text = "a: &x \"é\"\nb: *x\nc:\n  - 1\n";
        let root: Node = serde_saphyr::from_str(text).unwrap();
        let (_, a) = root.get("a").unwrap();
        assert_eq!(&text[a.span.clone()], "\"é\"");
        assert!(!a.is_alias());
        let (_, b) = root.get("b").unwrap();
        assert_eq!(&text[b.span.start..b.span.start + 2], "*x");
        assert!(b.is_alias());
        assert_eq!(b.defined.line, 1);
        let (_, c) = root.get("c").unwrap();
        assert_eq!(&text[c.span.start..c.span.start + 1], "-");
    }
}
