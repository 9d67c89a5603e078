//! Builds the Wasm plugins from source (bundled ones and test fixtures) with a
//! nested cargo, into `target/wasm`, and hands their paths to the crate as
//! `SLUICE_PLUGIN_<NAME>` environment variables. No `.wasm` is ever committed.

use std::path::PathBuf;
use std::process::Command;

/// Plugins embedded in the `sluice` binary, usable by name in a pipeline.
const BUNDLED: &[&str] = &[
    "parse-json",
    "parse-syslog",
    "parse-k8s-audit",
    "parse-cloudtrail",
    "parse-auditd",
    "parse-gcp-audit",
    "parse-github-audit",
    "parse-okta",
    "parse-access-log",
    "redact",
    "enrich-static",
];
/// Plugins only the tests use.
const FIXTURES: &[&str] = &["faulty", "abi-probe"];

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.parent().unwrap().to_path_buf();
    println!("cargo:rerun-if-changed={}", root.join("plugins").display());
    println!("cargo:rerun-if-changed={}", root.join("wit").display());
    println!("cargo:rerun-if-changed={}", root.join("Cargo.lock").display());
    // the plugins' build flags (`[target.wasm32-wasip2] rustflags`)
    println!("cargo:rerun-if-changed={}", root.join(".cargo").join("config.toml").display());

    let target_dir = root.join("target").join("wasm");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args(["build", "--locked", "--profile", "wasm-release", "--target", "wasm32-wasip2", "--target-dir"])
        .arg(&target_dir);
    for name in BUNDLED.iter().chain(FIXTURES) {
        cmd.args(["-p", name]);
    }
    // What the outer build set for the host must not leak into the guest build.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_BUILD_TARGET_DIR",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("cannot run cargo to build the Wasm plugins");
    assert!(
        status.success(),
        "building the Wasm plugins failed (is the wasm32-wasip2 target installed? rust-toolchain.toml lists it)"
    );

    let out = target_dir.join("wasm32-wasip2").join("wasm-release");
    for name in BUNDLED.iter().chain(FIXTURES) {
        let file = out.join(format!("{}.wasm", name.replace('-', "_")));
        assert!(file.is_file(), "missing {}", file.display());
        let var = format!("SLUICE_PLUGIN_{}", name.replace('-', "_").to_uppercase());
        println!("cargo:rustc-env={var}={}", file.display());
    }
}
