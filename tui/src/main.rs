//! The `gantry` binary: parse, run, report. Errors print with their context chain.

use std::process::ExitCode;

fn main() -> ExitCode {
    match gantry::cli::run() {
        Ok(code) => code,
        Err(e) => {
            // Messages quote file names and file contents: never raw escapes to a terminal.
            let text = gantry::text::escape_controls_keep_newlines(&format!("{e:#}"));
            eprintln!("error: {text}");
            ExitCode::FAILURE
        }
    }
}
