//! Hostile input: the readers of files anyone may write (a run folder's `scalars.csv`,
//! `status.ron` and `run.ron`, a user's config, a dataset's images) fed arbitrary bytes
//! and mutations of valid files. Each must answer with a value or an error naming the
//! file: no panic, no hang, no allocation beyond what the input justifies.
//!
//! Each target is a proptest with a fixed case count, tuned to run for 10 to 20 seconds
//! alone in release on a 2-core machine (about two minutes for the file, two targets at a
//! time). `GANTRY_FUZZ_SCALE=10` runs ten times as many cases (a longer hunt, by hand),
//! `0.05` a quick pass. A case slower than [`CASE_LIMIT`] fails as a hang. A failure
//! prints the shrunk input; add it as a regression test next to the fix.

use std::fmt::Debug;
use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gantry::data::decode::{self, Shape};
use gantry::fixtures::{self, FixtureRun};
use gantry::runfs::scalars::{self, HEADER, ScalarRow, ScalarTail, ScalarWriter};
use gantry::runfs::spec::{RunRecord, RunSpec};
use gantry::runfs::status::{State, Status};
use gantry::runfs::{self, RunFsError};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{TestCaseError, TestRunner};

/// One case taking longer than this is a hang (an input that makes a reader loop or go
/// quadratic); real cases take microseconds to milliseconds.
const CASE_LIMIT: Duration = Duration::from_secs(5);

/// Peak resident memory allowed for the whole test process. The image decoder refuses
/// anything over 1 GiB decoded, and no fuzz input here is legitimately near that.
const PEAK_RSS_LIMIT: u64 = 1 << 30;

