//! Test support shared by every workflow's tests: the in-memory fleet behind the
//! ports ([`fleet`], feature `test-util`) and the event fixtures ([`fixtures`]).

#[cfg(test)]
pub mod fixtures;
pub mod fleet;
