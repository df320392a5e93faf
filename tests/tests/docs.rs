//! Docs that cannot rot: every RON config in README.md and the book (docs/src) parses
//! against the current schema (and `gantry data inspect` runs on those whose data this
//! machine has), every `gantry ...` command line in a shell block exists in the CLI
//! (subcommands and flags), and every relative link points at a file and heading that
//! exist. A renamed field, flag or chapter breaks this test, not the user. The checkers
//! are also run on deliberately broken examples, so a checker that lets everything pass
//! fails here.

use std::path::{Path, PathBuf};

use clap::Parser as _;
use gantry::cli::Cli;
use gantry::runfs::spec::RunSpec;

/// README.md and every Markdown file of the book.
fn doc_files() -> Vec<PathBuf> {
    let root = gantry_e2e::workspace_root();
    let mut files = vec![root.join("README.md")];
    let src = root.join("docs/src");
    if let Ok(entries) = std::fs::read_dir(&src) {
        let mut chapters: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "md"))
            .collect();
        chapters.sort();
        files.extend(chapters);
    }
    files
}

/// A fenced block: its info string (`ron`, `sh`), first line number, and text.
struct Block {
    info: String,
    line: usize,
    text: String,
}

fn fenced_blocks(markdown: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut open: Option<Block> = None;
    for (i, line) in markdown.lines().enumerate() {
        let trimmed = line.trim_start();
        match (&mut open, trimmed.strip_prefix("```")) {
            (None, Some(info)) => {
                open = Some(Block {
                    info: info.trim().to_string(),
                    line: i + 2,
                    text: String::new(),
                })
            }
            (Some(_), Some(_)) => blocks.extend(open.take()),
            (Some(block), None) => {
                block.text.push_str(line);
                block.text.push('\n');
            }
            (None, None) => {}
        }
    }
    blocks
}

/// Minimal fields a fragment (`data: (...)`, `launcher: ...`) is placed among to parse.
const BASE: &[(&str, &str)] = &[
    ("plugin", r#""conv-ae""#),
    (
        "data",
        r#"(kind: ImageFolder, root: "data", size: (32, 32), channels: 1)"#,
    ),
    ("train", "(epochs: 1, batch_size: 8)"),
];

/// The top-level `name: value` items of a fragment, split at depth-0 commas/newlines.
fn fragment_items(text: &str) -> Vec<(String, String)> {
    let mut items = Vec::new();
    let mut depth = 0i32;
    let mut current = String::new();
    let mut in_string = false;
    let mut escaped = false;
    let mut flush = |current: &mut String| {
        let item = current.trim().trim_end_matches(',').trim().to_string();
        if let Some((name, value)) = item.split_once(':')
            && !name.trim().is_empty()
            && name.trim().chars().all(|c| c.is_alphanumeric() || c == '_')
        {
            items.push((name.trim().to_string(), value.trim().to_string()));
        }
        current.clear();
    };
    for line in text.lines() {
        // Comments end at the line's end (none of these configs has `//` in a string).
        let line = match line.find("//") {
            Some(at) if !line[..at].contains('"') || line[..at].matches('"').count() % 2 == 0 => {
                &line[..at]
            }
            _ => line,
        };
        for c in line.chars() {
            if in_string {
                current.push(c);
                match (escaped, c) {
                    (false, '\\') => escaped = true,
                    (false, '"') => in_string = false,
                    _ => escaped = false,
                }
                continue;
            }
            match c {
                '"' => in_string = true,
                '(' | '[' | '{' => depth += 1,
                ')' | ']' | '}' => depth -= 1,
                ',' if depth == 0 => {
                    flush(&mut current);
                    continue;
                }
                _ => {}
            }
            current.push(c);
        }
        current.push('\n');
        if depth == 0 && !in_string {
            flush(&mut current);
        }
    }
    flush(&mut current);
    items
}

/// Parses one ```ron block: a whole config, or a fragment of top-level fields (each
/// item placed among [`BASE`]'s others). Returns the configs, or why it does not parse.
fn check_ron(text: &str) -> Result<Vec<(String, RunSpec)>, String> {
    let path = Path::new("docs.ron");
    if text.trim_start().starts_with('(') {
        let spec = RunSpec::parse(path, text).map_err(|e| e.to_string())?;
        return Ok(vec![(text.to_string(), spec)]);
    }
    let items = fragment_items(text);
    if items.is_empty() {
        return Err("neither a config nor `field: value` items".into());
    }
    let mut out = Vec::new();
    for (name, value) in &items {
        let mut fields: Vec<String> = BASE
            .iter()
            .filter(|(n, _)| n != name)
            .map(|(n, v)| format!("{n}: {v}"))
            .collect();
        fields.push(format!("{name}: {value}"));
        let config = format!("(\n{},\n)\n", fields.join(",\n"));
        let spec = RunSpec::parse(path, &config).map_err(|e| format!("{name}: {e}"))?;
        out.push((config, spec));
    }
    Ok(out)
}

/// The `gantry` invocations of a shell block: `gantry ...` and `cargo run --release --
/// ...` lines (after `$ `, env assignments, with `\` continuations joined and comments,
/// pipes and `&&` chains cut).
fn gantry_commands(text: &str) -> Vec<Vec<String>> {
    let mut joined = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(head) = line.strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
            continue;
        }
        pending.push_str(line);
        joined.push(std::mem::take(&mut pending));
    }
    let mut out = Vec::new();
    for line in joined {
        let line = line.trim_start_matches("$ ");
        for part in line.split("&&").flat_map(|p| p.split(';')) {
            let part = part.split(" | ").next().unwrap_or("");
            let part = match part.find(" #") {
                Some(at) => &part[..at],
                None => part,
            };
            let Some(words) = shlex::split(part) else {
                continue;
            };
            let mut words: Vec<String> = words
                .into_iter()
                .skip_while(|w| w.contains('=') && !w.starts_with('-'))
                .collect();
            // Output redirections are the shell's, not gantry's.
            if let Some(at) = words.iter().position(|w| w.starts_with('>') || w == "2>&1") {
                words.truncate(at);
            }
            let args = match words.first().map(String::as_str) {
                Some("gantry") => words,
                Some("cargo") if words.get(1).map(String::as_str) == Some("run") => {
                    match words.iter().position(|w| w == "--") {
                        Some(at) => std::iter::once("gantry".to_string())
                            .chain(words[at + 1..].iter().cloned())
                            .collect(),
                        None => vec!["gantry".to_string()],
                    }
                }
                _ => continue,
            };
            out.push(args);
        }
    }
    out
}

