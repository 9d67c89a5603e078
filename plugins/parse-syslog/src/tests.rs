use super::*;
use serde_json::json;
use sluice_plugin_sdk::fuzz::Lcg;

/// 2026-11-01T00:00:00Z in seconds.
const NOV_1_2026: i64 = 1_793_491_200;

fn parser() -> ParseSyslog {
    ParseSyslog::init(json!({"year": 2026})).expect("valid config")
}

fn parse(line: &str) -> Value {
    match parser().parse(line.as_bytes()) {
        Outcome::Keep(e) => Value::Object(e),
        other => panic!("expected Keep for {line:?}, got {other:?}"),
    }
}

fn error(line: &[u8]) -> String {
    match parser().parse(line) {
        Outcome::Error(r) => r,
        other => panic!("expected Error, got {other:?}"),
    }
}

#[test]
fn generator_failed_password_for_invalid_user() {
    let e = parse(
        "Nov  1 00:00:03 bastion-1 sshd[4242]: Failed password for invalid user alice from 203.0.113.9 port 52211 ssh2",
    );
    assert_eq!(
        e,
        json!({
            "time": (NOV_1_2026 + 3) * 1_000_000,
            "device_hostname": "bastion-1",
            "process_name": "sshd",
            "metadata_product_name": "sshd",
            "process_pid": 4242,
            "message": "Failed password for invalid user alice from 203.0.113.9 port 52211 ssh2",
            "class_uid": 3002, "category_uid": 3, "activity_id": 1, "type_uid": 300201,
            "status_id": 2, "status_detail": "Failed password", "severity_id": 1,
            "actor_user_name": "alice",
            "src_endpoint_ip": "203.0.113.9",
            "src_endpoint_port": 52211,
            "unmapped": {"auth_method": "password", "invalid_user": true}
        })
    );
}

#[test]
fn generator_accepted_publickey() {
    let e = parse(
        "Nov 11 13:05:00 db-01 sshd[77]: Accepted publickey for bob from 10.1.2.3 port 2222 ssh2: ED25519 SHA256:abcdef",
    );
    assert_eq!(e["time"], (NOV_1_2026 + 10 * 86_400 + 13 * 3600 + 5 * 60) * 1_000_000);
    assert_eq!(e["device_hostname"], "db-01");
    assert_eq!(e["process_pid"], 77);
    assert_eq!(e["type_uid"], 300201);
    assert_eq!(e["status_id"], 1);
    assert_eq!(e["status_detail"], "Accepted publickey");
    assert_eq!(e["actor_user_name"], "bob");
    assert_eq!(e["src_endpoint_ip"], "10.1.2.3");
    assert_eq!(e["src_endpoint_port"], 2222);
    assert_eq!(
        e["unmapped"],
        json!({"auth_method": "publickey", "key_type": "ED25519", "key_fingerprint": "SHA256:abcdef"})
    );
}

#[test]
fn generator_sudo_command() {
    let e = parse(
        "Nov  1 00:00:03 web-07 sudo: carol : TTY=pts/3 ; PWD=/home/carol ; USER=root ; COMMAND=/usr/bin/mysql -u root --password=Pa55-abc",
    );
    assert_eq!(e["device_hostname"], "web-07");
    assert_eq!(e["process_name"], "sudo");
    assert!(e.get("process_pid").is_none());
    assert_eq!((&e["class_uid"], &e["category_uid"], &e["activity_id"]), (&json!(3003), &json!(3), &json!(1)));
    assert_eq!(e["type_uid"], 300301);
    assert_eq!(e["status_id"], 1);
    assert!(e.get("status_detail").is_none());
    assert_eq!(e["actor_user_name"], "carol");
    assert_eq!(e["process_cmd_line"], "/usr/bin/mysql -u root --password=Pa55-abc");
    assert_eq!(e["unmapped"], json!({"tty": "pts/3", "cwd": "/home/carol", "target_user": "root"}));
}

