//! `sluice plugin new` and `sluice plugin build`: a plugin project in Rust, C,
//! Python or JavaScript, from an empty folder to a `sluice:plugin@0.1.0`
//! component.
//!
//! A project is a folder with a `sluice-plugin.toml` (name, version, language,
//! kind), the WIT contract, the language's SDK and a golden test under `test/`.
//! `new` writes one that works; `build` runs the language's toolchain:
//!
//! | lang   | toolchain                                                            |
//! |--------|----------------------------------------------------------------------|
//! | rust   | `cargo build --release --target wasm32-wasip2` (wit-bindgen macros)  |
//! | c      | bindings and `component new` done here (wit-bindgen-c, wit-component); the compiler is clang with wasi-libc (`$SLUICE_CC`, else `clang-19`, else `clang`) |
//! | python | `componentize-py … componentize`                                     |
//! | js     | `componentize-qjs --sync` (QuickJS)                                  |
//!
//! The SDK sources are compiled into this binary and copied into each new
//! project, so a project builds without the sluice repository.

use anyhow::{Context, bail};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The contract, as released (`wit/v0.1.0/plugin.wit`).
const WIT: &str = include_str!("../../wit/v0.1.0/plugin.wit");

const TOOLCHAIN: &str = include_str!("../../rust-toolchain.toml");
const RUST_SDK_LIB: &str = include_str!("../../plugins/sdk/src/lib.rs");
const RUST_SDK_JSON: &str = include_str!("../../plugins/sdk/src/json.rs");
const RUST_SDK_FUZZ: &str = include_str!("../../plugins/sdk/src/fuzz.rs");
const RUST_SDK_MEM: &str = include_str!("../../plugins/sdk/src/mem.rs");
const RUST_SDK_TREE: &str = include_str!("../../plugins/sdk/src/tree.rs");
const C_SDK_H: &str = include_str!("../../plugins/sdk-c/sluice_plugin.h");
const C_SDK_C: &str = include_str!("../../plugins/sdk-c/sluice_plugin.c");
const PYTHON_SDK: &str = include_str!("../../plugins/sdk-python/sluice_plugin.py");
const JS_SDK: &str = include_str!("../../plugins/sdk-js/sluice_plugin.js");

const TEMPLATE_RUST: &str = include_str!("../../plugins/templates/rust/lib.rs");
const TEMPLATE_C: &str = include_str!("../../plugins/templates/c/plugin.c");
const TEMPLATE_PYTHON: &str = include_str!("../../plugins/templates/python/app.py");
const TEMPLATE_JS: &str = include_str!("../../plugins/templates/js/plugin.js");
const TEMPLATE_INPUT: &str = include_str!("../../plugins/templates/test/input.jsonl");
const TEMPLATE_CONFIG: &str = include_str!("../../plugins/templates/test/config.toml");
const TEMPLATE_EXPECTED: &str = include_str!("../../plugins/templates/test/expected.jsonl");

/// The wit-bindgen guest crate version the Rust SDK is built with.
const WIT_BINDGEN: &str = "0.61";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    Rust,
    C,
    Python,
    Js,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Parser,
    Transform,
}

impl Kind {
    fn world(self) -> &'static str {
        match self {
            Kind::Parser => "parser-plugin",
            Kind::Transform => "transform-plugin",
        }
    }
}

/// `sluice-plugin.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    pub lang: Lang,
    pub kind: Kind,
    /// The folder holding the contract (default `wit`), relative to the project.
    #[serde(default = "default_wit")]
    pub wit: PathBuf,
    /// The folder holding the language's SDK (`sluice_plugin.h`/`.c`,
    /// `sluice_plugin.py`, `sluice_plugin.js`), relative to the project:
    /// default `sdk` for C, the project itself for Python and JavaScript.
    /// Rust finds its SDK through Cargo.toml.
    pub sdk: Option<PathBuf>,
}

fn default_wit() -> PathBuf {
    PathBuf::from("wit")
}

pub const MANIFEST: &str = "sluice-plugin.toml";

impl Manifest {
    pub fn load(dir: &Path) -> anyhow::Result<Manifest> {
        let path = dir.join(MANIFEST);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {} (is {} a plugin project?)", path.display(), dir.display()))?;
        toml::from_str(&text).with_context(|| format!("{} is not a valid plugin manifest", path.display()))
    }
}

