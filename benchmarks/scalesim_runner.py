"""Run SCALE-Sim v3 on layer lists and read its reports back.

SCALE-Sim (``pip install scalesim==3.0.0``) is the reference that
``attentionlite.simulator.accelerator.systolic`` matches for dense compute cycles. It lives
in its own virtual environment (it needs ``numpy<2.4``), so this module never
imports it: it writes the config, topology and layout files, runs SCALE-Sim's
Python API in a subprocess of that environment's interpreter, and parses the
CSV reports it writes. The module imports with the standard library only.

Interpreter: ``python=`` argument, else ``$SCALESIM_PYTHON``, else
``/work/scalesim-venv/bin/python``. Create it with::

    python3 -m venv /work/scalesim-venv
    /work/scalesim-venv/bin/pip install scalesim==3.0.0 'numpy<2.4'

Example::

    from benchmarks.scalesim_runner import ConvLayer, GemmLayer, ArrayConfig, run_scalesim
    res = run_scalesim([GemmLayer("fc", m=1, n=10, k=2048)], ArrayConfig(32, 32, "os"))
    res.layers[0]["total_cycles"], res.wall_s

Report fields per layer (SCALE-Sim's names in brackets, COMPUTE_REPORT.csv):

- ``total_cycles`` [Total Cycles]: cycle at which the last output row leaves
  the array, stalls included. SCALE-Sim's verbose log prints this value as
  "Compute cycles".
- ``stall_cycles`` [Stall Cycles]: 0 in CALC (ideal bandwidth) mode.
- ``compute_cycles``: ``total_cycles - stall_cycles`` (stall-free cycles; the
  number the closed-form formula in benchmarks/scalesim_notes.md gives).
- ``total_cycles_incl_prefetch`` [Total Cycles (incl. prefetch)]: from the
  first DRAM read to the last DRAM write.
- ``overall_util_pct``, ``mapping_efficiency_pct``, ``compute_util_pct``.
- from BANDWIDTH_REPORT.csv / DETAILED_ACCESS_REPORT.csv: average SRAM/DRAM
  bandwidths and the SRAM/DRAM read and write counts.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

SCALESIM_VERSION = "3.0.0"
DEFAULT_PYTHON = "/work/scalesim-venv/bin/python"
DATAFLOWS = ("os", "ws", "is")

__all__ = [
    "ArrayConfig",
    "DATAFLOWS",
    "SCALESIM_VERSION",
    "formula_cycles",
    "read_topology",
    "ConvLayer",
    "GemmLayer",
    "ScaleSimResult",
    "ScaleSimUnavailable",
    "scalesim_python",
    "scalesim_available",
    "write_config",
    "write_topology",
    "write_layout",
    "parse_reports",
    "run_scalesim",
    "layer_spec",
]


class ScaleSimUnavailable(RuntimeError):
    """The SCALE-Sim interpreter is missing or cannot import scalesim."""


# --------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class ConvLayer:
    """A convolution exactly as SCALE-Sim sees it.

    ``ifmap_h``/``ifmap_w`` include the padding: SCALE-Sim adds none, and the
    output is ``ceil((H - R + stride) / stride)``. Same stride on both axes.
    """

    name: str
    ifmap_h: int
    ifmap_w: int
    filter_h: int
    filter_w: int
    channels: int
    num_filters: int
    stride: int = 1

    @property
    def ofmap_h(self) -> int:
        return -(-(self.ifmap_h - self.filter_h + self.stride) // self.stride)

    @property
    def ofmap_w(self) -> int:
        return -(-(self.ifmap_w - self.filter_w + self.stride) // self.stride)

    def gemm_mnk(self) -> tuple[int, int, int]:
        """(M, N, K) = (output pixels, filters, window = R*S*C)."""
        return (self.ofmap_h * self.ofmap_w, self.num_filters,
                self.filter_h * self.filter_w * self.channels)

    def csv_row(self) -> str:
        vals = [self.ifmap_h, self.ifmap_w, self.filter_h, self.filter_w,
                self.channels, self.num_filters, self.stride]
        return self.name + ", " + ", ".join(str(int(v)) for v in vals) + ","


@dataclass(frozen=True)
class GemmLayer:
    """C[M, N] = A[M, K] @ B[K, N] (SCALE-Sim's GEMM topology: M, N, K).

    SCALE-Sim maps it to a conv with an M x K ifmap, a 1 x K filter, one
    channel and N filters, so M plays output pixels, N filters, K the window.
    """

    name: str
    m: int
    n: int
    k: int

    def gemm_mnk(self) -> tuple[int, int, int]:
        return (self.m, self.n, self.k)

    def csv_row(self) -> str:
        return f"{self.name}, {int(self.m)}, {int(self.n)}, {int(self.k)},"


Layer = ConvLayer | GemmLayer


def layer_spec(layer: Layer) -> dict:
    """JSON-ready description of a layer (kind + fields + derived M, N, K)."""
    d = {"kind": "conv" if isinstance(layer, ConvLayer) else "gemm"}
    d.update(dataclasses.asdict(layer))
    m, n, k = layer.gemm_mnk()
    d["gemm_mnk"] = [m, n, k]
    if isinstance(layer, ConvLayer):
        d["ofmap_hw"] = [layer.ofmap_h, layer.ofmap_w]
    return d


@dataclass(frozen=True)
class ArrayConfig:
    """One SCALE-Sim architecture. ``bandwidth`` is words/cycle (1 word = 1 byte)
    and is used only in USER mode; CALC mode sizes bandwidth so nothing stalls.

    In USER mode SCALE-Sim 3.0.0 takes the ifmap and filter DRAM bandwidth from
    the ``[layout]`` section (IfmapSRAMBankBandwidth, FilterSRAMBankBandwidth)
    and the ofmap one from ``Bandwidth``; this writer puts ``bandwidth`` in all
    three (and one SRAM bank each, so the bank check passes).
    """

    rows: int
    cols: int
    dataflow: str = "os"
    ifmap_sram_kb: int = 256
    filter_sram_kb: int = 256
    ofmap_sram_kb: int = 128
    bandwidth_mode: str = "CALC"  # "CALC" (ideal) or "USER"
    bandwidth: int = 10
    read_request_buffer: int = 32
    write_request_buffer: int = 32
    run_name: str = "attentionlite"

    def __post_init__(self):
        if self.dataflow not in DATAFLOWS:
            raise ValueError(f"dataflow {self.dataflow!r}: expected one of {DATAFLOWS}")
        if self.bandwidth_mode not in ("CALC", "USER"):
            raise ValueError(f"bandwidth_mode {self.bandwidth_mode!r}: expected 'CALC' or 'USER'")
        if self.rows < 1 or self.cols < 1 or self.bandwidth < 1:
            raise ValueError("rows, cols and bandwidth must be positive")

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------- files


def write_config(cfg: ArrayConfig, path: str | Path) -> Path:
    """Write a SCALE-Sim .cfg (all sections it insists on) and return its path."""
    path = Path(path)
    bw = int(cfg.bandwidth)
    text = f"""[general]
run_name = {cfg.run_name}

[architecture_presets]
ArrayHeight = {cfg.rows}
ArrayWidth = {cfg.cols}
IfmapSramSzkB = {cfg.ifmap_sram_kb}
FilterSramSzkB = {cfg.filter_sram_kb}
OfmapSramSzkB = {cfg.ofmap_sram_kb}
IfmapOffset = 0
FilterOffset = 10000000
OfmapOffset = 20000000
Bandwidth = {bw}
Dataflow = {cfg.dataflow}
MemoryBanks = 1
ReadRequestBuffer = {cfg.read_request_buffer}
WriteRequestBuffer = {cfg.write_request_buffer}

[layout]
IfmapCustomLayout = False
IfmapSRAMBankBandwidth = {bw}
IfmapSRAMBankNum = 1
IfmapSRAMBankPort = 2
FilterCustomLayout = False
FilterSRAMBankBandwidth = {bw}
FilterSRAMBankNum = 1
FilterSRAMBankPort = 2

[sparsity]
SparsitySupport = false
SparseRep = ellpack_block
OptimizedMapping = false
BlockSize = 8
RandomNumberGeneratorSeed = 40

[run_presets]
InterfaceBandwidth = {cfg.bandwidth_mode}
UseRamulatorTrace = False
"""
    path.write_text(text)
    return path


def _check_names(layers: Sequence[Layer]) -> None:
    if not layers:
        raise ValueError("no layers given")
    kinds = {type(layer) for layer in layers}
    if len(kinds) != 1:
        raise ValueError("one topology holds either conv layers or GEMM layers, not both")
    seen = set()
    for layer in layers:
        if not layer.name or "," in layer.name or layer.name != layer.name.strip():
            raise ValueError(f"layer name {layer.name!r}: expected a non-empty name without commas")
        if "DP" in layer.name:
            # SCALE-Sim expands any layer whose name contains 'DP' into per-channel
            # depthwise layers.
            raise ValueError(f"layer name {layer.name!r}: 'DP' in a name means depthwise to SCALE-Sim")
        if layer.name in seen:
            raise ValueError(f"layer name {layer.name!r} appears twice")
        seen.add(layer.name)


def write_topology(layers: Sequence[Layer], path: str | Path) -> Path:
    """Write a conv or GEMM topology CSV (header + one row per layer, trailing commas)."""
    _check_names(layers)
    path = Path(path)
    if isinstance(layers[0], ConvLayer):
        header = ("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, "
                  "Channels, Num Filter, Strides,")
    else:
        header = "Layer, M, N, K,"
    lines = [header] + [layer.csv_row() for layer in layers]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_layout(path: str | Path) -> Path:
    """SCALE-Sim wants a layout CSV even with custom layouts off: a header-only file."""
    path = Path(path)
    path.write_text(
        "Layer name, IFMAP Height Intraline Factor, IFMAP Width Intraline Factor, "
        "Filter Height Intraline Factor, Filter Width Intraline Factor, "
        "Channel Intraline Factor, Num Filter Intraline Factor, IFMAP Height Intraline Order, "
        "IFMAP Width Intraline Order, Channel Intraline Order, IFMAP Height Interline Order, "
        "IFMAP Width Interline Order, Channel Interline Order, Num Filter Intraline Order, "
        "Channel Intraline Order, Filter Height Intraline Order, Filter Width Intraline Order, "
        "Num Filter Interline Order, Channel Interline Order, Filter Height Interline Order, "
        "Filter Width Interline Order,\n")
    return path


def read_topology(path: str | Path, gemm: bool = False) -> list[Layer]:
    """Read back a topology CSV written by write_topology (or SCALE-Sim's own format)."""
    out: list[Layer] = []
    with open(path) as f:
        rows = [r for r in f.read().splitlines() if r.strip()]
    for row in rows[1:]:
        elems = [e.strip() for e in row.split(",")[:-1]]
        if gemm:
            out.append(GemmLayer(elems[0], int(elems[1]), int(elems[2]), int(elems[3])))
        else:
            out.append(ConvLayer(elems[0], *[int(x) for x in elems[1:8]]))
    return out


# --------------------------------------------------------------------------- reports


def _read_report(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        rows = [[c.strip() for c in r] for r in csv.reader(f)]
    rows = [r[:-1] if r and r[-1] == "" else r for r in rows if r]
    return rows


def parse_reports(report_dir: str | Path, layers: Sequence[Layer] = ()) -> list[dict]:
    """Parse COMPUTE_REPORT.csv (+ BANDWIDTH/DETAILED_ACCESS) into per-layer dicts."""
    report_dir = Path(report_dir)
    comp = _read_report(report_dir / "COMPUTE_REPORT.csv")[1:]
    bw_path = report_dir / "BANDWIDTH_REPORT.csv"
    det_path = report_dir / "DETAILED_ACCESS_REPORT.csv"
    bw = _read_report(bw_path)[1:] if bw_path.exists() else []
    det = _read_report(det_path)[1:] if det_path.exists() else []
    out = []
    for i, r in enumerate(comp):
        total = int(float(r[2]))
        stall = int(float(r[3]))
        d = {
            "layer_id": int(r[0]),
            "total_cycles": total,
            "stall_cycles": stall,
            "compute_cycles": total - stall,
            "total_cycles_incl_prefetch": int(float(r[1])),
            "overall_util_pct": float(r[4]),
            "mapping_efficiency_pct": float(r[5]),
            "compute_util_pct": float(r[6]),
        }
        if i < len(layers):
            d = {"name": layers[i].name, **d}
        if i < len(bw):
            b = [float(x) for x in bw[i][1:7]]
            d.update(avg_ifmap_sram_bw=b[0], avg_filter_sram_bw=b[1], avg_ofmap_sram_bw=b[2],
                     avg_ifmap_dram_bw=b[3], avg_filter_dram_bw=b[4], avg_ofmap_dram_bw=b[5])
        if i < len(det):
            x = [int(float(v)) for v in det[i][1:19]]
            d.update(sram_ifmap_reads=x[2], sram_filter_reads=x[5], sram_ofmap_writes=x[8],
                     dram_ifmap_reads=x[11], dram_filter_reads=x[14], dram_ofmap_writes=x[17])
        out.append(d)
    return out


# --------------------------------------------------------------------------- running


def scalesim_python(python: str | None = None) -> str:
    """The interpreter that has scalesim: argument, $SCALESIM_PYTHON, or the default."""
    return python or os.environ.get("SCALESIM_PYTHON") or DEFAULT_PYTHON


def scalesim_available(python: str | None = None) -> bool:
    exe = scalesim_python(python)
    if not (os.path.isfile(exe) and os.access(exe, os.X_OK)):
        return False
    r = subprocess.run([exe, "-c", "import scalesim.scale_sim"], capture_output=True)
    return r.returncode == 0


_DRIVER = r"""
import sys, time, json
from scalesim.scale_sim import scalesim
cfg, topo, layout, gemm, out = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1", sys.argv[5]
t0 = time.perf_counter()
s = scalesim(save_disk_space=True, verbose=False, config=cfg, topology=topo,
             layout=layout, input_type_gemm=gemm)
s.run_scale(top_path=out)
try:
    from importlib.metadata import version
    v = version("scalesim")
except Exception:
    v = "unknown"
print("SCALESIM_DONE " + json.dumps({"sim_s": time.perf_counter() - t0, "version": v}))
"""


def _nice_to(level: int):
    """preexec_fn raising the child's niceness to ``level`` (absolute, not added on top)."""
    def f():
        cur = os.nice(0)
        if cur < level:
            os.nice(level - cur)
    return f


@dataclass
class ScaleSimResult:
    layers: list[dict]
    config: dict
    wall_s: float  # wall time of the SCALE-Sim subprocess (start-up included)
    sim_s: float  # time inside SCALE-Sim's run (excludes interpreter start-up)
    scalesim_version: str
    topology_csv: str = ""
    config_text: str = ""
    stdout: str = field(default="", repr=False)

    def totals(self) -> dict:
        return {k: sum(layer[k] for layer in self.layers)
                for k in ("total_cycles", "stall_cycles", "compute_cycles")}


def run_scalesim(layers: Sequence[Layer], cfg: ArrayConfig, *,
                 python: str | None = None,
                 workdir: str | Path | None = None,
                 keep: bool = False,
                 nice: int = 0,
                 timeout: float | None = None) -> ScaleSimResult:
    """Run SCALE-Sim on ``layers`` (all conv or all GEMM) with ``cfg``.

    Files go to ``workdir`` (a fresh temporary directory if None, removed
    afterwards unless ``keep``). ``nice`` > 0 runs the subprocess at that
    niceness (absolute: a parent already at nice 10 is not pushed to 19).
    Raises ScaleSimUnavailable if the interpreter is missing and RuntimeError
    (with SCALE-Sim's output) if the run fails.
    """
    layers = list(layers)
    _check_names(layers)
    exe = scalesim_python(python)
    if not (os.path.isfile(exe) and os.access(exe, os.X_OK)):
        raise ScaleSimUnavailable(
            f"SCALE-Sim interpreter {exe!r} not found; create it with "
            f"'python3 -m venv /work/scalesim-venv && /work/scalesim-venv/bin/pip install "
            f"scalesim=={SCALESIM_VERSION} \"numpy<2.4\"' or set SCALESIM_PYTHON")
    gemm = isinstance(layers[0], GemmLayer)
    tmp = Path(tempfile.mkdtemp(prefix="scalesim_")) if workdir is None else Path(workdir)
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        cfg_path = write_config(cfg, tmp / "scalesim.cfg")
        topo_path = write_topology(layers, tmp / ("gemm_topo.csv" if gemm else "conv_topo.csv"))
        layout_path = write_layout(tmp / "layout.csv")
        out_dir = tmp / "out"
        out_dir.mkdir(exist_ok=True)
        cmd = [exe, "-c", _DRIVER, str(cfg_path), str(topo_path), str(layout_path),
               "1" if gemm else "0", str(out_dir)]
        t0 = time.perf_counter()
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=tmp,
                               preexec_fn=_nice_to(nice) if nice else None)
        except FileNotFoundError as e:  # pragma: no cover - exe vanished
            raise ScaleSimUnavailable(str(e)) from e
        wall = time.perf_counter() - t0
        meta = None
        for line in p.stdout.splitlines():
            if line.startswith("SCALESIM_DONE "):
                meta = json.loads(line[len("SCALESIM_DONE "):])
        report_dir = out_dir / cfg.run_name
        if p.returncode != 0 or meta is None or not (report_dir / "COMPUTE_REPORT.csv").exists():
            if "No module named 'scalesim'" in p.stderr:
                raise ScaleSimUnavailable(f"{exe} cannot import scalesim: {p.stderr.strip()[-300:]}")
            raise RuntimeError(f"SCALE-Sim failed (rc={p.returncode}):\n"
                               f"{p.stdout[-2000:]}\n{p.stderr[-4000:]}")
        rows = parse_reports(report_dir, layers)
        if len(rows) != len(layers):
            raise RuntimeError(f"SCALE-Sim reported {len(rows)} layers for {len(layers)} given")
        return ScaleSimResult(layers=rows, config=cfg.as_dict(), wall_s=wall,
                              sim_s=float(meta["sim_s"]), scalesim_version=meta["version"],
                              topology_csv=topo_path.read_text(),
                              config_text=cfg_path.read_text(), stdout=p.stdout)
    finally:
        if workdir is None and not keep:
            shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------- formula


def formula_cycles(m: int, n: int, k: int, rows: int, cols: int, dataflow: str) -> int:
    """Closed-form SCALE-Sim 3.0.0 compute cycles (stall-free) for C[M,N] = A[M,K] B[K,N].

    See benchmarks/scalesim_notes.md. (Sr, Sc, T) per dataflow:
    os: (M, N, K); ws: (K, N, M); is: (K, M, N). Each of the
    ceil(Sr/rows) * ceil(Sc/cols) folds takes
    os: T + rows + cols - 2, ws/is: T + 2*rows + cols - 2 demand cycles;
    SCALE-Sim reports the sum minus one (the index of the last cycle).
    """
    if dataflow == "os":
        sr, sc, t, fill = m, n, k, rows + cols - 2
    elif dataflow == "ws":
        sr, sc, t, fill = k, n, m, 2 * rows + cols - 2
    elif dataflow == "is":
        sr, sc, t, fill = k, m, n, 2 * rows + cols - 2
    else:
        raise ValueError(f"dataflow {dataflow!r}: expected one of {DATAFLOWS}")
    folds = -(-sr // rows) * -(-sc // cols)
    return folds * (t + fill) - 1


def main(argv: Sequence[str] | None = None) -> int:
    import argparse
    ap = argparse.ArgumentParser(description="Run SCALE-Sim on a topology CSV.")
    ap.add_argument("topology")
    ap.add_argument("--gemm", action="store_true", help="topology rows are name, M, N, K")
    ap.add_argument("--rows", type=int, default=32)
    ap.add_argument("--cols", type=int, default=32)
    ap.add_argument("--dataflow", default="os", choices=DATAFLOWS)
    ap.add_argument("--user-bandwidth", type=int, default=None,
                    help="words/cycle in USER mode (default: CALC, ideal bandwidth)")
    ap.add_argument("--nice", type=int, default=10)
    ap.add_argument("--out", default=None, help="write the result JSON here")
    a = ap.parse_args(argv)
    layers = read_topology(a.topology, gemm=a.gemm)
    cfg = ArrayConfig(a.rows, a.cols, a.dataflow,
                      bandwidth_mode="USER" if a.user_bandwidth else "CALC",
                      bandwidth=a.user_bandwidth or 10)
    try:
        res = run_scalesim(layers, cfg, nice=a.nice)
    except ScaleSimUnavailable as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    doc = {"scalesim_version": res.scalesim_version, "config": res.config,
           "wall_s": round(res.wall_s, 2), "layers": res.layers, "totals": res.totals()}
    text = json.dumps(doc, indent=1)
    if a.out:
        Path(a.out).write_text(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
