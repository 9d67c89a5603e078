//! A real S3-compatible server on loopback: Garage (crates.io `garage`,
//! AGPL, run as a separate test service, never linked), one node,
//! `replication_factor = 1`, lmdb, started by the test that needs it with a
//! bucket and a key made by its own CLI. `.ci/run` installs the binary; a
//! missing binary fails the tests that need it, with how to get it.
//!
//! What Garage does not do, and what the tests therefore do not rely on: it
//! ignores `If-None-Match` on PUT (no create-only writes) and has no Object Lock.

use crate::util::*;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

pub struct Garage {
    dir: TestDir,
    bin: PathBuf,
    child: Option<Child>,
    pub endpoint: String,
    pub key_id: String,
    pub secret: String,
}

fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("SLUICE_GARAGE") {
        return PathBuf::from(path);
    }
    let candidates = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("garage")).collect::<Vec<_>>())
        .unwrap_or_default();
    let home = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin/garage"));
    candidates.into_iter().chain(home).find(|p| p.is_file()).unwrap_or_else(|| {
        panic!(
            "the S3 tests need a Garage server binary: `cargo install --locked garage` (or run .ci/run), \
             or set SLUICE_GARAGE to its path"
        )
    })
}

impl Garage {
    pub fn start() -> Garage {
        let dir = TestDir::new();
        let (rpc, s3) = (free_port(), free_port());
        let secret: String = (0..32).map(|i| format!("{:02x}", (i * 37 + 11) % 256)).collect();
        dir.write(
            "garage.toml",
            &format!(
                "metadata_dir = \"{meta}\"\ndata_dir = \"{data}\"\ndb_engine = \"lmdb\"\nreplication_factor = 1\n\
                 rpc_bind_addr = \"127.0.0.1:{rpc}\"\nrpc_public_addr = \"127.0.0.1:{rpc}\"\nrpc_secret = \"{secret}\"\n\
                 [s3_api]\ns3_region = \"garage\"\napi_bind_addr = \"127.0.0.1:{s3}\"\nroot_domain = \".s3.garage.localhost\"\n",
                meta = dir.path("meta").display(),
                data = dir.path("data").display(),
            ),
        );
        let mut g = Garage {
            dir,
            bin: binary(),
            child: None,
            endpoint: format!("http://127.0.0.1:{s3}"),
            key_id: String::new(),
            secret: String::new(),
        };
        g.restart();
        let node = g.cli(&["node", "id", "-q"]);
        let node = node.trim().split('@').next().unwrap().to_string();
        g.cli(&["layout", "assign", "-z", "dc1", "-c", "1G", &node]);
        g.cli(&["layout", "apply", "--version", "1"]);
        g.cli(&["bucket", "create", "sluice"]);
        let key = g.cli(&["key", "create", "sluice-key"]);
        let field = |name: &str| {
            key.lines()
                .find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim_start_matches(':').trim().to_string()))
                .unwrap_or_else(|| panic!("no {name} in `garage key create` output:\n{key}"))
        };
        g.key_id = field("Key ID");
        g.secret = field("Secret key");
        g.cli(&["bucket", "allow", "--read", "--write", "--owner", "sluice", "--key", "sluice-key"]);
        g
    }

    /// Runs the Garage CLI against this server; panics on failure.
    pub fn cli(&self, args: &[&str]) -> String {
        let config = self.dir.path("garage.toml");
        let mut last = String::new();
        // the server takes a moment to answer after (re)starting
        for _ in 0..100 {
            let out = Command::new(&self.bin).arg("-c").arg(&config).args(args).output().unwrap();
            if out.status.success() {
                return String::from_utf8_lossy(&out.stdout).into_owned();
            }
            last = String::from_utf8_lossy(&out.stderr).into_owned();
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        panic!("garage {args:?} failed: {last}");
    }

    /// Starts (or starts again) the server on the same data.
    pub fn restart(&mut self) {
        let log = std::fs::File::create(self.dir.path("server.log")).unwrap();
        let child = Command::new(&self.bin)
            .arg("-c")
            .arg(self.dir.path("garage.toml"))
            .arg("server")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        self.cli(&["status"]);
    }

    /// Kills the server (an outage).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }

    /// The standard AWS variables that point a client at this server.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_ACCESS_KEY_ID", &self.key_id),
            ("AWS_SECRET_ACCESS_KEY", &self.secret),
            ("AWS_REGION", "garage"),
            ("AWS_ALLOW_HTTP", "true"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// The same, as sink options (lower-case object_store keys).
    pub fn options(&self) -> std::collections::BTreeMap<String, String> {
        self.env().into_iter().map(|(k, v)| (k.to_lowercase(), v)).collect()
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        self.stop();
    }
}
