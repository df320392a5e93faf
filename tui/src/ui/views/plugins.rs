//! Every library on the plugin search path: name, version, family, ABI and path of the
//! usable ones, the reason of the refused ones, and the search path itself. Names and
//! reasons come from the libraries (a plugin reports its own name), so they are escaped.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use crate::text::escape_controls;
use crate::ui::app::App;

pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let t = &app.theme;
    let catalog = &app.plugins;
    let mut lines = Vec::new();
    let usable = catalog.usable().count();
    let described = catalog.rows.iter().filter(|r| r.entry.is_some()).count();
    let mut summary = format!(
        "{} plugin files: {usable} usable, {} refused",
        catalog.rows.len(),
        described - usable
    );
    if described < catalog.rows.len() {
        summary.push_str(&format!(
            " · describing {}…",
            catalog.rows.len() - described
        ));
    }
    if catalog.rows.is_empty() && !catalog.scanned {
        summary = "looking for plugins…".into();
    }
    lines.push(Line::styled(summary, t.title));
    let dirs: Vec<String> = catalog
        .dirs
        .iter()
        .map(|d| {
            let shown = escape_controls(&d.display().to_string());
            if catalog.missing.contains(d) {
                format!("{shown} (missing)")
            } else {
                shown
            }
        })
        .collect();
    lines.push(Line::from(vec![
        Span::styled("search path ", t.dim),
        Span::raw(dirs.join(" · ")),
    ]));
    for e in &catalog.watch_errors {
        lines.push(Line::styled(format!("⚠ {}", escape_controls(e)), t.error));
    }
    lines.push(Line::raw(""));
    let field = |v: &Option<String>| escape_controls(v.as_deref().unwrap_or("?"));
    let width = |f: &dyn Fn(&crate::plugins::PluginEntry) -> String, cap: usize| {
        catalog
            .usable()
            .map(|e| f(e).chars().count())
            .max()
            .unwrap_or(0)
            .min(cap)
    };
    let name_w = width(&|e| field(&e.name), 20);
    let version_w = width(&|e| field(&e.version), 10);
    let family_w = width(&|e| field(&e.family), 16);
    for row in &catalog.rows {
        let path = escape_controls(&row.path.display().to_string());
        match &row.entry {
            None => lines.push(Line::from(vec![
                Span::styled("… describing  ", t.dim),
                Span::raw(path),
            ])),
            Some(e) if e.status == "ok" => {
                lines.push(Line::from(vec![
                    Span::styled("✔ ", t.best),
                    Span::styled(format!("{:<name_w$}  ", field(&e.name)), t.title),
                    Span::raw(format!(
                        "{:<version_w$}  {:<family_w$}  ABI {}",
                        field(&e.version),
                        field(&e.family),
                        field(&e.abi)
                    )),
                ]));
                lines.push(Line::styled(format!("  {path}"), t.dim));
                if let Some(s) = e.summary.as_deref().filter(|s| !s.is_empty()) {
                    lines.push(Line::styled(format!("  {}", escape_controls(s)), t.dim));
                }
            }
            Some(e) => {
                lines.push(Line::styled("✘ refused", t.error));
                lines.push(Line::styled(format!("  {path}"), t.dim));
                lines.push(Line::styled(
                    format!(
                        "  {}",
                        escape_controls(e.reason.as_deref().unwrap_or("no reason given"))
                    ),
                    t.error,
                ));
            }
        }
    }
    if catalog.rows.is_empty() && catalog.scanned {
        lines.push(Line::styled(
            "no *.so on the search path: build the plugins (cargo build --release) or pass \
             --plugins DIR",
            t.dim,
        ));
    }
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .scroll((app.plugins_scroll, 0)),
        area,
    );
}
