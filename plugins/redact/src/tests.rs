use super::*;

const GH_TOKEN: &str = "ghp_u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8d";
/// The workload generator's JWT shape: a fixed header and two 43-character parts.
const GEN_JWT: &str =
    "eyJhbGciOiJIUzI1NiJ9.KLzdocJ2isAjIhKtJ0RlgLKOmxgJTeKdNnFRIBXuDL7.DxtpYlSXpfKtHF4vUCsMehGAkWvj7FAc9QeWJKY40uv";

fn run_with(config: Value, event: Value) -> Value {
    let mut plugin = Redact::init(config).expect("valid config");
    match plugin.process(event.as_object().cloned().expect("object")) {
        Outcome::Keep(e) => Value::Object(e),
        other => panic!("expected Keep, got {other:?}"),
    }
}

fn run(event: Value) -> Value {
    run_with(json!({}), event)
}

/// The `redactions` entries as (path, rule) pairs.
fn redactions(event: &Value) -> Vec<(String, String)> {
    let Some(list) = event.get("redactions") else {
        return Vec::new();
    };
    list.as_array()
        .expect("array")
        .iter()
        .map(|r| {
            assert_eq!(r["action"], "mask");
            assert_eq!(r.as_object().unwrap().len(), 3, "only path, rule, action: {r}");
            (r["path"].as_str().unwrap().to_string(), r["rule"].as_str().unwrap().to_string())
        })
        .collect()
}

/// Masks `text` in a `message` field; returns the new text and the rules hit.
fn message(text: &str) -> (String, Vec<String>) {
    let out = run(json!({"message": text}));
    let rules = redactions(&out).into_iter().map(|(_, rule)| rule).collect();
    (out["message"].as_str().unwrap().to_string(), rules)
}

fn assert_untouched(text: &str) {
    let (out, rules) = message(text);
    assert_eq!(out, text);
    assert!(rules.is_empty(), "{text:?} hit {rules:?}");
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(p, r)| (p.to_string(), r.to_string())).collect()
}

// ---- generator shapes ----

#[test]
fn generator_shapes_leave_no_secret_behind() {
    let cases = [
        (json!({"request": {"headers": {"authorization": format!("Bearer {GEN_JWT}")}}}), GEN_JWT.to_string()),
        (json!({"details": "user updated payment card 4111111111111111 on file"}), "4111111111111111".into()),
        (json!({"request": {"body": {"username": "bob", "password": "Pa55-x"}}}), "Pa55-x".into()),
        (json!({"details": "export to s3 with aws_secret_access_key=AbC/dEf+ghIJ"}), "AbC/dEf+ghIJ".into()),
        (json!({"process_cmd_line": format!("/usr/bin/mysql -u root --password={GH_TOKEN}")}), GH_TOKEN.into()),
    ];
    for (event, secret) in cases {
        let out = run(event);
        let text = out.to_string();
        assert!(!text.contains(&secret), "{secret} left in {text}");
        assert!(!redactions(&out).is_empty(), "{text}");
    }
}

#[test]
fn generator_shapes_record_path_and_rule() {
    let out = run(json!({"request": {"headers": {"authorization": format!("Bearer {GEN_JWT}")}}}));
    assert_eq!(out["request"]["headers"]["authorization"], "[REDACTED:sensitive-key]");
    assert_eq!(redactions(&out), pairs(&[("request.headers.authorization", "sensitive-key")]));

    let out = run(json!({"details": "user updated payment card 4111111111111111 on file"}));
    assert_eq!(out["details"], "user updated payment card [REDACTED:payment-card] on file");

    let out = run(json!({"request": {"body": {"username": "bob", "password": "Pa55-x"}}}));
    assert_eq!(out["request"]["body"], json!({"username": "bob", "password": "[REDACTED:sensitive-key]"}));

    let out = run(json!({"details": "export to s3 with aws_secret_access_key=AbC/dEf+ghIJ"}));
    assert_eq!(out["details"], "export to s3 with aws_secret_access_key=[REDACTED:secret-assignment]");

    let out = run(json!({"process_cmd_line": format!("/usr/bin/mysql -u root --password={GH_TOKEN}")}));
    assert_eq!(out["process_cmd_line"], "/usr/bin/mysql -u root --password=[REDACTED:github-token]");
    assert_eq!(redactions(&out), pairs(&[("process_cmd_line", "github-token")]));
}

// ---- sensitive-key ----

