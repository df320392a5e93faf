//! The `gantry` binary: parse, run, report. Errors print with their context chain.

use std::process::ExitCode;

fn main() -> ExitCode {
    match gantry::cli::run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
