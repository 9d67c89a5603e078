use super::*;
use serde_json::json;
use sluice_plugin_sdk::fuzz;

const GET_OBJECT: &str = r#"{"eventVersion":"1.08","userIdentity":{"type":"IAMUser","principalId":"AIDA2EXAMPLEUSER01","arn":"arn:aws:iam::111122223333:user/ops/alice","accountId":"111122223333","accessKeyId":"AKIAEXAMPLEKEY00001","userName":"alice"},"eventTime":"2026-11-01T10:00:00Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","awsRegion":"eu-west-1","sourceIPAddress":"203.0.113.10","userAgent":"aws-cli/2.15.0","requestParameters":{"bucketName":"reports","key":"q3.csv"},"responseElements":null,"requestID":"RQ7EXAMPLE","eventID":"0b5a1c1e-1111-4e4e-9999-000000000001","readOnly":true,"resources":[{"type":"AWS::S3::Object","ARN":"arn:aws:s3:::reports/q3.csv"},{"accountId":"111122223333","type":"AWS::S3::Bucket","ARN":"arn:aws:s3:::reports"}],"eventType":"AwsApiCall","recipientAccountId":"111122223333"}"#;

/// 2026-11-01T10:00:00Z in microseconds.
const T0: i64 = 1_793_527_200_000_000;

fn parse(line: &str) -> Value {
    match ParseCloudTrail.parse(line.as_bytes()) {
        Outcome::Text(e) => serde_json::from_str(&e).unwrap(),
        other => panic!("expected Text for {line}, got {other:?}"),
    }
}

fn error(line: &[u8]) -> String {
    match ParseCloudTrail.parse(line) {
        Outcome::Error(r) => r,
        other => panic!("expected Error, got {other:?}"),
    }
}

#[test]
fn iam_user_get_object() {
    let e = parse(GET_OBJECT);
    assert_eq!(
        e,
        json!({
            "time": T0,
            "metadata_product_name": "CloudTrail",
            "cloud_provider": "AWS",
            "api_service_name": "s3.amazonaws.com",
            "api_operation": "GetObject",
            "metadata_uid": "0b5a1c1e-1111-4e4e-9999-000000000001",
            "api_request_uid": "RQ7EXAMPLE",
            "http_user_agent": "aws-cli/2.15.0",
            "cloud_region": "eu-west-1",
            "src_endpoint_ip": "203.0.113.10",
            "actor_user_name": "alice",
            "actor_user_uid": "AIDA2EXAMPLEUSER01",
            "actor_user_type": "IAMUser",
            "actor_user_credential_uid": "AKIAEXAMPLEKEY00001",
            "cloud_account_uid": "111122223333",
            "resources": [
                {"type": "AWS::S3::Object", "uid": "arn:aws:s3:::reports/q3.csv", "name": "q3.csv"},
                {"type": "AWS::S3::Bucket", "uid": "arn:aws:s3:::reports", "name": "reports"}
            ],
            "class_uid": 6003, "category_uid": 6, "activity_id": 2, "type_uid": 600302,
            "status_id": 1, "severity_id": 1,
            "unmapped": {
                "eventVersion": "1.08",
                "userIdentity": {"type":"IAMUser","principalId":"AIDA2EXAMPLEUSER01","arn":"arn:aws:iam::111122223333:user/ops/alice","accountId":"111122223333","accessKeyId":"AKIAEXAMPLEKEY00001","userName":"alice"},
                "requestParameters": {"bucketName": "reports", "key": "q3.csv"},
                "readOnly": true,
                "eventType": "AwsApiCall"
            }
        })
    );
}

