//! Syslog over TCP (newline and octet-counted framing, and TLS) and UDP,
//! into the syslog parser, each message once and in the source's tenant.

use crate::util::*;
use serde_json::json;
use std::io::Write;

const LINES: [&str; 3] = [
    "<38>Nov  1 10:00:01 bastion-1 sshd[77]: Accepted publickey for alice from 10.9.9.9 port 2222 ssh2",
    "<38>Nov  1 10:00:02 bastion-1 sshd[78]: Failed password for bob from 203.0.113.7 port 4242 ssh2",
    "<165>1 2026-11-01T10:00:03.000Z web-1 app 99 ID7 - user carol exported invoices",
];

/// A message of two lines, sent octet-counted.
const MULTILINE: &str = "<14>1 2026-11-01T10:00:04Z web-1 app 99 - - trace:\n  at main()";

fn pipeline(admin: u16, tcp: u16, udp: u16, tls: &str) -> String {
    format!(
        r#"
[sources.tcp]
type = "syslog"
listen = "127.0.0.1:{tcp}"
spool_dir = "spool"
tenant = "acme"
chain = ["syslog"]
stream = "syslog"
{tls}
[sources.udp]
type = "syslog"
protocol = "udp"
listen = "127.0.0.1:{udp}"
spool_dir = "spool"
tenant = "acme"
chain = ["syslog"]
stream = "syslog"

[stages.syslog]
plugin = "parse-syslog"
config = {{ year = 2026 }}

[metrics]
listen = "127.0.0.1:{admin}"

[sink]
url = "out"
"#
    )
}

/// Two connections' bytes: the lines, newline-framed; the two-line message, octet-counted.
fn framed() -> [Vec<u8>; 2] {
    let lines: String = LINES.iter().map(|l| format!("{l}\n")).collect();
    [lines.into_bytes(), format!("{} {MULTILINE}", MULTILINE.len()).into_bytes()]
}

fn check_archive(t: &TestDir, sent: usize) {
    let rows = duckdb(&format!(
        "SELECT count(*), list(DISTINCT tenant_uid), count(*) FILTER (class_uid = 3002), \
         count(*) FILTER (message LIKE '%\n  at main()') \
         FROM read_parquet('{}/syslog/**/*.parquet', hive_partitioning = true)",
        t.path("out").display()
    ));
    // per round of four: two sshd logins (Authentication, 3002) and one message of two lines
    assert_eq!(rows, json!([[sent, ["acme"], sent / 2, sent / 4]]));
    let partitions: Vec<String> = std::fs::read_dir(t.path("out/syslog"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(partitions, ["tenant_uid=acme"]);
}

#[test]
fn syslog_over_tcp_and_udp_lands_every_message_in_the_sources_tenant() {
    let t = TestDir::new();
    let (admin, tcp, udp) = (free_port(), free_port(), free_port());
    t.write("pipeline.toml", &pipeline(admin, tcp, udp, ""));
    let mut child = spawn_sluice(t.root(), &["run", "pipeline.toml"]);
    wait_for("the syslog listener", || std::net::TcpStream::connect(("127.0.0.1", tcp)).is_ok());
    // TCP: a connection per framing, the messages split across writes, mid-frame
    for bytes in framed() {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", tcp)).unwrap();
        for piece in bytes.chunks(37) {
            stream.write_all(piece).unwrap();
            stream.flush().unwrap();
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }
    // UDP: one message per datagram
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for message in LINES.iter().copied().chain([MULTILINE]) {
        socket.send_to(message.as_bytes(), ("127.0.0.1", udp)).unwrap();
    }
    wait_written(admin, 8);
    let run = terminate(&mut child);
    run.assert_success();
    assert_eq!(run.summary().quarantined, 0, "{run}");
    check_archive(&t, 8);
}

#[test]
fn syslog_over_tls_needs_the_servers_certificate() {
    let t = TestDir::new();
    let (ca, _) = crate::http::certificates(&t);
    let (admin, tcp, udp) = (free_port(), free_port(), free_port());
    let dir = t.root().display().to_string();
    let tls = format!("tls_cert = \"{dir}/server.pem\"\ntls_key = \"{dir}/server.key\"\n");
    t.write("pipeline.toml", &pipeline(admin, tcp, udp, &tls));
    let mut child = spawn_sluice(t.root(), &["run", "pipeline.toml"]);
    wait_for("the syslog listener", || std::net::TcpStream::connect(("127.0.0.1", tcp)).is_ok());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        use rustls::pki_types::pem::PemObject;
        use tokio::io::AsyncWriteExt;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(rustls::pki_types::CertificateDer::from_pem_slice(ca.as_bytes()).unwrap()).unwrap();
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
        for bytes in framed() {
            let tcp = tokio::net::TcpStream::connect(("127.0.0.1", tcp)).await.unwrap();
            let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
            let mut stream = connector.connect(name, tcp).await.unwrap();
            stream.write_all(&bytes).await.unwrap();
            stream.shutdown().await.unwrap();
        }
    });
    // plain text to the TLS port is not taken as messages
    let mut plain = std::net::TcpStream::connect(("127.0.0.1", tcp)).unwrap();
    plain.write_all(LINES[0].as_bytes()).unwrap();
    plain.write_all(b"\n").unwrap();
    drop(plain);
    wait_written(admin, 4);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let run = terminate(&mut child);
    run.assert_success();
    check_archive(&t, 4);
}
