//! Config loading and validation: YAML -> every problem with FILE:LINE:COL -> typed config.

mod types;
pub use types::*;
