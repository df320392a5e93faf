//! Hostile run folders: ESC, CSI, OSC 52 (clipboard write) and BEL sequences in a run's
//! name, its scalar tags, its config values, its log lines, its score labels and sample
//! names, in a plugin's name and reason and in an error message. Every view, popup and
//! the message bar are drawn, and no cell of the screen may hold a control character;
//! the sequences must be shown escaped instead.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crossterm::event::KeyCode;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

use super::app::{App, Message, View};
use super::draw::draw;
use super::plugin_catalog::{PluginCatalog, PluginRow};
use super::store::RunStore;
use super::tests::{app, key, root, select, store};
use crate::fixtures::{self, FixtureRun};
use crate::plugins::PluginEntry;
use crate::runfs::RunFolder;
use crate::runfs::scalars::{ScalarRow, ScalarWriter};
use crate::runfs::scores::{self, ScoreRow};
use crate::runfs::status::State;

/// SGR red, CSI clear-screen, OSC 52 "set the clipboard to `evil`" ended by BEL, a bare
/// BEL, and the 8-bit CSI.
const HOSTILE: &str = "\u{1b}[31mred\u{1b}[2J\u{1b}]52;c;ZXZpbA==\u{7}ding\u{7}\u{9b}6n";
/// How the OSC 52 part reads once escaped.
const ESCAPED_OSC: &str = "\\u{1b}]52;c;ZXZpbA==\\u{7}";

/// A run carrying the hostile text everywhere a run folder can carry text.
fn hostile_run(root: &Path) -> PathBuf {
    let id = format!("x{HOSTILE}");
    let mut run = FixtureRun::new(&id, State::Running, 3);
    run.error = Some(format!("plugin said {HOSTILE}"));
    let folder = fixtures::write_run(root, &run).unwrap();

    let mut record = folder.read_record().unwrap();
    record.spec.data.root = PathBuf::from(format!("/data/{HOSTILE}"));
    record.spec.data.normal_class = Some(HOSTILE.into());
    record
        .spec
        .params
        .insert(format!("k{HOSTILE}"), ron::Value::String(HOSTILE.into()));
    record.spec.device = HOSTILE.into();
    record.plugin.name = format!("conv{HOSTILE}");
    record.plugin.family = HOSTILE.into();
    record.git = Some(HOSTILE.into());
    folder.write_record(&record).unwrap();

    let mut status = folder.read_status().unwrap();
    status.device = Some(HOSTILE.into());
    status.error = Some(HOSTILE.into());
    status.latest.push((format!("test/{HOSTILE}"), 0.5));
    if let Some(best) = status.best.as_mut() {
        best.tag = format!("val/{HOSTILE}");
    }
    folder.write_status(&status).unwrap();

    let mut scalars = ScalarWriter::open(&folder.scalars_file()).unwrap();
    for step in 31..=40 {
        for tag in [format!("train/{HOSTILE}"), format!("val/{HOSTILE}loss")] {
            scalars
                .push(&ScalarRow {
                    wall_time: fixtures::NOW - 100.0 + step as f64,
                    step,
                    epoch: 4,
                    tag,
                    value: 1.0 / step as f64,
                })
                .unwrap();
        }
    }
    scalars.flush().unwrap();
    let mut system = ScalarWriter::open(&folder.system_file()).unwrap();
    system
        .push(&ScalarRow {
            wall_time: fixtures::NOW - 60.0,
            step: 40,
            epoch: 4,
            tag: format!("sys/{HOSTILE}"),
            value: 1.0,
        })
        .unwrap();
    system.flush().unwrap();

    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .open(folder.log_file())
        .unwrap();
    writeln!(log, "2027-01-15T08:00:02Z  WARN plugin: {HOSTILE}").unwrap();
    writeln!(log, "2027-01-15T08:00:03Z ERROR plugin: {HOSTILE}").unwrap();

    let rows: Vec<ScoreRow> = (0..20)
        .map(|i| ScoreRow {
            sample: format!("{HOSTILE}/{i}.png"),
            label: if i % 2 == 0 {
                HOSTILE.to_string()
            } else {
                "normal".to_string()
            },
            split: "test".into(),
            score: i as f64 / 20.0,
        })
        .collect();
    scores::write(&folder.scores_file(3), &rows).unwrap();
    std::fs::copy(
        folder.sample_file(3, "test-reconstruction"),
        folder
            .samples_dir()
            .join(format!("epoch-0003-{HOSTILE}.png")),
    )
    .unwrap();
    let points: Vec<crate::runfs::embedding::Point> = (0..10)
        .map(|i| crate::runfs::embedding::Point {
            sample: format!("{i}"),
            label: if i % 2 == 0 { HOSTILE } else { "normal" }.to_string(),
            x: i as f64,
            y: (i * i) as f64,
        })
        .collect();
    crate::runfs::embedding::write(&folder.dir.join("embeddings/epoch-0003-test.csv"), &points)
        .unwrap();
    crate::runfs::confusion::write(
        &folder.dir.join("confusion/epoch-0003-test.csv"),
        &[HOSTILE.to_string(), "normal".into()],
        &[vec![3, 1], vec![0, 4]],
    )
    .unwrap();
    folder.dir
}

