//! The attack suite of the tamper-evident archive: a clean archive verifies,
//! and each way of tampering with one is detected by the check that names it.

use crate::util::*;
use sluice::integrity::note::{Checkpoint, NoteSigner};
use std::fs;
use std::path::{Path, PathBuf};

/// Events for two streams over three hours, so each stream has several files;
/// appended to the inputs, so that a second run reads only the new ones.
fn write_inputs(t: &TestDir, from: usize) {
    let mut a = String::new();
    let mut b = String::new();
    for i in from..from + 300 {
        let line = format!(
            "{{\"time\":\"2026-11-01T{:02}:{:02}:00Z\",\"message\":\"m{i}\",\"actor_user_name\":\"u{}\"}}\n",
            i % 3,
            i % 60,
            i % 7
        );
        if i % 2 == 0 { a.push_str(&line) } else { b.push_str(&line) }
    }
    for (name, text) in [("a.ndjson", a), ("b.ndjson", b)] {
        if from == 0 {
            t.write(name, &text);
        } else {
            append(&t.path(name), &text);
        }
    }
}

const PIPELINE: &str = r#"
[sources.a]
type = "file"
paths = ["a.ndjson"]
chain = ["json"]
[sources.b]
type = "file"
paths = ["b.ndjson"]
chain = ["json"]
[stages.json]
plugin = "parse-json"
config = { time_field = "time", fields = { message = "message", actor_user_name = "actor_user_name" } }
# no `_volume` stream: its row count depends on where the minutes fall
[runtime]
volume_interval_secs = 0
[sink]
url = "out"
[integrity]
signing_key = "keys/signing.key"
copy_to = "checkpoint-copy"
"#;

struct Signed {
    t: TestDir,
}

impl Signed {
    /// A signed archive of two runs (so each stream has checkpoints from both).
    fn new() -> Signed {
        let t = TestDir::new();
        sluice_in(t.root(), &["keys", "generate", "--out", "keys", "--name", "test-key"], &[]).assert_success();
        write_inputs(&t, 0);
        t.run_pipeline(PIPELINE).assert_success();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        write_inputs(&t, 300);
        let second = t.run_pipeline(PIPELINE);
        second.assert_success();
        assert_eq!(second.summary().read, 300, "the second run reads only what was appended:\n{second}");
        Signed { t }
    }

    /// A copy of the archive to attack.
    fn copy(&self, name: &str) -> PathBuf {
        let to = self.t.path(name);
        copy_dir(&self.t.path("out"), &to);
        to
    }

    fn verify(&self, archive: &Path, extra: &[&str]) -> Run {
        let key = self.t.path("keys/signing.pub");
        let mut args = vec!["verify", archive.to_str().unwrap(), "--key", key.to_str().unwrap()];
        args.extend_from_slice(extra);
        sluice_in(self.t.root(), &args, &[])
    }

    fn signer(&self) -> NoteSigner {
        NoteSigner::from_text(&fs::read_to_string(self.t.path("keys/signing.key")).unwrap()).unwrap()
    }
}

fn files(dir: &Path) -> Vec<PathBuf> {
    list_files(dir).into_iter().filter(|f| f.extension().is_some_and(|e| e == "parquet")).collect()
}

fn newest_checkpoint(archive: &Path, stream: &str) -> PathBuf {
    list_files(&archive.join("_integrity").join(stream).join("checkpoints")).pop().unwrap()
}

/// Asserts that verify fails and reports `check` (e.g. "[sha256]").
fn detected(run: &Run, checks: &[&str]) {
    run.assert_failure();
    for check in checks {
        assert!(run.stdout.contains(check), "expected {check} in:\n{run}");
    }
}

#[test]
fn integrity_clean_archive_verifies() {
    let s = Signed::new();
    let run = s.verify(&s.t.path("out"), &[]);
    run.assert_success();
    // a, b and the pipeline's own `_sluice` (a start and a stop per run)
    assert!(run.stdout.contains("ok: 3 streams"), "{run}");
    assert!(run.stdout.contains("604 events"), "{run}");
    // the checkpoints were also copied to the second location
    assert!(!list_files(&s.t.path("checkpoint-copy/_integrity/a/checkpoints")).is_empty());
}

