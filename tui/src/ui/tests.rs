//! Snapshot tests of every view on fixture run folders (ratatui TestBackend + insta), at
//! 80x24 and at a wide size, plus key handling that a user would notice.

use std::path::{Path, PathBuf};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

use super::app::{App, View};
use super::draw::draw;
use super::store::RunStore;
use super::theme::Theme;
use crate::fixtures::{self, FixtureRun, HOST, NOW};
use crate::gpu::{GpuSample, GpuStats};
use crate::runfs::status::State;

/// A fixture root at a fixed relative path, so paths in snapshots are stable.
pub(super) fn root(name: &str) -> PathBuf {
    let root = PathBuf::from("../target/ui-fixtures").join(name);
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    fixtures::write_standard_root(&root).unwrap();
    root
}

pub(super) fn store(root: &Path) -> RunStore {
    let mut store = RunStore::new(vec![root.to_path_buf()]);
    store.rescan();
    store
}

pub(super) fn app() -> App {
    App::new(Theme::new(true), NOW, "this-host".into())
}

pub(super) fn render(app: &mut App, store: &RunStore, w: u16, h: u16) -> String {
    app.prepare(store);
    let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
    terminal.draw(|f| draw(f, app, store)).unwrap();
    terminal.backend().to_string()
}

pub(super) fn key(app: &mut App, store: &RunStore, code: KeyCode) {
    app.on_key(KeyEvent::new(code, KeyModifiers::NONE), store);
}

pub(super) fn select(app: &mut App, root: &Path, id: &str) {
    app.selected = Some(root.join(id));
}

#[test]
fn every_view_at_80x24() {
    let root = root("views-80");
    let store = store(&root);
    let mut app = app();
    select(&mut app, &root, "ae-finished");
    for view in View::ALL {
        app.view = view;
        let screen = render(&mut app, &store, 80, 24);
        insta::assert_snapshot!(
            format!("view_80x24_{}", view.title().to_lowercase()),
            screen
        );
    }
}

#[test]
fn every_view_wide() {
    let root = root("views-wide");
    let store = store(&root);
    let mut app = app();
    select(&mut app, &root, "ae-running");
    for view in View::ALL {
        app.view = view;
        let screen = render(&mut app, &store, 160, 48);
        insta::assert_snapshot!(
            format!("view_160x48_{}", view.title().to_lowercase()),
            screen
        );
    }
}

#[test]
fn marked_runs_are_compared() {
    let root = root("compare");
    let store = store(&root);
    let mut app = app();
    app.sort = super::app::SortKey::Name;
    select(&mut app, &root, "ae-finished");
    key(&mut app, &store, KeyCode::Char(' '));
    select(&mut app, &root, "ae-running");
    key(&mut app, &store, KeyCode::Char(' '));
    assert_eq!(app.marked.len(), 2);
    app.view = View::Metrics;
    let metrics = render(&mut app, &store, 120, 30);
    assert!(metrics.contains("2 runs compared"), "{metrics}");
    insta::assert_snapshot!("compare_metrics", metrics);
    app.view = View::Losses;
    insta::assert_snapshot!("compare_losses", render(&mut app, &store, 120, 30));
}

#[test]
fn run_states_badges_and_escapes_are_shown() {
    let root = root("states");
    let mut stalled = FixtureRun::new("ae-stalled", State::Running, 2);
    stalled.heartbeat_age = 60.0;
    fixtures::write_run(&root, &stalled).unwrap();
    let store = store(&root);
    let mut app = app();
    app.sort = super::app::SortKey::Name;
    let screen = render(&mut app, &store, 100, 30);
    // An ANSI escape in a run name is shown escaped, never sent raw.
    assert!(screen.contains("evil\\u{1b}[31mred"), "{screen}");
    assert!(!screen.contains('\u{1b}'));
    // Garbage status.ron: an error badge, and the dashboard goes on.
    assert!(screen.contains("broken ⚠"), "{screen}");
    // Heartbeat a minute old: stalled.
    assert!(screen.contains("⏸  ae-stalled"), "{screen}");
    assert!(screen.contains("✘  ae-failed"), "{screen}");
    insta::assert_snapshot!("states_list", screen);
}

