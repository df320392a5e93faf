//! The Embedding view: the newest evaluation's latent codes projected to 2-D by PCA (the
//! runner writes `embeddings/epoch-NNNN-SPLIT.csv`), drawn in braille, one colour and one
//! legend glyph per label, so clusters read with or without colour.

use std::collections::BTreeMap;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::canvas::{Canvas, Points};

use crate::text::escape_controls;
use crate::ui::app::App;
use crate::ui::store::RunData;

/// Marker glyphs per label, in legend order, for terminals without colour: braille dots
/// carry no shape, so the legend names each label's colour and a glyph drawn at its centre.
const GLYPHS: [&str; 8] = ["●", "▲", "■", "◆", "✚", "✖", "◉", "★"];

pub fn render(frame: &mut Frame, area: Rect, app: &App, run: &RunData) {
    let Some((name, points)) = &run.embedding else {
        return super::placeholder(
            frame,
            area,
            app,
            "no embeddings yet (plugins that emit `latent` vectors: conv-ae, vae)",
        );
    };
    if points.is_empty() || area.height < 4 {
        return super::placeholder(frame, area, app, "empty embedding");
    }
    let mut by_label: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
    for p in points {
        by_label
            .entry(p.label.as_str())
            .or_default()
            .push((p.x, p.y));
    }
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for p in points {
        x0 = x0.min(p.x);
        x1 = x1.max(p.x);
        y0 = y0.min(p.y);
        y1 = y1.max(p.y);
    }
    let pad = |lo: f64, hi: f64| {
        let m = ((hi - lo) * 0.05).max(1e-9);
        [lo - m, hi + m]
    };
    let (xb, yb) = (pad(x0, x1), pad(y0, y1));
    let [header, plot] = Layout::vertical([Constraint::Length(1), Constraint::Min(2)]).areas(area);
    let mut legend = vec![Span::styled(
        format!(
            "{} · PCA of latent codes · ",
            escape_controls(name.trim_end_matches(".csv"))
        ),
        app.theme.title,
    )];
    let labels: Vec<&str> = by_label.keys().copied().collect();
    for (i, label) in labels.iter().enumerate() {
        legend.push(Span::styled(
            format!(
                "{} {} ({}) ",
                GLYPHS[i % GLYPHS.len()],
                escape_controls(label),
                by_label[label].len()
            ),
            app.theme.series(i),
        ));
    }
    frame.render_widget(Line::from(legend), header);
    let canvas = Canvas::default()
        .marker(Marker::Braille)
        .x_bounds(xb)
        .y_bounds(yb)
        .paint(|ctx| {
            for (i, label) in labels.iter().enumerate() {
                ctx.draw(&Points {
                    coords: &by_label[label],
                    color: app.theme.series(i).fg.unwrap_or_default(),
                });
            }
            ctx.layer();
            // Each label's centroid, marked with its glyph.
            for (i, label) in labels.iter().enumerate() {
                let pts = &by_label[label];
                let n = pts.len() as f64;
                let (cx, cy) = pts
                    .iter()
                    .fold((0.0, 0.0), |a, p| (a.0 + p.0 / n, a.1 + p.1 / n));
                ctx.print(
                    cx,
                    cy,
                    Span::styled(GLYPHS[i % GLYPHS.len()], app.theme.series(i)),
                );
            }
        });
    frame.render_widget(canvas, plot);
}
