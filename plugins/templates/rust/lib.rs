//! {{name}}: a sluice transform plugin. It adds `tag` (from the config) to
//! every event, and refuses events that have no `time`.
//!
//! Build: `sluice plugin build .` — test: `sluice plugin test {{name}}.wasm
//! --input test/input.jsonl --config test/config.toml --expect test/expected.jsonl`

use sluice_plugin_sdk::{Event, Outcome, Transform, export_transform};

struct Plugin {
    tag: String,
}

impl Transform for Plugin {
    fn init(config: serde_json::Value) -> Result<Self, String> {
        let tag = match config.get("tag") {
            None => "sluice".to_string(),
            Some(serde_json::Value::String(tag)) => tag.clone(),
            Some(_) => return Err("`tag` must be a string".into()),
        };
        Ok(Plugin { tag })
    }

    fn process(&mut self, mut event: Event) -> Outcome {
        if !event.contains_key("time") {
            return Outcome::error("event has no time");
        }
        event.insert("tag".into(), self.tag.clone().into());
        Outcome::Keep(event)
    }
}

export_transform!(Plugin);