#[test]
fn sensitive_keys_mask_whole_values_of_any_type() {
    let out = run(json!({"unmapped": {
        "Client-Secret": "abc", "X-Api-Key": "k1", "Set-Cookie": ["a=1", "b=2"], "session": "s",
        "credentials": {"accessKeyId": "ASIAXXXXXXXXXXXXXXXX", "sessionToken": "t"},
        "db_password": 12345, "auth": "u:p", "sessionToken": "tok", "requirePassword": true, "token": null
    }}));
    let u = &out["unmapped"];
    for key in
        ["Client-Secret", "X-Api-Key", "Set-Cookie", "session", "credentials", "db_password", "auth", "sessionToken"]
    {
        assert_eq!(u[key], "[REDACTED:sensitive-key]", "{key}");
    }
    assert_eq!((&u["requirePassword"], &u["token"]), (&json!(true), &Value::Null));
    assert_eq!(redactions(&out).len(), 8);
    assert!(redactions(&out).contains(&("unmapped.X-Api-Key".into(), "sensitive-key".into())));
}

#[test]
fn non_secret_keys_are_not_masked() {
    let event = json!({"unmapped": {
        "accessKeyId": "AKIAIOSFODNN7EXAMPLE", "aws_access_key_id": "AKIAIOSFODNN7EXAMPLE",
        "session_id": "abc", "sessionContext": {"mfaAuthenticated": "false"}, "author": "x",
        "passwordLastUsed": "2026-01-01", "secretName": "prod-db", "tokens": 5
    }});
    let out = run(event.clone());
    assert_eq!(out, event);
}

#[test]
fn access_key_id_key_is_kept_but_the_same_id_in_text_is_masked() {
    let out = run(json!({
        "actor_user_credential_uid": "AKIAIOSFODNN7EXAMPLE",
        "unmapped": {"userIdentity": {"accessKeyId": "AKIAIOSFODNN7EXAMPLE"}},
        "message": "call made with AKIAIOSFODNN7EXAMPLE"
    }));
    assert_eq!(out["actor_user_credential_uid"], "AKIAIOSFODNN7EXAMPLE");
    assert_eq!(out["unmapped"]["userIdentity"]["accessKeyId"], "AKIAIOSFODNN7EXAMPLE");
    assert_eq!(out["message"], "call made with [REDACTED:aws-access-key-id]");
    assert_eq!(redactions(&out), pairs(&[("message", "aws-access-key-id")]));
}

#[test]
fn preserved_keys_are_never_touched() {
    let event = json!({
        "time": 1, "trace_id": GEN_JWT, "metadata_uid": "4111111111111111",
        "api_request_uid": "password=x", "correlation_uid": GH_TOKEN
    });
    assert_eq!(run(event.clone()), event);
}

#[test]
fn array_paths_use_numeric_indexes_and_existing_redactions_are_kept() {
    let out = run(json!({
        "redactions": [{"path": "old", "rule": "x", "action": "mask"}],
        "unmapped": {"items": [{"name": "a"}, {"password": "p"}, "card 4111 1111 1111 1111"]}
    }));
    assert_eq!(out["unmapped"]["items"][1]["password"], "[REDACTED:sensitive-key]");
    assert_eq!(out["unmapped"]["items"][2], "card [REDACTED:payment-card]");
    assert_eq!(
        redactions(&out),
        pairs(&[("old", "x"), ("unmapped.items.1.password", "sensitive-key"), ("unmapped.items.2", "payment-card")])
    );
}

#[test]
fn redacting_twice_changes_nothing_more() {
    let once = run(json!({"password": "x", "message": format!("token {GH_TOKEN}")}));
    let twice = run(once.clone());
    assert_eq!(once, twice);
}

// ---- value rules: true and false positives ----

