//! IDX files, the format MNIST, Fashion-MNIST and their mirrors ship: a magic number, the
//! big-endian sizes of each dimension, then the raw bytes. This module owns finding the four
//! files of a dataset, decompressing them and checking them against their headers; turning
//! the images into tensors or samples is the callers' business.

use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Cursor, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use super::DataError;

/// The largest payload a header may declare. A corrupt or hostile header could otherwise
/// make us reserve gigabytes before the first byte is read; the largest IDX files in use
/// (EMNIST's) hold a few hundred megabytes.
const MAX_PAYLOAD: u64 = 1 << 31;

/// Unsigned bytes, three dimensions: count, rows, cols.
const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Unsigned bytes, one dimension: count.
const LABELS_MAGIC: u32 = 0x0000_0801;

/// Files are recognised as gzip by content, because mirrors are inconsistent about the
/// `.gz` suffix (some serve gzip bytes under the bare name).
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// One split's images and labels; `labels[i]` belongs to `images.image(i)`.
#[derive(Debug, Clone)]
pub struct IdxSplit {
    pub images: IdxImages,
    pub labels: Vec<u8>,
}

/// Equally sized grayscale images stored back to back, each row-major.
#[derive(Clone, PartialEq, Eq)]
pub struct IdxImages {
    count: usize,
    rows: usize,
    cols: usize,
    data: Vec<u8>,
}

impl IdxImages {
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The pixels of image `i`, row-major, without copying. Panics if `i >= len()`.
    pub fn pixels(&self, i: usize) -> &[u8] {
        assert!(i < self.count, "image {i} of {}", self.count);
        let size = self.rows * self.cols;
        &self.data[i * size..(i + 1) * size]
    }

    /// Image `i` as an owned image (`cols` wide, `rows` high). Panics if `i >= len()`.
    pub fn image(&self, i: usize) -> image::GrayImage {
        // Both sizes came from u32 header fields, so the casts cannot truncate.
        image::GrayImage::from_raw(self.cols as u32, self.rows as u32, self.pixels(i).to_vec())
            .expect("pixels() returns exactly rows * cols bytes")
    }
}

/// Dimensions only: printing tens of megabytes of pixels helps nobody.
impl fmt::Debug for IdxImages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdxImages")
            .field("count", &self.count)
            .field("rows", &self.rows)
            .field("cols", &self.cols)
            .finish_non_exhaustive()
    }
}

/// Finds and reads the train (`train-*`) and test (`t10k-*`) splits in `root`. Each file
/// may be named `<split>-<kind>-idx<N>-ubyte` or `<split>-<kind>.idx<N>-ubyte`, either with
/// `.gz`, and may be gzipped or not whatever its name says.
pub fn open(root: &Path) -> Result<(IdxSplit, IdxSplit), DataError> {
    if !root.is_dir() {
        return Err(layout(
            root,
            "not a folder: expected a folder holding train-images-idx3-ubyte[.gz] and its three siblings"
                .into(),
        ));
    }
    let train = read_split(root, "train")?;
    let test = read_split(root, "t10k")?;
    Ok((train, test))
}

/// Reads one split's image and label files and checks that they pair up.
fn read_split(root: &Path, prefix: &str) -> Result<IdxSplit, DataError> {
    let images_path = find_file(root, prefix, "images", "idx3-ubyte")?;
    let labels_path = find_file(root, prefix, "labels", "idx1-ubyte")?;
    let images = read_images(&images_path)?;
    let labels = read_labels(&labels_path)?;
    if images.len() != labels.len() {
        return Err(layout(
            &labels_path,
            format!(
                "holds {} labels but {} holds {} images; the two files must pair up",
                labels.len(),
                images_path.display(),
                images.len()
            ),
        ));
    }
    Ok(IdxSplit { images, labels })
}

/// The names a file goes by: the official dash form, the dotted form some mirrors use,
/// each with and without `.gz`. Plain names come first so an unpacked copy is preferred.
fn candidate_names(prefix: &str, kind: &str, format: &str) -> [String; 4] {
    let stem = format!("{prefix}-{kind}");
    [
        format!("{stem}-{format}"),
        format!("{stem}.{format}"),
        format!("{stem}-{format}.gz"),
        format!("{stem}.{format}.gz"),
    ]
}

