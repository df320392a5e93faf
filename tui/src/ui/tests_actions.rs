//! The dashboard acting on runs: the new-run form (prefill, checks, editor text,
//! launch), clone, stop and resume with their confirmations, the plugins pane. A fake
//! [`RunControl`] stands in for processes and signals.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::actions::{self, Action, LaunchContext, RunControl};
use super::app::{App, View};
use super::plugin_catalog::{PluginCatalog, PluginRow};
use super::store::RunStore;
use super::tests::{app, key, render, root, select, store};
use crate::control::{LaunchOptions, ResumeOptions, StopSent};
use crate::plugins::PluginEntry;
use crate::runfs::RunFolder;
use crate::runfs::spec::RunSpec;

/// Records every call; fails them all with `fail` when set.
#[derive(Default)]
struct FakeControl {
    calls: RefCell<Vec<String>>,
    fail: Option<String>,
}

impl FakeControl {
    fn failing(message: &str) -> FakeControl {
        FakeControl {
            fail: Some(message.into()),
            ..FakeControl::default()
        }
    }

    fn result(&self) -> Result<()> {
        match &self.fail {
            Some(e) => bail!("{e}"),
            None => Ok(()),
        }
    }
}

impl RunControl for FakeControl {
    fn launch(&self, _config: &Path, spec: &RunSpec, opts: &LaunchOptions) -> Result<RunFolder> {
        self.calls
            .borrow_mut()
            .push(format!("launch {} {:?}", spec.plugin, opts.name));
        self.result()?;
        let id = opts.name.clone().unwrap_or_else(|| "new-run".into());
        Ok(RunFolder::new(opts.runs.join(id)))
    }

    fn stop(&self, dir: &Path, force: bool) -> Result<StopSent> {
        let id = RunFolder::new(dir).id();
        self.calls.borrow_mut().push(format!("stop {id} {force}"));
        self.result()?;
        Ok(if force {
            StopSent::Kill { pid: 4242 }
        } else {
            StopSent::Term { pid: 4242 }
        })
    }

    fn resume(&self, dir: &Path, _opts: &ResumeOptions) -> Result<()> {
        let id = RunFolder::new(dir).id();
        self.calls.borrow_mut().push(format!("resume {id}"));
        self.result()
    }
}

fn ok_plugin(path: PathBuf, name: &str, family: &str, defaults: &str) -> PluginRow {
    PluginRow {
        entry: Some(PluginEntry {
            path: path.clone(),
            status: "ok".into(),
            name: Some(name.into()),
            version: Some("0.1.0".into()),
            family: Some(family.into()),
            abi: Some("1.0".into()),
            summary: Some(format!("{name}: a fake plugin for tests")),
            reason: None,
            default_params: Some(defaults.into()),
        }),
        path,
    }
}

/// conv-ae and vae (usable) and a refused library, as files in `root/plugins` so names
/// resolve on the search path.
fn catalog(root: &Path) -> PluginCatalog {
    let dir = root.join("plugins");
    std::fs::create_dir_all(&dir).unwrap();
    for lib in ["libconv_ae.so", "libvae.so", "libfuture.so"] {
        std::fs::write(dir.join(lib), b"").unwrap();
    }
    let refused = dir.join("libfuture.so");
    PluginCatalog {
        dirs: vec![dir.clone()],
        missing: vec![],
        rows: vec![
            ok_plugin(
                dir.join("libconv_ae.so"),
                "conv-ae",
                "autoencoder",
                r#"{"activation": "leaky_relu", "channels": [32, 64, 128], "latent": 64}"#,
            ),
            PluginRow {
                entry: Some(PluginEntry {
                    path: refused.clone(),
                    status: "refused".into(),
                    name: None,
                    version: None,
                    family: None,
                    abi: None,
                    summary: None,
                    reason: Some(
                        "plugin ABI 2.0 is newer than this gantry's 1.0: update gantry".into(),
                    ),
                    default_params: None,
                }),
                path: refused,
            },
            ok_plugin(
                dir.join("libvae.so"),
                "vae",
                "autoencoder, vae",
                r#"{"beta": 1.0, "latent": 32}"#,
            ),
        ],
        scanned: true,
        watch_errors: vec![],
    }
}

