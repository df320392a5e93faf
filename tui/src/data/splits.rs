//! Assigning samples to train, val and test: deterministic by seed, stratified by class,
//! and grouped so that every image of one group (one patient) lands in one split. Images
//! of one patient in both train and test inflate test scores; medical datasets such as
//! BreakHis carry the patient id in the file name, and `group_by` reads it from there.

use std::collections::{BTreeMap, BTreeSet};

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use regex::Regex;

use super::Sample;

/// Reads group keys from file names.
#[derive(Debug, Clone)]
pub struct Grouper {
    regex: Regex,
}

impl Grouper {
    /// `pattern` must be a valid regex (the config validator checks it first).
    pub fn new(pattern: &str) -> Result<Grouper, String> {
        Regex::new(pattern)
            .map(|regex| Grouper { regex })
            .map_err(|e| format!("data.group_by Regex({pattern:?}): {e}"))
    }

    /// The key of a file name: the first capture group, or the whole match. A name the
    /// regex does not match is an error, since silently making it its own group would
    /// hide exactly the leakage grouping is for.
    pub fn key(&self, name: &str) -> Result<String, String> {
        let file = name.rsplit(['/', '\\']).next().unwrap_or(name);
        let caps = self.regex.captures(file).ok_or_else(|| {
            format!(
                "data.group_by: file name {file:?} does not match {:?}",
                self.regex.as_str()
            )
        })?;
        let m = caps.get(1).or_else(|| caps.get(0)).expect("a match");
        Ok(m.as_str().to_string())
    }

    /// Sets every sample's group key.
    pub fn label(&self, samples: &mut [Sample]) -> Result<(), String> {
        for s in samples {
            s.group = Some(self.key(&s.name)?);
        }
        Ok(())
    }
}

/// The three splits.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Assigned {
    pub train: Vec<Sample>,
    pub val: Vec<Sample>,
    pub test: Vec<Sample>,
}

/// Splits `samples` into train/val/test with the given fractions. Per class, whole groups
/// (a sample without a group key is its own group) are shuffled by `seed` and dealt to
/// test, then val, until each holds its fraction of that class's samples; the rest train.
/// A group whose images span classes goes with its most frequent class. Each split comes
/// back sorted by name, so results never depend on input order.
pub fn assign(samples: Vec<Sample>, val: f64, test: f64, seed: u64) -> Assigned {
    // class -> group key -> samples (BTreeMaps: deterministic iteration).
    let mut groups: BTreeMap<String, Vec<Sample>> = BTreeMap::new();
    for s in samples {
        let key = s
            .group
            .clone()
            .unwrap_or_else(|| format!("\u{0}{}", s.name));
        groups.entry(key).or_default().push(s);
    }
    let mut by_class: BTreeMap<u32, Vec<Vec<Sample>>> = BTreeMap::new();
    for (_, members) in groups {
        by_class
            .entry(majority_class(&members))
            .or_default()
            .push(members);
    }
    let mut out = Assigned::default();
    for (class, mut class_groups) in by_class {
        let total: usize = class_groups.iter().map(Vec::len).sum();
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (u64::from(class) << 40) ^ 0x5EED);
        class_groups.shuffle(&mut rng);
        let want_test = (total as f64 * test).round() as usize;
        let want_val = (total as f64 * val).round() as usize;
        let (mut n_test, mut n_val) = (0, 0);
        for g in class_groups {
            if n_test < want_test {
                n_test += g.len();
                out.test.extend(g);
            } else if n_val < want_val {
                n_val += g.len();
                out.val.extend(g);
            } else {
                out.train.extend(g);
            }
        }
    }
    for split in [&mut out.train, &mut out.val, &mut out.test] {
        split.sort_by(|a, b| a.name.cmp(&b.name));
    }
    out
}

fn majority_class(members: &[Sample]) -> u32 {
    let mut counts: BTreeMap<u32, usize> = BTreeMap::new();
    for s in members {
        *counts.entry(s.class).or_default() += 1;
    }
    // Most frequent; ties to the smallest label.
    counts
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
        .map(|(&c, _)| c)
        .unwrap_or(0)
}

