//! `cargo xtask services`: the PostgreSQL and Redis that tests use.

use anyhow::Result;
use clap::{Args, ValueEnum};
use lina_testkit::{DATABASE_URL_ENV, REDIS_URL_ENV};

use crate::test::describe;

/// Options of `cargo xtask services`.
#[derive(Debug, Args)]
pub struct ServicesArgs {
    /// What to do.
    #[arg(value_enum, default_value_t = Action::Start)]
    action: Action,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Action {
    /// Find or start both services; print `export` lines for a shell.
    Start,
    /// Stop the throwaway servers recorded in the state directory.
    Stop,
}

/// Runs `cargo xtask services`.
pub fn run(args: ServicesArgs) -> Result<()> {
    match args.action {
        Action::Start => {
            let services = lina_testkit::ensure_services_blocking()?;
            describe("postgres", &services.database.url, services.database.source);
            describe("redis", &services.redis.url, services.redis.source);
            println!("export {DATABASE_URL_ENV}='{}'", services.database.url);
            println!("export {REDIS_URL_ENV}='{}'", services.redis.url);
        }
        Action::Stop => {
            lina_testkit::stop_throwaways_blocking()?;
            eprintln!("xtask services: throwaway servers stopped");
        }
    }
    Ok(())
}
