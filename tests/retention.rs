//! Retention and legal holds: files older than their stream's policy leave the
//! archive as retired entries of its integrity log and `retention.delete`
//! events in `_sluice`; held files stay; `verify` still proves the archive
//! whole; a crash in the middle finishes at the next start.

use crate::util::*;
use std::path::Path;

/// Three streams: `auth` keeps 30 days, `k8s` the `pci` class (13 months),
/// `app` has no policy (kept forever).
fn pipeline(apply_every_hours: u64) -> String {
    format!(
        r#"
[sources.auth]
type = "file"
paths = ["in/auth.ndjson"]
chain = ["json"]
[sources.k8s]
type = "file"
paths = ["in/k8s.ndjson"]
chain = ["json"]
[sources.app]
type = "file"
paths = ["in/app.ndjson"]
chain = ["json"]
[stages.json]
plugin = "parse-json"
config = {{ time_field = "ts", fields = {{ actor_user_name = "user" }} }}
[streams.auth]
retention = "30d"
[streams.k8s]
retention = "pci"
[retention]
classes = {{ pci = "13 months" }}
apply_every_hours = {apply_every_hours}
[sink]
url = "out"
[integrity]
signing_key = "keys/signing.key"
"#
    )
}

fn days_ago(days: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now() - chrono::TimeDelta::days(days)
}

/// One event per age (days before now), the user named after its age.
fn events(ages: &[i64]) -> String {
    ages.iter()
        .map(|&d| format!("{{\"ts\":\"{}\",\"user\":\"d{d}\"}}\n", days_ago(d).format("%Y-%m-%dT%H:%M:%SZ")))
        .collect()
}

fn setup() -> TestDir {
    let t = TestDir::new();
    sluice_in(t.root(), &["keys", "generate", "--out", "keys"], &[]).assert_success();
    t.write("in/auth.ndjson", &(events(&[800, 800, 100, 100, 5, 0]) + "not json\n"));
    t.write("in/k8s.ndjson", &events(&[800, 400, 100, 0]));
    t.write("in/app.ndjson", &events(&[800, 0]));
    t
}

/// The users left in a stream, sorted.
fn users(t: &TestDir, stream: &str) -> Vec<String> {
    let rows = duckdb(&format!(
        "SELECT coalesce(list(actor_user_name ORDER BY actor_user_name), []) FROM read_parquet('{}/{stream}/**/*.parquet')",
        t.path("out").display()
    ));
    rows[0][0].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()
}

fn verify(t: &TestDir) -> Run {
    verify_archive(t, "out")
}

/// `sluice verify` of the archive in `dir`, with the test's key.
fn verify_archive(t: &TestDir, dir: &str) -> Run {
    let key = t.path("keys/signing.pub");
    sluice_in(t.root(), &["verify", dir, "--key", key.to_str().unwrap()], &[])
}

fn sluice(t: &TestDir, args: &[&str]) -> Run {
    sluice_in(t.root(), args, &[])
}

fn parquet_files(dir: &Path) -> Vec<String> {
    list_files(dir)
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "parquet"))
        .map(|f| f.display().to_string())
        .collect()
}

/// Copies the stream's quarantine file under a name that says it was written
/// `days` ago: a file the integrity log does not name (as one from before
/// quarantine was logged), which retention still expires by its age. (The
/// logged case: `a_logged_quarantine_file_past_its_policy_is_retired_…`.)
fn age_quarantine(t: &TestDir, stream: &str, days: i64) -> String {
    let dir = t.path(&format!("out/_quarantine/{stream}"));
    let current = &list_files(&dir)[0];
    let when = days_ago(days);
    let ts = uuid::Timestamp::from_unix(uuid::NoContext, when.timestamp() as u64, 0);
    let name = format!("{stream}-{}.ndjson", uuid::Uuid::new_v7(ts));
    std::fs::copy(current, dir.join(&name)).unwrap();
    format!("_quarantine/{stream}/{name}")
}

