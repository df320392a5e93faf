//! `runs ls` and `plugins ls`: tables for people, JSON for scripts.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use serde::Serialize;

use crate::interop::foreign;
use crate::plugins::{self, PluginEntry};
use crate::runfs::status::Liveness;
use crate::runfs::status::hostname;
use crate::runfs::{list_runs, time};
use crate::text::escape_controls as escape;

/// A run another program wrote, read once as the dashboard reads it: its latest value of
/// each tag as the metrics.
fn foreign_line(found: &foreign::Found, now: f64) -> RunLine {
    let mut run = foreign::ForeignRun::new(found);
    let read = run.refresh();
    let mut latest: std::collections::BTreeMap<String, (u64, f64)> = Default::default();
    for change in read.changes {
        match change {
            foreign::Change::Row(row) => {
                latest.insert(row.tag, (row.step, row.value));
            }
            // A restart in an event file: what it logged from `step` on is gone.
            foreign::Change::Purge { prefix, step } => {
                latest.retain(|tag, (s, _)| !(tag.starts_with(&prefix) && *s >= step));
            }
        }
    }
    RunLine {
        id: found.id.clone(),
        path: found.path.clone(),
        kind: found.kind.label(),
        plugin: None,
        state: Liveness::External {
            live: run.is_live(now),
        }
        .label()
        .to_string(),
        epoch: None,
        epochs: None,
        step: latest.values().map(|(step, _)| *step).max(),
        best: None,
        metrics: latest.into_iter().map(|(tag, (_, v))| (tag, v)).collect(),
        device: None,
        error: read.errors.into_iter().next(),
    }
}

/// One run as `runs ls --json` prints it.
#[derive(Debug, Serialize)]
struct RunLine {
    id: String,
    path: PathBuf,
    /// `gantry`, or the program whose files these are (`tensorboard`, `keras-csv`).
    kind: &'static str,
    plugin: Option<String>,
    /// Recorded state, or `stalled` / `crashed` as derived from heartbeat and pid.
    state: String,
    epoch: Option<u32>,
    epochs: Option<u32>,
    step: Option<u64>,
    best: Option<(String, f64)>,
    metrics: Vec<(String, f64)>,
    device: Option<String>,
    error: Option<String>,
}

pub fn runs(root: &Path, json: bool) -> Result<()> {
    let lines = run_lines(root, time::now())?;
    print_runs(root, &lines, json)
}

/// Every run under `root` as the dashboard lists it: gantry's run folders, then the
/// TensorBoard logdirs and Keras CSV histories other programs wrote.
fn run_lines(root: &Path, now: f64) -> Result<Vec<RunLine>> {
    let host = hostname();
    Ok(list_runs(root)?
        .into_iter()
        .map(|run| {
            let status = run.status.as_ref().ok();
            let problem = [run.record.as_ref().err(), run.status.as_ref().err()]
                .into_iter()
                .flatten()
                .next()
                .cloned();
            RunLine {
                id: run.folder.id(),
                path: run.folder.dir.clone(),
                kind: "gantry",
                plugin: run.record.as_ref().ok().map(|r| r.plugin.name.clone()),
                state: status
                    .map(|s| s.liveness(now, &host).label().to_string())
                    .unwrap_or_else(|| "unreadable".into()),
                epoch: status.map(|s| s.epoch),
                epochs: status.map(|s| s.epochs),
                step: status.map(|s| s.step),
                best: status.and_then(|s| s.best.as_ref().map(|b| (b.tag.clone(), b.value))),
                metrics: status.map(|s| s.latest.clone()).unwrap_or_default(),
                device: status.and_then(|s| s.device.clone()),
                error: problem.or_else(|| status.and_then(|s| s.error.clone())),
            }
        })
        .chain(
            foreign::discover(root)
                .iter()
                .map(|found| foreign_line(found, now)),
        )
        .collect())
}

