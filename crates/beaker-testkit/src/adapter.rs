//! The adapter conformance suite (being written).