fn find_file(root: &Path, prefix: &str, kind: &str, format: &str) -> Result<PathBuf, DataError> {
    let names = candidate_names(prefix, kind, format);
    names
        .iter()
        .map(|name| root.join(name))
        .find(|path| path.is_file())
        .ok_or_else(|| {
            layout(
                root,
                format!("no {prefix} {kind} file: looked for {}", names.join(", ")),
            )
        })
}

fn read_images(path: &Path) -> Result<IdxImages, DataError> {
    let mut file = IdxFile::open(path)?;
    let dims = file.read_header(IMAGES_MAGIC)?;
    let [count, rows, cols] = [dims[0], dims[1], dims[2]];
    if count > 0 && (rows == 0 || cols == 0) {
        return Err(layout(
            path,
            format!(
                "header declares {count} images of {rows}x{cols} pixels; an image needs at least one pixel"
            ),
        ));
    }
    let what = format!("{count} images of {rows}x{cols} pixels");
    let data = file.read_payload(&dims, &what)?;
    Ok(IdxImages {
        count,
        rows,
        cols,
        data,
    })
}

fn read_labels(path: &Path) -> Result<Vec<u8>, DataError> {
    let mut file = IdxFile::open(path)?;
    let dims = file.read_header(LABELS_MAGIC)?;
    let what = format!("{} labels", dims[0]);
    file.read_payload(&dims, &what)
}

/// An IDX file being read front to back, decompressed on the fly when it is gzip, so a
/// header can be rejected before its payload is read or allocated.
struct IdxFile<'a> {
    path: &'a Path,
    gzipped: bool,
    reader: Box<dyn Read + 'a>,
    /// Bytes consumed so far (after decompression), for messages about truncation.
    offset: usize,
}

impl<'a> IdxFile<'a> {
    fn open(path: &'a Path) -> Result<Self, DataError> {
        let mut file = BufReader::new(File::open(path).map_err(|source| io_error(path, source))?);
        let mut head = Vec::with_capacity(GZIP_MAGIC.len());
        (&mut file)
            .take(GZIP_MAGIC.len() as u64)
            .read_to_end(&mut head)
            .map_err(|source| io_error(path, source))?;
        let gzipped = head == GZIP_MAGIC;
        // The peeked bytes are put back in front of the rest of the file.
        let raw = Cursor::new(head).chain(file);
        let reader: Box<dyn Read> = if gzipped {
            Box::new(MultiGzDecoder::new(raw))
        } else {
            Box::new(raw)
        };
        Ok(Self {
            path,
            gzipped,
            reader,
            offset: 0,
        })
    }

    /// Reads the magic and the dimension sizes, refusing a file of the wrong kind.
    fn read_header(&mut self, expected_magic: u32) -> Result<Vec<usize>, DataError> {
        let magic = be_u32(&self.read_exact(4, "the 4-byte IDX magic number")?);
        if magic != expected_magic {
            return Err(layout(
                self.path,
                format!(
                    "IDX magic 0x{magic:08x} ({}), expected 0x{expected_magic:08x} ({})",
                    describe_magic(magic),
                    describe_magic(expected_magic)
                ),
            ));
        }
        let ndims = (magic & 0xff) as usize;
        let sizes = self.read_exact(4 * ndims, &format!("the {ndims} dimension sizes"))?;
        Ok(sizes
            .chunks_exact(4)
            .map(|size| be_u32(size) as usize)
            .collect())
    }

    /// Reads exactly the payload the header's `dims` declare (one byte per element) and
    /// refuses a file that is shorter or longer than that.
    fn read_payload(&mut self, dims: &[usize], what: &str) -> Result<Vec<u8>, DataError> {
        let len = dims
            .iter()
            .try_fold(1u64, |product, &size| product.checked_mul(size as u64))
            .filter(|&len| len <= MAX_PAYLOAD)
            .ok_or_else(|| {
                layout(
                    self.path,
                    format!(
                        "header declares {what} ({}), more than the {MAX_PAYLOAD}-byte limit; \
                         the header is probably corrupt",
                        dims_product(dims)
                    ),
                )
            })?;
        let data = self.read_exact(len as usize, &format!("{len} payload bytes ({what})"))?;
        self.refuse_trailing_bytes(len)?;
        Ok(data)
    }

