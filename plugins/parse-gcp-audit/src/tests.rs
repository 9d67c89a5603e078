use super::*;
use serde_json::json;
use sluice_plugin_sdk::fuzz;

const CREATE_KEY: &str = r#"{"protoPayload":{"@type":"type.googleapis.com/google.cloud.audit.AuditLog","status":{},"authenticationInfo":{"principalEmail":"ops@example.com","principalSubject":"user:ops@example.com"},"requestMetadata":{"callerIp":"203.0.113.40","callerSuppliedUserAgent":"google-cloud-sdk gcloud/460.0.0","requestAttributes":{"time":"2026-11-01T10:00:00.120Z"}},"serviceName":"iam.googleapis.com","methodName":"google.iam.admin.v1.CreateServiceAccountKey","authorizationInfo":[{"resource":"projects/-/serviceAccounts/1234","permission":"iam.serviceAccountKeys.create","granted":true}],"resourceName":"projects/-/serviceAccounts/1234","request":{"name":"projects/-/serviceAccounts/deploy@shop-prod.iam.gserviceaccount.com"}},"insertId":"1x2y3z","resource":{"type":"service_account","labels":{"email_id":"deploy@shop-prod.iam.gserviceaccount.com","project_id":"shop-prod","unique_id":"1234"}},"timestamp":"2026-11-01T10:00:00.123456789Z","severity":"NOTICE","logName":"projects/shop-prod/logs/cloudaudit.googleapis.com%2Factivity","receiveTimestamp":"2026-11-01T10:00:01Z"}"#;

/// 2026-11-01T10:00:00Z in microseconds.
const T0: i64 = 1_793_527_200_000_000;

fn parse(line: &str) -> Value {
    match ParseGcpAudit.parse(line.as_bytes()) {
        Outcome::Keep(e) => Value::Object(e),
        other => panic!("expected Keep for {line}, got {other:?}"),
    }
}

fn error(line: &[u8]) -> String {
    match ParseGcpAudit.parse(line) {
        Outcome::Error(r) => r,
        other => panic!("expected Error, got {other:?}"),
    }
}

#[test]
fn admin_activity_entry() {
    let e = parse(CREATE_KEY);
    assert_eq!(
        e,
        json!({
            "time": T0 + 123_456,
            "metadata_product_name": "Google Cloud Audit Logs",
            "cloud_provider": "GCP",
            "metadata_uid": "1x2y3z",
            "actor_user_name": "ops@example.com",
            "actor_user_uid": "user:ops@example.com",
            "http_user_agent": "google-cloud-sdk gcloud/460.0.0",
            "api_service_name": "iam.googleapis.com",
            "api_operation": "google.iam.admin.v1.CreateServiceAccountKey",
            "src_endpoint_ip": "203.0.113.40",
            "cloud_account_uid": "shop-prod",
            "resources": [{"type": "service_account", "name": "projects/-/serviceAccounts/1234"}],
            "class_uid": 6003, "category_uid": 6, "activity_id": 1, "type_uid": 600301,
            "status_id": 1, "severity_id": 1,
            "unmapped": {
                "protoPayload": {
                    "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
                    "requestMetadata": {"requestAttributes": {"time": "2026-11-01T10:00:00.120Z"}},
                    "authorizationInfo": [{"resource":"projects/-/serviceAccounts/1234","permission":"iam.serviceAccountKeys.create","granted":true}],
                    "request": {"name": "projects/-/serviceAccounts/deploy@shop-prod.iam.gserviceaccount.com"}
                },
                "resource": {"labels": {"email_id": "deploy@shop-prod.iam.gserviceaccount.com", "project_id": "shop-prod", "unique_id": "1234"}},
                "severity": "NOTICE",
                "logName": "projects/shop-prod/logs/cloudaudit.googleapis.com%2Factivity",
                "receiveTimestamp": "2026-11-01T10:00:01Z"
            }
        })
    );
}

