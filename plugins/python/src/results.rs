//! What a script's methods return, read into plain Rust values and checked before
//! anything reaches the host: a malformed result is one clear error and emits nothing.
//!
//! `train_step` returns `{"loss": 0.01, ...}`; `eval` and `sample` return a dict with any of
//! `scalars` (name -> number), `scores` (name -> one value per image), `images` (name ->
//! NCHW in [0, 1], or `(NCHW, columns)`) and `vectors` (name -> `n x d`). Values may be
//! numpy arrays, torch tensors, lists or Python numbers.

use gantry_plugin_api::{Context, ImageRef};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyTuple};

/// Images per grid row when the script does not say.
pub const DEFAULT_COLUMNS: usize = 8;

/// A float32 array copied out of Python.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// One image batch to emit.
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    pub name: String,
    pub shape: [usize; 4],
    pub data: Vec<f32>,
    pub columns: usize,
}

/// Everything one call reports, checked.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outputs {
    pub scalars: Vec<(String, f64)>,
    pub scores: Vec<(String, Vec<f32>)>,
    pub images: Vec<Grid>,
    /// (name, row-major values, columns)
    pub vectors: Vec<(String, Vec<f32>, usize)>,
}

impl Outputs {
    /// Sends everything to the host; images only when `with_images`.
    pub fn emit(&self, ctx: &mut Context<'_>, with_images: bool) {
        for (name, value) in &self.scalars {
            ctx.scalar(name, *value);
        }
        for (name, values) in &self.scores {
            ctx.scores(name, values);
        }
        for (name, values, cols) in &self.vectors {
            ctx.vectors(name, values, *cols);
        }
        if with_images {
            for grid in &self.images {
                ctx.image(
                    &grid.name,
                    ImageRef {
                        data: &grid.data,
                        shape: grid.shape,
                        columns: grid.columns,
                    },
                );
            }
        }
    }
}

/// Python helpers the readers call (`as_f32`, `as_float` of bridge.py).
pub struct Readers<'a, 'py> {
    pub helpers: &'a Bound<'py, PyModule>,
}

