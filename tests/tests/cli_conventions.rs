//! What users of terminal tools expect of a CLI: shell completions that complete, and a
//! man page that `man` renders, both generated from the one CLI definition.

use std::process::Command;

use gantry_e2e::gantry;

/// bash, sourcing `gantry completions bash`, completes `gantry wa<TAB>` to `watch` and
/// `gantry watch --po<TAB>` to `--poll`.
#[test]
fn bash_completes_subcommands_and_flags() {
    let (code, script, err) = gantry(&["completions", "bash"]);
    assert_eq!(code, 0, "{err}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gantry.bash");
    std::fs::write(&file, script).unwrap();
    let complete = |words: &[&str]| -> Vec<String> {
        let line = words.join(" ");
        let snippet = format!(
            "source {file}; COMP_WORDS=({line}); COMP_CWORD={cword}; COMP_LINE='{line}'; \
             COMP_POINT={point}; _gantry gantry '{last}' '{prev}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            file = file.display(),
            cword = words.len() - 1,
            point = line.len(),
            last = words[words.len() - 1],
            prev = words[words.len() - 2],
        );
        let out = Command::new("bash")
            .args(["--norc", "-c", &snippet])
            .output()
            .expect("bash");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    assert_eq!(complete(&["gantry", "wa"]), ["watch"]);
    assert_eq!(complete(&["gantry", "watch", "--po"]), ["--poll"]);
    assert!(complete(&["gantry", "runs", ""]).contains(&"ls".to_string()));
    for shell in ["zsh", "fish"] {
        let (code, script, err) = gantry(&["completions", shell]);
        assert_eq!(code, 0, "{err}");
        assert!(script.contains("watch"), "{shell}: {script}");
    }
}

/// `gantry man` is a man page `man -l` renders, naming the subcommands.
#[test]
fn man_page_renders() {
    let (code, page, err) = gantry(&["man"]);
    assert_eq!(code, 0, "{err}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gantry.1");
    std::fs::write(&file, page).unwrap();
    let out = Command::new("man")
        .arg("-l")
        .arg(&file)
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100")
        .output()
        .expect("man must be installed (.ci/run installs man-db)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for word in ["gantry", "watch", "train", "resume", "completions"] {
        assert!(text.contains(word), "man page lacks {word}:\n{text}");
    }
}
