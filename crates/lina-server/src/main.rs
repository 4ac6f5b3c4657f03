//! The `lina-server` binary: see the crate docs of `lina_server`.

fn main() -> std::process::ExitCode {
    lina_server::cli::main()
}