    /// Reads `len` bytes, or explains how far the file got.
    fn read_exact(&mut self, len: usize, what: &str) -> Result<Vec<u8>, DataError> {
        let mut buf = Vec::with_capacity(len);
        let result = (&mut self.reader).take(len as u64).read_to_end(&mut buf);
        let start = self.offset;
        self.offset += buf.len();
        match result {
            Ok(_) if buf.len() == len => Ok(buf),
            Ok(_) => Err(self.truncated(what, start, buf.len(), None)),
            Err(e) if is_corrupt_data(&e) => Err(self.truncated(what, start, buf.len(), Some(e))),
            Err(source) => Err(io_error(self.path, source)),
        }
    }

    fn truncated(
        &self,
        what: &str,
        start: usize,
        found: usize,
        cause: Option<io::Error>,
    ) -> DataError {
        let unpacked = if self.gzipped { " (after gunzip)" } else { "" };
        let cause = cause.map(|e| format!(": {e}")).unwrap_or_default();
        layout(
            self.path,
            format!(
                "truncated: expected {what} at byte {start}{unpacked}, found only {found} bytes{cause}"
            ),
        )
    }

    /// Extra bytes mean the header does not describe the file (or two files were
    /// concatenated); reading on also lets gzip verify its checksum at the stream's end.
    fn refuse_trailing_bytes(&mut self, payload_len: u64) -> Result<(), DataError> {
        let extra = io::copy(&mut (&mut self.reader).take(MAX_PAYLOAD), &mut io::sink());
        match extra {
            Ok(0) => Ok(()),
            Ok(extra) => Err(layout(
                self.path,
                format!(
                    "{extra} bytes follow the {payload_len}-byte payload the header declares; \
                     the header does not match the file"
                ),
            )),
            Err(e) if is_corrupt_data(&e) => Err(layout(
                self.path,
                format!("gzip integrity check failed, the file is damaged: {e}"),
            )),
            Err(source) => Err(io_error(self.path, source)),
        }
    }
}

/// Errors a decompressor raises for damaged input, as opposed to the disk failing.
fn is_corrupt_data(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput
    )
}

