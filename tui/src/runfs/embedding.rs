//! `embeddings/epoch-NNNN-SPLIT.csv`: per-sample latent codes of one evaluation projected
//! to 2-D (PCA), `sample,label,pc1,pc2`, for the dashboard's Embedding view. Written whole
//! and atomically.

use std::path::Path;

use super::{RunFsError, csv};

/// One projected sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub sample: String,
    pub label: String,
    pub x: f64,
    pub y: f64,
}

pub const HEADER: &str = "sample,label,pc1,pc2";

pub fn write(path: &Path, points: &[Point]) -> Result<(), RunFsError> {
    let mut text = format!("{HEADER}\n");
    for p in points {
        text.push_str(&format!(
            "{},{},{},{}\n",
            csv::field(&p.sample),
            csv::field(&p.label),
            p.x,
            p.y
        ));
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| RunFsError::io(dir, e))?;
    }
    super::atomic::write(path, text.as_bytes())
}

/// Reads an embedding file; errors name the file and line.
pub fn read(path: &Path) -> Result<Vec<Point>, RunFsError> {
    let text = super::read_text(path)?;
    let bad = |line: usize, message: String| RunFsError::Invalid {
        path: path.to_path_buf(),
        message: format!("line {line}: {message}"),
    };
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, h)) if h == HEADER => {}
        _ => return Err(bad(1, format!("expected header {HEADER:?}"))),
    }
    lines
        .map(|(i, line)| {
            let f = csv::split(line).map_err(|e| bad(i + 1, e))?;
            let [sample, label, x, y] = <[String; 4]>::try_from(f)
                .map_err(|f| bad(i + 1, format!("{} fields, expected 4", f.len())))?;
            let num = |s: &str| {
                s.parse::<f64>()
                    .map_err(|e| bad(i + 1, format!("{s:?}: {e}")))
            };
            Ok(Point {
                x: num(&x)?,
                y: num(&y)?,
                sample,
                label,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_names_a_bad_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("embeddings/epoch-0002-test.csv");
        let points = vec![
            Point {
                sample: "test/a, b.png".into(),
                label: "normal".into(),
                x: 1.5,
                y: -2.0,
            },
            Point {
                sample: "test/c.png".into(),
                label: "tumour".into(),
                x: 0.0,
                y: 3.25,
            },
        ];
        write(&path, &points).unwrap();
        assert_eq!(read(&path).unwrap(), points);
        std::fs::write(&path, format!("{HEADER}\nx,y,1\n")).unwrap();
        assert!(read(&path).unwrap_err().to_string().contains("line 2"));
    }
}
