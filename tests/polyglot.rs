//! Plugins in four languages: each SDK's sample plugin (`examples/plugins/<lang>`)
//! is built from source with `sluice plugin build`, passes the shared
//! conformance suite (`examples/plugins/conformance`), and writes the same
//! Parquet rows through a real pipeline; `sluice plugin new` scaffolds a
//! project in each language that builds and passes its own golden test.
//!
//! The toolchains come from `.ci/run`: clang-19 + wasi-libc (Debian),
//! componentize-py (PyPI), componentize-qjs (npm), and the Rust wasm32-wasip2
//! target. A missing one fails the test with the build's own error.

use crate::util::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Instant;

const LANGS: [&str; 4] = ["rust", "c", "python", "js"];

fn conformance(file: &str) -> PathBuf {
    repo_root().join("examples/plugins/conformance").join(file)
}

/// Runs `sluice plugin build` on a project; Rust builds share one target
/// folder, kept between test runs.
fn build(project: &Path, out: &Path) -> Run {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin-projects");
    let args = ["plugin", "build", project.to_str().unwrap(), "-o", out.to_str().unwrap()];
    sluice_in(&repo_root(), &args, &[("CARGO_TARGET_DIR", target.to_str().unwrap())])
}

/// Every row of a stream, as JSON objects without nulls and without the two
/// columns that differ between runs (`observed_time`, and `event_hash`, which
/// covers it); `time` as microseconds, whatever DuckDB's time zone.
fn rows(archive: &Path, stream: &str) -> Vec<Value> {
    let out = duckdb(&format!(
        "SELECT to_json(t)::VARCHAR FROM (SELECT epoch_us(time) AS time_us, * EXCLUDE (time, observed_time, event_hash) \
         FROM read_parquet('{}/{stream}/**/*.parquet')) t ORDER BY seq",
        archive.display()
    ));
    out.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let mut row: serde_json::Map<String, Value> = serde_json::from_str(r[0].as_str().unwrap()).unwrap();
            row.retain(|_, v| !v.is_null());
            Value::Object(row)
        })
        .collect()
}

