use super::*;
use std::sync::{LazyLock, Mutex};

const GH_TOKEN: &str = "ghp_u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8d";
/// The workload generator's JWT shape: a fixed header and two 43-character parts.
const GEN_JWT: &str =
    "eyJhbGciOiJIUzI1NiJ9.KLzdocJ2isAjIhKtJ0RlgLKOmxgJTeKdNnFRIBXuDL7.DxtpYlSXpfKtHF4vUCsMehGAkWvj7FAc9QeWJKY40uv";
const KEY_A: &str = "tenant-a-pseudonym-key-0001";
const KEY_B: &str = "tenant-b-pseudonym-key-0002";

/// The plugin with the default config, built once (compiling the rules is
/// the slow part of a test in a debug build).
static DEFAULT: LazyLock<Mutex<Redact>> = LazyLock::new(|| Mutex::new(Redact::init(json!({})).unwrap()));

/// The event that goes on: the new one, or the input when it is unchanged.
/// Every test's event also checks the scan: when it says "unchanged", the
/// walk must agree.
fn kept(plugin: &mut Redact, event: &Value) -> Value {
    let scanned = plugin.unchanged(&event.to_string());
    match plugin.process(event.as_object().cloned().expect("object")) {
        Outcome::Keep(e) => {
            assert!(!scanned, "the scan called an event unchanged that the walk changed: {event}");
            Value::Object(e)
        }
        Outcome::Unchanged => event.clone(),
        other => panic!("expected Keep, got {other:?}"),
    }
}

fn run_with(config: Value, event: Value) -> Value {
    let mut plugin = Redact::init(config).expect("valid config");
    kept(&mut plugin, &event)
}

fn run(event: Value) -> Value {
    kept(&mut DEFAULT.lock().unwrap_or_else(|e| e.into_inner()), &event)
}

/// The `redactions` entries as (path, rule, action) triples.
fn records(event: &Value) -> Vec<(String, String, String)> {
    let Some(list) = event.get("redactions") else {
        return Vec::new();
    };
    list.as_array()
        .expect("array")
        .iter()
        .map(|r| {
            assert_eq!(r.as_object().unwrap().len(), 3, "only path, rule, action: {r}");
            let s = |k: &str| r[k].as_str().unwrap().to_string();
            (s("path"), s("rule"), s("action"))
        })
        .collect()
}

/// The `redactions` entries as (path, rule) pairs, all masks.
fn redactions(event: &Value) -> Vec<(String, String)> {
    records(event)
        .into_iter()
        .map(|(path, rule, action)| {
            assert_eq!(action, "mask");
            (path, rule)
        })
        .collect()
}

/// Masks `text` in a `message` field; returns the new text and the rules hit.
fn message(text: &str) -> (String, Vec<String>) {
    let out = run(json!({"message": text}));
    let rules = redactions(&out).into_iter().map(|(_, rule)| rule).collect();
    (out["message"].as_str().unwrap().to_string(), rules)
}

fn masked(text: &str) -> String {
    message(text).0
}

fn assert_untouched(text: &str) {
    let (out, rules) = message(text);
    assert_eq!(out, text);
    assert!(rules.is_empty(), "{text:?} hit {rules:?}");
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(p, r)| (p.to_string(), r.to_string())).collect()
}

// ---- every rule: its examples and negatives --------------------------------

#[test]
fn every_rule_has_true_and_false_positive_examples_that_hold() {
    let plugin = DEFAULT.lock().unwrap_or_else(|e| e.into_inner());
    let rules = &plugin.rules;
    for (index, rule) in rules.rules.iter().enumerate() {
        assert!(!rule.examples.is_empty(), "rule `{}` has no example", rule.id);
        assert!(!rule.negatives.is_empty(), "rule `{}` has no negative", rule.id);
        for example in &rule.examples {
            assert!(rules.rule_finds(index, example), "rule `{}` misses its example {example:?}", rule.id);
        }
        for negative in &rule.negatives {
            assert!(!rules.rule_finds(index, negative), "rule `{}` fires on its negative {negative:?}", rule.id);
        }
    }
}

#[test]
fn default_rule_ids_are_unique_and_the_set_parses() {
    let file = rules::default_file();
    let mut ids: Vec<&str> = file.rules.iter().map(|r| r.id.as_str()).collect();
    let n = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), n);
    assert!(n >= 25, "{n} rules");
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
        "db_password": 12345, "auth": "u:p", "sessionToken": "tok", "requirePassword": true, "token": null
    }}));
    let u = &out["unmapped"];
    for key in ["Client-Secret", "X-Api-Key", "Set-Cookie", "session", "db_password", "auth", "sessionToken"] {
        assert_eq!(u[key], "[REDACTED:sensitive-key]", "{key}");
    }
    assert_eq!((&u["requirePassword"], &u["token"]), (&json!(true), &Value::Null));
    assert_eq!(redactions(&out).len(), 7);
    assert!(redactions(&out).contains(&("unmapped.X-Api-Key".into(), "sensitive-key".into())));
}

