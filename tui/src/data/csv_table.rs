//! A CSV table naming one image and its label per row, as ISIC's metadata and most Kaggle
//! medical datasets ship them, optionally with a split column. This module owns reading and
//! checking the table (columns present, values usable, images on disk); it does not decode
//! images or assign class indices.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::DataError;

/// Tried, in order, on a path value that has no extension and names no file, because ISIC
/// metadata names images by id (`ISIC_0000000`) and leaves the format to the folder.
const INFERRED_EXTENSIONS: [&str; 6] = ["png", "jpg", "jpeg", "tif", "tiff", "dcm"];

/// Which split a row belongs to, from the table's split column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitName {
    Train,
    Val,
    Test,
}

impl SplitName {
    /// Parses the spellings datasets use, ignoring case and surrounding whitespace.
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "train" => Some(Self::Train),
            "val" | "valid" | "validation" => Some(Self::Val),
            "test" => Some(Self::Test),
            _ => None,
        }
    }
}

/// One row of the table, checked: the image exists and the label is not empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvRow {
    /// 1-based line of the CSV file where the row starts, for messages.
    pub line: usize,
    /// The image, resolved against the dataset root and with any inferred extension.
    pub path: PathBuf,
    pub label: String,
    /// `None` only when no split column was asked for.
    pub split: Option<SplitName>,
}

/// Reads `csv`; `path_column` values are resolved against `root` (absolute paths kept). A
/// value without an extension whose file does not exist is tried with .png, .jpg, .jpeg,
/// .tif, .tiff, .dcm (ISIC metadata names images by id). Rows are returned in file order.
///
/// Header names are matched exactly after trimming whitespace (and a UTF-8 byte-order mark,
/// which spreadsheet exports put before the first name). Values are trimmed too, so that
/// `"nevus"` and `" nevus"` are one label. With `split_column`, every row must name a
/// split: a row silently left out of every split would shrink the dataset unnoticed.
pub fn read(
    csv: &Path,
    root: &Path,
    path_column: &str,
    label_column: &str,
    split_column: Option<&str>,
) -> Result<Vec<CsvRow>, DataError> {
    let file = File::open(csv).map_err(|source| DataError::Io {
        path: csv.to_path_buf(),
        source,
    })?;
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(file);
    let columns = Columns::find(csv, &mut reader, path_column, label_column, split_column)?;
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| csv_error(csv, e))?;
        rows.push(columns.row(csv, root, &record)?);
    }
    Ok(rows)
}

/// The positions of the columns asked for, with their names for messages.
struct Columns<'a> {
    path: (usize, &'a str),
    label: (usize, &'a str),
    split: Option<(usize, &'a str)>,
}

impl<'a> Columns<'a> {
    fn find(
        csv: &Path,
        reader: &mut csv::Reader<File>,
        path_column: &'a str,
        label_column: &'a str,
        split_column: Option<&'a str>,
    ) -> Result<Self, DataError> {
        let headers: Vec<String> = reader
            .headers()
            .map_err(|e| csv_error(csv, e))?
            .iter()
            .enumerate()
            .map(|(i, name)| clean_header(i, name))
            .collect();
        let position = |name: &'a str| column_position(csv, &headers, name).map(|i| (i, name));
        Ok(Self {
            path: position(path_column)?,
            label: position(label_column)?,
            split: split_column.map(position).transpose()?,
        })
    }

    /// Checks one record and resolves its image.
    fn row(
        &self,
        csv: &Path,
        root: &Path,
        record: &csv::StringRecord,
    ) -> Result<CsvRow, DataError> {
        let line = record.position().map_or(0, |p| p.line() as usize);
        let path_value = required(csv, line, record, self.path)?;
        let label = required(csv, line, record, self.label)?.to_string();
        let split = match self.split {
            None => None,
            Some((index, name)) => Some(parse_split(csv, line, name, field(record, index))?),
        };
        let path = resolve_image(root, path_value).map_err(|tried| {
            row_error(
                csv,
                line,
                format!(
                    "image {} does not exist{tried}",
                    root.join(path_value).display()
                ),
            )
        })?;
        Ok(CsvRow {
            line,
            path,
            label,
            split,
        })
    }
}

/// Header names compare trimmed; the first one may also carry a byte-order mark, which
/// would otherwise make the first column unfindable by name.
fn clean_header(index: usize, name: &str) -> String {
    let name = if index == 0 {
        name.trim_start_matches('\u{feff}')
    } else {
        name
    };
    name.trim().to_string()
}

/// The index of column `name`; a missing or doubled name is an error, since guessing
/// which of two equal columns holds the labels would be silent data corruption.
fn column_position(csv: &Path, headers: &[String], name: &str) -> Result<usize, DataError> {
    let mut matches = headers.iter().enumerate().filter(|(_, h)| *h == name);
    match (matches.next(), matches.next()) {
        (Some((index, _)), None) => Ok(index),
        (Some(_), Some(_)) => Err(layout(
            csv,
            format!("column {name:?} appears more than once in the header"),
        )),
        (None, _) => Err(layout(
            csv,
            format!(
                "no column {name:?}; the columns are: {}",
                headers.join(", ")
            ),
        )),
    }
}

/// A field of the record, empty when the row is short (the csv reader already refuses
/// rows whose field count differs from the header's, so this is only defensive).
fn field(record: &csv::StringRecord, index: usize) -> &str {
    record.get(index).unwrap_or("")
}

fn required<'r>(
    csv: &Path,
    line: usize,
    record: &'r csv::StringRecord,
    (index, name): (usize, &str),
) -> Result<&'r str, DataError> {
    let value = field(record, index);
    if value.is_empty() {
        return Err(row_error(csv, line, format!("empty {name:?}")));
    }
    Ok(value)
}