/// Writes a new transform plugin project for `lang` into `dir` (which must not
/// exist, or be empty). Returns the files written, relative to `dir`.
pub fn new(dir: &Path, name: &str, lang: Lang) -> anyhow::Result<Vec<String>> {
    if !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        || !name.starts_with(|c: char| c.is_ascii_lowercase())
    {
        bail!("a plugin name is lower-case letters, digits and dashes, starting with a letter (got `{name}`)");
    }
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        bail!("{} exists and is not empty", dir.display());
    }
    let fill = |template: &str| template.replace("{{name}}", name).replace("{{crate}}", &name.replace('-', "_"));
    let manifest = format!(
        "# A sluice plugin project: `sluice plugin build` reads this.\n\
         name = \"{name}\"\nversion = \"0.1.0\"\nlang = \"{}\"\nkind = \"transform\"\n",
        clap::ValueEnum::to_possible_value(&lang).expect("every language has a name").get_name()
    );
    let mut files: Vec<(String, String)> = vec![
        (MANIFEST.into(), manifest),
        ("wit/plugin.wit".into(), WIT.into()),
        ("test/input.jsonl".into(), TEMPLATE_INPUT.into()),
        ("test/config.toml".into(), TEMPLATE_CONFIG.into()),
        ("test/expected.jsonl".into(), TEMPLATE_EXPECTED.into()),
    ];
    match lang {
        Lang::Rust => {
            files.push(("Cargo.toml".into(), rust_manifest(name)));
            // The toolchain sluice is built and tested with; it lists the Wasm target.
            files.push(("rust-toolchain.toml".into(), TOOLCHAIN.into()));
            files.push(("src/lib.rs".into(), fill(TEMPLATE_RUST)));
            files.push(("sdk/Cargo.toml".into(), rust_sdk_manifest()));
            // The SDK finds the contract two folders up from its manifest in the
            // repository; in a project it is one.
            files.push(("sdk/src/lib.rs".into(), RUST_SDK_LIB.replace("\"../../wit/v0.1.0\"", "\"../wit\"")));
            files.push(("sdk/src/json.rs".into(), RUST_SDK_JSON.into()));
            files.push(("sdk/src/fuzz.rs".into(), RUST_SDK_FUZZ.into()));
            files.push(("sdk/src/mem.rs".into(), RUST_SDK_MEM.into()));
            files.push(("sdk/src/tree.rs".into(), RUST_SDK_TREE.into()));
            files.push((".gitignore".into(), "/target\n*.wasm\n".into()));
        }
        Lang::C => {
            files.push(("plugin.c".into(), fill(TEMPLATE_C)));
            files.push(("sdk/sluice_plugin.h".into(), C_SDK_H.into()));
            files.push(("sdk/sluice_plugin.c".into(), C_SDK_C.into()));
            files.push((".gitignore".into(), "/build\n*.wasm\n".into()));
        }
        Lang::Python => {
            files.push(("app.py".into(), fill(TEMPLATE_PYTHON)));
            files.push(("sluice_plugin.py".into(), PYTHON_SDK.into()));
            files.push((".gitignore".into(), "__pycache__/\n*.wasm\n".into()));
        }
        Lang::Js => {
            files.push(("plugin.js".into(), fill(TEMPLATE_JS)));
            files.push(("sluice_plugin.js".into(), JS_SDK.into()));
            files.push((".gitignore".into(), "node_modules/\n*.wasm\n".into()));
        }
    }
    for (path, text) in &files {
        let full = dir.join(path);
        std::fs::create_dir_all(full.parent().unwrap())?;
        std::fs::write(&full, text).with_context(|| format!("cannot write {}", full.display()))?;
    }
    Ok(files.into_iter().map(|(p, _)| p).collect())
}

fn rust_manifest(name: &str) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"

[lib]
crate-type = ["cdylib", "rlib"]

[dependencies]
sluice-plugin-sdk = {{ path = "sdk" }}
serde_json = "1"

# Its own workspace: the project builds on its own, wherever it is.
[workspace]

[profile.release]
opt-level = 3
lto = true
codegen-units = 1
panic = "abort"
strip = true
"#
    )
}

fn rust_sdk_manifest() -> String {
    format!(
        r#"[package]
name = "sluice-plugin-sdk"
version = "{}"
edition = "2024"
description = "The sluice plugin SDK for Rust, copied in by `sluice plugin new`."

[features]
fuzz = ["dep:proptest"]

[dependencies]
serde = "1"
serde_json = "1"
proptest = {{ version = "1", optional = true, default-features = false, features = ["std"] }}

[target.'cfg(target_arch = "wasm32")'.dependencies]
wit-bindgen = {{ version = "{WIT_BINDGEN}", default-features = false, features = ["macros", "realloc", "std"] }}
"#,
        env!("CARGO_PKG_VERSION")
    )
}

/// One step of a build, shown to the user as the command it runs.
fn run(step: &mut Command) -> anyhow::Result<()> {
    eprintln!("+ {}", shown(step));
    let status = step.status().with_context(|| format!("cannot run {}", step.get_program().to_string_lossy()))?;
    if !status.success() {
        bail!("{} failed ({status})", step.get_program().to_string_lossy());
    }
    Ok(())
}

