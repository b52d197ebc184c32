"""The component boundary: every call the pipeline makes into a component, and checks on what comes back.

Any component is replaceable (paper Fig. 2), so each output is checked once per call for its type, shape,
dtype, finiteness and class ids; a failure or an exception of the plugin's code is one
:class:`~avood_core.errors.ComponentError` line naming the plugin and the method. The conformance kit
(avood_core.testing.checks) runs these same functions.
"""

from __future__ import annotations

import contextlib
import math
import os
import traceback
from typing import Any, Iterator, Mapping, NoReturn

import torch
from torch import Tensor

from avood_core.errors import AvoodError, CallbackError, ComponentError, Interrupted, NotFittedError, reraise_interrupt
from avood_core.protocols import OODDetector, UnseenClassifier
from avood_core.task import AVSamples

_SHOWN = 5  # ids or keys quoted in a message


def who(component: Any) -> str:
    """``"detector 'entropy'"``: the component's kind and the name its plugin registered it by."""
    label = str(getattr(component, "label", "") or "")
    kind = getattr(component, "kind", "") or "component"
    name = label.split(" ", 1)[1] if " " in label else type(component).__name__
    return f"{kind} '{name}'"


def refuse(component: Any, method: str, problem: str, fix: str) -> NoReturn:
    """Raise the one-line error: ``<kind> '<name>' <method> <problem>: <fix>``."""
    raise ComponentError(f"{who(component)} {method} {problem}: {fix}")


@contextlib.contextmanager
def calling(component: Any, method: str) -> Iterator[None]:
    """Run plugin code; what it raises becomes one :class:`ComponentError` naming the plugin and ``method``
    (an :class:`AvoodError` keeps its class; ``KeyboardInterrupt`` passes; ``AVOOD_DEBUG=1`` adds the traceback)."""
    try:
        yield
    except Interrupted:
        raise
    except AvoodError as exc:
        name = who(component).split(" ", 1)[1].strip("'")
        if not isinstance(exc, (NotFittedError, CallbackError)) and name not in str(exc) and len(exc.args) == 1:
            exc.args = (f"{who(component)} {method}: {exc}",)
        raise
    except SystemExit as exc:
        raise ComponentError(f"{who(component)} {method} called sys.exit({exc.code!r}): a component must raise an "
                             f"exception, not end the process; fix the plugin or report it to its authors") from None
    except BaseException as exc:  # noqa: BLE001 - a third party's code may raise anything
        reraise_interrupt(exc)
        detail = " ".join(f"{type(exc).__name__}: {exc}".split())
        detail = detail if len(detail) <= 300 else detail[:297] + "..."
        hint = ("\n" + traceback.format_exc()) if os.environ.get("AVOOD_DEBUG") else " (AVOOD_DEBUG=1 shows the traceback)"
        fix = ("lower its batch size or use a device with more memory"
               if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError"
               else "fix the plugin or report it to its authors")
        raise ComponentError(f"{who(component)} {method} raised {detail}; {fix}{hint}") from None


# -- checks on returned values (shared with the conformance kit) -------------------------------

def as_tensor(component: Any, method: str, value: Any) -> Tensor:
    """``value`` detached on the CPU, or refused when it is not a torch tensor."""
    if not isinstance(value, Tensor):
        refuse(component, method, f"returned a {type(value).__name__}, not a torch.Tensor", "return a tensor")
    return value.detach().cpu()


def check_shape(component: Any, method: str, t: Tensor, shape: tuple[int, ...], what: str) -> None:
    if tuple(t.shape) != shape:
        refuse(component, method, f"returned shape {tuple(t.shape)} for {shape[0]} samples", f"return {what}, shape {shape}")


def check_finite(component: Any, method: str, t: Tensor, why: str) -> None:
    if t.numel() and not bool(torch.isfinite(t).all()):
        counts = [(int(torch.isnan(t).sum()), "NaN"), (int((t == math.inf).sum()), "+inf"),
                  (int((t == -math.inf).sum()), "-inf")]
        bad = ", ".join(f"{n} {label}" for n, label in counts if n)
        refuse(component, method, f"returned {bad} values of {t.numel()}", why)


FLOATS = {  # the float outputs (detector, unseen classifier): what each holds, why it must be finite
    "score": ("one OOD score per sample", "an OOD score must be finite (higher = more likely unseen)"),
    "distances": ("one distance per sample and candidate",
                  "distances must be finite (the nearest candidate is the prediction)"),
}


