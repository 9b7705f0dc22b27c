//! The store and cache backend conformance suites (being written).
