"""The report folder: every linked file is there, the page is self-contained, the summary follows the numbers.

(Same inputs giving the same bytes is checked end to end in test_report_cli.py.)
"""

import re
from pathlib import Path

import pytest

from attentionlite.analysis.codesign import CodesignReport, ReportSettings
from attentionlite.analysis.compare import GROUPS
from attentionlite.analysis.explore import Exploration, Search, Space, parse_constraint, parse_objectives
from attentionlite.analysis.models import ModelEntry
from attentionlite.analysis.parallelism import parallelism_study
from attentionlite.analysis.waterfall import LEVELS
from attentionlite.reports.document import linked_paths
from attentionlite.reports.render import render_report, report_blocks
from attentionlite.simulator.accelerator.hardware import load_hardware
from attentionlite.simulator.cpu.config import load_cpu
from attentionlite.simulator.graph.graph import OpGraph
from attentionlite.simulator.graph.ops import Gemm, Op, OpKind
from attentionlite.simulator.graph.targets import Target, TargetKind

MODELS = ("teacher", "hybrid", "homog")
HARDWARE = {"name": "tiny-hw", "cores": 2, "clock_mhz": 1000.0,
            "array": {"rows": 8, "cols": 8, "dataflow": "os", "overlap_folds": True, "fuse_post_ops": False},
            "vector": {"overlaps_array": False}, "attention": {"fused": True},
            "dram": {"bandwidth_gb_s": 10.0}, "sparsity": {"mode": "none"}}


def _sweep_row(model: str, side: int, dataflow: str) -> dict:
    """Latency falls with the array; the homogeneous student is fastest, the teacher slowest."""
    speed = {"teacher": 1.0, "hybrid": 2.0, "homog": 3.0}[model] * (1.1 if dataflow == "ws" else 1.0)
    latency = 1e-3 * 64 / (side * speed)
    energy = 1e-4 * (1 + side / 64) / speed
    return {"model": model, "array_rows": side, "array_cols": side, "dataflow": dataflow, "pes": 2 * side * side,
            "area_mm2": 1.0 + 2e-3 * side * side,
            "cycles": int(latency * 1e9), "latency_s": latency, "throughput": 1 / latency, "energy_per_image_j": energy,
            "edp_per_image": energy * latency, "dram_bytes_per_image": 1000, "utilisation": 8 / side,
            "stall_share": 0.1}


def _comparison() -> list[dict]:
    rows = [_sweep_row(model, 8, "os") for model in MODELS]
    teacher = rows[0]
    return [{**r, "cpu_latency_s": 0.01, "speedup_vs_cpu": 0.01 / r["latency_s"],
             "speedup_vs_teacher": teacher["latency_s"] / r["latency_s"],
             "energy_saving_vs_teacher": teacher["energy_per_image_j"] / r["energy_per_image_j"],
             "edp_gain_vs_teacher": teacher["edp_per_image"] / r["edp_per_image"]} for r in rows]


def _breakdown() -> list[dict]:
    return [{"model": m, "group": g, "busy_cycles": 10 * (i + 1), "share": (i + 1) / 21, "macs": 100,
             "utilisation": 0.5} for m in MODELS for i, g in enumerate(GROUPS)]


def _waterfall() -> list[dict]:
    """hybrid: 4x fewer MACs, half of it lost to fill and drain, 2x faster; homog: 3x fewer, 3x faster."""
    steps = dict.fromkeys(LEVELS[1:], 1.0)
    return [{"model": "hybrid", "mac_ratio": 4.0, **steps, "fill and drain": 0.5, "latency_ratio": 2.0},
            {"model": "homog", "mac_ratio": 3.0, **steps, "latency_ratio": 3.0}]


def _cpu_ops() -> dict[str, list[dict]]:
    return {m: [{"name": "conv1", "kind": "conv", "seconds": 0.004, "bound": "compute", "work": 2e8,
                 "arithmetic_intensity": 30.0},
                {"name": "relu1", "kind": "act", "seconds": 0.006, "bound": "dram", "work": 1e5,
                 "arithmetic_intensity": 0.1}] for m in MODELS}


def _gemm_chain(length: int) -> OpGraph:
    """``length`` 1x1 convolutions in a row: a stand-in network for the parallelism section."""
    shape = (1, 16, 8, 8)
    graph = OpGraph({"batch": 1})
    for index in range(length):
        op = Op(f"conv{index}", OpKind.CONV, (shape,), shape, macs=64 * 256, gemm=Gemm(m=64, n=16, k=16),
                weight_params=256, weight_nonzero=256)
        graph.add_op(op, [(f"conv{index - 1}", shape)] if index else [])
    return graph


