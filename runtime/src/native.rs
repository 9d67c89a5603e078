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
        "parse-json" => parser::<parse_json::ParseJson>,
        "parse-syslog" => parser::<parse_syslog::ParseSyslog>,
        "parse-k8s-audit" => parser::<parse_k8s_audit::ParseK8sAudit>,
        "parse-cloudtrail" => parser::<parse_cloudtrail::ParseCloudTrail>,
        "parse-auditd" => parser::<parse_auditd::ParseAuditd>,
        "parse-gcp-audit" => parser::<parse_gcp_audit::ParseGcpAudit>,
        "parse-github-audit" => parser::<parse_github_audit::ParseGithubAudit>,
        "parse-okta" => parser::<parse_okta::ParseOkta>,
        "parse-access-log" => parser::<parse_access_log::ParseAccessLog>,
        "redact" => transform::<redact::Redact>,
        "enrich-static" => transform::<enrich_static::EnrichStatic>,
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

/// A bundled plugin as host code: the SDK glue over its instance, behind the
/// input kind its world takes.
struct NativeStage {
    identity: StageIdentity,
    call: Box<NativeCall>,
}

type NativeCall = dyn for<'a> FnMut(Input<'a>) -> Result<Vec<Wire>, String> + Send;

fn parser<T: Parser + Send + 'static>(identity: StageIdentity, config: &str) -> Result<Box<dyn Stage>, String> {
    let plugin = RefCell::new(None);
    glue::init(&plugin, config, T::init)?;
    let call = Box::new(move |input: Input<'_>| match input {
        // a copy, as the call into a Wasm instance makes one
        Input::Records(records) => Ok(glue::parse(&plugin, records.to_vec())),
        Input::Events(_) => Err("a parser was given events".to_string()),
    });
    Ok(Box::new(NativeStage { identity, call }))
}

fn transform<T: Transform + Send + 'static>(identity: StageIdentity, config: &str) -> Result<Box<dyn Stage>, String> {
    let plugin = RefCell::new(None);
    glue::init(&plugin, config, T::init)?;
    let call = Box::new(move |input: Input<'_>| match input {
        Input::Events(events) => Ok(glue::process(&plugin, events.to_vec())),
        Input::Records(_) => Err("a transform was given raw records".to_string()),
    });
    Ok(Box::new(NativeStage { identity, call }))
}

impl Stage for NativeStage {
    fn identity(&self) -> &StageIdentity {
        &self.identity
    }

    fn call(&mut self, input: Input<'_>) -> Result<Vec<Outcome>, String> {
        Ok((self.call)(input)?.into_iter().map(outcome).collect())
    }
}
