//! The dashboard's state: which run is selected and marked, the filter and sort, the
//! active view and each view's settings, the open popup (new-run form, confirmation) and
//! the message bar. Keys change it; drawing only reads it. Data that a view needs from
//! disk beyond the store (a score file, a decoded PNG) is loaded in [`App::prepare`],
//! before drawing, into small caches. What a key asks of the world (launch, stop, resume,
//! `$EDITOR`) is left in [`App::pending`] for the event loop.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use crossterm::event::{
    KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};
use regex::Regex;

use super::actions::{Action, LaunchContext};
use super::chart_cache::ChartCache;
use super::plugin_catalog::PluginCatalog;
use super::popups::confirm::{Answer, Confirm};
use super::popups::run_form::{FormOutcome, RunForm};
use super::store::{RunData, RunStore};
use super::theme::Theme;
use super::views::overview::gpu_lines;
use crate::gpu::GpuStats;
use crate::metrics::threshold::ThresholdRule;
use crate::runfs::scores::{self, ScoreRow};
use crate::runfs::status::Liveness;

/// The detail views, in Tab order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Overview,
    Losses,
    Metrics,
    Scores,
    Samples,
    Log,
    Embedding,
    /// The runner's CPU, memory, data wait and GPUs over time.
    System,
    /// Not about a run: the plugins on the search path.
    Plugins,
}

impl View {
    pub const ALL: [View; 9] = [
        View::Overview,
        View::Losses,
        View::Metrics,
        View::Scores,
        View::Samples,
        View::Log,
        View::Embedding,
        View::System,
        View::Plugins,
    ];

    pub fn title(self) -> &'static str {
        match self {
            View::Overview => "Overview",
            View::Losses => "Losses",
            View::Metrics => "Metrics",
            View::Scores => "Scores",
            View::Samples => "Samples",
            View::Log => "Log",
            View::Embedding => "Embedding",
            View::System => "System",
            View::Plugins => "Plugins",
        }
    }

    fn index(self) -> usize {
        View::ALL.iter().position(|v| *v == self).unwrap_or(0)
    }
}

/// Which pane arrows and j/k act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    Runs,
    Detail,
}

/// Runs list order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Age,
    Name,
    State,
    Best,
}

impl SortKey {
    pub fn label(self) -> &'static str {
        match self {
            SortKey::Age => "age",
            SortKey::Name => "name",
            SortKey::State => "state",
            SortKey::Best => "best",
        }
    }

    fn next(self) -> SortKey {
        match self {
            SortKey::Age => SortKey::Name,
            SortKey::Name => SortKey::State,
            SortKey::State => SortKey::Best,
            SortKey::Best => SortKey::Age,
        }
    }
}

/// The `/` filter: substring, or a regex when it parses as one.
#[derive(Debug, Default)]
pub struct Filter {
    pub text: String,
    pub editing: bool,
    regex: Option<Regex>,
}

impl Filter {
    fn set(&mut self, text: String) {
        self.regex = Regex::new(&format!("(?i){text}")).ok();
        self.text = text;
    }

    pub fn matches(&self, haystack: &str) -> bool {
        if self.text.is_empty() {
            return true;
        }
        match &self.regex {
            Some(re) => re.is_match(haystack),
            None => haystack.to_lowercase().contains(&self.text.to_lowercase()),
        }
    }
}

/// X axis of the loss charts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XAxis {
    Step,
    Epoch,
    WallTime,
}

impl XAxis {
    pub fn label(self) -> &'static str {
        match self {
            XAxis::Step => "step",
            XAxis::Epoch => "epoch",
            XAxis::WallTime => "time (s)",
        }
    }
}

/// Loss chart settings.
#[derive(Debug, Clone, PartialEq)]
pub struct LossSettings {
    /// TensorBoard's smoothing weight, 0..=0.99.
    pub smoothing: f64,
    pub log_y: bool,
    pub x_axis: XAxis,
    /// Show only the last N points of each series; `None` for the full history.
    pub last_n: Option<usize>,
}

/// Zoom levels `z` cycles through.
const ZOOMS: [Option<usize>; 4] = [None, Some(1000), Some(100), Some(20)];

/// Score histogram settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreSettings {
    /// 0 = latest evaluation, 1 = the one before...
    pub back: usize,
    pub rule: ThresholdRule,
    pub side_by_side: bool,
    pub log_count: bool,
}

