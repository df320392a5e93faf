//! `scores/epoch-NNNN.csv`: `sample,label,split,score`, one row per evaluated image,
//! written once per evaluation (atomically).

use std::path::Path;

use super::{RunFsError, csv};

pub const HEADER: &str = "sample,label,split,score";

/// One image's score.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreRow {
    /// The image's path relative to the dataset root.
    pub sample: String,
    /// Its class name.
    pub label: String,
    /// `val` or `test`.
    pub split: String,
    pub score: f64,
}

/// Writes a whole score file.
pub fn write(path: &Path, rows: &[ScoreRow]) -> Result<(), RunFsError> {
    let mut text = String::with_capacity(64 * rows.len() + HEADER.len() + 1);
    text.push_str(HEADER);
    text.push('\n');
    for r in rows {
        text.push_str(&format!(
            "{},{},{},{}\n",
            csv::field(&r.sample),
            csv::field(&r.label),
            csv::field(&r.split),
            r.score
        ));
    }
    super::atomic::write(path, text.as_bytes())
}

/// Reads a score file; errors name the file and line.
pub fn read(path: &Path) -> Result<Vec<ScoreRow>, RunFsError> {
    let text = super::read_text(path)?;
    let bad = |line: usize, message: String| RunFsError::Corrupt {
        path: path.to_path_buf(),
        line,
        message,
    };
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if i == 0 && line == HEADER || line.trim().is_empty() {
            continue;
        }
        let fields = csv::split(line).map_err(|e| bad(i + 1, e))?;
        let [sample, label, split, score] = fields.as_slice() else {
            return Err(bad(
                i + 1,
                format!("expected 4 fields, found {}", fields.len()),
            ));
        };
        rows.push(ScoreRow {
            sample: sample.clone(),
            label: label.clone(),
            split: split.clone(),
            score: score
                .parse()
                .map_err(|_| bad(i + 1, format!("score {score:?} is not a number")))?,
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_names_with_commas() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("epoch-0001.csv");
        let rows = vec![ScoreRow {
            sample: "test/normal/a,b.png".into(),
            label: "normal".into(),
            split: "test".into(),
            score: 0.0125,
        }];
        write(&path, &rows).unwrap();
        assert_eq!(read(&path).unwrap(), rows);
    }

    #[test]
    fn corrupt_rows_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("epoch-0001.csv");
        std::fs::write(
            &path,
            format!("{HEADER}\na,normal,test,0.1\nb,normal,test,x\n"),
        )
        .unwrap();
        let err = read(&path).unwrap_err().to_string();
        assert!(err.contains(":3:"), "{err}");
    }
}