#[test]
fn filter_narrows_the_list_and_esc_clears_it() {
    let root = root("filter");
    let store = store(&root);
    let mut app = app();
    key(&mut app, &store, KeyCode::Char('/'));
    for c in "fail".chars() {
        key(&mut app, &store, KeyCode::Char(c));
    }
    key(&mut app, &store, KeyCode::Enter);
    let ids: Vec<String> = app.visible(&store).iter().map(|r| r.id()).collect();
    assert_eq!(ids, vec!["ae-failed"]);
    // Regex too.
    key(&mut app, &store, KeyCode::Char('/'));
    for _ in 0..4 {
        key(&mut app, &store, KeyCode::Backspace);
    }
    for c in "^ae-(run|fin)".chars() {
        key(&mut app, &store, KeyCode::Char(c));
    }
    key(&mut app, &store, KeyCode::Enter);
    let mut ids: Vec<String> = app.visible(&store).iter().map(|r| r.id()).collect();
    ids.sort();
    assert_eq!(ids, vec!["ae-finished", "ae-running"]);
    key(&mut app, &store, KeyCode::Esc);
    assert_eq!(app.visible(&store).len(), store.runs.len());
}

#[test]
fn losses_settings_change_with_keys() {
    let root = root("loss-keys");
    let store = store(&root);
    let mut app = app();
    select(&mut app, &root, "ae-finished");
    app.view = View::Losses;
    for _ in 0..10 {
        key(&mut app, &store, KeyCode::Char('+'));
    }
    assert_eq!(app.losses.smoothing, 0.99);
    key(&mut app, &store, KeyCode::Char('L'));
    key(&mut app, &store, KeyCode::Char('a'));
    key(&mut app, &store, KeyCode::Char('z'));
    assert!(app.losses.log_y);
    assert_eq!(app.losses.last_n, Some(1000));
    let screen = render(&mut app, &store, 100, 30);
    assert!(
        screen.contains("smooth 0.99 · log y · last 1000"),
        "{screen}"
    );
    assert!(screen.contains("epoch"), "x axis label: {screen}");
}

#[test]
fn scores_step_back_through_evaluations() {
    let root = root("scores-keys");
    let store = store(&root);
    let mut app = app();
    select(&mut app, &root, "ae-finished");
    app.view = View::Scores;
    let latest = render(&mut app, &store, 100, 30);
    assert!(latest.contains("epoch 6 (latest)"), "{latest}");
    key(&mut app, &store, KeyCode::Char('['));
    key(&mut app, &store, KeyCode::Char('['));
    let earlier = render(&mut app, &store, 100, 30);
    assert!(earlier.contains("epoch 4 "), "{earlier}");
    key(&mut app, &store, KeyCode::Char('t'));
    key(&mut app, &store, KeyCode::Char('v'));
    let youden = render(&mut app, &store, 100, 30);
    assert!(youden.contains("(Youden)"), "{youden}");
}

#[test]
fn too_small_terminal_says_so() {
    let root = root("small");
    let store = store(&root);
    let screen = render(&mut app(), &store, 50, 12);
    assert!(screen.contains("terminal too small: 50x12"), "{screen}");
}

#[test]
fn no_color_still_distinguishes_classes_by_glyph() {
    let root = root("no-color");
    let store = store(&root);
    let mut app = App::new(Theme::new(false), NOW, HOST.into());
    select(&mut app, &root, "ae-finished");
    app.view = View::Scores;
    let screen = render(&mut app, &store, 80, 24);
    assert!(screen.contains('░') && screen.contains('▓'), "{screen}");
}

#[test]
fn help_lists_every_key() {
    let root = root("help");
    let store = store(&root);
    let mut app = app();
    key(&mut app, &store, KeyCode::Char('?'));
    // At 80x24 the help does not fit: what scrolling shows, together, is every key.
    let mut screens = render(&mut app, &store, 80, 24);
    for _ in 0..super::views::help::KEYS.len() {
        key(&mut app, &store, KeyCode::Down);
        screens.push_str(&render(&mut app, &store, 80, 24));
    }
    assert!(app.help, "arrows scroll the help");
    for (keys, _) in super::views::help::KEYS
        .iter()
        .filter(|(k, _)| !k.is_empty())
    {
        assert!(screens.contains(keys), "help misses {keys}: {screens}");
    }
    key(&mut app, &store, KeyCode::Char('x'));
    assert!(!app.help, "any other key closes help");
}