#[test]
fn sudo_failures_carry_the_reason() {
    let e = parse(
        "Feb 24 00:13:02 precise32 sudo:      tsg : user NOT in sudoers ; TTY=pts/1 ; PWD=/home/vagrant ; USER=root ; COMMAND=/bin/ls",
    );
    assert_eq!((&e["status_id"], &e["status_detail"]), (&json!(2), &json!("user NOT in sudoers")));
    assert_eq!(e["actor_user_name"], "tsg");
    assert_eq!(e["process_cmd_line"], "/bin/ls");

    let e = parse(
        "Nov  1 00:00:03 h sudo: dave : 3 incorrect password attempts ; TTY=pts/0 ; PWD=/root ; USER=root ; COMMAND=/bin/sh",
    );
    assert_eq!((&e["status_id"], &e["status_detail"]), (&json!(2), &json!("3 incorrect password attempts")));

    let e = parse(
        "Nov  1 00:00:03 h sudo[9]: erin : command not allowed ; TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/rm -rf / ; echo",
    );
    assert_eq!((&e["status_id"], &e["status_detail"]), (&json!(2), &json!("command not allowed")));
    assert_eq!(e["process_cmd_line"], "/bin/rm -rf / ; echo");
    assert_eq!(e["process_pid"], 9);
}

#[test]
fn sudo_without_tty_and_other_sudo_lines() {
    let e = parse("Aug  6 19:42:10 server01 sudo[18432]: alice : PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/id");
    assert_eq!((&e["class_uid"], &e["status_id"], &e["actor_user_name"]), (&json!(3003), &json!(1), &json!("alice")));
    assert_eq!(e["unmapped"], json!({"cwd": "/home/alice", "target_user": "root"}));

    let e = parse(
        "Jun  2 19:08:43 host.name sudo[654321]: pam_unix(sudo:auth): authentication failure; logname=bob uid=1117 euid=0 tty=/dev/pts/1 ruser=alice rhost= user=root",
    );
    // a PAM authentication failure of any service is a failed logon of the real user
    assert_eq!((&e["class_uid"], &e["type_uid"], &e["status_id"]), (&json!(3002), &json!(300201), &json!(2)));
    assert_eq!(e["actor_user_name"], "alice");
    assert_eq!(e["severity_id"], 1, "no PRI: informational");
    assert_eq!(e["unmapped"], json!({"pam_service": "sudo", "target_user": "root", "tty": "/dev/pts/1"}));
}

#[test]
fn su_switches() {
    let e = parse("Nov  1 00:00:05 h su[311]: (to root) alice on pts/0");
    assert_eq!((&e["class_uid"], &e["type_uid"], &e["status_id"]), (&json!(3003), &json!(300301), &json!(1)));
    assert_eq!(e["actor_user_name"], "alice");
    assert_eq!(e["unmapped"], json!({"target_user": "root", "tty": "pts/0"}));

    let e = parse("Nov  1 00:00:05 h su[312]: FAILED SU (to root) mallory on pts/1");
    assert_eq!((&e["class_uid"], &e["status_id"], &e["status_detail"]), (&json!(3003), &json!(2), &json!("FAILED SU")));
    assert_eq!(e["actor_user_name"], "mallory");

    let e = parse("Nov  1 00:00:05 h su: Successful su for postgres by root");
    assert_eq!(
        (&e["status_id"], &e["actor_user_name"], &e["unmapped"]["target_user"]),
        (&json!(1), &json!("root"), &json!("postgres"))
    );

    let e = parse("Nov  1 00:00:05 h su[311]: pam_unix(su:session): session opened for user root by alice(uid=1000)");
    assert_eq!((&e["class_uid"], &e["activity_id"], &e["status_id"]), (&json!(3002), &json!(1), &json!(1)));
    assert_eq!(e["actor_user_name"], "alice");
    assert_eq!(e["unmapped"], json!({"pam_service": "su", "target_user": "root"}));

    let e = parse("Nov  1 00:09:05 h su[311]: pam_unix(su:session): session closed for user root");
    assert_eq!((&e["type_uid"], &e["actor_user_name"]), (&json!(300202), &json!("root")));

    // the old `su(pam_unix)` tag, with no pam_unix(...) in the message
    let e = parse("Jun 15 04:06:18 combo su(pam_unix)[21416]: session opened for user cyrus by (uid=0)");
    assert_eq!((&e["type_uid"], &e["actor_user_name"]), (&json!(300201), &json!("cyrus")));

    let e = parse(
        "Nov  1 00:00:05 h su[313]: pam_unix(su:auth): authentication failure; logname=bob uid=1000 euid=0 tty=pts/2 ruser=bob rhost=  user=root",
    );
    assert_eq!((&e["type_uid"], &e["status_id"], &e["actor_user_name"]), (&json!(300201), &json!(2), &json!("bob")));
    assert_eq!(e["unmapped"]["target_user"], "root");
}