#[test]
fn objects_under_sensitive_keys_keep_their_ids_names_and_times() {
    // CloudTrail AssumeRole responseElements, a Kubernetes secret volume
    let out = run(json!({"unmapped": {
        "credentials": {"accessKeyId": "ASIA5FLZVX4OPVKKVBMX", "expiration": "Sep 14, 2020", "sessionToken": "IQoJb3JpZ2luX2VjEKn"},
        "volumes": [{"secret": {"defaultMode": 420, "secretName": "default-token-swtbm"}}],
        "token": {"access": "abc123", "refresh": "def456", "type": "Bearer"}
    }}));
    let u = &out["unmapped"];
    assert_eq!(u["credentials"]["accessKeyId"], "ASIA5FLZVX4OPVKKVBMX");
    assert_eq!(u["credentials"]["expiration"], "Sep 14, 2020");
    assert_eq!(u["credentials"]["sessionToken"], "[REDACTED:sensitive-key]");
    assert_eq!(u["volumes"][0]["secret"], json!({"defaultMode": 420, "secretName": "default-token-swtbm"}));
    assert_eq!(
        u["token"],
        json!({"access": "[REDACTED:sensitive-key]", "refresh": "[REDACTED:sensitive-key]", "type": "Bearer"})
    );
    assert_eq!(
        redactions(&out),
        pairs(&[
            ("unmapped.credentials.sessionToken", "sensitive-key"),
            ("unmapped.token.access", "sensitive-key"),
            ("unmapped.token.refresh", "sensitive-key"),
        ])
    );
}

#[test]
fn name_value_pairs_count_as_their_name() {
    let out = run(json!({"unmapped": {"env": [
        {"name": "DB_PASSWORD", "value": "hunter2x"},
        {"name": "LOG_LEVEL", "value": "debug"}
    ], "parameters": [{"ParameterKey": "MasterUserPassword", "ParameterValue": "Sup3rS3cret"}]}}));
    let u = &out["unmapped"];
    assert_eq!(u["env"][0], json!({"name": "DB_PASSWORD", "value": "[REDACTED:sensitive-key]"}));
    assert_eq!(u["env"][1], json!({"name": "LOG_LEVEL", "value": "debug"}));
    assert_eq!(u["parameters"][0]["ParameterValue"], "[REDACTED:sensitive-key]");
}

#[test]
fn weak_keys_mask_only_credential_like_values() {
    let out = run(json!({"unmapped": {
        "slackKey": "YXNkZmZmZmZm_HARDcoded", "objectKey": "uploads/2024/report.pdf", "sortKey": "a#1",
        "kmsKey": "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "key": "ConnectionString1", "publicKey": "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE"
    }}));
    assert_eq!(out["unmapped"]["slackKey"], "[REDACTED:sensitive-key]");
    assert_eq!(redactions(&out), pairs(&[("unmapped.slackKey", "sensitive-key")]));
}