/// Runs `test` on `cases` inputs from `strategy` and prints the wall time, so the budget
/// of each target is visible in `cargo test -- --nocapture`.
fn fuzz<S>(
    name: &str,
    cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S: Strategy,
    S::Value: Debug,
{
    let scale: f64 = std::env::var("GANTRY_FUZZ_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|s: &f64| *s > 0.0)
        .unwrap_or(1.0);
    let cases = ((cases as f64 * scale) as u32).max(1);
    let config = ProptestConfig {
        cases,
        // Found cases are kept as regression tests in the source, not in a side file.
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let start = Instant::now();
    let result = TestRunner::new(config).run(&strategy, |value| {
        let case = Instant::now();
        test(value)?;
        let took = case.elapsed();
        prop_assert!(took < CASE_LIMIT, "one case took {took:?}: a hang");
        Ok(())
    });
    eprintln!(
        "{name}: {cases} cases in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
}

/// Fresh files in one temporary folder, one per case. A case writes a new file rather
/// than overwrite the last one: ext4 flushes a file that is truncated and rewritten
/// (`auto_da_alloc`), which made a case cost milliseconds of disk wait, not microseconds
/// of parsing.
struct Scratch {
    dir: tempfile::TempDir,
    next: std::sync::atomic::AtomicU64,
}

/// A file of a [`Scratch`], removed when dropped.
struct ScratchFile(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        Scratch {
            dir: tempfile::tempdir().unwrap(),
            next: Default::default(),
        }
    }

    /// A path not used before, ending in `name`.
    fn path(&self, name: &str) -> ScratchFile {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        ScratchFile(self.dir.path().join(format!("{n}-{name}")))
    }

    /// A new file holding `bytes`.
    fn write(&self, name: &str, bytes: &[u8]) -> ScratchFile {
        let file = self.path(name);
        std::fs::write(&file.0, bytes).unwrap();
        file
    }
}

impl Drop for ScratchFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The process's peak resident set (VmHWM), in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

fn assert_peak_rss_bounded(what: &str) {
    let peak = peak_rss();
    eprintln!("{what}: peak RSS {} MiB", peak >> 20);
    assert!(
        peak < PEAK_RSS_LIMIT,
        "{what}: peak RSS {} MiB, over {} MiB",
        peak >> 20,
        PEAK_RSS_LIMIT >> 20
    );
}

// ---------------------------------------------------------------------------------------
// Mutations of valid files

/// One edit of a byte string, the moves a fuzzer makes: small damage that keeps most of
/// the structure, so the parser gets deep before it fails.
#[derive(Debug, Clone)]
enum Mutation {
    Flip(Index, u8),
    Set(Index, u8),
    Insert(Index, Vec<u8>),
    Delete(Index, usize),
    Truncate(Index),
    /// Copies a slice elsewhere (repeats a structure: a chunk, a field, a bracket run).
    Duplicate {
        from: Index,
        to: Index,
        len: usize,
    },
    /// Overwrites 4 bytes with an extreme number (sizes, offsets, counts in headers).
    Number {
        at: Index,
        value: u32,
        big_endian: bool,
    },
}

/// Tokens that mean something to RON, CSV and number parsers.
const TOKENS: &[&str] = &[
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    "\"",
    ",",
    ":",
    "Some(",
    "None",
    "r#\"",
    "\"#",
    "1e999",
    "-1",
    "-0",
    "0x",
    "18446744073709551616",
    "NaN",
    "inf",
    "'",
    "/*",
    "*/",
    "//",
    "\n",
    "\r",
    "\0",
    "\\",
    "\\u{0}",
    "b\"",
    "#![enable(implicit_some)]",
    "é",
    "\u{1b}[31m",
    "true",
    "()",
    "[]",
    "{}",
    "1.5",
    "\"\"",
];

const NUMBERS: &[u32] = &[
    0,
    1,
    0x7f,
    0xff,
    0x100,
    0x7fff,
    0xffff,
    32769,
    65535,
    100_000,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_fffe,
    0xffff_ffff,
];

fn mutation() -> impl Strategy<Value = Mutation> {
    let insert_bytes = prop_oneof![
        prop::collection::vec(any::<u8>(), 1..16),
        prop::sample::select(TOKENS).prop_map(|t| t.as_bytes().to_vec()),
        // A long run of one byte: deep nesting, long numbers, long lines.
        (any::<u8>(), 1usize..2000).prop_map(|(b, n)| vec![b; n]),
    ];
    prop_oneof![
        (any::<Index>(), 1u8..=255).prop_map(|(i, m)| Mutation::Flip(i, m)),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        (any::<Index>(), insert_bytes).prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<Index>(), 1usize..64).prop_map(|(i, n)| Mutation::Delete(i, n)),
        any::<Index>().prop_map(Mutation::Truncate),
        (any::<Index>(), any::<Index>(), 1usize..256)
            .prop_map(|(from, to, len)| Mutation::Duplicate { from, to, len }),
        (any::<Index>(), prop::sample::select(NUMBERS), any::<bool>()).prop_map(
            |(at, value, big_endian)| Mutation::Number {
                at,
                value,
                big_endian
            }
        ),
    ]
}

fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    prop::collection::vec(mutation(), 1..8)
}

fn mutate(data: &[u8], edits: &[Mutation]) -> Vec<u8> {
    let mut d = data.to_vec();
    for m in edits {
        let len = d.len();
        match m {
            Mutation::Flip(i, mask) if len > 0 => d[i.index(len)] ^= mask,
            Mutation::Set(i, b) if len > 0 => d[i.index(len)] = *b,
            Mutation::Insert(i, bytes) => {
                let at = i.index(len + 1);
                d.splice(at..at, bytes.iter().copied());
            }
            Mutation::Delete(i, n) if len > 0 => {
                let at = i.index(len);
                d.drain(at..(at + n).min(len));
            }
            Mutation::Truncate(i) => d.truncate(i.index(len + 1)),
            Mutation::Duplicate { from, to, len: n } if len > 0 => {
                let from = from.index(len);
                let slice = d[from..(from + n).min(len)].to_vec();
                let to = to.index(len + 1);
                d.splice(to..to, slice);
            }
            Mutation::Number {
                at,
                value,
                big_endian,
            } if len >= 4 => {
                let at = at.index(len - 3);
                let bytes = if *big_endian {
                    value.to_be_bytes()
                } else {
                    value.to_le_bytes()
                };
                d[at..at + 4].copy_from_slice(&bytes);
            }
            _ => {}
        }
    }
    d
}

/// Arbitrary bytes, biased to the printable and to line structure.
fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..max),
        "[ -~\n\r\t]{0,200}".prop_map(String::into_bytes),
        any::<String>().prop_map(String::into_bytes),
    ]
}

// ---------------------------------------------------------------------------------------
// scalars.csv

/// Text that looks like scalars.csv: the header, good rows, and damaged ones.
fn scalar_text() -> impl Strategy<Value = Vec<u8>> {
    let good = (
        0.0f64..2e9,
        any::<u64>(),
        any::<u32>(),
        "[a-z/_]{1,12}",
        any::<f64>(),
    )
        .prop_map(|(w, s, e, t, v)| format!("{w:.3},{s},{e},{t},{v}").into_bytes());
    let line = prop_oneof![
        4 => good.clone(),
        1 => (good, mutations()).prop_map(|(g, m)| mutate(&g, &m)),
        1 => Just(HEADER.as_bytes().to_vec()),
        1 => bytes(64),
    ];
    (
        any::<bool>(),
        prop::collection::vec(line, 0..40),
        prop::sample::select(EOLS),
        any::<bool>(),
    )
        .prop_map(|(header, lines, eol, torn)| {
            let mut out = Vec::new();
            if header {
                out.extend_from_slice(HEADER.as_bytes());
                out.extend_from_slice(eol.as_bytes());
            }
            for l in &lines {
                out.extend_from_slice(l);
                out.extend_from_slice(eol.as_bytes());
            }
            if torn && !out.is_empty() {
                out.truncate(out.len() - 3.min(out.len()));
            }
            out
        })
}

const EOLS: &[&str] = &["\n", "\r\n"];

fn scalar_content() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![3 => scalar_text(), 1 => bytes(4096)]
}