#[test]
fn password_flag() {
    assert_eq!(
        message("mysql -u root --password=Pa55-abc db").0,
        "mysql -u root --password=[REDACTED:password-flag] db"
    );
    assert_eq!(message("mysql -u root --password Pa55 db").0, "mysql -u root --password [REDACTED:password-flag] db");
    assert_eq!(message("mysql -u root -pS3cret db").0, "mysql -u root -p[REDACTED:password-flag] db");
    assert_eq!(message("env DB_PASSWORD=hunter2 ./run").0, "env DB_PASSWORD=[REDACTED:password-flag] ./run");
    assert_eq!(message("login?user=a&pwd=abc&x=1").0, "login?user=a&pwd=[REDACTED:password-flag]&x=1");
    assert_eq!(message(r#"body {"password": "x1y2"}"#).0, r#"body {"password": "[REDACTED:password-flag]"}"#);
    assert_eq!(message("passwd=abc").1, vec!["password-flag"]);
    assert_eq!(message("my_password: 'super$ecret'").0, "my_password: '[REDACTED:password-flag]'");
    assert_eq!(message("Server=db;Uid=sa;Pwd=myPassword;").0, "Server=db;Uid=sa;Pwd=[REDACTED:password-flag];");

    assert_untouched("Failed password for invalid user alice from 203.0.113.9 port 52211 ssh2");
    assert_untouched("carol : TTY=pts/3 ; PWD=/home/carol ; USER=root ; COMMAND=/bin/ls");
    assert_untouched("mysql -u root -P3306 -h db.internal");
    assert_untouched("mysqldump --password --host db");
    assert_untouched("password reset requested for bob");
    assert_untouched("password: incorrect");
}

#[test]
fn secret_assignment() {
    assert_eq!(message("X-Api-Key: abc123def").0, "X-Api-Key: [REDACTED:secret-assignment]");
    assert_eq!(message(r#"{"client_secret": "p8e-ibnd"}"#).0, r#"{"client_secret": "[REDACTED:secret-assignment]"}"#);
    assert_eq!(message("GET /cb?access_token=abc123&x=1").0, "GET /cb?access_token=[REDACTED:secret-assignment]&x=1");
    assert_eq!(message("PRIVATE_KEY = 'xyz'").0, "PRIVATE_KEY = '[REDACTED:secret-assignment]'");

    assert_untouched("arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf");
    assert_untouched("token_type=Bearer secret_name=prod-db api_key=null");
    assert_untouched("the secret to good logs is structure");
    assert_untouched("keyboard: us");
}

#[test]
fn bearer() {
    assert_eq!(message("Authorization: Bearer abcDEF123456").0, "Authorization: Bearer [REDACTED:bearer]");
    assert_eq!(message("authorization: basic dXNlcjpwYXNz").0, "authorization: basic [REDACTED:bearer]");
    assert_untouched("Basic authentication failed");
    assert_untouched("Bearer token expired");
}

#[test]
fn url_credentials() {
    assert_eq!(
        message("connect postgres://app:s3cr3t@db:5432/app").0,
        "connect postgres://app:[REDACTED:url-credentials]@db:5432/app"
    );
    assert_eq!(message("redis://:pw@cache:6379").0, "redis://:[REDACTED:url-credentials]@cache:6379");
    assert_untouched("see https://example.com:8443/path?q=a@b");
    assert_untouched("clone ssh://git@github.com/org/repo");
}

#[test]
fn aws_access_key_id() {
    assert_eq!(message("key AKIAIOSFODNN7EXAMPLE used").0, "key [REDACTED:aws-access-key-id] used");
    assert_eq!(message("ASIAY34FZKBOKMUTVV7A").1, vec!["aws-access-key-id"]);
    assert_untouched("arn:aws:iam::123456789012:user/alice");
    assert_untouched("AKIA is the prefix; AKIAIOSFODNN7EXAMPLE1 is too long; akiaiosfodnn7example is lower case");
}

#[test]
fn github_token() {
    assert_eq!(message(&format!("push with {GH_TOKEN}")).0, "push with [REDACTED:github-token]");
    let pat = "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";
    assert_eq!(message(pat).0, "[REDACTED:github-token]");
    assert_untouched("ghp_short and the ghost_town and gho_");
}

#[test]
fn jwt() {
    assert_eq!(message(&format!("token {GEN_JWT} ok")).0, "token [REDACTED:jwt] ok");
    assert_eq!(message("id eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJl").0, "id [REDACTED:jwt]");
    assert_eq!(
        message("ghs_12345_eyJhbGciOiJSUzI1NiJ9.eyJpYXQiOjE3NDU1Nn0.SflKxwRJSMeKKF2QT4fw").0,
        "ghs_12345_[REDACTED:jwt]"
    );
    assert_untouched("eyJhbGciOiJIUzI1NiJ9 without dots, and eyJ.eyJ.x too short");
}

#[test]
fn pem_private_key() {
    let text = "key:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\nabc\n-----END RSA PRIVATE KEY-----\nend";
    assert_eq!(message(text).0, "key:\n[REDACTED:pem-private-key]\nend");
    let truncated = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk";
    assert_eq!(message(truncated).0, "[REDACTED:pem-private-key]");
    assert_untouched("-----BEGIN PUBLIC KEY-----\nMFkwEwYH\n-----END PUBLIC KEY-----");
    assert_untouched("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----");
}

#[test]
fn payment_card() {
    assert_eq!(message("card 4111 1111 1111 1111 exp").0, "card [REDACTED:payment-card] exp");
    assert_eq!(message("mc 5500-0000-0000-0004").0, "mc [REDACTED:payment-card]");
    assert_eq!(message("amex 378282246310005").0, "amex [REDACTED:payment-card]");
    assert_eq!(message("visa 4111 1111 1111 1111 123").0, "visa [REDACTED:payment-card] 123");
    assert_untouched("call 555-123-4567 or 5551234567");
    assert_untouched("not luhn 4111111111111112");
    assert_untouched("id 123e4567-e89b-12d3-a456-426614174000");
    assert_untouched("sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
    assert_untouched("epoch micros 1700000000123456");
    assert!(rules::luhn_valid(&[4, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]));
}

#[test]
fn ordinary_prose_is_untouched() {
    let event = json!({
        "message": "User alice signed in from 10.0.0.1 at 2026-11-01T00:00:03Z; 3 files changed.",
        "unmapped": {"path": "/var/log/secure", "uid": 1000, "ok": true, "tags": ["a", "b"]}
    });
    let out = run(event.clone());
    assert_eq!(out, event);
    assert!(out.get("redactions").is_none());
}

// ---- config ----

#[test]
fn extra_keys_and_disable() {
    let out = run_with(json!({"extra_keys": ["Employee-SSN"]}), json!({"employee_ssn": "123-45-6789"}));
    assert_eq!(out["employee_ssn"], "[REDACTED:sensitive-key]");

    let out = run_with(
        json!({"disable": ["sensitive-key", "payment-card"]}),
        json!({"password": "x", "message": "4111111111111111 AKIAIOSFODNN7EXAMPLE"}),
    );
    assert_eq!(out["password"], "x");
    assert_eq!(out["message"], "4111111111111111 [REDACTED:aws-access-key-id]");
}

#[test]
fn bad_config_is_rejected() {
    assert!(Redact::init(json!({"extra": []})).err().unwrap().contains("`extra`"));
    assert!(Redact::init(json!({"disable": ["nope"]})).err().unwrap().contains("`nope`"));
    assert!(Redact::init(json!({"extra_keys": "password"})).err().unwrap().contains("`extra_keys`"));
}

// ---- high-entropy-token ----

#[test]
fn high_entropy_tokens_in_free_text_are_masked() {
    for secret in
        ["Pa55-15hfFEE1K90an4", "BrFHC/GHRgRbv0I1kksh8AXIbEYtne+yiPz9pHzr", "JUIaNaMqDXDYLrAAGFaJBfGzaDSpVHqrgmmgUcOJ"]
    {
        let (out, rules) = message(&format!("user updated payment card {secret} on file"));
        assert_eq!(out, "user updated payment card [REDACTED:high-entropy-token] on file");
        assert_eq!(rules, ["high-entropy-token"]);
    }
}

#[test]
fn high_entropy_rule_leaves_ids_paths_and_fingerprints_alone() {
    assert_untouched(
        "Accepted publickey for bob from 10.1.2.3 port 2222 ssh2: ED25519 SHA256:Xk3Lm9Qw2Er5Ty7Ui8Op0As4Df6Gh1Jk2Lz3Xc5Vb7",
    );
    assert_untouched("request 9f1c2d3e-4b5a-6978-8a9b-0c1d2e3f4a5b by arn:aws:iam::123456789012:user/Alice");
    assert_untouched("kubectl/v1.31.2 (linux/amd64) kubernetes/5864a46 aws-cli/2.17.0 Python/3.11.9 Linux/6.1");
    assert_untouched("GET /api/v1/namespaces/Payments2/secrets/Secret-123 HTTP/1.1");
    assert_untouched("principal AIDACKCEVSQ6C2EXAMPLE ClusterRoleBinding");
    assert_untouched("at org.springframework.AbstractSingletonProxyFactoryBean.getObjectTypeFromFactory");
}

#[test]
fn nested_free_text_random_case_token() {
    let out = run(
        json!({"unmapped": {"details": "user updated payment card JUIaNaMqDXDYLrAAGFaJBfGzaDSpVHqrgmmgUcOJ on file"}}),
    );
    assert!(!out.to_string().contains("JUIaNaMq"), "{out}");
}

#[test]
fn uuids_with_luhn_valid_digit_groups_are_not_cards() {
    // seen in generated CloudTrail/k8s ids: the last groups are all digits and pass Luhn
    assert_untouched("32bf2d9f-b874-0020-3273-450951899674");
    assert_untouched("request 080557b0-d06c-605e-3613-852694425478 failed");
    // a card standing alone in text is still a card
    let (out, rules) = message("card 4111-1111-1111-1111 on file");
    assert_eq!((out.as_str(), rules), ("card [REDACTED:payment-card] on file", vec!["payment-card".to_string()]));
}

#[test]
fn generated_names_in_identity_fields_are_evidence_not_secrets() {
    let role = "MordorNginxStack-BankingWAFRole-9S3E0UAE1MM0";
    let out = run(json!({
        "actor_user_name": role,
        "unmapped": {"userIdentity": {"sessionContext": {"sessionIssuer": {"userName": role, "arn": format!("arn:aws:iam::1:role/{role}")}}}}
    }));
    assert!(redactions(&out).is_empty(), "{out}");
    // the same token in free text is still masked
    let (text, rules) = message(&format!("assumed {role} today"));
    assert_eq!(rules, ["high-entropy-token"], "{text}");
    // and specific formats are masked even under a name-like key
    let out = run(json!({"token_name": GH_TOKEN}));
    assert!(!out.to_string().contains(GH_TOKEN), "{out}");
}
