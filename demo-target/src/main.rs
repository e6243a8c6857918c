//! The `phasegate-demo-target` binary; see `phasegate-demo-target --help`.

fn main() -> std::process::ExitCode {
    phasegate_demo_target::main()
}
