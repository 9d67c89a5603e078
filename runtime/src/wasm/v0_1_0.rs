//! Host bindings for `sluice:plugin@0.1.0` (the frozen folder `wit/v0.1.0`).

pub mod parser {
    wasmtime::component::bindgen!({
        path: "../wit/v0.1.0",
        world: "parser-plugin",
    });
}

pub mod transform {
    wasmtime::component::bindgen!({
        path: "../wit/v0.1.0",
        world: "transform-plugin",
        with: {
            "sluice:plugin/types": super::parser::sluice::plugin::types,
            "sluice:plugin/host": super::parser::sluice::plugin::host,
        },
    });
}

pub use parser::sluice::plugin::host::Host;
pub use parser::sluice::plugin::types::{Level, Outcome, PluginInfo};

/// The export names the host looks for, and the package version they carry.
pub const PARSER_EXPORT: &str = "sluice:plugin/parser@0.1.0";
pub const TRANSFORM_EXPORT: &str = "sluice:plugin/transform@0.1.0";
