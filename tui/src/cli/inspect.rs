//! `gantry data inspect CONFIG.ron`: what a config's dataset holds before anything trains:
//! per-split class counts, image sizes and channels as stored, how values will be shaped,
//! and a leakage check (a group key or a file in two splits).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;

use crate::data::splits::{self, Leakage};
use crate::data::{Dataset, Sample};
use crate::runfs::spec::RunSpec;
use crate::trainer::open_dataset;

/// Images per split whose stored size is read (headers only where the format allows).
const SIZE_PROBES: usize = 200;

/// The report's text, and whether the dataset is clean (no leakage).
pub fn inspect(config: &Path) -> Result<(String, bool)> {
    let spec = RunSpec::load(config)?;
    let ds = open_dataset(config, &spec)?;
    let mut out = String::new();
    let d = &spec.data;
    writeln!(
        out,
        "dataset {} ({:?}), splits {:?}, seed {}",
        ds.root.display(),
        d.kind,
        d.splits,
        spec.train.seed
    )?;
    writeln!(
        out,
        "shaped to {}x{}x{} ({:?}, {:?}), normalize {:?}{}",
        d.channels,
        d.size.0,
        d.size.1,
        d.resize,
        d.filter,
        d.normalize,
        if d.augment.any() {
            format!(", augment (train only) {:?}", d.augment)
        } else {
            String::new()
        }
    )?;
    if let Some(n) = ds.normal {
        writeln!(
            out,
            "one-class: train and val hold {:?} only; test scores it as normal, the rest as anomalous",
            ds.classes[n as usize]
        )?;
    }
    if ds.val_carved {
        writeln!(out, "val carved out of train ({} of it)", d.val_fraction)?;
    }
    out.push_str(&counts_table(&ds));
    for (name, samples) in [("train", &ds.train), ("val", &ds.val), ("test", &ds.test)] {
        if !samples.is_empty() {
            writeln!(out, "{name:<5} stored as {}", stored_sizes(&ds, samples))?;
        }
    }
    let leak = splits::leakage(&ds.train, &ds.val, &ds.test);
    out.push_str(&leakage_text(&leak, d.group_by.is_some()));
    Ok((out, leak.is_clean()))
}

/// Class counts per split, one row per class.
fn counts_table(ds: &Dataset) -> String {
    let count = |samples: &[Sample], class: usize| {
        samples.iter().filter(|s| s.class as usize == class).count()
    };
    let width = ds.classes.iter().map(|c| c.len()).max().unwrap_or(5).max(5);
    let mut out = format!(
        "{:<width$} {:>8} {:>8} {:>8}\n",
        "class", "train", "val", "test"
    );
    for (i, class) in ds.classes.iter().enumerate() {
        out += &format!(
            "{class:<width$} {:>8} {:>8} {:>8}\n",
            count(&ds.train, i),
            count(&ds.val, i),
            count(&ds.test, i)
        );
    }
    out += &format!(
        "{:<width$} {:>8} {:>8} {:>8}\n",
        "total",
        ds.train.len(),
        ds.val.len(),
        ds.test.len()
    );
    out
}

/// "700x460 RGB8 x 180, 350x230 RGB8 x 20 (first 200 read)": the stored sizes and pixel
/// types of up to [`SIZE_PROBES`] images.
fn stored_sizes(ds: &Dataset, samples: &[Sample]) -> String {
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    let mut errors = Vec::new();
    for s in samples.iter().take(SIZE_PROBES) {
        match ds.loader.read(s) {
            Ok(img) => {
                let key = format!("{}x{} {:?}", img.width(), img.height(), img.color());
                *kinds.entry(key).or_default() += 1;
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    let mut parts: Vec<String> = kinds
        .into_iter()
        .map(|(k, n)| format!("{k} x {n}"))
        .collect();
    if !errors.is_empty() {
        parts.push(format!(
            "{} unreadable (first: {})",
            errors.len(),
            errors[0]
        ));
    }
    let probed = samples.len().min(SIZE_PROBES);
    format!(
        "{}{}",
        parts.join(", "),
        if probed < samples.len() {
            format!(" (first {probed} of {} read)", samples.len())
        } else {
            String::new()
        }
    )
}

fn leakage_text(leak: &Leakage, grouped: bool) -> String {
    let mut out = String::new();
    if leak.is_clean() {
        out += if grouped {
            "leakage check: clean (no group key and no file in two splits)\n"
        } else {
            "leakage check: clean (no file in two splits; set data.group_by to check patients)\n"
        };
        return out;
    }
    out += &format!(
        "leakage check: {} group(s) and {} file(s) in more than one split\n",
        leak.groups.len(),
        leak.files.len()
    );
    for (key, splits) in leak.groups.iter().take(10) {
        out += &format!("  group {key:?} in {}\n", splits.join(", "));
    }
    for (file, splits) in leak.files.iter().take(10) {
        out += &format!("  file {file} in {}\n", splits.join(", "));
    }
    out
}
