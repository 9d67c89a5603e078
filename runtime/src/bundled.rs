//! The standard plugins, built from `plugins/` by `build.rs` and embedded in the
//! binary so that a pipeline can name them (`plugin = "parse-json"`). They are
//! still Wasm components and run in the same sandbox as any other plugin.

/// (name, component bytes) of every bundled plugin.
pub const BUNDLED: &[(&str, &[u8])] = &[
    ("parse-json", include_bytes!(env!("SLUICE_PLUGIN_PARSE_JSON"))),
    ("parse-syslog", include_bytes!(env!("SLUICE_PLUGIN_PARSE_SYSLOG"))),
    ("parse-k8s-audit", include_bytes!(env!("SLUICE_PLUGIN_PARSE_K8S_AUDIT"))),
    ("parse-cloudtrail", include_bytes!(env!("SLUICE_PLUGIN_PARSE_CLOUDTRAIL"))),
    ("parse-auditd", include_bytes!(env!("SLUICE_PLUGIN_PARSE_AUDITD"))),
    ("parse-gcp-audit", include_bytes!(env!("SLUICE_PLUGIN_PARSE_GCP_AUDIT"))),
    ("parse-github-audit", include_bytes!(env!("SLUICE_PLUGIN_PARSE_GITHUB_AUDIT"))),
    ("parse-okta", include_bytes!(env!("SLUICE_PLUGIN_PARSE_OKTA"))),
    ("parse-access-log", include_bytes!(env!("SLUICE_PLUGIN_PARSE_ACCESS_LOG"))),
    ("redact", include_bytes!(env!("SLUICE_PLUGIN_REDACT"))),
    ("enrich-static", include_bytes!(env!("SLUICE_PLUGIN_ENRICH_STATIC"))),
];

pub fn get(name: &str) -> Option<&'static [u8]> {
    BUNDLED.iter().find(|(n, _)| *n == name).map(|(_, bytes)| *bytes)
}

pub fn names() -> Vec<&'static str> {
    BUNDLED.iter().map(|(n, _)| *n).collect()
}
