//! The integration tests: one binary, as ripgrep's `tests/tests.rs`, so the crate and the
//! helpers in `util` are compiled and linked once and every test runs in one harness. Each
//! topic is a module in its own file (`cargo test --test tests attacks::` runs one).
//! Cargo.toml turns `autotests` off, so a file added to `tests/` is compiled only once it
//! is listed here (`layering::every_test_file_is_a_module_of_the_test_binary` says so).
//!
//! The tests run in parallel threads of this one process: each starts its own `rccd`
//! processes on ports of their own and works in a temp dir of its own, and none changes the
//! process's environment, working directory or signal handlers.

mod util;

mod attacks;
mod budgets;
mod depfiles;
mod discovery;
mod failures;
mod farm;
mod faults;
mod forms;
mod health;
mod hostile;
mod hostile_box;
mod layering;
mod local_only;
mod objects;
mod packaging;
mod scan_server;
mod security;
mod sources;
mod thermal;
mod zero_tuning;
