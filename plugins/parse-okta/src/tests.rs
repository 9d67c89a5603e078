use super::*;
use serde_json::json;
use sluice_plugin_sdk::fuzz;

const LOGIN: &str = r#"{"actor":{"id":"00u1a2b3c4XYZ","type":"User","alternateId":"dana@example.com","displayName":"Dana","detailEntry":null},"client":{"userAgent":{"rawUserAgent":"Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0","os":"Linux","browser":"FIREFOX"},"zone":"null","device":"Computer","id":null,"ipAddress":"198.51.100.23","geographicalContext":{"city":"Lyon","country":"France"}},"authenticationContext":{"authenticationProvider":null,"externalSessionId":"102abcDEFsession","interface":null},"displayMessage":"User login to Okta","eventType":"user.session.start","outcome":{"result":"SUCCESS","reason":null},"published":"2026-11-01T10:00:00.250Z","securityContext":{"asNumber":null,"isProxy":null},"severity":"INFO","debugContext":{"debugData":{"requestId":"XkcAsWb8WjwDP76xh","requestUri":"/api/v1/authn","threatSuspected":"false"}},"legacyEventType":"core.user_auth.login_success","transaction":{"type":"WEB","id":"XkcAsWb8WjwDP76xh","detail":{}},"uuid":"3aeede38-4f67-11ea-abd3-1f5d113f2546","version":"0","request":{"ipChain":[{"ip":"198.51.100.23","version":"V4","source":null}]},"target":null}"#;

/// 2026-11-01T10:00:00Z in microseconds.
const T0: i64 = 1_793_527_200_000_000;

fn parse(line: &str) -> Value {
    match ParseOkta.parse(line.as_bytes()) {
        Outcome::Keep(e) => Value::Object(e),
        other => panic!("expected Keep for {line}, got {other:?}"),
    }
}

fn error(line: &[u8]) -> String {
    match ParseOkta.parse(line) {
        Outcome::Error(r) => r,
        other => panic!("expected Error, got {other:?}"),
    }
}

#[test]
fn session_start_maps_every_column() {
    let e = parse(LOGIN);
    assert_eq!(
        e,
        json!({
            "time": T0 + 250_000,
            "metadata_product_name": "Okta",
            "metadata_uid": "3aeede38-4f67-11ea-abd3-1f5d113f2546",
            "api_operation": "user.session.start",
            "message": "User login to Okta",
            "actor_user_name": "dana@example.com",
            "actor_user_uid": "00u1a2b3c4XYZ",
            "actor_user_type": "User",
            "http_user_agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0",
            "actor_session_uid": "102abcDEFsession",
            "api_request_uid": "XkcAsWb8WjwDP76xh",
            "src_endpoint_ip": "198.51.100.23",
            "class_uid": 3002, "category_uid": 3, "activity_id": 1, "type_uid": 300201,
            "status_id": 1, "status_code": "SUCCESS", "severity_id": 1,
            "unmapped": {
                "actor": {"displayName": "Dana"},
                "client": {"userAgent": {"os": "Linux", "browser": "FIREFOX"}, "zone": "null", "device": "Computer", "geographicalContext": {"city": "Lyon", "country": "France"}},
                "severity": "INFO",
                "debugContext": {"debugData": {"requestUri": "/api/v1/authn", "threatSuspected": "false"}},
                "legacyEventType": "core.user_auth.login_success",
                "transaction": {"type": "WEB", "id": "XkcAsWb8WjwDP76xh"},
                "version": "0",
                "request": {"ipChain": [{"ip": "198.51.100.23", "version": "V4", "source": null}]}
            }
        })
    );
}