/// An app over a fixture root, with the fake plugins and launches going to the root.
fn setup(name: &str) -> (PathBuf, RunStore, App) {
    let root = root(name);
    let store = store(&root);
    let mut app = app();
    app.plugins = catalog(&root);
    app.launch = LaunchContext {
        runs: root.clone(),
        cwd: PathBuf::from("."),
        ..LaunchContext::default()
    };
    (root, store, app)
}

fn ctrl(app: &mut App, store: &RunStore, c: char) {
    app.on_key(
        KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL),
        store,
    );
}

fn focus(app: &mut App, path: &str) {
    let form = app.form.as_mut().unwrap();
    form.focus = form.fields.iter().position(|f| f.path == path).unwrap();
}

/// Replaces a text field's value by typing, as a user would.
fn type_into(app: &mut App, store: &RunStore, path: &str, text: &str) {
    focus(app, path);
    key(app, store, KeyCode::Char('i'));
    ctrl(app, store, 'u');
    for c in text.chars() {
        key(app, store, KeyCode::Char(c));
    }
    key(app, store, KeyCode::Enter);
}

fn form_value(app: &App, path: &str) -> String {
    app.form.as_ref().unwrap().value(path).to_string()
}

#[test]
fn new_run_form_is_prefilled_from_the_plugins_defaults() {
    let (_root, store, mut app) = setup("form-new");
    key(&mut app, &store, KeyCode::Char('n'));
    assert_eq!(form_value(&app, "plugin"), "conv-ae");
    assert_eq!(form_value(&app, "params.latent"), "64");
    assert_eq!(form_value(&app, "params.channels"), "[32, 64, 128]");
    assert_eq!(form_value(&app, "params.activation"), "\"leaky_relu\"");
    assert_eq!(form_value(&app, "device"), "auto");
    insta::assert_snapshot!("form_new", render(&mut app, &store, 80, 24));
}

#[test]
fn form_keys_move_choose_and_type() {
    let (_root, store, mut app) = setup("form-keys");
    key(&mut app, &store, KeyCode::Char('n'));
    for _ in 0..2 {
        key(&mut app, &store, KeyCode::Down);
    }
    let form = app.form.as_ref().unwrap();
    assert_eq!(form.fields[form.focus].path, "data.kind");
    key(&mut app, &store, KeyCode::Right);
    assert_eq!(form_value(&app, "data.kind"), "Csv");
    key(&mut app, &store, KeyCode::Left);
    key(&mut app, &store, KeyCode::Left);
    assert_eq!(form_value(&app, "data.kind"), "Dicom");
    // Typing, then Esc: the old value comes back.
    focus(&mut app, "train.seed");
    key(&mut app, &store, KeyCode::Char('i'));
    key(&mut app, &store, KeyCode::Char('7'));
    let screen = render(&mut app, &store, 80, 24);
    assert!(screen.contains("Enter keep"), "{screen}");
    key(&mut app, &store, KeyCode::Esc);
    assert_eq!(form_value(&app, "train.seed"), "0");
    assert!(app.form.is_some(), "Esc while typing keeps the form");
    type_into(&mut app, &store, "train.seed", "42");
    assert_eq!(form_value(&app, "train.seed"), "42");
    // `q` is text-free here but does not quit from a form.
    key(&mut app, &store, KeyCode::Char('q'));
    assert!(!app.quit);
    key(&mut app, &store, KeyCode::Esc);
    assert!(app.form.is_none() && app.pending.is_none());
}

#[test]
fn switching_plugin_swaps_defaults_but_keeps_edited_params() {
    let (_root, store, mut app) = setup("form-plugin");
    key(&mut app, &store, KeyCode::Char('n'));
    type_into(&mut app, &store, "params.latent", "16");
    focus(&mut app, "plugin");
    key(&mut app, &store, KeyCode::Right);
    assert_eq!(form_value(&app, "plugin"), "vae");
    let form = app.form.as_ref().unwrap();
    let params: Vec<(&str, &str)> = form
        .fields
        .iter()
        .filter(|f| f.path.starts_with("params."))
        .map(|f| (f.path.as_str(), f.value.as_str()))
        .collect();
    assert_eq!(
        params,
        vec![("params.beta", "1.0"), ("params.latent", "16")]
    );
}