/// Whether the CLI takes these arguments (`--help` and `--version` count as taken).
fn check_command(args: &[String]) -> Result<(), String> {
    match Cli::try_parse_from(args) {
        Ok(_) => Ok(()),
        Err(e)
            if matches!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
            ) =>
        {
            Ok(())
        }
        Err(e) => Err(e.to_string().lines().next().unwrap_or("").to_string()),
    }
}

/// mdBook's anchor for a heading: lowercased, spaces to `-`, other punctuation dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn anchors(markdown: &str) -> Vec<String> {
    let mut in_code = false;
    let mut out = Vec::new();
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
        }
        if !in_code && line.starts_with('#') {
            out.push(anchor(line.trim_start_matches('#')));
        }
    }
    out
}

/// Relative link targets `](target)` outside code blocks and code spans.
fn links(markdown: &str) -> Vec<(usize, String)> {
    let mut in_code = false;
    let mut out = Vec::new();
    for (i, line) in markdown.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        // Drop inline code spans.
        let text: String = line
            .split('`')
            .enumerate()
            .filter(|(k, _)| k % 2 == 0)
            .map(|(_, s)| s)
            .collect::<Vec<_>>()
            .join(" ");
        let mut rest = text.as_str();
        while let Some(at) = rest.find("](") {
            rest = &rest[at + 2..];
            let Some(end) = rest.find(')') else { break };
            let target = rest[..end].split_whitespace().next().unwrap_or("");
            if !target.contains("://") && !target.starts_with("mailto:") && !target.is_empty() {
                out.push((i + 1, target.to_string()));
            }
            rest = &rest[end..];
        }
    }
    out
}

fn check_link(from: &Path, target: &str) -> Result<(), String> {
    let (file, fragment) = match target.split_once('#') {
        Some((f, a)) => (f, Some(a)),
        None => (target, None),
    };
    let path = if file.is_empty() {
        from.to_path_buf()
    } else {
        from.parent().unwrap().join(file)
    };
    if !path.exists() {
        return Err(format!("{} does not exist", path.display()));
    }
    if let Some(fragment) = fragment
        && path.extension().is_some_and(|x| x == "md")
    {
        let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
        if !anchors(&text).iter().any(|a| a == fragment) {
            return Err(format!("{} has no heading #{fragment}", path.display()));
        }
    }
    Ok(())
}

