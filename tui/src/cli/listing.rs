//! `runs ls` and `plugins ls`: tables for people, JSON for scripts.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use serde::Serialize;

use crate::plugins::{self, PluginEntry};
use crate::runfs::status::hostname;
use crate::runfs::{list_runs, time};
use crate::text::escape_controls as escape;

/// One run as `runs ls --json` prints it.
#[derive(Debug, Serialize)]
struct RunLine {
    id: String,
    path: PathBuf,
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
    let now = time::now();
    let host = hostname();
    let lines: Vec<RunLine> = list_runs(root)?
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
        .collect();
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
    for l in &lines {
        let auroc = l
            .metrics
            .iter()
            .find(|(t, _)| t == "test/auroc")
            .map(|(_, v)| format!("{v:.4}"))
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<36} {:<10} {:<9} {:>7} {:>7} {:<22} {:<16}",
            escape(&l.id),
            escape(l.plugin.as_deref().unwrap_or("?")),
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
