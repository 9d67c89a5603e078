/*
 * The sluice plugin SDK for C: JSON objects, outcomes, and the glue to the
 * bindings that `sluice plugin build` generates from the WIT contract
 * (`transform_plugin.h` or `parser_plugin.h`). See sluice_plugin.h.
 */
#include "sluice_plugin.h"

#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- text */

typedef struct {
    char *p;
    size_t len, cap;
} buf;

static void buf_grow(buf *b, size_t more) {
    if (b->len + more + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap * 2 : 64;
    while (cap < b->len + more + 1) cap *= 2;
    b->p = realloc(b->p, cap);
    if (!b->p) abort();
    b->cap = cap;
}

static void buf_add(buf *b, const char *s, size_t n) {
    buf_grow(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void buf_char(buf *b, char c) { buf_add(b, &c, 1); }

/* Decimal text of `v`, without stdio (which would bring in WASI's I/O). */
static void buf_int(buf *b, int64_t v) {
    char digits[24];
    size_t n = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        digits[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) buf_char(b, '-');
    while (n) buf_char(b, digits[--n]);
}

static char *copy_n(const char *s, size_t n) {
    char *out = malloc(n + 1);
    if (!out) abort();
    memcpy(out, s, n);
    out[n] = 0;
    return out;
}

char *sl_strdup(const char *s) { return copy_n(s, strlen(s)); }

bool sl_in(const char *s, char *const *list, size_t n) {
    for (size_t i = 0; s && i < n; i++)
        if (strcmp(s, list[i]) == 0) return true;
    return false;
}

/* The length of the valid UTF-8 sequence at s[0..n), or 0 when it is not one
 * (overlong forms, surrogates and code points past U+10FFFF are not). */
static size_t utf8_sequence(const unsigned char *s, size_t n) {
    unsigned char b = s[0];
    if (b < 0x80) return 1;
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF) {
        need = 1;
    } else if (b >= 0xE0 && b <= 0xEF) {
        need = 2;
        if (b == 0xE0) lo = 0xA0;
        if (b == 0xED) hi = 0x9F;
    } else if (b >= 0xF0 && b <= 0xF4) {
        need = 3;
        if (b == 0xF0) lo = 0x90;
        if (b == 0xF4) hi = 0x8F;
    } else {
        return 0;
    }
    if (n < need + 1) return 0;
    for (size_t k = 1; k <= need; k++) {
        if (s[k] < lo || s[k] > hi) return 0;
        lo = 0x80;
        hi = 0xBF;
    }
    return need + 1;
}

/* A JSON string literal for `s`; bytes that are not UTF-8 become U+FFFD. */
static void buf_quoted(buf *b, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    buf_char(b, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80) {
            size_t len = utf8_sequence((const unsigned char *)s + i, n - i);
            if (len == 0) {
                buf_add(b, "\xEF\xBF\xBD", 3);
            } else {
                buf_add(b, s + i, len);
                i += len - 1;
            }
            continue;
        }
        switch (c) {
        case '"': buf_add(b, "\\\"", 2); break;
        case '\\': buf_add(b, "\\\\", 2); break;
        case '\n': buf_add(b, "\\n", 2); break;
        case '\r': buf_add(b, "\\r", 2); break;
        case '\t': buf_add(b, "\\t", 2); break;
        default:
            if (c < 0x20) {
                char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
                buf_add(b, e, 6);
            } else {
                buf_char(b, (char)c);
            }
        }
    }
    buf_char(b, '"');
}

/* ---------------------------------------------------------------- parsing */

typedef struct {
    const char *s, *end;
    const char *error;
    int depth;
} cursor;

static void skip_ws(cursor *c) {
    while (c->s < c->end && (*c->s == ' ' || *c->s == '\t' || *c->s == '\n' || *c->s == '\r')) c->s++;
}

static bool fail(cursor *c, const char *why) {
    if (!c->error) c->error = why;
    return false;
}

static int hex_digit(char h) {
    if (h >= '0' && h <= '9') return h - '0';
    if (h >= 'a' && h <= 'f') return h - 'a' + 10;
    if (h >= 'A' && h <= 'F') return h - 'A' + 10;
    return -1;
}

static bool read_hex4(cursor *c, unsigned *out) {
    if (c->end - c->s < 4) return fail(c, "truncated \\u escape");
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int d = hex_digit(c->s[i]);
        if (d < 0) return fail(c, "bad \\u escape");
        v = v * 16 + (unsigned)d;
    }
    c->s += 4;
    *out = v;
    return true;
}