#[test]
fn retention_expires_what_outlived_its_policy_and_holds_keep_the_rest() {
    let t = setup();
    let run = t.run_pipeline(&pipeline(0));
    run.assert_success();
    let s = run.summary();
    assert_eq!((s.read, s.written, s.quarantined), (13, 12, 1), "{run}");
    let old_quarantine = age_quarantine(&t, "auth", 800);

    // a dry run deletes nothing and says what it would
    let files_before = parquet_files(&t.path("out"));
    let dry = sluice(&t, &["retention", "apply", "--dry-run", "pipeline.toml"]);
    dry.assert_success();
    assert_eq!(dry.stdout.matches("would expire auth/").count(), 2, "{dry}"); // the files of 800 and 100 days
    assert_eq!(dry.stdout.matches("would expire k8s/").count(), 2, "{dry}"); // 800 and 400 days > 13 months
    assert!(dry.stdout.contains(&format!("would expire {old_quarantine}")), "{dry}");
    assert!(!dry.stdout.contains("app/"), "{dry}");
    assert_eq!(parquet_files(&t.path("out")), files_before);

    // a hold on the day 100 days ago keeps it (and the stream's quarantine)
    let day = days_ago(100).format("%Y%m%d").to_string();
    let bad = sluice(&t, &["hold", "add", "pipeline.toml", "--stream", "nope", "--reason", "x"]);
    bad.assert_failure();
    assert!(bad.stderr.contains("the pipeline has no stream `nope` (streams: app, auth, k8s)"), "{bad}");
    let placed = sluice(
        &t,
        &[
            "hold",
            "add",
            "pipeline.toml",
            "--stream",
            "auth",
            "--prefix",
            &format!("event_day={day}"),
            "--reason",
            "case 42",
        ],
    );
    placed.assert_success();
    let id = placed.stdout.split_whitespace().nth(1).unwrap().to_string();
    let list = sluice(&t, &["hold", "list", "pipeline.toml"]);
    assert!(list.stdout.contains(&format!("{id}  auth/event_day={day}")) && list.stdout.contains("case 42"), "{list}");

    let applied = sluice(&t, &["retention", "apply", "pipeline.toml"]);
    applied.assert_success();
    assert!(
        applied
            .stdout
            .contains("deleted 3 files (4 events) and 0 quarantine files; 2 past their retention kept by 1 holds"),
        "{applied}"
    );
    assert_eq!(users(&t, "auth"), ["d0", "d100", "d100", "d5"]);
    assert_eq!(users(&t, "k8s"), ["d0", "d100"]);
    assert_eq!(users(&t, "app"), ["d0", "d800"]);
    assert!(t.path(&format!("out/{old_quarantine}")).exists());

    // each deletion is an event: what, why, which policy
    let deleted = sluice_events(&t.path("out"), "retention.delete");
    assert_eq!(deleted.len(), 3, "{deleted:?}");
    let k8s: Vec<_> = deleted.iter().filter(|e| e["stream"] == "k8s").collect();
    assert_eq!(k8s.len(), 2);
    assert!(k8s.iter().all(|e| e["policy"] == "pci (13 months)" && e["reason"] == "retention"), "{k8s:?}");
    assert!(deleted.iter().all(|e| e["path"].as_str().is_some_and(|p| !t.path(&format!("out/{p}")).exists())));
    let summary = &sluice_events(&t.path("out"), "retention.apply")[0];
    assert_eq!((summary["files"].as_u64(), summary["held_files"].as_u64()), (Some(3), Some(2)), "{summary}");
    assert_eq!(summary["holds"][0]["reason"], "case 42");

    // expiry is an entry in the log, not a hole: the archive still verifies,
    // but for the old quarantine file, a copy under a name sluice never
    // wrote (as a file from before quarantine was logged would be)
    let v = verify(&t);
    v.assert_failure();
    assert!(v.stdout.contains(&format!("{old_quarantine}: [injected]")), "{v}");
    assert!(v.stdout.contains("1 quarantine files, 3 retired files, 0 retired quarantine files, 1 problems"), "{v}");
    // an event of a retired file cannot be proved, and the refusal says why
    let proof = sluice(&t, &["prove", "out", "auth", "0", "--key", "keys/signing.pub"]);
    proof.assert_failure();
    assert!(proof.stderr.contains("which retention took out"), "{proof}");

    // released, the hold keeps nothing: the held day and the old quarantine go
    let released = sluice(&t, &["hold", "remove", "pipeline.toml", &id, "--reason", "case closed"]);
    released.assert_success();
    let again = sluice(&t, &["hold", "remove", "pipeline.toml", &id, "--reason", "twice"]);
    again.assert_failure();
    assert!(again.stderr.contains("was already released"), "{again}");
    assert!(sluice(&t, &["hold", "list", "pipeline.toml"]).stdout.contains("0 holds in force, 1 released"));
    let applied = sluice(&t, &["retention", "apply", "pipeline.toml"]);
    applied.assert_success();
    assert!(applied.stdout.contains("deleted 1 files (2 events) and 1 quarantine files"), "{applied}");
    assert_eq!(users(&t, "auth"), ["d0", "d5"]);
    assert!(!t.path(&format!("out/{old_quarantine}")).exists());
    assert_eq!(t.quarantine("out", "auth").len(), 1, "the recent quarantine file stays");
    let v = verify(&t);
    v.assert_success();
    assert!(v.stdout.contains("4 retired files, 0 retired quarantine files, 0 problems"), "{v}");

    // the pipeline goes on: nothing is read again, and seq continues after the retired files
    append(&t.path("in/auth.ndjson"), &events(&[1]));
    let run = t.run_pipeline(&pipeline(0));
    run.assert_success();
    assert_eq!((run.summary().read, run.summary().written), (1, 1), "{run}");
    let seqs = duckdb(&format!("SELECT max(seq) FROM read_parquet('{}/auth/**/*.parquet')", t.path("out").display()));
    assert_eq!(seqs[0][0], 6, "{seqs}");
    verify(&t).assert_success();
}

