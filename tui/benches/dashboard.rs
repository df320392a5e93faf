//! Dashboard costs, printed as a table (`cargo bench -p gantry --bench dashboard`):
//! first frame over 1,000 runs, loading one run with 1,000,000 scalar rows, its memory,
//! and the time per frame of the loss chart at 200x60. Targets (dashboard issue): first
//! frame <= 0.5 s, load <= 1 s, memory <= 300 MB, frame <= 10 ms. Timings on shared
//! machines are noisy: read them as orders of magnitude, not pass/fail lines.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use gantry::fixtures::{self, FixtureRun, NOW};
use gantry::runfs::status::State;
use gantry::ui::app::{App, View};
use gantry::ui::draw::draw;
use gantry::ui::store::RunStore;
use gantry::ui::theme::Theme;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

fn rss_mb() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0.0);
    pages * 4096.0 / 1e6
}

fn frame(app: &mut App, store: &RunStore, terminal: &mut Terminal<TestBackend>) -> f64 {
    let start = Instant::now();
    app.prepare(store);
    terminal.draw(|f| draw(f, app, store)).unwrap();
    start.elapsed().as_secs_f64()
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    println!("{:<44} {:>12} {:>10}", "measure", "value", "target");

    // 1,000 runs: scan the root, read every run, draw the first frame.
    let many = dir.path().join("many");
    for i in 0..1000 {
        let mut run = FixtureRun::new(&format!("run-{i:04}"), State::Finished, 1);
        run.epochs = 1;
        run.age = i as f64;
        fixtures::write_run(&many, &run).unwrap();
    }
    let start = Instant::now();
    let mut store = RunStore::new(vec![many.clone()]);
    store.rescan();
    let mut app = App::new(Theme::new(true), NOW, "bench".into());
    let mut terminal = Terminal::new(TestBackend::new(200, 60)).unwrap();
    frame(&mut app, &store, &mut terminal);
    println!(
        "{:<44} {:>10.3} s {:>10}",
        "first frame, 1,000 runs (scan + draw)",
        start.elapsed().as_secs_f64(),
        "<= 0.5 s"
    );

    // One run with 1,000,000 scalar rows.
    let big = dir.path().join("big");
    let mut run = FixtureRun::new("big", State::Running, 1);
    run.epochs = 1000;
    let folder = fixtures::write_run(&big, &run).unwrap();
    write_rows(&folder.scalars_file(), 1_000_000);
    let rss_before = rss_mb();
    let start = Instant::now();
    let mut store = RunStore::new(vec![big.clone()]);
    store.rescan();
    let load = start.elapsed().as_secs_f64();
    let rows: usize = store
        .runs
        .values()
        .flat_map(|r| r.series.values())
        .map(|s| s.len())
        .sum();
    println!(
        "{:<44} {:>10.3} s {:>10}",
        format!("load {rows} scalar rows"),
        load,
        "<= 1 s"
    );
    println!(
        "{:<44} {:>9.0} MB {:>10}",
        "memory of those rows (RSS growth)",
        rss_mb() - rss_before,
        "<= 300 MB"
    );
    let mut app = App::new(Theme::new(true), NOW, "bench".into());
    app.view = View::Losses;
    let mut terminal = Terminal::new(TestBackend::new(200, 60)).unwrap();
    frame(&mut app, &store, &mut terminal);
    let frames = 30;
    let total: f64 = (0..frames)
        .map(|_| frame(&mut app, &store, &mut terminal))
        .sum();
    println!(
        "{:<44} {:>9.2} ms {:>10}",
        "loss chart frame, 1M rows, 200x60",
        total / frames as f64 * 1e3,
        "<= 10 ms"
    );
    app.losses.smoothing = 0.0;
    let total: f64 = (0..frames)
        .map(|_| frame(&mut app, &store, &mut terminal))
        .sum();
    println!(
        "{:<44} {:>9.2} ms {:>10}",
        "  same, smoothing off",
        total / frames as f64 * 1e3,
        ""
    );
    // Appending: the tail reads only new bytes.
    append_rows(&folder.scalars_file(), 1_000_000, 1000);
    let start = Instant::now();
    store.refresh_paths(&[folder.scalars_file()]);
    println!(
        "{:<44} {:>9.2} ms {:>10}",
        "tail 1,000 appended rows",
        start.elapsed().as_secs_f64() * 1e3,
        ""
    );
    // A live update: a few rows arrive, the smoothing extends, the points are rebuilt.
    app.losses.smoothing = 0.6;
    frame(&mut app, &store, &mut terminal);
    append_rows(&folder.scalars_file(), 1_001_000, 10);
    store.refresh_paths(&[folder.scalars_file()]);
    let t = frame(&mut app, &store, &mut terminal);
    println!(
        "{:<44} {:>9.2} ms {:>10}",
        "frame after 10 new rows (re-decimates 1M)",
        t * 1e3,
        ""
    );
}

fn write_rows(path: &Path, n: usize) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(out, "wall_time,step,epoch,tag,value").unwrap();
    for step in 1..=n {
        writeln!(
            out,
            "{:.3},{step},{},train/loss,{}",
            NOW + step as f64,
            step / 1000 + 1,
            1.0 / (1.0 + step as f64 / 1e4)
        )
        .unwrap();
    }
}

fn append_rows(path: &Path, from: usize, n: usize) {
    let mut out = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    let mut text = String::new();
    for step in from + 1..=from + n {
        text.push_str(&format!(
            "{:.3},{step},{},train/loss,0.5\n",
            NOW + step as f64,
            step / 1000 + 1
        ));
    }
    out.write_all(text.as_bytes()).unwrap();
}