/// What a leakage check found: group keys and files present in more than one split.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Leakage {
    /// (group key, the splits it appears in).
    pub groups: Vec<(String, Vec<&'static str>)>,
    /// (file name, the splits it appears in).
    pub files: Vec<(String, Vec<&'static str>)>,
}

impl Leakage {
    pub fn is_clean(&self) -> bool {
        self.groups.is_empty() && self.files.is_empty()
    }
}

/// Checks that no group key and no file is in two splits.
pub fn leakage(train: &[Sample], val: &[Sample], test: &[Sample]) -> Leakage {
    let splits = [("train", train), ("val", val), ("test", test)];
    let mut groups: BTreeMap<&str, BTreeSet<&'static str>> = BTreeMap::new();
    let mut files: BTreeMap<String, BTreeSet<&'static str>> = BTreeMap::new();
    for (name, samples) in splits {
        for s in samples {
            if let Some(g) = &s.group {
                groups.entry(g).or_default().insert(name);
            }
            let file = match s.frame {
                Some((set, i)) => format!("{}#{set}:{i}", s.path.display()),
                None => s.path.display().to_string(),
            };
            files.entry(file).or_default().insert(name);
        }
    }
    let shared = |m: BTreeMap<String, BTreeSet<&'static str>>| {
        m.into_iter()
            .filter(|(_, s)| s.len() > 1)
            .map(|(k, s)| (k, s.into_iter().collect()))
            .collect()
    };
    Leakage {
        groups: shared(
            groups
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        ),
        files: shared(files),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// BreakHis-like names: `SOB_B_A-14-22549AB-40-001.png`, patient `14-22549AB`.
    fn breakhis(patients: usize, per: usize) -> Vec<Sample> {
        let mut v = Vec::new();
        for p in 0..patients {
            let class = (p % 2) as u32;
            let kind = if class == 0 { "B_A" } else { "M_DC" };
            for i in 0..per {
                let name = format!("{kind}/SOB_{kind}-14-{p:05}AB-40-{i:03}.png");
                v.push(Sample::file(name.clone().into(), name, class));
            }
        }
        v
    }

    #[test]
    fn grouped_split_keeps_each_patient_in_one_split() {
        let mut samples = breakhis(20, 7);
        let grouper = Grouper::new(r"^SOB_[BM]_[A-Z]+-(\d+-[0-9A-Z]+)-").unwrap();
        grouper.label(&mut samples).unwrap();
        assert_eq!(samples[0].group.as_deref(), Some("14-00000AB"));
        let a = assign(samples, 0.1, 0.2, 7);
        assert_eq!(a.train.len() + a.val.len() + a.test.len(), 140);
        let l = leakage(&a.train, &a.val, &a.test);
        assert!(l.is_clean(), "{l:?}");
        // Both classes reach every split (10 patients per class: 2 test, 1 val).
        for split in [&a.train, &a.val, &a.test] {
            for class in 0..2 {
                assert!(split.iter().any(|s| s.class == class));
            }
        }
        assert_eq!(a.test.len(), 28);
        assert_eq!(a.val.len(), 14);
    }

    #[test]
    fn ungrouped_split_is_stratified_and_deterministic() {
        // 90 of class 0, 10 of class 1: a 20% test split takes 18 and 2.
        let samples: Vec<Sample> = (0..100)
            .map(|i| {
                let name = format!("{i:03}.png");
                Sample::file(name.clone().into(), name, u32::from(i >= 90))
            })
            .collect();
        let a = assign(samples.clone(), 0.1, 0.2, 1);
        let count = |v: &[Sample], c| v.iter().filter(|s| s.class == c).count();
        assert_eq!((count(&a.test, 0), count(&a.test, 1)), (18, 2));
        assert_eq!((count(&a.val, 0), count(&a.val, 1)), (9, 1));
        assert_eq!(
            a,
            assign(samples.clone(), 0.1, 0.2, 1),
            "same seed, same split"
        );
        let mut shuffled = samples.clone();
        shuffled.reverse();
        assert_eq!(
            a,
            assign(shuffled, 0.1, 0.2, 1),
            "input order does not matter"
        );
        assert_ne!(
            a.test,
            assign(samples, 0.1, 0.2, 2).test,
            "the seed matters"
        );
    }

    #[test]
    fn leakage_check_finds_a_patient_in_two_splits() {
        let mut samples = breakhis(2, 2);
        Grouper::new(r"-(\d+-\d+AB)-")
            .unwrap()
            .label(&mut samples)
            .unwrap();
        let l = leakage(&samples[..1], &samples[1..2], &samples[2..]);
        assert_eq!(
            l.groups,
            vec![("14-00000AB".to_string(), vec!["train", "val"])]
        );
        assert!(l.files.is_empty());
        let l = leakage(&samples[..1], &[], &samples[..1]);
        assert_eq!(l.files.len(), 1);
    }

    #[test]
    fn a_name_the_regex_misses_is_an_error_naming_it() {
        let g = Grouper::new(r"patient(\d+)").unwrap();
        let err = g.key("train/x/scan7.png").unwrap_err();
        assert!(
            err.contains("scan7.png") && err.contains("patient"),
            "{err}"
        );
        assert!(Grouper::new("(").unwrap_err().contains("data.group_by"));
    }
}