def tiny_report() -> CodesignReport:
    entries = [ModelEntry(label=m, target=m, role="teacher" if m == "teacher" else "student",
                          masks="dense" if m == "teacher" else "initial masks, 10% density",
                          weights=1000, nonzero_weights=1000 if m == "teacher" else 100, dense_macs=10**6)
               for m in MODELS]
    settings = ReportSettings(targets=tuple(Target(m, TargetKind.MODEL) for m in MODELS),
                              hardware=load_hardware("paa-default"), cpu=load_cpu("cpu-host-default"),
                              arrays=(8, 16, 32), dataflows=("os", "ws"), sparsity="none")
    return CodesignReport(
        settings=settings, models=entries, hardware_config=HARDWARE, cpu_name="tiny-cpu", cpu_config={"cores": 1},
        comparison=_comparison(), breakdown=_breakdown(), waterfall=_waterfall(),
        sweep=[_sweep_row(m, s, d) for m in MODELS for s in (8, 16, 32) for d in ("os", "ws")],
        cpu_ops=_cpu_ops(), cpu_peak_flops=1e11, cpu_bandwidths={"L1": 1e12, "DRAM": 1e10},
        parallelism=parallelism_study({m: _gemm_chain(3 + i) for i, m in enumerate(MODELS)},
                                      load_hardware("paa-default"), (1, 2), ("data", "pipeline")),
        provenance={"package_version": "0.1.0", "git_revision": "abc"},
    )


