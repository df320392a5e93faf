//! The plugin ABI from the host's side, against real libraries: a good plugin loads and
//! trains; each kind of broken library is refused with its own error naming the file; a
//! misbehaving model fails its call, not the host.

use std::path::Path;

use gantry_e2e::{fixture, foreign_library};
use gantry_plugin_api::host::{CallError, HostSink, LoadError, Plugin};
use gantry_plugin_api::{Batch, ImageRef, Level, Setup};

/// Records everything a plugin reports.
#[derive(Default)]
struct Recorder {
    scalars: Vec<(String, f64)>,
    scores: Vec<(String, Vec<f32>)>,
    images: Vec<(String, [usize; 4])>,
    info: Vec<(String, String)>,
    logs: Vec<String>,
}

impl HostSink for Recorder {
    fn scalar(&mut self, name: &str, value: f64) {
        self.scalars.push((name.into(), value));
    }
    fn scores(&mut self, name: &str, values: &[f32]) {
        self.scores.push((name.into(), values.to_vec()));
    }
    fn image(&mut self, name: &str, image: ImageRef<'_>) {
        self.images.push((name.into(), image.shape));
    }
    fn info(&mut self, key: &str, value: &str) {
        self.info.push((key.into(), value.into()));
    }
    fn log(&mut self, _level: Level, text: &str) {
        self.logs.push(text.into());
    }
}

fn batch(data: &[f32]) -> Batch<'_> {
    Batch {
        images: data,
        shape: [2, 1, 2, 2],
        labels: &[0, 1],
        want_images: true,
    }
}

const SETUP: Setup = Setup {
    channels: 1,
    height: 2,
    width: 2,
    num_classes: 2,
    seed: 0,
    learning_rate: None,
    total_steps: None,
};

const DATA: [f32; 8] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8];

#[test]
fn good_plugin_loads_describes_trains_and_round_trips() {
    let plugin = Plugin::load(fixture("ok")).expect("good fixture loads");
    let info = plugin.info();
    assert_eq!(info.name, "fixture");
    assert_eq!(info.family, "fixture");
    // 1.1 appended `emit_vectors` to the host callbacks.
    assert_eq!((info.abi_major, info.abi_minor), (1, 1));
    assert!(
        info.rustc_version.starts_with("rustc "),
        "{}",
        info.rustc_version
    );
    assert_eq!(info.description.losses, vec!["loss".to_string()]);

    let mut rec = Recorder::default();
    let mut inst = plugin
        .create("{\"mode\": \"ok\"}", "auto", &SETUP, &mut rec)
        .unwrap();
    assert_eq!(rec.info, vec![("device".into(), "cpu".into())]);
    assert!(rec.logs.iter().any(|l| l.contains("mode ok")));
    for _ in 0..5 {
        inst.train_step(&batch(&DATA), &mut rec).unwrap();
    }
    let losses: Vec<f64> = rec.scalars.iter().map(|(_, v)| *v).collect();
    assert_eq!(losses.len(), 5);
    assert!(losses[4] < losses[0] * 0.1, "loss did not fall: {losses:?}");

    inst.eval(&batch(&DATA), &mut rec).unwrap();
    assert_eq!(rec.scores.len(), 1);
    assert_eq!(rec.scores[0].1.len(), 2, "one score per image");
    assert_eq!(rec.images, vec![("input".to_string(), [2, 1, 2, 2])]);

    // save/load restore the state: a fresh instance loaded from disk scores the same.
    let dir = tempfile::tempdir().unwrap();
    inst.save(dir.path(), &mut rec).unwrap();
    let mut fresh = plugin.create("{}", "cpu", &SETUP, &mut rec).unwrap();
    fresh.load(dir.path(), &mut rec).unwrap();
    fresh.eval(&batch(&DATA), &mut rec).unwrap();
    assert_eq!(rec.scores[0].1, rec.scores[1].1);

    // A plugin's own error comes back as such.
    let err = fresh
        .load(Path::new("/nonexistent/dir"), &mut rec)
        .unwrap_err();
    assert!(
        matches!(err, CallError::Failed { call: "load", .. }),
        "{err}"
    );
}

fn refusal(path: &Path) -> LoadError {
    let err = Plugin::load(path).expect_err("must be refused");
    let text = err.to_string();
    assert!(
        text.contains(&path.display().to_string()),
        "error does not name the file: {text}"
    );
    err
}

#[test]
fn not_a_library_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.so");
    std::fs::write(&path, "just some text\n").unwrap();
    assert_eq!(refusal(&path).kind(), "not-a-library");
}

#[test]
fn truncated_library_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(fixture("ok")).unwrap();
    let path = dir.path().join("truncated.so");
    std::fs::write(&path, &bytes[..bytes.len() / 3]).unwrap();
    assert_eq!(refusal(&path).kind(), "not-a-library");
}

#[test]
fn missing_file_is_refused() {
    let err = refusal(Path::new("/nonexistent/libnothing.so"));
    assert_eq!(err.kind(), "unreadable");
}

#[test]
fn library_without_entry_symbol_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err = refusal(&foreign_library(dir.path()));
    assert_eq!(err.kind(), "missing-entry");
    assert!(err.to_string().contains("gantry_plugin_entry_v1"));
}