#[test]
fn integrity_attacks_on_files_are_detected() {
    let s = Signed::new();

    // a flipped bit
    let x = s.copy("flip");
    let f = files(&x.join("a"))[0].clone();
    let mut bytes = fs::read(&f).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    fs::write(&f, bytes).unwrap();
    detected(&s.verify(&x, &[]), &["[sha256]"]);

    // flipped bits all over a file's footer (the metadata the reader trusts
    // for offsets, on which the Parquet reader may panic instead of failing)
    let x = s.copy("footer");
    let f = files(&x.join("a"))[0].clone();
    let mut bytes = fs::read(&f).unwrap();
    let footer = u32::from_le_bytes(bytes[bytes.len() - 8..bytes.len() - 4].try_into().unwrap()) as usize;
    let end = bytes.len() - 8;
    for at in (end - footer..end).step_by(7) {
        bytes[at] ^= 0x40;
    }
    fs::write(&f, bytes).unwrap();
    let run = s.verify(&x, &[]);
    detected(&run, &["[sha256]", "[parquet]"]);
    assert!(!run.stderr.contains("panicked") || run.stdout.contains("unreadable"), "{run}");

    // a row edited and the file re-encoded validly (pyarrow), hashes kept
    let x = s.copy("edit");
    let f = files(&x.join("a"))[0].clone();
    let script = "import pyarrow.parquet as pq, pyarrow as pa, sys\n\
                  t = pq.read_table(sys.argv[1])\n\
                  i = t.schema.get_field_index('actor_user_name')\n\
                  col = t.column(i).to_pylist(); col[0] = 'mallory'\n\
                  t = t.set_column(i, t.schema.field(i), pa.array(col, pa.string()))\n\
                  pq.write_table(t, sys.argv[1], compression='zstd')\n";
    let out = std::process::Command::new("python3").args(["-c", script, f.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    detected(&s.verify(&x, &[]), &["[sha256]", "[event_hash] row 0", "[events_root]"]);

    // a file deleted: named by the log, and its events leave a hole in seq
    let x = s.copy("delete");
    fs::remove_file(&files(&x.join("a"))[1]).unwrap();
    detected(&s.verify(&x, &[]), &["[file] deleted", "[sequence]"]);

    // a file injected into a partition (a copy of a valid one)
    let x = s.copy("inject");
    let f = files(&x.join("a"))[0].clone();
    fs::copy(&f, f.with_file_name("a-999-injected.parquet")).unwrap();
    detected(&s.verify(&x, &[]), &["[injected]"]);

    // a valid file of another stream swapped in under a file's name
    let x = s.copy("swap");
    let mine = files(&x.join("a"))[0].clone();
    fs::copy(&files(&x.join("b"))[0], &mine).unwrap();
    detected(&s.verify(&x, &[]), &["[sha256]"]);
}

#[test]
fn integrity_quarantine_files_are_logged_and_attacks_on_them_detected() {
    let s = Signed::new();
    // a third run quarantines two records of `a`
    append(&s.t.path("a.ndjson"), "not json\n{\"message\":\"no time\"}\n");
    let run = s.t.run_pipeline(PIPELINE);
    run.assert_success();
    assert_eq!(run.summary().quarantined, 2, "{run}");
    let quarantine = |x: &Path| list_files(&x.join("_quarantine/a"));
    let out = s.t.path("out");
    assert_eq!(quarantine(&out).len(), 1);
    let run = s.verify(&out, &[]);
    run.assert_success();
    assert!(run.stdout.contains("1 quarantine files"), "{run}");

    // a record taken out of the quarantine file
    let x = s.copy("q-line");
    let f = quarantine(&x)[0].clone();
    let text = fs::read_to_string(&f).unwrap();
    fs::write(&f, text.lines().next().unwrap().to_string() + "\n").unwrap();
    detected(&s.verify(&x, &[]), &["[sha256]", "[records] 1 records, the log says 2"]);

    // a record's reason edited
    let x = s.copy("q-edit");
    let f = quarantine(&x)[0].clone();
    let text = fs::read_to_string(&f).unwrap();
    assert!(text.contains("\"reason\":\""), "{text}");
    fs::write(&f, text.replacen("\"reason\":\"", "\"reason\":\"x", 1)).unwrap();
    let run = s.verify(&x, &[]);
    detected(&run, &["[sha256]"]);
    assert!(!run.stdout.contains("[records]"), "{run}");

    // the file deleted
    let x = s.copy("q-delete");
    fs::remove_file(&quarantine(&x)[0]).unwrap();
    detected(&s.verify(&x, &[]), &["[file] deleted"]);

    // a file slipped in
    let x = s.copy("q-inject");
    let f = quarantine(&x)[0].clone();
    fs::copy(&f, f.with_file_name("a-0190a3b4-0000-7000-8000-000000000000.ndjson")).unwrap();
    detected(&s.verify(&x, &[]), &["[injected]"]);

    // a replay refuses a quarantine file whose bytes are not the logged ones
    let f = quarantine(&out)[0].clone();
    let original = fs::read(&f).unwrap();
    fs::write(&f, [&original[..], b"{}\n"].concat()).unwrap();
    let refused = sluice_in(s.t.root(), &["quarantine", "replay", "pipeline.toml"], &[]);
    refused.assert_failure();
    assert!(refused.stderr.contains("does not match its integrity log entry"), "{refused}");
    fs::write(&f, &original).unwrap();

    // a replay takes the file out (its records fail again and come back in a
    // new file): the old file's entry is retired, the new file logged; a
    // file the log does not name is left alone
    let slipped = f.with_file_name("a-0190a3b4-0000-7000-8000-000000000000.ndjson");
    fs::write(&slipped, &original).unwrap();
    let replay = sluice_in(s.t.root(), &["quarantine", "replay", "pipeline.toml"], &[]);
    replay.assert_success();
    assert!(replay.stderr.contains("not in its stream's integrity log: not used"), "{replay}");
    fs::remove_file(&slipped).unwrap();
    let files = quarantine(&out);
    assert_eq!(files.len(), 1, "{replay}");
    assert_eq!(fs::read_to_string(&files[0]).unwrap().lines().count(), 2);
    let entries = list_files(&out.join("_integrity/a/entries"));
    let tail: Vec<serde_json::Value> = entries[entries.len() - 2..]
        .iter()
        .map(|e| serde_json::from_str(&fs::read_to_string(e).unwrap()).unwrap())
        .collect();
    assert_eq!(tail[0]["reason"], "replay", "{tail:?}");
    assert_eq!(tail[0]["records"], 2);
    assert_eq!(tail[1]["records"], 2);
    assert_eq!(out.join(tail[1]["path"].as_str().unwrap()), files[0]);
    let run = s.verify(&out, &[]);
    run.assert_success();
    assert!(run.stdout.contains("1 quarantine files"), "{run}");

    // a replayed file put back: its records would be both archived and quarantined
    let x = s.copy("q-restored");
    fs::write(x.join("_quarantine/a").join(f.file_name().unwrap()), &original).unwrap();
    detected(&s.verify(&x, &[]), &[&format!("[quarantine] retired by entry {}, but still present", tail[0]["index"])]);

    // a retirement forged to name a Parquet file's entry is refused
    let x = s.copy("q-retire-forged");
    let e = list_files(&x.join("_integrity/a/entries"));
    let retired = &e[e.len() - 2];
    let text = fs::read_to_string(retired).unwrap();
    let retires = tail[0]["retires"].as_u64().unwrap();
    fs::write(retired, text.replacen(&format!("\"retires\":{retires},"), "\"retires\":0,", 1)).unwrap();
    detected(&s.verify(&x, &[]), &["[quarantine] retires entry 0, which is not an earlier quarantine file"]);
}

#[test]
fn integrity_a_start_reads_the_log_from_its_state() {
    let s = Signed::new();
    let out = s.t.path("out");
    let state_path = out.join("_integrity/a/state.json");
    let entries = |out: &Path| list_files(&out.join("_integrity/a/entries"));
    let state = || -> serde_json::Value { serde_json::from_str(&fs::read_to_string(&state_path).unwrap()).unwrap() };
    assert_eq!(state()["size"], entries(&out).len(), "{}", state());
    let run = |from: usize| {
        write_inputs(&s.t, from);
        let run = s.t.run_pipeline(PIPELINE);
        run.assert_success();
        assert_eq!(run.summary().read, 300, "{run}");
        run
    };

    // the start reads the entries after the state only: one it would need
    // to read the whole log is missing, and the run goes on
    let first = entries(&out)[0].clone();
    let aside = s.t.path("entry-0.json");
    fs::rename(&first, &aside).unwrap();
    let stale = fs::read(&state_path).unwrap();
    run(600);
    fs::rename(&aside, &first).unwrap();
    s.verify(&out, &[]).assert_success();
    assert_eq!(state()["size"], entries(&out).len());

    // an older state that still fits the log (its write failed since): the
    // start reads more entries, and seq and the tree go on right
    fs::write(&state_path, &stale).unwrap();
    run(900);
    s.verify(&out, &[]).assert_success();

    // a state that does not fit the log is not used
    let mut wrong = state();
    wrong["last_leaf"] = serde_json::json!("00".repeat(32));
    fs::write(&state_path, wrong.to_string()).unwrap();
    let fallback = run(1200);
    assert!(fallback.stderr.contains("does not fit the log; reading the whole log"), "{fallback}");
    s.verify(&out, &[]).assert_success();

    // a forged tree is not used when a signed checkpoint of its size (a
    // stop writes one) has another root
    let forge = || {
        let mut forged = state();
        forged["frontier"][0][1] = serde_json::json!("11".repeat(32));
        fs::write(&state_path, forged.to_string()).unwrap();
        forged
    };
    forge();
    let refused = run(1500);
    assert!(refused.stderr.contains("is not that of the checkpoint of its size"), "{refused}");
    s.verify(&out, &[]).assert_success();

    // without that checkpoint, it would be: the sink then signs roots that
    // verify finds inconsistent with the log
    let size = format!("{:020}-", forge()["size"].as_u64().unwrap());
    for c in list_files(&out.join("_integrity/a/checkpoints")) {
        if c.file_name().unwrap().to_str().unwrap().starts_with(&size) {
            fs::remove_file(c).unwrap();
        }
    }
    run(1800);
    detected(&s.verify(&out, &[]), &["a: checkpoint", "[consistency]"]);
}

#[test]
fn integrity_attacks_on_the_log_are_detected() {
    let s = Signed::new();
    let entries = |x: &Path| list_files(&x.join("_integrity/a/entries"));

    // an entry deleted
    let x = s.copy("entry-deleted");
    fs::remove_file(&entries(&x)[1]).unwrap();
    detected(&s.verify(&x, &[]), &["[log] missing", "[injected]"]);

    // two entries swapped (reordered)
    let x = s.copy("entries-reordered");
    let e = entries(&x);
    let (a, b) = (fs::read(&e[0]).unwrap(), fs::read(&e[1]).unwrap());
    fs::write(&e[0], b).unwrap();
    fs::write(&e[1], a).unwrap();
    detected(&s.verify(&x, &[]), &["[log] records index", "[consistency]"]);

    // an entry altered (its row count)
    let x = s.copy("entry-altered");
    let e = entries(&x);
    let text = fs::read_to_string(&e[0]).unwrap();
    let rows = text.split("\"rows\":").nth(1).unwrap().split(',').next().unwrap().to_string();
    fs::write(
        &e[0],
        text.replacen(&format!("\"rows\":{rows},"), &format!("\"rows\":{},", rows.parse::<u64>().unwrap() + 1), 1),
    )
    .unwrap();
    detected(&s.verify(&x, &[]), &["[consistency]", "[rows]"]);

    // an entry appended that no checkpoint covers
    let x = s.copy("entry-appended");
    let e = entries(&x);
    let last = e.last().unwrap();
    let next = last.with_file_name(format!("{:020}.json", e.len()));
    fs::copy(last, next).unwrap();
    detected(&s.verify(&x, &[]), &["[coverage]"]);
}

#[test]
fn integrity_tail_truncation_rollback_and_fork_are_detected() {
    let s = Signed::new();
    // the verifier kept the newest checkpoint of stream a from the copy location
    let trusted = newest_checkpoint(&s.t.path("checkpoint-copy"), "a");
    let trusted_arg = trusted.to_str().unwrap();
    s.verify(&s.t.path("out"), &["--trusted-checkpoint", trusted_arg]).assert_success();

    // the newest file, its entry and the checkpoints that cover it are deleted:
    // consistent on its own, caught against the trusted checkpoint
    let x = s.copy("truncated");
    let entries = list_files(&x.join("_integrity/a/entries"));
    let last: serde_json::Value = serde_json::from_str(&fs::read_to_string(entries.last().unwrap()).unwrap()).unwrap();
    fs::remove_file(x.join(last["path"].as_str().unwrap())).unwrap();
    fs::remove_file(entries.last().unwrap()).unwrap();
    let size = entries.len() as u64 - 1;
    for c in list_files(&x.join("_integrity/a/checkpoints")) {
        let n: u64 = c.file_name().unwrap().to_str().unwrap()[..20].parse().unwrap();
        if n > size {
            fs::remove_file(c).unwrap();
        }
    }
    let alone = s.verify(&x, &[]);
    assert!(!alone.stdout.contains("[sha256]"), "{alone}");
    detected(&s.verify(&x, &["--trusted-checkpoint", trusted_arg]), &["[truncation]"]);

    // a whole stream deleted
    let x = s.copy("stream-gone");
    fs::remove_dir_all(x.join("a")).unwrap();
    fs::remove_dir_all(x.join("_integrity/a")).unwrap();
    detected(&s.verify(&x, &["--trusted-checkpoint", trusted_arg]), &["[truncation]"]);

    // an insider with the key: a fork (same size, other root) and a rollback
    // (a smaller tree signed later)
    let signer = s.signer();
    let x = s.copy("fork");
    let newest = newest_checkpoint(&x, "a");
    let (c, _) = Checkpoint::open(&fs::read_to_string(&newest).unwrap(), &[signer.verifier()]).unwrap();
    let forked = Checkpoint { root: [9u8; 32], ..c.clone() };
    fs::write(newest.with_file_name(format!("{:020}-9999999999999999.note", c.size)), signer.sign(&forked.body()))
        .unwrap();
    detected(&s.verify(&x, &[]), &["[fork]", "[consistency]"]);

    let x = s.copy("rollback");
    let older = list_files(&x.join("_integrity/a/checkpoints")).remove(0);
    let (old, _) = Checkpoint::open(&fs::read_to_string(&older).unwrap(), &[signer.verifier()]).unwrap();
    let resigned = Checkpoint { extensions: vec!["time 2099-01-01T00:00:00Z".into()], ..old.clone() };
    fs::write(older.with_file_name(format!("{:020}-4070908800000000.note", old.size)), signer.sign(&resigned.body()))
        .unwrap();
    detected(&s.verify(&x, &[]), &["[rollback]"]);
}

#[test]
fn integrity_keys_heartbeats_and_malformed_checkpoints() {
    let s = Signed::new();
    let out = s.t.path("out");

    // signed by a key the verifier does not trust
    let other = s.t.path("other");
    sluice_in(s.t.root(), &["keys", "generate", "--out", other.to_str().unwrap()], &[]).assert_success();
    let run = sluice_in(
        s.t.root(),
        &["verify", out.to_str().unwrap(), "--key", other.join("signing.pub").to_str().unwrap()],
        &[],
    );
    detected(&run, &["[signature] no signature by a trusted key"]);

    // the right key, but expired before the checkpoints were signed
    let public = fs::read_to_string(s.t.path("keys/signing.pub")).unwrap();
    let expired = s.t.write("expired.pub", &format!("{} not-after=2020-01-01T00:00:00Z\n", public.trim()));
    let run = sluice_in(s.t.root(), &["verify", out.to_str().unwrap(), "--key", expired.to_str().unwrap()], &[]);
    detected(&run, &["outside its validity"]);

    // a missing heartbeat: the two runs' checkpoints are more than 0 s apart
    detected(&s.verify(&out, &["--max-gap", "0"]), &["[heartbeat]"]);

    // malformed checkpoints: garbage, truncated, trailing bytes
    for (name, mutate) in [
        ("garbage", Box::new(|_: String| "garbage\n".to_string()) as Box<dyn Fn(String) -> String>),
        ("truncated", Box::new(|t: String| t[..t.len() / 2].to_string())),
        ("trailing", Box::new(|t: String| format!("{t}trailing bytes"))),
    ] {
        let x = s.copy(name);
        let c = newest_checkpoint(&x, "b");
        fs::write(&c, mutate(fs::read_to_string(&c).unwrap())).unwrap();
        detected(&s.verify(&x, &[]), &["[signature] malformed checkpoint"]);
    }
}

#[test]
fn integrity_event_proofs_verify_offline_and_every_mutation_fails() {
    let s = Signed::new();
    let key = s.t.path("keys/signing.pub");
    let key = key.to_str().unwrap();
    let out = s.t.path("out");
    let run = sluice_in(s.t.root(), &["prove", out.to_str().unwrap(), "a", "123", "--key", key], &[]);
    run.assert_success();
    let proof: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert!(proof["event"].as_str().unwrap().contains("\"seq\":123"));
    let check = |p: &str| {
        let f = s.t.write("proof.json", p);
        sluice_in(s.t.root(), &["verify-proof", f.to_str().unwrap(), "--key", key], &[])
    };
    let ok = check(&run.stdout);
    ok.assert_success();
    assert!(ok.stdout.starts_with("ok: event seq 123 is in a/"), "{ok}");

    // every element of the proof, mutated in turn
    let mut mutants: Vec<(String, serde_json::Value)> = Vec::new();
    let mut with = |what: String, f: &dyn Fn(&mut serde_json::Value)| {
        let mut p = proof.clone();
        f(&mut p);
        mutants.push((what, p));
    };
    with("event".into(), &|p| p["event"] = p["event"].as_str().unwrap().replace("\"seq\":123", "\"seq\":124").into());
    with("event_index".into(), &|p| p["event_index"] = (p["event_index"].as_u64().unwrap() + 1).into());
    with("entry".into(), &|p| p["entry"] = p["entry"].as_str().unwrap().replacen("\"rows\":", "\"rows\":1", 1).into());
    with("entry_index".into(), &|p| p["entry_index"] = (p["entry_index"].as_u64().unwrap() + 1).into());
    with("checkpoint".into(), &|p| p["checkpoint"] = p["checkpoint"].as_str().unwrap().replacen("\n", "\n1", 1).into());
    with("version".into(), &|p| p["version"] = 2.into());
    for field in ["event_proof", "log_proof"] {
        for i in 0..proof[field].as_array().unwrap().len() {
            with(format!("{field}[{i}]"), &|p| {
                let h = p[field][i].as_str().unwrap();
                let flipped = match h.strip_prefix('0') {
                    Some(rest) => format!("1{rest}"),
                    None => format!("0{}", &h[1..]),
                };
                p[field][i] = flipped.into();
            });
        }
        with(format!("{field} extra"), &|p| p[field].as_array_mut().unwrap().push("00".repeat(32).into()));
    }
    assert!(mutants.len() >= 10);
    for (what, p) in mutants {
        let run = check(&p.to_string());
        assert!(run.code == Some(1) && run.stdout.starts_with("FAILED"), "mutating {what} went unnoticed: {run}");
    }
    // garbage, truncation, trailing bytes
    for bad in
        ["garbage".to_string(), run.stdout[..run.stdout.len() / 2].to_string(), format!("{}x", run.stdout.trim())]
    {
        check(&bad).assert_failure();
    }
}
