//! Sessions and caching for Rust web services, in the spirit of Python's Beaker. (work in progress)
