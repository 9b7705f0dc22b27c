//! The demo contract (`docs/demo-contract.md`), black-box, on the axum demo: the
//! shared tests of [`beaker_testkit::adapter::demo`].

beaker_testkit::demo_contract_tests!(env!("CARGO_BIN_EXE_demo-axum"));
