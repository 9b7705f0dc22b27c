//! Conformance suites for beaker-rs stores, cache backends and framework adapters. (work in progress)