#[test]
fn denied_gke_request() {
    let line = r#"{"protoPayload":{"@type":"type.googleapis.com/google.cloud.audit.AuditLog","authenticationInfo":{"principalEmail":"system:anonymous"},"methodName":"io.k8s.get","requestMetadata":{"callerIp":"192.0.2.1","callerSuppliedUserAgent":"Mozilla/5.0"},"resourceName":"HNAP1","serviceName":"k8s.io","status":{"code":7,"message":"PERMISSION_DENIED"}},"insertId":"k-1","resource":{"type":"k8s_cluster","labels":{"cluster_name":"c1","location":"us-central1-a","project_id":"lab"}},"timestamp":"2026-11-01T10:00:00Z"}"#;
    let e = parse(line);
    assert_eq!(e["activity_id"], 2);
    assert_eq!((e["status_id"].clone(), e["status_code"].clone()), (json!(2), json!("7")));
    assert_eq!(e["status_detail"], "PERMISSION_DENIED");
    assert_eq!(e["severity_id"], 3);
    assert_eq!(e["cloud_region"], "us-central1-a");
    assert_eq!(e["actor_user_name"], "system:anonymous");
}

#[test]
fn project_from_log_name_and_private_caller() {
    let line = CREATE_KEY
        .replace(r#""project_id":"shop-prod","#, "")
        .replace(r#""callerIp":"203.0.113.40""#, r#""callerIp":"gce-internal-ip""#);
    let e = parse(&line);
    assert_eq!(e["cloud_account_uid"], "shop-prod");
    assert!(e.get("src_endpoint_ip").is_none());
    assert_eq!(e["unmapped"]["caller_ip"], "gce-internal-ip");
}

#[test]
fn methods_map_to_activities() {
    let cases = [
        ("v1.compute.instances.insert", 1),
        ("storage.objects.get", 2),
        ("google.iam.admin.v1.ListServiceAccounts", 2),
        ("SetIamPolicy", 3),
        ("io.k8s.core.v1.pods.patch", 3),
        ("storage.buckets.delete", 4),
        ("GenerateAccessToken", 99),
    ];
    for (method, activity) in cases {
        assert_eq!(method_activity(method), activity, "{method}");
    }
}

#[test]
fn bad_records_name_the_problem() {
    let mut p = ParseGcpAudit;
    assert_eq!(p.parse(b""), Outcome::Drop("blank line".into()));
    assert_eq!(error(b"{\"insertId\":\"\x80\"}"), "record is not valid UTF-8 at byte 13");
    assert!(error(b"{\"protoPayload\":").starts_with("not valid JSON: "));
    assert_eq!(error(b"null"), "expected a JSON object, got null");
    assert_eq!(error(br#"{"insertId":"a"}"#), "not a Cloud Audit Logs entry: no `protoPayload`");
    assert_eq!(error(br#"{"textPayload":"hi"}"#), "a LogEntry without `protoPayload` is not an audit log entry");
    assert_eq!(error(br#"{"protoPayload":"x"}"#), "field `protoPayload`: expected an object, got a string");
    assert!(
        error(br#"{"protoPayload":{"@type":"type.googleapis.com/google.cloud.bigquery.logging.v1.AuditData"}}"#)
            .contains("expected type.googleapis.com/google.cloud.audit.AuditLog")
    );
    assert_eq!(error(br#"{"protoPayload":{}}"#), "LogEntry has no `timestamp`");
    let bad_code = CREATE_KEY.replace(r#""status":{}"#, r#""status":{"code":"7"}"#);
    assert_eq!(error(bad_code.as_bytes()), "field `protoPayload.status.code`: expected an integer, got \"7\"");
    let bad_time = CREATE_KEY.replace("2026-11-01T10:00:00.123456789Z", "now");
    assert_eq!(error(bad_time.as_bytes()), "field `timestamp`: `now` is not an RFC 3339 time");
}

#[test]
fn config_is_checked() {
    assert!(ParseGcpAudit::init(json!({})).is_ok());
    assert!(ParseGcpAudit::init(json!({"project": "x"})).unwrap_err().contains("unknown config key `project`"));
}

#[test]
fn random_bytes_mutations_and_truncations_never_panic() {
    let mut p = ParseGcpAudit;
    let alphabet = b"{}[]\":,.0123456789 -_/protoPayloadstatuscodetimestamp@type\xff\xc3";
    fuzz::never_panics(&mut p, CREATE_KEY.as_bytes(), alphabet, 5);
}