#[test]
fn scalar_row_parse() {
    let line = prop_oneof![
        any::<String>(),
        "[0-9eE.,+\\-\"a-zA-Z/ _\r]{0,80}",
        (
            "[0-9.eE+-]{0,12}",
            "[0-9-]{0,22}",
            "[0-9-]{0,12}",
            "\"?[^\n]{0,12}\"?",
            "[0-9.eEinfaN+-]{0,12}"
        )
            .prop_map(|(a, b, c, d, e)| format!("{a},{b},{c},{d},{e}")),
    ];
    fuzz("scalar_row_parse", 1_200_000, line, |line| {
        if let Ok(row) = ScalarRow::parse(&line) {
            prop_assert!(line.matches(',').count() >= 4, "{row:?} from {line:?}");
        }
        Ok(())
    });
}

/// Every complete row of `bytes` as one read of a fresh tail sees them.
fn read_whole(path: &Path) -> (Vec<ScalarRow>, Vec<(usize, String)>) {
    let mut tail = ScalarTail::new();
    let rows = tail.read_new(path).unwrap();
    (rows, tail.bad_lines)
}

/// Rows compared with NaN equal to itself (a NaN value is a finding the chart shows).
fn same_rows(a: &[ScalarRow], b: &[ScalarRow]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.step == y.step
                && x.epoch == y.epoch
                && x.tag == y.tag
                && x.wall_time.to_bits() == y.wall_time.to_bits()
                && x.value.to_bits() == y.value.to_bits()
        })
}

#[test]
fn scalar_tail_chunked_reads_match_one_read() {
    let scratch = Scratch::new();
    let strategy = (scalar_content(), prop::collection::vec(1usize..300, 1..20));
    fuzz(
        "scalar_tail_chunked",
        60_000,
        strategy,
        |(content, chunks)| {
            // Written as a live file grows: in pieces, read between them, cut anywhere (in a
            // number, in a UTF-8 sequence, in a CRLF).
            let file = scratch.write("scalars.csv", b"");
            let path = &file.0;
            let mut tail = ScalarTail::new();
            let mut rows = Vec::new();
            let mut out = std::fs::OpenOptions::new().append(true).open(path).unwrap();
            let mut at = 0;
            for n in chunks.iter().cycle() {
                if at >= content.len() {
                    break;
                }
                let end = (at + n).min(content.len());
                out.write_all(&content[at..end]).unwrap();
                at = end;
                let (new, restarted) = tail.read(path).unwrap();
                prop_assert!(!restarted);
                rows.extend(new);
            }
            let (whole, bad) = read_whole(path);
            prop_assert!(same_rows(&rows, &whole), "{rows:?} != {whole:?}");
            prop_assert_eq!(&tail.bad_lines, &bad);
            Ok(())
        },
    );
}

/// What happens to a live scalars.csv between two reads of the dashboard.
#[derive(Debug, Clone)]
enum LiveOp {
    Append(Vec<u8>),
    Read,
    /// Cut in place (a crash, a careless `truncate`), then a read.
    ShrinkThenRead(Index),
    /// Replaced atomically (resume's truncate_after), grown by the runner before the
    /// dashboard's next read.
    ReplaceThenAppendThenRead(Vec<u8>, Vec<u8>),
}

#[test]
fn scalar_tail_follows_a_live_file() {
    let scratch = Scratch::new();
    let op = prop_oneof![
        4 => scalar_content().prop_map(LiveOp::Append),
        3 => Just(LiveOp::Read),
        1 => any::<Index>().prop_map(LiveOp::ShrinkThenRead),
        1 => (scalar_content(), scalar_content())
            .prop_map(|(a, b)| LiveOp::ReplaceThenAppendThenRead(a, b)),
    ];
    fuzz(
        "scalar_tail_live",
        4_000,
        prop::collection::vec(op, 1..24),
        |ops| {
            let file = scratch.path("scalars.csv");
            let path = &file.0;
            let mut tail = ScalarTail::new();
            let mut held: Vec<ScalarRow> = Vec::new();
            let read = |tail: &mut ScalarTail, held: &mut Vec<ScalarRow>| {
                let (rows, restarted) = tail.read(path).unwrap();
                if restarted {
                    held.clear();
                }
                held.extend(rows);
            };
            let append = |bytes: &[u8]| {
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .unwrap();
                f.write_all(bytes).unwrap();
            };
            for op in &ops {
                match op {
                    LiveOp::Append(bytes) => append(bytes),
                    LiveOp::Read => read(&mut tail, &mut held),
                    LiveOp::ShrinkThenRead(i) => {
                        if let Ok(f) = std::fs::OpenOptions::new().write(true).open(path) {
                            let len = f.metadata().unwrap().len() as usize;
                            f.set_len(i.index(len + 1) as u64).unwrap();
                        }
                        read(&mut tail, &mut held);
                    }
                    LiveOp::ReplaceThenAppendThenRead(content, more) => {
                        let tmp = scratch.write("scalars.csv.tmp", content);
                        std::fs::rename(&tmp.0, path).unwrap();
                        append(more);
                        read(&mut tail, &mut held);
                    }
                }
            }
            read(&mut tail, &mut held);
            let (whole, bad) = read_whole(path);
            prop_assert!(same_rows(&held, &whole), "{held:?} != {whole:?}");
            prop_assert_eq!(&tail.bad_lines, &bad);
            Ok(())
        },
    );
}

