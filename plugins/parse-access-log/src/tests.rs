use super::*;
use serde_json::json;
use sluice_plugin_sdk::fuzz;

const COMBINED: &str = r#"203.0.113.5 - carol [01/Nov/2026:11:00:00 +0100] "GET /reports/q3.pdf?download=1 HTTP/1.1" 200 52311 "https://intranet.example.com/" "Mozilla/5.0 (X11; Linux x86_64)""#;

/// 2026-11-01T10:00:00Z in microseconds.
const T0: i64 = 1_793_527_200_000_000;

fn parser() -> ParseAccessLog {
    ParseAccessLog::init(json!({})).expect("valid config")
}

fn parse(line: &str) -> Value {
    match parser().parse(line.as_bytes()) {
        Outcome::Keep(e) => Value::Object(e),
        other => panic!("expected Keep for {line}, got {other:?}"),
    }
}

fn error(line: &[u8]) -> String {
    match parser().parse(line) {
        Outcome::Error(r) => r,
        other => panic!("expected Error, got {other:?}"),
    }
}

#[test]
fn combined_line_maps_every_column() {
    assert_eq!(
        parse(COMBINED),
        json!({
            "time": T0,
            "metadata_product_name": "access log",
            "src_endpoint_ip": "203.0.113.5",
            "actor_user_name": "carol",
            "http_request_method": "GET",
            "http_request_url_path": "/reports/q3.pdf",
            "class_uid": 4002, "category_uid": 4, "activity_id": 3, "type_uid": 400203,
            "http_response_code": 200, "status_code": "200", "status_id": 1, "severity_id": 1,
            "traffic_bytes_out": 52311,
            "http_user_agent": "Mozilla/5.0 (X11; Linux x86_64)",
            "unmapped": {
                "url_query": "download=1",
                "http_version": "HTTP/1.1",
                "referrer": "https://intranet.example.com/"
            }
        })
    );
}

