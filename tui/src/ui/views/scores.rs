//! The score histogram: per-image anomaly scores of one evaluation, normal against
//! anomalous, as ASCII bars (two colours and two glyphs, so it reads without colour),
//! with the threshold a rule picks, its precision/recall/F1, and the AUROC; on a wide
//! terminal the ROC curve beside it.

use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Block, Chart, Dataset, GraphType, Paragraph};

use super::fmt_value;
use crate::metrics::auroc::auroc;
use crate::metrics::histogram::ScoreHistogram;
use crate::metrics::ranking::roc_curve;
use crate::metrics::threshold::{self, ThresholdRule};
use crate::runfs::scores::ScoreRow;
use crate::ui::app::App;
use crate::ui::store::RunData;

pub const NORMAL_GLYPH: &str = "░";
pub const ANOMALOUS_GLYPH: &str = "▓";
pub const BOTH_GLYPH: &str = "█";

pub fn render(frame: &mut Frame, area: Rect, app: &App, run: &RunData) {
    let Some(epoch) = app.score_epoch(run) else {
        return super::placeholder(
            frame,
            area,
            app,
            "no score files yet (scores/epoch-NNNN.csv)",
        );
    };
    let rows = match app.score_cache.get(&(run.folder.dir.clone(), epoch)) {
        Some(Ok(rows)) => rows,
        Some(Err(e)) => {
            let text = format!("⚠ {}", crate::text::escape_controls(e));
            frame.render_widget(Paragraph::new(Line::styled(text, app.theme.error)), area);
            return;
        }
        None => return super::placeholder(frame, area, app, "loading scores…"),
    };
    let Some(normal) = run
        .record
        .as_ref()
        .and_then(|r| r.spec.data.normal_class.clone())
    else {
        return super::placeholder(
            frame,
            area,
            app,
            "no normal_class in run.ron: nothing to split the scores by",
        );
    };
    // The test split is where anomalies are; fall back to every row.
    let test: Vec<&ScoreRow> = rows.iter().filter(|r| r.split == "test").collect();
    let chosen: Vec<&ScoreRow> = if test.is_empty() {
        rows.iter().collect()
    } else {
        test
    };
    let scores: Vec<f64> = chosen.iter().map(|r| r.score).collect();
    let anomalous: Vec<bool> = chosen.iter().map(|r| r.label != normal).collect();
    let n_anom = anomalous.iter().filter(|a| **a).count();
    let latest = app.scores.back == 0 || run.score_epochs.len() <= 1;
    let mut header = vec![
        Span::styled(
            format!("epoch {epoch}{} ", if latest { " (latest)" } else { "" }),
            app.theme.title,
        ),
        Span::raw(format!(
            "· {} ",
            if chosen.iter().any(|r| r.split == "test") {
                "test"
            } else {
                "all"
            }
        )),
        Span::styled(
            format!("{NORMAL_GLYPH} normal {} ", scores.len() - n_anom),
            app.theme.normal,
        ),
        Span::styled(
            format!("{ANOMALOUS_GLYPH} anomalous {n_anom} "),
            app.theme.anomalous,
        ),
    ];
    if let Some(a) = auroc(&scores, &anomalous) {
        header.push(Span::styled(format!("· AUROC {a:.4} "), app.theme.best));
    }
    let op = threshold::choose(&scores, &anomalous, app.scores.rule);
    let rule = match app.scores.rule {
        ThresholdRule::BestF1 => "best F1",
        ThresholdRule::Youden => "Youden",
    };
    let op_line = match &op {
        Some(op) => Line::from(vec![
            Span::styled(
                format!("│ threshold {} ({rule}) ", fmt_value(op.threshold)),
                app.theme.threshold,
            ),
            Span::raw(format!(
                "precision {:.3} recall {:.3} F1 {:.3} FPR {:.3}",
                op.precision, op.recall, op.f1, op.fpr
            )),
        ]),
        None => Line::styled(
            "threshold needs both normal and anomalous scores",
            app.theme.dim,
        ),
    };
    frame.render_widget(Line::from(header), Rect::new(area.x, area.y, area.width, 1));
    if area.height < 6 {
        return;
    }
    frame.render_widget(op_line, Rect::new(area.x, area.y + 1, area.width, 1));
    let body = Rect::new(area.x, area.y + 2, area.width, area.height - 2);
    // The ROC curve beside the histogram when there is room: braille cells are 2x4 dots,
    // so a square plot is about twice as wide as high.
    let area = if body.width >= 90 {
        let roc_width = (body.height * 2 + 10).min(body.width / 3);
        let [hist_area, roc_area] =
            Layout::horizontal([Constraint::Min(40), Constraint::Length(roc_width)]).areas(body);
        render_roc(frame, roc_area, app, &scores, &anomalous);
        Rect::new(hist_area.x, area.y, hist_area.width, area.height)
    } else {
        area
    };
    let plot = Rect::new(area.x, area.y + 2, area.width, area.height - 3);
    let cells_per_bin = if app.scores.side_by_side { 2 } else { 1 };
    let bins = ((plot.width as usize) / cells_per_bin).clamp(1, 120);
    let Some(hist) = ScoreHistogram::new(&scores, &anomalous, bins) else {
        return super::placeholder(frame, plot, app, "no finite scores");
    };
    draw_bars(
        frame.buffer_mut(),
        plot,
        app,
        &hist,
        op.map(|o| o.threshold),
        cells_per_bin,
    );
    let (lo, hi) = (hist.lo, hist.hi);
    let axis = format!(
        "{:<w$}{}",
        fmt_value(lo),
        fmt_value(hi),
        w = (area.width as usize).saturating_sub(fmt_value(hi).len())
    );
    frame.render_widget(
        Line::styled(axis, app.theme.dim),
        Rect::new(area.x, area.bottom() - 1, area.width, 1),
    );
}