/// One line at the bottom: what an action did, or why it could not. Cleared by the next
/// key.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Raw: escaped when drawn (it may quote file contents and OS errors).
    pub text: String,
    pub error: bool,
}

impl Message {
    pub fn info(text: String) -> Message {
        Message { text, error: false }
    }

    pub fn error(text: String) -> Message {
        Message { text, error: true }
    }
}

/// Where the last frame put the parts a click can hit.
#[derive(Debug, Clone, Default)]
pub struct ScreenAreas {
    /// The runs list, border included.
    pub list: ratatui::layout::Rect,
    /// The tab bar's row and each tab's columns `[start, end)`, in [`View::ALL`] order.
    pub tabs_row: u16,
    pub tabs: Vec<(u16, u16)>,
    /// The view's area, border included.
    pub body: ratatui::layout::Rect,
}

pub struct App {
    /// Set while drawing: what a mouse click lands on.
    pub areas: std::cell::RefCell<ScreenAreas>,
    /// Key bindings from the user's config.
    pub keymap: super::keymap::Keymap,
    /// `R`: the sort order reversed.
    pub sort_reverse: bool,
    /// First row of the runs list on screen (kept so the list scrolls only when the
    /// selection leaves it); set while drawing.
    pub runs_offset: std::cell::Cell<usize>,
    pub theme: Theme,
    /// Unix time used for ages and liveness, set on every event (fixed in tests).
    pub now: f64,
    pub host: String,
    pub view: View,
    pub focus: Focus,
    pub selected: Option<PathBuf>,
    pub marked: BTreeSet<PathBuf>,
    pub filter: Filter,
    pub sort: SortKey,
    pub help: bool,
    /// Lines the help is scrolled down (it may not fit at 80x24).
    pub help_scroll: u16,
    pub quit: bool,
    pub losses: LossSettings,
    pub scores: ScoreSettings,
    /// Samples: 0 = latest epoch.
    pub samples_back: usize,
    pub samples_scroll: u16,
    /// Log: lines scrolled up from the end.
    pub log_scroll: usize,
    pub overview_scroll: u16,
    /// Score files read for the selected run, by (run, epoch).
    pub score_cache: HashMap<(PathBuf, u32), Result<Vec<ScoreRow>, String>>,
    /// Decoded sample images, by path.
    pub image_cache: HashMap<PathBuf, Result<image::RgbImage, String>>,
    /// Smoothed, pre-decimated loss series.
    pub charts: ChartCache,
    /// The plugins on the search path (from the background describer).
    pub plugins: PluginCatalog,
    pub plugins_scroll: u16,
    /// This host's GPUs, from the background sampler; `None` until its first report.
    pub gpus: Option<GpuStats>,
    /// The open new-run form.
    pub form: Option<RunForm>,
    /// The open yes/no question.
    pub confirm: Option<Confirm>,
    pub message: Option<Message>,
    /// Runs sent SIGTERM from here: `x` on them again offers SIGKILL.
    pub term_sent: BTreeSet<PathBuf>,
    /// What the last key asked for; the event loop takes and performs it.
    pub pending: Option<Action>,
    /// Where launches go and with which plugin options.
    pub launch: LaunchContext,
    /// The remote roots followed over ssh: which mirror is whose, and their links.
    pub remotes: crate::remote::RemoteRuns,
}

impl App {
    pub fn new(theme: Theme, now: f64, host: String) -> App {
        App {
            theme,
            now,
            host,
            view: View::Losses,
            focus: Focus::Runs,
            selected: None,
            runs_offset: std::cell::Cell::new(0),
            areas: Default::default(),
            keymap: Default::default(),
            sort_reverse: false,
            marked: BTreeSet::new(),
            filter: Filter::default(),
            sort: SortKey::Age,
            help: false,
            help_scroll: 0,
            quit: false,
            losses: LossSettings {
                smoothing: 0.6,
                log_y: false,
                x_axis: XAxis::Step,
                last_n: None,
            },
            scores: ScoreSettings {
                back: 0,
                rule: ThresholdRule::BestF1,
                side_by_side: false,
                log_count: false,
            },
            samples_back: 0,
            samples_scroll: 0,
            log_scroll: 0,
            overview_scroll: 0,
            score_cache: HashMap::new(),
            image_cache: HashMap::new(),
            charts: ChartCache::default(),
            plugins: PluginCatalog::default(),
            plugins_scroll: 0,
            gpus: None,
            form: None,
            confirm: None,
            message: None,
            term_sent: BTreeSet::new(),
            pending: None,
            launch: LaunchContext::default(),
            remotes: Default::default(),
        }
    }

