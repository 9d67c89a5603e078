//! `sluice query`: SQL over an archive with DataFusion, checked against
//! DuckDB reading the same files. Built only with `--features query` (the
//! README's test command turns it on); without it, the command says how to get it.

use crate::util::*;

#[cfg(not(feature = "query"))]
#[test]
fn query_says_how_to_get_it_when_built_without_it() {
    let t = TestDir::new();
    let run = sluice_in(t.root(), &["query", ".", "SELECT 1"], &[]);
    run.assert_failure();
    assert!(run.stderr.contains("cargo build --release --features query"), "{run}");
}

#[cfg(feature = "query")]
mod with_datafusion {
    use super::*;
    use crate::garage::Garage;
    use serde_json::{Value, json};

    /// The quickstart's archive, written to `out` (local or S3).
    fn quickstart(out: &str, env: &[(String, String)]) {
        let mut vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        vars.push(("SLUICE_OUT", out));
        let run = sluice_in(&repo_root(), &["run", "examples/quickstart/pipeline.toml"], &vars);
        run.assert_success();
        assert_eq!(run.summary().written, 4000, "{run}");
    }

    /// `sluice query --format json`: the rows.
    fn query(archive: &str, sql: &str, env: &[(String, String)]) -> Vec<Value> {
        let vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let run = sluice_in(&repo_root(), &["query", archive, sql, "--format", "json"], &vars);
        run.assert_success();
        run.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    #[test]
    fn streams_are_tables_events_is_all_of_them_and_duckdb_agrees() {
        let t = TestDir::new();
        let out = t.path("out");
        let archive = out.to_str().unwrap();
        quickstart(archive, &[]);

        // every stream is a table; `events` is the audit streams together
        let counts = query(archive, "SELECT count(*) AS n FROM events", &[]);
        assert_eq!(counts, vec![json!({"n": 4000})]);
        let per_stream = query(
            archive,
            "SELECT (SELECT count(*) FROM auth) AS auth, (SELECT count(*) FROM k8s) AS k8s, \
             (SELECT count(*) FROM _sluice) AS own",
            &[],
        );
        let duck = |stream: &str| duckdb_count(&format!("read_parquet('{archive}/{stream}/**/*.parquet')"));
        assert_eq!(per_stream[0]["auth"], duck("auth"));
        assert_eq!(per_stream[0]["k8s"], duck("k8s"));
        assert_eq!(per_stream[0]["own"], duck("_sluice"));

        // the same report in both engines: failed logins per user
        let sql = "SELECT actor_user_name AS user, count(*) AS failed FROM events \
                   WHERE class_uid = 3002 AND status_id = 2 GROUP BY actor_user_name ORDER BY failed DESC, user LIMIT 5";
        let ours = query(archive, sql, &[]);
        let theirs = duckdb(&format!(
            "SELECT actor_user_name, count(*) AS failed FROM read_parquet('{archive}/*/**/*.parquet', union_by_name = true) \
             WHERE class_uid = 3002 AND status_id = 2 GROUP BY actor_user_name ORDER BY failed DESC, actor_user_name LIMIT 5"
        ));
        assert!(!ours.is_empty());
        let ours: Vec<Value> = ours.iter().map(|r| json!([r["user"], r["failed"]])).collect();
        assert_eq!(Value::Array(ours), theirs);

        // typed columns come through: time is a UTC timestamp, partitions are columns
        let typed = query(
            archive,
            "SELECT arrow_typeof(time) AS t, arrow_typeof(event_day) AS d, arrow_typeof(hour) AS h FROM auth LIMIT 1",
            &[],
        );
        assert_eq!(typed[0], json!({"t": "Timestamp(µs, \"UTC\")", "d": "Int64", "h": "Utf8"}));
    }

    #[test]
    fn a_where_on_a_partition_reads_only_that_partition() {
        let t = TestDir::new();
        let out = t.path("out");
        let archive = out.to_str().unwrap();
        quickstart(archive, &[]);
        let hours: Vec<String> = std::fs::read_dir(out.join("auth"))
            .unwrap()
            .flat_map(|day| std::fs::read_dir(day.unwrap().path()).unwrap())
            .map(|h| h.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(hours.len() > 1, "the quickstart spans several hours: {hours:?}");
        let hour = hours[0].trim_start_matches("hour=");
        let run = sluice_in(
            &repo_root(),
            &[
                "query",
                archive,
                &format!("EXPLAIN SELECT actor_user_name FROM auth WHERE hour = '{hour}'"),
                "--format",
                "csv",
            ],
            &[],
        );
        run.assert_success();
        // the plan scans files of that hour's folder and no other
        assert!(run.stdout.contains(&format!("hour={hour}/")), "{run}");
        for other in hours.iter().filter(|h| h.trim_start_matches("hour=") != hour) {
            assert!(!run.stdout.contains(&format!("{other}/")), "{other} is scanned: {run}");
        }
        let counted = query(archive, &format!("SELECT count(*) AS n FROM auth WHERE hour = '{hour}'"), &[]);
        let expected = duckdb_count(&format!("read_parquet('{archive}/auth/*/hour={hour}/*.parquet')"));
        assert_eq!(counted, vec![json!({"n": expected})]);
    }

    #[test]
    fn results_come_as_a_table_csv_json_or_parquet() {
        let t = TestDir::new();
        let out = t.path("out");
        let archive = out.to_str().unwrap();
        quickstart(archive, &[]);
        let sql = "SELECT class_uid, count(*) AS n FROM events GROUP BY class_uid ORDER BY class_uid";
        let table = sluice_in(&repo_root(), &["query", archive, sql], &[]);
        table.assert_success();
        assert!(table.stdout.contains("| class_uid | n "), "{table}");
        let csv = sluice_in(&repo_root(), &["query", archive, sql, "--format", "csv"], &[]);
        csv.assert_success();
        assert_eq!(csv.stdout.lines().next(), Some("class_uid,n"), "{csv}");
        let file = t.path("result.parquet");
        let parquet = sluice_in(
            &repo_root(),
            &["query", archive, sql, "--format", "parquet", "--out", file.to_str().unwrap()],
            &[],
        );
        parquet.assert_success();
        // the Parquet file, read by DuckDB, holds the same rows as the JSON output
        let from_file =
            duckdb(&format!("SELECT class_uid, n FROM read_parquet('{}') ORDER BY class_uid", file.display()));
        let json_rows: Vec<Value> = query(archive, sql, &[]).iter().map(|r| json!([r["class_uid"], r["n"]])).collect();
        assert!(json_rows.len() > 1);
        assert_eq!(from_file, Value::Array(json_rows));
        assert_eq!(csv.stdout.lines().count() - 1, from_file.as_array().unwrap().len());
    }

    #[test]
    fn bad_sql_and_a_folder_that_is_not_an_archive_are_reported() {
        let t = TestDir::new();
        let out = t.path("out");
        let archive = out.to_str().unwrap();
        quickstart(archive, &[]);
        let run = sluice_in(&repo_root(), &["query", archive, "SELECT nope FROM events"], &[]);
        run.assert_failure();
        assert!(run.stderr.contains("the query does not plan") && run.stderr.contains("nope"), "{run}");
        std::fs::create_dir_all(t.path("empty")).unwrap();
        let run = sluice_in(&repo_root(), &["query", t.path("empty").to_str().unwrap(), "SELECT 1"], &[]);
        run.assert_failure();
        assert!(run.stderr.contains("holds no streams"), "{run}");
    }

    #[test]
    fn an_archive_on_s3_is_queried_in_place() {
        let garage = Garage::start();
        let t = TestDir::new();
        quickstart("s3://sluice/query", &garage.env());
        let rows = query("s3://sluice/query", "SELECT count(*) AS n FROM events WHERE class_uid = 3002", &garage.env());
        let local = t.path("local");
        quickstart(local.to_str().unwrap(), &[]);
        let expected = query(local.to_str().unwrap(), "SELECT count(*) AS n FROM events WHERE class_uid = 3002", &[]);
        assert!(expected[0]["n"].as_u64().unwrap() > 0);
        assert_eq!(rows, expected);
    }
}