fn parse_split(csv: &Path, line: usize, column: &str, value: &str) -> Result<SplitName, DataError> {
    SplitName::parse(value).ok_or_else(|| {
        row_error(
            csv,
            line,
            format!("{column:?} is {value:?}; expected train, val, validation, valid or test"),
        )
    })
}

/// The image a path value names: relative values join `root` (an absolute value replaces
/// it, as `Path::join` does). On failure, returns a note on the extensions tried.
fn resolve_image(root: &Path, value: &str) -> Result<PathBuf, String> {
    let path = root.join(value);
    if path.is_file() {
        return Ok(path);
    }
    if path.extension().is_some() {
        return Err(String::new());
    }
    INFERRED_EXTENSIONS
        .iter()
        .map(|ext| path.with_extension(ext))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| format!(" (also tried .{})", INFERRED_EXTENSIONS.join(", .")))
}

/// A malformed CSV (unbalanced quotes, a row with the wrong number of fields, invalid
/// UTF-8), with the line the reader stopped at.
fn csv_error(csv: &Path, error: csv::Error) -> DataError {
    let line = error.position().map_or(0, |p| p.line() as usize);
    let message = match error.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("{len} fields, but the header has {expected_len}"),
        csv::ErrorKind::Utf8 { err, .. } => {
            format!("field {} is not valid UTF-8", err.field() + 1)
        }
        _ => error.to_string(),
    };
    match error.into_kind() {
        csv::ErrorKind::Io(source) => DataError::Io {
            path: csv.to_path_buf(),
            source,
        },
        _ => row_error(csv, line, message),
    }
}

fn row_error(csv: &Path, line: usize, message: String) -> DataError {
    layout(csv, format!("line {line}: {message}"))
}