#[test]
fn scalar_truncate_after_keeps_rows_up_to_the_cut() {
    let scratch = Scratch::new();
    let strategy = (scalar_content(), prop_oneof![0u64..50, any::<u64>()]);
    fuzz(
        "scalar_truncate_after",
        10_000,
        strategy,
        |(content, cut)| {
            let file = scratch.write("scalars.csv", &content);
            let path = &file.0;
            let dropped = scalars::truncate_after(path, cut);
            let dropped = match dropped {
                Ok(n) => n,
                Err(e) => {
                    return Err(TestCaseError::fail(format!("{e}")));
                }
            };
            let after = std::fs::read(path).unwrap();
            // Complete lines, as bytes: the file may hold invalid UTF-8 anywhere.
            let lines = |b: &[u8]| -> Vec<Vec<u8>> {
                let complete = b.iter().rposition(|&c| c == b'\n').map_or(0, |i| i + 1);
                b[..complete]
                    .split_inclusive(|&c| c == b'\n')
                    .map(<[u8]>::to_vec)
                    .collect()
            };
            let before = lines(&content);
            let kept = lines(&after);
            prop_assert_eq!(after.len(), kept.concat().len(), "a torn line survived");
            let parsed = |l: &[u8]| {
                std::str::from_utf8(l)
                    .ok()
                    .and_then(|s| ScalarRow::parse(s.trim_end_matches(['\n', '\r'])).ok())
            };
            // The rows that must survive, in order; the kept lines are the original lines.
            let mut rest = kept.iter();
            for (i, line) in before.iter().enumerate() {
                let must = i == 0 || parsed(line).is_some_and(|r| r.step <= cut);
                if must {
                    prop_assert!(
                        rest.any(|k| k == line),
                        "line {i} {:?} was dropped",
                        String::from_utf8_lossy(line)
                    );
                }
            }
            for line in kept.iter().skip(1) {
                prop_assert!(before.contains(line), "a line appeared");
                prop_assert!(
                    parsed(line).is_some_and(|r| r.step <= cut),
                    "{:?} was kept",
                    String::from_utf8_lossy(line)
                );
            }
            prop_assert_eq!(
                dropped + kept.len(),
                before.len() + usize::from(content.len() > before.concat().len())
            );
            Ok(())
        },
    );
}

