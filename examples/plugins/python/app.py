"""tag-privileged, in Python: the conformance sample (`../conformance/`).

For each event: an `api_operation` that is not a string is an error; one in
`drop` is dropped as noise; one in `privileged` gets `severity_id` from the
config and `privileged = true`; the field named by `redact`, when set, becomes
"[REDACTED]".
"""

import sluice_plugin as sluice


def strings(config, key):
    value = config.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"`{key}` must be a list of strings")
    return set(value)


class TagPrivileged:
    def __init__(self, config):
        self.privileged = strings(config, "privileged")
        self.drop = strings(config, "drop")
        self.severity_id = config.get("severity_id", 4)
        if not isinstance(self.severity_id, int) or isinstance(self.severity_id, bool):
            raise ValueError("`severity_id` must be an integer")
        self.redact = config.get("redact")
        if self.redact is not None and not isinstance(self.redact, str):
            raise ValueError("`redact` must be a string")

    def process(self, event):
        op = event.get("api_operation")
        if "api_operation" in event and not isinstance(op, str):
            return sluice.error("api_operation is not a string")
        if op in self.drop:
            return sluice.drop(f"noise: {op}")
        if op in self.privileged:
            event["severity_id"] = self.severity_id
            event["privileged"] = True
        if self.redact and event.get(self.redact) is not None:
            event[self.redact] = "[REDACTED]"
        return event


Transform = sluice.transform(TagPrivileged, name="tag-privileged", version="0.1.0")
