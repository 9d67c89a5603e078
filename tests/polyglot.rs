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