#[test]
fn non_secret_keys_are_not_masked() {
    let event = json!({"unmapped": {
        "accessKeyId": "AKIAIOSFODNN7EXAMPLE", "aws_access_key_id": "AKIAIOSFODNN7EXAMPLE",
        "session_id": "abc", "sessionContext": {"mfaAuthenticated": "false"}, "author": "x",
        "passwordLastUsed": "2026-01-01", "secretName": "prod-db", "tokens": 5, "passenger": "ok1",
        "hashed_token": "E8Fzcgs3TQXqhrKKC/qNR+2XZnaK3ykQBSAt1kPMiJs=", "clientToken": "c9b1-4d2e"
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
        "time": 1, "trace_id": GEN_JWT, "metadata_uid": "4111111111111111", "seq": 3, "class_uid": 3002,
        "api_request_uid": "password=x", "correlation_uid": GH_TOKEN, "span_id": "AKIAIOSFODNN7EXAMPLE",
        "unmapped": {"time": "password=x"}
    });
    assert_eq!(run(event.clone()), event);
    let out = run_with(json!({"preserve": ["ticket"]}), json!({"ticket": GH_TOKEN}));
    assert_eq!(out["ticket"], GH_TOKEN);
}

#[test]
fn every_string_is_covered_typed_columns_unmapped_and_raw_data() {
    let out = run(json!({
        "status_detail": format!("login with {GH_TOKEN}"),
        "unmapped": {"a": {"b": [{"c": format!("token {GH_TOKEN}")}]}},
        "raw_data": format!("{{\"password\":\"hunter2x\",\"t\":\"{GH_TOKEN}\"}}")
    }));
    assert!(!out.to_string().contains(GH_TOKEN), "{out}");
    assert!(!out.to_string().contains("hunter2x"), "{out}");
    assert_eq!(
        redactions(&out),
        pairs(&[
            ("raw_data", "github-token"),
            ("raw_data", "secret-assignment"),
            ("status_detail", "github-token"),
            ("unmapped.a.b.0.c", "github-token"),
        ])
    );
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
    let event =
        json!({"password": "x", "message": format!("token {GH_TOKEN} mail bob@example.org card 4111111111111111")});
    let once = run(event);
    let twice = run(once.clone());
    assert_eq!(once, twice);
    let config = json!({"actions": {"email": "pseudonym"}, "pseudonym_key": KEY_A});
    let once = run_with(config.clone(), json!({"message": "mail bob@example.org"}));
    assert_eq!(run_with(config, once.clone()), once);
}

// ---- audit data that must stay ----

#[test]
fn audit_identifiers_are_not_masked() {
    for text in [
        "arn:aws:iam::123456789012:role/MordorNginxStack-BankingWAFRole-9S3E0UAE1MM0",
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf",
        "arn:aws:kms:us-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "request 9f1c2d3e-4b5a-6978-8a9b-0c1d2e3f4a5b failed",
        "request id 79104EXAMPLEB723 and 4442587FB7D0A2F9",
        "sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "commit 912ec803b2ce49e4a541068d495ab57000000000 merged",
        "image sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "traceparent 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "principal AIDACKCEVSQ6C2EXAMPLE ClusterRoleBinding",
        "GET /api/v1/namespaces/Payments2/secrets/Secret-123 HTTP/1.1",
        "kubectl/v1.31.2 (linux/amd64) kubernetes/5864a46 aws-cli/2.17.0 Python/3.11.9 Linux/6.1",
        "at org.springframework.AbstractSingletonProxyFactoryBean.getObjectTypeFromFactory",
        "ServerAddressByClientCIDRs: s.getServerAddressByClientCIDRs(req.Request)",
        "PolicyName: SandboxConfigurationS3BucketAccessPolicy",
        "User alice signed in from 10.0.0.1 at 2026-11-01T00:00:03Z; 3 files changed.",
        "Accepted publickey for bob from 10.1.2.3 port 2222 ssh2: ED25519 SHA256:Xk3Lm9Qw2Er5Ty7Ui8Op0As4Df6Gh1Jk2Lz3Xc5Vb7",
        "carol : TTY=pts/3 ; PWD=/home/carol ; USER=root ; COMMAND=/bin/ls",
        "pam_unix(sshd:session): session opened for user root by (uid=0)",
        "example-bucket.s3.amazonaws.com/171ea24dd241f8a2178b0374-username-Reponame-3-0",
    ] {
        assert_untouched(text);
    }
    // the same in structured fields
    let event = json!({"unmapped": {
        "requestID": "79104EXAMPLEB723", "eventID": "9f1c2d3e-4b5a-6978-8a9b-0c1d2e3f4a5b",
        "roleArn": "arn:aws:iam::1:role/MordorNginxStack-BankingWAFRole-9S3E0UAE1MM0",
        "x-amz-id-2": "kYiD7zKnS/MdFmNlhWneMJr7EOTZev+JvUOTM34Ho5YVRcTX4gg/C8hhd9hjHV65aB1Zw6GNB9U=",
        "digest": "sha256:Uuag1LuByRx9e6j5Onimru9pO4ZVKnJ2Qz7C1NPcfTWA",
        "principalEmail": "alice@example.com", "userName": "MordorNginxStack-BankingWAFRole-9S3E0UAE1MM0"
    }, "actor_user_name": "alice@example.com", "src_endpoint_ip": "203.0.113.9"});
    assert_eq!(run(event.clone()), event);
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

// ---- value rules: true and false positives ----

#[test]
fn password_flag() {
    assert_eq!(masked("mysql -u root --password=Pa55-abc db"), "mysql -u root --password=[REDACTED:password-flag] db");
    assert_eq!(masked("mysql -u root --password Pa55 db"), "mysql -u root --password [REDACTED:password-flag] db");
    assert_eq!(masked("mysql -u root -pS3cret db"), "mysql -u root -p[REDACTED:password-flag] db");
    assert_eq!(masked("sshpass -p 'Zx9!kq' ssh host"), "sshpass -p '[REDACTED:password-flag]' ssh host");
    assert_eq!(masked("curl -u admin:Zx9kq2w https://h"), "curl -u admin:[REDACTED:password-flag] https://h");
    assert_eq!(masked("vault login -vaultToken s.Z4bTMtngfLeQ18AqVoBBkUAOD1").matches("[REDACTED").count(), 1);
    assert_eq!(message("The password is 'Secret123'").1, ["password-flag"]);

    assert_untouched("Failed password for invalid user alice from 203.0.113.9 port 52211 ssh2");
    assert_untouched("mysql -u root -P3306 -h db.internal");
    assert_untouched("mysqldump --password --host db");
    assert_untouched("mysql --no-password db");
    assert_untouched("docker run -u 1000:1000 image");
    assert_untouched("psexec \\\\host -u User -p $Password -i");
}

#[test]
fn secret_assignment() {
    assert_eq!(masked("X-Api-Key: abc123def"), "X-Api-Key: [REDACTED:secret-assignment]");
    assert_eq!(masked("env DB_PASSWORD=hunter2 ./run"), "env DB_PASSWORD=[REDACTED:secret-assignment] ./run");
    assert_eq!(masked("login?user=a&pwd=abc&x=1"), "login?user=a&pwd=[REDACTED:secret-assignment]&x=1");
    assert_eq!(masked(r#"body {"password": "x1y2"}"#), r#"body {"password": "[REDACTED:secret-assignment]"}"#);
    assert_eq!(masked("my_password: 'super$ecret'"), "my_password: '[REDACTED:secret-assignment]'");
    assert_eq!(masked("Server=db;Uid=sa;Pwd=Zq7!vR2p;"), "Server=db;Uid=sa;Pwd=[REDACTED:secret-assignment];");
    assert_eq!(masked(r#"{"client_secret": "p8e-ibnd"}"#), r#"{"client_secret": "[REDACTED:secret-assignment]"}"#);
    assert_eq!(masked("GET /cb?access_token=abc123&x=1"), "GET /cb?access_token=[REDACTED:secret-assignment]&x=1");
    assert_eq!(masked("PRIVATE_KEY = 'xyz'"), "PRIVATE_KEY = '[REDACTED:secret-assignment]'");
    assert_eq!(masked(":password => '4ian1234',"), ":password => '[REDACTED:secret-assignment]',");
    assert_eq!(masked("<password>hardcodEd</password>"), "<password>[REDACTED:secret-assignment]</password>");
    assert_eq!(
        masked(r#"<add key="FromEmailPassword" value="Prestigitariu$"/>"#),
        r#"<add key="FromEmailPassword" value="[REDACTED:secret-assignment]"/>"#
    );
    assert_eq!(
        masked("--parameters ParameterKey=DBPassword,ParameterValue=hunter2x"),
        "--parameters ParameterKey=DBPassword,ParameterValue=[REDACTED:secret-assignment]"
    );
    assert_eq!(
        masked("os.getenv('JINA_KEY', 'jina_c1758c6f49e14ced')"),
        "os.getenv('JINA_KEY', '[REDACTED:secret-assignment]')"
    );

    assert_untouched("token_type=Bearer secret_name=prod-db api_key=null");
    assert_untouched("the secret to good logs is structure");
    assert_untouched("keyboard: us");
    assert_untouched("password: incorrect");
    assert_untouched("DB_PASSWORD=${DB_PASSWORD} API_KEY=<your-api-key> secret: '{{ vault_secret }}'");
    assert_untouched("password = getPassword(user) and pwd = (char *) p");
    assert_untouched("put '/forgot-password' => \"cms/sites/passwords#update\"");
    assert_untouched(r#"{"key": "ConnectionString1", "value": "x"}"#);
}

#[test]
fn bearer() {
    assert_eq!(masked("Authorization: Bearer abcDEF123456"), "Authorization: Bearer [REDACTED:bearer]");
    assert_eq!(masked("authorization: basic dXNlcjpwYXNz"), "authorization: basic [REDACTED:bearer]");
    assert_untouched("Basic authentication failed");
    assert_untouched("Bearer token expired");
}

#[test]
fn url_credentials() {
    assert_eq!(
        masked("connect postgres://app:s3cr3t@db:5432/app"),
        "connect postgres://app:[REDACTED:url-credentials]@db:5432/app"
    );
    assert_eq!(masked("redis://:Pw0rd42@cache:6379"), "redis://:[REDACTED:url-credentials]@cache:6379");
    assert_untouched("see https://example.com:8443/path?q=a@b");
    assert_untouched("clone ssh://git@github.com/org/repo");
    assert_untouched("mongodb://username:password@localhost:27017/db and mysql://user:${PASSWORD}@h/db");
    assert_untouched("postgres://postgres:postgres@localhost:5432/db and https://user:abc@api.com");
}

#[test]
fn aws_access_key_id() {
    assert_eq!(masked("key AKIAIOSFODNN7EXAMPLE used"), "key [REDACTED:aws-access-key-id] used");
    assert_eq!(message("ASIAY34FZKBOKMUTVV7A").1, vec!["aws-access-key-id"]);
    assert_untouched("arn:aws:iam::123456789012:user/alice");
    assert_untouched("AKIA is the prefix; AKIAIOSFODNN7EXAMPLE1 is too long; akiaiosfodnn7example is lower case");
}

#[test]
fn vendor_tokens() {
    for (text, rule) in [
        ("push with ghp_u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8d", "github-token"),
        ("glpat-x7Kq2LmP9vRt4WzN8bYc", "gitlab-token"),
        ("token=xoxb-23984754863-2348975623112", "slack-token"),
        ("https://hooks.slack.com/services/T11111AA/BAAAA111A/qKirRWalryBGqKirRWalryBG", "webhook-url"),
        ("STRIPE_SECRET_KEY=sk_live_AAAAAAAAAAAAAAAAAAAAAAAA", "stripe-key"),
        ("key=AIzaSyB4sU8lU15bR_87qNb7eUVQN72_vv8mpbU", "google-api-key"),
        ("sk-sUeBP9asw6GiYHXqtg70T3BlbkFJJuLwJFco90bOpU0Ntest", "openai-key"),
        ("dapi7f3a9c01d2b84e65a0f1c3d5b7e92a4c", "vendor-token"),
    ] {
        assert_eq!(message(text).1, [rule], "{text}");
    }
    assert_eq!(
        masked("https://hooks.slack.com/services/T1/B2/q7Kx2LmP9vRt"),
        "https://hooks.slack.com/services/[REDACTED:webhook-url]"
    );
}

#[test]
fn jwt() {
    assert_eq!(masked(&format!("token {GEN_JWT} ok")), "token [REDACTED:jwt] ok");
    assert_eq!(masked("id eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJl"), "id [REDACTED:jwt]");
    assert_eq!(
        masked("ghs_12345_eyJhbGciOiJSUzI1NiJ9.eyJpYXQiOjE3NDU1Nn0.SflKxwRJSMeKKF2QT4fw"),
        "ghs_12345_[REDACTED:jwt]"
    );
    assert_untouched("eyJhbGciOiJIUzI1NiJ9 without dots, and eyJ.eyJ.x too short");
}

#[test]
fn pem_private_key() {
    let body = "MIIEowIBAAKCAQEAq1BpYvW3tV9sVZl8Xy5uAz0dVJx8lHk2R5eWb4yNQo8rT3mYv6F";
    let text = format!("key:\n-----BEGIN RSA PRIVATE KEY-----\n{body}\nabc\n-----END RSA PRIVATE KEY-----\nend");
    assert_eq!(masked(&text), "key:\n[REDACTED:pem-private-key]\nend");
    let escaped = format!(r#"{{"private_key": "-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n"}}"#);
    assert!(!masked(&escaped).contains(body));
    let truncated = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU";
    assert_eq!(masked(truncated), "[REDACTED:pem-private-key]");
    assert_untouched(
        "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEq1BpYvW3tV9sVZl8Xy5uAz\n-----END PUBLIC KEY-----",
    );
    assert_untouched(
        "-----BEGIN CERTIFICATE-----\nMIIBkTCCATegAwIBAgIUFakeCertBodyQ9ZlXy5uAz0dVJx8lHk2R5eWb4\n-----END CERTIFICATE-----",
    );
    assert_untouched(r#"{"private_key": "-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----\n"}"#);
}

#[test]
fn high_entropy_tokens_in_free_text_are_masked() {
    for secret in
        ["Pa55-15hfFEE1K90an4", "BrFHC/GHRgRbv0I1kksh8AXIbEYtne+yiPz9pHzr", "JUIaNaMqDXDYLrAAGFaJBfGzaDSpVHqrgmmgUcOJ"]
    {
        let (out, rules) = message(&format!("user updated payment card {secret} on file"));
        assert_eq!(out, "user updated payment card [REDACTED:high-entropy-token] on file");
        assert_eq!(rules, ["high-entropy-token"]);
    }
    // the value of an id or name key in text is an identifier
    assert_untouched("foreign_key_id = vh987tyw9ehy8ghis7vwyhiwbwitefy7w3ASDGYDGUASDG");
    assert_eq!(message("real_secret_which_isnt_an_i_d = vh987tyw9ehy8ghis7vwyhiwbwitefy7w3ASDGYDGUASDG").1.len(), 1);
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

// ---- personal data ----

#[test]
fn payment_card() {
    assert_eq!(masked("card 4111 1111 1111 1111 exp"), "card [REDACTED:payment-card] exp");
    assert_eq!(masked("mc 5500-0000-0000-0004"), "mc [REDACTED:payment-card]");
    assert_eq!(masked("amex 378282246310005"), "amex [REDACTED:payment-card]");
    assert_eq!(masked("visa 4111 1111 1111 1111 123"), "visa [REDACTED:payment-card] 123");
    assert_untouched("call 555-123-4567 or 5551234567");
    assert_untouched("not luhn 4111111111111112");
    assert_untouched("id 123e4567-e89b-12d3-a456-426614174000");
    assert_untouched("epoch micros 1700000000123456");
    // a card written as a JSON number
    let out = run(json!({"unmapped": {"pan": 4111111111111111u64, "count": 4111111111111112u64}}));
    assert_eq!(out["unmapped"]["pan"], "[REDACTED:payment-card]");
    assert_eq!(out["unmapped"]["count"], 4111111111111112u64);
}

#[test]
fn payment_card_can_keep_bin_and_last_four() {
    let config = json!({"rules": [{"id": "payment-card", "keep_start": 6, "keep_end": 4}]});
    let out = run_with(config, json!({"message": "card 4111 1111 1111 1111 on file"}));
    assert_eq!(out["message"], "card 4111 1[REDACTED:payment-card]1111 on file");
    let out = run_with(
        json!({"rules": [{"id": "payment-card", "keep_start": 6, "keep_end": 4}]}),
        json!({"message": "card 4111111111111111"}),
    );
    assert_eq!(out["message"], "card 411111[REDACTED:payment-card]1111");
}

#[test]
fn uuids_with_luhn_valid_digit_groups_are_not_cards() {
    assert_untouched("32bf2d9f-b874-0020-3273-450951899674");
    assert_untouched("request 080557b0-d06c-605e-3613-852694425478 failed");
    let (out, rules) = message("card 4111-1111-1111-1111 on file");
    assert_eq!((out.as_str(), rules), ("card [REDACTED:payment-card] on file", vec!["payment-card".to_string()]));
}

#[test]
fn iban() {
    assert_eq!(masked("pay to DE89 3704 0044 0532 0130 00 today"), "pay to [REDACTED:iban] today");
    assert_eq!(masked("IBAN: GB82WEST12345698765432."), "IBAN: [REDACTED:iban].");
    assert_untouched("GB82WEST12345698765433 fails mod-97");
    assert_untouched("build AB12CDEF34567890123 and order NL91 12");
}

#[test]
fn email_follows_the_field_policy() {
    let out = run(json!({
        "message": "password reset requested for bob.smith@example.org",
        "actor_user_name": "alice@example.com",
        "unmapped": {"actor": {"email": "alice@example.com"}, "recipient": "carol@example.com",
                     "note": "cc dave@example.net", "name": "projects/-/serviceAccounts/ci@p.iam.gserviceaccount.com"},
        "raw_data": r#"{"client_email":"svc@example.com","body":"mail erin@example.com"}"#
    }));
    assert_eq!(out["message"], "password reset requested for [REDACTED:email]");
    assert_eq!(out["actor_user_name"], "alice@example.com");
    assert_eq!(out["unmapped"]["actor"]["email"], "alice@example.com");
    assert_eq!(out["unmapped"]["recipient"], "carol@example.com");
    assert_eq!(out["unmapped"]["note"], "cc [REDACTED:email]");
    assert_eq!(out["raw_data"], r#"{"client_email":"svc@example.com","body":"mail [REDACTED:email]"}"#);
    // a pipeline can widen the policy
    let out = run_with(
        json!({"rules": [{"id": "email", "skip_keys": []}]}),
        json!({"unmapped": {"recipient": "carol@example.com"}}),
    );
    assert_eq!(out["unmapped"]["recipient"], "[REDACTED:email]");
}

#[test]
fn phone() {
    assert_eq!(masked("call me at +44 20 7946 0958 today"), "call me at [REDACTED:phone] today");
    assert_eq!(masked("mobile: (415) 555-2671"), "mobile: [REDACTED:phone]");
    assert_untouched("2026-11-01T01:00:00+01:00 version 1.2.3+45 count +12");
    assert_untouched("call 555-123-4567 or 5551234567");
    assert_eq!(run(json!({"unmapped": {"requestId": "+4420794609581"}}))["unmapped"]["requestId"], "+4420794609581");
}

// ---- actions ----

#[test]
fn pseudonyms_are_keyed_stable_and_per_tenant() {
    let config = json!({
        "actions": {"email": "pseudonym", "sensitive-key": "pseudonym"},
        "pseudonym_key": KEY_A, "pseudonym_keys": {"t-b": KEY_B}
    });
    let mut plugin = Redact::init(config).unwrap();
    let mut pseudo = |tenant: &str, text: &str| {
        let event = json!({"tenant_uid": tenant, "message": text, "password": "hunter2"});
        kept(&mut plugin, &event)
    };
    let a1 = pseudo("t-a", "mail bob@example.org");
    let a2 = pseudo("t-a", "again bob@example.org");
    let b = pseudo("t-b", "mail bob@example.org");
    let hex = hmac::pseudonym(KEY_A.as_bytes(), "bob@example.org");
    assert_eq!(a1["message"], format!("mail [PSEUDONYM:email:{hex}]"));
    assert_eq!(a2["message"], format!("again [PSEUDONYM:email:{hex}]"));
    assert_ne!(a1["message"], b["message"]);
    assert_eq!(a1["password"], format!("[PSEUDONYM:sensitive-key:{}]", hmac::pseudonym(KEY_A.as_bytes(), "hunter2")));
    assert_eq!(
        records(&a1),
        [
            ("message".to_string(), "email".to_string(), "pseudonym".to_string()),
            ("password".to_string(), "sensitive-key".to_string(), "pseudonym".to_string())
        ]
    );
    // never an unkeyed hash: the output depends on the key
    assert!(!a1.to_string().contains(&hmac::pseudonym(b"", "bob@example.org")));
}

#[test]
fn pseudonym_without_a_key_for_the_tenant_falls_back_to_a_mask() {
    let config = json!({"actions": {"email": "pseudonym"}, "pseudonym_keys": {"t-a": KEY_A}});
    let out = run_with(config, json!({"tenant_uid": "t-z", "message": "mail bob@example.org"}));
    assert_eq!(out["message"], "mail [REDACTED:email]");
    assert_eq!(records(&out), [("message".into(), "email".into(), "mask".into())]);
}

#[test]
fn drop_removes_the_field() {
    let config = json!({"actions": {"github-token": "drop", "sensitive-key": "drop"}});
    let out = run_with(
        config,
        json!({"message": format!("token {GH_TOKEN}"), "password": "x", "unmapped": {"list": ["ok", GH_TOKEN]}, "keep": "y"}),
    );
    assert_eq!(out.get("message"), None);
    assert_eq!(out.get("password"), None);
    assert_eq!(out["unmapped"]["list"], json!(["ok", null]));
    assert_eq!(out["keep"], "y");
    assert_eq!(
        records(&out),
        [
            ("message".to_string(), "github-token".to_string(), "drop".to_string()),
            ("password".to_string(), "sensitive-key".to_string(), "drop".to_string()),
            ("unmapped.list.1".to_string(), "github-token".to_string(), "drop".to_string()),
        ]
    );
}

// ---- config ----

#[test]
fn a_custom_rule_is_a_few_lines_and_runs_first() {
    let config = json!({"rules": [{
        "id": "acme-key", "pattern": "ACME-[0-9A-F]{32}", "keywords": ["ACME-"], "action": "mask",
        "examples": ["key ACME-7F3A9C01D2B84E65A0F1C3D5B7E92A4C"], "negatives": ["ACME-123"]
    }]});
    let out = run_with(config, json!({"message": "deploy with ACME-7F3A9C01D2B84E65A0F1C3D5B7E92A4C now"}));
    assert_eq!(out["message"], "deploy with [REDACTED:acme-key] now");
    assert_eq!(redactions(&out), pairs(&[("message", "acme-key")]));
}

#[test]
fn a_custom_rule_with_a_wrong_example_is_rejected_at_init() {
    let err =
        Redact::init(json!({"rules": [{"id": "acme-key", "pattern": "ACME-[0-9A-F]{32}", "examples": ["ACME-1"]}]}))
            .err()
            .unwrap();
    assert!(err.contains("`acme-key`") && err.contains("ACME-1"), "{err}");
    let err = Redact::init(json!({"rules": [{"id": "acme", "pattern": "A", "negatives": ["A"]}]})).err().unwrap();
    assert!(err.contains("negative"), "{err}");
}

#[test]
fn an_existing_rule_is_changed_field_by_field() {
    // narrow the email rule to messages only; the rest of it stays
    let config = json!({"rules": [{"id": "email", "only_keys": ["message"]}]});
    let out = run_with(config, json!({"message": "to bob@example.org", "status_detail": "to bob@example.org"}));
    assert_eq!(out["message"], "to [REDACTED:email]");
    assert_eq!(out["status_detail"], "to bob@example.org");
}

#[test]
fn extra_keys_disable_and_allow() {
    let out = run_with(json!({"extra_keys": ["Employee-SSN"]}), json!({"employee_ssn": "123-45-6789"}));
    assert_eq!(out["employee_ssn"], "[REDACTED:sensitive-key]");

    let out = run_with(
        json!({"disable": ["sensitive-key", "payment-card"]}),
        json!({"password": "x", "message": "4111111111111111 AKIAIOSFODNN7EXAMPLE"}),
    );
    assert_eq!(out["password"], "x");
    assert_eq!(out["message"], "4111111111111111 [REDACTED:aws-access-key-id]");

    let out = run_with(json!({"allow": ["^AKIAIOSFODNN7EXAMPLE$"]}), json!({"message": "AKIAIOSFODNN7EXAMPLE"}));
    assert_eq!(out["message"], "AKIAIOSFODNN7EXAMPLE");
}

#[test]
fn config_snippet_parses_with_defaults() {
    let config = RedactConfig::from_json(json!({})).unwrap();
    assert!(config.rules.is_empty() && config.disable.is_empty() && config.pseudonym_key.is_none());
    let config = RedactConfig::from_json(json!({
        "actions": {"email": "pseudonym"}, "pseudonym_key": KEY_A,
        "rules": [{"id": "acme-key", "pattern": "ACME-[0-9A-F]{32}", "keywords": ["ACME-"], "action": "mask"}]
    }))
    .unwrap();
    assert_eq!(config.actions["email"], Action::Pseudonym);
    assert_eq!(config.rules[0].keywords.as_deref(), Some(&["ACME-".to_string()][..]));
}

#[test]
fn bad_config_is_rejected_with_the_field_named() {
    let err = |config: Value| Redact::init(config).err().unwrap();
    assert!(err(json!({"extra": []})).contains("`extra`"));
    assert!(err(json!({"disable": ["nope"]})).contains("`nope`"));
    assert!(err(json!({"extra_keys": "password"})).contains("`extra_keys`"));
    assert!(err(json!({"actions": {"email": "hash"}})).contains("`actions`"));
    assert!(err(json!({"actions": {"nope": "mask"}})).contains("`nope`"));
    let e = err(json!({"rules": [{"id": "x", "patern": "y"}]}));
    assert!(e.contains("`rules` entry 1 (`x`)") && e.contains("`patern`"), "{e}");
    assert!(err(json!({"rules": [{"id": "x"}]})).contains("no `pattern`"));
    assert!(err(json!({"rules": [{"id": "x", "pattern": "("}]})).contains("rule `x`"));
    assert!(err(json!({"actions": {"email": "pseudonym"}})).contains("pseudonym_key"));
    assert!(err(json!({"pseudonym_key": "short"})).contains("16"));
    assert!(err(json!({"rules": [{"id": "sensitive-key", "pattern": "x"}]})).contains("extra_keys"));
    assert!(err(json!("nope")).contains("table"));
}

#[test]
fn short_random_tokens_that_pass_as_words_are_masked() {
    // pieces of 3+ letters with a vowel, by chance; and base64 whose parts
    // between slashes are all short
    for secret in ["Pa55-DneNubVTOijevv", "Pa55-1jwuuquslMJPwy", "73NkskoX/x2cmAVWq5/xZLkvmLWX47/Mwb4Tl8iY"] {
        let text = format!("user updated payment card {secret} on file");
        assert_eq!(masked(&text), "user updated payment card [REDACTED:high-entropy-token] on file", "{secret}");
    }
    // identifiers: a trailing digit, or words only
    assert_untouched("rotated ConnectionString1 for the ReportingDatabaseCluster");
}

#[test]
fn documentation_placeholders_of_alphabet_runs_are_not_random_tokens() {
    for placeholder in
        ["aBcDeFgHiJkLmNoPqRsT1234567890abcdefghijklmnopqrstuv", "xcfat_aAbBcCdDeEfFgGhHiIjJkKlLmMnNoOpPqQrRsStT"]
    {
        assert_untouched(&format!("example token {placeholder} in the docs"));
    }
    // a random token is masked, and a vendor format whatever its body
    assert_eq!(message("token x7Kq2LmP9vRt4WzN8bYcQ3 in a line").1, ["high-entropy-token"]);
    assert_eq!(message("glpat-aBcDeFgHiJkLmNoPqRsT").1, ["gitlab-token"]);
    assert!(!crate::checks::is_sequence("Xk3Lm9Qw2Er5Ty7Ui8Op0As4Df6Gh1J"));
    // 11 or more random characters glued to a run are not a placeholder
    assert!(!crate::checks::is_sequence("abcdefghijklmnopK8sQ2vXz9LmT4wRq"));
    assert!(!crate::checks::is_sequence("1234567890123456-Xq8WmZ3rVk7Y"));
    assert!(crate::checks::is_sequence("ABCDEF1234567890ABCDEF1234567890"));
}

#[test]
fn values_under_a_sensitive_key_in_multiline_text_are_masked() {
    // YAML list, nested mapping, JSON array and INI continuation in one text
    let text = "deploy:\n  passwords:\n    - Hardcoded1\n    - \"hardCoded2\"\n  password:\n    secure: thequickbrownfox\n  \
                user: alice\n{\n  \"db_password\": [\n    \"Zq7vR2pX\",\n  ],\n  \"host\": \"db1\"\n}\nAPI_TOKEN =\n    t0k3n-v4lue\n";
    let (out, rules) = message(text);
    for secret in ["Hardcoded1", "hardCoded2", "thequickbrownfox", "Zq7vR2pX", "t0k3n-v4lue"] {
        assert!(!out.contains(secret), "{secret} in {out}");
    }
    for kept in ["user: alice", "secure: ", "\"host\": \"db1\"", "deploy:"] {
        assert!(out.contains(kept), "{kept} lost from {out}");
    }
    assert_eq!(rules, ["secret-block"]);
    // a section's own keys decide: the login stays, the password goes
    let (out, _) = message("credentials:\n  login: admin\n  password: hardcodEd\n  extra:\n    - s3cr3tV4lue");
    assert_eq!(
        out,
        "credentials:\n  login: admin\n  password: [REDACTED:secret-assignment]\n  extra:\n    - [REDACTED:secret-block]"
    );
    // `=` inside a value is not a separator; a user's password is not metadata
    let (out, _) = message("passwords:\n  - Tr0ub4dor=3\n  - aHVudGVyMg==\ndb_passwords:\n  app_user: AppPw123");
    for secret in ["Tr0ub4dor", "aHVudGVyMg", "AppPw123"] {
        assert!(!out.contains(secret), "{secret} in {out}");
    }
    let out = run(json!({"db_passwords": {"app_user": "AppPw123"}}));
    assert_eq!(out["db_passwords"]["app_user"], "[REDACTED:sensitive-key]");
    // in a section, a credential-like value under any key goes, a name stays
    let (out, _) = message("credentials:\n  prod_db: hunter2xyz\n  login: admin");
    assert_eq!(out, "credentials:\n  prod_db: [REDACTED:secret-block]\n  login: admin");
    // the other keys of a `- password:` item are its siblings, not its values
    assert_untouched("users:\n- password:\n  name: alice\n  shell: bash");
    // placeholders, metadata and a block that ends at the next key stay
    assert_untouched("passwords:\n  - ${PASSWORD}\n  - \"{{ password }}\"\nname: web");
    assert_untouched("secret:\n  - name: deploy\n    kind: bot");
    assert_untouched("password:\nusername: bob");
}

#[test]
fn the_scan_passes_clean_events_and_sends_everything_it_is_unsure_of_to_the_walk() {
    let mut plugin = DEFAULT.lock().unwrap_or_else(|e| e.into_inner());
    let clean = [
        json!({"message": "session opened for user alice", "time": 1, "status_id": 1}),
        json!({"actor_user_name": "bob@example.com", "unmapped": {"a": [1, -2, 3.5, null, true, {"b": "c"}], "d": {}}}),
        json!({"password": null, "token": true, "secret": "[REDACTED:sensitive-key]"}),
        json!({"slackKey": "not a credential", "seq": 4111111111111111u64, "n": 12}),
        // a preserved key: nothing under it is looked at
        json!({"metadata_uid": {"password": "hunter2-hunter2"}}),
        json!({"env": [{"name": "HOME", "value": "/root"}], "tab\tkey": "a\"b\u{e9}"}),
    ];
    for event in &clean {
        assert!(plugin.unchanged(&event.to_string()), "{event}");
        assert_eq!(plugin.process(event.as_object().unwrap().clone()), Outcome::Unchanged, "{event}");
    }
    // a preserved key still names its pair's secret (found by a review: the scan had passed both)
    let mut preserving = Redact::init(json!({"preserve": ["key"], "extra_keys": ["name"]})).unwrap();
    for text in [
        r#"{"tags": [{"key": "DB_PASSWORD", "value": "hunter2"}]}"#,
        r#"{"e": {"name": "[REDACTED:x] password", "value": "hunter2"}}"#,
    ] {
        assert!(!preserving.unchanged(text), "{text}");
        let event: Value = serde_json::from_str(text).unwrap();
        assert_ne!(kept(&mut preserving, &event), event, "{text}");
    }
    for text in [
        // something to redact, at any depth
        format!(r#"{{"a": {{"b": ["x", "{GH_TOKEN}"]}}}}"#),
        r#"{"password": "hunter2"}"#.into(),
        r#"{"password": 5}"#.into(),
        r#"{"credentials": {"accessKeyId": "AKIA..."}}"#.into(),
        r#"{"slackKey": "Zq8vT3kLm9Xw2Rb7"}"#.into(),
        r#"{"unmapped": {"card": 4111111111111111}}"#.into(),
        r#"{"env": [{"name": "DB_PASSWORD", "value": "x"}]}"#.into(),
        // a pair's name is read whatever its key's own class: here a weak key, its value masked before
        r#"{"p": {"ParameterKey": "[REDACTED:x]DbPassword", "ParameterValue": "hunter2"}}"#.into(),
        // a key twice: the decoded form says less than the text
        r#"{"a": 1, "b": {"c": 1, "c": 2}}"#.into(),
        r#"{"ab": 1, "ab": 2}"#.into(),
        // not an event: the walk's error says so
        "[1]".into(),
        r#"{"a": 1} x"#.into(),
        r#"{"a": "#.into(),
    ] {
        assert!(!plugin.unchanged(&text), "{text}");
    }
}

#[test]
fn an_event_that_repeats_a_key_is_written_as_decoded_even_with_nothing_found() {
    // the text path answers for the text as it came: an `Unchanged` would
    // pass on the first `password` value, which the decoded event (last
    // value wins) never showed the rules
    let mut plugin = Redact::init(json!({})).unwrap();
    let text = r#"{"password":"hunter2","password":null,"message":"ok"}"#;
    assert!(!plugin.unchanged(text));
    match plugin.process_text(text) {
        Some(Outcome::Text(out)) => assert_eq!(out, r#"{"message":"ok","password":null}"#),
        other => panic!("expected the decoded event as text, got {other:?}"),
    }
    // no repeated key and nothing found: passed on as it came
    assert_eq!(plugin.process_text(r#"{"message":"ok"}"#), Some(Outcome::Unchanged));
}
