//! Azurite, Microsoft's Azure Storage emulator (npm `azurite`, MIT), as the
//! Azure Blob server of the object-store tests: run on a free loopback port by
//! the test that needs it, with a container made through the Azure SDK for
//! Python (PyPI `azure-storage-blob`). `.ci/run` installs both; a missing
//! binary fails the tests that need it, with how to get it. sluice reaches it
//! through its `az://` URL with the emulator's well-known account and key as
//! sink options, the way a real account is configured.

use crate::util::*;
use std::process::{Child, Command, Stdio};

/// The emulator's well-known development account and key (public, in Microsoft's docs).
const ACCOUNT: &str = "devstoreaccount1";
const KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

pub struct Azurite {
    _dir: TestDir,
    child: Child,
    pub endpoint: String,
}

impl Azurite {
    /// Starts the blob service and creates the container `sluice`.
    pub fn start() -> Azurite {
        let bin = std::env::var("SLUICE_AZURITE").unwrap_or_else(|_| "azurite-blob".into());
        let dir = TestDir::new();
        let port = free_port();
        let child = Command::new(&bin)
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string(), "--silent", "--location"])
            .arg(dir.path("data"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {bin} (npm install azurite, or run .ci/run; or set SLUICE_AZURITE): {e}")
            });
        let azurite = Azurite { _dir: dir, child, endpoint: format!("http://127.0.0.1:{port}/{ACCOUNT}") };
        wait_for("Azurite to listen", || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
        let script = format!(
            "from azure.storage.blob import BlobServiceClient\n\
             BlobServiceClient.from_connection_string('DefaultEndpointsProtocol=http;AccountName={ACCOUNT};\
             AccountKey={KEY};BlobEndpoint={}').create_container('sluice')\n",
            azurite.endpoint
        );
        let out = Command::new("python3").args(["-c", &script]).output().unwrap();
        assert!(out.status.success(), "creating the container failed: {}", String::from_utf8_lossy(&out.stderr));
        azurite
    }

    /// Sink options that point an `az://` URL at this server.
    pub fn options(&self) -> std::collections::BTreeMap<String, String> {
        [
            ("azure_storage_account_name", ACCOUNT),
            ("azure_storage_account_key", KEY),
            ("azure_storage_endpoint", self.endpoint.as_str()),
            ("allow_http", "true"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}
