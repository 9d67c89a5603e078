//! One conformance suite for the sink's object stores — local disk,
//! in-memory, a real S3 server (Garage, started on loopback by
//! `tests/garage.rs`) and Azure Blob (the Azurite emulator, `tests/azurite.rs`)
//! — run in process against the library: store-level guarantees first, then a
//! whole pipeline, a resumed run and `verify`. GCS (`gs://`) is compiled in but
//! not in this suite: no GCS server that answers object_store's XML API
//! installs from the registries this project reaches.
//!
//! Which guarantees come from where: create-only puts (`PutMode::Create`)
//! are enforced by the local filesystem, the in-memory store and Azure, and
//! NOT by Garage (it ignores `If-None-Match`); the suite records which. Nothing in
//! sluice depends on it: object names carry a fresh UUIDv7 or an index only
//! one writer assigns, a retried upload that finds its own bytes is fine, and
//! the single-writer guard is the staging-dir lock.

use crate::azurite::Azurite;
use crate::garage::Garage;
use crate::util::*;
use bytes::Bytes;
use object_store::ObjectStoreExt;
use sha2::Digest;
use sluice::config::LoadedConfig;
use sluice::integrity::verify::{Options, verify};
use sluice::pipeline::Pipeline;
use sluice::sinks::{Archive, commit, commit_file};
use sluice::wasm::WasmHost;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

type Options_ = std::collections::BTreeMap<String, String>;

