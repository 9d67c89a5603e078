#!/usr/bin/env python3
"""The answers the reports in examples/reports/ must give on a workload from
../shared/bench/gen_events.py, computed from the raw input files alone (not
from the archive), for tests/reports.rs.

    report_truth.py DATA_DIR ACTOR FROM TO  ->  JSON on stdout
"""
import collections
import datetime as dt
import json
import re
import sys

data, actor, start, end = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
start = dt.datetime.fromisoformat(start.replace("Z", "+00:00"))
end = dt.datetime.fromisoformat(end.replace("Z", "+00:00"))


def ndjson(name):
    with open(f"{data}/{name}") as f:
        return [json.loads(line) for line in f if line.strip()]


def ts(text):
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


k8s, trail, app = ndjson("k8s-audit.ndjson"), ndjson("cloudtrail.ndjson"), ndjson("app.ndjson")
failed = collections.Counter()
logins = []  # (time, user, address) of successful logins
timeline = 0


def in_window(t, who):
    return who == actor and start <= t < end


SSHD = re.compile(r"^(\w{3}) +(\d+) (\d\d:\d\d:\d\d) \S+ sshd\[\d+\]: (Failed password|Accepted publickey) for (?:invalid user )?(\S+) from (\S+)")
SUDO = re.compile(r"^(\w{3}) +(\d+) (\d\d:\d\d:\d\d) \S+ sudo: (\S+) :")
with open(f"{data}/auth.log") as f:
    for line in f:
        m = SSHD.match(line) or SUDO.match(line)
        t = dt.datetime.strptime(f"2026 {m.group(1)} {m.group(2)} {m.group(3)}", "%Y %b %d %H:%M:%S").replace(tzinfo=dt.timezone.utc)
        if m.re is SSHD:
            kind, user, address = m.group(4), m.group(5), m.group(6)
            if kind == "Failed password":
                failed[(user, t.strftime("%Y-%m-%d"))] += 1
            else:
                logins.append((t, user, address))
        else:
            user = m.group(4)
        timeline += in_window(t, user)

privilege, secrets, deletions, audit_config = (collections.Counter() for _ in range(4))
for e in trail:
    name, user, t = e["eventName"], e["userIdentity"]["userName"], ts(e["eventTime"])
    if name == "ConsoleLogin":
        if "errorCode" in e:
            failed[(user, t.strftime("%Y-%m-%d"))] += 1
        else:
            logins.append((t, user, e["sourceIPAddress"]))
    if name == "AttachUserPolicy":
        privilege[name] += 1
    if name == "Decrypt":
        secrets[name] += 1
    if name in ("DeleteUser", "TerminateInstances"):
        deletions[name] += 1
    if name in ("StopLogging", "DeleteTrail", "UpdateTrail", "PutEventSelectors"):
        audit_config[name] += 1
    timeline += in_window(t, user)
for e in k8s:
    verb, resource = e["verb"], e["objectRef"]["resource"]
    if verb in ("create", "update", "patch", "delete") and resource in ("roles", "rolebindings"):
        privilege[verb] += 1
    if resource == "secrets":
        secrets[verb] += 1
    if verb == "delete":
        deletions[verb] += 1
    timeline += in_window(ts(e["requestReceivedTimestamp"]), e["user"]["username"].split("@")[0])
traces = {}
for e in app:
    action = e["action"]
    if action in ("role.grant", "role.revoke"):
        privilege[action] += 1
    if action in ("payroll.view", "payroll.update"):
        secrets[action] += 1
    if action == "record.delete":
        deletions[action] += 1
    timeline += in_window(ts(e["ts"]), e["actor"]["email"].split("@")[0])
    traces.setdefault(e["trace_id"], []).append(action)

seen, new_addresses = set(), []
for t, user, address in sorted(logins):
    if (user, address) not in seen:
        seen.add((user, address))
        new_addresses.append([t.strftime("%Y-%m-%d %H:%M:%S+00:00"), user, address])
trace = sorted(traces)[0]
print(json.dumps({
    "failed_logins_per_user_per_day": sorted([u, d, n] for (u, d), n in failed.items()),
    "logins_from_new_source_ips": sorted(new_addresses),
    "privilege_changes": dict(sorted(privilege.items())),
    "secret_and_payroll_access": dict(sorted(secrets.items())),
    "deletions": dict(sorted(deletions.items())),
    "audit_config_changes": dict(sorted(audit_config.items())),
    "actor_timeline": timeline,
    "correlation": {"id": trace, "operations": traces[trace]},
}))
