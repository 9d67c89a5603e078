//! `sluice quarantine replay`: quarantined records go through the fixed
//! pipeline; each leaves quarantine only in the commit that lands it.

use crate::util::*;
use crate::{JSON_PARSER, events, faulty_stage};

fn pipeline(chain: &str) -> String {
    format!(
        "[sources.a]\ntype = \"file\"\npaths = [\"in.ndjson\"]\nchain = [{chain}]\n{JSON_PARSER}\n{}\n[sink]\nurl = \"out\"\n",
        faulty_stage("trap", "")
    )
}

struct Case {
    t: TestDir,
}

impl Case {
    /// 20 events, two of which trap the `faulty` stage, and one line that is not JSON.
    fn new() -> Case {
        let t = TestDir::new();
        let mut input = events(20, Some(3));
        input = input.replacen("event 11\"", "boom\"", 1);
        input.push_str("{not json\n");
        t.write("in.ndjson", &input);
        let run = t.run_pipeline(&pipeline("\"json\", \"faulty\""));
        run.assert_success();
        let s = run.summary();
        assert_eq!((s.read, s.written, s.quarantined), (21, 18, 3), "{run}");
        // the fix: the faulty stage is taken out of the chain
        t.write("pipeline.toml", &pipeline("\"json\""));
        Case { t }
    }

    fn replay(&self, env: &[(&str, &str)]) -> Run {
        sluice_in(self.t.root(), &["quarantine", "replay", "pipeline.toml"], env)
    }

    fn events(&self) -> u64 {
        duckdb_count(&format!("read_parquet('{}/a/**/*.parquet')", self.t.path("out").display()))
    }

    fn quarantined(&self) -> Vec<serde_json::Value> {
        self.t.quarantine_or_empty("out", "a")
    }

    /// The counts of the last commit for source `a`: they must balance and
    /// say 21 read, `written` events, `quarantined` in quarantine.
    fn assert_accounts(&self, written: u64, quarantined: u64) {
        let commits = commit_records(&self.t.path("out"));
        let last: serde_json::Value = serde_json::from_slice(&std::fs::read(commits.last().unwrap()).unwrap()).unwrap();
        let c = &last["sources"]["a"]["counts"];
        assert_eq!(
            (c["read"].as_u64(), c["written"].as_u64(), c["quarantined"].as_u64()),
            (Some(21), Some(written), Some(quarantined)),
            "{c}"
        );
    }
}

#[test]
fn quarantine_replay_lands_fixed_records_once_and_keeps_the_rest() {
    let c = Case::new();
    let run = c.replay(&[]);
    run.assert_success();
    let s = run.summary();
    assert_eq!((s.read, s.written, s.quarantined), (3, 2, 1), "{run}");
    assert_eq!(c.events(), 20);
    let q = c.quarantined();
    assert_eq!(q.len(), 1, "{q:?}");
    assert_eq!(q[0]["record"], "{not json");
    assert_eq!(q[0]["stage"], "json");
    c.assert_accounts(20, 1);
    // the quarantine is queryable like the archive
    let by_stage = duckdb(&format!(
        "SELECT source, stage, count(*) FROM read_json('{}/_quarantine/**/*.ndjson') GROUP BY ALL",
        c.t.path("out").display()
    ));
    assert_eq!(by_stage, serde_json::json!([["a", "json", 1]]));

    // again: nothing new lands, nothing is duplicated
    let again = c.replay(&[]);
    again.assert_success();
    assert_eq!((again.summary().read, again.summary().written), (1, 0), "{again}");
    assert_eq!(c.events(), 20);
    assert_eq!(c.quarantined().len(), 1);
    c.assert_accounts(20, 1);

    // and the sources are not read again by the replay, nor after it
    let run = c.t.run_pipeline(&pipeline("\"json\""));
    run.assert_success();
    assert_eq!(run.summary().read, 0, "{run}");
}

