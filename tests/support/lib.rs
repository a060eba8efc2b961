//! The suite package: its integration tests (`tests/*.rs`) run the functions
//! against the AWS stand-in over real HTTP. Their helpers are in the `testkit`
//! crate, re-exported here.
//!
//! [`cfn`] reads and resolves the SAM template for the template tests
//! (`tests/template/`).

pub mod cfn;

pub use testkit::*;