static void buf_utf8(buf *b, unsigned cp) {
    char u[4];
    if (cp < 0x80) {
        u[0] = (char)cp;
        buf_add(b, u, 1);
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        buf_add(b, u, 2);
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        buf_add(b, u, 3);
    } else {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        buf_add(b, u, 4);
    }
}

/* A string literal at the cursor; unescaped into `out` when it is not NULL. */
static bool read_string(cursor *c, buf *out) {
    if (c->s >= c->end || *c->s != '"') return fail(c, "expected a string");
    c->s++;
    while (c->s < c->end) {
        char ch = *c->s;
        if ((unsigned char)ch >= 0x80) {
            size_t len = utf8_sequence((const unsigned char *)c->s, (size_t)(c->end - c->s));
            if (len == 0) return fail(c, "invalid UTF-8 in a string");
            if (out) buf_add(out, c->s, len);
            c->s += len;
            continue;
        }
        c->s++;
        if (ch == '"') return true;
        if ((unsigned char)ch < 0x20) return fail(c, "control character in a string");
        if (ch != '\\') {
            if (out) buf_char(out, ch);
            continue;
        }
        if (c->s >= c->end) break;
        char e = *c->s++;
        char plain = 0;
        switch (e) {
        case '"': plain = '"'; break;
        case '\\': plain = '\\'; break;
        case '/': plain = '/'; break;
        case 'b': plain = '\b'; break;
        case 'f': plain = '\f'; break;
        case 'n': plain = '\n'; break;
        case 'r': plain = '\r'; break;
        case 't': plain = '\t'; break;
        case 'u': {
            unsigned cp;
            if (!read_hex4(c, &cp)) return false;
            if (cp >= 0xDC00 && cp <= 0xDFFF) return fail(c, "lone surrogate in a string");
            if (cp >= 0xD800 && cp < 0xDC00) {
                unsigned lo;
                if (c->end - c->s < 6 || c->s[0] != '\\' || c->s[1] != 'u') return fail(c, "lone surrogate in a string");
                c->s += 2;
                if (!read_hex4(c, &lo)) return false;
                if (lo < 0xDC00 || lo > 0xDFFF) return fail(c, "lone surrogate in a string");
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            if (out) buf_utf8(out, cp);
            continue;
        }
        default: return fail(c, "bad escape in a string");
        }
        if (out) buf_char(out, plain);
    }
    return fail(c, "unterminated string");
}

static bool skip_value(cursor *c);

static bool skip_number(cursor *c) {
    const char *start = c->s;
    if (c->s < c->end && *c->s == '-') c->s++;
    const char *digits = c->s;
    while (c->s < c->end && *c->s >= '0' && *c->s <= '9') c->s++;
    if (c->s == digits) return fail(c, "expected a value");
    if (*digits == '0' && c->s - digits > 1) return fail(c, "number with a leading zero");
    if (c->s < c->end && *c->s == '.') {
        c->s++;
        const char *frac = c->s;
        while (c->s < c->end && *c->s >= '0' && *c->s <= '9') c->s++;
        if (c->s == frac) return fail(c, "bad number");
    }
    if (c->s < c->end && (*c->s == 'e' || *c->s == 'E')) {
        c->s++;
        if (c->s < c->end && (*c->s == '+' || *c->s == '-')) c->s++;
        const char *exp = c->s;
        while (c->s < c->end && *c->s >= '0' && *c->s <= '9') c->s++;
        if (c->s == exp) return fail(c, "bad number");
    }
    return c->s > start;
}

static bool skip_literal(cursor *c, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(c->end - c->s) < n || memcmp(c->s, word, n) != 0) return fail(c, "expected a value");
    c->s += n;
    return true;
}