fn hostile_plugins() -> PluginCatalog {
    let path = PathBuf::from(format!("/plugins/lib{HOSTILE}.so"));
    PluginCatalog {
        dirs: vec![PathBuf::from(format!("/plugins/{HOSTILE}"))],
        missing: vec![],
        rows: vec![
            PluginRow {
                entry: Some(PluginEntry {
                    path: path.clone(),
                    status: "ok".into(),
                    name: Some(format!("p{HOSTILE}")),
                    version: Some(HOSTILE.into()),
                    family: Some(HOSTILE.into()),
                    abi: Some(HOSTILE.into()),
                    summary: Some(HOSTILE.into()),
                    reason: None,
                    default_params: Some(format!("{{\"k{HOSTILE}\": \"{HOSTILE}\"}}")),
                }),
                path: path.clone(),
            },
            PluginRow {
                entry: Some(PluginEntry {
                    path: path.clone(),
                    status: "refused".into(),
                    name: None,
                    version: None,
                    family: None,
                    abi: None,
                    summary: None,
                    reason: Some(format!("refused: {HOSTILE}")),
                    default_params: None,
                }),
                path,
            },
        ],
        scanned: true,
        watch_errors: vec![HOSTILE.into()],
    }
}

/// Draws a frame and returns its text, failing on any control character in any cell.
fn draw_clean(app: &mut App, store: &RunStore, what: &str) -> String {
    app.prepare(store);
    let mut terminal = Terminal::new(TestBackend::new(140, 44)).unwrap();
    terminal.draw(|f| draw(f, app, store)).unwrap();
    let buffer = terminal.backend().buffer();
    for (i, cell) in buffer.content().iter().enumerate() {
        let symbol = cell.symbol();
        assert!(
            !symbol.chars().any(char::is_control),
            "{what}: cell ({}, {}) holds {symbol:?}",
            i % 140,
            i / 140
        );
    }
    terminal.backend().to_string()
}

#[test]
fn no_control_character_reaches_the_terminal() {
    let root = root("hostile");
    let dir = hostile_run(&root);
    let store = store(&root);
    let mut app = app();
    app.plugins = hostile_plugins();
    app.selected = Some(dir.clone());

    // Every view of the hostile run, alone and compared with another run.
    for marked in [false, true] {
        if marked {
            app.marked.insert(dir.clone());
            app.marked.insert(root.join("ae-finished"));
        }
        for view in View::ALL {
            app.view = view;
            let screen = draw_clean(&mut app, &store, &format!("{view:?} marked={marked}"));
            // Where the view shows the hostile text (all but the score histogram, which
            // names no label), it shows it escaped. The runs list above always does.
            let body: String = screen
                .lines()
                .skip_while(|l| !l.contains("│ 9"))
                .skip(1)
                .collect();
            if view != View::Scores {
                assert!(
                    body.contains("\\u{1b}"),
                    "{view:?} marked={marked}: the escape is not shown: {screen}"
                );
            }
        }
    }
    app.marked.clear();
    app.view = View::Log;
    let log = draw_clean(&mut app, &store, "log");
    assert!(log.contains(ESCAPED_OSC), "{log}");
    app.view = View::Overview;
    let overview = draw_clean(&mut app, &store, "overview");
    assert!(overview.contains("\\u{9b}6n"), "{overview}");

    // The popups: help, the form holding the hostile config, the confirmation, and an
    // error in the message bar.
    key(&mut app, &store, KeyCode::Char('?'));
    draw_clean(&mut app, &store, "help");
    key(&mut app, &store, KeyCode::Esc);
    select(&mut app, &root, &RunFolder::new(&dir).id());
    key(&mut app, &store, KeyCode::Char('c'));
    assert!(app.form.is_some());
    let form = draw_clean(&mut app, &store, "clone form");
    assert!(form.contains("/data/\\u{1b}[31mred"), "{form}");
    // Every field focused in turn (the hint names it), then typed into.
    let fields = app.form.as_ref().unwrap().fields.len();
    for _ in 0..fields {
        key(&mut app, &store, KeyCode::Down);
        draw_clean(&mut app, &store, "form field");
    }
    key(&mut app, &store, KeyCode::Enter);
    draw_clean(&mut app, &store, "form error");
    let text = app.form.as_ref().unwrap().config_text().text;
    app.form
        .as_mut()
        .unwrap()
        .edited(format!("{text}\n{HOSTILE}"));
    let raw = draw_clean(&mut app, &store, "editor text error");
    assert!(app.form.as_ref().unwrap().raw.is_some());
    assert!(raw.contains("\\u{1b}"), "{raw}");
    key(&mut app, &store, KeyCode::Esc);
    key(&mut app, &store, KeyCode::Esc);
    assert!(app.form.is_none());
    key(&mut app, &store, KeyCode::Char('x'));
    assert!(app.confirm.is_some());
    let confirm = draw_clean(&mut app, &store, "confirm");
    assert!(confirm.contains(ESCAPED_OSC), "{confirm}");
    key(&mut app, &store, KeyCode::Esc);
    app.message = Some(Message::error(format!(
        "resume failed: {HOSTILE}\nline two"
    )));
    let bar = draw_clean(&mut app, &store, "message");
    assert!(bar.contains(ESCAPED_OSC), "{bar}");
}