#[test]
fn pam_for_other_services() {
    let e = parse(
        "Nov  1 00:00:05 h login[77]: pam_unix(login:auth): authentication failure; logname=LOGIN uid=0 euid=0 tty=tty1 ruser= rhost=192.0.2.8  user=carol",
    );
    assert_eq!((&e["type_uid"], &e["status_id"]), (&json!(300201), &json!(2)));
    assert_eq!((&e["actor_user_name"], &e["src_endpoint_ip"]), (&json!("LOGIN"), &json!("192.0.2.8")));
    let e =
        parse("Nov  1 00:00:05 h CRON[900]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)");
    assert_eq!((&e["type_uid"], &e["actor_user_name"]), (&json!(300201), &json!("root")));
    let e = parse("Nov  1 00:00:05 h systemd-logind[1]: New session 5 of user bob.");
    assert_eq!(e["class_uid"], 0);
}

#[test]
fn account_tools() {
    let e = parse(
        "Feb 22 11:47:05 localhost useradd[6995]: new user: name=apache, UID=48, GID=48, home=/usr/share/httpd, shell=/sbin/nologin",
    );
    assert_eq!(
        (&e["class_uid"], &e["category_uid"], &e["activity_id"], &e["type_uid"]),
        (&json!(3001), &json!(3), &json!(1), &json!(300101))
    );
    assert_eq!(e["resources"], json!([{"type": "user", "name": "apache", "uid": "48"}]));
    assert_eq!(e["unmapped"], json!({"gid": "48", "home": "/usr/share/httpd", "shell": "/sbin/nologin"}));
    assert!(e.get("actor_user_name").is_none());

    let e = parse("Feb 22 11:47:05 localhost groupadd[6991]: new group: name=apache, GID=48");
    assert_eq!(
        (&e["type_uid"], &e["resources"]),
        (&json!(300101), &json!([{"type": "group", "name": "apache", "uid": "48"}]))
    );

    let e = parse("Nov  1 00:00:05 h userdel[402]: delete user 'bob'");
    assert_eq!((&e["type_uid"], &e["resources"]), (&json!(300106), &json!([{"type": "user", "name": "bob"}])));
    let e = parse("Nov  1 00:00:05 h userdel[402]: removed group 'bob' owned by 'bob'");
    assert_eq!((&e["type_uid"], &e["resources"]), (&json!(300106), &json!([{"type": "group", "name": "bob"}])));
    let e = parse("Nov  1 00:00:05 h groupdel[403]: group 'devs' removed");
    assert_eq!(e["resources"], json!([{"type": "group", "name": "devs"}]));
    let e = parse("Nov  1 00:00:05 h groupdel[403]: group 'devs' removed from /etc/group");
    assert_eq!(e["type_uid"], 300106);
    let e = parse("Nov  1 00:00:05 h useradd[404]: failed adding user 'x', data deleted");
    assert_eq!(e["class_uid"], 0);

    let e = parse("Nov  1 00:00:05 h passwd[405]: pam_unix(passwd:chauthtok): password changed for bob");
    assert_eq!((&e["class_uid"], &e["activity_id"], &e["type_uid"]), (&json!(3001), &json!(3), &json!(300103)));
    assert_eq!(e["resources"], json!([{"type": "user", "name": "bob"}]));
    let e = parse("Nov  1 00:00:05 h passwd[406]: password for 'bob' changed by 'root'");
    assert_eq!((&e["type_uid"], &e["actor_user_name"]), (&json!(300103), &json!("root")));
    let e = parse("Nov  1 00:00:05 h chpasswd[407]: pam_unix(chpasswd:chauthtok): password changed for carol");
    assert_eq!(e["type_uid"], 300103);
}

