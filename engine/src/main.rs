//! The `phasegate` command-line tool; see `phasegate --help`.

fn main() -> std::process::ExitCode {
    phasegate_engine::cli::main()
}
