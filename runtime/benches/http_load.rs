//! HTTP ingest under load, on loopback, with a kill in the middle.
//!
//! `cargo bench -p sluice --bench http_load [-- REQUESTS EVENTS_PER_REQUEST CLIENTS]`
//! (default 2000 × 100 events, 8 clients). Starts the real `sluice` binary on
//! a pipeline with one http source (parse-json → redact, committing every
//! second), and as many concurrent clients, each POSTing NDJSON bodies of
//! unique events and retrying until it gets a 200 (after `Retry-After` on
//! 429/503, after 100 ms when the connection fails). When half of the
//! requests are acknowledged, the process is killed (SIGKILL) and started
//! again; the clients carry on. At the end it waits for the spool to be read,
//! stops the pipeline, reads every committed file's `metadata_uid` and
//! prints: requests/s and events/s acknowledged before the kill, p50/p99/max
//! latency to a 200, how long until the pipeline had read everything (the
//! end-to-end rate: acknowledging only spools, parsing and redacting follow),
//! the retries, and the events lost (acknowledged, not archived) and
//! duplicated (a request spooled whose answer the kill cut off, then sent
//! again). Bounded: it stops by itself.

use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TOKEN: &str = "load-test-token";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start(dir: &std::path::Path, port: u16) -> Child {
    let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .current_dir(dir)
        .args(["run", "pipeline.toml"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(60), "sluice did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

fn body(request: usize, events: usize) -> String {
    (0..events)
        .map(|j| {
            format!(
                "{{\"time\":\"2026-11-01T10:{:02}:{:02}Z\",\"id\":\"r{request}-{j}\",\"user\":\"u{}\",\"action\":\"login\",\"ip\":\"10.1.{}.{}\",\"note\":\"password=hunter2 session ok\"}}\n",
                request % 60,
                j % 60,
                request % 97,
                request % 250,
                j % 250
            )
        })
        .collect()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let requests = args.first().copied().unwrap_or(2000);
    let per_request = args.get(1).copied().unwrap_or(100);
    let clients = args.get(2).copied().unwrap_or(8);
    let dir = tempfile::tempdir().unwrap();
    let (port, admin) = (free_port(), free_port());
    let digest = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(TOKEN.as_bytes()))
    };
    std::fs::write(dir.path().join("tokens.txt"), format!("loadtest {digest}\n")).unwrap();
    std::fs::write(
        dir.path().join("pipeline.toml"),
        format!(
            r#"
[http]
listen = "127.0.0.1:{port}"
tokens_file = "tokens.txt"
spool_dir = "spool"
[metrics]
listen = "127.0.0.1:{admin}"
[sources.app]
type = "http"
chain = ["json", "redact"]
[stages.json]
plugin = "parse-json"
config = {{ time_field = "time", fields = {{ metadata_uid = "id", actor_user_name = "user", api_operation = "action", src_endpoint_ip = "ip" }} }}
[stages.redact]
plugin = "redact"
[sink]
url = "out"
roll_age_secs = 1
"#
        ),
    )
    .unwrap();
    let child = Arc::new(Mutex::new(start(dir.path(), port)));
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let next = Arc::new(AtomicUsize::new(0));
    let acked = Arc::new(AtomicUsize::new(0));
    let retries = Arc::new(AtomicUsize::new(0));
    let killed = Arc::new(AtomicBool::new(false));
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let phase_one: Arc<Mutex<Option<(Duration, usize)>>> = Arc::default();
    let began = Instant::now();
    runtime.block_on(async {
        let client = reqwest::Client::new();
        let url = format!("http://127.0.0.1:{port}/app");
        let mut tasks = Vec::new();
        for _ in 0..clients {
            let (client, url, next, acked, retries, latencies) =
                (client.clone(), url.clone(), next.clone(), acked.clone(), retries.clone(), latencies.clone());
            let (child, killed, phase_one, dir) =
                (child.clone(), killed.clone(), phase_one.clone(), dir.path().to_path_buf());
            tasks.push(tokio::spawn(async move {
                loop {
                    let request = next.fetch_add(1, Ordering::Relaxed);
                    if request >= requests {
                        return;
                    }
                    let text = body(request, per_request);
                    loop {
                        let sent = Instant::now();
                        let answer = client
                            .post(&url)
                            .bearer_auth(TOKEN)
                            .header("content-type", "application/x-ndjson")
                            .body(text.clone())
                            .send()
                            .await;
                        match answer {
                            Ok(r) if r.status() == 200 => {
                                latencies.lock().unwrap().push((sent.elapsed(), killed.load(Ordering::Relaxed)));
                                break;
                            }
                            Ok(r) => {
                                let wait = r.headers().get("retry-after").and_then(|v| v.to_str().ok()?.parse().ok());
                                tokio::time::sleep(Duration::from_secs(wait.unwrap_or(1))).await;
                            }
                            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                        }
                        retries.fetch_add(1, Ordering::Relaxed);
                    }
                    let done = acked.fetch_add(1, Ordering::Relaxed) + 1;
                    if done == requests / 2 && !killed.swap(true, Ordering::Relaxed) {
                        *phase_one.lock().unwrap() = Some((began.elapsed(), done));
                        let mut c = child.lock().unwrap();
                        c.kill().unwrap();
                        c.wait().unwrap();
                        *c = start(&dir, port);
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    let total = began.elapsed();
    // the spool read to its end, then a clean stop (which commits)
    let metrics = format!("http://127.0.0.1:{admin}/metrics");
    let drained = Instant::now();
    loop {
        let text = runtime.block_on(async { reqwest::get(&metrics).await.ok()?.text().await.ok() }).unwrap_or_default();
        if text.contains("sluice_spool_unread_bytes{source=\"app\"} 0\n") {
            break;
        }
        assert!(drained.elapsed() < Duration::from_secs(600), "the spool was never read");
        std::thread::sleep(Duration::from_millis(200));
    }
    let read_all = began.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    {
        let mut c = child.lock().unwrap();
        Command::new("kill").args(["-TERM", &c.id().to_string()]).status().unwrap();
        assert!(c.wait().unwrap().success(), "sluice did not stop cleanly");
    }
    // what was committed: the files of the stream's integrity log
    let out = dir.path().join("out");
    let mut ids: HashSet<String> = HashSet::new();
    let mut rows = 0usize;
    for entry in std::fs::read_dir(out.join("_integrity/app/entries")).unwrap() {
        let entry: serde_json::Value = serde_json::from_slice(&std::fs::read(entry.unwrap().path()).unwrap()).unwrap();
        let file = std::fs::File::open(out.join(entry["path"].as_str().unwrap())).unwrap();
        for batch in ParquetRecordBatchReaderBuilder::try_new(file).unwrap().build().unwrap() {
            let batch = batch.unwrap();
            let column = batch.column_by_name("metadata_uid").unwrap();
            let column = column.as_any().downcast_ref::<arrow_array::StringArray>().unwrap();
            rows += batch.num_rows();
            ids.extend(column.iter().flatten().map(str::to_string));
        }
    }
    let expected = requests * per_request;
    let lost = (0..requests)
        .flat_map(|r| (0..per_request).map(move |j| format!("r{r}-{j}")))
        .filter(|id| !ids.contains(id))
        .count();
    let (one_time, one_requests) = phase_one.lock().unwrap().unwrap_or((total, requests));
    let mut before: Vec<Duration> =
        latencies.lock().unwrap().iter().filter(|(_, after_kill)| !after_kill).map(|(d, _)| *d).collect();
    before.sort();
    let secs = one_time.as_secs_f64();
    println!("| figure | value |");
    println!("|---|---:|");
    println!("| requests × events per request, clients | {requests} × {per_request}, {clients} |");
    println!("| requests/s before the kill | {:.0} |", one_requests as f64 / secs);
    println!("| events/s before the kill | {:.0} |", (one_requests * per_request) as f64 / secs);
    println!(
        "| latency to 200, p50 / p99 / max (ms) | {:.1} / {:.1} / {:.1} |",
        percentile(&before, 0.5).as_secs_f64() * 1e3,
        percentile(&before, 0.99).as_secs_f64() * 1e3,
        before.last().unwrap().as_secs_f64() * 1e3
    );
    println!("| all acknowledged, with the kill and restart (s) | {:.1} |", total.as_secs_f64());
    println!(
        "| all read by the pipeline (s); events/s end to end | {:.1}; {:.0} |",
        read_all.as_secs_f64(),
        expected as f64 / read_all.as_secs_f64()
    );
    println!("| retries (refused or no connection) | {} |", retries.load(Ordering::Relaxed));
    println!("| events acknowledged | {expected} |");
    println!("| events archived (rows) / distinct | {rows} / {} |", ids.len());
    println!("| lost (acknowledged, not archived) | {lost} |");
    println!("| duplicated (sent again after a cut-off answer) | {} |", rows - ids.len());
    assert_eq!(lost, 0, "acknowledged events were lost");
}
