use super::*;
use serde_json::json;
use sluice_plugin_sdk::fuzz;

const CREATE_POD: &str = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"7e0cbccf-8d8a-4f5f-aca2-e27c14ab4d1a","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/default/pods","verb":"create","user":{"username":"alice@example.com","uid":"u-1","groups":["dev","system:authenticated"]},"sourceIPs":["10.2.3.4","10.0.0.1"],"userAgent":"kubectl/v1.29.1 (linux/amd64)","objectRef":{"resource":"pods","namespace":"default","name":"web-1","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":201},"requestReceivedTimestamp":"2026-11-01T10:00:00.250000Z","stageTimestamp":"2026-11-01T10:00:00.262000Z","annotations":{"authorization.k8s.io/decision":"allow","authorization.k8s.io/reason":"RBAC: allowed by RoleBinding \"dev\""}}"#;

/// 2026-11-01T10:00:00Z in microseconds.
const T0: i64 = 1_793_527_200_000_000;

fn parser() -> ParseK8sAudit {
    ParseK8sAudit::init(json!({})).expect("valid config")
}

fn keep(outcome: Outcome) -> Value {
    match outcome {
        Outcome::Text(e) => serde_json::from_str(&e).unwrap(),
        other => panic!("expected Text, got {other:?}"),
    }
}

fn error(outcome: Outcome) -> String {
    match outcome {
        Outcome::Error(r) => r,
        other => panic!("expected Error, got {other:?}"),
    }
}

#[test]
fn create_pod_maps_every_column() {
    let e = keep(parser().parse(CREATE_POD.as_bytes()));
    assert_eq!(
        e,
        json!({
            "time": T0 + 250_000,
            "class_uid": 6003, "category_uid": 6, "activity_id": 1, "type_uid": 600301,
            "metadata_product_name": "kubernetes",
            "metadata_uid": "7e0cbccf-8d8a-4f5f-aca2-e27c14ab4d1a",
            "api_request_uid": "7e0cbccf-8d8a-4f5f-aca2-e27c14ab4d1a",
            "api_operation": "create",
            "actor_user_name": "alice@example.com",
            "actor_user_uid": "u-1",
            "src_endpoint_ip": "10.2.3.4",
            "http_user_agent": "kubectl/v1.29.1 (linux/amd64)",
            "http_request_url_path": "/api/v1/namespaces/default/pods",
            "resources": [{"type": "pods", "name": "web-1", "namespace": "default"}],
            "status_id": 1, "severity_id": 1, "status_code": "201",
            "unmapped": {
                "user_groups": ["dev", "system:authenticated"],
                "source_ips": ["10.2.3.4", "10.0.0.1"],
                "object_api_version": "v1",
                "authorization_decision": "allow",
                "authorization_reason": "RBAC: allowed by RoleBinding \"dev\"",
                "level": "Metadata",
                "stage": "ResponseComplete",
                "stage_timestamp": "2026-11-01T10:00:00.262000Z"
            }
        })
    );
}

#[test]
fn impersonation_forbidden_and_subresource() {
    let line = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"a1","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/prod/pods/db-0/exec?command=sh","verb":"create","user":{"username":"ci-bot","uid":"u-9"},"impersonatedUser":{"username":"system:admin","groups":["system:masters"]},"sourceIPs":["192.0.2.7"],"objectRef":{"resource":"pods","subresource":"exec","namespace":"prod","name":"db-0"},"responseStatus":{"metadata":{},"status":"Failure","reason":"Forbidden","code":403},"requestReceivedTimestamp":"2026-11-01T10:00:00Z","annotations":{"authorization.k8s.io/decision":"forbid","authorization.k8s.io/reason":""}}"#;
    let e = keep(parser().parse(line.as_bytes()));
    assert_eq!(e["actor_user_name"], "system:admin");
    assert_eq!(e["actor_invoked_by"], "ci-bot");
    assert!(e.get("actor_user_uid").is_none(), "the invoker's uid is not the actor's");
    assert_eq!(e["unmapped"]["invoked_by_uid"], "u-9");
    assert_eq!(e["unmapped"]["impersonated_user_groups"], json!(["system:masters"]));
    assert_eq!(e["resources"], json!([{"type": "pods/exec", "name": "db-0", "namespace": "prod"}]));
    assert_eq!((e["status_id"].clone(), e["status_code"].clone()), (json!(2), json!("403")));
    assert_eq!(e["status_detail"], "Forbidden");
    assert_eq!(e["severity_id"], 3);
    assert_eq!(e["unmapped"]["authorization_decision"], "forbid");
    assert!(e["unmapped"].get("authorization_reason").is_none());
    assert_eq!(e["unmapped"]["response_status"], json!({"status": "Failure"}));
}