#[test]
fn a_running_pipeline_applies_retention_at_start() {
    let t = setup();
    t.run_pipeline(&pipeline(24)).assert_success();
    // what the first run wrote was not in the archive when it started
    assert_eq!(users(&t, "k8s").len(), 4);
    let run = t.run_pipeline(&pipeline(24));
    run.assert_success();
    assert_eq!(run.summary().read, 0, "{run}");
    assert_eq!(users(&t, "auth"), ["d0", "d5"]);
    assert_eq!(users(&t, "k8s"), ["d0", "d100"]);
    assert_eq!(sluice_events(&t.path("out"), "retention.delete").len(), 4);
    verify(&t).assert_success();
}

#[test]
fn a_crash_in_retention_is_finished_by_the_next_start() {
    let t = setup();
    t.run_pipeline(&pipeline(0)).assert_success();
    let files_before = parquet_files(&t.path("out/auth")).len();
    // the commit record (with the retired entries) is written, then the process dies
    let crashed =
        sluice_in(t.root(), &["retention", "apply", "pipeline.toml"], &[("SLUICE_FAILPOINT", "after-commit-record")]);
    assert_eq!(crashed.code, None, "aborted: {crashed}");
    assert_eq!(parquet_files(&t.path("out/auth")).len(), files_before, "nothing deleted before the log says so");
    // the next start rolls the commit forward: entries written, files deleted
    let run = t.run_pipeline(&pipeline(0));
    run.assert_success();
    assert_eq!(users(&t, "auth"), ["d0", "d5"]);
    assert_eq!(users(&t, "k8s"), ["d0", "d100"]);
    assert_eq!(sluice_events(&t.path("out"), "pipeline.recover").len(), 1);
    // and a second apply finds nothing left to do: no file is retired twice
    let again = sluice(&t, &["retention", "apply", "pipeline.toml"]);
    again.assert_success();
    assert!(again.stdout.contains("deleted 0 files (0 events)"), "{again}");
    assert_eq!(sluice_events(&t.path("out"), "retention.delete").len(), 4);
    let v = verify(&t);
    v.assert_success();
    assert!(v.stdout.contains("4 retired files, 0 retired quarantine files, 0 problems"), "{v}");
}

/// A quarantine file the integrity log names goes as the expired data files
/// do: its entry is retired, the file deleted, and the archive still
/// verifies. The pipeline runs under `faketime` 800 days back, so that it
/// writes (and logs) the quarantine file then; retention runs now.
#[test]
fn a_logged_quarantine_file_past_its_policy_is_retired_and_the_archive_verifies() {
    let t = setup();
    t.write("pipeline.toml", &pipeline(0));
    let mut back = std::process::Command::new("faketime");
    back.current_dir(t.root()).env("FAKETIME_DONT_FAKE_MONOTONIC", "1").env_remove("SLUICE_LOG").args([
        "-f",
        "-800d",
        env!("CARGO_BIN_EXE_sluice"),
        "run",
        "pipeline.toml",
    ]);
    let run = Run::from(back.output().expect("faketime (Debian's `faketime`, installed by .ci/run)"));
    run.assert_success();
    assert_eq!(run.summary().quarantined, 1, "{run}");
    let quarantine = list_files(&t.path("out/_quarantine/auth"));
    assert_eq!(quarantine.len(), 1);
    let name = quarantine[0].file_name().unwrap().to_str().unwrap().to_string();
    let written = sluice::retention::quarantine_written(&name).unwrap();
    let age = chrono::Utc::now().timestamp_micros() - written;
    assert!((799..=801).contains(&(age / 86_400_000_000)), "{name} was written {age} µs ago");
    verify(&t).assert_success();
    // the control: the same file deleted by hand, in a copy of the archive,
    // is a problem `verify` names
    copy_dir(&t.path("out"), &t.path("by-hand"));
    std::fs::remove_file(t.path(&format!("by-hand/_quarantine/auth/{name}"))).unwrap();
    let by_hand = verify_archive(&t, "by-hand");
    by_hand.assert_failure();
    let problem = format!("auth: _quarantine/auth/{name} (entry ");
    let line = by_hand.stdout.lines().find(|l| l.contains(&problem));
    assert!(line.is_some_and(|l| l.ends_with("): [file] deleted")), "{by_hand}");

    let applied = sluice(&t, &["retention", "apply", "pipeline.toml"]);
    applied.assert_success();
    assert!(applied.stdout.contains(&format!("expired _quarantine/auth/{name} (quarantine written")), "{applied}");
    assert!(applied.stdout.contains("and 1 quarantine files"), "{applied}");
    assert!(!quarantine[0].exists());
    let v = verify(&t);
    v.assert_success();
    assert!(v.stdout.contains(", 0 quarantine files, 4 retired files, 1 retired quarantine files, 0 problems"), "{v}");
}