fn layout(path: &Path, message: String) -> DataError {
    DataError::Layout {
        path: path.to_path_buf(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dataset root with images `a.png`, `b.jpg`, `sub/c.png` and `ISIC_0001.jpg`.
    fn image_root() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        for name in ["a.png", "b.jpg", "sub/c.png", "ISIC_0001.jpg"] {
            std::fs::write(dir.path().join(name), b"not decoded here").unwrap();
        }
        dir
    }

    fn write_csv(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("meta.csv");
        std::fs::write(&path, text).unwrap();
        path
    }

    fn read_err(root: &Path, text: &str, split: Option<&str>) -> String {
        let csv = write_csv(root, text);
        read(&csv, root, "image", "label", split)
            .expect_err("the table should be refused")
            .to_string()
    }

    #[test]
    fn reads_rows_in_order_with_splits() {
        let dir = image_root();
        let root = dir.path();
        let csv = write_csv(
            root,
            "image,label,split\na.png,nevus,train\nb.jpg,melanoma,VALIDATION\nsub/c.png,nevus,Test\n",
        );
        let rows = read(&csv, root, "image", "label", Some("split")).unwrap();
        let summary: Vec<_> = rows
            .iter()
            .map(|r| (r.line, r.path.clone(), r.label.as_str(), r.split))
            .collect();
        assert_eq!(
            summary,
            [
                (2, root.join("a.png"), "nevus", Some(SplitName::Train)),
                (3, root.join("b.jpg"), "melanoma", Some(SplitName::Val)),
                (4, root.join("sub/c.png"), "nevus", Some(SplitName::Test)),
            ]
        );
    }

    #[test]
    fn without_split_column_rows_have_no_split() {
        let dir = image_root();
        let csv = write_csv(dir.path(), "image,label\na.png,x\n");
        let rows = read(&csv, dir.path(), "image", "label", None).unwrap();
        assert_eq!(rows[0].split, None);
    }

    #[test]
    fn infers_missing_extension() {
        let dir = image_root();
        let csv = write_csv(dir.path(), "image,label\nISIC_0001,melanoma\n");
        let rows = read(&csv, dir.path(), "image", "label", None).unwrap();
        assert_eq!(rows[0].path, dir.path().join("ISIC_0001.jpg"));
    }

    #[test]
    fn keeps_absolute_paths() {
        let dir = image_root();
        let elsewhere = tempfile::tempdir().unwrap();
        let absolute = dir.path().join("a.png");
        let csv = write_csv(
            elsewhere.path(),
            &format!("image,label\n{},x\n", absolute.display()),
        );
        let rows = read(&csv, elsewhere.path(), "image", "label", None).unwrap();
        assert_eq!(rows[0].path, absolute);
    }

    #[test]
    fn trims_headers_values_and_bom() {
        let dir = image_root();
        let csv = write_csv(dir.path(), "\u{feff} image , label\n a.png , nevus \n");
        let rows = read(&csv, dir.path(), "image", "label", None).unwrap();
        assert_eq!(
            (rows[0].path.clone(), rows[0].label.as_str()),
            (dir.path().join("a.png"), "nevus")
        );
    }

    #[test]
    fn missing_column_lists_existing_ones() {
        let dir = image_root();
        let message = read_err(dir.path(), "image_id,dx\na.png,nevus\n", None);
        assert!(message.contains("meta.csv"), "{message}");
        assert!(message.contains("no column \"image\""), "{message}");
        assert!(message.contains("image_id, dx"), "{message}");
    }

    #[test]
    fn missing_split_column_is_named() {
        let dir = image_root();
        let message = read_err(dir.path(), "image,label\na.png,nevus\n", Some("fold"));
        assert!(message.contains("no column \"fold\""), "{message}");
    }

    #[test]
    fn duplicate_column_is_refused() {
        let dir = image_root();
        let message = read_err(dir.path(), "image,label,label\na.png,x,y\n", None);
        assert!(message.contains("more than once"), "{message}");
    }

    #[test]
    fn empty_path_names_line() {
        let dir = image_root();
        let message = read_err(dir.path(), "image,label\na.png,x\n,y\n", None);
        assert!(
            message.contains("meta.csv: line 3: empty \"image\""),
            "{message}"
        );
    }

    #[test]
    fn empty_label_names_line() {
        let dir = image_root();
        let message = read_err(dir.path(), "image,label\na.png,x\nb.jpg,  \n", None);
        assert!(
            message.contains("meta.csv: line 3: empty \"label\""),
            "{message}"
        );
    }

    #[test]
    fn bad_split_names_line_and_value() {
        let dir = image_root();
        let text = "image,label,split\na.png,x,train\nb.jpg,y,holdout\n";
        let message = read_err(dir.path(), text, Some("split"));
        assert!(message.contains("meta.csv: line 3"), "{message}");
        assert!(message.contains("\"holdout\""), "{message}");
    }

    #[test]
    fn empty_split_is_refused() {
        let dir = image_root();
        let message = read_err(dir.path(), "image,label,split\na.png,x,\n", Some("split"));
        assert!(message.contains("meta.csv: line 2"), "{message}");
    }

    #[test]
    fn missing_image_names_line_and_resolved_path() {
        let dir = image_root();
        let message = read_err(
            dir.path(),
            "image,label\na.png,x\nb.jpg,\"two\nlines\"\nnope.png,z\n",
            None,
        );
        let resolved = dir.path().join("nope.png").display().to_string();
        assert!(message.contains("meta.csv: line 5"), "{message}");
        assert!(message.contains(&resolved), "{message}");
    }

    #[test]
    fn missing_image_without_extension_lists_tries() {
        let dir = image_root();
        let message = read_err(dir.path(), "image,label\nISIC_0002,x\n", None);
        assert!(message.contains("line 2"), "{message}");
        assert!(message.contains("ISIC_0002"), "{message}");
        assert!(message.contains(".dcm"), "{message}");
    }

    #[test]
    fn ragged_row_names_line() {
        let dir = image_root();
        let message = read_err(dir.path(), "image,label\na.png,x\nb.jpg\n", None);
        assert!(
            message.contains("meta.csv: line 3: 1 fields, but the header has 2"),
            "{message}"
        );
    }

    #[test]
    fn invalid_utf8_names_line() {
        let dir = image_root();
        let csv = dir.path().join("meta.csv");
        std::fs::write(&csv, b"image,label\na.png,x\nb.jpg,\xff\n").unwrap();
        let message = read(&csv, dir.path(), "image", "label", None)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("meta.csv: line 3: field 2 is not valid UTF-8"),
            "{message}"
        );
    }

    #[test]
    fn missing_csv_names_file() {
        let dir = image_root();
        let csv = dir.path().join("absent.csv");
        let message = read(&csv, dir.path(), "image", "label", None)
            .unwrap_err()
            .to_string();
        assert!(message.contains("absent.csv"), "{message}");
    }
}