#[test]
fn console_login_success_and_failure() {
    let ok = r#"{"eventVersion":"1.05","userIdentity":{"type":"IAMUser","principalId":"AIDAEXAMPLE","arn":"arn:aws:iam::111122223333:user/bob","accountId":"111122223333","userName":"bob"},"eventTime":"2026-11-01T10:00:00Z","eventSource":"signin.amazonaws.com","eventName":"ConsoleLogin","awsRegion":"us-east-1","sourceIPAddress":"198.51.100.1","userAgent":"Mozilla/5.0","requestParameters":null,"responseElements":{"ConsoleLogin":"Success"},"additionalEventData":{"MFAUsed":"Yes"},"eventID":"e-1"}"#;
    let e = parse(ok);
    assert_eq!(
        (e["class_uid"].clone(), e["activity_id"].clone(), e["type_uid"].clone()),
        (json!(3002), json!(1), json!(300201))
    );
    assert_eq!(e["category_uid"], 3);
    assert_eq!(e["status_id"], 1);
    assert_eq!(e["actor_user_name"], "bob");
    let failed = ok
        .replace(r#"{"ConsoleLogin":"Success"}"#, r#"{"ConsoleLogin":"Failure"}"#)
        .replace(r#""eventID""#, r#""errorMessage":"Failed authentication","eventID""#);
    let e = parse(&failed);
    assert_eq!(e["status_id"], 2);
    assert_eq!(e["severity_id"], 3);
    assert_eq!(e["status_detail"], "Failed authentication");
    assert!(e.get("status_code").is_none());
}

#[test]
fn assumed_role_uses_the_session_issuer() {
    let line = r#"{"eventVersion":"1.08","userIdentity":{"type":"AssumedRole","principalId":"AROAEXAMPLE:deploy-42","arn":"arn:aws:sts::111122223333:assumed-role/Deployer/deploy-42","accountId":"111122223333","accessKeyId":"ASIAEXAMPLE","sessionContext":{"sessionIssuer":{"type":"Role","principalId":"AROAEXAMPLE","arn":"arn:aws:iam::111122223333:role/Deployer","accountId":"111122223333","userName":"Deployer"},"attributes":{"creationDate":"2026-11-01T09:00:00Z","mfaAuthenticated":"false"}}},"eventTime":"2026-11-01T10:00:00Z","eventSource":"ec2.amazonaws.com","eventName":"TerminateInstances","awsRegion":"us-east-1","sourceIPAddress":"10.1.1.1","errorCode":"Client.UnauthorizedOperation","errorMessage":"You are not authorized to perform this operation.","eventID":"e-2"}"#;
    let e = parse(line);
    assert_eq!(e["actor_user_name"], "Deployer");
    assert_eq!(e["actor_session_uid"], "deploy-42");
    assert_eq!(e["actor_user_uid"], "AROAEXAMPLE:deploy-42");
    assert_eq!(e["actor_user_type"], "AssumedRole");
    assert_eq!(e["activity_id"], 4);
    assert_eq!((e["status_id"].clone(), e["status_code"].clone()), (json!(2), json!("Client.UnauthorizedOperation")));
    assert_eq!(e["severity_id"], 3);
    assert_eq!(e["status_detail"], "You are not authorized to perform this operation.");
    assert_eq!(e["cloud_account_uid"], "111122223333", "no recipientAccountId: the identity's account");

    // without a session issuer name, the role comes from the ARN
    let bare = line.replace(r#","userName":"Deployer""#, "");
    assert_eq!(parse(&bare)["actor_user_name"], "Deployer");
}

#[test]
fn other_identity_types() {
    let with = |identity: &str| {
        parse(&GET_OBJECT.replace(
            &GET_OBJECT[GET_OBJECT.find(r#""userIdentity""#).unwrap()..GET_OBJECT.find(r#","eventTime""#).unwrap()],
            &format!(r#""userIdentity":{identity}"#),
        ))
    };
    let service = with(r#"{"type":"AWSService","invokedBy":"ec2.amazonaws.com"}"#);
    assert_eq!(service["actor_user_name"], "ec2.amazonaws.com");
    assert_eq!(service["actor_invoked_by"], "ec2.amazonaws.com");
    let root = with(r#"{"type":"Root","principalId":"111122223333","arn":"arn:aws:iam::111122223333:root"}"#);
    assert_eq!(root["actor_user_name"], "root");
    let federated = with(
        r#"{"type":"FederatedUser","principalId":"111122223333:carol","arn":"arn:aws:sts::111122223333:federated-user/carol"}"#,
    );
    assert_eq!(federated["actor_user_name"], "carol");
    let account = with(r#"{"type":"AWSAccount","principalId":"AIDAX","accountId":"444455556666"}"#);
    assert_eq!(account["actor_user_name"], "444455556666");
    let center = with(
        r#"{"type":"IdentityCenterUser","accountId":"111122223333","onBehalfOf":{"userId":"9067-dave","identityStoreArn":"arn:aws:identitystore::111122223333:identitystore/d-1"},"credentialId":"cred-77"}"#,
    );
    assert_eq!(center["actor_user_name"], "9067-dave");
    assert_eq!(center["actor_session_uid"], "cred-77");
    let unknown = with(r#"{"type":"Unknown","userName":"erin"}"#);
    assert_eq!(unknown["actor_user_name"], "erin");
}

#[test]
fn service_source_address_goes_to_unmapped() {
    let line = GET_OBJECT.replace(r#""sourceIPAddress":"203.0.113.10""#, r#""sourceIPAddress":"ec2.amazonaws.com""#);
    let e = parse(&line);
    assert!(e.get("src_endpoint_ip").is_none());
    assert_eq!(e["unmapped"]["source"], "ec2.amazonaws.com");
    let v6 = GET_OBJECT.replace("203.0.113.10", "2001:db8::7");
    assert_eq!(parse(&v6)["src_endpoint_ip"], "2001:db8::7");
}

#[test]
fn verbs_map_to_activities() {
    let cases = [
        ("CreateUser", 1),
        ("RunInstances", 1),
        ("AttachRolePolicy", 1),
        ("DescribeInstances", 2),
        ("ListBuckets", 2),
        ("HeadObject", 2),
        ("PutBucketPolicy", 3),
        ("ModifyInstanceAttribute", 3),
        ("UpdateFunctionCode", 3),
        ("DeleteBucket", 4),
        ("DetachRolePolicy", 4),
        ("TerminateInstances", 4),
        ("AssumeRole", 99),
        ("Decrypt", 99),
    ];
    for (name, activity) in cases {
        assert_eq!(verb_activity(name), activity, "{name}");
    }
}

#[test]
fn records_file_becomes_many_events() {
    let body = format!(r#"{{"Records":[{GET_OBJECT},{}]}}"#, GET_OBJECT.replace("GetObject", "DeleteObject"));
    let Outcome::Texts(events) = ParseCloudTrail.parse(body.as_bytes()) else { panic!("expected Texts") };
    assert_eq!(events.len(), 2);
    let second: Value = serde_json::from_str(&events[1]).unwrap();
    assert_eq!(second["api_operation"], "DeleteObject");
    assert_eq!(second["activity_id"], 4);
    // each item's event is what the item alone gives
    assert_eq!(serde_json::from_str::<Value>(&events[0]).unwrap(), parse(GET_OBJECT));
    assert_eq!(ParseCloudTrail.parse(br#"{"Records":[]}"#), Outcome::Drop("empty Records list".into()));
    let bad = format!(r#"{{"Records":[{GET_OBJECT},{{"eventName":"X"}}]}}"#);
    assert_eq!(error(bad.as_bytes()), "Records[1]: CloudTrail record has no `eventSource`");
    assert_eq!(error(br#"{"Records":{}}"#), "field `Records`: expected an array, got an object");
}

#[test]
fn logstash_copies_fall_back_to_at_timestamp() {
    let line =
        GET_OBJECT.replace(r#""eventTime":"2026-11-01T10:00:00Z""#, r#""@timestamp":"2026-11-01T10:00:00.500Z""#);
    assert_eq!(parse(&line)["time"], T0 + 500_000);
}

#[test]
fn bad_records_name_the_problem() {
    let mut p = ParseCloudTrail;
    assert_eq!(p.parse(b"\t"), Outcome::Drop("blank line".into()));
    assert_eq!(error(b"{\"eventName\":\"\xe2\x28\"}"), "record is not valid UTF-8 at byte 14");
    assert!(error(b"{\"eventName\"").starts_with("not valid JSON: "));
    assert_eq!(error(b"42"), "expected a JSON object, got a number");
    assert_eq!(error(br#"{"a":1}"#), "not a CloudTrail record: no `eventName` or `eventSource` (nor a `Records` list)");
    let no_time = GET_OBJECT.replace("eventTime", "when");
    assert_eq!(error(no_time.as_bytes()), "CloudTrail record has no `eventTime`");
    let bad_time = GET_OBJECT.replace("2026-11-01T10:00:00Z", "01/11/2026");
    assert_eq!(error(bad_time.as_bytes()), "field `eventTime`: `01/11/2026` is not an RFC 3339 time");
    let bad_identity = GET_OBJECT.replace(r#""userName":"alice""#, r#""userName":["alice"]"#);
    assert_eq!(error(bad_identity.as_bytes()), "field `userIdentity.userName`: expected a string, got an array");
    let bad_resources = GET_OBJECT.replace(r#""resources":["#, r#""resources":["x","#);
    assert_eq!(error(bad_resources.as_bytes()), "field `resources.0`: expected an object, got a string");
}

#[test]
fn config_is_checked() {
    assert!(ParseCloudTrail::init(json!({})).is_ok());
    assert!(ParseCloudTrail::init(json!({"region": "x"})).unwrap_err().contains("unknown config key `region`"));
}

#[test]
fn random_bytes_mutations_and_truncations_never_panic() {
    let mut p = ParseCloudTrail;
    let alphabet = b"{}[]\":,.0123456789 -_/RecordseventNameSourceuserIdentityARN\xff\xc3";
    fuzz::never_panics(&mut p, GET_OBJECT.as_bytes(), alphabet, 11);
}