static bool skip_container(cursor *c, char close) {
    if (++c->depth > 128) return fail(c, "nested too deeply");
    c->s++;
    skip_ws(c);
    if (c->s < c->end && *c->s == close) {
        c->s++;
        c->depth--;
        return true;
    }
    for (;;) {
        if (close == '}') {
            skip_ws(c);
            if (!read_string(c, NULL)) return false;
            skip_ws(c);
            if (c->s >= c->end || *c->s != ':') return fail(c, "expected ':'");
            c->s++;
        }
        if (!skip_value(c)) return false;
        skip_ws(c);
        if (c->s < c->end && *c->s == ',') {
            c->s++;
            continue;
        }
        if (c->s < c->end && *c->s == close) {
            c->s++;
            c->depth--;
            return true;
        }
        return fail(c, close == '}' ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static bool skip_value(cursor *c) {
    skip_ws(c);
    if (c->s >= c->end) return fail(c, "expected a value");
    switch (*c->s) {
    case '{': return skip_container(c, '}');
    case '[': return skip_container(c, ']');
    case '"': return read_string(c, NULL);
    case 't': return skip_literal(c, "true");
    case 'f': return skip_literal(c, "false");
    case 'n': return skip_literal(c, "null");
    default: return skip_number(c);
    }
}

/* ---------------------------------------------------------------- objects */

typedef struct {
    char *key;
    char *value; /* JSON text */
} member;

struct sl_json {
    member *m;
    size_t n, cap;
};

sl_json *sl_json_new(void) {
    sl_json *o = calloc(1, sizeof *o);
    if (!o) abort();
    return o;
}

void sl_json_free(sl_json *o) {
    if (!o) return;
    for (size_t i = 0; i < o->n; i++) {
        free(o->m[i].key);
        free(o->m[i].value);
    }
    free(o->m);
    free(o);
}

static member *find(const sl_json *o, const char *key, size_t key_len) {
    for (size_t i = 0; i < o->n; i++)
        if (strlen(o->m[i].key) == key_len && memcmp(o->m[i].key, key, key_len) == 0) return &o->m[i];
    return NULL;
}

/* Takes over `value` (malloc'd JSON text). */
static void put(sl_json *o, const char *key, char *value) {
    member *m = find(o, key, strlen(key));
    if (m) {
        free(m->value);
        m->value = value;
        return;
    }
    if (o->n == o->cap) {
        o->cap = o->cap ? o->cap * 2 : 16;
        o->m = realloc(o->m, o->cap * sizeof *o->m);
        if (!o->m) abort();
    }
    o->m[o->n].key = sl_strdup(key);
    o->m[o->n].value = value;
    o->n++;
}

sl_json *sl_json_parse(const char *text, size_t len, char **error) {
    cursor c = {text, text + len, NULL, 0};
    sl_json *o = sl_json_new();
    skip_ws(&c);
    if (c.s >= c.end || *c.s != '{') {
        fail(&c, "not a JSON object");
        goto bad;
    }
    c.s++;
    skip_ws(&c);
    if (c.s < c.end && *c.s == '}') {
        c.s++;
    } else {
        for (;;) {
            skip_ws(&c);
            buf key = {0};
            if (!read_string(&c, &key)) {
                free(key.p);
                goto bad;
            }
            skip_ws(&c);
            if (c.s >= c.end || *c.s != ':') {
                free(key.p);
                fail(&c, "expected ':'");
                goto bad;
            }
            c.s++;
            skip_ws(&c);
            const char *start = c.s;
            if (!skip_value(&c)) {
                free(key.p);
                goto bad;
            }
            if (key.p && strlen(key.p) != key.len) {
                free(key.p);
                fail(&c, "NUL in a key");
                goto bad;
            }
            put(o, key.p ? key.p : "", copy_n(start, (size_t)(c.s - start)));
            free(key.p);
            skip_ws(&c);
            if (c.s < c.end && *c.s == ',') {
                c.s++;
                continue;
            }
            if (c.s < c.end && *c.s == '}') {
                c.s++;
                break;
            }
            fail(&c, "expected ',' or '}'");
            goto bad;
        }
    }
    skip_ws(&c);
    if (c.s != c.end) {
        fail(&c, "text after the object");
        goto bad;
    }
    return o;
bad:
    if (error) {
        buf msg = {0};
        buf_add(&msg, c.error, strlen(c.error));
        buf_add(&msg, " at byte ", 9);
        buf_int(&msg, (int64_t)(c.s - text));
        *error = msg.p;
    }
    sl_json_free(o);
    return NULL;
}

char *sl_json_text(const sl_json *o, size_t *len) {
    buf b = {0};
    buf_char(&b, '{');
    for (size_t i = 0; i < o->n; i++) {
        if (i) buf_char(&b, ',');
        buf_quoted(&b, o->m[i].key, strlen(o->m[i].key));
        buf_char(&b, ':');
        buf_add(&b, o->m[i].value, strlen(o->m[i].value));
    }
    buf_char(&b, '}');
    if (len) *len = b.len;
    return b.p;
}

/* The span of member `key` in the object text at [s, end), or false. */
static bool object_member(const char *s, const char *end, const char *key, size_t key_len, const char **vs,
                          const char **ve) {
    cursor c = {s, end, NULL, 0};
    skip_ws(&c);
    if (c.s >= c.end || *c.s != '{') return false;
    c.s++;
    for (;;) {
        skip_ws(&c);
        if (c.s < c.end && *c.s == '}') return false;
        buf k = {0};
        if (!read_string(&c, &k)) {
            free(k.p);
            return false;
        }
        bool same = k.len == key_len && (key_len == 0 || memcmp(k.p, key, key_len) == 0);
        free(k.p);
        skip_ws(&c);
        if (c.s >= c.end || *c.s != ':') return false;
        c.s++;
        skip_ws(&c);
        const char *start = c.s;
        if (!skip_value(&c)) return false;
        if (same) {
            *vs = start;
            *ve = c.s;
            return true;
        }
        skip_ws(&c);
        if (c.s < c.end && *c.s == ',') {
            c.s++;
            continue;
        }
        return false;
    }
}

/* The value at a dotted path, as a span of JSON text. */
static bool lookup(const sl_json *o, const char *path, const char **vs, const char **ve) {
    const char *dot = strchr(path, '.');
    size_t first = dot ? (size_t)(dot - path) : strlen(path);
    member *m = find(o, path, first);
    if (!m) return false;
    const char *s = m->value, *e = m->value + strlen(m->value);
    while (dot) {
        const char *name = dot + 1;
        dot = strchr(name, '.');
        size_t n = dot ? (size_t)(dot - name) : strlen(name);
        if (!object_member(s, e, name, n, &s, &e)) return false;
    }
    *vs = s;
    *ve = e;
    return true;
}

const char *sl_get_raw(const sl_json *o, const char *path) {
    if (strchr(path, '.')) return NULL; /* nested values have no text of their own */
    member *m = find(o, path, strlen(path));
    return m ? m->value : NULL;
}

bool sl_has(const sl_json *o, const char *path) {
    const char *s, *e;
    return lookup(o, path, &s, &e);
}

char sl_type(const sl_json *o, const char *path) {
    const char *s, *e;
    if (!lookup(o, path, &s, &e)) return 0;
    switch (*s) {
    case '"': return 's';
    case '{': return 'o';
    case '[': return 'a';
    case 't':
    case 'f': return 'b';
    case 'n': return 'z';
    default: return 'n';
    }
}

char *sl_get_string(const sl_json *o, const char *path) {
    const char *s, *e;
    if (!lookup(o, path, &s, &e) || *s != '"') return NULL;
    cursor c = {s, e, NULL, 0};
    buf out = {0};
    if (!read_string(&c, &out)) {
        free(out.p);
        return NULL;
    }
    return out.p ? out.p : sl_strdup("");
}

bool sl_get_int(const sl_json *o, const char *path, int64_t *out) {
    const char *s, *e;
    if (!lookup(o, path, &s, &e)) return false;
    const char *p = s;
    bool negative = p < e && *p == '-';
    if (negative) p++;
    if (p == e) return false;
    uint64_t v = 0;
    for (; p < e; p++) {
        if (*p < '0' || *p > '9') return false; /* a fraction or exponent: not an integer */
        uint64_t next = v * 10 + (uint64_t)(*p - '0');
        if (next / 10 != v || next > (uint64_t)INT64_MAX + (negative ? 1 : 0)) return false;
        v = next;
    }
    *out = negative ? (int64_t)(0 - v) : (int64_t)v;
    return true;
}

bool sl_get_bool(const sl_json *o, const char *path, bool *out) {
    const char *s, *e;
    if (!lookup(o, path, &s, &e)) return false;
    if (e - s == 4 && memcmp(s, "true", 4) == 0) {
        *out = true;
        return true;
    }
    if (e - s == 5 && memcmp(s, "false", 5) == 0) {
        *out = false;
        return true;
    }
    return false;
}

void sl_strings_free(char **list, size_t n) {
    for (size_t i = 0; list && i < n; i++) free(list[i]);
    free(list);
}

char **sl_get_strings(const sl_json *o, const char *path, size_t *n) {
    const char *s, *e;
    *n = 0;
    if (!lookup(o, path, &s, &e) || *s != '[') return NULL;
    cursor c = {s + 1, e, NULL, 0};
    char **list = malloc(sizeof *list);
    size_t cap = 1;
    if (!list) abort();
    skip_ws(&c);
    if (c.s < c.end && *c.s == ']') return list;
    for (;;) {
        skip_ws(&c);
        buf item = {0};
        if (!read_string(&c, &item)) {
            free(item.p);
            sl_strings_free(list, *n);
            *n = 0;
            return NULL;
        }
        if (*n == cap) {
            cap *= 2;
            list = realloc(list, cap * sizeof *list);
            if (!list) abort();
        }
        list[(*n)++] = item.p ? item.p : sl_strdup("");
        skip_ws(&c);
        if (c.s < c.end && *c.s == ',') {
            c.s++;
            continue;
        }
        return list;
    }
}

void sl_set_string(sl_json *o, const char *key, const char *value) {
    buf b = {0};
    buf_quoted(&b, value, strlen(value));
    put(o, key, b.p);
}

void sl_set_int(sl_json *o, const char *key, int64_t value) {
    buf b = {0};
    buf_int(&b, value);
    put(o, key, b.p);
}

void sl_set_bool(sl_json *o, const char *key, bool value) { put(o, key, sl_strdup(value ? "true" : "false")); }

void sl_set_null(sl_json *o, const char *key) { put(o, key, sl_strdup("null")); }

bool sl_set_raw(sl_json *o, const char *key, const char *json) {
    cursor c = {json, json + strlen(json), NULL, 0};
    skip_ws(&c);
    const char *start = c.s;
    if (!skip_value(&c)) return false;
    const char *end = c.s;
    skip_ws(&c);
    if (c.s != c.end) return false;
    put(o, key, copy_n(start, (size_t)(end - start)));
    return true;
}

bool sl_remove(sl_json *o, const char *key) {
    member *m = find(o, key, strlen(key));
    if (!m) return false;
    free(m->key);
    free(m->value);
    size_t i = (size_t)(m - o->m);
    memmove(&o->m[i], &o->m[i + 1], (o->n - i - 1) * sizeof *o->m);
    o->n--;
    return true;
}

/* ---------------------------------------------------------------- outcomes */

char *sl_text(const uint8_t *bytes, size_t len) {
    buf b = {0};
    buf_grow(&b, len);
    for (size_t i = 0; i < len;) {
        size_t n = utf8_sequence(bytes + i, len - i);
        if (n == 0) {
            buf_add(&b, "\xEF\xBF\xBD", 3);
            i += 1;
        } else {
            buf_add(&b, (const char *)bytes + i, n);
            i += n;
        }
    }
    return b.p;
}

sl_outcome sl_keep(sl_json *event) {
    sl_json **one = malloc(sizeof *one);
    if (!one) abort();
    one[0] = event;
    return (sl_outcome){SL_KEEP, NULL, one, 1};
}

sl_outcome sl_drop(const char *rule) { return (sl_outcome){SL_DROP, sl_strdup(rule), NULL, 0}; }

sl_outcome sl_many(sl_json **events, size_t n) { return (sl_outcome){SL_MANY, NULL, events, n}; }

sl_outcome sl_error(const char *reason) { return (sl_outcome){SL_ERROR, sl_strdup(reason), NULL, 0}; }

/* ---------------------------------------------------------------- bindings */

#ifdef SLUICE_PARSER
#include "parser_plugin.h"
#define WIRE(x) parser_plugin_##x
#define EXPORT(x) exports_sluice_plugin_parser_##x
#else
#include "transform_plugin.h"
#define WIRE(x) transform_plugin_##x
#define EXPORT(x) exports_sluice_plugin_transform_##x
#endif

typedef WIRE(string_t) wire_string;

/* Hands a malloc'd text to the host, which frees it after the call. */
static wire_string give(char *text, size_t len) {
    if (len == 0) {
        free(text);
        return (wire_string){NULL, 0};
    }
    return (wire_string){(uint8_t *)text, len};
}

static wire_string give_text(char *text) { return give(text, strlen(text)); }

void sl_log(sl_level level, const char *message) {
    wire_string m = {(uint8_t *)message, strlen(message)};
    sluice_plugin_host_log((sluice_plugin_host_level_t)level, &m);
}

static bool initialized;

void EXPORT(info)(EXPORT(plugin_info_t) * ret) {
    WIRE(string_dup)(&ret->name, SLUICE_PLUGIN_NAME);
    WIRE(string_dup)(&ret->version, SLUICE_PLUGIN_VERSION);
}

bool EXPORT(init)(wire_string *config, wire_string *err) {
    char *why = NULL;
    size_t i = 0;
    while (i < config->len && config->ptr[i] && strchr(" \t\r\n", config->ptr[i])) i++;
    sl_json *cfg = i == config->len ? sl_json_new() : sl_json_parse((const char *)config->ptr, config->len, &why);
    WIRE(string_free)(config);
    if (!cfg) {
        buf msg = {0};
        const char *lead = "plugin config is not a JSON object: ";
        buf_add(&msg, lead, strlen(lead));
        buf_add(&msg, why, strlen(why));
        free(why);
        *err = give(msg.p, msg.len);
        return false;
    }
    char *refused = sluice_init(cfg);
    sl_json_free(cfg);
    if (refused) {
        *err = give_text(refused);
        return false;
    }
    initialized = true;
    return true;
}

/* Frees the events of an outcome, each once (a plugin may list one twice). */
static void free_events(sl_json **events, size_t n) {
    for (size_t i = 0; i < n; i++) {
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++) seen = events[j] == events[i];
        if (!seen) sl_json_free(events[i]);
    }
    free(events);
}

/* One outcome on the wire; frees what the plugin returned. */
static EXPORT(outcome_t) to_wire(sl_outcome o) {
    EXPORT(outcome_t) w;
    memset(&w, 0, sizeof w);
    for (size_t i = 0; i < o.n; i++) {
        if (!o.events[i]) {
            free_events(o.events, o.n);
            free(o.reason);
            o = sl_error("the plugin returned a NULL event");
            break;
        }
    }
    switch (o.kind) {
    case SL_KEEP: {
        size_t len;
        char *text = sl_json_text(o.events[0], &len);
        w.tag = SLUICE_PLUGIN_TYPES_OUTCOME_KEEP;
        w.val.keep = give(text, len);
        break;
    }
    case SL_MANY: {
        w.tag = SLUICE_PLUGIN_TYPES_OUTCOME_MANY;
        w.val.many.len = o.n;
        w.val.many.ptr = o.n ? malloc(o.n * sizeof(wire_string)) : NULL;
        if (o.n && !w.val.many.ptr) abort();
        for (size_t i = 0; i < o.n; i++) {
            size_t len;
            char *text = sl_json_text(o.events[i], &len);
            w.val.many.ptr[i] = give(text, len);
        }
        break;
    }
    case SL_DROP:
        w.tag = SLUICE_PLUGIN_TYPES_OUTCOME_DROP;
        w.val.drop = give_text(o.reason);
        o.reason = NULL;
        break;
    case SL_ERROR:
        w.tag = SLUICE_PLUGIN_TYPES_OUTCOME_ERROR;
        w.val.error = give_text(o.reason);
        o.reason = NULL;
        break;
    }
    free_events(o.events, o.n);
    free(o.reason);
    return w;
}

/* Frees `input` unless the outcome handed it back (the SDK frees it then). */
static void release_input(sl_json *input, const sl_outcome *o) {
    for (size_t i = 0; i < o->n; i++)
        if (o->events[i] == input) return;
    sl_json_free(input);
}

#ifdef SLUICE_PARSER
void EXPORT(parse)(WIRE(list_list_u8_t) * records, EXPORT(list_outcome_t) * ret) {
    ret->len = records->len;
    ret->ptr = records->len ? malloc(records->len * sizeof *ret->ptr) : NULL;
    if (records->len && !ret->ptr) abort();
    for (size_t i = 0; i < records->len; i++) {
        sl_outcome o = initialized ? sluice_parse(records->ptr[i].ptr, records->ptr[i].len)
                                   : sl_error("plugin used before init");
        ret->ptr[i] = to_wire(o);
    }
    WIRE(list_list_u8_free)(records);
}
#else
void EXPORT(process)(WIRE(list_string_t) * events, EXPORT(list_outcome_t) * ret) {
    ret->len = events->len;
    ret->ptr = events->len ? malloc(events->len * sizeof *ret->ptr) : NULL;
    if (events->len && !ret->ptr) abort();
    for (size_t i = 0; i < events->len; i++) {
        sl_outcome o;
        char *why = NULL;
        sl_json *event = sl_json_parse((const char *)events->ptr[i].ptr, events->ptr[i].len, &why);
        if (!initialized) {
            o = sl_error("plugin used before init");
            sl_json_free(event);
        } else if (!event) {
            o = sl_error("event is not a JSON object");
        } else {
            o = sluice_process(event);
            release_input(event, &o);
        }
        free(why);
        ret->ptr[i] = to_wire(o);
    }
    WIRE(list_string_free)(events);
}
#endif
