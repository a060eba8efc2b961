//! The suite package: its integration tests (`tests/*.rs`) run the functions
//! against the AWS stand-in over real HTTP. Their helpers are in the `testkit`
//! crate, re-exported here.
//!
//! Beside it, `cfn.rs` reads and resolves the SAM template for the template
//! tests (`tests/template/`). It is not a module of this lib: serde_json and
//! serde_yaml_ng are dev-dependencies of the package, so a test includes it by
//! path (`#[path = "../support/cfn.rs"] mod cfn;`).

pub use testkit::*;