/// The ROC curve (true against false positive rate) in braille, over the chance diagonal.
fn render_roc(frame: &mut Frame, area: Rect, app: &App, scores: &[f64], anomalous: &[bool]) {
    let Some(curve) = roc_curve(scores, anomalous) else {
        return;
    };
    let diagonal = [(0.0, 0.0), (1.0, 1.0)];
    let chart = Chart::new(vec![
        Dataset::default()
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(app.theme.dim)
            .data(&diagonal),
        Dataset::default()
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(app.theme.best)
            .data(&curve),
    ])
    .block(Block::bordered().title(Span::styled(" ROC ", app.theme.title)))
    .x_axis(
        Axis::default()
            .title("FPR")
            .bounds([0.0, 1.0])
            .labels(["0", "1"])
            .style(app.theme.dim),
    )
    .y_axis(
        Axis::default()
            .title("TPR")
            .bounds([0.0, 1.0])
            .labels(["0", "1"])
            .style(app.theme.dim),
    );
    frame.render_widget(chart, area);
}

/// Bars bottom-up; each bin is one cell (overlaid) or two (normal left, anomalous right).
fn draw_bars(
    buf: &mut Buffer,
    area: Rect,
    app: &App,
    hist: &ScoreHistogram,
    threshold: Option<f64>,
    cells_per_bin: usize,
) {
    let height = area.height as f64;
    let max = hist.max_count().max(1) as f64;
    let scale = |c: u32| -> u16 {
        let c = c as f64;
        let frac = if app.scores.log_count {
            (1.0 + c).ln() / (1.0 + max).ln()
        } else {
            c / max
        };
        // A non-empty bin always shows at least one cell.
        let h = (frac * height).round() as u16;
        if c > 0.0 { h.max(1) } else { 0 }
    };
    let put = |buf: &mut Buffer, x: u16, h: u16, glyph: &str, style: Style| {
        for dy in 0..h.min(area.height) {
            buf[(x, area.bottom() - 1 - dy)]
                .set_symbol(glyph)
                .set_style(style);
        }
    };
    let thr_bin = threshold.map(|t| hist.bin_of(t));
    for b in 0..hist.bins() {
        let x = area.x + (b * cells_per_bin) as u16;
        if x >= area.right() {
            break;
        }
        let [n, a] = hist.counts[b];
        let (hn, ha) = (scale(n), scale(a));
        if cells_per_bin == 2 {
            put(buf, x, hn, NORMAL_GLYPH, app.theme.normal);
            if x + 1 < area.right() {
                put(buf, x + 1, ha, ANOMALOUS_GLYPH, app.theme.anomalous);
            }
        } else {
            let (low, high) = (hn.min(ha), hn.max(ha));
            let (glyph, style) = if hn > ha {
                (NORMAL_GLYPH, app.theme.normal)
            } else {
                (ANOMALOUS_GLYPH, app.theme.anomalous)
            };
            put(buf, x, high, glyph, style);
            put(buf, x, low, BOTH_GLYPH, app.theme.text);
        }
        if Some(b) == thr_bin {
            for dy in 0..area.height {
                let cell = &mut buf[(x, area.y + dy)];
                if cell.symbol() == " " {
                    cell.set_symbol("│").set_style(app.theme.threshold);
                }
            }
        }
    }
}
