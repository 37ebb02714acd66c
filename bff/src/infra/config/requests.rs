//! Settings of the request box: where its catalog of actions is.

use std::path::PathBuf;

/// Where the catalog is. The inventories it names are read from the local engine's inventory
/// directory (`PLAYDECK_INVENTORY_DIR`), the files a launch names.
#[derive(Debug, Clone)]
pub struct RequestsConfig {
    /// The catalog (`PLAYDECK_CATALOG`, default `examples/catalog.json` in the working directory).
    pub catalog: PathBuf,
}

impl RequestsConfig {
    pub fn from_env() -> RequestsConfig {
        use super::env::var;
        RequestsConfig {
            catalog: PathBuf::from(var("PLAYDECK_CATALOG").unwrap_or_else(|| "examples/catalog.json".into())),
        }
    }

    /// The project's own catalog.
    pub fn for_tests() -> RequestsConfig {
        RequestsConfig {
            catalog: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/catalog.json")),
        }
    }
}
