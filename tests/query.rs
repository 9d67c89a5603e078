//! `sluice query`: SQL over an archive with DataFusion, checked against
//! DuckDB reading the same files. `sluice query` exists only in a build with
//! `--features query`, which the README's test command (and `.ci/run`) turns on.

#[cfg(feature = "query")]
mod with_datafusion {
    use crate::garage::Garage;
    use crate::util::*;
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
        // DuckDB's `events`, as examples/reports/run.py makes it: the streams not starting with `_`
        let streams: Vec<String> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| !name.starts_with('_'))
            .map(|name| format!("'{archive}/{name}/**/*.parquet'"))
            .collect();
        assert_eq!(streams.len(), 4);
        let theirs = duckdb(&format!(
            "SELECT actor_user_name, count(*) AS failed FROM read_parquet([{}], union_by_name = true) \
             WHERE class_uid = 3002 AND status_id = 2 GROUP BY actor_user_name ORDER BY failed DESC, actor_user_name LIMIT 5",
            streams.join(", ")
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

    /// A value as text, a timestamp in one form (DuckDB writes
    /// `2026-11-01 00:10:00.120000+00:00`, `sluice query` `2026-11-01T00:10:00.12Z`).
    fn normalized(v: &Value) -> String {
        let Value::String(s) = v else { return v.to_string() };
        static TIME: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
            regex::Regex::new(r"^(\d{4}-\d\d-\d\d)[T ](\d\d:\d\d:\d\d)(\.\d+)?(Z|\+00:00)$").unwrap()
        });
        match TIME.captures(s) {
            Some(c) => {
                let fraction = c.get(3).map_or("", |f| f.as_str().trim_end_matches('0').trim_end_matches('.'));
                format!("{} {}{fraction}Z", &c[1], &c[2])
            }
            None => s.clone(),
        }
    }

    #[test]
    fn every_report_gives_the_same_rows_in_sluice_query_as_in_duckdb() {
        let w = crate::crash::Workload::new(3_000);
        append(&w.t.path("data/cloudtrail.ndjson"), &format!("{}\n", crate::reports::STOP_LOGGING));
        w.run("out");
        let out = w.t.path("out");
        let archive = out.to_str().unwrap();
        let trace = query(archive, "SELECT max(trace_id) AS id FROM events", &[]);
        let id = trace[0]["id"].as_str().expect("the workload has trace ids").to_string();
        let params = [
            ("actor", "alice".to_string()),
            ("from", "2026-11-01T00:00:00Z".to_string()),
            ("to", "2026-11-01T06:00:00Z".to_string()),
            ("id", id),
        ];
        let mut reports: Vec<_> = std::fs::read_dir(repo_root().join("examples/reports"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "sql"))
            .collect();
        reports.sort();
        assert_eq!(reports.len(), 8);
        for path in reports {
            let name = path.file_stem().unwrap().to_str().unwrap();
            let mut sql = std::fs::read_to_string(&path).unwrap();
            let mut args = Vec::new();
            for (key, value) in &params {
                sql = sql.replace(&format!("{{{key}}}"), value);
                args.push(format!("{key}={value}"));
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let theirs = crate::reports::report(&out, name, &args);
            assert!(!theirs.is_empty(), "{name}: no rows, so the comparison shows nothing");
            let ours = query(archive, &sql, &[]);
            // rows as multisets of their values (column names differ in form; ties may come in either order)
            let rows = |rows: Vec<Vec<String>>| {
                let mut rows: Vec<Vec<String>> = rows
                    .into_iter()
                    .map(|mut r| {
                        r.sort();
                        r
                    })
                    .collect();
                rows.sort();
                rows
            };
            let theirs = rows(theirs.iter().map(|r| r.as_array().unwrap().iter().map(normalized).collect()).collect());
            let ours = rows(ours.iter().map(|r| r.as_object().unwrap().values().map(normalized).collect()).collect());
            assert_eq!(ours.len(), theirs.len(), "{name}");
            assert_eq!(ours, theirs, "{name}");
        }
    }

    #[test]
    fn a_where_on_a_partition_reads_only_that_partition() {
        let t = TestDir::new();
        let out = t.path("out");
        let archive = out.to_str().unwrap();
        quickstart(archive, &[]);
        // the (day, hour) folders of the auth stream, and their files
        let mut folders: Vec<(String, String, usize)> = Vec::new();
        for day in std::fs::read_dir(out.join("auth")).unwrap() {
            let day = day.unwrap();
            for hour in std::fs::read_dir(day.path()).unwrap() {
                let hour = hour.unwrap();
                let files = std::fs::read_dir(hour.path()).unwrap().count();
                let name = |e: &std::fs::DirEntry| e.file_name().to_string_lossy().into_owned();
                folders.push((name(&day), name(&hour), files));
            }
        }
        assert!(folders.len() > 1, "the quickstart spans several hours: {folders:?}");
        let (day, hour, files) = folders[0].clone();
        let (d, h) = (day.trim_start_matches("event_day="), hour.trim_start_matches("hour="));
        let filter = format!("event_day = {d} AND hour = '{h}'");
        let run = sluice_in(
            &repo_root(),
            &[
                "query",
                archive,
                &format!("EXPLAIN VERBOSE SELECT actor_user_name FROM auth WHERE {filter}"),
                "--format",
                "json",
            ],
            &[],
        );
        run.assert_success();
        // the physical plan lists exactly that folder's files
        let plan: Vec<Value> = run.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let physical = plan.iter().find(|r| r["plan_type"] == "physical_plan").expect("a physical plan");
        let scanned: Vec<&str> = physical["plan"]
            .as_str()
            .unwrap()
            .split(['[', ']', ',', ' '])
            .filter(|w| w.ends_with(".parquet"))
            .collect();
        assert_eq!(scanned.len(), files, "{physical}");
        assert!(scanned.iter().all(|f| f.contains(&format!("/{day}/{hour}/"))), "{physical}");
        let counted = query(archive, &format!("SELECT count(*) AS n FROM auth WHERE {filter}"), &[]);
        let expected = duckdb_count(&format!("read_parquet('{archive}/auth/{day}/{hour}/*.parquet')"));
        assert!(expected > 0);
        assert_eq!(counted, vec![json!({"n": expected})]);
    }

    /// Streams with their own partition keys and column types, as a pipeline may make them.
    #[test]
    fn tenant_partitions_and_differently_typed_columns_are_read_right() {
        let t = TestDir::new();
        t.write(
            "a.ndjson",
            "{\"time\":\"2026-11-01T10:00:00Z\",\"tenant\":\"t1\",\"amount\":5}\n\
             {\"time\":\"2026-11-01T10:00:00Z\",\"tenant\":\"t/2\",\"amount\":7}\n\
             {\"time\":\"2026-11-01T10:00:00Z\",\"amount\":9}\n",
        );
        t.write("b.ndjson", "{\"time\":\"2026-11-01T11:00:00Z\",\"tenant\":\"t1\",\"amount\":\"twelve\"}\n");
        let parse = "[stages.json]\nplugin = \"parse-json\"\n\
                     config = { keep_original = false, fields = { tenant_uid = \"tenant\", amount_cents = \"amount\" } }\n";
        let run = t.run_pipeline(&format!(
            "[sources.a]\ntype = \"file\"\npaths = [\"a.ndjson\"]\nchain = [\"json\"]\n\
             [sources.b]\ntype = \"file\"\npaths = [\"b.ndjson\"]\nchain = [\"json\"]\n{parse}\
             [streams.a]\ncolumns = {{ amount_cents = \"int64\" }}\n[streams.b]\ncolumns = {{ amount_cents = \"string\" }}\n\
             [sink]\nurl = \"out\"\npartition_by = [\"tenant_uid\", \"event_day\", \"hour\"]\n"
        ));
        run.assert_success();
        assert_eq!(run.summary().written, 4, "{run}");
        let archive = t.path("out");
        let archive = archive.to_str().unwrap();
        // the key is read from the files: "t/2" decoded, a missing tenant a NULL
        let tenants = query(
            archive,
            "SELECT tenant_uid, count(*) AS n FROM a GROUP BY tenant_uid ORDER BY tenant_uid NULLS FIRST",
            &[],
        );
        assert_eq!(
            tenants,
            vec![
                json!({"tenant_uid": null, "n": 1}),
                json!({"tenant_uid": "t/2", "n": 1}),
                json!({"tenant_uid": "t1", "n": 1})
            ]
        );
        assert_eq!(query(archive, "SELECT count(*) AS n FROM a WHERE tenant_uid = 't/2'", &[]), vec![json!({"n": 1})]);
        // int64 in one stream, text in the other: `events` reads both as text
        let amounts = query(archive, "SELECT amount_cents FROM events ORDER BY amount_cents", &[]);
        assert_eq!(
            amounts,
            vec![
                json!({"amount_cents": "5"}),
                json!({"amount_cents": "7"}),
                json!({"amount_cents": "9"}),
                json!({"amount_cents": "twelve"})
            ]
        );
        // CSV: a list column is refused up front; no rows still give the header
        let run = sluice_in(&repo_root(), &["query", archive, "SELECT resources FROM a", "--format", "csv"], &[]);
        run.assert_failure();
        assert!(run.stderr.contains("CSV cannot hold column `resources`"), "{run}");
        let run = sluice_in(
            &repo_root(),
            &["query", archive, "SELECT tenant_uid FROM a WHERE 1 = 0", "--format", "csv"],
            &[],
        );
        run.assert_success();
        assert_eq!(run.stdout, "tenant_uid\n", "{run}");
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
        // a report file's text starts with a comment: it is SQL, not an option
        let commented = query(archive, "-- all of them\nSELECT count(*) AS n FROM events", &[]);
        assert_eq!(commented, vec![json!({"n": 4000})]);
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