    /// The host a run is on: a remote root's label, `local` for the rest.
    pub fn host_label(&self, run: &RunData) -> String {
        self.remotes
            .host_of(&run.folder.dir)
            .unwrap_or_else(|| "local".into())
    }

    /// Whether the runs list shows a host column: runs of more than one host are shown.
    pub fn shows_hosts(&self, store: &RunStore) -> bool {
        if self.remotes.is_empty() {
            return false;
        }
        let mut hosts: Vec<Option<String>> = store
            .roots
            .iter()
            .map(|r| self.remotes.host_of(r))
            .collect();
        hosts.sort();
        hosts.dedup();
        hosts.len() > 1
    }

    /// A new plugin list from the describer; an open form picks it up.
    pub fn set_plugins(&mut self, catalog: PluginCatalog) {
        if let Some(form) = self.form.as_mut() {
            form.sync_plugins(&catalog);
        }
        self.plugins = catalog;
    }

    /// A new look at the host's GPUs; returns whether the screen changes: only the
    /// Overview shows them, at its precision (a watt's flicker redraws nothing).
    pub fn set_gpus(&mut self, stats: GpuStats) -> bool {
        let changed = self.gpus.as_ref().map(gpu_lines) != Some(gpu_lines(&stats));
        self.gpus = Some(stats);
        changed && self.view == View::Overview
    }

