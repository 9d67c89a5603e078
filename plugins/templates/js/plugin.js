// {{name}}: a sluice transform plugin. It adds `tag` (from the config) to
// every event, and refuses events that have no `time`.
//
// Build: `sluice plugin build .` — test: `sluice plugin test {{name}}.wasm
// --input test/input.jsonl --config test/config.toml --expect test/expected.jsonl`

import * as sluice from "./sluice_plugin.js";

export const transform = sluice.transform({
  name: "{{name}}",
  version: "0.1.0",
  init(config) {
    const tag = config.tag ?? "sluice";
    if (typeof tag !== "string") throw new Error("`tag` must be a string");
    return { tag };
  },
  process(state, event) {
    if (!("time" in event)) return sluice.error("event has no time");
    event.tag = state.tag;
    return event;
  },
});