impl<'py> Readers<'_, 'py> {
    fn array(&self, obj: &Bound<'py, PyAny>, what: &str) -> Result<Array, String> {
        let out = self.helpers.call_method1("as_f32", (obj,)).map_err(|e| {
            format!(
                "{what}: not an array of numbers ({})",
                short_error(self.helpers.py(), &e)
            )
        })?;
        let (shape, bytes): (Vec<usize>, Bound<'py, PyBytes>) =
            out.extract().map_err(|e| format!("{what}: {e}"))?;
        let data = bytes
            .as_bytes()
            .chunks_exact(4)
            .map(|b| f32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        Ok(Array { shape, data })
    }

    fn number(&self, obj: &Bound<'py, PyAny>, what: &str) -> Result<f64, String> {
        self.helpers
            .call_method1("as_float", (obj,))
            .and_then(|v| v.extract::<f64>())
            .map_err(|e| {
                format!(
                    "{what}: not a number ({})",
                    short_error(self.helpers.py(), &e)
                )
            })
    }

    /// `{"loss": 0.01, ...}` from `train_step`.
    pub fn train(&self, result: &Bound<'py, PyAny>) -> Result<Outputs, String> {
        let dict = as_dict(result, "train_step", "a dict like {\"loss\": 0.01}")?;
        Ok(Outputs {
            scalars: self.scalars(dict, "train_step")?,
            ..Outputs::default()
        })
    }

    /// The dict `eval` (with `n` images in the batch) or `sample` (asked for `n`) returns.
    pub fn report(
        &self,
        result: &Bound<'py, PyAny>,
        call: &str,
        n: usize,
    ) -> Result<Outputs, String> {
        let dict = as_dict(
            result,
            call,
            "a dict with any of \"scalars\", \"scores\", \"images\", \"vectors\"",
        )?;
        let mut out = Outputs::default();
        for (key, value) in dict.iter() {
            let key = key.to_string();
            let what = format!("{call}()[{key:?}]");
            match key.as_str() {
                "scalars" => {
                    out.scalars = self.scalars(as_dict(&value, &what, "a dict")?, &what)?
                }
                "scores" => {
                    for (name, v) in named(as_dict(&value, &what, "a dict")?, &what)? {
                        let what = format!("{what}[{name:?}]");
                        let a = self.array(&v, &what)?;
                        check_scores(&what, &a.shape, n)?;
                        out.scores.push((name, a.data));
                    }
                }
                "images" => {
                    for (name, v) in named(as_dict(&value, &what, "a dict")?, &what)? {
                        let what = format!("{what}[{name:?}]");
                        let (v, columns) = match v.cast::<PyTuple>() {
                            Ok(t) if t.len() == 2 => {
                                let columns = t
                                    .get_item(1)
                                    .and_then(|c| c.extract::<usize>())
                                    .map_err(|_| {
                                        format!(
                                            "{what}: (images, columns) needs an integer columns"
                                        )
                                    })?;
                                (t.get_item(0).map_err(|e| e.to_string())?, Some(columns))
                            }
                            _ => (v, None),
                        };
                        let a = self.array(&v, &what)?;
                        let shape = check_image(&what, &a.shape)?;
                        let columns = columns.unwrap_or(DEFAULT_COLUMNS).clamp(1, shape[0].max(1));
                        out.images.push(Grid {
                            name,
                            shape,
                            data: to_unit(a.data),
                            columns,
                        });
                    }
                }
                "vectors" => {
                    for (name, v) in named(as_dict(&value, &what, "a dict")?, &what)? {
                        let what = format!("{what}[{name:?}]");
                        let a = self.array(&v, &what)?;
                        let cols = check_vectors(&what, &a.shape, n)?;
                        out.vectors.push((name, a.data, cols));
                    }
                }
                _ => {
                    return Err(format!(
                        "{call}() returned the key {key:?}; the keys are \"scalars\", \
                         \"scores\", \"images\" and \"vectors\""
                    ));
                }
            }
        }
        Ok(out)
    }

    fn scalars(&self, dict: &Bound<'py, PyDict>, what: &str) -> Result<Vec<(String, f64)>, String> {
        named(dict, what)?
            .into_iter()
            .map(|(name, v)| {
                let value = self.number(&v, &format!("{what}[{name:?}]"))?;
                Ok((name, value))
            })
            .collect()
    }
}

fn as_dict<'a, 'py>(
    obj: &'a Bound<'py, PyAny>,
    what: &str,
    expected: &str,
) -> Result<&'a Bound<'py, PyDict>, String> {
    obj.cast::<PyDict>().map_err(|_| {
        let type_name = obj
            .get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| "?".into());
        format!("{what} returned a {type_name}, not {expected}")
    })
}

/// The entries of a dict whose keys must be strings.
fn named<'py>(
    dict: &Bound<'py, PyDict>,
    what: &str,
) -> Result<Vec<(String, Bound<'py, PyAny>)>, String> {
    dict.iter()
        .map(|(k, v)| match k.extract::<String>() {
            Ok(name) => Ok((name, v)),
            Err(_) => Err(format!("{what}: the key {k} is not a string")),
        })
        .collect()
}

/// `Type: message` of an exception raised while reading a result.
fn short_error(py: Python<'_>, e: &PyErr) -> String {
    crate::interp::one_line(&crate::interp::error_text(py, e).0)
}

fn shape_text(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    }
}

/// Scores: one value per image, `(n,)` or `(n, 1)`.
pub fn check_scores(what: &str, shape: &[usize], n: usize) -> Result<(), String> {
    let ok = match shape {
        [len] => *len == n,
        [len, 1] => *len == n,
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} has shape {}; expected {n} values, one per image",
            shape_text(shape)
        ))
    }
}

/// Images: 4-D NCHW with 1 or 3 channels.
pub fn check_image(what: &str, shape: &[usize]) -> Result<[usize; 4], String> {
    let [n, c, h, w] = *shape else {
        return Err(format!(
            "{what} has shape {}; expected 4-D images (N, C, H, W)",
            shape_text(shape)
        ));
    };
    if !matches!(c, 1 | 3) || n == 0 || h == 0 || w == 0 {
        return Err(format!(
            "{what} has shape {}; expected (N, C, H, W) with C = 1 or 3 and no empty \
             dimension",
            shape_text(shape)
        ));
    }
    Ok([n, c, h, w])
}

