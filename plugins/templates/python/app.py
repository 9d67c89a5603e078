"""{{name}}: a sluice transform plugin. It adds `tag` (from the config) to
every event, and refuses events that have no `time`.

Build: `sluice plugin build .` — test: `sluice plugin test {{name}}.wasm
--input test/input.jsonl --config test/config.toml --expect test/expected.jsonl`
"""

import sluice_plugin as sluice


class Plugin:
    def __init__(self, config):
        self.tag = config.get("tag", "sluice")
        if not isinstance(self.tag, str):
            raise ValueError("`tag` must be a string")

    def process(self, event):
        if "time" not in event:
            return sluice.error("event has no time")
        event["tag"] = self.tag
        return event


Transform = sluice.transform(Plugin, name="{{name}}", version="0.1.0")
