//! The dashboard (`gantry`, `gantry watch`): a ratatui app over one or more run roots.
//! It reads runs only through [`crate::runfs`] (via [`store`]) and never loads plugin
//! code (plugins are described in child processes, off the UI thread). The loop blocks
//! on one event channel and draws only after an event changed something, so an idle
//! dashboard writes nothing to the terminal. Launch, stop and resume go through
//! [`crate::control`], after a key left an [`actions::Action`] for the loop.

pub mod actions;
pub mod app;
pub mod chart_cache;
pub mod draw;
pub mod editor;
pub mod event;
pub mod keymap;
pub mod plugin_catalog;
pub mod popups;
pub mod quiet_backend;
mod run_commands;
pub mod series;
pub mod slurm_jobs;
pub mod store;
pub mod theme;
pub mod views;
pub mod watch;
pub mod widgets;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_actions;
#[cfg(test)]
mod tests_foreign;
#[cfg(test)]
mod tests_habits;
#[cfg(test)]
mod tests_hostile;
#[cfg(test)]
mod tests_slurm;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use actions::{Action, LaunchContext};
use app::{App, Message};
use event::{Event, InputGate};
use store::RunStore;
use theme::Theme;

use crate::runfs::status::hostname;
use crate::runfs::time;

/// The dashboard's terminal: crossterm, writing nothing for an unchanged frame.
pub type Screen = ratatui::Terminal<
    quiet_backend::QuietBackend<ratatui::backend::CrosstermBackend<std::io::Stdout>>,
>;

/// How `gantry watch` was asked to run.
#[derive(Debug, Clone, Default)]
pub struct WatchOptions {
    /// Local run roots.
    pub roots: Vec<PathBuf>,
    /// Run roots on other hosts, followed over ssh into local mirrors.
    pub remotes: Vec<crate::remote::RemoteRoot>,
    pub ssh: crate::remote::SshOptions,
    /// Poll the filesystem at this interval instead of inotify (NFS, sshfs).
    pub poll: Option<Duration>,
    /// Run folder (under the first root) to select at start.
    pub select: Option<String>,
    /// `--plugins DIR` flags: searched first by the Plugins view and the new-run form,
    /// and passed on to the runners it launches and resumes.
    pub plugin_dirs: Vec<PathBuf>,
    /// `--allow-insecure-plugins`: describe and run plugins that other users can write.
    pub allow_insecure_plugins: bool,
    /// Capture the mouse (wheel, click); off with `--no-mouse` or `mouse: false`.
    pub mouse: bool,
    /// Key bindings from the user's config.
    pub keymap: keymap::Keymap,
    pub theme: crate::config::ThemeConfig,
}

/// Runs the dashboard until the user quits. The terminal is restored on every exit path,
/// a panic included (ratatui's init installs a hook that restores it first).
pub fn run(opts: WatchOptions) -> Result<()> {
    if !std::io::stdout().is_terminal() {
        bail!("the dashboard needs a terminal on stdout; for scripts use `gantry runs ls --json`");
    }
    let mut opts = opts;
    for root in &mut opts.roots {
        std::fs::create_dir_all(&*root)
            .with_context(|| format!("creating run root {}", root.display()))?;
        // The watcher reports absolute paths; the store's keys must match them.
        *root = std::path::absolute(&*root)
            .with_context(|| format!("resolving run root {}", root.display()))?;
    }
    let (tx, rx) = mpsc::channel();
    // Remote roots: each followed by a link into its mirror folder, watched like a local
    // root. A link redraws the footer when its state changes.
    let mut links = Vec::new();
    for remote in &opts.remotes {
        let mirror = crate::remote::mirror_dir(remote);
        let redraw = tx.clone();
        let link = crate::remote::Link::spawn(
            remote.clone(),
            mirror.clone(),
            opts.ssh.clone(),
            Box::new(move || {
                let _ = redraw.send(Event::Tick);
            }),
        )
        .with_context(|| format!("mirror folder {} of {remote}", mirror.display()))?;
        opts.roots.push(mirror);
        links.push(Arc::new(link));
    }
    let store = Arc::new(RwLock::new(RunStore::new(opts.roots.clone())));
    // Summaries only (what the runs list shows): the first frame comes at once whatever
    // the run count; the store thread reads the rest, newest first.
    store.write().expect("store lock").scan_summaries();
    let _watch = watch::spawn_watcher(&opts.roots, opts.poll, Arc::clone(&store), tx.clone())?;
    let _plugin_watch = spawn_plugin_describer(&opts, tx.clone())?;
    event::spawn_gpu_sampler(tx.clone());
    slurm_jobs::spawn_poller(Arc::clone(&store), tx.clone());
    let gate = event::spawn_input(tx);
    let runs = opts
        .roots
        .first()
        .cloned()
        .unwrap_or_else(|| PathBuf::from("runs"));
    let mut app = App::new(Theme::from_env_and(&opts.theme), time::now(), hostname());
    app.keymap = opts.keymap.clone();
    app.remotes = crate::remote::RemoteRuns::new(links);
    app.selected = opts.select.as_ref().map(|id| runs.join(id));
    app.launch = LaunchContext {
        runs,
        plugin_dirs: opts.plugin_dirs.clone(),
        allow_insecure_plugins: opts.allow_insecure_plugins,
        // Only relative dataset paths typed into a fresh form depend on it.
        cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
    };
    // ratatui's init: raw mode, the alternate screen, and a panic hook that restores them.
    drop(ratatui::try_init().context("setting up the terminal")?);
    let backend = quiet_backend::QuietBackend::new(ratatui::backend::CrosstermBackend::new(
        std::io::stdout(),
    ));
    let mut terminal = ratatui::Terminal::new(backend).context("setting up the terminal")?;
    let mouse = opts.mouse && set_mouse_capture(true).is_ok();
    if mouse {
        // ratatui's hook restores the terminal on a panic; mouse reporting must end too.
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let _ = set_mouse_capture(false);
            previous(info);
        }));
    }
    let result = event_loop(&mut terminal, &mut app, &store, &rx, &gate, mouse);
    if mouse {
        let _ = set_mouse_capture(false);
    }
    ratatui::restore();
    result
}

