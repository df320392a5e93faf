//! Hyper-parameters across the bridge: the script's `GANTRY_PLUGIN["params"]` (Python
//! values) become the RON map `describe` reports, and the RON map the host passes to
//! `create` becomes Python values merged over those defaults.

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

/// A RON value as the plain Python value a script expects: numbers, bools, strings, lists,
/// dicts; `None` for RON's unit and `None`; `Some(x)` is `x`.
pub fn ron_to_py<'py>(py: Python<'py>, value: &ron::Value) -> PyResult<Bound<'py, PyAny>> {
    use ron::Number as N;
    use ron::Value as V;
    Ok(match value {
        V::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        V::Char(c) => PyString::new(py, c.encode_utf8(&mut [0; 4])).into_any(),
        V::String(s) => PyString::new(py, s).into_any(),
        V::Bytes(b) => PyBytes::new(py, b).into_any(),
        V::Unit | V::Option(None) => py.None().into_bound(py),
        V::Option(Some(inner)) => ron_to_py(py, inner)?,
        V::Seq(items) => {
            let items = items
                .iter()
                .map(|v| ron_to_py(py, v))
                .collect::<PyResult<Vec<_>>>()?;
            PyList::new(py, items)?.into_any()
        }
        V::Map(map) => {
            let dict = PyDict::new(py);
            for (k, v) in map.iter() {
                dict.set_item(ron_to_py(py, k)?, ron_to_py(py, v)?)?;
            }
            dict.into_any()
        }
        V::Number(n) => match *n {
            N::I8(v) => v.into_pyobject(py)?.into_any(),
            N::I16(v) => v.into_pyobject(py)?.into_any(),
            N::I32(v) => v.into_pyobject(py)?.into_any(),
            N::I64(v) => v.into_pyobject(py)?.into_any(),
            N::U8(v) => v.into_pyobject(py)?.into_any(),
            N::U16(v) => v.into_pyobject(py)?.into_any(),
            N::U32(v) => v.into_pyobject(py)?.into_any(),
            N::U64(v) => v.into_pyobject(py)?.into_any(),
            N::F32(v) => PyFloat::new(py, f64::from(v.get())).into_any(),
            N::F64(v) => PyFloat::new(py, v.get()).into_any(),
            // 128-bit integers, when ron is built with them.
            other => PyFloat::new(py, other.into_f64()).into_any(),
        },
    })
}

/// A Python value as RON, for the defaults `describe` reports; `at` names the value in
/// errors (`params["lr"]`).
pub fn py_to_ron(obj: &Bound<'_, PyAny>, at: &str) -> Result<ron::Value, String> {
    use ron::Value as V;
    // bool before int: Python's bool is an int.
    if obj.is_instance_of::<PyBool>() {
        return Ok(V::Bool(obj.is_truthy().map_err(|e| e.to_string())?));
    }
    if obj.is_instance_of::<PyInt>() {
        if let Ok(v) = obj.extract::<i64>() {
            return Ok(V::from(v));
        }
        if let Ok(v) = obj.extract::<u64>() {
            return Ok(V::from(v));
        }
        return Err(format!("{at}: the integer {obj} does not fit in 64 bits"));
    }
    if obj.is_instance_of::<PyFloat>() {
        return Ok(V::from(obj.extract::<f64>().map_err(|e| e.to_string())?));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(V::String(s.to_str().map_err(|e| e.to_string())?.to_owned()));
    }
    if obj.is_none() {
        return Ok(V::Option(None));
    }
    if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
        let mut items = Vec::new();
        for (i, item) in obj.try_iter().map_err(|e| e.to_string())?.enumerate() {
            let item = item.map_err(|e| e.to_string())?;
            items.push(py_to_ron(&item, &format!("{at}[{i}]"))?);
        }
        return Ok(V::Seq(items));
    }
    if let Ok(dict) = obj.cast::<PyDict>() {
        let mut map = ron::Map::new();
        for (k, v) in dict.iter() {
            let key = py_to_ron(&k, &format!("{at} key {k}"))?;
            map.insert(key, py_to_ron(&v, &format!("{at}[{k:?}]"))?);
        }
        return Ok(V::Map(map));
    }
    // numpy scalars (numpy.float32(0.1), numpy.int64(3)) become Python numbers.
    if obj.hasattr("item").unwrap_or(false)
        && let Ok(item) = obj.call_method0("item")
        && !item.is(obj)
        && (item.is_instance_of::<PyInt>() || item.is_instance_of::<PyFloat>())
    {
        return py_to_ron(&item, at);
    }
    let type_name = obj
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into());
    Err(format!(
        "{at}: a {type_name} cannot be a hyper-parameter (use numbers, bools, strings, \
         lists and dicts)"
    ))
}

/// The RON map text `describe` reports for the script's default params.
pub fn defaults_text(params: &Bound<'_, PyDict>) -> Result<String, String> {
    let mut map = ron::Map::new();
    for (k, v) in params.iter() {
        let Ok(key) = k.extract::<String>() else {
            return Err(format!(
                "GANTRY_PLUGIN[\"params\"]: the key {k} is not a string"
            ));
        };
        let value = py_to_ron(&v, &format!("GANTRY_PLUGIN[\"params\"][{key:?}]"))?;
        map.insert(key, value);
    }
    ron::ser::to_string_pretty(&map, ron::ser::PrettyConfig::default()).map_err(|e| e.to_string())
}