#[test]
fn metrics_view_shows_a_classifier_confusion_matrix() {
    let root = root("confusion");
    let run = root.join("ae-finished");
    crate::runfs::confusion::write(
        &run.join("confusion/epoch-0003-test.csv"),
        &["benign".into(), "malignant".into(), "normal".into()],
        &[vec![40, 3, 1], vec![5, 30, 0], vec![2, 0, 19]],
    )
    .unwrap();
    let store = store(&root);
    let mut app = app();
    select(&mut app, &root, "ae-finished");
    app.view = View::Metrics;
    let screen = render(&mut app, &store, 100, 30);
    assert!(
        screen.contains("confusion epoch-0003-test: rows true class, columns predicted"),
        "{screen}"
    );
    let malignant = screen
        .lines()
        .find(|l| l.trim_start_matches(['"', '│']).starts_with("malignant"))
        .unwrap_or_else(|| panic!("{screen}"));
    let counts: Vec<&str> = malignant
        .trim_matches(['"', '│'])
        .split_whitespace()
        .collect();
    assert_eq!(counts, vec!["malignant", "5", "30", "0"]);
    insta::assert_snapshot!("metrics_confusion", screen);
}

#[test]
fn embedding_view_draws_each_label_with_its_glyph() {
    use crate::runfs::embedding::{self, Point};
    let root = root("embedding");
    let run = root.join("ae-finished");
    let mut points = Vec::new();
    for i in 0..40 {
        let (label, cx) = if i % 2 == 0 {
            ("normal", -2.0)
        } else {
            ("anomalous", 2.0)
        };
        let t = i as f64 * 0.7;
        points.push(Point {
            sample: format!("test/{label}/{i:03}.png"),
            label: label.into(),
            x: cx + 0.3 * t.sin(),
            y: 0.5 * t.cos(),
        });
    }
    embedding::write(&run.join("embeddings/epoch-0006-test.csv"), &points).unwrap();
    let store = store(&root);
    let mut app = app();
    select(&mut app, &root, "ae-finished");
    key(&mut app, &store, KeyCode::Char('7'));
    assert_eq!(app.view, View::Embedding);
    let screen = render(&mut app, &store, 100, 30);
    assert!(
        screen.contains("epoch-0006-test · PCA of latent codes"),
        "{screen}"
    );
    assert!(
        screen.contains("● anomalous (20)") && screen.contains("▲ normal (20)"),
        "{screen}"
    );
    // Two separated clusters: braille dots on both the left and right halves.
    let plot_rows: Vec<&str> = screen.lines().skip(12).collect();
    let braille = |s: &str| s.chars().any(|c| ('\u{2801}'..='\u{28ff}').contains(&c));
    assert!(
        plot_rows
            .iter()
            .any(|l| braille(&l.chars().take(45).collect::<String>()))
    );
    assert!(
        plot_rows
            .iter()
            .any(|l| braille(&l.chars().skip(55).collect::<String>()))
    );
    insta::assert_snapshot!("embedding_view", screen);
}

/// Two H200s as NVML would describe them; the second does not report power.
fn two_gpus() -> GpuStats {
    let gib = |g: f64| (g * (1u64 << 30) as f64) as u64;
    GpuStats::Devices(vec![
        GpuSample {
            index: 0,
            name: "NVIDIA H200".into(),
            utilization_pct: Some(87),
            memory_used_bytes: Some(gib(41.23)),
            memory_total_bytes: Some(gib(139.8)),
            temperature_c: Some(71),
            power_watts: Some(412.4),
            error: None,
        },
        GpuSample {
            index: 1,
            name: "NVIDIA H200".into(),
            utilization_pct: Some(3),
            memory_used_bytes: Some(gib(0.52)),
            memory_total_bytes: Some(gib(139.8)),
            temperature_c: Some(34),
            power_watts: None,
            error: None,
        },
    ])
}

/// A finished CUDA run that recorded its peak GPU memory.
fn cuda_root(name: &str) -> PathBuf {
    let root = root(name);
    let mut cuda = FixtureRun::new("ae-cuda", State::Finished, 6);
    cuda.age = 60.0;
    cuda.device = "cuda:0".into();
    cuda.peak_gpu_memory_bytes = Some(13_207_024_435);
    fixtures::write_run(&root, &cuda).unwrap();
    root
}