#[test]
fn common_format_and_methods() {
    let e = parse(r#"127.0.0.1 user-identity frank [10/Oct/2000:13:55:36 -0700] "POST /login HTTP/1.0" 401 -"#);
    assert_eq!(e["time"], 971_211_336_000_000i64);
    assert_eq!(e["actor_user_name"], "frank");
    assert_eq!(e["unmapped"]["ident"], "user-identity");
    assert_eq!(
        (e["activity_id"].clone(), e["status_id"].clone(), e["severity_id"].clone()),
        (json!(6), json!(2), json!(3))
    );
    assert!(e.get("traffic_bytes_out").is_none());
    assert!(e.get("http_user_agent").is_none());
    for (method, activity) in [
        ("CONNECT", 1),
        ("DELETE", 2),
        ("HEAD", 4),
        ("OPTIONS", 5),
        ("PUT", 7),
        ("TRACE", 8),
        ("PATCH", 99),
        ("PROPFIND", 99),
    ] {
        let e = parse(&COMBINED.replace("\"GET ", &format!("\"{method} ")));
        assert_eq!(e["activity_id"], activity, "{method}");
    }
}

#[test]
fn vhost_ports_ipv6_and_names() {
    let e = parse(
        r#"shop.example.com 192.0.2.10 - - [01/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 206 10 "-" "curl/8.5.0""#,
    );
    assert_eq!(e["unmapped"]["vhost"], "shop.example.com");
    assert_eq!(e["src_endpoint_ip"], "192.0.2.10");
    assert!(e["unmapped"].get("referrer").is_none());
    let e = parse(r#"www:443 10.0.0.9:51234 - - [01/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 10"#);
    assert_eq!((e["src_endpoint_ip"].clone(), e["src_endpoint_port"].clone()), (json!("10.0.0.9"), json!(51234)));
    let e = parse(r#"2001:db8::7 - - [01/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 10"#);
    assert_eq!(e["src_endpoint_ip"], "2001:db8::7");
    let e = parse(r#"[2001:db8::7]:8443 - - [01/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 10"#);
    assert_eq!((e["src_endpoint_ip"].clone(), e["src_endpoint_port"].clone()), (json!("2001:db8::7"), json!(8443)));
    let e = parse(r#"monitor - - [01/Nov/2026:10:00:00 +0000] "GET /status HTTP/1.1" 200 10"#);
    assert!(e.get("src_endpoint_ip").is_none());
    assert_eq!(e["unmapped"]["client_host"], "monitor");
}

#[test]
fn odd_requests_and_trailing_fields() {
    let e = parse(r#"::1 - - [26/Dec/2016:16:16:48 +0200] "-" 408 -"#);
    assert_eq!((e["activity_id"].clone(), e["type_uid"].clone()), (json!(0), json!(400200)));
    assert_eq!(e["unmapped"]["request"], "-");
    let e = parse(r#"127.0.1.1 - - [13/Nov/2023:10:44:31 +0000] "\x16\x03\x03\x01" 400 483 "-" "-""#);
    assert_eq!(e["unmapped"]["request"], r"\x16\x03\x03\x01");
    let e = parse(r#"127.0.0.1 - - [13/Nov/2023:10:44:01 +0000] "<SCRIPT>X</SCRIPT> / HTTP/1.1" 400 3386 "-" "-""#);
    assert!(e.get("http_request_method").is_none());
    let e = parse(
        r#"198.51.100.3 - - [29/May/2017:19:02:48 +0000] "GET /a%20b HTTP/1.1" 200 612 3413 "-" "Mozilla/5.0 \"quoted\"" X-Forwarded-For="10.0.0.2, 10.0.0.1" "extra""#,
    );
    assert_eq!(e["http_request_url_path"], "/a%20b");
    assert_eq!(e["http_user_agent"], "Mozilla/5.0 \"quoted\"");
    assert_eq!(e["unmapped"]["x_forwarded_for"], "10.0.0.2, 10.0.0.1");
    assert_eq!(e["unmapped"]["extra"], json!(["3413", "extra"]));
    let e = parse(
        r#"66.249.73.135 - - [20/May/2015:12:05:17 +0000] "GET /x HTTP/1.1" 200 235 "-" "Mozilla/5.0 (compatible; Googlebot/2.1"#,
    );
    assert_eq!(
        (e["http_user_agent"].clone(), e["unmapped"]["truncated"].clone()),
        (json!("Mozilla/5.0 (compatible; Googlebot/2.1"), json!(true))
    );
}

#[test]
fn bad_lines_name_the_problem() {
    let mut p = parser();
    assert_eq!(p.parse(b""), Outcome::Drop("blank line".into()));
    assert_eq!(error(b"1.2.3.4 - - [\xff"), "record is not valid UTF-8 at byte 13");
    assert_eq!(error(b"hello"), "not an access log line: no `[` timestamp after `client ident user`");
    assert_eq!(
        error(br#"a b [01/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 1"#),
        "expected `client ident user` (or `vhost client ident user`) before the timestamp, got 2 fields"
    );
    assert_eq!(error(br#"a - - [01/Nov/2026:10:00:00 +0000"#), "the `[` of the timestamp is not closed");
    assert_eq!(
        error(br#"a - - [2026-11-01T10:00:00Z] "GET / HTTP/1.1" 200 1"#),
        "timestamp `[2026-11-01T10:00:00Z]` is not dd/Mon/yyyy:HH:MM:SS +zzzz"
    );
    assert_eq!(
        error(br#"a - - [01/Nov/2026:10:00:00 +0000] GET / 200 1"#),
        "expected the quoted request line after the timestamp"
    );
    assert_eq!(error(br#"a - - [01/Nov/2026:10:00:00 +0000] "GET / 200 1"#), "the request line's quote is not closed");
    assert_eq!(error(br#"a - - [01/Nov/2026:10:00:00 +0000] "GET /" OK 1"#), "status `OK` is not a 3-digit code");
    assert_eq!(error(br#"a - - [01/Nov/2026:10:00:00 +0000] "GET /" 200 12k"#), "bytes `12k` is not a number or `-`");
}

#[test]
fn config_is_checked() {
    let mut p = ParseAccessLog::init(json!({"product": "nginx"})).unwrap();
    let Outcome::Keep(e) = p.parse(COMBINED.as_bytes()) else { panic!() };
    assert_eq!(e["metadata_product_name"], "nginx");
    assert!(ParseAccessLog::init(json!({"product": 1})).unwrap_err().contains("`product`"));
    assert!(ParseAccessLog::init(json!({"format": "combined"})).unwrap_err().contains("unknown config key `format`"));
}

#[test]
fn random_bytes_mutations_and_truncations_never_panic() {
    let mut p = parser();
    let alphabet = b"[]\"\\:/.-+ 0123456789GETPOSTHTTP/1.1NovOct=\xff\xc3";
    fuzz::never_panics(&mut p, COMBINED.as_bytes(), alphabet, 19);
}