#[test]
fn sshd_variants_from_real_logs() {
    let e = parse("Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user webmaster from 173.234.31.186");
    assert_eq!((&e["status_id"], &e["status_detail"]), (&json!(2), &json!("Invalid user")));
    assert_eq!((&e["actor_user_name"], &e["src_endpoint_ip"]), (&json!("webmaster"), &json!("173.234.31.186")));
    assert!(e.get("src_endpoint_port").is_none());
    assert_eq!(e["unmapped"]["invalid_user"], true);

    let e = parse(
        "Dec 10 07:13:56 LabSZ sshd[24227]: message repeated 5 times: [ Failed password for root from 5.36.59.76 port 42393 ssh2]",
    );
    assert_eq!((&e["type_uid"], &e["status_id"]), (&json!(300201), &json!(2)));
    assert_eq!((&e["actor_user_name"], &e["src_endpoint_port"]), (&json!("root"), &json!(42393)));
    assert_eq!(e["unmapped"]["repeated"], 5);

    let e = parse("Dec 10 09:32:20 LabSZ sshd[24680]: pam_unix(sshd:session): session opened for user fztu by (uid=0)");
    assert_eq!((&e["type_uid"], &e["status_id"], &e["actor_user_name"]), (&json!(300201), &json!(1), &json!("fztu")));

    let e = parse("Dec 10 09:32:20 LabSZ sshd[24680]: pam_unix(sshd:session): session closed for user fztu");
    assert_eq!((&e["activity_id"], &e["type_uid"], &e["status_id"]), (&json!(2), &json!(300202), &json!(1)));

    let e = parse(
        "Jun 15 02:04:59 combo sshd(pam_unix)[20882]: authentication failure; logname= uid=0 euid=0 tty=NODEVssh ruser= rhost=220-135-151-1.hinet-ip.hinet.net  user=root",
    );
    assert_eq!(e["process_name"], "sshd(pam_unix)");
    assert_eq!((&e["status_id"], &e["actor_user_name"]), (&json!(2), &json!("root")));
    assert!(e.get("src_endpoint_ip").is_none());
    assert_eq!(e["unmapped"]["src_endpoint_hostname"], "220-135-151-1.hinet-ip.hinet.net");

    let e = parse("Nov  1 00:00:09 h sshd[5]: Disconnected from user bob 10.1.2.3 port 2222");
    assert_eq!((&e["type_uid"], &e["status_id"], &e["actor_user_name"]), (&json!(300202), &json!(1), &json!("bob")));
    assert_eq!(e["src_endpoint_ip"], "10.1.2.3");

    let e = parse("Nov  1 00:00:09 h sshd[5]: Failed publickey for root from 2001:db8::1 port 22 ssh2: RSA SHA256:x");
    assert_eq!((&e["status_detail"], &e["src_endpoint_ip"]), (&json!("Failed publickey"), &json!("2001:db8::1")));

    let e = parse("Nov  1 00:00:09 h sshd[5]: Failed none for invalid user  from 10.0.0.1 port 1 ssh2");
    assert!(e.get("actor_user_name").is_none());
    assert_eq!(e["src_endpoint_ip"], "10.0.0.1");

    let e = parse("Dec 10 06:55:46 LabSZ sshd[24200]: Connection closed by 173.234.31.186 [preauth]");
    assert_eq!((&e["class_uid"], &e["message"]), (&json!(0), &json!("Connection closed by 173.234.31.186 [preauth]")));
}