/// What a store turned out to guarantee.
#[derive(Debug, PartialEq)]
pub struct Facts {
    /// Whether a create-only put of an existing name with other bytes fails.
    pub create_only_enforced: bool,
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

async fn read(archive: &Archive, path: &object_store::path::Path) -> Bytes {
    archive.store.get(path).await.unwrap().bytes().await.unwrap()
}

/// Store-level checks under `<base>/store-checks`.
async fn store_checks(base: &str, options: &Options_) -> Facts {
    let archive = Archive::open_with(&format!("{}/store-checks", base.trim_end_matches('/')), options).unwrap();
    // a small file round-trips, and an odd partition value stays one segment
    let path = archive.path_of(["s", "tenant_uid=a/b %", "small.json"]);
    commit_file(&archive, &path, Bytes::from_static(b"{\"a\":1}")).await.unwrap();
    assert_eq!(read(&archive, &path).await, Bytes::from_static(b"{\"a\":1}"));
    assert_eq!(archive.relative(&path), "s/tenant_uid=a%2Fb %25/small.json");
    assert_eq!(archive.path_from_relative(&archive.relative(&path)).unwrap(), path);
    // the retry of an upload that went through: same bytes, fine
    commit_file(&archive, &path, Bytes::from_static(b"{\"a\":1}")).await.unwrap();
    // other bytes under the same name: refused where the store enforces it
    let overwrite = commit_file(&archive, &path, Bytes::from_static(b"{\"b\":2}")).await;
    let create_only_enforced = match overwrite {
        Err(e) => {
            assert!(e.downcast_ref::<sluice::sinks::Conflict>().is_some(), "{e:#}");
            assert_eq!(read(&archive, &path).await, Bytes::from_static(b"{\"a\":1}"));
            true
        }
        Ok(()) => false,
    };

    // a file above the multipart threshold arrives whole
    let big: Vec<u8> = (0..(40u32 << 20)).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let big_path = archive.path_of(["s", "big.bin"]);
    commit_file(&archive, &big_path, Bytes::from(big.clone())).await.unwrap();
    assert!(read(&archive, &big_path).await == big, "multipart upload differs");
    // a closed file from staging: sent a part at a time, hashed on the way
    let staging = std::env::temp_dir().join(format!("sluice-staged-{}.bin", uuid::Uuid::now_v7()));
    for (name, len) in [("staged-big.bin", big.len()), ("staged-small.bin", 1000)] {
        std::fs::write(&staging, &big[..len]).unwrap();
        let staged_path = archive.path_of(["s", name]);
        let (sha, size) = sluice::sinks::commit_staged(&archive, &staged_path, &staging).await.unwrap();
        assert_eq!((sha, size), (<[u8; 32]>::from(sha2::Sha256::digest(&big[..len])), len as u64), "{name}");
        assert!(read(&archive, &staged_path).await == big[..len], "{name} differs");
    }
    std::fs::remove_file(&staging).unwrap();

    // listing sees exactly what was written
    let mut listed: Vec<String> =
        futures::TryStreamExt::try_collect::<Vec<_>>(archive.store.list(Some(&archive.path_of(["s"]))))
            .await
            .unwrap()
            .into_iter()
            .map(|m| archive.relative(&m.location))
            .collect();
    listed.sort();
    assert_eq!(listed, ["s/big.bin", "s/staged-big.bin", "s/staged-small.bin", "s/tenant_uid=a%2Fb %25/small.json"]);

    // a commit that never happened: recovery removes what its pending note lists
    let orphan = archive.path_of(["s", "orphan.parquet"]);
    commit_file(&archive, &orphan, Bytes::from_static(b"PAR1")).await.unwrap();
    // (and a path it lists that never got uploaded is not counted as removed)
    let never = archive.relative(&archive.path_of(["s", "never-uploaded.parquet"]));
    commit::write_pending(&archive, 1, &[archive.relative(&orphan), never]).await.unwrap();
    let recovered = commit::recover(&archive).await.unwrap();
    assert_eq!((recovered.record.is_none(), recovered.removed_files), (true, 1));
    assert!(matches!(archive.store.get(&orphan).await, Err(object_store::Error::NotFound { .. })));
    Facts { create_only_enforced }
}

/// A pipeline run in process into `<base>/archive`, a resumed run, and verify.
fn pipeline_checks(t: &TestDir, base: &str, options: &Options_, rt: &tokio::runtime::Runtime) {
    let url = format!("{}/archive", base.trim_end_matches('/'));
    let input = t.path("in.ndjson");
    let lines = |from: usize, to: usize| -> String {
        (from..to).map(|i| format!("{{\"time\":\"2026-11-01T{:02}:00:00Z\",\"message\":\"m{i}\"}}\n", i % 3)).collect()
    };
    std::fs::write(&input, lines(0, 500)).unwrap();
    let signer = sluice::integrity::note::NoteSigner::generate("conformance").unwrap();
    std::fs::write(t.path("signing.key"), signer.to_text()).unwrap();
    let text = format!(
        "[sources.a]\ntype = \"file\"\npaths = [\"{}\"]\nchain = [\"json\"]\n\
         [stages.json]\nplugin = \"parse-json\"\nconfig = {{ time_field = \"time\", fields = {{ message = \"message\" }} }}\n\
         [runtime]\nvolume_interval_secs = 0\n\
         [sink]\nurl = \"{url}\"\nstaging_dir = \"{}\"\n[integrity]\nsigning_key = \"{}\"\n[sink.options]\n{}",
        input.display(),
        t.path("staging").display(),
        t.path("signing.key").display(),
        options.iter().map(|(k, v)| format!("{k} = \"{v}\"\n")).collect::<String>()
    );
    let host = WasmHost::new().unwrap();
    let run = |expect_read: u64| {
        let config = LoadedConfig::parse(&t.path("pipeline.toml"), &text, &|_| None).unwrap();
        let pipeline = Pipeline::build(config, &host).unwrap();
        let summary = pipeline.run(rt.handle().clone(), Arc::new(AtomicBool::new(false))).unwrap();
        assert!(summary.balanced() && summary.errors.is_empty(), "{summary}");
        assert_eq!((summary.counts.read, summary.counts.written), (expect_read, expect_read), "{summary}");
    };
    run(500);
    append(&input, &lines(500, 700));
    run(200);

    let archive = Archive::open_with(&url, options).unwrap();
    let options = Options { keys: vec![signer.verifier()], trusted: Vec::new(), max_gap: None };
    let report = rt.block_on(verify(&archive, &options)).unwrap();
    assert!(report.problems.is_empty(), "{:#?}", report.problems);
    // 700 events + the pipeline's own start and stop, twice
    assert_eq!(report.counts.events, 704, "{:?}", report.counts);
    assert_eq!(report.counts.streams, 2);
}

/// The whole suite against the store at `base`.
pub fn conformance(base: &str, options: &Options_) -> Facts {
    let t = TestDir::new();
    let rt = runtime();
    let facts = rt.block_on(store_checks(base, options));
    pipeline_checks(&t, base, options, &rt);
    facts
}

#[test]
fn store_conformance_local_disk() {
    let t = TestDir::new();
    let facts = conformance(t.path("store").to_str().unwrap(), &Options_::new());
    assert_eq!(facts, Facts { create_only_enforced: true });
}

#[test]
fn store_conformance_in_memory() {
    let facts = conformance("memory://conformance", &Options_::new());
    assert_eq!(facts, Facts { create_only_enforced: true });
}

#[test]
fn store_conformance_s3_garage() {
    let garage = Garage::start();
    let facts = conformance("s3://sluice/conformance", &garage.options());
    // Garage accepts a PUT with `If-None-Match: *` over an existing object
    assert_eq!(facts, Facts { create_only_enforced: false });
}

#[test]
fn store_conformance_azure_azurite() {
    let azurite = Azurite::start();
    let facts = conformance("az://sluice/conformance", &azurite.options());
    // Azure honours `If-None-Match: *`: an existing blob is not overwritten
    assert_eq!(facts, Facts { create_only_enforced: true });
}

/// Parquet and everything else under `url`, copied to a local directory
/// (DuckDB here has no S3 extension: no internet to fetch it).
fn download(url: &str, options: &Options_, to: &std::path::Path) -> usize {
    let rt = runtime();
    let archive = Archive::open_with(url, options).unwrap();
    rt.block_on(async {
        let objects: Vec<_> =
            futures::TryStreamExt::try_collect::<Vec<_>>(archive.store.list(Some(&archive.prefix))).await.unwrap();
        for meta in &objects {
            let rel = archive.relative(&meta.location);
            // percent-decoding is not needed: the local store encodes the same way
            let path = to.join(&rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, read(&archive, &meta.location).await).unwrap();
        }
        objects.len()
    })
}

/// Stops the S3 server for `SLUICE_OUTAGE_SECS` (default 60) in the middle of
/// a run: sluice waits and retries, and when the server is back everything
/// arrives exactly once (compared with an uninterrupted run to local disk).
#[test]
fn s3_outage_mid_run_loses_and_duplicates_nothing() {
    let outage: u64 = std::env::var("SLUICE_OUTAGE_SECS").map_or(60, |v| v.parse().unwrap());
    let mut garage = Garage::start();
    let w = crate::crash::Workload::new(30_000);
    w.run("ref");

    let url = "s3://sluice/outage";
    let mut child = w.command(url, None).envs(garage.env()).spawn().unwrap();
    let archive = Archive::open_with(url, &garage.options()).unwrap();
    let rt = runtime();
    wait_for("the first commit on S3", || {
        rt.block_on(async {
            let commits = archive.path_of(["_state", "commits"]);
            let listed = archive.store.list_with_delimiter(Some(&commits)).await;
            listed.is_ok_and(|l| !l.objects.is_empty())
        })
    });
    garage.stop();
    let stopped = std::time::Instant::now();
    std::thread::sleep(std::time::Duration::from_secs(outage));
    assert!(child.try_wait().unwrap().is_none(), "sluice should wait through the outage, not give up");
    garage.restart();
    let run = Run::from(child.wait_with_output().unwrap());
    run.assert_success();
    println!(
        "outage {:.0?}; sluice finished {:.0?} after it began",
        std::time::Duration::from_secs(outage),
        stopped.elapsed()
    );
    assert!(run.stderr.contains("retrying"), "{run}");

    let files = download(url, &garage.options(), &w.t.path("out"));
    assert!(files > 10);
    w.assert_same("ref", "out");
}