fn be_u32(bytes: &[u8]) -> u32 {
    u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

/// Says what a magic number means, so a swapped or foreign file is recognisable.
fn describe_magic(magic: u32) -> String {
    if magic >> 16 != 0 {
        let bytes = magic.to_be_bytes();
        return format!("not an IDX file; it starts with {bytes:02x?}");
    }
    let kind = match (magic >> 8) & 0xff {
        0x08 => "unsigned bytes",
        0x09 => "signed bytes",
        0x0b => "16-bit integers",
        0x0c => "32-bit integers",
        0x0d => "32-bit floats",
        0x0e => "64-bit floats",
        _ => "an unknown element type",
    };
    let ndims = magic & 0xff;
    let plural = if ndims == 1 { "" } else { "s" };
    format!("{kind}, {ndims} dimension{plural}")
}

fn dims_product(dims: &[usize]) -> String {
    let sizes: Vec<String> = dims.iter().map(ToString::to_string).collect();
    format!("{} bytes", sizes.join(" x "))
}

fn layout(path: &Path, message: String) -> DataError {
    DataError::Layout {
        path: path.to_path_buf(),
        message,
    }
}

fn io_error(path: &Path, source: io::Error) -> DataError {
    DataError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::*;

    /// Where Debian's `dataset-fashion-mnist` package puts the files.
    const FASHION_MNIST: &str = "/usr/share/datasets/fashion-mnist";

    fn idx_bytes(magic: u32, dims: &[u32], payload: &[u8]) -> Vec<u8> {
        let mut bytes = magic.to_be_bytes().to_vec();
        for dim in dims {
            bytes.extend_from_slice(&dim.to_be_bytes());
        }
        bytes.extend_from_slice(payload);
        bytes
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    /// `count` images of `rows`x`cols` whose pixels encode (image, row, col), and labels
    /// `i % 10`, so a transposed or shifted read shows up.
    fn split_files(count: u32, rows: u32, cols: u32) -> (Vec<u8>, Vec<u8>) {
        let mut pixels = Vec::new();
        for i in 0..count {
            for r in 0..rows {
                for c in 0..cols {
                    pixels.push((i * 100 + r * 10 + c) as u8);
                }
            }
        }
        let labels: Vec<u8> = (0..count).map(|i| (i % 10) as u8).collect();
        (
            idx_bytes(IMAGES_MAGIC, &[count, rows, cols], &pixels),
            idx_bytes(LABELS_MAGIC, &[count], &labels),
        )
    }

    /// A folder with a valid dataset: train plain under dash names, test gzipped under
    /// dotted `.gz` names.
    fn write_dataset() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let (images, labels) = split_files(3, 2, 4);
        std::fs::write(dir.path().join("train-images-idx3-ubyte"), images).unwrap();
        std::fs::write(dir.path().join("train-labels-idx1-ubyte"), labels).unwrap();
        let (images, labels) = split_files(2, 2, 4);
        std::fs::write(dir.path().join("t10k-images.idx3-ubyte.gz"), gzip(&images)).unwrap();
        std::fs::write(dir.path().join("t10k-labels.idx1-ubyte.gz"), gzip(&labels)).unwrap();
        dir
    }

    fn error_of(root: &Path) -> String {
        open(root)
            .expect_err("the dataset should be refused")
            .to_string()
    }

    #[test]
    fn reads_plain_and_gzipped_files() {
        let dir = write_dataset();
        let (train, test) = open(dir.path()).unwrap();
        assert_eq!(
            (train.images.len(), train.images.rows(), train.images.cols()),
            (3, 2, 4)
        );
        assert_eq!(train.labels, [0, 1, 2]);
        assert_eq!((test.images.len(), test.labels.len()), (2, 2));
        let image = train.images.image(2);
        assert_eq!(image.dimensions(), (4, 2));
        // Pixel (x = col 3, y = row 1) of image 2.
        assert_eq!(image.get_pixel(3, 1).0, [213]);
        assert_eq!(test.images.pixels(1)[..3], [100, 101, 102]);
    }

    #[test]
    fn detects_gzip_by_content_not_name() {
        let dir = write_dataset();
        let (images, _) = split_files(3, 2, 4);
        std::fs::write(dir.path().join("train-images-idx3-ubyte"), gzip(&images)).unwrap();
        let (train, _) = open(dir.path()).unwrap();
        assert_eq!(train.images.image(1).get_pixel(0, 1).0, [110]);
    }

    #[test]
    fn missing_file_names_folder_and_candidates() {
        let dir = write_dataset();
        std::fs::remove_file(dir.path().join("t10k-labels.idx1-ubyte.gz")).unwrap();
        let message = error_of(dir.path());
        assert!(
            message.contains(&dir.path().display().to_string()),
            "{message}"
        );
        assert!(message.contains("t10k-labels-idx1-ubyte.gz"), "{message}");
        assert!(message.contains("t10k-labels.idx1-ubyte"), "{message}");
    }

    #[test]
    fn truncated_plain_file_says_expected_and_found() {
        let dir = write_dataset();
        let path = dir.path().join("train-images-idx3-ubyte");
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 5]).unwrap();
        let message = error_of(dir.path());
        assert!(message.contains("train-images-idx3-ubyte"), "{message}");
        assert!(message.contains("truncated"), "{message}");
        assert!(message.contains("expected 24 payload bytes"), "{message}");
        assert!(message.contains("found only 19 bytes"), "{message}");
    }

    #[test]
    fn truncated_gzip_file_is_refused() {
        let dir = write_dataset();
        let path = dir.path().join("t10k-images.idx3-ubyte.gz");
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        let message = error_of(dir.path());
        assert!(message.contains("t10k-images.idx3-ubyte.gz"), "{message}");
        assert!(message.contains("truncated"), "{message}");
    }

    #[test]
    fn header_shorter_than_its_dims_is_truncated() {
        let dir = write_dataset();
        let path = dir.path().join("train-labels-idx1-ubyte");
        std::fs::write(&path, &LABELS_MAGIC.to_be_bytes()[..]).unwrap();
        let message = error_of(dir.path());
        assert!(message.contains("train-labels-idx1-ubyte"), "{message}");
        assert!(message.contains("dimension sizes"), "{message}");
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let dir = write_dataset();
        let path = dir.path().join("train-labels-idx1-ubyte");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(&[7, 7]);
        std::fs::write(&path, bytes).unwrap();
        let message = error_of(dir.path());
        assert!(message.contains("train-labels-idx1-ubyte"), "{message}");
        assert!(message.contains("2 bytes follow"), "{message}");
    }

    #[test]
    fn wrong_magic_names_file_and_both_magics() {
        let dir = write_dataset();
        let (_, labels) = split_files(3, 2, 4);
        std::fs::write(dir.path().join("train-images-idx3-ubyte"), labels).unwrap();
        let message = error_of(dir.path());
        assert!(message.contains("train-images-idx3-ubyte"), "{message}");
        assert!(message.contains("0x00000801"), "{message}");
        assert!(message.contains("expected 0x00000803"), "{message}");
    }

    #[test]
    fn foreign_file_is_called_not_idx() {
        let dir = write_dataset();
        let path = dir.path().join("train-images-idx3-ubyte");
        std::fs::write(&path, b"<!DOCTYPE html><html>").unwrap();
        let message = error_of(dir.path());
        assert!(message.contains("not an IDX file"), "{message}");
    }

    #[test]
    fn count_mismatch_names_both_files() {
        let dir = write_dataset();
        let (_, labels) = split_files(4, 2, 4);
        std::fs::write(dir.path().join("train-labels-idx1-ubyte"), labels).unwrap();
        let message = error_of(dir.path());
        assert!(message.contains("train-labels-idx1-ubyte"), "{message}");
        assert!(message.contains("train-images-idx3-ubyte"), "{message}");
        assert!(message.contains("4 labels"), "{message}");
        assert!(message.contains("3 images"), "{message}");
    }

    #[test]
    fn absurd_dims_are_refused_before_reading() {
        let dir = write_dataset();
        let header = idx_bytes(IMAGES_MAGIC, &[1 << 20, 1 << 10, 1 << 10], &[]);
        std::fs::write(dir.path().join("train-images-idx3-ubyte"), header).unwrap();
        let message = error_of(dir.path());
        assert!(message.contains("train-images-idx3-ubyte"), "{message}");
        assert!(message.contains("limit"), "{message}");
    }

    #[test]
    fn root_that_is_not_a_folder_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let message = error_of(&dir.path().join("absent"));
        assert!(message.contains("absent"), "{message}");
        assert!(message.contains("not a folder"), "{message}");
    }

    fn class_counts(labels: &[u8]) -> Vec<usize> {
        let mut counts = vec![0; 10];
        for &label in labels {
            counts[usize::from(label)] += 1;
        }
        counts
    }

    /// The real dataset, from Debian's `dataset-fashion-mnist`; skipped where that package is
    /// not installed.
    #[test]
    fn reads_debian_fashion_mnist() {
        let root = Path::new(FASHION_MNIST);
        if !root.is_dir() {
            println!("skipped: {FASHION_MNIST} is absent (apt-get install dataset-fashion-mnist)");
            return;
        }
        let (train, test) = open(root).unwrap();
        for (split, count) in [(&train, 60_000), (&test, 10_000)] {
            assert_eq!(split.images.len(), count);
            assert_eq!((split.images.rows(), split.images.cols()), (28, 28));
            assert!(split.labels.iter().all(|&label| label < 10));
        }
        // Fashion-MNIST is balanced: 6,000 train and 1,000 test images per class.
        assert_eq!(class_counts(&train.labels), vec![6_000; 10]);
        assert_eq!(class_counts(&test.labels), vec![1_000; 10]);
        // Its published normalisation mean is 0.2860 of full scale.
        let total: u64 = (0..train.images.len())
            .flat_map(|i| train.images.pixels(i).iter().map(|&p| u64::from(p)))
            .sum();
        let mean = total as f64 / (60_000.0 * 28.0 * 28.0 * 255.0);
        assert!((mean - 0.2860).abs() < 5e-4, "mean {mean}");
    }
}