#[test]
fn a_bad_value_is_shown_with_its_field_and_line_and_nothing_launches() {
    let (root, store, mut app) = setup("form-error");
    key(&mut app, &store, KeyCode::Char('n'));
    type_into(&mut app, &store, "data.root", &root.display().to_string());
    type_into(&mut app, &store, "train.epochs", "five");
    key(&mut app, &store, KeyCode::Enter);
    assert_eq!(app.pending, None);
    let form = app.form.as_ref().unwrap();
    let err = form.error.clone().unwrap();
    assert_eq!(err.field.as_deref(), Some("train.epochs"));
    let line = err.line.unwrap();
    let text = form.config_text().text;
    assert_eq!(text.lines().nth(line - 1).unwrap().trim(), "epochs: five,");
    let screen = render(&mut app, &store, 80, 24);
    assert!(screen.contains(&format!("line {line}, column")), "{screen}");
    insta::assert_snapshot!("form_error_line", screen);

    // A value the parser takes but validation refuses: named, with its line too.
    type_into(&mut app, &store, "train.epochs", "0");
    key(&mut app, &store, KeyCode::Enter);
    let err = app.form.as_ref().unwrap().error.clone().unwrap();
    assert_eq!(err.field.as_deref(), Some("train.epochs"));
    assert_eq!(err.line, Some(line));
    assert!(err.summary().contains("must be at least 1"), "{err:?}");

    // A dataset folder that is not there.
    type_into(&mut app, &store, "train.epochs", "2");
    type_into(&mut app, &store, "data.root", "no/such/folder");
    key(&mut app, &store, KeyCode::Enter);
    let err = app.form.as_ref().unwrap().error.clone().unwrap();
    assert_eq!(err.field.as_deref(), Some("data.root"));
    assert!(err.message.contains("does not exist"), "{err:?}");
    assert_eq!(app.pending, None);
}

#[test]
fn editor_text_is_checked_like_the_form() {
    let (_root, store, mut app) = setup("form-editor");
    key(&mut app, &store, KeyCode::Char('n'));
    key(&mut app, &store, KeyCode::Char('e'));
    let Some(Action::Edit { text }) = app.pending.take() else {
        panic!("e asks for the editor: {:?}", app.pending);
    };
    assert!(text.contains("\"latent\": 64,"), "{text}");

    // A key the plugin does not have: refused, with its line in the editor text.
    let typo = text.replace("\"latent\": 64", "\"latnet\": 64");
    app.form.as_mut().unwrap().edited(typo.clone());
    let form = app.form.as_ref().unwrap();
    let err = form.error.clone().unwrap();
    assert_eq!(err.field.as_deref(), Some("params.latnet"));
    assert!(
        err.message.contains("not a parameter of conv-ae"),
        "{err:?}"
    );
    let line = err.line.unwrap();
    assert!(typo.lines().nth(line - 1).unwrap().contains("latnet"));
    assert!(form.raw.is_some(), "the text is kept for the next `e`");
    insta::assert_snapshot!("form_editor_error", render(&mut app, &store, 80, 24));
    key(&mut app, &store, KeyCode::Char('e'));
    assert_eq!(app.pending.take(), Some(Action::Edit { text: typo }));

    // Fixed text fills the fields.
    let fixed = text
        .replace("epochs: 5", "epochs: 9")
        .replace("\"latent\": 64", "\"latent\": 8");
    app.form.as_mut().unwrap().edited(fixed);
    let form = app.form.as_ref().unwrap();
    assert_eq!(form.error, None);
    assert_eq!(form.raw, None);
    assert_eq!(form_value(&app, "train.epochs"), "9");
    assert_eq!(form_value(&app, "params.latent"), "8");
}

