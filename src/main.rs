fn main() -> std::process::ExitCode {
    keymint::cli::main()
}