#[test]
fn scalar_writer_round_trips_any_row() {
    let dir = tempfile::tempdir().unwrap();
    // Tags come from plugins: any text, and the characters CSV must quote.
    let tag = prop_oneof![any::<String>(), "[a-z/\n\r,\" \u{1b}]{0,12}"];
    let row = (0.0f64..4e9, any::<u64>(), any::<u32>(), tag, any::<f64>()).prop_map(
        |(wall_time, step, epoch, tag, value)| ScalarRow {
            wall_time,
            step,
            epoch,
            tag,
            value,
        },
    );
    let n = std::sync::atomic::AtomicU64::new(0);
    fuzz(
        "scalar_writer_round_trip",
        250_000,
        prop::collection::vec(row, 1..8),
        |rows| {
            let k = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let path = dir.path().join(format!("scalars-{k}.csv"));
            let mut w = ScalarWriter::open(&path).unwrap();
            for r in &rows {
                w.push(r).unwrap();
            }
            w.flush().unwrap();
            let mut tail = ScalarTail::new();
            let back = tail.read_new(&path).unwrap();
            prop_assert!(tail.bad_lines.is_empty(), "{:?}", tail.bad_lines);
            prop_assert_eq!(back.len(), rows.len());
            for (a, b) in rows.iter().zip(&back) {
                prop_assert_eq!(a.step, b.step);
                prop_assert_eq!(a.epoch, b.epoch);
                prop_assert_eq!(
                    a.value.to_bits() == b.value.to_bits() || a.value.is_nan() && b.value.is_nan(),
                    true
                );
                prop_assert!((a.wall_time - b.wall_time).abs() <= 0.0005 + a.wall_time * 1e-15);
                // A tag reads back as written, or with its line breaks escaped: the file is
                // line-based and a raw line break would split the row.
                prop_assert_eq!(&b.tag, &a.tag.replace('\n', "\\n").replace('\r', "\\r"));
            }
            let _ = std::fs::remove_file(&path);
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------------------
// status.ron, run.ron

/// The files a real run folder holds, as the runner writes them.
fn valid_run_files() -> (Vec<u8>, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let mut run = FixtureRun::new("r", State::Failed, 2);
    run.error = Some("plugin panicked".into());
    let folder = fixtures::write_run(dir.path(), &run).unwrap();
    (
        std::fs::read(folder.status_file()).unwrap(),
        std::fs::read(folder.run_file()).unwrap(),
    )
}

/// Reading must give a value or an error that names the file.
fn check_read<T: for<'de> serde::Deserialize<'de> + Debug>(
    path: &Path,
) -> Result<(), TestCaseError> {
    match runfs::read_ron::<T>(path) {
        Ok(_) => Ok(()),
        Err(e) => {
            let text = e.to_string();
            prop_assert!(text.starts_with(&path.display().to_string()), "{text}");
            if let RunFsError::Parse { line, column, .. } = e {
                prop_assert!(line >= 1 && column >= 1, "{text}");
            }
            Ok(())
        }
    }
}

fn ron_input(valid: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => bytes(2048),
        4 => mutations().prop_map(move |m| mutate(&valid, &m)),
    ]
}

#[test]
fn status_ron_reader() {
    let scratch = Scratch::new();
    let (status, _) = valid_run_files();
    fuzz("status_ron", 1_000_000, ron_input(status), |bytes| {
        check_read::<Status>(&scratch.write("status.ron", &bytes).0)
    });
}

#[test]
fn run_ron_reader() {
    let scratch = Scratch::new();
    let (_, record) = valid_run_files();
    fuzz("run_ron", 1_000_000, ron_input(record), |bytes| {
        check_read::<RunRecord>(&scratch.write("run.ron", &bytes).0)
    });
}

/// Nesting 100 000 deep, where each reader recurses: into a struct, a list, a map, an
/// option, and into `params` (free-form `ron::Value`s).
#[test]
fn deeply_nested_ron_is_refused_without_overflowing() {
    const DEEP: usize = 100_000;
    let deep = |open: &str| open.repeat(DEEP);
    let texts: Vec<(&str, String)> = vec![
        ("parens", deep("(")),
        ("lists", deep("[")),
        ("maps", deep("{")),
        ("maps with keys", deep("{\"a\":")),
        (
            "options",
            format!(
                "(state: running, pid: 1, host: \"h\", started: {}",
                deep("Some(")
            ),
        ),
        (
            "implicit some",
            format!("#![enable(implicit_some)]\n(started: {}", deep("(")),
        ),
        (
            "params",
            format!(
                "(id: \"r\", spec: (plugin: \"x\", params: {{\"a\": {}",
                deep("[")
            ),
        ),
        (
            "params maps",
            format!("(plugin: \"x\", params: {{\"a\": {}", deep("{\"b\":")),
        ),
        (
            "params tuples",
            format!("(plugin: \"x\", params: {{\"a\": {}", deep("(")),
        ),
        (
            "closed",
            format!(
                "(plugin: \"x\", params: {{\"a\": {}{}}})",
                deep("["),
                "]".repeat(DEEP)
            ),
        ),
    ];
    let start = Instant::now();
    // A thread with a smaller stack than the dashboard's threads get: if this passes,
    // they have room to spare.
    std::thread::Builder::new()
        .stack_size(1 << 20)
        .spawn(move || {
            let dir = tempfile::tempdir().unwrap();
            for (name, text) in &texts {
                let path = dir.path().join("deep.ron");
                std::fs::write(&path, text).unwrap();
                for (what, result) in [
                    ("Status", runfs::read_ron::<Status>(&path).map(drop)),
                    ("RunRecord", runfs::read_ron::<RunRecord>(&path).map(drop)),
                    ("RunSpec", RunSpec::parse(&path, text).map(drop)),
                ] {
                    let err = result.expect_err(name).to_string();
                    assert!(err.contains("deep.ron"), "{name} as {what}: {err}");
                }
            }
        })
        .unwrap()
        .join()
        .expect("deeply nested RON overflowed the stack or panicked");
    eprintln!("ron_deep_nesting: {:.1} s", start.elapsed().as_secs_f64());
}

// ---------------------------------------------------------------------------------------
// The config (`gantry train CONFIG.ron`)

const CONFIG: &str = r#"// a config as people write them
(
    plugin: "conv-ae",
    params: {"latent": 64, "widths": [16, 32], "act": "relu", "drop": Some(0.1), "nested": {"a": (1, 2.5, true)}},
    data: (
        kind: ImageFolder,
        root: "/data/isic",
        size: (64, 64),
        channels: 3,
        normal_class: "normal",
        val_fraction: 0.1,
        splits: Auto(val: 0.1, test: 0.2),
        group_by: Regex("^(P[0-9]+)_"),
        resize: CenterCrop,
        filter: Lanczos3,
        normalize: MeanStd(mean: [0.5, 0.5, 0.5], std: [0.25]),
        augment: (hflip: true, rotate: 10, crop: 0.8, brightness: 0.1),
        skip_bad: true,
        limit: 1000,
    ),
    train: (epochs: 5, batch_size: 32, lr: 0.001, seed: 7),
    device: "cuda:0",
)
"#;

#[test]
fn config_parser() {
    let path = PathBuf::from("configs/exp.ron");
    RunSpec::parse(&path, CONFIG).expect("the base config must parse");
    // The one field compiled at parse time: a regex built to be huge or slow is refused
    // by the regex crate's size limit, quickly.
    for re in [
        "((a{100}){100}){100}",
        "(\\\\w{50}){1000}",
        "\\\\p{L}{10000}",
        &"(".repeat(100_000),
    ] {
        let text = CONFIG.replace("^(P[0-9]+)_", re);
        let start = Instant::now();
        let err = RunSpec::parse(&path, &text).expect_err(re).to_string();
        assert!(err.contains("data.group_by"), "{err}");
        assert!(start.elapsed() < CASE_LIMIT, "{re}: {:?}", start.elapsed());
    }
    let input = prop_oneof![
        1 => any::<String>(),
        1 => "[ -~\n]{0,300}",
        6 => mutations().prop_map(|m| String::from_utf8_lossy(&mutate(CONFIG.as_bytes(), &m)).into_owned()),
    ];
    fuzz("config_parser", 1_200_000, input, |text| {
        match RunSpec::parse(&path, &text) {
            Ok(spec) => {
                // What parses also passed validation.
                prop_assert!(spec.train.epochs >= 1 && spec.train.batch_size >= 1);
            }
            Err(RunFsError::Parse {
                path: p,
                line,
                column,
                message,
            }) => {
                prop_assert_eq!(&p, &path);
                prop_assert!(line >= 1 && column >= 1, "{}:{}: {}", line, column, message);
            }
            Err(RunFsError::Invalid { path: p, message }) => {
                prop_assert_eq!(&p, &path);
                prop_assert!(
                    message.contains("data.") || message.contains("train."),
                    "names no field: {message}"
                );
            }
            Err(e) => return Err(TestCaseError::fail(format!("unexpected error kind: {e}"))),
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------
// Images in the data path

/// Small valid images of every layout the data path accepts.
fn valid_images() -> Vec<(String, Vec<u8>)> {
    use image::{DynamicImage, ImageBuffer, ImageFormat, Luma, Rgb, Rgba};
    let gray8 = DynamicImage::ImageLuma8(ImageBuffer::from_fn(17, 13, |x, y| {
        Luma([(x * 13 + y * 7) as u8])
    }));
    let gray16 = DynamicImage::ImageLuma16(ImageBuffer::from_fn(9, 7, |x, y| {
        Luma([(x * 4099 + y * 977) as u16])
    }));
    let rgb8 = DynamicImage::ImageRgb8(ImageBuffer::from_fn(16, 16, |x, y| {
        Rgb([(x * 16) as u8, (y * 16) as u8, ((x ^ y) * 8) as u8])
    }));
    let rgba8 = DynamicImage::ImageRgba8(ImageBuffer::from_fn(8, 5, |x, y| {
        Rgba([(x * 30) as u8, (y * 50) as u8, 7, (x * y * 6) as u8])
    }));
    let mut out = Vec::new();
    for (format, name, images) in [
        (
            ImageFormat::Png,
            "png",
            vec![&gray8, &gray16, &rgb8, &rgba8],
        ),
        (ImageFormat::Jpeg, "jpeg", vec![&gray8, &rgb8]),
        (
            ImageFormat::Tiff,
            "tiff",
            vec![&gray8, &gray16, &rgb8, &rgba8],
        ),
    ] {
        for img in images {
            let mut bytes = Cursor::new(Vec::new());
            img.write_to(&mut bytes, format).unwrap();
            out.push((format!("{name} {:?}", img.color()), bytes.into_inner()));
        }
    }
    out
}

/// Recomputes every PNG chunk's CRC after a mutation, so the decoder gets past the CRC
/// check into the chunk's content (where the interesting bugs are).
fn fix_png_crcs(data: &mut [u8]) {
    let mut at = 8;
    while at + 12 <= data.len() {
        let len = u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as usize;
        let Some(end) = (at + 8).checked_add(len).filter(|e| e + 4 <= data.len()) else {
            break;
        };
        let mut crc = flate2::Crc::new();
        crc.update(&data[at + 4..end]);
        data[end..end + 4].copy_from_slice(&crc.sum().to_be_bytes());
        at = end + 4;
    }
}

const SHAPES: [Shape; 3] = [
    Shape {
        channels: 1,
        height: 8,
        width: 8,
    },
    Shape {
        channels: 3,
        height: 5,
        width: 7,
    },
    Shape {
        channels: 1,
        height: 1,
        width: 1,
    },
];

/// Decoding gives pixels of the right count in [0, 1], or an error naming the file.
fn check_decode(path: &Path, shape: Shape) -> Result<(), TestCaseError> {
    match decode::decode(path, shape) {
        Ok(values) => {
            prop_assert_eq!(values.len(), shape.len());
            prop_assert!(
                values.iter().all(|v| v.is_finite()),
                "non-finite pixel values"
            );
        }
        Err(e) => {
            let text = e.to_string();
            prop_assert!(text.contains(&path.display().to_string()), "{text}");
        }
    }
    Ok(())
}

/// Magic numbers: put in front of random bytes, they send them to that decoder rather
/// than to the format guesser's refusal.
const MAGICS: &[&[u8]] = &[
    b"",
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",
    b"II*\0",
    b"MM\0*",
];

#[test]
fn image_decoding_of_arbitrary_bytes() {
    let scratch = Scratch::new();
    let magic = prop::sample::select(MAGICS);
    let strategy = (
        magic,
        prop::collection::vec(any::<u8>(), 0..2048),
        0..SHAPES.len(),
    );
    fuzz(
        "image_arbitrary_bytes",
        700_000,
        strategy,
        |(magic, rest, shape)| {
            let mut bytes = magic.to_vec();
            bytes.extend(rest);
            check_decode(&scratch.write("image.png", &bytes).0, SHAPES[shape])
        },
    );
    assert_peak_rss_bounded("image_arbitrary_bytes");
}

#[test]
fn image_decoding_of_mutated_files() {
    let scratch = Scratch::new();
    let images = valid_images();
    for (name, bytes) in &images {
        decode::read(&scratch.write("image", bytes).0)
            .unwrap_or_else(|e| panic!("{name} does not decode: {e}"));
    }
    let strategy = (0..images.len(), mutations(), any::<bool>(), 0..SHAPES.len());
    fuzz(
        "image_mutated",
        900_000,
        strategy,
        |(which, edits, fix_crc, shape)| {
            let (name, base) = &images[which];
            let mut bytes = mutate(base, &edits);
            if fix_crc && name.starts_with("png") {
                fix_png_crcs(&mut bytes);
            }
            check_decode(&scratch.write("image", &bytes).0, SHAPES[shape])
        },
    );
    assert_peak_rss_bounded("image_mutated");
}

/// A PNG whose header declares `w`x`h` pixels with a few bytes of data.
fn png_declaring(w: u32, h: u32) -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8; 4], data: &[u8]| {
        png.extend((data.len() as u32).to_be_bytes());
        png.extend(kind);
        png.extend(data);
        png.extend([0; 4]);
    };
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([8, 0, 0, 0, 0]);
    chunk(b"IHDR", &ihdr);
    chunk(b"IDAT", &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]);
    chunk(b"IEND", &[]);
    fix_png_crcs(&mut png);
    png
}

/// A little-endian TIFF whose one IFD declares `w`x`h` 8-bit gray pixels in one strip.
fn tiff_declaring(w: u32, h: u32) -> Vec<u8> {
    let mut t = b"II*\0".to_vec();
    t.extend(8u32.to_le_bytes());
    let entries: [(u16, u16, u32); 8] = [
        (256, 4, w),                  // ImageWidth
        (257, 4, h),                  // ImageLength
        (258, 3, 8),                  // BitsPerSample
        (259, 3, 1),                  // Compression: none
        (262, 3, 1),                  // Photometric: black is zero
        (273, 4, 8 + 2 + 8 * 12 + 4), // StripOffsets: just after the IFD
        (278, 4, h),                  // RowsPerStrip
        (279, 4, 16),                 // StripByteCounts
    ];
    t.extend((entries.len() as u16).to_le_bytes());
    for (tag, kind, value) in entries {
        t.extend(tag.to_le_bytes());
        t.extend(kind.to_le_bytes());
        t.extend(1u32.to_le_bytes());
        if kind == 3 {
            t.extend((value as u16).to_le_bytes());
            t.extend([0, 0]);
        } else {
            t.extend(value.to_le_bytes());
        }
    }
    t.extend(0u32.to_le_bytes());
    t.extend([0x55; 16]);
    t
}

/// A 16x16 TIFF whose StripOffsets claims `count` entries (4 bytes each), far past the
/// end of the file: a reader that allocates the table before reading it asks for
/// gigabytes.
fn tiff_with_strip_table(count: u32) -> Vec<u8> {
    let mut t = tiff_declaring(16, 16);
    // The StripOffsets entry is the sixth: 8 (header) + 2 (count) + 5 * 12.
    let entry = 8 + 2 + 5 * 12;
    assert_eq!(t[entry..entry + 2], 273u16.to_le_bytes());
    t[entry + 4..entry + 8].copy_from_slice(&count.to_le_bytes());
    t[entry + 8..entry + 12].copy_from_slice(&8u32.to_le_bytes());
    t
}

/// A baseline JPEG whose frame header declares `w`x`h` gray pixels and no scan data.
fn jpeg_declaring(w: u16, h: u16) -> Vec<u8> {
    let valid = valid_images()
        .into_iter()
        .find(|(n, _)| n.starts_with("jpeg"))
        .unwrap()
        .1;
    // Patch the first SOF0 (ff c0): length(2) precision(1) height(2) width(2).
    let mut j = valid;
    let sof = j.windows(2).position(|p| p == [0xff, 0xc0]).unwrap();
    j[sof + 5..sof + 7].copy_from_slice(&h.to_be_bytes());
    j[sof + 7..sof + 9].copy_from_slice(&w.to_be_bytes());
    j
}

/// A FIFO planted in a run folder or a dataset blocks a plain `open` until some writer
/// comes, and a link to `/dev/zero` never ends: both must be refused at once.
#[test]
fn special_files_are_refused_not_waited_on() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
    )
    .unwrap();
    let zero = dir.path().join("zero");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    let start = Instant::now();
    for path in [&fifo, &zero] {
        let shown = path.display().to_string();
        let err = ScalarTail::new().read_new(path).unwrap_err().to_string();
        assert!(err.contains(&shown), "{err}");
        let err = decode::read(path).unwrap_err().to_string();
        assert!(err.contains(&shown), "{err}");
        // The whole-file readers of a run folder (status.ron, run.ron, scores).
        let err = gantry::runfs::read_ron::<gantry::runfs::status::Status>(path)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&shown) && err.contains("not a regular file"),
            "{err}"
        );
        let err = gantry::runfs::scores::read(path).unwrap_err().to_string();
        assert!(err.contains(&shown), "{err}");
    }
    assert!(start.elapsed() < CASE_LIMIT);
    assert_peak_rss_bounded("special_files");
}

