// tag-privileged, in JavaScript: the conformance sample (`../conformance/`).
//
// For each event: an `api_operation` that is not a string is an error; one in
// `drop` is dropped as noise; one in `privileged` gets `severity_id` from the
// config and `privileged = true`; the field named by `redact`, when set,
// becomes "[REDACTED]".

import * as sluice from "./sluice_plugin.js";

function strings(config, key) {
  const value = config[key] ?? [];
  if (!Array.isArray(value) || !value.every((v) => typeof v === "string")) {
    throw new Error(`\`${key}\` must be a list of strings`);
  }
  return new Set(value);
}

export const transform = sluice.transform({
  name: "tag-privileged",
  version: "0.1.0",
  init(config) {
    const severityId = config.severity_id ?? 4;
    if (!Number.isInteger(severityId)) throw new Error("`severity_id` must be an integer");
    const redact = config.redact ?? null;
    if (redact !== null && typeof redact !== "string") throw new Error("`redact` must be a string");
    return { privileged: strings(config, "privileged"), drop: strings(config, "drop"), severityId, redact };
  },
  process(state, event) {
    const op = event.api_operation;
    if ("api_operation" in event && typeof op !== "string") return sluice.error("api_operation is not a string");
    if (state.drop.has(op)) return sluice.drop(`noise: ${op}`);
    if (state.privileged.has(op)) {
      event.severity_id = state.severityId;
      event.privileged = true;
    }
    if (state.redact && event[state.redact] != null) event[state.redact] = "[REDACTED]";
    return event;
  },
});