def check_floats(component: Any, method: str, value: Any, shape: tuple[int, ...], output: str) -> Tensor:
    """A finite floating-point tensor of ``shape``: ``output``, a row of :data:`FLOATS`, as ``method`` returned it."""
    what, why = FLOATS[output]
    t = as_tensor(component, method, value)
    if not t.is_floating_point():
        refuse(component, method, f"returned dtype {t.dtype}", f"return {what} as a floating-point tensor")
    check_shape(component, method, t, shape, what)
    check_finite(component, method, t, why)
    return t


def check_ids(component: Any, method: str, value: Any, n: int, allowed: Tensor, among: str) -> Tensor:
    """``n`` integer class ids (as int64), each in ``allowed`` (global ids; ``among`` names that set)."""
    t = as_tensor(component, method, value)
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        refuse(component, method, f"returned {t.dtype} ids", "return integer class ids (torch.long)")
    check_shape(component, method, t, (n,), "one class id per sample")
    t = t.long()
    outside = ~torch.isin(t, allowed.cpu().long())
    if bool(outside.any()):
        bad = torch.unique(t[outside]).tolist()
        listed = [str(v[:limit])[:-1] + (", ...]" if len(v) > limit else "]")
                  for v, limit in ((bad, _SHOWN), (sorted(allowed.tolist()), 10))]
        refuse(component, method, f"returned {int(outside.sum())} ids outside {among} (e.g. {listed[0]}; "
               f"valid: {listed[1]})", "return global class ids (rows of the text matrix)")
    return t


def check_is_seen(component: Any, value: Any, n: int, method: str = "is_seen()") -> Tensor:
    """The gate's routing: bool (N,)."""
    t = as_tensor(component, method, value)
    if t.dtype != torch.bool:
        refuse(component, method, f"returned dtype {t.dtype}", "return a bool tensor, True where a clip is seen")
    check_shape(component, method, t, (n,), "one bool per sample")
    return t


def check_threshold(component: Any) -> float:
    """The detector's threshold as a finite float."""
    value = getattr(component, "threshold", None)
    try:
        number = float(value)
    except (TypeError, ValueError):
        refuse(component, "threshold", f"is a {type(value).__name__}", "fit() must set self.threshold to a number")
    if not math.isfinite(number):
        refuse(component, "threshold", f"is {number}", "fit() must set a finite self.threshold (score < threshold "
               "routes a clip to the seen classifier)")
    return number


def check_generated(component: Any, audio: Any, video: Any, labels: Any, class_ids: Tensor, n_per_class: int,
                    dims: Mapping[str, int], method: str = "generate()") -> None:
    """``n_per_class`` finite float32 samples of each id in ``class_ids``, of the task's feature ``dims``
    (or 0 columns of the modality a one-modality generator does not model, avood_core.fusion)."""
    rows = len(class_ids) * int(n_per_class)
    widths = []
    for name, value in (("audio", audio), ("video", video)):
        t = as_tensor(component, method, value)
        want = (rows, dims.get(name, t.shape[-1] if t.ndim else 0))
        if t.ndim != 2 or t.shape[0] != rows or t.shape[1] not in (want[1], 0):
            refuse(component, method, f"returned {name} of shape {tuple(t.shape)}",
                   f"return n_per_class={n_per_class} samples of each of the {len(class_ids)} classes, {name} {want}")
        widths.append(t.shape[1])
        if t.dtype != torch.float32:
            refuse(component, method, f"returned {name} of dtype {t.dtype}", "features must be float32")
        check_finite(component, method, t, f"generated {name} features must be finite")
    if rows and not any(widths):
        refuse(component, method, "returned 0 audio and 0 video columns", f"return audio {(rows, dims.get('audio'))} "
               f"and/or video {(rows, dims.get('video'))}")
    ids = check_ids(component, method, labels, rows, class_ids, "the requested classes")
    counts = (ids.unsqueeze(1) == class_ids.cpu().long().unsqueeze(0)).sum(dim=0)
    if bool((counts != n_per_class).any()):
        per = {c: n for c, n in zip(class_ids.tolist(), counts.tolist()) if n != n_per_class}
        refuse(component, method, f"returned per-class counts {dict(list(per.items())[:_SHOWN])}",
               f"return n_per_class={n_per_class} samples of each requested class")


def check_samples(component: Any, value: Any, method: str = "generate()") -> AVSamples:
    """``value`` when it is an :class:`AVSamples`."""
    if not isinstance(value, AVSamples):
        refuse(component, method, f"returned a {type(value).__name__}", "return avood_core.task.AVSamples")
    return value


def _json_value(component: Any, method: str, value: Any, path: str) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):  # NumPy array or scalar: lists, numbers
        return _json_value(component, method, value.tolist(), path)
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                refuse(component, method, f"has key {key!r} at {path or 'the top'}", "use string keys")
            out[key] = _json_value(component, method, item, f"{path}.{key}" if path else key)
        return out
    if isinstance(value, (list, tuple)):
        return [_json_value(component, method, item, f"{path}[{i}]") for i, item in enumerate(value)]
    refuse(component, method, f"holds a {type(value).__module__}.{type(value).__name__} at '{path}'",
           "learned scalars are numbers, strings, lists or dicts (tensors go in state_tensors())")