/// Builds one language's sample and runs the suite and the pipeline; returns
/// the folder and the component, for more checks.
fn conformance_in(lang: &str) -> (TestDir, PathBuf) {
    let t = TestDir::new();
    let wasm = t.path(&format!("tag-privileged-{lang}.wasm"));
    let started = Instant::now();
    let built = build(&repo_root().join("examples/plugins").join(lang), &wasm);
    built.assert_success();
    let build_secs = started.elapsed().as_secs_f64();

    // the shared golden file, outcome by outcome
    let suite = [
        "plugin",
        "test",
        wasm.to_str().unwrap(),
        "--input",
        "examples/plugins/conformance/input.jsonl",
        "--config",
        "examples/plugins/conformance/config.toml",
        "--expect",
        "examples/plugins/conformance/expected.jsonl",
    ];
    let run = sluice_in(&repo_root(), &suite, &[]);
    run.assert_success();
    assert!(run.stdout.contains("ok: tag-privileged 0.1.0: 8 lines match"), "{lang}: {run}");

    // a real pipeline: parse-json, then this plugin, then Parquet
    let out = t.path("out");
    let env = [("SLUICE_PLUGIN", wasm.to_str().unwrap()), ("SLUICE_OUT", out.to_str().unwrap())];
    let run = sluice_in(&repo_root(), &["run", "examples/plugins/conformance/pipeline.toml"], &env);
    run.assert_success();
    let s = run.summary();
    assert_eq!((s.read, s.written, s.quarantined, s.dropped), (8, 6, 1, 1), "{lang}: {run}");
    assert!(run.stdout.contains("dropped 1: tag: noise: GetCallerIdentity"), "{lang}: {run}");

    let expected: Vec<Value> = std::fs::read_to_string(conformance("expected-rows.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let got = rows(&out, "events");
    assert_eq!(got.len(), expected.len(), "{lang}: {got:#?}");
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(g, e, "{lang}: row {i} differs from conformance/expected-rows.jsonl");
    }
    let q = t.quarantine("out", "events");
    assert_eq!(q.len(), 1, "{lang}");
    assert_eq!(
        (&q[0]["stage"], &q[0]["plugin"], &q[0]["plugin_version"], &q[0]["reason"]),
        (&"tag".into(), &"tag-privileged".into(), &"0.1.0".into(), &"api_operation is not a string".into()),
        "{lang}"
    );
    assert!(q[0]["record"].as_str().unwrap().contains("\"mallory\""), "{lang}: {}", q[0]);
    eprintln!(
        "{lang}: built in {build_secs:.1} s, conformance and pipeline in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    (t, wasm)
}

#[test]
fn conformance_rust() {
    conformance_in("rust");
}
#[test]
fn conformance_c() {
    conformance_in("c");
}
#[test]
fn conformance_python() {
    let (t, wasm) = conformance_in("python");
    // the interpreter starts at ~12 MiB: a cap below that is refused at start, saying so
    let pipeline = std::fs::read_to_string(conformance("pipeline.toml"))
        .unwrap()
        .replace("plugin = \"${SLUICE_PLUGIN}\"", &format!("plugin = \"{}\"\nmemory_mb = 8", wasm.display()));
    let p = t.write("small.toml", &pipeline.replace("${SLUICE_OUT}", "out-small"));
    let run = sluice_in(&repo_root(), &["validate", p.to_str().unwrap()], &[]);
    run.assert_failure();
    assert!(
        run.stderr.contains("failed to start: memory minimum size of")
            && run.stderr.contains("(memory_mb = 8 is less than the plugin needs to start)"),
        "{run}"
    );
}
#[test]
fn conformance_js() {
    conformance_in("js");
}

#[test]
fn the_pipeline_gives_the_plugin_the_suites_config() {
    let pipeline: toml::Table =
        toml::from_str(&std::fs::read_to_string(conformance("pipeline.toml")).unwrap()).unwrap();
    let suite: toml::Table = toml::from_str(&std::fs::read_to_string(conformance("config.toml")).unwrap()).unwrap();
    assert_eq!(pipeline["stages"]["tag"]["config"], toml::Value::Table(suite));
    // one sample per language, each a project `sluice plugin build` reads
    for lang in LANGS {
        let manifest =
            std::fs::read_to_string(repo_root().join("examples/plugins").join(lang).join("sluice-plugin.toml"))
                .unwrap();
        assert!(manifest.contains(&format!("lang = \"{lang}\"")), "{lang}: {manifest}");
    }
}

/// `plugin new` → `plugin build` → `plugin test` on the scaffold's own golden files.
fn scaffold_in(lang: &str) {
    let t = TestDir::new();
    let started = Instant::now();
    let name = format!("hello-{lang}");
    let created = sluice_in(t.root(), &["plugin", "new", &name, "--lang", lang], &[]);
    created.assert_success();
    assert!(created.stdout.contains(&format!("sluice plugin build {name}")), "{created}");
    let project = t.path(&name);
    let wasm = project.join(format!("{name}.wasm"));
    let built = build(&project, &wasm);
    built.assert_success();
    assert!(built.stdout.contains(&format!("built {}", wasm.display())), "{built}");
    let run = sluice_in(
        &project,
        &[
            "plugin",
            "test",
            wasm.to_str().unwrap(),
            "--input",
            "test/input.jsonl",
            "--config",
            "test/config.toml",
            "--expect",
            "test/expected.jsonl",
        ],
        &[],
    );
    run.assert_success();
    assert!(run.stdout.contains(&format!("ok: {name} 0.1.0: 2 lines match")), "{lang}: {run}");
    // a refused config surfaces with the plugin's own words
    let bad = t.write("bad.toml", "tag = 7\n");
    let run = sluice_in(
        &project,
        &["plugin", "test", wasm.to_str().unwrap(), "--input", "test/input.jsonl", "--config", bad.to_str().unwrap()],
        &[],
    );
    run.assert_failure();
    assert!(
        run.stderr.contains("refused its config") && run.stderr.contains("`tag` must be a string"),
        "{lang}: {run}"
    );
    eprintln!("{lang}: new + build + test in {:.1} s", started.elapsed().as_secs_f64());
}

#[test]
fn scaffold_rust() {
    scaffold_in("rust");
}
#[test]
fn scaffold_c() {
    scaffold_in("c");
}
#[test]
fn scaffold_python() {
    scaffold_in("python");
}
#[test]
fn scaffold_js() {
    scaffold_in("js");
}

#[test]
fn plugin_new_refuses_a_bad_name_or_a_used_folder() {
    let t = TestDir::new();
    let run = sluice_in(t.root(), &["plugin", "new", "Bad_Name", "--lang", "c"], &[]);
    run.assert_failure();
    assert!(run.stderr.contains("lower-case letters, digits and dashes"), "{run}");
    t.write("taken/file", "x");
    let run = sluice_in(t.root(), &["plugin", "new", "ok", "--lang", "c", "--dir", "taken"], &[]);
    run.assert_failure();
    assert!(run.stderr.contains("exists and is not empty"), "{run}");
}

/// A C scaffold rebuilt against a changed contract.
fn c_project_with_wit(t: &TestDir, name: &str, edit: impl Fn(&Path)) -> PathBuf {
    sluice_in(t.root(), &["plugin", "new", name, "--lang", "c"], &[]).assert_success();
    let project = t.path(name);
    edit(&project);
    let wasm = project.join(format!("{name}.wasm"));
    build(&project, &wasm).assert_success();
    wasm
}

#[test]
fn a_plugin_of_another_major_version_is_refused_naming_both() {
    let t = TestDir::new();
    let wasm = c_project_with_wit(&t, "next", |project| {
        let wit = project.join("wit/plugin.wit");
        let text = std::fs::read_to_string(&wit).unwrap();
        std::fs::write(&wit, text.replace("package sluice:plugin@0.1.0;", "package sluice:plugin@1.0.0;")).unwrap();
    });
    let run = sluice_in(t.root(), &["plugin", "test", wasm.to_str().unwrap(), "--input", "next/test/input.jsonl"], &[]);
    run.assert_failure();
    assert!(
        run.stderr.contains("exports sluice:plugin/transform@1.0.0, but this sluice speaks sluice:plugin@0.1.x"),
        "{run}"
    );
}

#[test]
fn a_plugin_that_imports_wasi_http_is_refused() {
    let t = TestDir::new();
    let wasm = c_project_with_wit(&t, "fetcher", |project| {
        // a world that imports an HTTP client, and code that calls it
        let wit = project.join("wit/plugin.wit");
        let text = std::fs::read_to_string(&wit).unwrap().replace(
            "world transform-plugin {",
            "world transform-plugin {\n    import wasi:http/outgoing-handler@0.2.6;",
        );
        std::fs::write(&wit, text).unwrap();
        std::fs::create_dir_all(project.join("wit/deps/http")).unwrap();
        std::fs::write(
            project.join("wit/deps/http/http.wit"),
            "package wasi:http@0.2.6;\ninterface outgoing-handler {\n    handle: func(url: string) -> u32;\n}\n",
        )
        .unwrap();
        let code = project.join("plugin.c");
        let text = std::fs::read_to_string(&code).unwrap().replace(
            "sl_outcome sluice_process(sl_json *event) {",
            "#include <string.h>\n#include \"transform_plugin.h\"\n\
             sl_outcome sluice_process(sl_json *event) {\n\
             char *url = sl_get_string(event, \"url\");\n\
             if (url) {\n\
                 transform_plugin_string_t u = {(uint8_t *)url, strlen(url)};\n\
                 sl_set_int(event, \"status\", wasi_http_outgoing_handler_handle(&u));\n\
                 free(url);\n\
             }",
        );
        std::fs::write(&code, text).unwrap();
    });
    let run =
        sluice_in(t.root(), &["plugin", "test", wasm.to_str().unwrap(), "--input", "fetcher/test/input.jsonl"], &[]);
    run.assert_failure();
    assert!(run.stderr.contains("imports wasi:http/outgoing-handler@0.2.6: plugins get no network access"), "{run}");
}

/// A parser in each SDK that has one besides Rust's (the bundled parsers are
/// Rust): `USER ACTION[,ACTION...]` lines; one action keeps an event, several
/// make many, `#` lines are dropped, anything else is an error.
const PARSER_C: &str = r##"
#include "sluice_plugin.h"
#include <stdlib.h>
#include <string.h>

const char *const SLUICE_PLUGIN_NAME = "words";
const char *const SLUICE_PLUGIN_VERSION = "0.1.0";
static int64_t when;

char *sluice_init(const sl_json *config) {
    if (sl_has(config, "time") && !sl_get_int(config, "time", &when)) return sl_strdup("`time` must be an integer");
    sl_log(SL_WARN, "words is ready");
    return NULL;
}

sl_outcome sluice_parse(const uint8_t *record, size_t len) {
    if (len && record[0] == '#') return sl_drop("comment");
    char *text = malloc(len + 1);
    memcpy(text, record, len);
    text[len] = 0;
    char *space = strchr(text, ' ');
    if (!space || space == text || !space[1] || strchr(space + 1, ' ')) {
        free(text);
        return sl_error("expected USER ACTIONS");
    }
    *space = 0;
    size_t n = 1;
    for (char *p = space + 1; *p; p++) n += *p == ',';
    sl_json **events = malloc(n * sizeof *events);
    char *op = space + 1;
    for (size_t i = 0; i < n; i++) {
        char *comma = strchr(op, ',');
        if (comma) *comma = 0;
        events[i] = sl_json_new();
        sl_set_int(events[i], "time", when);
        sl_set_string(events[i], "actor_user_name", text);
        sl_set_string(events[i], "api_operation", op);
        if (comma) op = comma + 1;
    }
    free(text);
    if (n > 1) return sl_many(events, n);
    sl_json *one = events[0];
    free(events);
    return sl_keep(one);
}
"##;

const PARSER_PYTHON: &str = r##"
import sluice_plugin as sluice

class Words:
    def __init__(self, config):
        self.time = config.get("time", 0)
        sluice.log("warn", "words is ready")

    def parse(self, record):
        text = record.decode("utf-8")
        if text.startswith("#"):
            return sluice.drop("comment")
        words = text.split(" ")
        if len(words) != 2 or not all(words):
            return sluice.error("expected USER ACTIONS")
        user, actions = words
        events = [{"time": self.time, "actor_user_name": user, "api_operation": a} for a in actions.split(",")]
        return events[0] if len(events) == 1 else events

Parser = sluice.parser(Words, name="words", version="0.1.0")
"##;

const PARSER_JS: &str = r##"
import * as sluice from "./sluice_plugin.js";

export const parser = sluice.parser({
  name: "words",
  version: "0.1.0",
  init(config) {
    sluice.log("warn", "words is ready");
    return { time: config.time ?? 0 };
  },
  parse(state, record) {
    const text = sluice.text(record);
    if (text.startsWith("#")) return sluice.drop("comment");
    const words = text.split(" ");
    if (words.length !== 2 || !words.every(Boolean)) return sluice.error("expected USER ACTIONS");
    const [user, actions] = words;
    const events = actions.split(",").map((a) => ({ time: state.time, actor_user_name: user, api_operation: a }));
    return events.length === 1 ? events[0] : events;
  },
});
"##;

/// A scaffolded project turned into a parser with `source` as its `file`, built.
fn parser_project(t: &TestDir, name: &str, lang: &str, file: &str, source: &str) -> PathBuf {
    sluice_in(t.root(), &["plugin", "new", name, "--lang", lang], &[]).assert_success();
    let project = t.path(name);
    let manifest = std::fs::read_to_string(project.join("sluice-plugin.toml")).unwrap();
    std::fs::write(project.join("sluice-plugin.toml"), manifest.replace("kind = \"transform\"", "kind = \"parser\""))
        .unwrap();
    std::fs::write(project.join(file), source).unwrap();
    let wasm = project.join(format!("{name}.wasm"));
    build(&project, &wasm).assert_success();
    wasm
}

fn parser_in(lang: &str, file: &str, source: &str) {
    let t = TestDir::new();
    let wasm = parser_project(&t, "words", lang, file, source);
    t.write("in.txt", "alice CreateUser\n# a comment\noops\nbob Read,Write\nzoë Löschen\n");
    t.write("config.toml", "time = 1793491200000000\n");
    t.write(
        "expected.jsonl",
        "{\"keep\":{\"time\":1793491200000000,\"actor_user_name\":\"alice\",\"api_operation\":\"CreateUser\"}}\n\
         {\"drop\":\"comment\"}\n\
         {\"error\":\"expected USER ACTIONS\"}\n\
         {\"many\":[{\"time\":1793491200000000,\"actor_user_name\":\"bob\",\"api_operation\":\"Read\"},\
         {\"time\":1793491200000000,\"actor_user_name\":\"bob\",\"api_operation\":\"Write\"}]}\n\
         {\"keep\":{\"time\":1793491200000000,\"actor_user_name\":\"zoë\",\"api_operation\":\"Löschen\"}}\n",
    );
    let args = [
        "plugin",
        "test",
        wasm.to_str().unwrap(),
        "--input",
        "in.txt",
        "--config",
        "config.toml",
        "--expect",
        "expected.jsonl",
    ];
    let run = sluice_in(t.root(), &args, &[("SLUICE_LOG", "warn")]);
    run.assert_success();
    assert!(run.stdout.contains("ok: words 0.1.0: 5 lines match"), "{lang}: {run}");
    // the host's log import, through each SDK
    assert!(run.stderr.contains("words is ready") && run.stderr.contains("stage=\"test\""), "{lang}: {run}");
}

#[test]
fn parser_c() {
    parser_in("c", "plugin.c", PARSER_C);
}
#[test]
fn parser_python() {
    parser_in("python", "app.py", PARSER_PYTHON);
}
#[test]
fn parser_js() {
    parser_in("js", "plugin.js", PARSER_JS);
}

#[test]
fn the_js_sdk_decodes_utf8_as_text_decoder_does() {
    // QuickJS has no TextDecoder, so the SDK decodes records itself; Node's is the reference
    let out = std::process::Command::new("node")
        .arg(repo_root().join("tests/tools/js_sdk_text.mjs"))
        .arg(repo_root().join("plugins/sdk-js/sluice_plugin.js"))
        .output()
        .expect("node is needed for this test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("mismatches 0 of 20012"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The C SDK's JSON reader and writer on the inputs that trip JSON code:
/// escapes, surrogates, numbers, nesting, invalid UTF-8, NUL in keys.
const C_ECHO: &str = r##"
#include "sluice_plugin.h"
#include <stdlib.h>
#include <string.h>

const char *const SLUICE_PLUGIN_NAME = "echo";
const char *const SLUICE_PLUGIN_VERSION = "0.1.0";

char *sluice_init(const sl_json *config) {
    (void)config;
    return NULL;
}

sl_outcome sluice_parse(const uint8_t *record, size_t len) {
    if (len >= 2 && record[0] == 'T' && record[1] == ':') {
        /* a record that is text, maybe not UTF-8 */
        char *text = sl_text(record + 2, len - 2);
        sl_json *event = sl_json_new();
        sl_set_string(event, "text", text);
        free(text);
        return sl_keep(event);
    }
    char *why = NULL;
    sl_json *event = sl_json_parse((const char *)record, len, &why);
    if (!event) {
        sl_outcome o = sl_error(why);
        free(why);
        return o;
    }
    if (!sl_set_raw(event, "raw", "  [1, {\"x\": \"y\"}]  ")) return sl_error("sl_set_raw refused valid JSON");
    if (sl_set_raw(event, "bad", "01") || sl_set_raw(event, "bad", "[1,]")) return sl_error("sl_set_raw took bad JSON");
    char type[2] = {sl_type(event, "raw"), 0};
    sl_set_string(event, "raw_type", type);
    char *nested = sl_get_string(event, "b.c");
    if (nested) {
        sl_set_string(event, "b_c", nested);
        free(nested);
    }
    return sl_keep(event);
}
"##;

#[test]
fn the_c_sdk_reads_and_writes_json_strictly() {
    let t = TestDir::new();
    let wasm = parser_project(&t, "echo", "c", "plugin.c", C_ECHO);
    let deep = format!("{{\"d\":{}{}}}", "[".repeat(200), "]".repeat(200));
    let lines: Vec<Vec<u8>> = vec![
        br#"{"a":"\u00e9\ud83d\ude00\n\"q\"","b":{"c":"deep"},"n":-0.5e3,"z":null}"#.to_vec(),
        br#"{"a":01}"#.to_vec(),
        br#"{"a":"\ud800"}"#.to_vec(),
        br#"{"a":"\udc00x"}"#.to_vec(),
        b"{\"a\":\"x\xffy\"}".to_vec(),
        br#"{"a":1} x"#.to_vec(),
        br#"{"a":1,"a":2}"#.to_vec(),
        br#"[1]"#.to_vec(),
        br#"{"k\u0000":1}"#.to_vec(),
        deep.into_bytes(),
        b"T:caf\xc3\xa9 \xff\xfe \xed\xa0\x80 end".to_vec(),
    ];
    t.write_bytes("in.txt", &lines.join(&b'\n'));
    let run = sluice_in(t.root(), &["plugin", "test", wasm.to_str().unwrap(), "--input", "in.txt"], &[]);
    run.assert_success();
    let out: Vec<Value> = run.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(out.len(), lines.len(), "{run}");
    assert_eq!(
        out[0]["keep"],
        serde_json::json!({"a": "é😀\n\"q\"", "b": {"c": "deep"}, "n": -500.0, "z": null,
            "raw": [1, {"x": "y"}], "raw_type": "a", "b_c": "deep"}),
        "{run}"
    );
    let error = |i: usize| out[i]["error"].as_str().unwrap_or_else(|| panic!("line {i}: {run}")).to_string();
    assert_eq!(error(1), "number with a leading zero at byte 7");
    assert!(error(2).starts_with("lone surrogate in a string"), "{run}");
    assert!(error(3).starts_with("lone surrogate in a string"), "{run}");
    assert!(error(4).starts_with("invalid UTF-8 in a string"), "{run}");
    assert!(error(5).starts_with("text after the object"), "{run}");
    assert_eq!(out[6]["keep"]["a"], 2, "{run}");
    assert!(error(7).starts_with("not a JSON object"), "{run}");
    assert!(error(8).starts_with("NUL in a key"), "{run}");
    assert!(error(9).starts_with("nested too deeply"), "{run}");
    assert_eq!(out[10]["keep"]["text"], "café \u{fffd}\u{fffd} \u{fffd}\u{fffd}\u{fffd} end", "{run}");
}

#[test]
fn the_js_sdk_refuses_integers_javascript_cannot_hold() {
    let t = TestDir::new();
    sluice_in(t.root(), &["plugin", "new", "big", "--lang", "js"], &[]).assert_success();
    let project = t.path("big");
    let wasm = project.join("big.wasm");
    build(&project, &wasm).assert_success();
    t.write(
        "in.jsonl",
        "{\"time\":1793491200000000,\"account\":{\"id\":9007199254740993}}\n{\"time\":1793491200000000,\"n\":9007199254740991}\n",
    );
    let run = sluice_in(t.root(), &["plugin", "test", wasm.to_str().unwrap(), "--input", "in.jsonl"], &[]);
    run.assert_success();
    let out: Vec<Value> = run.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(
        out[0]["error"], "event holds an integer beyond 2^53 (9007199254740992), which JavaScript cannot keep exactly",
        "{run}"
    );
    assert_eq!(out[1]["keep"]["n"], 9007199254740991_i64, "{run}");
}