/// Turns the terminal's mouse reporting on or off. Off again before the terminal is
/// restored, and around `$EDITOR`, or the shell would receive escape codes for clicks.
fn set_mouse_capture(on: bool) -> std::io::Result<()> {
    use crossterm::event::{DisableMouseCapture, EnableMouseCapture};
    if on {
        crossterm::execute!(std::io::stdout(), EnableMouseCapture)
    } else {
        crossterm::execute!(std::io::stdout(), DisableMouseCapture)
    }
}

/// Describes the plugins on the search path in the background, each in a child
/// `gantry plugins describe` (a crashing library takes only the child down).
fn spawn_plugin_describer(
    opts: &WatchOptions,
    tx: mpsc::Sender<Event>,
) -> Result<plugin_catalog::PluginWatch> {
    let exe = std::env::current_exe().context("locating the gantry executable")?;
    let allow_insecure = opts.allow_insecure_plugins;
    let describe = move |path: &Path| crate::plugins::describe_isolated(&exe, path, allow_insecure);
    Ok(plugin_catalog::spawn(
        crate::plugins::search_path(&opts.plugin_dirs),
        Box::new(describe),
        tx,
    ))
}

fn event_loop(
    terminal: &mut Screen,
    app: &mut App,
    store: &RwLock<RunStore>,
    rx: &mpsc::Receiver<Event>,
    gate: &InputGate,
    mouse: bool,
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
            Event::Input(crossterm::event::Event::Mouse(m)) => {
                let store = store.read().expect("store lock");
                app.on_mouse(m, &store)
            }
            Event::Input(_) => false,
            Event::StoreChanged | Event::Tick => true,
            Event::Plugins(catalog) => {
                app.set_plugins(catalog);
                true
            }
            Event::Gpus(stats) => app.set_gpus(stats),
            Event::InputClosed(e) => bail!("terminal input closed: {e}"),
        };
        if let Some(action) = app.pending.take() {
            perform(terminal, app, gate, action, mouse);
            dirty = true;
        }
        if app.quit {
            return Ok(());
        }
    }
}

/// Carries out what a key asked for: `$EDITOR` here (it needs the terminal), the rest
/// through [`actions::perform`].
fn perform(terminal: &mut Screen, app: &mut App, gate: &InputGate, action: Action, mouse: bool) {
    match action {
        Action::Edit { text } => {
            match with_mouse_released(mouse, || editor::edit(terminal, gate, &text)) {
                Ok(edited) => {
                    if let Some(form) = app.form.as_mut() {
                        form.edited(edited);
                    }
                }
                Err(e) => app.message = Some(Message::error(format!("{e:#}"))),
            }
        }
        other => {
            let remotes = app.remotes.clone();
            actions::perform(app, other, &actions::RoutedControl { remotes: &remotes })
        }
    }
}

/// Runs `f` (which hands the terminal to another program) with mouse capture off.
fn with_mouse_released<T>(mouse: bool, f: impl FnOnce() -> T) -> T {
    if mouse {
        let _ = set_mouse_capture(false);
    }
    let out = f();
    if mouse {
        let _ = set_mouse_capture(true);
    }
    out
}
