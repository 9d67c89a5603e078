//! The bundled plugins compiled into the host: pipeline (b) of the
//! benchmark, which measures what the Wasm sandbox costs.
//!
//! Built only with `--features native-plugins` and used only when
//! `sluice run --native-plugins` asks for it. A native stage calls the same
//! SDK glue (`sluice_plugin_sdk::glue`) the Wasm export calls, on copies of the
//! inputs, so the two differ only in the sandbox: instantiation, the canonical
//! ABI copies, bounds checks, the fuel of epochs. It has no sandbox at all: no
//! memory cap, no timeout, no isolation of a fault; never use it for
//! untrusted plugins or real archives. Files it writes are logged with the
//! digest `native`, not a component's SHA-256.

use crate::stage::{Input, Outcome, Stage, StageIdentity};
use crate::wasm::Plugin;
use sluice_plugin_sdk::glue::{self, Wire};
use sluice_plugin_sdk::{Parser, Transform};
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Makes every later stage of a bundled plugin native.
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// Whether `plugin` runs as host code: native stages are on and it is one of
/// the bundled plugins (by its bytes, not only its name).
pub fn replaces(plugin: &Plugin) -> bool {
    use sha2::Digest;
    ENABLED.load(Ordering::Relaxed)
        && constructor(plugin.name()).is_some()
        && crate::bundled::get(plugin.name())
            .is_some_and(|bytes| hex::encode(sha2::Sha256::digest(bytes)) == plugin.digest)
}

/// The native stage for `plugin`, when native stages are on; `None` when they
/// are off, or when the plugin is not one of the bundled ones.
pub fn stage(plugin: &Plugin) -> Option<Result<Box<dyn Stage>, String>> {
    if !replaces(plugin) {
        return None;
    }
    let identity = StageIdentity {
        stage: plugin.stage.clone(),
        plugin: plugin.name().to_string(),
        version: plugin.version().to_string(),
        sha256: "native".into(),
    };
    constructor(plugin.name()).map(|build| build(identity, plugin.config_json()))
}

type Constructor = fn(StageIdentity, &str) -> Result<Box<dyn Stage>, String>;

/// How to build the native stage of a bundled plugin, by its name.
fn constructor(name: &str) -> Option<Constructor> {
    Some(match name {
        "parse-json" => NativeParser::<parse_json::ParseJson>::build,
        "parse-syslog" => NativeParser::<parse_syslog::ParseSyslog>::build,
        "parse-k8s-audit" => NativeParser::<parse_k8s_audit::ParseK8sAudit>::build,
        "parse-cloudtrail" => NativeParser::<parse_cloudtrail::ParseCloudTrail>::build,
        "parse-auditd" => NativeParser::<parse_auditd::ParseAuditd>::build,
        "parse-gcp-audit" => NativeParser::<parse_gcp_audit::ParseGcpAudit>::build,
        "parse-github-audit" => NativeParser::<parse_github_audit::ParseGithubAudit>::build,
        "parse-okta" => NativeParser::<parse_okta::ParseOkta>::build,
        "parse-access-log" => NativeParser::<parse_access_log::ParseAccessLog>::build,
        "redact" => NativeTransform::<redact::Redact>::build,
        "enrich-static" => NativeTransform::<enrich_static::EnrichStatic>::build,
        _ => return None,
    })
}

fn outcome(wire: Wire) -> Outcome {
    match wire {
        Wire::Keep(e) => Outcome::Keep(e),
        Wire::Drop(r) => Outcome::Drop(r),
        Wire::Many(es) => Outcome::Many(es),
        Wire::Error(r) => Outcome::Error(r),
    }
}

struct NativeParser<T> {
    identity: StageIdentity,
    plugin: RefCell<Option<T>>,
}

impl<T: Parser + Send + 'static> NativeParser<T> {
    fn build(identity: StageIdentity, config: &str) -> Result<Box<dyn Stage>, String> {
        let plugin = RefCell::new(None);
        glue::init(&plugin, config, T::init)?;
        Ok(Box::new(NativeParser { identity, plugin }))
    }
}

impl<T: Parser + Send> Stage for NativeParser<T> {
    fn identity(&self) -> &StageIdentity {
        &self.identity
    }

    fn call(&mut self, input: Input<'_>) -> Result<Vec<Outcome>, String> {
        let Input::Records(records) = input else { return Err("a parser was given events".into()) };
        // a copy, as the call into a Wasm instance makes one
        Ok(glue::parse(&self.plugin, records.to_vec()).into_iter().map(outcome).collect())
    }
}

struct NativeTransform<T> {
    identity: StageIdentity,
    plugin: RefCell<Option<T>>,
}

impl<T: Transform + Send + 'static> NativeTransform<T> {
    fn build(identity: StageIdentity, config: &str) -> Result<Box<dyn Stage>, String> {
        let plugin = RefCell::new(None);
        glue::init(&plugin, config, T::init)?;
        Ok(Box::new(NativeTransform { identity, plugin }))
    }
}

impl<T: Transform + Send> Stage for NativeTransform<T> {
    fn identity(&self) -> &StageIdentity {
        &self.identity
    }

    fn call(&mut self, input: Input<'_>) -> Result<Vec<Outcome>, String> {
        let Input::Events(events) = input else { return Err("a transform was given raw records".into()) };
        Ok(glue::process(&self.plugin, events.to_vec()).into_iter().map(outcome).collect())
    }
}