#[test]
fn bad_magic_is_refused() {
    assert_eq!(refusal(&fixture("bad-magic")).kind(), "bad-magic");
}

#[test]
fn future_major_in_header_is_refused() {
    let err = refusal(&fixture("future-major"));
    assert!(
        matches!(
            err,
            LoadError::AbiMajor {
                found: 2,
                expected: 1,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("major 2"), "{err}");
}

#[test]
fn future_major_entry_symbol_is_refused_naming_the_major() {
    let err = refusal(&fixture("future-major-symbol"));
    assert!(
        matches!(
            err,
            LoadError::AbiMajor {
                found: 2,
                expected: 1,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn too_small_vtable_is_refused() {
    let err = refusal(&fixture("small-vtable"));
    assert!(
        matches!(
            err,
            LoadError::TooSmall {
                what: "vtable",
                found: 16,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn missing_function_is_refused() {
    let err = refusal(&fixture("missing-function"));
    assert!(
        matches!(
            err,
            LoadError::MissingFunction {
                function: "eval",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn panic_abort_build_is_refused() {
    let err = refusal(&fixture("panic-abort"));
    assert_eq!(err.kind(), "panic-abort");
    assert!(err.to_string().contains("panic=abort"));
}

#[test]
fn panicking_train_step_fails_the_call_and_poisons_the_instance() {
    let plugin = Plugin::load(fixture("ok")).unwrap();
    let mut rec = Recorder::default();
    let mut inst = plugin
        .create("{\"mode\": \"panic\"}", "cpu", &SETUP, &mut rec)
        .unwrap();
    let err = inst.train_step(&batch(&DATA), &mut rec).unwrap_err();
    assert!(
        matches!(
            err,
            CallError::Panicked {
                call: "train_step",
                ..
            }
        ),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("fixture asked to panic in train_step"),
        "{text}"
    );
    assert!(
        text.contains(&plugin.path().display().to_string()),
        "{text}"
    );
    assert!(
        rec.logs
            .iter()
            .any(|l| l.contains("fixture asked to panic")),
        "panic message routed to the host log: {:?}",
        rec.logs
    );
    // The host survives, and the instance refuses further work.
    let again = inst.eval(&batch(&DATA), &mut rec).unwrap_err();
    assert!(matches!(again, CallError::Poisoned { .. }), "{again}");
    // Other instances of the same plugin are unaffected.
    let mut ok = plugin.create("{}", "cpu", &SETUP, &mut rec).unwrap();
    ok.train_step(&batch(&DATA), &mut rec).unwrap();
}

#[test]
fn panicking_create_fails_cleanly() {
    let plugin = Plugin::load(fixture("ok")).unwrap();
    let mut rec = Recorder::default();
    let err = plugin
        .create("{\"mode\": \"panic-create\"}", "cpu", &SETUP, &mut rec)
        .err()
        .expect("create must fail");
    assert!(
        matches!(err, CallError::Panicked { call: "create", .. }),
        "{err}"
    );
}

#[test]
fn nan_loss_is_an_error_naming_the_scalar() {
    let plugin = Plugin::load(fixture("ok")).unwrap();
    let mut rec = Recorder::default();
    let mut inst = plugin
        .create("{\"mode\": \"nan\"}", "cpu", &SETUP, &mut rec)
        .unwrap();
    let err = inst.train_step(&batch(&DATA), &mut rec).unwrap_err();
    match &err {
        CallError::NonFinite { name, value, .. } => {
            assert_eq!(name, "loss");
            assert!(value.is_nan());
        }
        other => panic!("expected NonFinite, got {other}"),
    }
    assert!(rec.scalars.is_empty(), "a NaN never reaches the sink");
    assert!(err.to_string().contains("diverged"));
}

#[test]
fn set_error_comes_back_as_the_message() {
    let plugin = Plugin::load(fixture("ok")).unwrap();
    let mut rec = Recorder::default();
    let mut inst = plugin
        .create("{\"mode\": \"error\"}", "cpu", &SETUP, &mut rec)
        .unwrap();
    let err = inst.train_step(&batch(&DATA), &mut rec).unwrap_err();
    assert!(
        matches!(
            err,
            CallError::Failed {
                call: "train_step",
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("fixture asked to fail in train_step")
    );
    // An error does not poison: the next call runs (and fails the same way, not Poisoned).
    let again = inst.train_step(&batch(&DATA), &mut rec).unwrap_err();
    assert!(matches!(again, CallError::Failed { .. }), "{again}");
}

#[test]
fn inconsistent_batch_is_rejected_by_the_plugin() {
    let plugin = Plugin::load(fixture("ok")).unwrap();
    let mut rec = Recorder::default();
    let mut inst = plugin.create("{}", "cpu", &SETUP, &mut rec).unwrap();
    let bad = Batch {
        images: &DATA,
        shape: [3, 1, 2, 2],
        labels: &[],
        want_images: false,
    };
    let err = inst.train_step(&bad, &mut rec).unwrap_err();
    assert!(matches!(err, CallError::BadArgument { .. }), "{err}");
}
