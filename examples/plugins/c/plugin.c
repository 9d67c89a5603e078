/*
 * tag-privileged, in C: the conformance sample (`../conformance/`).
 *
 * For each event: an `api_operation` that is not a string is an error; one
 * in `drop` is dropped as noise; one in `privileged` gets `severity_id` from
 * the config and `privileged = true`; the field named by `redact`, when set,
 * becomes "[REDACTED]".
 */
#include "sluice_plugin.h"

#include <stdlib.h>
#include <string.h>

const char *const SLUICE_PLUGIN_NAME = "tag-privileged";
const char *const SLUICE_PLUGIN_VERSION = "0.1.0";

static char **privileged, **noise;
static size_t n_privileged, n_noise;
static int64_t severity_id = 4;
static char *redact;

static char *strings(const sl_json *config, const char *key, char ***out, size_t *n) {
    *out = NULL;
    *n = 0;
    if (!sl_has(config, key)) return NULL;
    *out = sl_get_strings(config, key, n);
    if (*out) return NULL;
    const char *tail = "` must be a list of strings";
    char *why = malloc(strlen(key) + strlen(tail) + 2);
    strcpy(why, "`");
    strcat(why, key);
    strcat(why, tail);
    return why;
}

char *sluice_init(const sl_json *config) {
    char *why = strings(config, "privileged", &privileged, &n_privileged);
    if (!why) why = strings(config, "drop", &noise, &n_noise);
    if (why) return why;
    if (sl_has(config, "severity_id") && !sl_get_int(config, "severity_id", &severity_id))
        return sl_strdup("`severity_id` must be an integer");
    if (sl_has(config, "redact") && !(redact = sl_get_string(config, "redact")))
        return sl_strdup("`redact` must be a string");
    return NULL;
}

sl_outcome sluice_process(sl_json *event) {
    char type = sl_type(event, "api_operation");
    if (type && type != 's') return sl_error("api_operation is not a string");
    char *op = sl_get_string(event, "api_operation");
    if (op && sl_in(op, noise, n_noise)) {
        char *rule = malloc(strlen(op) + 8);
        strcpy(rule, "noise: ");
        strcat(rule, op);
        sl_outcome dropped = sl_drop(rule);
        free(rule);
        free(op);
        return dropped;
    }
    if (op && sl_in(op, privileged, n_privileged)) {
        sl_set_int(event, "severity_id", severity_id);
        sl_set_bool(event, "privileged", true);
    }
    free(op);
    if (redact) {
        /* a top-level field, as in the other languages */
        const char *value = sl_get_raw(event, redact);
        if (value && strcmp(value, "null") != 0) sl_set_string(event, redact, "[REDACTED]");
    }
    return sl_keep(event);
}