#[test]
fn overview_lists_this_hosts_gpus_and_the_runs_peak() {
    let root = cuda_root("gpus");
    let store = store(&root);
    let mut app = app();
    select(&mut app, &root, "ae-cuda");
    app.view = View::Overview;
    assert!(app.set_gpus(two_gpus()), "new stats on the Overview redraw");
    let screen = render(&mut app, &store, 80, 24);
    assert!(screen.contains("GPUs on this-host"), "{screen}");
    assert!(
        screen.contains("0 H200  util 87%  mem 41.2/139.8 GiB  71°C  412 W"),
        "{screen}"
    );
    assert!(
        screen.contains("1 H200  util  3%  mem  0.5/139.8 GiB  34°C      -"),
        "{screen}"
    );
    assert!(
        screen.contains("device     cuda:0 · GPU mem peak 12.3 GiB"),
        "{screen}"
    );
    insta::assert_snapshot!("overview_gpus_80x24", screen);
    // The same numbers, or a change another view would not show: no redraw.
    assert!(!app.set_gpus(two_gpus()));
    let GpuStats::Devices(mut hotter) = two_gpus() else {
        unreachable!()
    };
    hotter[0].power_watts = Some(412.2);
    assert!(
        !app.set_gpus(GpuStats::Devices(hotter.clone())),
        "same watts shown"
    );
    hotter[0].temperature_c = Some(80);
    app.view = View::Losses;
    assert!(!app.set_gpus(GpuStats::Devices(hotter)));
}

#[test]
fn overview_says_in_one_line_when_nvml_is_absent() {
    let root = cuda_root("no-nvml");
    let store = store(&root);
    let mut app = app();
    select(&mut app, &root, "ae-cuda");
    app.view = View::Overview;
    let reason = "NVML not available: libnvidia-ml.so.1 not found";
    assert!(app.set_gpus(GpuStats::Unavailable(reason.into())));
    let screen = render(&mut app, &store, 80, 24);
    let lines: Vec<&str> = screen.lines().filter(|l| l.contains("GPU")).collect();
    assert_eq!(lines.len(), 2, "{screen}");
    assert!(
        lines[1].contains("│GPUs: NVML not available: libnvidia-ml.so.1 not found"),
        "{screen}"
    );
    insta::assert_snapshot!("overview_no_nvml_80x24", screen);
    // No run selected: the GPUs line still shows.
    let empty = PathBuf::from("../target/ui-fixtures/no-nvml-empty");
    let _ = std::fs::remove_dir_all(&empty);
    std::fs::create_dir_all(&empty).unwrap();
    let screen = render(&mut app, &self::store(&empty), 80, 24);
    assert!(screen.contains("no run selected"), "{screen}");
    assert!(screen.contains("GPUs: NVML not available"), "{screen}");
}

#[test]
fn many_gpus_leave_room_for_the_run() {
    let root = cuda_root("many-gpus");
    let store = store(&root);
    let mut app = app();
    select(&mut app, &root, "ae-cuda");
    app.view = View::Overview;
    let GpuStats::Devices(two) = two_gpus() else {
        unreachable!()
    };
    let eight: Vec<GpuSample> = (0..8)
        .map(|i| GpuSample {
            index: i,
            ..two[(i % 2) as usize].clone()
        })
        .collect();
    app.set_gpus(GpuStats::Devices(eight));
    let screen = render(&mut app, &store, 80, 24);
    // 12 rows inside the frame: at most half for the panel, its title included.
    assert!(screen.contains("3 H200"), "{screen}");
    assert!(!screen.contains("4 H200"), "{screen}");
    assert!(
        screen.contains("… more: 4 GPUs (a taller terminal lists them)"),
        "{screen}"
    );
    assert!(screen.contains("progress"), "{screen}");
    // A GPU NVML cannot open shows why, and the others still show.
    let mut broken = GpuSample::unknown(1);
    broken.error = Some("the GPU has fallen off the bus".into());
    app.set_gpus(GpuStats::Devices(vec![two[0].clone(), broken]));
    let screen = render(&mut app, &store, 80, 24);
    assert!(screen.contains("0 H200  util 87%"), "{screen}");
    assert!(
        screen.contains("1 ?     unreadable: the GPU has fallen off the bus"),
        "{screen}"
    );
}