/// The `(key, value)` pairs of the params text `create` receives: a RON map with string
/// keys; empty text and `()` are no params.
pub fn parse_params(text: &str) -> Result<Vec<(String, ron::Value)>, String> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let value: ron::Value =
        ron::from_str(text).map_err(|e| format!("params are not a RON map: {e}"))?;
    match value {
        ron::Value::Unit => Ok(Vec::new()),
        ron::Value::Map(map) => map
            .into_iter()
            .map(|(k, v)| match k {
                ron::Value::String(k) => Ok((k, v)),
                other => Err(format!("params: the key {other:?} is not a string")),
            })
            .collect(),
        other => Err(format!("params are not a RON map: {other:?}")),
    }
}

/// The script's defaults with `params` (the run's RON map) merged over them, as a fresh
/// dict. A key the defaults do not have is refused, as Rust plugins refuse unknown fields.
pub fn merge_params<'py>(
    defaults: &Bound<'py, PyDict>,
    params: &str,
) -> Result<Bound<'py, PyDict>, String> {
    let py = defaults.py();
    let merged = defaults.copy().map_err(|e| e.to_string())?;
    for (key, value) in parse_params(params)? {
        if !defaults.contains(&key).unwrap_or(false) {
            let known: Vec<String> = defaults.keys().iter().map(|k| k.to_string()).collect();
            return Err(format!(
                "params: unknown key {key:?}; the script's GANTRY_PLUGIN[\"params\"] has {}",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ));
        }
        let value = ron_to_py(py, &value).map_err(|e| format!("params[{key:?}]: {e}"))?;
        merged.set_item(key, value).map_err(|e| e.to_string())?;
    }
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn py_eval<'py>(py: Python<'py>, code: &str) -> Bound<'py, PyAny> {
        let code = std::ffi::CString::new(code).unwrap();
        py.eval(&code, None, None).unwrap()
    }

    #[test]
    fn ron_values_become_plain_python_values() {
        crate::interp::start_interpreter();
        Python::attach(|py| {
            let value: ron::Value = ron::from_str(
                "{\"latent\": 16, \"lr\": 0.5, \"on\": true, \"name\": \"x\", \
                 \"sizes\": [1, -2], \"nested\": {\"k\": Some(3)}, \"none\": None, \"u\": ()}",
            )
            .unwrap();
            let obj = ron_to_py(py, &value).unwrap();
            let expected = py_eval(
                py,
                "{'latent': 16, 'lr': 0.5, 'on': True, 'name': 'x', 'sizes': [1, -2], \
                 'nested': {'k': 3}, 'none': None, 'u': None}",
            );
            assert!(obj.eq(&expected).unwrap(), "{obj}");
            // Types, not only equality (True == 1 in Python).
            let dict = obj.cast::<PyDict>().unwrap();
            let on = dict.get_item("on").unwrap().unwrap();
            assert!(on.is_instance_of::<PyBool>());
            let latent = dict.get_item("latent").unwrap().unwrap();
            assert!(latent.is_instance_of::<PyInt>() && !latent.is_instance_of::<PyBool>());
            assert!(
                dict.get_item("lr")
                    .unwrap()
                    .unwrap()
                    .is_instance_of::<PyFloat>()
            );
        });
    }

    #[test]
    fn python_defaults_become_a_ron_map_and_merge_with_run_params() {
        crate::interp::start_interpreter();
        Python::attach(|py| {
            let defaults = py_eval(
                py,
                "{'latent': 16, 'lr': 1e-3, 'flag': False, 'act': 'relu', 'sizes': (8, 16), \
                 'extra': None, 'deep': {'a': [1.5]}}",
            );
            let defaults = defaults.cast::<PyDict>().unwrap();
            let text = defaults_text(defaults).unwrap();
            let back: ron::Value = ron::from_str(&text).unwrap();
            let expected: ron::Value = ron::from_str(
                "{\"latent\": 16, \"lr\": 0.001, \"flag\": false, \"act\": \"relu\", \
                 \"sizes\": [8, 16], \"extra\": None, \"deep\": {\"a\": [1.5]}}",
            )
            .unwrap();
            assert_eq!(back, expected, "{text}");

            let merged = merge_params(defaults, "{\"latent\":64,\"flag\":true}").unwrap();
            let want = py_eval(
                py,
                "{'latent': 64, 'lr': 1e-3, 'flag': True, 'act': 'relu', 'sizes': (8, 16), \
                 'extra': None, 'deep': {'a': [1.5]}}",
            );
            assert!(merged.eq(&want).unwrap(), "{merged}");
            // The defaults are not modified.
            assert_eq!(
                defaults
                    .get_item("latent")
                    .unwrap()
                    .unwrap()
                    .extract::<i64>()
                    .unwrap(),
                16
            );
            assert!(merge_params(defaults, "").unwrap().eq(defaults).unwrap());
            assert!(merge_params(defaults, "()").unwrap().eq(defaults).unwrap());

            let err = merge_params(defaults, "{\"latnet\": 3}").unwrap_err();
            assert!(
                err.contains("unknown key \"latnet\"") && err.contains("latent"),
                "{err}"
            );
            let err = merge_params(defaults, "[1, 2]").unwrap_err();
            assert!(err.contains("not a RON map"), "{err}");
        });
    }

    #[test]
    fn values_ron_cannot_hold_are_named() {
        crate::interp::start_interpreter();
        Python::attach(|py| {
            let defaults = py_eval(py, "{'ok': 1, 'bad': {'inner': {1, 2}}}");
            let err = defaults_text(defaults.cast::<PyDict>().unwrap()).unwrap_err();
            assert!(
                err.starts_with("GANTRY_PLUGIN[\"params\"][\"bad\"]['inner']: a set"),
                "{err}"
            );
            let big = py_eval(py, "{'n': 2**70}");
            let err = defaults_text(big.cast::<PyDict>().unwrap()).unwrap_err();
            assert!(err.contains("does not fit in 64 bits"), "{err}");
        });
    }
}
