"""Components that break their protocol one way each, on top of the kit's stand-ins (tests/faults).

Each is registered under the name the fault table uses; the classes load lazily.
"""

from avood_core import hookimpl

FAULTY = {
    "generator": ("standin", "nan_features", "short_rows", "wrong_dim", "wrong_labels", "uneven_counts", "not_samples"),
    "detector": ("standin", "nan_score", "half_inf_score", "short_score", "wide_score", "nan_threshold", "int_is_seen",
                 "numpy_scalars", "nan_scalars", "str_scalars", "object_scalars", "fit_value_error",
                 "fit_exit0", "fit_exit3", "score_raises"),
    "seen": ("standin", "huge_id", "float_ids", "short_pred", "fit_value_error", "fit_exit0", "list_pred", "list_selection"),
    "unseen": ("standin", "short_pred", "outside_ids", "nan_distances", "wide_distances", "fit_value_error", "fit_exit0"),
}


@hookimpl
def register_components(register):
    for kind, names in FAULTY.items():
        for name in names:
            register(kind, name, f"avood_faulty.components:{kind.capitalize()}_{name}")
    register("detector", "exits_on_import", "avood_faulty.exits_at_import:Detector")  # its module exits
