//! `confusion/epoch-NNNN-SPLIT.csv`: a classifier's confusion matrix at one evaluation.
//! The header row is `true\pred` then the class names; each following row is a true
//! class's name then its counts per predicted class. Written whole and atomically.

use std::path::Path;

use super::{RunFsError, csv};

/// A confusion matrix with its class names: `counts[true][predicted]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confusion {
    pub classes: Vec<String>,
    pub counts: Vec<Vec<usize>>,
}

pub fn write(path: &Path, classes: &[String], counts: &[Vec<usize>]) -> Result<(), RunFsError> {
    let mut text = String::from("true\\pred");
    for c in classes {
        text.push(',');
        text.push_str(&csv::field(c));
    }
    text.push('\n');
    for (class, row) in classes.iter().zip(counts) {
        text.push_str(&csv::field(class));
        for n in row {
            text.push_str(&format!(",{n}"));
        }
        text.push('\n');
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| RunFsError::io(dir, e))?;
    }
    super::atomic::write(path, text.as_bytes())
}

/// Reads a confusion file; errors name the file and line.
pub fn read(path: &Path) -> Result<Confusion, RunFsError> {
    let text = super::read_text(path)?;
    let bad = |line: usize, message: String| RunFsError::Invalid {
        path: path.to_path_buf(),
        message: format!("line {line}: {message}"),
    };
    let mut lines = text.lines().enumerate();
    let (_, header) = lines.next().ok_or_else(|| bad(1, "empty file".into()))?;
    let header = csv::split(header).map_err(|e| bad(1, e))?;
    let classes: Vec<String> = header.into_iter().skip(1).collect();
    let mut counts = Vec::with_capacity(classes.len());
    for (i, line) in lines {
        let fields = csv::split(line).map_err(|e| bad(i + 1, e))?;
        if fields.len() != classes.len() + 1 {
            return Err(bad(
                i + 1,
                format!("{} fields, expected {}", fields.len(), classes.len() + 1),
            ));
        }
        let row = fields[1..]
            .iter()
            .map(|f| {
                f.parse::<usize>()
                    .map_err(|e| bad(i + 1, format!("{f:?}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        counts.push(row);
    }
    if counts.len() != classes.len() {
        return Err(bad(
            counts.len() + 1,
            format!("{} rows for {} classes", counts.len(), classes.len()),
        ));
    }
    Ok(Confusion { classes, counts })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_quoted_names_and_refuses_a_ragged_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("confusion/epoch-0001-test.csv");
        let classes = vec!["benign".to_string(), "in situ, ductal".to_string()];
        let counts = vec![vec![5, 1], vec![2, 7]];
        write(&path, &classes, &counts).unwrap();
        let back = read(&path).unwrap();
        assert_eq!(back, Confusion { classes, counts });
        std::fs::write(&path, "true\\pred,a,b\na,1,2\nb,3\n").unwrap();
        let err = read(&path).unwrap_err().to_string();
        assert!(err.contains("line 3"), "{err}");
    }
}
