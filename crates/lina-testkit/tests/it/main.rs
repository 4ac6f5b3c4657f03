//! Integration tests of lina-testkit: one binary, one module per area.

mod discovery;
mod postgres;
mod redis;
mod support;
mod util;