#[test]
fn images_declaring_huge_sizes_are_refused_without_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("png-100000x100000.png", png_declaring(100_000, 100_000)),
        ("png-32768x32768.png", png_declaring(32_768, 32_768)),
        ("png-4x1000000000.png", png_declaring(4, 1_000_000_000)),
        ("tiff-100000x100000.tif", tiff_declaring(100_000, 100_000)),
        ("tiff-32000x32000.tif", tiff_declaring(32_000, 32_000)),
        ("jpeg-65535x65535.jpg", jpeg_declaring(65_535, 65_535)),
        ("jpeg-40000x30000.jpg", jpeg_declaring(40_000, 30_000)),
        ("tiff-strip-table.tif", tiff_with_strip_table(0x4000_0000)),
    ];
    for (name, bytes) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let case = Instant::now();
        let err = decode::decode(&path, SHAPES[0])
            .expect_err(name)
            .to_string();
        assert!(err.contains(name), "{err}");
        eprintln!("{name}: {:?}: {err}", case.elapsed());
        assert!(
            case.elapsed() < CASE_LIMIT,
            "{name} took {:?}",
            case.elapsed()
        );
    }
    eprintln!(
        "images_huge_declared: {:.1} s",
        start.elapsed().as_secs_f64()
    );
    assert_peak_rss_bounded("images_huge_declared");
}

