"""Helpers of gantry's Python bridge (plugins/python), run inside the embedded interpreter.

The Rust side compiles this as the module `_gantry_bridge` and calls these functions; they
hold the parts that are plain Python: search paths, importing the user's script, turning
array-likes into float32 bytes, formatting exceptions.
"""

import importlib.util
import os
import site
import sys
import traceback


def setup_paths(script_dir, venv_dir, site_dir, drop_system):
    """Puts a virtualenv's site-packages (with its .pth files) ahead of the interpreter's
    own, drops those when the venv excludes system site-packages, sets sys.prefix and
    sys.executable as the venv's own interpreter has them, and puts the script's folder
    first (so it can import its sibling modules)."""
    if site_dir is not None:
        before = list(sys.path)
        site.addsitedir(site_dir)
        added = [p for p in sys.path if p not in before]
        system = set()
        if drop_system:
            system.update(site.getsitepackages())
            system.add(site.getusersitepackages())
        kept = [p for p in before if p not in system]
        sys.path[:] = added + kept
    if venv_dir is not None:
        sys.prefix = sys.exec_prefix = venv_dir
        python = os.path.join(venv_dir, "bin", "python")
        if os.path.exists(python):
            # What subprocess and multiprocessing's spawn start: not the host's binary.
            sys.executable = python
    if script_dir in sys.path:
        sys.path.remove(script_dir)
    sys.path.insert(0, script_dir)


def load_script(path, module_name):
    """Imports the file at `path` as module `module_name` (registered in sys.modules, so
    pickling and dataclasses in the script work)."""
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module


def as_f32(obj):
    """(shape, bytes) of a C-contiguous float32 copy of a numpy array, a torch tensor (on
    any device, any dtype) or nested lists of numbers."""
    import numpy

    if hasattr(obj, "detach") and hasattr(obj, "cpu"):
        obj = obj.detach().cpu().float().numpy()
    arr = numpy.asarray(obj, dtype=numpy.float32)
    return tuple(arr.shape), numpy.ascontiguousarray(arr).tobytes()


def as_float(obj):
    """A Python float from a number, a numpy scalar or one-element array, or a one-element
    torch tensor; strings are refused rather than parsed."""
    if isinstance(obj, (str, bytes)):
        raise TypeError(f"a {type(obj).__name__} is not a number")
    if hasattr(obj, "item") and not isinstance(obj, (int, float)):
        obj = obj.item()
    return float(obj)


def format_exception(exc, tb):
    """The traceback of `exc` as Python prints it (`tb` given apart: before 3.12 an error
    fetched from C need not carry its traceback in `__traceback__`)."""
    return "".join(traceback.format_exception(type(exc), exc, tb or exc.__traceback__))
