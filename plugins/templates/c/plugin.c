/*
 * {{name}}: a sluice transform plugin. It adds `tag` (from the config) to
 * every event, and refuses events that have no `time`.
 *
 * Build: `sluice plugin build .` — test: `sluice plugin test {{name}}.wasm
 * --input test/input.jsonl --config test/config.toml --expect test/expected.jsonl`
 */
#include "sluice_plugin.h"

#include <stdlib.h>

const char *const SLUICE_PLUGIN_NAME = "{{name}}";
const char *const SLUICE_PLUGIN_VERSION = "0.1.0";

static char *tag;

char *sluice_init(const sl_json *config) {
    free(tag);
    if (!sl_has(config, "tag")) {
        tag = sl_strdup("sluice");
        return NULL;
    }
    tag = sl_get_string(config, "tag");
    return tag ? NULL : sl_strdup("`tag` must be a string");
}

sl_outcome sluice_process(sl_json *event) {
    if (!sl_has(event, "time")) return sl_error("event has no time");
    sl_set_string(event, "tag", tag);
    return sl_keep(event);
}