/// A valid agent stream (hello, then frames) that the mutations start from.
fn agent_stream() -> Vec<u8> {
    use gantry::remote::protocol::{self, ToClient};
    let mut wire = format!("Welcome\n{}\n", protocol::hello_line("gpu1")).into_bytes();
    let frames = [
        ToClient::Open {
            file: 0,
            root: 0,
            path: "run-1/run.ron".into(),
        },
        ToClient::Put {
            file: 0,
            total: 5,
            offset: 0,
            mtime: 1.7e9,
            bytes: b"(a:1)".to_vec(),
        },
        ToClient::Open {
            file: 1,
            root: 0,
            path: "run-1/scalars.csv".into(),
        },
        ToClient::Append {
            file: 1,
            offset: 0,
            bytes: b"1,0,1.5,loss,0.2\n".to_vec(),
        },
        ToClient::Synced,
        ToClient::Remove { file: 0 },
    ];
    for f in &frames {
        protocol::write_frame(&mut wire, f).unwrap();
    }
    wire
}

/// The local decoder of a remote agent's stream, as the dashboard runs it: hello, then
/// frames applied to a mirror. Whatever the remote side sends, it is an error or a file
/// inside the mirror, never a panic, a hang or a write outside it.
#[test]
fn remote_agent_stream() {
    use gantry::remote::mirror::Mirror;
    use gantry::remote::protocol::{self, ToClient};
    let valid = agent_stream();
    let scratch = Scratch::new();
    let input =
        prop_oneof![3 => mutations().prop_map(move |m| mutate(&valid, &m)), 1 => bytes(4096)];
    fuzz("remote_agent_stream", 3_000, input, |data| {
        let n = scratch
            .next
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let top = scratch.dir.path().join(format!("case-{n}"));
        let inside = top.join("mirror");
        let mut mirror = Mirror::new(vec![inside.clone()]);
        let mut reader = std::io::BufReader::new(&data[..]);
        if protocol::read_hello(&mut reader).is_ok() {
            while let Ok(Some(frame)) = protocol::read_frame::<ToClient>(&mut reader) {
                let _ = mirror.apply(&frame);
            }
        }
        if top.exists() {
            for entry in std::fs::read_dir(&top).unwrap().flatten() {
                prop_assert_eq!(entry.file_name(), "mirror", "written beside the mirror");
            }
            std::fs::remove_dir_all(&top).unwrap();
        }
        Ok(())
    });
}