#[test]
fn enter_launches_and_selects_the_new_run() {
    let (root, store, mut app) = setup("form-launch");
    key(&mut app, &store, KeyCode::Char('n'));
    type_into(&mut app, &store, "data.root", &root.display().to_string());
    type_into(&mut app, &store, "name", "my-run");
    type_into(&mut app, &store, "params.latent", "16");
    key(&mut app, &store, KeyCode::Enter);
    let action = app.pending.take().expect("a launch");
    let Action::Launch { config, spec, name } = &action else {
        panic!("{action:?}");
    };
    assert_eq!(config, &PathBuf::from("./new.ron"));
    assert_eq!(spec.plugin, "conv-ae");
    assert_eq!(ron::to_string(&spec.params["latent"]).unwrap(), "16");
    assert_eq!(name.as_deref(), Some("my-run"));
    let control = FakeControl::default();
    actions::perform(&mut app, action, &control);
    assert_eq!(
        *control.calls.borrow(),
        vec!["launch conv-ae Some(\"my-run\")"]
    );
    assert_eq!(app.selected, Some(root.join("my-run")));
    assert!(app.form.is_none());
    assert!(
        app.message
            .as_ref()
            .unwrap()
            .text
            .contains("launched my-run")
    );
}

#[test]
fn a_failed_launch_keeps_the_form_and_says_why() {
    let (root, store, mut app) = setup("form-launch-fails");
    key(&mut app, &store, KeyCode::Char('n'));
    type_into(&mut app, &store, "data.root", &root.display().to_string());
    key(&mut app, &store, KeyCode::Enter);
    let action = app.pending.take().unwrap();
    actions::perform(
        &mut app,
        action,
        &FakeControl::failing("runs/: Permission denied (os error 13)"),
    );
    let form = app.form.as_ref().expect("the form stays open");
    assert!(
        form.error
            .as_ref()
            .unwrap()
            .message
            .contains("Permission denied"),
        "{:?}",
        form.error
    );
}

#[test]
fn c_clones_the_selected_runs_config_into_the_form() {
    let (root, store, mut app) = setup("form-clone");
    select(&mut app, &root, "ae-finished");
    key(&mut app, &store, KeyCode::Char('c'));
    let form = app.form.as_ref().unwrap();
    assert_eq!(form.title, "clone ae-finished");
    assert_eq!(form.config_path, root.join("ae-finished/run.ron"));
    assert_eq!(form_value(&app, "plugin"), "conv-ae");
    assert_eq!(form_value(&app, "data.root"), "/data/synth");
    assert_eq!(form_value(&app, "data.size"), "32, 32");
    assert_eq!(form_value(&app, "data.normal_class"), "normal");
    assert_eq!(form_value(&app, "train.epochs"), "6");
    assert_eq!(form_value(&app, "train.lr"), "0.001");
    assert_eq!(form_value(&app, "params.latent"), "32");
    assert_eq!(form_value(&app, "params.channels"), "[32, 64, 128]");
    let screen = render(&mut app, &store, 100, 30);
    assert!(screen.contains("32  (default 64)"), "{screen}");
}

#[test]
fn plugins_described_after_the_form_opened_fill_it_in() {
    let (root, store, mut app) = setup("form-late-plugins");
    let full = std::mem::take(&mut app.plugins);
    app.plugins = PluginCatalog {
        dirs: full.dirs.clone(),
        rows: vec![PluginRow {
            path: root.join("plugins/libconv_ae.so"),
            entry: None,
        }],
        ..PluginCatalog::default()
    };
    key(&mut app, &store, KeyCode::Char('n'));
    assert_eq!(form_value(&app, "plugin"), "");
    type_into(&mut app, &store, "data.root", &root.display().to_string());
    key(&mut app, &store, KeyCode::Enter);
    let err = app.form.as_ref().unwrap().error.clone().unwrap();
    assert_eq!(err.field.as_deref(), Some("plugin"));
    assert!(err.message.contains("try again in a moment"), "{err:?}");
    app.set_plugins(full);
    assert_eq!(form_value(&app, "plugin"), "conv-ae");
    assert_eq!(form_value(&app, "params.latent"), "64");
}