#[test]
fn verbs_map_to_activities() {
    for (verb, activity) in [
        ("get", 2),
        ("list", 2),
        ("watch", 2),
        ("update", 3),
        ("patch", 3),
        ("delete", 4),
        ("deletecollection", 4),
        ("proxy", 99),
    ] {
        let line = CREATE_POD.replace(r#""verb":"create""#, &format!(r#""verb":"{verb}""#));
        let e = keep(parser().parse(line.as_bytes()));
        assert_eq!(e["activity_id"], activity, "{verb}");
        assert_eq!(e["type_uid"], 600300 + activity, "{verb}");
    }
}

#[test]
fn other_stages_are_dropped_unless_configured() {
    let started = CREATE_POD.replace("ResponseComplete", "ResponseStarted");
    assert_eq!(parser().parse(started.as_bytes()), Outcome::Drop("stage ResponseStarted not kept".into()));
    let mut p = ParseK8sAudit::init(json!({"stages": ["ResponseStarted", "ResponseComplete"]})).unwrap();
    assert_eq!(keep(p.parse(started.as_bytes()))["unmapped"]["stage"], "ResponseStarted");
}

#[test]
fn time_falls_back_to_stage_timestamp_and_v1beta1_timestamp() {
    let no_received = CREATE_POD.replace("requestReceivedTimestamp", "x");
    assert_eq!(keep(parser().parse(no_received.as_bytes()))["time"], T0 + 262_000);
    let beta = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1beta1","timestamp":"2026-11-01T10:00:00Z","auditID":"b","stage":"ResponseComplete","verb":"get","user":{"username":"u"}}"#;
    let e = keep(parser().parse(beta.as_bytes()));
    assert_eq!(e["time"], T0);
    assert_eq!(e["status_id"], 0, "no responseStatus: outcome unknown");
}

#[test]
fn event_list_splits_and_filters_items() {
    let started = CREATE_POD.replace("ResponseComplete", "ResponseStarted");
    let get = CREATE_POD.replace(r#""verb":"create""#, r#""verb":"get""#);
    let body =
        format!(r#"{{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[{CREATE_POD},{started},{get}]}}"#);
    let Outcome::Texts(events) = parser().parse(body.as_bytes()) else { panic!("expected Texts") };
    let events: Vec<Value> = events.iter().map(|e| serde_json::from_str(e).unwrap()).collect();
    let verbs: Vec<&Value> = events.iter().map(|e| &e["api_operation"]).collect();
    assert_eq!(verbs, [&json!("create"), &json!("get")]);
    // each item's event is what the item alone gives
    assert_eq!(events[0], keep(parser().parse(CREATE_POD.as_bytes())));

    let only_started = format!(r#"{{"kind":"EventList","items":[{started},{started}]}}"#);
    assert_eq!(parser().parse(only_started.as_bytes()), Outcome::Drop("stage ResponseStarted not kept".into()));
    assert_eq!(parser().parse(br#"{"kind":"EventList","items":[]}"#), Outcome::Drop("EventList has no items".into()));
    let bad_item = format!(r#"{{"kind":"EventList","items":[{CREATE_POD},{{"kind":"Event","verb":"get"}}]}}"#);
    assert_eq!(
        error(parser().parse(bad_item.as_bytes())),
        "items[1]: no `requestReceivedTimestamp` or `stageTimestamp`"
    );
    assert_eq!(
        error(parser().parse(br#"{"kind":"EventList","items":{}}"#)),
        "field `items`: expected an array, got an object"
    );
}

#[test]
fn aks_envelope_with_string_log() {
    let inner = serde_json::to_string(CREATE_POD).unwrap();
    let line = format!(
        r#"{{"category":"kube-audit","operationName":"Microsoft.ContainerService/managedClusters/diagnosticLogs/Read","properties":{{"log":{inner},"pod":"kube-apiserver-1","stream":"stdout"}},"resourceId":"/SUBSCRIPTIONS/AE28-61B3/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.CONTAINERSERVICE/MANAGEDCLUSTERS/C1","time":"2026-11-01T10:00:00.3Z"}}"#
    );
    let e = keep(parser().parse(line.as_bytes()));
    assert_eq!(e["actor_user_name"], "alice@example.com");
    assert_eq!(e["time"], T0 + 250_000);
    assert_eq!(e["cloud_provider"], "Azure");
    assert_eq!(e["cloud_account_uid"], "ae28-61b3");
    assert_eq!(e["unmapped"]["aks"]["pod"], "kube-apiserver-1");
    assert_eq!(e["unmapped"]["aks"]["category"], "kube-audit");

    let object_log = format!(r#"{{"category":"kube-audit","properties":{{"log":{CREATE_POD}}}}}"#);
    assert_eq!(keep(parser().parse(object_log.as_bytes()))["api_operation"], "create");
    assert!(
        error(parser().parse(br#"{"properties":{"log":"{not json"}}"#))
            .starts_with("AKS `properties.log` is not valid JSON: ")
    );
}

#[test]
fn gke_envelope() {
    let line = r#"{"protoPayload":{"@type":"type.googleapis.com/google.cloud.audit.AuditLog","authenticationInfo":{"principalEmail":"dev@example.com"},"methodName":"io.k8s.core.v1.pods.delete","requestMetadata":{"callerIp":"198.51.100.4","callerSuppliedUserAgent":"kubectl"},"resourceName":"core/v1/namespaces/shop/pods/cart-7","serviceName":"k8s.io","status":{"code":7,"message":"forbidden"}},"insertId":"ab12","resource":{"type":"k8s_cluster","labels":{"cluster_name":"c1","location":"europe-west1","project_id":"shop-prod"}},"timestamp":"2026-11-01T10:00:00Z","labels":{"authorization.k8s.io/decision":"forbid"},"logName":"projects/shop-prod/logs/cloudaudit.googleapis.com%2Factivity"}"#;
    let e = keep(parser().parse(line.as_bytes()));
    assert_eq!(e["time"], T0);
    assert_eq!(e["api_operation"], "delete");
    assert_eq!(e["activity_id"], 4);
    assert_eq!(e["actor_user_name"], "dev@example.com");
    assert_eq!(e["src_endpoint_ip"], "198.51.100.4");
    assert_eq!(e["metadata_uid"], "ab12");
    assert_eq!(e["cloud_provider"], "GCP");
    assert_eq!(e["cloud_account_uid"], "shop-prod");
    assert_eq!(e["resources"], json!([{"type": "pods", "name": "cart-7", "namespace": "shop"}]));
    assert_eq!((e["status_id"].clone(), e["status_code"].clone()), (json!(2), json!("7")));
    assert_eq!(e["unmapped"]["authorization_decision"], "forbid");
    let other = line.replace(r#""serviceName":"k8s.io""#, r#""serviceName":"storage.googleapis.com""#);
    assert!(error(parser().parse(other.as_bytes())).contains("`storage.googleapis.com`, not `k8s.io`"));
}

#[test]
fn bad_records_name_the_problem() {
    let mut p = parser();
    assert_eq!(p.parse(b"  "), Outcome::Drop("blank line".into()));
    assert_eq!(error(p.parse(b"{\"kind\":\"Ev\xc3ent\"}")), "record is not valid UTF-8 at byte 11");
    assert!(error(p.parse(b"{\"kind\":")).starts_with("not valid JSON: "));
    assert_eq!(error(p.parse(b"[1]")), "expected a JSON object, got an array");
    assert_eq!(error(p.parse(br#"{"kind": 0}"#)), "field `kind`: expected a string, got a number");
    assert_eq!(error(p.parse(br#"{"kind":"Pod"}"#)), "`kind` is `Pod`, expected `Event` or `EventList`");
    assert!(error(p.parse(br#"{"a":1}"#)).starts_with("not a Kubernetes audit event"));
    let bad_time = CREATE_POD.replace("2026-11-01T10:00:00.250000Z", "yesterday");
    assert_eq!(
        error(p.parse(bad_time.as_bytes())),
        "field `requestReceivedTimestamp`: `yesterday` is not an RFC 3339 time"
    );
    let bad_user = CREATE_POD.replace(r#""user":{"username":"alice@example.com""#, r#""user":"alice","x":{"y":1"#);
    assert_eq!(error(p.parse(bad_user.as_bytes())), "field `user`: expected an object, got a string");
    let bad_code = CREATE_POD.replace(r#""code":201"#, r#""code":"201""#);
    assert_eq!(error(p.parse(bad_code.as_bytes())), "field `responseStatus.code`: expected an integer, got \"201\"");
    let other_api = CREATE_POD.replace("audit.k8s.io/v1", "v1");
    assert_eq!(error(p.parse(other_api.as_bytes())), "`apiVersion` is `v1`, expected audit.k8s.io/v1");
}

#[test]
fn config_is_checked() {
    assert!(ParseK8sAudit::init(json!({"stage": []})).unwrap_err().contains("unknown config key `stage`"));
    assert!(ParseK8sAudit::init(json!({"stages": "ResponseComplete"})).unwrap_err().contains("must be a list"));
    assert!(ParseK8sAudit::init(json!({"stages": ["Done"]})).unwrap_err().contains("\"Done\""));
    assert!(ParseK8sAudit::init(json!({"stages": []})).unwrap_err().contains("empty"));
}

#[test]
fn random_bytes_mutations_and_truncations_never_panic() {
    let mut p = parser();
    let alphabet = b"{}[]\":,.0123456789 -_\\/EventListkindsourceIPsuserobjectRefitems\xff\xc3";
    fuzz::never_panics(&mut p, CREATE_POD.as_bytes(), alphabet, 7);
}
