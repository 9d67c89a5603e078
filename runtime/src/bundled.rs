//! The standard plugins, built from `plugins/` by `build.rs` and embedded in the
//! binary so that a pipeline can name them (`plugin = "parse-json"`). They are
//! still Wasm components and run in the same sandbox as any other plugin.

/// (name, component bytes) of every bundled plugin.
pub const BUNDLED: &[(&str, &[u8])] = &[
    ("parse-json", include_bytes!(env!("SLUICE_PLUGIN_PARSE_JSON"))),
    ("parse-syslog", include_bytes!(env!("SLUICE_PLUGIN_PARSE_SYSLOG"))),
    ("redact", include_bytes!(env!("SLUICE_PLUGIN_REDACT"))),
    ("enrich-static", include_bytes!(env!("SLUICE_PLUGIN_ENRICH_STATIC"))),
];

pub fn get(name: &str) -> Option<&'static [u8]> {
    BUNDLED.iter().find(|(n, _)| *n == name).map(|(_, bytes)| *bytes)
}

pub fn names() -> Vec<&'static str> {
    BUNDLED.iter().map(|(n, _)| *n).collect()
}