fn shown(cmd: &Command) -> String {
    std::iter::once(cmd.get_program()).chain(cmd.get_args()).map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" ")
}

/// Builds the project in `dir` into a component; returns its path (`out`, or
/// `<dir>/<name>.wasm`).
pub fn build(dir: &Path, out: Option<&Path>) -> anyhow::Result<PathBuf> {
    let manifest = Manifest::load(dir)?;
    let dir = dir.canonicalize().with_context(|| format!("cannot open {}", dir.display()))?;
    let wit = dir.join(&manifest.wit);
    let out = match out {
        Some(o) => std::path::absolute(o)?,
        None => dir.join(format!("{}.wasm", manifest.name)),
    };
    let world = manifest.kind.world();
    let sdk = |default: &str| dir.join(manifest.sdk.as_deref().unwrap_or(Path::new(default)));
    match manifest.lang {
        Lang::Rust => build_rust(&dir, &out)?,
        Lang::C => build_c(&dir, &sdk("sdk"), &wit, world, manifest.kind, &out)?,
        Lang::Python => {
            let mut cmd = Command::new(tool("componentize-py", "SLUICE_COMPONENTIZE_PY", &dir));
            cmd.current_dir(&dir).arg("-d").arg(&wit).args(["-w", world, "componentize", "-p", "."]);
            cmd.arg("-p").arg(sdk(".")).arg("app").arg("-o").arg(&out);
            run(&mut cmd)?;
        }
        Lang::Js => {
            // QuickJS resolves imports only below one root: stage the
            // project's modules and the SDK's side by side.
            let stage = dir.join("build/js");
            if stage.exists() {
                std::fs::remove_dir_all(&stage)?;
            }
            copy_js(&dir, &stage)?;
            std::fs::copy(sdk(".").join("sluice_plugin.js"), stage.join("sluice_plugin.js"))
                .context("the JavaScript SDK (sluice_plugin.js) is missing")?;
            let mut cmd = Command::new(tool("componentize-qjs", "SLUICE_COMPONENTIZE_QJS", &dir));
            cmd.current_dir(&dir)
                .args(["--sync", "-w"])
                .arg(&wit)
                .arg("-j")
                .arg(stage.join("plugin.js"))
                .args(["-n", world, "--module-root"])
                .arg(&stage)
                .arg("-o")
                .arg(&out);
            run(&mut cmd)?;
        }
    }
    Ok(out)
}

/// Copies the modules below the project folder `from` (`.js`, `.mjs`,
/// `.cjs`, `.json`; not `node_modules/`, hidden folders, or the top-level
/// `build/`) to `to`, keeping their relative paths.
fn copy_js(from: &Path, to: &Path) -> anyhow::Result<()> {
    fn walk(from: &Path, to: &Path, top: bool) -> anyhow::Result<()> {
        std::fs::create_dir_all(to)?;
        for entry in std::fs::read_dir(from)? {
            let path = entry?.path();
            let name = path.file_name().unwrap_or_default();
            if path.is_dir() {
                let skip =
                    name == "node_modules" || (top && name == "build") || name.to_string_lossy().starts_with('.');
                if !skip {
                    walk(&path, &to.join(name), false)?;
                }
            } else if path.extension().is_some_and(|e| ["js", "mjs", "cjs", "json"].iter().any(|x| e == *x)) {
                std::fs::copy(&path, to.join(name))?;
            }
        }
        Ok(())
    }
    walk(from, to, true)
}

/// A tool's path: `$VAR`, else the project's `node_modules/.bin`, else `PATH`.
fn tool(name: &str, var: &str, dir: &Path) -> PathBuf {
    if let Some(path) = std::env::var_os(var) {
        return PathBuf::from(path);
    }
    let local = dir.join("node_modules/.bin").join(name);
    if local.is_file() {
        return local;
    }
    PathBuf::from(name)
}

