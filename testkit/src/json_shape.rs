//! Test-only helpers comparing the key shape of a fake server's JSON payloads
//! with the example payloads under `testkit/fixtures/<server>/`.

use std::collections::BTreeSet;

use serde_json::Value;

/// The fixtures of one fake server: the directory under `testkit/fixtures/`, and
/// which object keys are ids (they become `<id>` in shapes, so maps keyed by id
/// compare whatever the ids are).
pub(crate) struct Fixtures {
    pub dir: &'static str,
    pub is_id: fn(&str) -> bool,
}

impl Fixtures {
    /// The text of a fixture file.
    pub(crate) fn read(&self, name: &str) -> String {
        let path = format!(
            "{}/fixtures/{}/{name}",
            env!("CARGO_MANIFEST_DIR"),
            self.dir
        );
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
    }

    /// Every key path of a JSON value; ids used as keys become `<id>`, and
    /// strings holding a JSON object are walked too (Mattermost's websocket `post`).
    pub(crate) fn shape(&self, value: &Value, path: &str, out: &mut BTreeSet<String>) {
        match value {
            Value::Object(map) => {
                for (key, inner) in map {
                    let key = if (self.is_id)(key) {
                        "<id>"
                    } else {
                        key.as_str()
                    };
                    let path = format!("{path}.{key}");
                    out.insert(path.clone());
                    self.shape(inner, &path, out);
                }
            }
            Value::Array(items) => {
                for item in items {
                    self.shape(item, &format!("{path}[]"), out);
                }
            }
            Value::String(text) if text.starts_with('{') => {
                if let Ok(inner @ Value::Object(_)) = serde_json::from_str::<Value>(text) {
                    self.shape(&inner, &format!("{path}<json>"), out);
                }
            }
            _ => {}
        }
    }

    /// Panics unless `actual` has exactly the key paths of the fixture `name`.
    pub(crate) fn assert_same_shape(&self, name: &str, actual: &Value) {
        let expected: Value = serde_json::from_str(&self.read(name))
            .unwrap_or_else(|e| panic!("fixture {name} is not JSON: {e}"));
        let (mut want, mut got) = (BTreeSet::new(), BTreeSet::new());
        self.shape(&expected, "", &mut want);
        self.shape(actual, "", &mut got);
        let missing: Vec<_> = want.difference(&got).collect();
        let extra: Vec<_> = got.difference(&want).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{name}: the fake lacks {missing:?} and adds {extra:?}; it sent {actual:#}"
        );
    }
}