#[test]
fn event_types_map_to_classes() {
    let cases = [
        ("user.session.end", 3002, 2),
        ("user.authentication.sso", 3002, 1),
        ("user.lifecycle.create", 3001, 1),
        ("user.lifecycle.activate", 3001, 2),
        ("user.account.update_password", 3001, 3),
        ("user.account.reset_password", 3001, 4),
        ("user.lifecycle.deactivate", 3001, 5),
        ("user.lifecycle.delete", 3001, 6),
        ("group.user_membership.add", 6003, 1),
        ("application.lifecycle.update", 6003, 3),
        ("policy.evaluate_sign_on", 6003, 99),
    ];
    for (event_type, class_uid, activity) in cases {
        let e = parse(&LOGIN.replace("user.session.start", event_type));
        assert_eq!(
            (e["class_uid"].clone(), e["activity_id"].clone()),
            (json!(class_uid), json!(activity)),
            "{event_type}"
        );
        assert_eq!(e["type_uid"], class_uid * 100 + activity);
    }
}

#[test]
fn outcomes_and_targets() {
    let denied = LOGIN
        .replace(r#"{"result":"SUCCESS","reason":null}"#, r#"{"result":"DENY","reason":"Sign-on policy evaluation resulted in DENY"}"#)
        .replace("user.session.start", "policy.evaluate_sign_on")
        .replace(
            r#""target":null"#,
            r#""target":[{"id":"00p1","type":"PolicyEntity","alternateId":"unknown","displayName":"Default Policy"},{"id":"0pr1","type":"PolicyRule","alternateId":"00p1","displayName":"Default Rule"}]"#,
        );
    let e = parse(&denied);
    assert_eq!((e["status_id"].clone(), e["severity_id"].clone()), (json!(2), json!(3)));
    assert_eq!(e["status_code"], "DENY");
    assert_eq!(e["status_detail"], "Sign-on policy evaluation resulted in DENY");
    assert_eq!(
        e["resources"],
        json!([
            {"type": "PolicyEntity", "uid": "00p1", "name": "Default Policy"},
            {"type": "PolicyRule", "uid": "0pr1", "name": "00p1"}
        ])
    );
    for (result, status) in [("FAILURE", 2), ("ALLOW", 1), ("CHALLENGE", 99), ("SKIPPED", 99), ("UNKNOWN", 0)] {
        let e = parse(&LOGIN.replace(r#""result":"SUCCESS""#, &format!(r#""result":"{result}""#)));
        assert_eq!(e["status_id"], status, "{result}");
    }
}

#[test]
fn bad_records_name_the_problem() {
    let mut p = ParseOkta;
    assert_eq!(p.parse(b"   "), Outcome::Drop("blank line".into()));
    assert_eq!(error(b"{\"uuid\":\"\xf0\x28\x8c\x28\"}"), "record is not valid UTF-8 at byte 9");
    assert!(error(b"{\"uuid\":").starts_with("not valid JSON: "));
    assert_eq!(error(b"\"event\""), "expected a JSON object, got a string");
    assert_eq!(error(br#"{"uuid":"u"}"#), "not an Okta System Log event: no `eventType`");
    assert_eq!(error(br#"{"eventType":"user.session.start"}"#), "Okta event has no `published` time");
    assert_eq!(
        error(br#"{"eventType":"x","published":"Feb 14 2020"}"#),
        "field `published`: `Feb 14 2020` is not an RFC 3339 time"
    );
    let bad_actor = LOGIN.replace(r#""alternateId":"dana@example.com""#, r#""alternateId":42"#);
    assert_eq!(error(bad_actor.as_bytes()), "field `actor.alternateId`: expected a string, got a number");
    let bad_target = LOGIN.replace(r#""target":null"#, r#""target":{"id":"x"}"#);
    assert_eq!(error(bad_target.as_bytes()), "field `target`: expected an array, got an object");
}

#[test]
fn config_is_checked() {
    assert!(ParseOkta::init(json!({})).is_ok());
    assert!(ParseOkta::init(json!({"org": "x"})).unwrap_err().contains("unknown config key `org`"));
}

#[test]
fn random_bytes_mutations_and_truncations_never_panic() {
    let mut p = ParseOkta;
    let alphabet = b"{}[]\":,.0123456789 -_/eventTypepublishedactoroutcometargetnull\xff\xc3";
    fuzz::never_panics(&mut p, LOGIN.as_bytes(), alphabet, 17);
}
