#!/usr/bin/env python3
"""Writes alerts/tests/healthy.test.yml: every series a healthy exporter serves by default
(docs/metrics.md) for two targets, scraped every 30 s for two hours, and every alert quiet.

    python3 alerts/tests/make-healthy.py > alerts/tests/healthy.test.yml

Run it again when the contract changes; the output is plain data for promtool.
"""

import re
import sys

RULES = "alerts/cms-xmpp.rules.yml"
SAMPLES = 240
ID = 'job="cms-xmpp-exporter", instance="cms-xmpp-exporter:9523"'
NOT_AFTER = 90 * 86400  # 90 days after the epoch, where promtool's clock starts
TIMED_STEPS = ["resolve", "connect", "tls", "stream", "handshake"]
# Durations of a healthy LAN, in seconds.
STEP_SECONDS = {"srv": 0.002, "resolve": 0.0015, "connect": 0.0004, "tls": 0.004, "stream": 0.0008, "handshake": 0.0006}

out = []


def series(name, labels, values):
    pairs = ", ".join([ID] + [f'{k}="{v}"' for k, v in labels])
    out.append(f"      - series: '{name}{{{pairs}}}'\n        values: '{values}'")


def target(name, domain, component, server_address, servers):
    t = [("target", name)]
    series("cms_xmpp_probe_success", t, f"1x{SAMPLES}")
    series("cms_xmpp_probes_total", t, f"0+1x{SAMPLES}")
    series("cms_xmpp_probe_duration_seconds", t, f"0.02x{SAMPLES}")
    series("cms_xmpp_last_probe_timestamp_seconds", t, f"0+30x{SAMPLES}")
    series("cms_xmpp_probe_interval_seconds", t, f"30x{SAMPLES}")
    series("cms_xmpp_target_info", t + [("domain", domain), ("component", component),
           ("server_address", server_address), ("tls_mode", "direct")], f"1x{SAMPLES}")
    if not server_address:
        series("cms_xmpp_srv_records", t, f"{len(servers)}x{SAMPLES}")
        series("cms_xmpp_step_last_duration_seconds", t + [("server", ""), ("step", "srv")],
               f"{STEP_SECONDS['srv']}x{SAMPLES}")
    for n, (server, origin, ip) in enumerate(servers):
        s = t + [("server", server)]
        fqdn = server.rsplit(":", 1)[0]
        series("cms_xmpp_server_up", s, f"1x{SAMPLES}")
        for step in TIMED_STEPS:
            series("cms_xmpp_step_last_duration_seconds", s + [("step", step)], f"{STEP_SECONDS[step]}x{SAMPLES}")
        series("cms_xmpp_last_success_timestamp_seconds", s, f"0+30x{SAMPLES}")
        series("cms_xmpp_server_info", s + origin + [("address", f"{ip}:5223")], f"1x{SAMPLES}")
        series("cms_xmpp_cert_not_after_timestamp_seconds", s, f"{NOT_AFTER}x{SAMPLES}")
        series("cms_xmpp_cert_trusted", s, f"1x{SAMPLES}")
        series("cms_xmpp_cert_san_covered", s + [("role", "domain"), ("name", domain)], f"1x{SAMPLES}")
        series("cms_xmpp_cert_san_covered", s + [("role", "fqdn"), ("name", fqdn)], f"1x{SAMPLES}")
        series("cms_xmpp_cert_info", s + [("subject", f"CN={fqdn}"), ("issuer", "CN=Example Issuing CA 1,O=Example"),
               ("serial", f"3af1{n:02x}"), ("sans", f"{domain},{fqdn}")], f"1x{SAMPLES}")
        series("cms_xmpp_tls_info", s + [("version", "TLSv1.3"), ("cipher", "TLS13_AES_256_GCM_SHA384")], f"1x{SAMPLES}")


WATCH_STEPS = {"resolve": 0.0015, "connect": 0.0004, "starttls": 0.001, "tls": 0.004, "sasl": 0.003, "bind": 0.0008}


def watch(name, server, components):
    """The client path of a target: a login through `server`, then one ping per component."""
    t = [("target", name)]
    series("cms_xmpp_watch_success", t, f"1x{SAMPLES}")
    series("cms_xmpp_watch_step_last_duration_seconds", t + [("server", ""), ("step", "srv")],
           f"{STEP_SECONDS['srv']}x{SAMPLES}")
    for step, seconds in WATCH_STEPS.items():
        series("cms_xmpp_watch_step_last_duration_seconds", t + [("server", server), ("step", step)],
               f"{seconds}x{SAMPLES}")
    for component in components:
        c = t + [("component", component)]
        series("cms_xmpp_component_registered", c, f"1x{SAMPLES}")
        series("cms_xmpp_component_ping_seconds", c, f"0.002x{SAMPLES}")


def srv(priority, weight, preferred):
    return [("source", "srv"), ("priority", str(priority)), ("weight", str(weight)), ("preferred", preferred)]


STATIC = [("source", "static"), ("priority", ""), ("weight", ""), ("preferred", "true")]

series("up", [], f"1x{SAMPLES}")
series("cms_xmpp_build_info", [("version", "0.1.0")], f"1x{SAMPLES}")
series("cms_xmpp_config_last_reload_successful", [], f"1x{SAMPLES}")
target("cms-london", "example.com", "probe.example.com", "", [
    ("xmpp1.example.com:5223", srv(10, 60, "true"), "192.0.2.40"),
    ("xmpp2.example.com:5223", srv(20, 40, "false"), "192.0.2.41"),
])
watch("cms-london", "xmpp1.example.com:5222", ["cb1.example.com", "cb2.example.com"])
target("cms-paris", "example.fr", "probe.example.fr", "xmpp.example.fr:5223", [
    ("xmpp.example.fr:5223", STATIC, "198.51.100.7"),
])

alerts = re.findall(r"^\s+- alert: (\S+)", open(RULES, encoding="utf-8").read(), re.M)
alerts = list(dict.fromkeys(alerts))
checks = [f"      - eval_time: {t}\n        alertname: {a}\n        exp_alerts: []" for t in ("10m", "1h", "2h") for a in alerts]

sys.stdout.write(f"""# promtool test rules alerts/tests/healthy.test.yml
# A healthy exporter: every alert stays quiet. Two targets as docs/metrics.md describes them:
# cms-london uses XMPP resiliency (SRV _xmpp-component._tcp.example.com: xmpp1.example.com:5223
# priority 10 weight 60, xmpp2.example.com:5223 priority 20 weight 40; the srv step has an
# empty server label), cms-paris names xmpp.example.fr:5223 in its Server Address. Every
# series the exporter serves for them by default is present, scraped every 30 s for two hours;
# every step succeeds in milliseconds, certificates are trusted, cover domain and FQDN, and
# have 90 days left.
# Written by alerts/tests/make-healthy.py; run it again when docs/metrics.md changes.
rule_files:
  - ../cms-xmpp.rules.yml

evaluation_interval: 30s

tests:
  - name: healthy exporter, every alert quiet
    interval: 30s
    input_series:
{chr(10).join(out)}
    alert_rule_test:
{chr(10).join(checks)}
""")