fn build_rust(dir: &Path, out: &Path) -> anyhow::Result<()> {
    // rustup's `cargo`, so that the project's rust-toolchain.toml picks the
    // toolchain (not whichever one runs sluice, under `cargo run`).
    let mut cmd = Command::new("cargo");
    cmd.current_dir(dir).args([
        "build",
        "--release",
        "--target",
        "wasm32-wasip2",
        "--message-format=json-render-diagnostics",
    ]);
    // A `cargo run` or test around this must not leak its settings into the guest build.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTUP_TOOLCHAIN",
        "RUSTC",
    ] {
        cmd.env_remove(var);
    }
    eprintln!("+ {}", shown(&cmd));
    let output = cmd.stderr(std::process::Stdio::inherit()).output().context("cannot run cargo")?;
    if !output.status.success() {
        bail!("cargo build failed ({})", output.status);
    }
    // The project's own cdylib `.wasm`, as cargo reports it.
    let manifest = dir.join("Cargo.toml");
    let built = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["kind"].to_string().contains("cdylib"))
        .filter(|m| m["manifest_path"].as_str().is_some_and(|p| Path::new(p) == manifest))
        .flat_map(|m| m["filenames"].as_array().cloned().unwrap_or_default())
        .filter_map(|f| f.as_str().map(PathBuf::from))
        .find(|f| f.extension().is_some_and(|e| e == "wasm"))
        .context("cargo built no .wasm (is the crate a cdylib?)")?;
    std::fs::copy(&built, out).with_context(|| format!("cannot copy {} to {}", built.display(), out.display()))?;
    Ok(())
}

/// C: bindings from the WIT (wit-bindgen-c), every `.c` of the project and its
/// SDK folder compiled to a core module by clang with wasi-libc, then the module
/// made a component (wit-component), with the WASI preview 1 adapter for
/// plugins that use libc's I/O.
fn build_c(dir: &Path, sdk: &Path, wit: &Path, world: &str, kind: Kind, out: &Path) -> anyhow::Result<()> {
    // Fresh bindings every time: a project may have changed its kind or contract.
    let gen_dir = dir.join("build/gen");
    if gen_dir.exists() {
        std::fs::remove_dir_all(&gen_dir)?;
    }
    std::fs::create_dir_all(&gen_dir)?;
    let mut resolve = wit_bindgen_core::wit_parser::Resolve::default();
    let (package, _) = resolve.push_dir(wit).with_context(|| format!("cannot read the WIT in {}", wit.display()))?;
    let world_id = resolve.select_world(&[package], Some(world))?;
    let mut files = wit_bindgen_core::Files::default();
    wit_bindgen_c::Opts::default().build().generate(&mut resolve, world_id, &mut files)?;
    eprintln!("+ (built in) wit-bindgen c {} --world {world} --out-dir {}", wit.display(), gen_dir.display());
    for (name, bytes) in files.iter() {
        std::fs::write(gen_dir.join(name), bytes)?;
    }

    // The `.c` files of the project and its SDK (each once, should they be one
    // folder), and the generated bindings with their component-type object.
    let mut sources: Vec<PathBuf> = Vec::new();
    for (folder, objects) in [(dir, false), (sdk, false), (gen_dir.as_path(), true)] {
        let Ok(entries) = std::fs::read_dir(folder) else { continue };
        let mut found: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "c" || (objects && e == "o")))
            .filter_map(|p| p.canonicalize().ok())
            .collect();
        found.sort();
        for file in found {
            if !sources.contains(&file) {
                sources.push(file);
            }
        }
    }
    let core = dir.join("build/plugin.core.wasm");
    let cc = c_compiler()?;
    let mut cmd = Command::new(&cc[0]);
    cmd.args(&cc[1..])
        .args(["--target=wasm32-wasi", "-mexec-model=reactor", "-O2", "-Wall", "-Wl,--strip-all"])
        .arg(if kind == Kind::Parser { "-DSLUICE_PARSER" } else { "-DSLUICE_TRANSFORM" })
        .arg("-I")
        .arg(sdk)
        .arg("-I")
        .arg(&gen_dir)
        .arg("-o")
        .arg(&core)
        .args(&sources);
    run(&mut cmd)?;

    let module = std::fs::read(&core)?;
    let component = wit_component::ComponentEncoder::default()
        .module(&module)?
        .adapter(
            wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME,
            wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
        )?
        .validate(true)
        .encode()
        .context("the compiled module cannot be made a component")?;
    eprintln!("+ (built in) wasm-tools component new {} -o {}", core.display(), out.display());
    std::fs::write(out, component).with_context(|| format!("cannot write {}", out.display()))?;
    Ok(())
}

/// `$SLUICE_CC` (words split on spaces, e.g. `python3 -m ziglang cc`), else
/// the first of `clang-19`, `clang` on `PATH`.
fn c_compiler() -> anyhow::Result<Vec<String>> {
    if let Ok(cc) = std::env::var("SLUICE_CC") {
        return Ok(cc.split_whitespace().map(String::from).collect());
    }
    for name in ["clang-19", "clang"] {
        if Command::new(name).arg("--version").output().is_ok_and(|o| o.status.success()) {
            return Ok(vec![name.into()]);
        }
    }
    bail!(
        "no C compiler for Wasm: install clang and wasi-libc (Debian: clang-19 lld-19 wasi-libc libclang-rt-19-dev-wasm32), or set SLUICE_CC"
    )
}
