//! `e` in the new-run form: the whole config in `$EDITOR` (default `vi`). The dashboard
//! hands the terminal over (input thread paused, raw mode and the alternate screen left),
//! the editor runs on a private temporary file, and the dashboard takes the terminal back
//! and redraws in full.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};
use crossterm::execute;
use crossterm::terminal::{EnterAlternateScreen, enable_raw_mode};

use super::event::InputGate;

/// Edits `text` in the user's editor with the TUI suspended; returns the saved text.
pub fn edit(terminal: &mut super::Screen, gate: &InputGate, text: &str) -> Result<String> {
    gate.pause();
    ratatui::restore();
    let edited = edit_text(&editor(), text);
    let back = enable_raw_mode()
        .and_then(|()| execute!(std::io::stdout(), EnterAlternateScreen))
        .and_then(|()| terminal.clear());
    gate.resume();
    back.context("taking the terminal back after the editor")?;
    edited
}

/// `$EDITOR`, else `vi`.
fn editor() -> String {
    std::env::var("EDITOR")
        .ok()
        .filter(|e| !e.trim().is_empty())
        .unwrap_or_else(|| "vi".into())
}

/// Writes `text` to a fresh temporary file, runs `editor` on it and reads it back.
/// `editor` may carry arguments (`code -w`), as git allows, so it runs through `sh`.
pub fn edit_text(editor: &str, text: &str) -> Result<String> {
    let path = temp_file(text)?;
    let result = run_editor(editor, &path);
    let read =
        std::fs::read_to_string(&path).with_context(|| format!("reading {} back", path.display()));
    let _ = std::fs::remove_file(&path);
    result?;
    read
}

fn run_editor(editor: &str, path: &Path) -> Result<()> {
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("gantry-editor")
        .arg(path)
        .status()
        .with_context(|| format!("starting the editor ({editor})"))?;
    if !status.success() {
        bail!("the editor ({editor}) exited with {status}; the form is unchanged");
    }
    Ok(())
}

/// A new file only this user can read, under the temporary folder; never an existing
/// one (a planted symlink there is not followed).
fn temp_file(text: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    for attempt in 0..100u32 {
        let path = dir.join(format!(
            "gantry-run-{}-{nanos}-{attempt}.ron",
            std::process::id()
        ));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(mut f) => {
                f.write_all(text.as_bytes())
                    .with_context(|| format!("writing {}", path.display()))?;
                return Ok(path);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
        }
    }
    bail!("no free temporary file name under {}", dir.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_editor_edits_a_private_copy() {
        let edited = edit_text("sed -i s/epochs:\\ 5/epochs:\\ 7/", "(epochs: 5)\n").unwrap();
        assert_eq!(edited, "(epochs: 7)\n");
        let err = edit_text("false", "x").unwrap_err().to_string();
        assert!(err.contains("exited with"), "{err}");
    }
}
