//! The dashboard (`gantry`, `gantry watch`): a ratatui app over one or more run roots.
//! It reads runs only through [`crate::runfs`] (via [`store`]) and never loads plugin
//! code. The loop blocks on one event channel and draws only after an event changed
//! something, so an idle dashboard writes nothing to the terminal.

pub mod app;
pub mod chart_cache;
pub mod draw;
pub mod event;
pub mod series;
pub mod store;
pub mod theme;
pub mod views;
pub mod widgets;

#[cfg(test)]
mod tests;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use app::App;
use event::Event;
use store::RunStore;
use theme::Theme;

use crate::runfs::status::hostname;
use crate::runfs::time;

/// How `gantry watch` was asked to run.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    pub roots: Vec<PathBuf>,
    /// Poll the filesystem at this interval instead of inotify (NFS, sshfs).
    pub poll: Option<Duration>,
    /// Run folder (under the first root) to select at start.
    pub select: Option<String>,
}

/// Runs the dashboard until the user quits. The terminal is restored on every exit path,
/// a panic included (ratatui's init installs a hook that restores it first).
pub fn run(opts: WatchOptions) -> Result<()> {
    if !std::io::stdout().is_terminal() {
        bail!("the dashboard needs a terminal on stdout; for scripts use `gantry runs ls --json`");
    }
    for root in &opts.roots {
        std::fs::create_dir_all(root)
            .with_context(|| format!("creating run root {}", root.display()))?;
    }
    let store = Arc::new(RwLock::new(RunStore::new(opts.roots.clone())));
    store.write().expect("store lock").rescan();
    let (tx, rx) = mpsc::channel();
    let _watch = event::spawn_watcher(&opts.roots, opts.poll, Arc::clone(&store), tx.clone())?;
    event::spawn_input(tx);
    let mut terminal = ratatui::try_init().context("setting up the terminal")?;
    let mut app = App::new(Theme::from_env(), time::now(), hostname());
    app.selected = opts.select.as_ref().map(|id| opts.roots[0].join(id));
    let result = event_loop(&mut terminal, &mut app, &store, &rx);
    ratatui::restore();
    result
}

fn event_loop(
    terminal: &mut ratatui::DefaultTerminal,
    app: &mut App,
    store: &RwLock<RunStore>,
    rx: &mpsc::Receiver<Event>,
) -> Result<()> {
    let mut dirty = true;
    loop {
        if dirty {
            let store = store.read().expect("store lock");
            app.now = time::now();
            app.prepare(&store);
            terminal.draw(|frame| draw::draw(frame, app, &store))?;
            dirty = false;
        }
        let Ok(event) = rx.recv() else {
            return Ok(());
        };
        dirty |= match event {
            Event::Input(crossterm::event::Event::Key(key)) => {
                let store = store.read().expect("store lock");
                app.on_key(key, &store)
            }
            Event::Input(crossterm::event::Event::Resize(..)) => true,
            Event::Input(_) => false,
            Event::StoreChanged | Event::Tick => true,
            Event::InputClosed(e) => bail!("terminal input closed: {e}"),
        };
        if app.quit {
            return Ok(());
        }
    }
}