#[test]
fn x_asks_before_sigterm_and_again_before_sigkill() {
    let (root, store, mut app) = setup("stop");
    select(&mut app, &root, "ae-running");
    // Even in the Losses view, where `x` used to switch the axis.
    app.view = View::Losses;
    let axis = app.losses.x_axis;
    key(&mut app, &store, KeyCode::Char('x'));
    assert_eq!(app.losses.x_axis, axis);
    let screen = render(&mut app, &store, 80, 24);
    assert!(screen.contains("Stop run ae-running?"), "{screen}");
    insta::assert_snapshot!("confirm_stop", screen);
    key(&mut app, &store, KeyCode::Char('n'));
    assert!(app.confirm.is_none() && app.pending.is_none());

    let control = FakeControl::default();
    key(&mut app, &store, KeyCode::Char('x'));
    // A stray key neither confirms nor cancels.
    key(&mut app, &store, KeyCode::Enter);
    assert!(app.confirm.is_some() && app.pending.is_none());
    key(&mut app, &store, KeyCode::Char('y'));
    let action = app.pending.take().unwrap();
    actions::perform(&mut app, action, &control);
    assert!(app.term_sent.contains(&root.join("ae-running")));
    assert!(app.message.as_ref().unwrap().text.contains("SIGTERM sent"));

    key(&mut app, &store, KeyCode::Char('x'));
    let question = app.confirm.as_ref().unwrap().question.clone();
    assert_eq!(question, "Kill run ae-running?");
    key(&mut app, &store, KeyCode::Char('y'));
    let action = app.pending.take().unwrap();
    actions::perform(&mut app, action, &control);
    assert_eq!(
        *control.calls.borrow(),
        vec!["stop ae-running false", "stop ae-running true"]
    );
    assert!(app.term_sent.is_empty());

    // A finished run: nothing to stop, no question.
    select(&mut app, &root, "ae-finished");
    key(&mut app, &store, KeyCode::Char('x'));
    assert!(app.confirm.is_none());
    assert!(
        app.message
            .as_ref()
            .unwrap()
            .text
            .contains("nothing to stop")
    );
}

#[test]
fn r_resumes_only_runs_that_ended_early() {
    let (root, store, mut app) = setup("resume");
    select(&mut app, &root, "ae-failed");
    key(&mut app, &store, KeyCode::Char('r'));
    assert_eq!(
        app.confirm.as_ref().map(|c| c.question.as_str()),
        Some("Resume run ae-failed?")
    );
    key(&mut app, &store, KeyCode::Char('y'));
    let control = FakeControl::default();
    let action = app.pending.take().unwrap();
    actions::perform(&mut app, action, &control);
    assert_eq!(*control.calls.borrow(), vec!["resume ae-failed"]);
    assert!(app.message.as_ref().unwrap().text.contains("resuming"));

    select(&mut app, &root, "ae-running");
    key(&mut app, &store, KeyCode::Char('r'));
    assert!(app.confirm.is_none());
    let text = &app.message.as_ref().unwrap().text;
    assert!(
        text.contains("only a stopped, failed or crashed run"),
        "{text}"
    );
}

#[test]
fn action_errors_are_one_escaped_line_and_go_with_the_next_key() {
    let (root, store, mut app) = setup("action-error");
    select(&mut app, &root, "ae-running");
    key(&mut app, &store, KeyCode::Char('x'));
    key(&mut app, &store, KeyCode::Char('y'));
    let hostile = "no runner: lock \u{1b}]52;c;ZXZpbA==\u{7} held\nsecond line";
    let action = app.pending.take().unwrap();
    actions::perform(&mut app, action, &FakeControl::failing(hostile));
    assert!(app.message.as_ref().unwrap().error);
    let screen = render(&mut app, &store, 120, 30);
    let bar = screen.lines().nth(29).unwrap();
    assert!(
        bar.contains(
            "⚠ stop ae-running: no runner: lock \\u{1b}]52;c;ZXZpbA==\\u{7} held\\nsecond line"
        ),
        "{screen}"
    );
    key(&mut app, &store, KeyCode::Char('j'));
    assert!(app.message.is_none());
}

#[test]
fn plugins_pane_lists_usable_and_refused_plugins() {
    let (_root, store, mut app) = setup("plugins-pane");
    key(&mut app, &store, KeyCode::Char('9'));
    assert_eq!(app.view, View::Plugins);
    let screen = render(&mut app, &store, 100, 30);
    assert!(
        screen.contains("3 plugin files: 2 usable, 1 refused"),
        "{screen}"
    );
    assert!(screen.contains("✔ conv-ae"), "{screen}");
    assert!(screen.contains("✘ refused"), "{screen}");
    assert!(screen.contains("plugin ABI 2.0 is newer"), "{screen}");
    insta::assert_snapshot!("plugins_pane", screen);
}