def check_scalars(component: Any, value: Any, method: str = "state_scalars()") -> dict[str, Any]:
    """The learned scalars as plain JSON values (NumPy scalars as Python numbers; NaN is refused by the store)."""
    if not isinstance(value, Mapping):
        refuse(component, method, f"returned a {type(value).__name__}", "return a dict of learned scalars")
    return _json_value(component, method, value, "")


def check_selected(component: Any, value: Any, method: str = "selected_params()") -> dict[str, Any]:
    """The params selected in stage 1: a dict by param name (the params' model validates the values)."""
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        refuse(component, method, f"returned a {type(value).__name__}", "return a dict of param names to values")
    return dict(value)


# -- the calls the pipeline makes -----------------------------------------------------------------

def _call(component: Any, method: str, *args: Any) -> Any:
    """``component.<method>(*args)`` inside :func:`calling`."""
    with calling(component, f"{method}()"):
        return getattr(component, method)(*args)


def fit(component: Any, args: tuple) -> None:
    """``component.fit(*args)`` (the last argument is the FitContext); a gate's threshold is checked after it."""
    _call(component, "fit", *args)
    if isinstance(component, OODDetector):
        check_threshold(component)


def generate(component: Any, class_ids: Tensor, text: Tensor, n_per_class: int, dims: Mapping[str, int]) -> AVSamples:
    out = check_samples(component, _call(component, "generate", class_ids, text, n_per_class))
    check_generated(component, out.audio, out.video, out.labels, class_ids.cpu(), n_per_class, dims)
    return out


def score(detector: Any, samples: AVSamples) -> Tensor:
    return check_floats(detector, "score()", _call(detector, "score", samples), (len(samples),), "score")


def is_seen(detector: Any, samples: AVSamples, scores: Tensor) -> Tensor:
    """Routing: the detector's own ``is_seen`` when it overrides it, else its ``seen_by_score`` on ``scores``."""
    check_threshold(detector)
    by_score = type(detector).is_seen is OODDetector.is_seen
    method = "seen_by_score()" if by_score else "is_seen()"
    with calling(detector, method):
        out = detector.seen_by_score(scores) if by_score else detector.is_seen(samples)
    return check_is_seen(detector, out, len(samples), method)


def predict_seen(seen: Any, samples: AVSamples, seen_classes: Tensor) -> Tensor:
    return check_ids(seen, "predict()", _call(seen, "predict", samples), len(samples), seen_classes,
                     "the task's seen classes")


def predict_unseen(unseen: Any, samples: AVSamples, candidates: Tensor, text: Tensor) -> Tensor:
    """Ids among ``candidates``; a classifier keeping the protocol's ``predict`` is read through its
    ``distances`` (checked), the nearest candidate winning."""
    if type(unseen).predict is UnseenClassifier.predict:
        d = check_floats(unseen, "distances()", _call(unseen, "distances", samples, candidates, text),
                         (len(samples), len(candidates)), "distances")
        return candidates.cpu().long()[d.argmin(dim=1)] if len(samples) else torch.empty(0, dtype=torch.long)
    out = _call(unseen, "predict", samples, candidates, text)
    return check_ids(unseen, "predict()", out, len(samples), candidates, "the candidates")


def state_scalars(component: Any) -> dict[str, Any]:
    return check_scalars(component, _call(component, "state_scalars"))


def state_tensors(component: Any) -> dict[str, Tensor]:
    """``component.state_tensors()`` checked: a mapping of names to tensors (what is saved and compared on load)."""
    out = _call(component, "state_tensors")
    if not isinstance(out, Mapping):
        refuse(component, "state_tensors()", f"returned a {type(out).__name__}", "return a dict of name -> torch.Tensor")
    odd = [f"{k!r}: {type(v).__name__}" for k, v in out.items() if not isinstance(k, str) or not isinstance(v, Tensor)]
    if odd:
        refuse(component, "state_tensors()", f"returned non-tensor entries ({', '.join(odd[:3])})",
               "return a dict of name -> torch.Tensor")
    return dict(out)


def selected_params(component: Any) -> dict[str, Any]:
    return check_selected(component, _call(component, "selected_params"))


def selects_on_val(component: Any) -> bool:
    return bool(_call(component, "selects_on_val"))


def bind_fitted(component: Any, fitted: Mapping[str, Any]) -> None:
    if getattr(component, "bind_fitted", None) is not None:
        _call(component, "bind_fitted", dict(fitted))
