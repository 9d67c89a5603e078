use super::*;
use serde_json::json;
use sluice_plugin_sdk::fuzz;

const API_REQUEST: &str = r#"{"@timestamp":1793527200123,"_document_id":"Qk9QbWFnaWNEb2NJZA","action":"api.request","actor":"octo-dev","actor_id":4242,"actor_ip":"198.51.100.77","actor_location":{"country_code":"DE"},"business":"acme-ent","created_at":1793527200123,"org":"acme","request_id":"C0DE:1234:ABCD","request_method":"DELETE","route":"/repos/{owner}/{repo}/hooks/{hook_id}","status_code":204,"token_scopes":"repo","user_agent":"octokit.js/3.1.2"}"#;

/// 2026-11-01T10:00:00Z in microseconds.
const T0: i64 = 1_793_527_200_000_000;

fn parse(line: &str) -> Value {
    match ParseGithubAudit.parse(line.as_bytes()) {
        Outcome::Keep(e) => Value::Object(e),
        other => panic!("expected Keep for {line}, got {other:?}"),
    }
}

fn error(line: &[u8]) -> String {
    match ParseGithubAudit.parse(line) {
        Outcome::Error(r) => r,
        other => panic!("expected Error, got {other:?}"),
    }
}

#[test]
fn api_request_maps_every_column() {
    let e = parse(API_REQUEST);
    assert_eq!(
        e,
        json!({
            "time": T0 + 123_000,
            "metadata_product_name": "GitHub",
            "api_operation": "api.request",
            "actor_user_name": "octo-dev",
            "actor_user_uid": "4242",
            "http_user_agent": "octokit.js/3.1.2",
            "metadata_uid": "Qk9QbWFnaWNEb2NJZA",
            "api_request_uid": "C0DE:1234:ABCD",
            "http_request_method": "DELETE",
            "src_endpoint_ip": "198.51.100.77",
            "tenant_uid": "acme",
            "http_request_url_path": "/repos/{owner}/{repo}/hooks/{hook_id}",
            "class_uid": 6003, "category_uid": 6, "activity_id": 4, "type_uid": 600304,
            "status_id": 1, "http_response_code": 204, "status_code": "204", "severity_id": 1,
            "unmapped": {
                "actor_location": {"country_code": "DE"},
                "business": "acme-ent",
                "created_at": 1793527200123u64,
                "token_scopes": "repo"
            }
        })
    );
    let forbidden = API_REQUEST.replace(r#""status_code":204"#, r#""status_code":403"#);
    let e = parse(&forbidden);
    assert_eq!((e["status_id"].clone(), e["severity_id"].clone()), (json!(2), json!(3)));
}

#[test]
fn entity_management_from_the_verb() {
    let cases = [
        (r#"{"actor":"admin","org":"acme","created_at":1583364382722,"action":"org.add_member","user":"newbie"}"#, 1),
        (
            r#"{"actor":"admin","org":"acme","created_at":1583364382722,"action":"org.invite_member","user":"newbie"}"#,
            1,
        ),
        (
            r#"{"actor":"admin","org":"acme","created_at":1583364382722,"action":"team.remove_member","data":{"team":"acme/ops"},"user":"old"}"#,
            4,
        ),
        (
            r#"{"actor":"admin","org":"acme","created_at":1583364382722,"action":"repo.destroy","repo":"acme/legacy"}"#,
            4,
        ),
        (r#"{"actor":"admin","org":"acme","created_at":1583364382722,"action":"repo.rename","repo":"acme/new"}"#, 3),
        (r#"{"actor":"admin","org":"acme","created_at":1583364382722,"action":"org.audit_log_export"}"#, 2),
        (r#"{"actor":"admin","org":"acme","created_at":1583364382722,"action":"repo.access","repo":"acme/x"}"#, 3),
        (
            r#"{"actor":"admin","org":"acme","created_at":1583364382722,"action":"repo.create","operation_type":"create","repo":"acme/x"}"#,
            1,
        ),
    ];
    for (line, activity) in cases {
        let e = parse(line);
        assert_eq!((e["class_uid"].clone(), e["activity_id"].clone()), (json!(3004), json!(activity)), "{line}");
        assert_eq!(e["category_uid"], 3);
        assert_eq!(e["status_id"], 1);
        assert_eq!(e["tenant_uid"], "acme");
    }
    let e = parse(cases[2].0);
    assert_eq!(e["resources"], json!([{"type": "team", "name": "acme/ops"}, {"type": "user", "name": "old"}]));
    assert_eq!(e["time"], 1_583_364_382_722_000i64);
}

#[test]
fn logins_git_and_rejections() {
    let login =
        parse(r#"{"action":"user.login","actor":"octo","created_at":"2026-11-01T10:00:00Z","actor_ip":"192.0.2.9"}"#);
    assert_eq!((login["class_uid"].clone(), login["activity_id"].clone()), (json!(3002), json!(1)));
    assert_eq!(login["time"], T0);
    let failed = parse(r#"{"action":"user.failed_login","actor":"octo","created_at":1793527200}"#);
    assert_eq!((failed["status_id"].clone(), failed["severity_id"].clone()), (json!(2), json!(3)));
    assert_eq!(failed["time"], T0, "a small number is seconds");
    let oauth = parse(r#"{"action":"oauth_authorization.destroy","actor":"octo","created_at":1793527200000}"#);
    assert_eq!((oauth["class_uid"].clone(), oauth["activity_id"].clone()), (json!(3002), json!(2)));
    let clone = parse(
        r#"{"action":"git.clone","actor":"ci","repository":"acme/app","transport_protocol_name":"http","@timestamp":1793527200000}"#,
    );
    assert_eq!((clone["class_uid"].clone(), clone["activity_id"].clone()), (json!(6003), json!(2)));
    assert_eq!(clone["resources"], json!([{"type": "repository", "name": "acme/app"}]));
    let rejected = parse(
        r#"{"actor":"dev","org":"acme","repo":"acme/app","created_at":1611616633246,"action":"protected_branch.rejected_ref_update"}"#,
    );
    assert_eq!((rejected["class_uid"].clone(), rejected["status_id"].clone()), (json!(3004), json!(2)));
}

#[test]
fn bad_records_name_the_problem() {
    let mut p = ParseGithubAudit;
    assert_eq!(p.parse(b"\r\n"), Outcome::Drop("blank line".into()));
    assert_eq!(error(b"{\"action\":\"repo.\xc0\"}"), "record is not valid UTF-8 at byte 16");
    assert!(error(b"{\"action\"").starts_with("not valid JSON: "));
    assert_eq!(error(b"true"), "expected a JSON object, got a boolean");
    assert_eq!(error(br#"{"actor":"x"}"#), "not a GitHub audit event: no `action`");
    assert_eq!(error(br#"{"action":7}"#), "field `action`: expected a string, got a number");
    assert_eq!(error(br#"{"action":"repo.create"}"#), "GitHub audit event has no `@timestamp` or `created_at`");
    assert_eq!(
        error(br#"{"action":"repo.create","created_at":"last week"}"#),
        "field `created_at`: \"last week\" is not epoch milliseconds or an RFC 3339 time"
    );
    assert_eq!(
        error(br#"{"action":"repo.create","created_at":1,"actor":{"login":"x"}}"#),
        "field `actor`: expected a string, got an object"
    );
    assert_eq!(
        error(br#"{"action":"api.request","created_at":1,"status_code":"OK"}"#),
        "field `status_code`: expected an integer, got \"OK\""
    );
}

#[test]
fn config_is_checked() {
    assert!(ParseGithubAudit::init(json!({})).is_ok());
    assert!(ParseGithubAudit::init(json!({"org": "x"})).unwrap_err().contains("unknown config key `org`"));
}

#[test]
fn random_bytes_mutations_and_truncations_never_panic() {
    let mut p = ParseGithubAudit;
    let alphabet = b"{}[]\":,.0123456789e+- _/actionactorcreated_at@timestampstatus_code\xff\xc3";
    fuzz::never_panics(&mut p, API_REQUEST.as_bytes(), alphabet, 13);
    // huge and odd numbers for the time
    for t in ["1e300", "-1e300", "18446744073709551615", "-0.0"] {
        let _ = p.parse(format!(r#"{{"action":"a.b","created_at":{t}}}"#).as_bytes());
    }
}