/// Vectors: `(n, d)`, one row per image; returns `d`.
pub fn check_vectors(what: &str, shape: &[usize], n: usize) -> Result<usize, String> {
    match *shape {
        [rows, cols] if rows == n && cols > 0 => Ok(cols),
        _ => Err(format!(
            "{what} has shape {}; expected ({n}, D), one row per image",
            shape_text(shape)
        )),
    }
}

/// Clamps image values into [0, 1] (NaN to 0): what any viewer would show.
fn to_unit(mut data: Vec<f32>) -> Vec<f32> {
    for v in &mut data {
        *v = if v.is_nan() { 0.0 } else { v.clamp(0.0, 1.0) };
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_image_and_vector_shapes_are_checked() {
        assert!(check_scores("s", &[4], 4).is_ok());
        assert!(check_scores("s", &[4, 1], 4).is_ok());
        let err = check_scores("eval()[\"scores\"][\"mse\"]", &[4, 2], 4).unwrap_err();
        assert_eq!(
            err,
            "eval()[\"scores\"][\"mse\"] has shape (4, 2); expected 4 values, one per image"
        );
        assert!(check_scores("s", &[3], 4).unwrap_err().contains("(3,)"));

        assert_eq!(check_image("i", &[2, 1, 8, 8]).unwrap(), [2, 1, 8, 8]);
        assert!(
            check_image("i", &[1, 8, 8])
                .unwrap_err()
                .contains("expected 4-D")
        );
        assert!(
            check_image("i", &[2, 2, 8, 8])
                .unwrap_err()
                .contains("C = 1 or 3")
        );

        assert_eq!(check_vectors("v", &[4, 16], 4).unwrap(), 16);
        assert!(
            check_vectors("v", &[64], 4)
                .unwrap_err()
                .contains("expected (4, D)")
        );
        assert!(check_vectors("v", &[3, 16], 4).is_err());
    }

    #[test]
    fn results_are_read_from_numpy_lists_and_numbers_and_bad_ones_named() {
        crate::interp::start_interpreter();
        Python::attach(|py| {
            if !crate::interp::test_numpy(py) {
                return;
            }
            let helpers = crate::interp::helpers(py).unwrap();
            let readers = Readers { helpers: &helpers };
            let code = c"{'scalars': {'loss': 0.5, 'n': 3}, 'scores': {'mse': [0.1, 0.2]}, \
                'images': {'rec': ([[[[2.0]]], [[[-1.0]]]], 1)}, 'vectors': {'z': [[1, 2, 3], [4, 5, 6]]}}";
            let result = py.eval(code, None, None).unwrap();
            let out = readers.report(&result, "eval", 2).unwrap();
            assert_eq!(out.scalars, vec![("loss".into(), 0.5), ("n".into(), 3.0)]);
            assert_eq!(out.scores, vec![("mse".into(), vec![0.1, 0.2])]);
            assert_eq!(
                out.images,
                vec![Grid {
                    name: "rec".into(),
                    shape: [2, 1, 1, 1],
                    data: vec![1.0, 0.0],
                    columns: 1
                }]
            );
            assert_eq!(
                out.vectors,
                vec![("z".into(), vec![1., 2., 3., 4., 5., 6.], 3)]
            );

            let bad = py
                .eval(c"{'scores': {'mse': [0.1, 0.2, 0.3]}}", None, None)
                .unwrap();
            let err = readers.report(&bad, "eval", 2).unwrap_err();
            assert!(err.contains("has shape (3,); expected 2 values"), "{err}");
            let bad = py.eval(c"{'score': {}}", None, None).unwrap();
            let err = readers.report(&bad, "eval", 2).unwrap_err();
            assert!(err.contains("the key \"score\""), "{err}");
            let bad = py
                .eval(c"{'scalars': {'loss': 'low'}}", None, None)
                .unwrap();
            let err = readers.report(&bad, "eval", 2).unwrap_err();
            assert!(err.contains("[\"loss\"]: not a number (TypeError"), "{err}");
            let bad = py.eval(c"0.5", None, None).unwrap();
            let err = readers.train(&bad).unwrap_err();
            assert!(
                err.contains("train_step returned a float, not a dict"),
                "{err}"
            );
            let ok = py.eval(c"{'loss': __import__('numpy').float32(0.25)}", None, None);
            let out = readers.train(&ok.unwrap()).unwrap();
            assert_eq!(out.scalars, vec![("loss".into(), 0.25)]);
        });
    }
}