#[test]
fn quarantine_replay_interrupted_by_a_crash_changes_nothing_or_completes() {
    let c = Case::new();
    // dies before its commit: the quarantine is as it was
    let run = c.replay(&[("SLUICE_FAILPOINT", "after-upload")]);
    assert_ne!(run.code, Some(0), "{run}");
    let run = c.replay(&[("SLUICE_FAILPOINT", "after-pending")]);
    assert_ne!(run.code, Some(0), "{run}");
    assert_eq!(c.quarantined().len(), 3);
    // dies after its commit point, before the old quarantine files are removed:
    // recovery (here, at the next run) removes them
    let run = c.replay(&[("SLUICE_FAILPOINT", "after-commit-record")]);
    assert_ne!(run.code, Some(0), "{run}");
    assert_eq!(c.quarantined().len(), 4, "old files still there until recovery, plus the new one");
    let run = c.t.run_pipeline(&pipeline("\"json\""));
    run.assert_success();
    assert_eq!(c.events(), 20);
    let q = c.quarantined();
    assert_eq!(q.len(), 1, "{q:?}");
    c.assert_accounts(20, 1);
}

#[test]
fn quarantine_replay_of_one_source_only() {
    let c = Case::new();
    let run = sluice_in(c.t.root(), &["quarantine", "replay", "pipeline.toml", "--source", "b"], &[]);
    run.assert_failure();
    assert!(run.stderr.contains("no source `b`"), "{run}");
    let run = sluice_in(c.t.root(), &["quarantine", "replay", "pipeline.toml", "--source", "a"], &[]);
    run.assert_success();
    assert_eq!(c.events(), 20);
}

#[test]
fn quarantine_keeps_one_bad_event_of_a_list_whole_but_does_not_replay_it() {
    let t = TestDir::new();
    let item = |i: u32, user: &str| {
        format!(
            "{{\"kind\":\"Event\",\"apiVersion\":\"audit.k8s.io/v1\",\"level\":\"Metadata\",\"auditID\":\"id-{i}\",\"stage\":\"ResponseComplete\",\"requestURI\":\"/api/v1/pods\",\"verb\":\"list\",\"user\":{{\"username\":\"{user}\"}},\"responseStatus\":{{\"code\":200}},\"requestReceivedTimestamp\":\"2026-11-01T10:00:0{i}.000000Z\",\"stageTimestamp\":\"2026-11-01T10:00:0{i}.100000Z\"}}"
        )
    };
    // one EventList of three; the faulty stage traps on the second
    t.write(
        "k8s.ndjson",
        &format!(
            "{{\"kind\":\"EventList\",\"apiVersion\":\"audit.k8s.io/v1\",\"items\":[{},{},{}]}}\n",
            item(1, "a"),
            item(2, "boom"),
            item(3, "c")
        ),
    );
    let pipeline = |chain: &str| {
        format!(
            "[sources.k8s]\ntype = \"file\"\npaths = [\"k8s.ndjson\"]\nchain = [{chain}]\n[stages.k8s]\nplugin = \"parse-k8s-audit\"\n\
             [stages.faulty]\nplugin = \"{}\"\nconfig = {{ mode = \"trap\", field = \"actor_user_name\", equals = \"boom\" }}\n[sink]\nurl = \"out\"\n",
            fixture_plugin("faulty")
        )
    };
    let run = t.run_pipeline(&pipeline("\"k8s\", \"faulty\""));
    run.assert_success();
    let s = run.summary();
    assert_eq!((s.read, s.expanded, s.written, s.quarantined), (1, 2, 2, 1), "{run}");
    let q = t.quarantine("out", "k8s");
    assert_eq!(q[0]["partial"], true, "{}", q[0]);
    assert!(q[0]["record"].as_str().unwrap().contains("EventList"), "the whole record is kept as evidence");

    // replaying the whole list would write events 1 and 3 again: it is kept instead
    t.write("pipeline.toml", &pipeline("\"k8s\""));
    let replay = sluice_in(t.root(), &["quarantine", "replay", "pipeline.toml"], &[]);
    replay.assert_success();
    assert!(
        replay.stdout.contains("kept in quarantine 1: part of a record whose other events or copies were written"),
        "{replay}"
    );
    assert_eq!(duckdb_count(&format!("read_parquet('{}/k8s/**/*.parquet')", t.path("out").display())), 2);
    assert_eq!(t.quarantine("out", "k8s").len(), 1);
}