#[test]
fn odd_rfc3164_shapes() {
    // No tag: the whole content is the message.
    let e = parse("Jun 19 04:09:11 combo syslogd 1.4.1: restart.");
    assert_eq!(e["message"], "syslogd 1.4.1: restart.");
    assert!(e.get("process_name").is_none());
    let e = parse("Jul  7 08:06:15 combo  -- root[2421]: ROOT LOGIN ON tty2");
    assert_eq!((&e["device_hostname"], &e["message"]), (&json!("combo"), &json!("-- root[2421]: ROOT LOGIN ON tty2")));
    // No hostname.
    let e = parse("<86>Nov  1 00:00:03 sshd[42]: Accepted password for bob from 10.0.0.1 port 22 ssh2");
    assert!(e.get("device_hostname").is_none());
    assert_eq!((&e["process_pid"], &e["status_id"]), (&json!(42), &json!(1)));
    // Zero-padded day and a kernel line.
    let e = parse("Nov 01 00:00:03 h kernel: Linux version 2.6.5");
    assert_eq!((&e["time"], &e["process_name"]), (&json!((NOV_1_2026 + 3) * 1_000_000), &json!("kernel")));
    // rsyslog's RFC 3339 timestamp.
    let e = parse(
        "2026-05-17T18:00:01.000000+00:00 host12345 sshd[1234567]: pam_faillock(sshd:auth): Consecutive login failures for user test account temporarily locked",
    );
    assert_eq!(e["time"], parse_rfc3339_micros("2026-05-17T18:00:01Z").unwrap());
    assert_eq!((&e["device_hostname"], &e["process_pid"]), (&json!("host12345"), &json!(1234567)));
}

#[test]
fn pri_sets_severity_and_facility() {
    // 38 = auth (4) * 8 + info (6).
    let e = parse("<38>Nov  1 00:00:03 h sshd[1]: Server listening on 0.0.0.0 port 22.");
    assert_eq!(e["severity_id"], 1);
    assert_eq!(e["unmapped"], json!({"facility": "auth", "severity": "info"}));
    // 3 = kern + err.
    assert_eq!(parse("<3>Nov  1 00:00:03 h kernel: oops")["severity_id"], 4);
    // An out-of-range PRI is not a PRI, so the line does not parse.
    assert!(error(b"<999>Nov  1 00:00:03 h app: x").starts_with("not an RFC 3164"));
}

#[test]
fn rfc5424_with_structured_data() {
    let e = parse(
        "<165>1 2026-11-01T00:00:01.5Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Appli\\\"cation\\]\"][examplePriority@32473 class=\"high\"] \u{feff}An application event",
    );
    assert_eq!(e["time"], NOV_1_2026 * 1_000_000 + 1_500_000);
    assert_eq!(e["device_hostname"], "mymachine.example.com");
    assert_eq!(e["process_name"], "evntslog");
    assert!(e.get("process_pid").is_none());
    assert_eq!(e["message"], "An application event");
    assert_eq!(e["severity_id"], 2);
    assert_eq!(e["class_uid"], 0);
    assert_eq!(
        e["unmapped"],
        json!({
            "facility": "local4", "severity": "notice", "msgid": "ID47",
            "structured_data": {
                "exampleSDID@32473": {"iut": "3", "eventSource": "Appli\"cation]"},
                "examplePriority@32473": {"class": "high"}
            }
        })
    );
}

