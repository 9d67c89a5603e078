//! A transform that adds context to every event: static values, network
//! zones, lookup-table columns, correlation ids, and a classification.
//!
//! Config (all optional; an empty config passes events through unchanged;
//! any other key is rejected):
//! - `rename`: table `from → to` of top-level fields. A missing `from` is
//!   ignored; an existing `to` is overwritten.
//! - `defaults`: table `field → value`, set only when the field is absent or null.
//! - `set`: table `field → value`, always set (overwrites).
//! - `lookups`: named tables: the value of a field selects a row whose
//!   columns are added (`actor_user_name = alice` → `actor_user_department`);
//!   see [`lookups::LookupConfig`]. Rows are inline, or read at init from a
//!   file the pipeline grants the stage (`read_files`, seen as `/grants/<name>`).
//! - `networks`: a CIDR table giving zone, site and owner of the addresses in
//!   `src_endpoint_ip` / `dst_endpoint_ip` (longest prefix wins, IPv4 and
//!   IPv6), written as `src_endpoint_zone`, `src_endpoint_site`,
//!   `src_endpoint_owner`, ...; see [`networks::NetworksConfig`].
//! - `correlation`: W3C `traceparent`, X-Ray and GCP trace ids, `X-Request-ID`
//!   and native request ids into `trace_id`, `span_id`, `api_request_uid`,
//!   and a derived `correlation_uid`; see [`correlation::CorrelationConfig`].
//! - `classify`: rules that add tags (`privileged-action`,
//!   `failed-authentication`, `secret-access`, `audit-config-change`, and the
//!   pipeline's own) to `metadata_labels` and raise `severity_id`; see
//!   [`classify::ClassifyConfig`].
//!
//! They apply in that order: rename, defaults, set, lookups, networks,
//! correlation, classify; so `defaults` and `set` name fields by their final
//! names, and classification sees the zones and lookups. Enrichments never
//! overwrite a value the event already has (unless a lookup says
//! `overwrite`; `classify` only ever raises `severity_id` and appends tags),
//! and keys that are not schema columns (the zones, lookup columns,
//! `metadata_labels`) are kept by the host in `unmapped` unless the stream
//! declares them as columns.
//!
//! ```toml
//! [stages.enrich.config]
//! defaults = { tenant_uid = "acme" }
//! correlation = {}
//! classify = {}
//! [[stages.enrich.config.networks.cidrs]]
//! cidr = "10.0.0.0/8"
//! zone = "corp"
//! site = "fra1"
//! owner = "netops"
//! [stages.enrich.config.lookups.users]
//! key = "actor_user_name"
//! rows = { alice = { department = "payroll", manager = "bob" } }
//! ```

pub mod classify;
pub mod correlation;
pub mod doc;
pub mod lookups;
pub mod networks;

use doc::{Doc, Node};
use serde::Deserialize;
use serde_json::{Map, Value};
use sluice_plugin_sdk::{Event, Outcome, Transform, export_transform};
use std::collections::BTreeMap;

/// The plugin's config, as written in the pipeline file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrichConfig {
    /// Top-level fields to rename: `from → to` (a string).
    #[serde(default)]
    pub rename: Map<String, Value>,
    /// Fields set when absent or null.
    #[serde(default)]
    pub defaults: Map<String, Value>,
    /// Fields always set.
    #[serde(default)]
    pub set: Map<String, Value>,
    /// Lookup tables by name.
    #[serde(default)]
    pub lookups: BTreeMap<String, lookups::LookupConfig>,
    /// Network zones.
    pub networks: Option<networks::NetworksConfig>,
    /// Correlation ids (`correlation = {}` for the defaults).
    pub correlation: Option<correlation::CorrelationConfig>,
    /// Tags and severity (`classify = {}` for the built-in rules).
    pub classify: Option<classify::ClassifyConfig>,
}

impl EnrichConfig {
    /// Parses the config table, naming the field that is wrong.
    pub fn from_json(config: Value) -> Result<Self, String> {
        let Value::Object(map) = config else {
            return Err("enrich-static: config must be a table".into());
        };
        serde_json::from_value(Value::Object(map.clone())).map_err(|e| {
            for (key, value) in &map {
                let one = Value::Object(Map::from_iter([(key.clone(), value.clone())]));
                if let Err(e) = serde_json::from_value::<EnrichConfig>(one) {
                    return format!("enrich-static: `{key}`: {e}");
                }
            }
            format!("enrich-static: {e}")
        })
    }
}

#[derive(Default)]
pub struct EnrichStatic {
    rename: Vec<(String, String)>,
    defaults: Vec<(String, Node<'static>)>,
    set: Vec<(String, Node<'static>)>,
    lookups: Vec<lookups::Lookup>,
    networks: Option<networks::Networks>,
    correlation: Option<correlation::Correlation>,
    classify: Option<classify::Classify>,
}

impl Transform for EnrichStatic {
    fn init(config: Value) -> Result<Self, String> {
        let config = EnrichConfig::from_json(config)?;
        let mut rename = Vec::new();
        for (from, to) in config.rename {
            match to {
                Value::String(to) => rename.push((from, to)),
                _ => return Err(format!("enrich-static: rename target for `{from}` must be a string")),
            }
        }
        let lookups = config
            .lookups
            .into_iter()
            .map(|(name, table)| lookups::Lookup::new(&name, table))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(EnrichStatic {
            rename,
            defaults: config.defaults.iter().map(|(k, v)| (k.clone(), Node::from(v))).collect(),
            set: config.set.iter().map(|(k, v)| (k.clone(), Node::from(v))).collect(),
            lookups,
            networks: config.networks.map(networks::Networks::new).transpose()?,
            correlation: config.correlation.map(correlation::Correlation::new),
            classify: config.classify.map(classify::Classify::new).transpose()?,
        })
    }

    /// The SDK calls [`Transform::process_text`]; this serves callers that
    /// hold a decoded event, through the same code.
    fn process(&mut self, event: Event) -> Outcome {
        sluice_plugin_sdk::process_as_text(event, |text| self.enrich(text))
    }

    fn process_text(&mut self, text: &str) -> Option<Outcome> {
        Some(self.enrich(text))
    }
}

impl EnrichStatic {
    /// Enriches one event's text: decoded into a tree that borrows from it,
    /// and written back as the text plus the keys added (see [`doc`]).
    pub fn enrich(&self, text: &str) -> Outcome {
        let mut event = match Doc::parse(text) {
            Ok(event) => event,
            Err(e) => return Outcome::Error(e),
        };
        self.apply(&mut event);
        if event.unchanged() { Outcome::Unchanged } else { Outcome::Text(event.finish(text)) }
    }

    /// The enrichments, in their order, on a decoded event.
    pub fn apply(&self, event: &mut Doc) {
        for (from, to) in &self.rename {
            if let Some(value) = event.remove(from) {
                event.insert(to, value);
            }
        }
        for (field, value) in &self.defaults {
            if event.absent(field) {
                event.insert(field, value.clone());
            }
        }
        for (field, value) in &self.set {
            event.insert(field, value.clone());
        }
        for lookup in &self.lookups {
            lookup.apply(event);
        }
        if let Some(networks) = &self.networks {
            networks.apply(event);
        }
        if let Some(correlation) = &self.correlation {
            correlation.apply(event);
        }
        if let Some(classify) = &self.classify {
            classify.apply(event);
        }
    }
}

export_transform!(EnrichStatic);

#[cfg(test)]
mod tests;