    /// The runs list: filtered and sorted.
    pub fn visible<'s>(&self, store: &'s RunStore) -> Vec<&'s RunData> {
        let mut runs: Vec<&RunData> = store.runs.values().filter(|r| self.shows(r)).collect();
        match self.sort {
            SortKey::Age => runs.sort_by(|a, b| b.created().total_cmp(&a.created())),
            SortKey::Name => runs.sort_by_cached_key(|r| r.id()),
            SortKey::State => runs.sort_by_key(|r| {
                (
                    state_rank(r.liveness(self.now, &self.host)),
                    std::cmp::Reverse(r.created() as i64),
                )
            }),
            SortKey::Best => runs.sort_by(|a, b| {
                let key = |r: &RunData| {
                    r.status
                        .as_ref()
                        .and_then(|s| s.best.as_ref())
                        .map(|b| b.value)
                };
                match (key(a), key(b)) {
                    (Some(x), Some(y)) => x.total_cmp(&y),
                    (Some(_), None) => std::cmp::Ordering::Less,
                    (None, Some(_)) => std::cmp::Ordering::Greater,
                    (None, None) => a.id().cmp(&b.id()),
                }
            }),
        }
        if self.sort_reverse {
            runs.reverse();
        }
        runs
    }

    /// Whether the filter lets `run` into the list.
    fn shows(&self, run: &RunData) -> bool {
        self.filter.text.is_empty()
            || self.filter.matches(&format!(
                "{} {} {} {}",
                run.id(),
                run.plugin(),
                run.dataset(),
                self.host_label(run)
            ))
    }

    /// The selected run, falling back to the first visible one. A look-up, not a sort of
    /// every run, while the selection is in the list.
    pub fn current<'s>(&self, store: &'s RunStore) -> Option<&'s RunData> {
        self.selected
            .as_ref()
            .and_then(|p| store.runs.get(p))
            .filter(|r| self.shows(r))
            .or_else(|| self.visible(store).first().copied())
    }

    /// Runs a comparison shows: the marked ones, else the current one.
    pub fn compared<'s>(&self, store: &'s RunStore) -> Vec<&'s RunData> {
        let marked: Vec<&RunData> = self
            .visible(store)
            .into_iter()
            .filter(|r| self.marked.contains(&r.folder.dir))
            .collect();
        if marked.is_empty() {
            self.current(store).into_iter().collect()
        } else {
            marked
        }
    }

    /// The score-file epoch the Scores view shows.
    pub fn score_epoch(&self, run: &RunData) -> Option<u32> {
        let n = run.score_epochs.len();
        (n > 0).then(|| run.score_epochs[n - 1 - self.scores.back.min(n - 1)])
    }

    /// The sample epoch the Samples view shows.
    pub fn sample_epoch(&self, run: &RunData) -> Option<u32> {
        let mut epochs: Vec<u32> = run.samples.iter().map(|s| s.epoch).collect();
        epochs.dedup();
        let n = epochs.len();
        (n > 0).then(|| epochs[n - 1 - self.samples_back.min(n - 1)])
    }

    /// Loads what the next draw needs from disk into the caches (drawing never does I/O).
    pub fn prepare(&mut self, store: &RunStore) {
        // A run that has ended no longer needs its SIGKILL offer (nor one resumed later).
        self.term_sent.retain(|dir| {
            store
                .runs
                .get(dir)
                .and_then(|r| r.status.as_ref())
                .is_some_and(|s| !s.state.is_final())
        });
        if self.view == View::Losses {
            let compared = self.compared(store);
            self.charts.update(&compared, &self.losses);
        }
        let Some(run) = self.current(store) else {
            return;
        };
        let dir = run.folder.dir.clone();
        if self.view == View::Scores
            && let Some(epoch) = self.score_epoch(run)
        {
            let key = (dir.clone(), epoch);
            if !self.score_cache.contains_key(&key) {
                let rows = scores::read(&run.folder.scores_file(epoch)).map_err(|e| e.to_string());
                // Keep the cache to the selected run's files.
                self.score_cache.retain(|(d, _), _| *d == dir);
                self.score_cache.insert(key, rows);
            }
        }
        if self.view == View::Samples
            && let Some(epoch) = self.sample_epoch(run)
        {
            let shown: Vec<&crate::runfs::SampleFile> =
                run.samples.iter().filter(|s| s.epoch == epoch).collect();
            self.image_cache
                .retain(|p, _| shown.iter().any(|s| &s.path == p));
            for sample in shown {
                // A remote host's image is fetched when first shown; until it arrives
                // the view says so.
                if self.remotes.is_placeholder(&sample.path) {
                    self.image_cache.remove(&sample.path);
                    self.remotes.fetch(&sample.path);
                    continue;
                }
                self.image_cache
                    .entry(sample.path.clone())
                    .or_insert_with(|| super::views::samples::load(sample));
            }
        }
    }

    /// Handles the mouse: the wheel scrolls what is under the pointer (the runs list or
    /// the view), a click selects a run, a view tab, or focuses the view. Returns whether
    /// anything changed. Ignored while a popup or the help is open.
    pub fn on_mouse(&mut self, m: MouseEvent, store: &RunStore) -> bool {
        if self.form.is_some() || self.confirm.is_some() || self.help || self.filter.editing {
            return false;
        }
        let areas = self.areas.borrow().clone();
        let at = ratatui::layout::Position::new(m.column, m.row);
        let step = match m.kind {
            MouseEventKind::ScrollDown => 1,
            MouseEventKind::ScrollUp => -1,
            MouseEventKind::Down(MouseButton::Left) => 0,
            _ => return false,
        };
        if areas.list.contains(at) {
            if step != 0 {
                self.focus = Focus::Runs;
                self.move_by(step, store);
                return true;
            }
            // Below the top border and the header row.
            let Some(row) = m.row.checked_sub(areas.list.y + 2) else {
                return false;
            };
            let index = self.runs_offset.get() + usize::from(row);
            let visible = self.visible(store);
            let Some(run) = visible.get(index) else {
                return false;
            };
            self.selected = Some(run.folder.dir.clone());
            self.focus = Focus::Runs;
            return true;
        }
        if step == 0 && m.row == areas.tabs_row {
            if let Some(i) = areas
                .tabs
                .iter()
                .position(|&(a, b)| (a..b).contains(&m.column))
            {
                self.view = View::ALL[i];
                return true;
            }
            return false;
        }
        if areas.body.contains(at) {
            self.focus = Focus::Detail;
            if step != 0 {
                self.move_by(3 * step, store);
            }
            return true;
        }
        false
    }

    /// Handles a key; returns whether anything changed (a redraw is needed).
    pub fn on_key(&mut self, key: KeyEvent, store: &RunStore) -> bool {
        if key.kind == KeyEventKind::Release {
            return false;
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && key.code == KeyCode::Char('c') {
            self.quit = true;
            return true;
        }
        let had_message = self.message.take().is_some();
        if let Some(confirm) = &self.confirm {
            match confirm.on_key(key) {
                Answer::Yes(action) => {
                    self.pending = Some(action);
                    self.confirm = None;
                }
                Answer::No => self.confirm = None,
                Answer::Pending => return had_message,
            }
            return true;
        }
        if let Some(form) = self.form.as_mut() {
            match form.on_key(key) {
                FormOutcome::Changed => {}
                FormOutcome::Unchanged => return had_message,
                FormOutcome::Cancel => self.form = None,
                FormOutcome::Act(action) => self.pending = Some(action),
            }
            return true;
        }
        if self.filter.editing {
            return self.on_filter_key(key);
        }
        if self.help {
            match key.code {
                KeyCode::Down | KeyCode::Char('j') => {
                    self.help_scroll = self.help_scroll.saturating_add(1)
                }
                KeyCode::Up | KeyCode::Char('k') => {
                    self.help_scroll = self.help_scroll.saturating_sub(1)
                }
                // Any other key closes help (q still quits).
                code => {
                    self.help = false;
                    self.help_scroll = 0;
                    self.quit = code == KeyCode::Char('q');
                }
            }
            return true;
        }
        let Some(key) = self.keymap.translate(key) else {
            return had_message;
        };
        match key.code {
            KeyCode::Char('q') => self.quit = true,
            KeyCode::Char('?') => self.help = true,
            KeyCode::Tab => self.view = View::ALL[(self.view.index() + 1) % View::ALL.len()],
            KeyCode::BackTab => {
                self.view = View::ALL[(self.view.index() + View::ALL.len() - 1) % View::ALL.len()]
            }
            KeyCode::Char(c @ '1'..='9') if ((c as u8 - b'1') as usize) < View::ALL.len() => {
                self.view = View::ALL[(c as u8 - b'1') as usize]
            }
            KeyCode::Char('n') => self.open_new_form(),
            KeyCode::Char('c') => self.open_clone_form(store),
            KeyCode::Char('x') => self.ask_stop(store),
            KeyCode::Char('r') => self.ask_resume(store),
            KeyCode::Char('/') => {
                self.filter.editing = true;
                self.focus = Focus::Runs;
            }
            KeyCode::Char('S') => self.sort = self.sort.next(),
            KeyCode::Char('R') => self.sort_reverse = !self.sort_reverse,
            KeyCode::Char(' ') => {
                if let Some(run) = self.current(store) {
                    let dir = run.folder.dir.clone();
                    if !self.marked.remove(&dir) {
                        self.marked.insert(dir);
                    }
                }
            }
            KeyCode::Enter | KeyCode::Right | KeyCode::Char('l') if self.focus == Focus::Runs => {
                self.focus = Focus::Detail
            }
            KeyCode::Esc | KeyCode::Left | KeyCode::Char('h') if self.focus == Focus::Detail => {
                self.focus = Focus::Runs
            }
            KeyCode::Esc if !self.filter.text.is_empty() => self.filter.set(String::new()),
            KeyCode::Up | KeyCode::Char('k') => self.move_by(-1, store),
            KeyCode::Down | KeyCode::Char('j') => self.move_by(1, store),
            KeyCode::PageUp => self.move_by(-10, store),
            KeyCode::PageDown => self.move_by(10, store),
            KeyCode::Home | KeyCode::Char('g') => self.move_by(-1_000_000, store),
            KeyCode::End | KeyCode::Char('G') => self.move_by(1_000_000, store),
            _ => return self.on_view_key(key) || had_message,
        }
        true
    }

    fn on_filter_key(&mut self, key: KeyEvent) -> bool {
        match key.code {
            KeyCode::Enter => self.filter.editing = false,
            KeyCode::Esc => {
                self.filter.editing = false;
                self.filter.set(String::new());
            }
            KeyCode::Backspace => {
                let mut text = self.filter.text.clone();
                text.pop();
                self.filter.set(text);
            }
            KeyCode::Char(c) => {
                let mut text = self.filter.text.clone();
                text.push(c);
                self.filter.set(text);
            }
            _ => return false,
        }
        true
    }

    /// Up/down: the runs list, or the detail view's scroll when it has focus.
    fn move_by(&mut self, delta: i64, store: &RunStore) {
        if self.focus == Focus::Detail {
            let scroll = |v: u16| (v as i64 + delta).clamp(0, u16::MAX as i64) as u16;
            match self.view {
                View::Log => {
                    self.log_scroll = (self.log_scroll as i64 - delta).max(0) as usize;
                }
                View::Samples => self.samples_scroll = scroll(self.samples_scroll),
                View::Overview => self.overview_scroll = scroll(self.overview_scroll),
                View::Plugins => self.plugins_scroll = scroll(self.plugins_scroll),
                _ => {}
            }
            return;
        }
        let visible = self.visible(store);
        if visible.is_empty() {
            return;
        }
        let at = self
            .current(store)
            .and_then(|c| visible.iter().position(|r| r.folder.dir == c.folder.dir))
            .unwrap_or(0) as i64;
        let next = (at + delta).clamp(0, visible.len() as i64 - 1) as usize;
        self.selected = Some(visible[next].folder.dir.clone());
        self.scores.back = 0;
        self.samples_back = 0;
        self.samples_scroll = 0;
        self.log_scroll = 0;
        self.overview_scroll = 0;
    }

    /// Keys that belong to the active view.
    fn on_view_key(&mut self, key: KeyEvent) -> bool {
        match (self.view, key.code) {
            (View::Losses, KeyCode::Char('+' | '=')) => {
                self.losses.smoothing = ((self.losses.smoothing + 0.1) * 100.0).round() / 100.0;
                self.losses.smoothing = self.losses.smoothing.min(0.99);
            }
            (View::Losses, KeyCode::Char('-')) => {
                self.losses.smoothing =
                    (((self.losses.smoothing - 0.1) * 100.0).round() / 100.0).max(0.0);
            }
            (View::Losses, KeyCode::Char('L')) => self.losses.log_y = !self.losses.log_y,
            // `a` for axis: `x` stops runs.
            (View::Losses, KeyCode::Char('a')) => {
                self.losses.x_axis = match self.losses.x_axis {
                    XAxis::Step => XAxis::Epoch,
                    XAxis::Epoch => XAxis::WallTime,
                    XAxis::WallTime => XAxis::Step,
                }
            }
            (View::Losses, KeyCode::Char('z')) => {
                let at = ZOOMS
                    .iter()
                    .position(|z| *z == self.losses.last_n)
                    .unwrap_or(0);
                self.losses.last_n = ZOOMS[(at + 1) % ZOOMS.len()];
            }
            (View::Scores, KeyCode::Char('[')) => self.scores.back += 1,
            (View::Scores, KeyCode::Char(']')) => {
                self.scores.back = self.scores.back.saturating_sub(1)
            }
            (View::Scores, KeyCode::Char('t')) => {
                self.scores.rule = match self.scores.rule {
                    ThresholdRule::BestF1 => ThresholdRule::Youden,
                    ThresholdRule::Youden => ThresholdRule::BestF1,
                }
            }
            (View::Scores, KeyCode::Char('v')) => {
                self.scores.side_by_side = !self.scores.side_by_side
            }
            (View::Scores, KeyCode::Char('L')) => self.scores.log_count = !self.scores.log_count,
            (View::Samples, KeyCode::Char('[')) => {
                self.samples_back += 1;
                self.samples_scroll = 0;
            }
            (View::Samples, KeyCode::Char(']')) => {
                self.samples_back = self.samples_back.saturating_sub(1);
                self.samples_scroll = 0;
            }
            _ => return false,
        }
        true
    }
}

/// Problems first, then live runs, then the rest.
fn state_rank(l: Option<Liveness>) -> u8 {
    use crate::runfs::status::State;
    match l {
        None | Some(Liveness::Crashed) | Some(Liveness::Recorded(State::Failed)) => 0,
        Some(Liveness::Stalled) => 1,
        Some(Liveness::Recorded(State::Running) | Liveness::External { live: true }) => 2,
        Some(Liveness::Recorded(State::Queued)) => 3,
        Some(Liveness::Recorded(State::Stopped)) => 4,
        Some(Liveness::Recorded(State::Finished)) => 5,
        Some(Liveness::External { live: false }) => 6,
    }
}
