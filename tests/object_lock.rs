//! S3 Object Lock (`sink.object_lock`): each Parquet file is locked until its
//! newest event plus its stream's retention, before the commit names it.
//!
//! Where it is tested: Garage (the real S3 server of these tests) has no
//! Object Lock, so against it the tests check the refusal: the run stops at
//! its first commit with the store's answer and commits nothing. The lock
//! itself is checked against moto (PyPI `moto[server]`, an AWS emulator run
//! on loopback as a server; `.ci/run` installs it): it does not check
//! signatures, but it keeps each object's retention and refuses to delete a
//! locked version, which is what the test asserts.

use crate::garage::Garage;
use crate::util::*;
use std::process::{Child, Command, Stdio};

const PIPELINE: &str = r#"
[sources.auth]
type = "file"
paths = ["in/auth.ndjson"]
chain = ["json"]
[sources.app]
type = "file"
paths = ["in/app.ndjson"]
chain = ["json"]
[stages.json]
plugin = "parse-json"
config = { time_field = "ts", fields = { actor_user_name = "user" } }
[streams.auth]
retention = "30d"
[retention]
apply_every_hours = 0
[sink]
url = "${OUT}"
object_lock = "compliance"
"#;

/// Writes the inputs; returns the time of the recent auth event.
fn inputs(t: &TestDir) -> chrono::DateTime<chrono::Utc> {
    let now = chrono::DateTime::from_timestamp(chrono::Utc::now().timestamp(), 0).unwrap();
    let ts = |days: i64| (now - chrono::TimeDelta::days(days)).format("%Y-%m-%dT%H:%M:%SZ");
    t.write(
        "in/auth.ndjson",
        &format!("{{\"ts\":\"{}\",\"user\":\"a\"}}\n{{\"ts\":\"{}\",\"user\":\"b\"}}\n", ts(400), ts(2)),
    );
    t.write("in/app.ndjson", &format!("{{\"ts\":\"{}\",\"user\":\"c\"}}\n", ts(1)));
    now - chrono::TimeDelta::days(2)
}

#[test]
fn object_lock_on_a_store_without_it_fails_clearly_and_commits_nothing() {
    let garage = Garage::start();
    let t = TestDir::new();
    inputs(&t);
    let p = t.write("pipeline.toml", PIPELINE);
    let mut env = garage.env();
    env.push(("OUT".into(), "s3://sluice/locked".into()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let started = std::time::Instant::now();
    let run = sluice_in(t.root(), &["run", p.to_str().unwrap()], &env);
    run.assert_failure();
    assert!(run.stderr.contains("the store refused Object Lock on"), "{run}");
    assert!(
        run.stderr.contains("(501 Not Implemented; NotImplemented: Unimplemented action: PutObjectRetention)"),
        "{run}"
    );
    assert!(started.elapsed().as_secs() < 60, "a refusal is final, not retried for minutes");
    // nothing was committed: the next run without the lock starts from the beginning
    let unlocked = PIPELINE.replace("object_lock = \"compliance\"\n", "");
    let p = t.write("pipeline.toml", &unlocked);
    let run = sluice_in(t.root(), &["run", p.to_str().unwrap()], &env);
    run.assert_success();
    assert_eq!(run.summary().written, 3, "{run}");
}

/// moto's S3 on a free loopback port, with a bucket made with Object Lock on.
struct Moto {
    child: Child,
    endpoint: String,
}

impl Moto {
    fn start() -> Moto {
        let port = free_port();
        let child = Command::new("python3")
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let child = std::cell::RefCell::new(child);
        wait_for("moto to listen", || {
            let exited = child.borrow_mut().try_wait().unwrap();
            assert!(exited.is_none(), "moto did not start ({exited:?}): pip install 'moto[server]' (.ci/run does)");
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        let child = child.into_inner();
        let moto = Moto { child, endpoint: format!("http://127.0.0.1:{port}") };
        moto.boto3("s3.create_bucket(Bucket='locked', ObjectLockEnabledForBucket=True)");
        moto
    }

    /// Runs Python with `s3`, a boto3 client of this server; returns stdout.
    fn boto3(&self, code: &str) -> String {
        let script = format!(
            "import boto3, json\nfrom botocore.config import Config\n\
             s3 = boto3.client('s3', endpoint_url='{}', aws_access_key_id='test', aws_secret_access_key='test', \
             region_name='us-east-1', config=Config(retries={{'max_attempts': 1}}))\n{code}\n",
            self.endpoint
        );
        let out = Command::new("python3").args(["-c", &script]).output().unwrap();
        assert!(out.status.success(), "boto3 failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn env(&self) -> Vec<(&str, &str)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ALLOW_HTTP", "true"),
            ("OUT", "s3://locked/archive"),
        ]
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

#[test]
fn object_lock_holds_each_file_until_its_retention_ends() {
    let moto = Moto::start();
    let t = TestDir::new();
    let recent = inputs(&t);
    let p = t.write("pipeline.toml", PIPELINE);
    let run = sluice_in(t.root(), &["run", p.to_str().unwrap()], &moto.env());
    run.assert_success();
    assert_eq!(run.summary().written, 3, "{run}");
    let locks: serde_json::Value = serde_json::from_str(&moto.boto3(
        "out = {}\n\
         for o in s3.list_objects_v2(Bucket='locked', Prefix='archive/')['Contents']:\n\
         \x20   if o['Key'].endswith('.parquet'):\n\
         \x20       h = s3.head_object(Bucket='locked', Key=o['Key'])\n\
         \x20       until = h.get('ObjectLockRetainUntilDate')\n\
         \x20       out[o['Key'].split('/')[1] + '/' + o['Key'].split('/')[2]] = [h.get('ObjectLockMode'), until and until.isoformat()]\n\
         print(json.dumps(out))",
    ))
    .unwrap();
    let day =
        |days: i64| format!("event_day={}", (chrono::Utc::now() - chrono::TimeDelta::days(days)).format("%Y%m%d"));
    // the recent auth file: locked until its event plus 30 days
    let until = (recent + chrono::TimeDelta::days(30)).to_rfc3339();
    assert_eq!(locks[format!("auth/{}", day(2))], serde_json::json!(["COMPLIANCE", until]), "{locks}");
    // already past its retention: expired by `retention apply`, not locked
    assert_eq!(locks[format!("auth/{}", day(400))], serde_json::json!([null, null]), "{locks}");
    // no retention, no lock
    assert_eq!(locks[format!("app/{}", day(1))], serde_json::json!([null, null]), "{locks}");
    // the pipeline's own events: the longest retention of any stream
    let own = &locks[format!("_sluice/{}", day(0))];
    assert_eq!(own[0], "COMPLIANCE", "{locks}");
    // and the store refuses to delete the locked version
    let refused = moto.boto3(&format!(
        "v = s3.list_object_versions(Bucket='locked', Prefix='archive/auth/{}')['Versions'][0]\n\
         try:\n    s3.delete_object(Bucket='locked', Key=v['Key'], VersionId=v['VersionId'])\n    print('deleted')\n\
         except Exception as e:\n    print(type(e).__name__, e)",
        day(2)
    ));
    assert!(refused.contains("AccessDenied"), "{refused}");
}
