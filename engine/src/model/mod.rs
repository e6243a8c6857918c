//! The definition format: raw serde types, loading from TOML or JSON, located
//! diagnostics and the generated JSON Schema.
//!
//! Nothing here knows about running workflows. The raw types accept any
//! document of the right shape; [`crate::plan::validate`] turns one into a
//! checked [`crate::plan::Workflow`].

mod def;
mod diagnostic;
mod format;
mod load;
mod locate;
mod path;
mod schema;
mod strict_json;

pub use def::*;
pub use diagnostic::{Diagnostic, Diagnostics, Kind};
pub use format::Format;
pub use load::{Source, MAX_DEFINITION_BYTES};
pub use path::{FieldPath, Segment};
pub use schema::{json_schema, json_schema_text};
