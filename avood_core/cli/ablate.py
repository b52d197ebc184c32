"""``avood ablate gates|classifiers|losses|fusion|table1``: the paper's ablation tables (docs/cli.md)."""

from __future__ import annotations

from typing import Optional

import typer

from avood_core.cli.jsonio import JSON_OPTION, emit, int_list, seeds_option, status
from avood_core.cli.options import QUIET_OPTION, ConfigOptions, Engine, announce, config_options, new_app
from avood_core.cli.sweep import ADDRESS_OPTION, ENGINE_OPTION, MAX_PARALLEL_OPTION

SEEDS_OPTION = seeds_option("the ablation once per seed, mean ± std per cell (with --max-parallel / --engine ray: "
                            "seeds side by side).")

ablate_app = new_app(
    "Rerun the paper's ablations: gates (Table 2), classifiers (Table 3), losses (supplement Table 1), "
    "fusion (Fig. 1: the fusion of each stage); and Table 1 (table1: CJME, AVGZSLNet, AVCA, AV-OOD in one harness)."
)

# The run options, with help texts that say what the rows of each table replace.
ablation_options = config_options(help={
    "preset": "Per-dataset paper hyperparameters (see 'avood presets').",
    "sets": "Override one value: KEY=VALUE, e.g. seed=3 or params.detector.binary.lr=0.001.",
    "detector": "OOD detector plugin name (rows of 'gates' replace it).",
    "seen": "Seen-classifier plugin name (rows of 'classifiers' replace it).",
    "unseen": "Unseen-classifier plugin name (rows of 'classifiers' replace it).",
})


def _ablation_command(name: str, doc: str) -> None:
    """Register ``avood ablate NAME``: stdout its markdown table, or with --json {"ablation", "run_dir", "table",
    "results"} (results = the run folder's results.json); the run folder line on stderr."""

    def command(opts: ConfigOptions, quiet: bool = QUIET_OPTION, as_json: bool = JSON_OPTION,
                seeds: Optional[list[str]] = SEEDS_OPTION, engine: Engine = ENGINE_OPTION,
                max_parallel: int = MAX_PARALLEL_OPTION, address: Optional[str] = ADDRESS_OPTION) -> None:
        from avood_core.config import finalize_config, resolve
        from avood_core.eval.ablate import run_ablation
        from avood_core.run.folder import OUTPUT_OPTION
        from avood_core.util.paths import check_output_dir

        data, recipe = opts.assemble_recipe()
        base = resolve(finalize_config(data))  # a bad config or output folder fails as one line, before the recipe line
        check_output_dir(base.output_dir, OUTPUT_OPTION)
        announce(recipe, quiet)
        if seeds:
            from avood_core.eval.ablate import run_ablation_seeds

            result = run_ablation_seeds(name, data, int_list(seeds, "--seeds"), engine, max_parallel, address,
                                        quiet, status)
        else:
            result = run_ablation(name, data, quiet=quiet, echo=status)
        if as_json:
            emit({"ablation": name, "run_dir": result.run_dir, "table": result.markdown, "results": result.results})
        else:
            typer.echo(result.markdown, nl=False)
        status(f"run folder: {result.run_dir}")

    command.__name__, command.__qualname__, command.__doc__ = name, name, doc
    ablate_app.command(name)(ablation_options(command))


for _name, _doc in (
    ("gates", "Table 2: calibrated stacking, binary and entropy gates over the same fitted classifiers "
              "(AUC, FPR and HM at TPR 60 %)."),
    ("classifiers", "Table 3: MLP & MLP, Embedding & Embedding, MLP & Embedding classifiers with one gate "
                    "(SC_acc, UC_acc, HM)."),
    ("losses", "Supplement Table 1: the unseen classifier's loss terms L+, L+ + L-trip/rec/reg, L+ + L- (UC_acc, HM)."),
    ("fusion", "Fig. 1's fusion axis: the paper's fusions, then each stage's fusion swapped (audio, video, mean, "
               "sum, gated, cross_attention; S, U, HM, ZSL, gate AUC)."),
    ("table1", "Table 1: CJME, AVGZSLNet, AVCA (calibrated stacking), AV-OOD and AV-OOD with each baseline "
               "(S, U, HM, ZSL; the paper's figures beside them)."),
):
    _ablation_command(_name, _doc)
