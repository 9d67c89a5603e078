/*
 * The sluice plugin SDK for C: write two functions, never touch the bindings.
 *
 *   #include "sluice_plugin.h"
 *
 *   const char *const SLUICE_PLUGIN_NAME = "my-plugin";
 *   const char *const SLUICE_PLUGIN_VERSION = "0.1.0";
 *
 *   // Once per instance, with the stage's `config` table as a JSON object.
 *   // Return NULL to accept it, or a reason (a malloc'd string, or a literal
 *   // passed through sl_strdup) to refuse it.
 *   char *sluice_init(const sl_json *config);
 *
 *   // Transform plugins (kind = "transform"): once per event, in order.
 *   sl_outcome sluice_process(sl_json *event);
 *   // Parser plugins (kind = "parser"): once per raw record, in order.
 *   sl_outcome sluice_parse(const uint8_t *record, size_t len);
 *
 * Events are JSON objects keyed by the sluice schema's flat column names
 * (`time`, `actor_user_name`, ...); keys that are not columns end up in the
 * `unmapped` column. An sl_json is one object whose members can be read by
 * dotted path and set at the top level. Everything here allocates with
 * malloc; the SDK frees the events it hands out and the ones returned to it
 * (an event listed twice in sl_many is freed once; a NULL event makes the
 * outcome an error).
 *
 * No libc I/O is needed, so a plugin built with this SDK imports nothing
 * from WASI; `sl_log` writes to the host's log instead.
 */
#ifndef SLUICE_PLUGIN_H
#define SLUICE_PLUGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A JSON object: its members in order, each value kept as JSON text. */
typedef struct sl_json sl_json;

typedef enum { SL_KEEP, SL_DROP, SL_MANY, SL_ERROR } sl_outcome_kind;

/* What happened to one input; build it with the functions below. */
typedef struct {
    sl_outcome_kind kind;
    char *reason;      /* SL_DROP, SL_ERROR: malloc'd text */
    sl_json **events;  /* SL_KEEP: one event; SL_MANY: n events */
    size_t n;
} sl_outcome;

/* The event (taken over by the SDK). */
sl_outcome sl_keep(sl_json *event);
/* No event, on purpose; `rule` names why (copied). */
sl_outcome sl_drop(const char *rule);
/* Zero or more events (the array and the events are taken over). */
sl_outcome sl_many(sl_json **events, size_t n);
/* Not processed: the host quarantines the input with this reason (copied). */
sl_outcome sl_error(const char *reason);

/* ---- Objects ---- */

sl_json *sl_json_new(void);
/* Parses a JSON object; NULL (and *error set to a malloc'd reason, when
 * `error` is not NULL) when the text is not one. */
sl_json *sl_json_parse(const char *text, size_t len, char **error);
void sl_json_free(sl_json *obj);
/* The object as compact JSON text, malloc'd and NUL-terminated. */
char *sl_json_text(const sl_json *obj, size_t *len);

/* Reading. A path is member names joined by dots: "actor.user.name".
 * Writing is by top-level key only. Strings read are UTF-8; strings written
 * are made UTF-8 (invalid bytes become U+FFFD). */
/* A top-level member's JSON text (owned by obj, valid until it changes), or NULL. */
const char *sl_get_raw(const sl_json *obj, const char *path);
bool sl_has(const sl_json *obj, const char *path);
/* A string value, unescaped and malloc'd; NULL when missing or not a string. */
char *sl_get_string(const sl_json *obj, const char *path);
/* An integer value; false when missing or not an integer. */
bool sl_get_int(const sl_json *obj, const char *path, int64_t *out);
bool sl_get_bool(const sl_json *obj, const char *path, bool *out);
/* An array of strings, malloc'd (free with sl_strings_free); NULL when
 * missing or not an array of strings. */
char **sl_get_strings(const sl_json *obj, const char *path, size_t *n);
void sl_strings_free(char **strings, size_t n);
/* The value's JSON type: 's'tring, 'n'umber, 'b'oolean, 'o'bject, 'a'rray,
 * 'z' (null), or 0 when missing. */
char sl_type(const sl_json *obj, const char *path);

/* Writing top-level members (added at the end, or replaced in place). */
void sl_set_string(sl_json *obj, const char *key, const char *value);
void sl_set_int(sl_json *obj, const char *key, int64_t value);
void sl_set_bool(sl_json *obj, const char *key, bool value);
void sl_set_null(sl_json *obj, const char *key);
/* `json` must be one valid JSON value (surrounding white space is dropped);
 * returns false (and changes nothing) if not. */
bool sl_set_raw(sl_json *obj, const char *key, const char *json);
/* Returns whether the member was there. */
bool sl_remove(sl_json *obj, const char *key);

/* ---- Helpers ---- */

char *sl_strdup(const char *s);
/* A record's bytes as NUL-terminated UTF-8, malloc'd; bytes that are not
 * UTF-8 become U+FFFD (a NUL byte ends the text early). */
char *sl_text(const uint8_t *bytes, size_t len);
/* Whether `s` is one of `list[0..n)`. */
bool sl_in(const char *s, char *const *list, size_t n);

typedef enum { SL_TRACE, SL_DEBUG, SL_INFO, SL_WARN, SL_ERROR_LEVEL } sl_level;
/* A line in the host's log, tagged with the plugin's stage. */
void sl_log(sl_level level, const char *message);

/* ---- What the plugin defines ---- */

extern const char *const SLUICE_PLUGIN_NAME;
extern const char *const SLUICE_PLUGIN_VERSION;
char *sluice_init(const sl_json *config);
#ifdef SLUICE_PARSER
sl_outcome sluice_parse(const uint8_t *record, size_t len);
#else
sl_outcome sluice_process(sl_json *event);
#endif

#ifdef __cplusplus
}
#endif
#endif