#[test]
fn every_config_command_and_link_in_the_docs_holds() {
    let root = gantry_e2e::workspace_root();
    let mut problems = Vec::new();
    let mut configs = 0;
    let mut commands = 0;
    let mut inspected = 0;
    let dir = tempfile::tempdir().unwrap();
    for file in doc_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        let name = file
            .strip_prefix(&root)
            .unwrap_or(&file)
            .display()
            .to_string();
        for block in fenced_blocks(&text) {
            let lang = block.info.split([',', ' ']).next().unwrap_or("");
            match lang {
                "ron" => match check_ron(&block.text) {
                    Ok(specs) => {
                        configs += specs.len();
                        for (config, spec) in specs {
                            if !spec.data.root.is_absolute() || !spec.data.root.exists() {
                                continue;
                            }
                            let path = dir.path().join(format!("c{inspected}.ron"));
                            std::fs::write(&path, config).unwrap();
                            let (code, out, err) =
                                gantry_e2e::gantry(&["data", "inspect", path.to_str().unwrap()]);
                            if code != 0 && !out.contains("train") {
                                problems.push(format!(
                                    "{name}:{}: gantry data inspect failed: {err}{out}",
                                    block.line
                                ));
                            }
                            inspected += 1;
                        }
                    }
                    Err(e) => problems.push(format!("{name}:{}: config: {e}", block.line)),
                },
                "sh" | "bash" | "console" | "shell" => {
                    for args in gantry_commands(&block.text) {
                        commands += 1;
                        if let Err(e) = check_command(&args) {
                            problems.push(format!(
                                "{name}:{}: `{}`: {e}",
                                block.line,
                                args.join(" ")
                            ));
                        }
                    }
                }
                _ => {}
            }
        }
        for (line, target) in links(&text) {
            if let Err(e) = check_link(&file, &target) {
                problems.push(format!("{name}:{line}: link {target}: {e}"));
            }
        }
    }
    eprintln!("docs: {configs} config(s), {inspected} inspected, {commands} command line(s)");
    assert!(
        problems.is_empty(),
        "docs out of date:\n{}",
        problems.join("\n")
    );
    assert!(
        configs >= 3 && commands >= 10,
        "too few examples found: the scan broke"
    );
}

/// The checkers refuse what is wrong: a renamed field, an unknown subcommand or flag,
/// a dead link.
#[test]
fn broken_examples_are_caught() {
    let good = "(plugin: \"conv-ae\", data: (kind: ImageFolder, root: \"d\", size: (32, 32)), \
                train: (epochs: 1, batch_size: 8))";
    assert!(check_ron(good).is_ok());
    let renamed = good.replace("batch_size", "batchsize");
    assert!(check_ron(&renamed).is_err(), "a renamed field parsed");
    assert!(check_ron("data: (kind: Idx, root: \"/x\", size: (28, 28))").is_ok());
    assert!(check_ron("data: (kind: Idxx, root: \"/x\", size: (28, 28))").is_err());
    assert!(check_ron("launcher: Slurm(partition: Some(\"gpu\"))").is_ok());

    let cmds = gantry_commands(
        "$ gantry train cfg.ron --runs runs  # a comment\n\
         cargo run --release -- demo --no-ui\n\
         GANTRY_X=1 gantry watch \\\n  --runs a --poll 2\n\
         gantry runs ls --json | jq .\n\
         echo hi && gantry wach --runs x\n\
         gantry train cfg.ron --epocs 3\n",
    );
    let verdicts: Vec<bool> = cmds.iter().map(|c| check_command(c).is_ok()).collect();
    assert_eq!(verdicts, [true, true, true, true, false, false], "{cmds:?}");

    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("a.md");
    std::fs::write(&page, "# Run folder\n\n## The `status.ron` file\n").unwrap();
    assert!(check_link(&page, "a.md#run-folder").is_ok());
    assert!(check_link(&page, "#the-statusron-file").is_ok());
    assert!(check_link(&page, "a.md#no-such-heading").is_err());
    assert!(check_link(&page, "missing.md").is_err());
    assert_eq!(
        links("see [x](a.md#b) and `[y](not-a-link)` [z](https://example.org)"),
        [(1, "a.md#b".to_string())]
    );
}
