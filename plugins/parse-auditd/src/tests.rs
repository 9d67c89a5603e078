use super::*;
use serde_json::json;
use sluice_plugin_sdk::fuzz::Lcg;

/// One `arp -a` execution: six records of serial 92733.
const EXEC: [&str; 6] = [
    r#"type=SYSCALL msg=audit(1604994496.155:92733): arch=c000003e syscall=59 success=yes exit=0 a0=558e251634a0 a1=558e25162a50 items=2 ppid=29002 pid=1631 auid=1000 uid=1000 gid=1000 euid=1000 tty=pts0 ses=104 comm="arp" exe="/usr/sbin/arp" key=(null)"#,
    r#"type=EXECVE msg=audit(1604994496.155:92733): argc=2 a0="arp" a1="-a""#,
    r#"type=CWD msg=audit(1604994496.155:92733): cwd="/home/dev""#,
    r#"type=PATH msg=audit(1604994496.155:92733): item=0 name="/usr/sbin/arp" inode=13181 dev=08:01 mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL"#,
    r#"type=PATH msg=audit(1604994496.155:92733): item=1 name="/lib64/ld-linux-x86-64.so.2" inode=29514 dev=08:01 mode=0100755 nametype=NORMAL"#,
    r#"type=PROCTITLE msg=audit(1604994496.155:92733): proctitle=617270002D61"#,
];

fn parser() -> ParseAuditd {
    ParseAuditd::init(json!({})).expect("valid config")
}

fn batch(lines: &[&str]) -> Vec<Outcome> {
    let records: Vec<Vec<u8>> = lines.iter().map(|l| l.as_bytes().to_vec()).collect();
    parser().parse_batch(&records)
}

fn keep(outcome: &Outcome) -> Value {
    match outcome {
        Outcome::Keep(e) => Value::Object(e.clone()),
        other => panic!("expected Keep, got {other:?}"),
    }
}

fn one(line: &str) -> Value {
    let out = batch(&[line]);
    keep(&out[0])
}

fn error(line: &[u8]) -> String {
    match parser().parse(line) {
        Outcome::Error(r) => r,
        other => panic!("expected Error, got {other:?}"),
    }
}