#[test]
fn rfc5424_nil_fields_and_sshd() {
    let e = parse("<38>1 2026-11-01T01:00:00+01:00 bastion sshd 4242 - - Invalid user eve from 198.51.100.2 port 4000");
    assert_eq!(e["time"], NOV_1_2026 * 1_000_000);
    assert_eq!((&e["process_pid"], &e["status_id"], &e["actor_user_name"]), (&json!(4242), &json!(2), &json!("eve")));
    let e = parse("<14>1 2026-11-01T00:00:00Z - - worker-a - -");
    assert!(e.get("device_hostname").is_none() && e.get("process_name").is_none());
    assert_eq!((&e["message"], &e["unmapped"]["procid"]), (&json!(""), &json!("worker-a")));
    assert!(error(b"<14>1 - host app - - - no time").starts_with("not an RFC 3164 or RFC 5424 syslog line: <14>1 -"));
}

#[test]
fn utc_offset_and_year_rules() {
    let mut p = ParseSyslog::init(json!({"year": 2026, "utc_offset": "+02:00"})).unwrap();
    let Outcome::Keep(e) = p.parse(b"Nov  1 02:00:00 h app: x") else { panic!() };
    assert_eq!(e["time"], NOV_1_2026 * 1_000_000);
    let mut p = ParseSyslog::init(json!({"year": 2026, "utc_offset": "-0530"})).unwrap();
    let Outcome::Keep(e) = p.parse(b"Oct 31 18:30:00 h app: x") else { panic!() };
    assert_eq!(e["time"], NOV_1_2026 * 1_000_000);

    let around = YearRule::Around { year: 2027, month: 1 };
    assert_eq!((around.year_for(12), around.year_for(2), around.year_for(1)), (2026, 2027, 2027));
    match ParseSyslog::init(json!({})).unwrap().year {
        YearRule::Around { year, month } => assert!(year >= 2025 && (1..=12).contains(&month)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn bad_lines_and_config() {
    assert_eq!(parser().parse(b"\n"), Outcome::Drop("blank line".into()));
    assert_eq!(error(b"Nov  1 00:00:03 h app: \xc3\x28"), "record is not valid UTF-8 at byte 23");
    let long = "x".repeat(200);
    assert_eq!(error(long.as_bytes()), format!("not an RFC 3164 or RFC 5424 syslog line: {}", "x".repeat(80)));
    assert!(error(b"Feb 30 00:00:03 h app: x").starts_with("not an RFC 3164"));
    assert!(error(b"Nov  1 24:00:03 h app: x").starts_with("not an RFC 3164"));
    assert!(ParseSyslog::init(json!({"yeer": 2026})).unwrap_err().contains("`yeer`"));
    assert!(ParseSyslog::init(json!({"year": "2026"})).unwrap_err().contains("`year`"));
    assert!(ParseSyslog::init(json!({"utc_offset": "CET"})).unwrap_err().contains("`utc_offset`"));
}

#[test]
fn random_bytes_mutations_and_truncations_never_panic() {
    let mut p = parser();
    let mut rng = Lcg(23);
    let alphabet = b"<>[]:()'`=;, 0123456789NovDecsshdsudosu-T.Z+pam_unix(su:session)to root\xff\xc3";
    for i in 0..2_000 {
        let bytes = rng.record(i, alphabet, 160);
        let _ = p.parse(&bytes);
    }
    let samples = [
        "Nov  1 00:00:05 h su[311]: pam_unix(su:session): session opened for user root by alice(uid=1000)",
        "<165>1 2026-11-01T00:00:01.5Z host app 1 ID47 [a@1 k=\"v\"] msg",
        "Feb 22 11:47:05 localhost useradd[6995]: new user: name=apache, UID=48, GID=48, home=/x, shell=/y",
        "Nov  1 00:00:03 web-07 sudo: carol : TTY=pts/3 ; PWD=/home/carol ; USER=root ; COMMAND=/bin/ls",
    ];
    for sample in samples {
        let valid = sample.as_bytes();
        for _ in 0..150 {
            let _ = p.parse(&rng.mutate(valid, alphabet));
        }
        for cut in 0..=valid.len() {
            let _ = p.parse(&valid[..cut]);
        }
        sluice_plugin_sdk::fuzz::search_never_panics(&mut p, valid);
    }
}