fn print_runs(root: &Path, lines: &[RunLine], json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(&lines)?);
        return Ok(());
    }
    if lines.is_empty() {
        println!("no runs under {}", root.display());
        return Ok(());
    }
    println!(
        "{:<36} {:<10} {:<9} {:>7} {:>7} {:<22} {:<16}",
        "RUN", "PLUGIN", "STATE", "EPOCH", "STEP", "BEST", "TEST/AUROC"
    );
    for l in lines {
        let auroc = l
            .metrics
            .iter()
            .find(|(t, _)| t == "test/auroc")
            .map(|(_, v)| format!("{v:.4}"))
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<36} {:<10} {:<9} {:>7} {:>7} {:<22} {:<16}",
            escape(&l.id),
            escape(
                l.plugin
                    .as_deref()
                    .unwrap_or(if l.kind == "gantry" { "?" } else { l.kind })
            ),
            l.state,
            match (l.epoch, l.epochs) {
                (Some(e), Some(t)) => format!("{e}/{t}"),
                _ => "-".into(),
            },
            l.step.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
            l.best
                .as_ref()
                .map(|(t, v)| format!("{} {v:.5}", escape(t)))
                .unwrap_or_else(|| "-".into()),
            auroc,
        );
        if let Some(e) = &l.error {
            println!("    error: {}", escape(e));
        }
    }
    Ok(())
}

pub fn plugins(flags: &[PathBuf], json: bool, allow_insecure: bool) -> Result<()> {
    let dirs = plugins::search_path(flags);
    let exe = std::env::current_exe().context("locating the gantry executable")?;
    let entries: Vec<PluginEntry> = plugins::candidates(&dirs)
        .iter()
        .map(|p| plugins::describe_isolated(&exe, p, allow_insecure))
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
        return Ok(());
    }
    if entries.is_empty() {
        let searched: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        println!("no plugins found in: {}", searched.join(", "));
    }
    for e in &entries {
        print_plugin(e);
    }
    Ok(())
}

pub fn print_plugin(e: &PluginEntry) {
    match e.status.as_str() {
        "ok" => println!(
            "ok       {} {} ({}, ABI {}) {}",
            escape(e.name.as_deref().unwrap_or("?")),
            escape(e.version.as_deref().unwrap_or("?")),
            escape(e.family.as_deref().unwrap_or("?")),
            e.abi.as_deref().unwrap_or("?"),
            e.path.display()
        ),
        _ => println!(
            "refused  {}\n         {}",
            e.path.display(),
            escape(e.reason.as_deref().unwrap_or("no reason given"))
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `runs ls` lists what the dashboard lists: gantry's runs and foreign ones, by kind.
    #[test]
    fn lists_foreign_runs_beside_gantry_runs() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        crate::fixtures::write_standard_root(root).unwrap();
        std::fs::write(
            root.join("history.csv"),
            "epoch,loss,val_loss\n0,0.5,0.6\n1,0.25,0.3\n",
        )
        .unwrap();
        let tb = root.join("tb-run");
        std::fs::create_dir_all(&tb).unwrap();
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tfevents");
        let event = crate::interop::tfevents::event_files(&fixture.join("pytorch"), 10)
            .into_iter()
            .next()
            .expect("a PyTorch event-file fixture");
        std::fs::copy(&event, tb.join(event.file_name().unwrap())).unwrap();
        let lines = run_lines(root, crate::fixtures::NOW).unwrap();
        let kind_of = |id: &str| lines.iter().find(|l| l.id == id).map(|l| l.kind);
        assert_eq!(kind_of("ae-finished"), Some("gantry"));
        assert_eq!(kind_of("history.csv"), Some("keras-csv"));
        assert_eq!(kind_of("tb-run"), Some("tensorboard"));
        let keras = lines.iter().find(|l| l.id == "history.csv").unwrap();
        assert!(keras.state.starts_with("external"), "{}", keras.state);
        assert!(!keras.metrics.is_empty(), "{:?}", keras.metrics);
        let tb = lines.iter().find(|l| l.id == "tb-run").unwrap();
        assert!(
            tb.step.is_some() && !tb.metrics.is_empty(),
            "{:?}",
            tb.metrics
        );
    }
}