#[test]
fn records_of_one_serial_join_into_the_last() {
    let out = batch(&EXEC);
    assert_eq!(out.len(), 6);
    for o in &out[..5] {
        assert_eq!(o, &Outcome::Drop(JOINED.into()));
    }
    let e = keep(&out[5]);
    assert_eq!(e["time"], 1_604_994_496_155_000i64);
    assert_eq!(e["metadata_uid"], "1604994496.155:92733");
    assert_eq!(
        (e["class_uid"].clone(), e["activity_id"].clone(), e["type_uid"].clone()),
        (json!(1007), json!(1), json!(100701))
    );
    assert_eq!(e["category_uid"], 1);
    assert_eq!(e["process_name"], "/usr/sbin/arp");
    assert_eq!(e["process_pid"], 1631);
    assert_eq!(e["process_cmd_line"], "arp -a");
    assert_eq!(e["actor_user_uid"], "1000");
    assert_eq!(e["actor_session_uid"], "104");
    assert_eq!(e["file_path"], "/usr/sbin/arp");
    assert_eq!(e["status_id"], 1);
    assert_eq!(e["metadata_product_name"], "auditd");
    let records = e["unmapped"]["records"].as_array().unwrap();
    let types: Vec<&str> = records.iter().map(|r| r["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["SYSCALL", "EXECVE", "CWD", "PATH", "PATH", "PROCTITLE"]);
    assert_eq!(records[5]["proctitle"], "617270002D61", "raw values are kept raw");
    assert_eq!(records[0]["key"], "(null)");
}

#[test]
fn different_serials_and_interleaving() {
    let other = EXEC[0].replace(":92733", ":92734").replace("pid=1631", "pid=1632");
    // 92733's records around a record of 92734: still one event each
    let out = batch(&[EXEC[0], &other, EXEC[1], EXEC[5]]);
    assert_eq!(out[0], Outcome::Drop(JOINED.into()));
    assert_eq!(keep(&out[1])["process_pid"], 1632);
    assert_eq!(out[2], Outcome::Drop(JOINED.into()));
    assert_eq!(keep(&out[3])["process_cmd_line"], "arp -a");
    // the same serial on another node is another event
    let node_b = format!("node=b {}", EXEC[1]);
    let out = batch(&[EXEC[0], &node_b]);
    assert!(matches!(out[0], Outcome::Keep(_)) && matches!(out[1], Outcome::Keep(_)));
    assert_eq!(keep(&out[1])["device_hostname"], "b");
    // join = false: one event per record
    let mut p = ParseAuditd::init(json!({"join": false})).unwrap();
    let records: Vec<Vec<u8>> = EXEC.iter().map(|l| l.as_bytes().to_vec()).collect();
    assert!(p.parse_batch(&records).iter().all(|o| matches!(o, Outcome::Keep(_))));
}

#[test]
fn bad_lines_in_a_batch_keep_their_place() {
    let out = batch(&[EXEC[0], "type=UNKNOWN[1329] msg=g", "", EXEC[1]]);
    assert_eq!(out[0], Outcome::Drop(JOINED.into()));
    assert_eq!(
        out[1],
        Outcome::Error("auditd UNKNOWN[1329] record has no `msg=audit(SECONDS.MILLIS:SERIAL):` header".into())
    );
    assert_eq!(out[2], Outcome::Drop("blank line".into()));
    assert_eq!(keep(&out[3])["process_cmd_line"], "arp -a");
}

#[test]
fn hex_values_are_decoded() {
    let e = one(
        "type=SYSCALL msg=audit(1485893834.891:18877199): arch=c000003e syscall=44 success=no exit=-13 pid=1281 auid=4294967295 uid=0 ses=4294967295 comm=\"charon\" exe=2F7573722F6C6962657865632F6368617220736F6E",
    );
    assert_eq!(e["process_name"], "/usr/libexec/char son");
    assert_eq!(e["status_id"], 2);
    assert_eq!(e["actor_user_uid"], "0", "auid unset: the uid acts");
    assert!(e.get("actor_session_uid").is_none());
    assert_eq!(e["class_uid"], 0);
    let e = one("type=PROCTITLE msg=audit(1451781471.394:194440): proctitle=737368643A206275726E205B707269765D");
    assert_eq!(e["process_cmd_line"], "sshd: burn [priv]");
    let e = one("type=EXECVE msg=audit(1581371984.206:579393): argc=3 a0=6C73 a1=\"-l\" a2=2F746D702F6120622063");
    assert_eq!(e["process_cmd_line"], "ls -l /tmp/a b c");
    let e = one("type=EXECVE msg=audit(1581371984.206:579393): argc=1 a0=top");
    assert_eq!(e["process_cmd_line"], "top", "not hex: as written");
    let e = one(
        "type=USER_CMD msg=audit(1489519256.192:19600329): user pid=4151 uid=497 auid=700 ses=11988 msg='cwd=\"/\" cmd=6C73202D6C61 terminal=? res=success'",
    );
    assert_eq!((e["class_uid"].clone(), e["process_cmd_line"].clone()), (json!(1007), json!("ls -la")));
}

#[test]
fn user_login_is_authentication() {
    let e = one(
        "type=USER_LOGIN msg=audit(1481077043.193:421): pid=1298 uid=0 auid=1000 ses=1 subj=system_u:system_r:sshd_t:s0 msg='op=login id=1000 exe=\"/usr/sbin/sshd\" hostname=host.example.net addr=198.51.100.20 terminal=/dev/pts/0 res=success'",
    );
    assert_eq!(
        (e["class_uid"].clone(), e["activity_id"].clone(), e["type_uid"].clone()),
        (json!(3002), json!(1), json!(300201))
    );
    assert_eq!(e["category_uid"], 3);
    assert_eq!(e["src_endpoint_ip"], "198.51.100.20");
    assert_eq!(e["process_name"], "/usr/sbin/sshd");
    assert_eq!(e["status_id"], 1);
    assert_eq!(e["actor_user_uid"], "1000");
    assert_eq!(e["unmapped"]["user"], json!({"uid": "1000"}));
    assert_eq!(e["unmapped"]["records"][0]["op"], "login");
    let e = one(
        "type=USER_END msg=audit(1489519230.178:19600327): user pid=4121 uid=0 auid=700 ses=11988 msg='op=PAM:session_close acct=\"root\" exe=\"/usr/bin/sudo\" hostname=? addr=? terminal=? res=failed'",
    );
    assert_eq!(
        (e["activity_id"].clone(), e["status_id"].clone(), e["severity_id"].clone()),
        (json!(2), json!(2), json!(3))
    );
    assert_eq!(e["unmapped"]["user"], json!({"name": "root"}));
    assert!(e.get("src_endpoint_ip").is_none());
}

#[test]
fn account_changes_with_enriched_names() {
    let e = one(
        "type=ADD_USER msg=audit(1784285181.000:1200): pid=234567 uid=0 auid=1006 ses=1200 msg='op=adding user id=500 exe=\"/usr/sbin/useradd\" hostname=build-2 addr=? terminal=pts/1 res=success'\u{1d}UID=\"root\" AUID=\"ops_admin\" ID=\"new_user\"",
    );
    assert_eq!((e["class_uid"].clone(), e["activity_id"].clone()), (json!(3001), json!(1)));
    assert_eq!(e["actor_user_name"], "ops_admin");
    assert_eq!(e["actor_user_uid"], "1006");
    assert_eq!(e["unmapped"]["user"], json!({"name": "new_user", "uid": "500"}));
    for (kind, activity) in
        [("DEL_USER", 6), ("USER_CHAUTHTOK", 3), ("ACCT_LOCK", 5), ("ADD_GROUP", 1), ("GRP_MGMT", 99)]
    {
        let line = format!(
            "type={kind} msg=audit(1784285181.000:1201): pid=1 uid=0 auid=0 ses=3 msg='op=x acct=\"bob\" res=success'"
        );
        let e = one(&line);
        assert_eq!((e["class_uid"].clone(), e["activity_id"].clone()), (json!(3001), json!(activity)), "{kind}");
    }
}

#[test]
fn file_syscalls_are_file_activity() {
    // enriched format, no PATH record: the syscall name decides
    let e = one(
        "node=app-7 type=SYSCALL msg=audit(1723109482.048:4981103): arch=c000003e syscall=87 success=yes exit=0 items=2 ppid=560201 pid=560348 auid=1561577791 uid=2012 ses=126 comm=\"httpd\" exe=\"/opt/httpd/bin/httpd\" key=\"delete\" ARCH=x86_64 SYSCALL=unlink AUID=\"svc-web\" UID=\"web\"",
    );
    assert_eq!((e["class_uid"].clone(), e["activity_id"].clone()), (json!(1001), json!(4)));
    assert_eq!(e["device_hostname"], "app-7");
    assert_eq!(e["actor_user_name"], "svc-web");
    assert_eq!(e["time"], 1_723_109_482_048_000i64);
    // raw format: the x86_64 number, and the PATH that is not the parent
    let out = batch(&[
        "type=SYSCALL msg=audit(1700000000.001:9): arch=c000003e syscall=82 success=yes exit=0 pid=10 auid=1000 uid=1000 ses=2 exe=\"/usr/bin/mv\"",
        "type=PATH msg=audit(1700000000.001:9): item=0 name=\"/tmp/\" nametype=PARENT",
        "type=PATH msg=audit(1700000000.001:9): item=1 name=2F746D702F6120622E747874 nametype=DELETE",
    ]);
    let e = keep(&out[2]);
    assert_eq!((e["class_uid"].clone(), e["activity_id"].clone()), (json!(1001), json!(5)));
    assert_eq!(e["file_path"], "/tmp/a b.txt");
}

#[test]
fn login_records_with_old_and_new_values() {
    let e = one(
        "type=LOGIN msg=audit(1489636960.072:19623791): pid=28281 uid=0 old auid=4294967295 new auid=700 old ses=6793 new ses=12286",
    );
    assert_eq!(e["actor_user_uid"], "700");
    assert_eq!(e["actor_session_uid"], "12286");
    assert_eq!(e["unmapped"]["records"][0]["old-auid"], "4294967295");
}

#[test]
fn bad_records_name_the_problem() {
    let mut p = parser();
    assert_eq!(p.parse(b" "), Outcome::Drop("blank line".into()));
    assert_eq!(error(b"type=SYSCALL msg=audit(1.2:3): exe=\"\xff\""), "record is not valid UTF-8 at byte 36");
    assert_eq!(error(b"hello world"), "not an auditd record: expected `type=` at the start, got `hello world`");
    assert_eq!(error(b"node=x"), "auditd record has nothing after `node=`");
    assert_eq!(
        error(b"type=SYSCALL msg=audit(yesterday:1): pid=1"),
        "auditd SYSCALL record: `yesterday:1` is not SECONDS.MILLIS:SERIAL"
    );
    assert_eq!(error(b"type=SYSCALL pid=1"), "auditd SYSCALL record has no `msg=audit(SECONDS.MILLIS:SERIAL):` header");
}

#[test]
fn config_is_checked() {
    assert!(ParseAuditd::init(json!({"join": "yes"})).unwrap_err().contains("`join` must be true or false"));
    assert!(ParseAuditd::init(json!({"merge": true})).unwrap_err().contains("unknown config key `merge`"));
}

#[test]
fn random_bytes_mutations_and_truncations_never_panic() {
    let mut p = parser();
    let mut rng = Lcg(3);
    let alphabet = b"type=SYSCALLmsg=audit(0123456789.:):'\" \x1dnodeEXECVEa0a1[]PATHproctitleABCDEF\xff\xc3";
    let mut batch = Vec::new();
    for i in 0..2_000 {
        let bytes = rng.record(i, alphabet, 160);
        let _ = p.parse(&bytes);
        batch.push(bytes);
    }
    assert_eq!(p.parse_batch(&batch).len(), batch.len());
    let mut mutated = Vec::new();
    for i in 0..500 {
        mutated.push(rng.mutate(EXEC[i % EXEC.len()].as_bytes(), alphabet));
    }
    assert_eq!(p.parse_batch(&mutated).len(), mutated.len());
    for line in EXEC {
        let valid = line.as_bytes();
        let cuts: Vec<Vec<u8>> = (0..=valid.len()).map(|cut| valid[..cut].to_vec()).collect();
        assert_eq!(p.parse_batch(&cuts).len(), cuts.len());
    }
    sluice_plugin_sdk::fuzz::search_never_panics(&mut p, EXEC[0].as_bytes());
}
