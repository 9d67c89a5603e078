use super::*;
use serde_json::json;

fn run(config: Value, event: Value) -> Value {
    let mut p = EnrichStatic::init(config).expect("valid config");
    match p.process(event.as_object().cloned().expect("object")) {
        Outcome::Keep(e) => Value::Object(e),
        Outcome::Unchanged => event,
        other => panic!("expected Keep or Unchanged, got {other:?}"),
    }
}

#[test]
fn set_overwrites_and_adds() {
    let out = run(
        json!({"set": {"cloud_provider": "aws", "tenant_uid": "t-1", "class_uid": 6003}}),
        json!({"cloud_provider": "gcp", "message": "hi"}),
    );
    assert_eq!(out, json!({"cloud_provider": "aws", "tenant_uid": "t-1", "class_uid": 6003, "message": "hi"}));
}

#[test]
fn defaults_fill_only_absent_or_null() {
    let out = run(
        json!({"defaults": {"cloud_region": "eu-west-1", "tenant_uid": "t-default", "severity_id": 1}}),
        json!({"cloud_region": "us-east-1", "tenant_uid": null}),
    );
    assert_eq!(out["cloud_region"], "us-east-1");
    assert_eq!(out["tenant_uid"], "t-default");
    assert_eq!(out["severity_id"], 1);
}

#[test]
fn rename_moves_top_level_fields_before_defaults_and_set() {
    let out = run(
        json!({
            "rename": {"user": "actor_user_name", "missing": "nowhere"},
            "defaults": {"actor_user_name": "nobody"},
            "set": {"metadata_product_name": "app"}
        }),
        json!({"user": "alice", "unmapped": {"user": "kept"}}),
    );
    assert_eq!(out, json!({"actor_user_name": "alice", "metadata_product_name": "app", "unmapped": {"user": "kept"}}));
}

#[test]
fn empty_config_passes_events_through() {
    let e = json!({"time": 5, "message": "x", "src_endpoint_ip": "10.0.0.1",
                   "unmapped": {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}});
    assert_eq!(run(json!({}), e.clone()), e);
}

#[test]
fn bad_config_is_rejected() {
    assert!(EnrichStatic::init(json!({"sett": {}})).err().unwrap().contains("`sett`"));
    assert!(EnrichStatic::init(json!({"set": 3})).err().unwrap().contains("`set`"));
    assert!(EnrichStatic::init(json!({"rename": {"a": 1}})).err().unwrap().contains("`a`"));
    let e = EnrichStatic::init(json!({"networks": {"cidrs": [{"cidr": "10.0.0.0/8", "zon": "x"}]}})).err().unwrap();
    assert!(e.contains("`networks`") && e.contains("`zon`"), "{e}");
    let e = EnrichStatic::init(json!({"correlation": {"group": []}})).err().unwrap();
    assert!(e.contains("`correlation`") && e.contains("`group`"), "{e}");
    assert!(EnrichStatic::init(json!({"lookups": {"users": {"rows": {}}}})).err().unwrap().contains("`key`"));
    assert!(EnrichStatic::init(json!("x")).err().unwrap().contains("table"));
}

#[test]
fn config_snippet_parses_with_defaults() {
    // the doc example, as the host hands it over (TOML → JSON)
    let config = EnrichConfig::from_json(json!({
        "defaults": {"tenant_uid": "acme"}, "correlation": {}, "classify": {},
        "networks": {"cidrs": [{"cidr": "10.0.0.0/8", "zone": "corp", "site": "fra1", "owner": "netops"}]},
        "lookups": {"users": {"key": "actor_user_name", "rows": {"alice": {"department": "payroll", "manager": "bob"}}}}
    }))
    .unwrap();
    let networks = config.networks.as_ref().unwrap();
    assert_eq!(networks.fields.keys().collect::<Vec<_>>(), ["dst_endpoint_ip", "src_endpoint_ip"]);
    assert!(config.classify.as_ref().unwrap().defaults);
    assert!(config.correlation.as_ref().unwrap().group_by.is_empty());
    assert!(!config.lookups["users"].overwrite && !config.lookups["users"].case_insensitive);
}

#[test]
fn everything_together_in_order() {
    let config = json!({
        "defaults": {"tenant_uid": "acme"},
        "lookups": {"users": {"key": "actor_user_name", "rows": {"alice": {"department": "payroll", "manager": "bob"}}}},
        "networks": {"cidrs": [{"cidr": "10.0.0.0/8", "zone": "corp", "site": "fra1", "owner": "netops"},
                               {"cidr": "0.0.0.0/0", "zone": "internet"}]},
        "correlation": {},
        "classify": {"rules": [{"tag": "outside-access-to-secrets", "severity_id": 4,
                                "when": [{"metadata_labels": "secret-access", "src_endpoint_zone": "internet"}]}]}
    });
    let event = json!({
        "time": 1, "class_uid": 6003, "api_operation": "GetSecretValue", "actor_user_name": "alice",
        "src_endpoint_ip": "203.0.113.9", "severity_id": 1,
        "unmapped": {"requestHeaders": {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}
    });
    let out = run(config, event);
    assert_eq!(out["tenant_uid"], "acme");
    assert_eq!(out["actor_user_department"], "payroll");
    assert_eq!(out["actor_user_manager"], "bob");
    assert_eq!(out["src_endpoint_zone"], "internet");
    assert!(out.get("src_endpoint_site").is_none());
    assert_eq!(out["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(out["span_id"], "00f067aa0ba902b7");
    assert_eq!(out["correlation_uid"], "4bf92f3577b34da6a3ce929d0e0e4736");
    // the built-in rule tags it; the custom rule, run after, sees that tag and the zone
    assert_eq!(out["metadata_labels"], json!(["secret-access", "outside-access-to-secrets"]));
    assert_eq!(out["severity_id"], 4);
}