def _render(report: CodesignReport, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report") / "report"
    render_report(report, out, generated="2026-01-01 00:00:00 UTC")
    return out


def _every_link_resolves(report: CodesignReport, designs: int, folder: Path) -> None:
    """Every path the blocks link, and every href, src and Markdown link of both pages, is a file in ``folder``."""
    for path in linked_paths(report_blocks(report, [True] * designs, "now")):
        assert (folder / path).is_file(), path
    for page in ("index.html", "report.md"):
        text = (folder / page).read_text()
        for link in re.findall(r'(?:href|src)="([^"#:]+)"|\]\(([^)#:]+)\)', text):
            assert (folder / (link[0] or link[1])).is_file(), link


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    return _render(tiny_report(), tmp_path_factory)


def test_every_linked_file_is_in_the_folder(rendered):
    _every_link_resolves(tiny_report(), 18, rendered)


def test_index_html_needs_nothing_beside_it(rendered):
    page = (rendered / "index.html").read_text()
    assert page.count("data:image/png;base64,") == 10
    assert not re.search(r'<img[^>]+src="(?!data:)', page)
    assert "<script" not in page and "<link" not in page


def test_summary_is_generated_from_the_numbers(rendered):
    text = (rendered / "report.md").read_text()
    # homog: 3x the teacher's speed at the reference point, by construction of _sweep_row
    assert "`homog` takes" in text and "3x faster" in text
    assert "Lowest latency by array size (best dataflow each): 8x8 to 32x32: `homog`." in text
    assert "**Accuracy is not known** for `teacher`, `hybrid`, `homog`" in text
    assert ("`hybrid` has 4x fewer MACs than the teacher and is 2x faster; the largest loss is fill and drain "
            "(0.5x); `homog` has 3x fewer MACs than the teacher and is 3x faster.") in text
    assert "| `hybrid` | 4x | 1 | 1 | 0.5 | 1 | 1 | 1 | 2x |" in text


def test_a_failed_render_leaves_no_folder(tmp_path):
    broken = tiny_report()
    broken.sweep = [dict(row, latency_s=None) for row in broken.sweep]
    with pytest.raises(TypeError):
        render_report(broken, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_parallelism_section_and_its_files(rendered):
    markdown = (rendered / "report.md").read_text()
    for heading in ("## Parallelism", "### Pipeline balance", "### Verdict"):
        assert heading in markdown
    assert "figures/scaling.png" in markdown and "figures/stages.png" in markdown
    scaling = (rendered / "scaling.csv").read_text().splitlines()
    assert len(scaling) == 1 + len(MODELS) * 2 * 2  # header + models x schedules x core counts
    balance = (rendered / "pipeline_balance.csv").read_text().splitlines()
    assert len(balance) == 1 + len(MODELS)  # one stage count above one core
    # The stand-in networks have no attention, so the claim cannot be judged, and the report says so.
    assert "needs a homogeneous and a hybrid student" in markdown


def test_a_study_on_one_core_says_there_is_no_pipeline_and_draws_no_stage_figure(tmp_path):
    report = tiny_report()
    report.parallelism = parallelism_study({m: _gemm_chain(3) for m in MODELS}, load_hardware("paa-default"),
                                           (1,), ("data",))
    render_report(report, tmp_path / "out", generated="2026-01-01 00:00:00 UTC")
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert "Not studied: one core is one stage, and the study has no core count above one" in markdown
    assert "stages.png" not in markdown and not (tmp_path / "out" / "figures" / "stages.png").exists()


def _trial(model: str, trial: int, side: int, cores: int, feasible: bool = True) -> dict:
    """A trial's row: the sweep's row for (side x side, os) with a core count, as explore writes it."""
    row = {"model": model, "trial": trial, **_sweep_row(model, side, "os"), "cores": cores, "buildable": True,
           "feasible": feasible}
    del row["dataflow"]  # not a knob of this space
    return row


def explored_report() -> CodesignReport:
    """The tiny report, its grid replaced by a search of arrays x cores: four trials per model, the third a
    repeat of the first, the last infeasible (outside the constraint)."""
    space = Space({"array": [(8, 8), (16, 16), (32, 32)], "cores": [1, 2]})
    search = Search(space, trials=4, objectives=tuple(parse_objectives(["latency", "energy"])),
                    constraints=(parse_constraint("area_mm2<=2"),))
    trials = [row for m in MODELS for row in (_trial(m, 0, 16, 1), _trial(m, 1, 8, 2), _trial(m, 2, 16, 1),
                                              _trial(m, 3, 32, 1, feasible=False))]
    # latency falls with the array and energy rises with it: 16x16 and 8x8 are both on every model's front
    front = [row for row in trials if row["trial"] in (0, 1)]
    report = tiny_report()
    report.sweep, report.exploration = [], Exploration(trials, front, search)
    return report


@pytest.fixture(scope="module")
def explored(tmp_path_factory):
    return _render(explored_report(), tmp_path_factory)


def test_an_explored_report_shows_the_search_and_its_fronts_not_a_grid(explored):
    files = {p.relative_to(explored).as_posix() for p in explored.rglob("*") if p.is_file()}
    assert {"trials.csv", "pareto.csv"} <= files and "sweep.csv" not in files
    assert not {"figures/latency.png", "figures/energy.png", "figures/edp.png", "figures/utilisation.png"} & files
    markdown = (explored / "report.md").read_text()
    assert "## Design-space exploration" in markdown and "## Array size and dataflow" not in markdown
    assert "Lowest latency by array size" not in markdown  # a grid's sentence: a search has no equal points
    assert len((explored / "trials.csv").read_text().splitlines()) == 1 + 4 * len(MODELS)
    assert len((explored / "pareto.csv").read_text().splitlines()) == 1 + 2 * len(MODELS)
    _every_link_resolves(explored_report(), 9, explored)


def test_an_explored_reports_summary_follows_the_trials(explored):
    markdown = (explored / "report.md").read_text()
    # trials 0 and 2 are one design, trial 3 is outside area_mm2<=2: two distinct feasible designs each
    assert ("NSGA-II ran 4 trials per model over a space of 6 designs. Each model's Pareto front in latency, "
            "energy, of the distinct feasible designs (buildable and area_mm2<=2) its trials found: "
            "`teacher` 2 of 2; `hybrid` 2 of 2; `homog` 2 of 2.") in markdown
    # _sweep_row: latency 64e-3 / (side * speed); homog (speed 3) on 16x16: 64 / 48 ms = 1.33 ms
    assert "`homog` 1.33 ms on 16x16, cores 1" in markdown
    # energy 1e-4 (1 + side / 64) / speed: lowest on 8x8; teacher 0.1125 mJ, hybrid half of it
    assert "`teacher` 0.113 mJ on 8x8, cores 2; `hybrid` 0.0563 mJ on 8x8, cores 2" in markdown
    # each at its own best: hybrid 2x faster and 2x less energy than the teacher, homog 3x
    assert "`hybrid` 2x faster and 2x less energy; `homog` 3x faster and 3x less energy." in markdown


def test_without_a_waterfall_the_report_says_why_and_draws_none(tmp_path):
    report = tiny_report()
    report.waterfall = []  # as build_report leaves it for an accelerator with core groups
    render_report(report, tmp_path / "out", generated="2026-01-01 00:00:00 UTC")
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert "Not computed: the accelerator has core groups" in markdown and "From MACs to latency" not in markdown
    assert not (tmp_path / "out" / "figures" / "waterfall.png").exists()
    assert not (tmp_path / "out" / "waterfall.csv").exists()


def test_the_report_says_which_attention_features_are_on(rendered):
    markdown = (rendered / "report.md").read_text()
    assert ("Attention features on: folds pipelined (`array.overlap_folds`); local attention fused block by block "
            "(`attention.fused`). Off: the vector unit beside the array (`vector.overlaps_array`); batch norm, ReLU "
            "and residual adds in the array's output path (`array.fuse_post_ops`).") in markdown
    assert "`--hardware paa-default` is SCALE-Sim's array with every feature off." in markdown
