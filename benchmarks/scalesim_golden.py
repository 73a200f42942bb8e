"""Generate and check tests/simulator/accelerator/golden/scalesim_cycles.json (SCALE-Sim 3.0.0 reference cycles).

    python3 benchmarks/scalesim_golden.py generate   # runs SCALE-Sim (minutes), writes the JSON
    python3 benchmarks/scalesim_golden.py user       # re-runs only the USER-bandwidth rows
    python3 benchmarks/scalesim_golden.py verify     # checks the closed-form formula on every row

`verify` needs no SCALE-Sim: it recomputes each row's compute cycles with
benchmarks.scalesim_runner.formula_cycles and exits 1 on any mismatch.
"""

from __future__ import annotations

import datetime
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.scalesim_runner import (  # noqa: E402
    DATAFLOWS,
    ArrayConfig,
    ConvLayer,
    GemmLayer,
    formula_cycles,
    layer_spec,
    run_scalesim,
    write_config,
)

GOLDEN = ROOT / "tests" / "simulator" / "accelerator" / "golden" / "scalesim_cycles.json"

# Layers exactly as SCALE-Sim sees them (conv ifmap sizes include the padding it
# reads; output = ceil((H - R + stride) / stride)).
TINY = [
    ConvLayer("tiny3x3", 10, 10, 3, 3, 3, 16, 1),          # 8x8 out, K=27
    ConvLayer("tiny3x3s2ceil", 10, 10, 3, 3, 8, 16, 2),    # ceil((10-3+2)/2) = 5 (floor rule: 4)
]
STEM = [ConvLayer("stem3x3", 34, 34, 3, 3, 3, 64, 1)]      # CIFAR stem: 32x32 + pad 1, C=3
MID = [
    ConvLayer("pw1x1", 16, 16, 1, 1, 256, 128, 1),         # stage-3 style 1x1 reduce
    ConvLayer("s2conv3x3", 33, 33, 3, 3, 64, 128, 2),      # 32x32 pad 1 stride 2 -> 16x16
]
LATE = [ConvLayer("late3x3", 6, 6, 3, 3, 512, 512, 1)]     # stage-4 3x3: 4x4 + pad 1, C=512
GEMMS = [
    GemmLayer("fc2048x10", 1, 10, 2048),                   # classifier, M=1
    GemmLayer("gemm100x72x200", 100, 72, 200),             # M, N, K not multiples of the array
]

ARRAYS = [(8, 8), (16, 16), (32, 32), (16, 64)]


def conv_layers_for(rows: int, cols: int) -> list[ConvLayer]:
    if (rows, cols) == (8, 8):
        return TINY + STEM
    if (rows, cols) == (16, 16):
        return TINY + STEM + MID
    return TINY + STEM + MID + LATE


USER_GEMM = GemmLayer("gemm100x72x200", 100, 72, 200)
USER_ARRAY = (32, 32)
# (ifmap, filter, ofmap SRAM kB, words (bytes) per cycle). With the default
# 256/256/128 kB the whole GEMM is prefetched before cycle 0 and nothing stalls;
# the 16/16/8 kB rows make it stream from DRAM.
USER_SETTINGS = [((16, 16, 8), 10), ((16, 16, 8), 4), ((256, 256, 128), 10)]


def _row(layer, rows, cols, df, mode, bw, rep, sram=None) -> dict:
    m, n, k = layer.gemm_mnk()
    user = f"/user{bw}/sram{sram[0]}-{sram[1]}-{sram[2]}kB" if mode == "USER" else ""
    return {
        "id": f"{layer.name}/{rows}x{cols}/{df}" + user,
        "layer": layer_spec(layer),
        "array": {"rows": rows, "cols": cols},
        "dataflow": df,
        "bandwidth_mode": mode,
        **({"bandwidth_words_per_cycle": bw,
            "sram_kb": {"ifmap": sram[0], "filter": sram[1], "ofmap": sram[2]}}
           if mode == "USER" else {}),
        "total_cycles": rep["total_cycles"],
        "stall_cycles": rep["stall_cycles"],
        "compute_cycles": rep["compute_cycles"],
        "total_cycles_incl_prefetch": rep["total_cycles_incl_prefetch"],
        "overall_util_pct": round(rep["overall_util_pct"], 6),
        "mapping_efficiency_pct": round(rep["mapping_efficiency_pct"], 6),
        "compute_util_pct": round(rep["compute_util_pct"], 6),
        "sram_ifmap_reads": rep.get("sram_ifmap_reads"),
        "sram_filter_reads": rep.get("sram_filter_reads"),
        "sram_ofmap_writes": rep.get("sram_ofmap_writes"),
        "dram_ifmap_reads": rep.get("dram_ifmap_reads"),
        "dram_filter_reads": rep.get("dram_filter_reads"),
        "dram_ofmap_writes": rep.get("dram_ofmap_writes"),
        "formula_compute_cycles": formula_cycles(m, n, k, rows, cols, df),
    }


FORMULA = {
    "mapping": ("C[M,N] = A[M,K] B[K,N]; conv: M = ofmap pixels (Ho*Wo), N = filters, "
                "K = R*S*C, Ho = ceil((H - R + stride)/stride) with H incl. padding. "
                "(Sr, Sc, T): os = (M, N, K); ws = (K, N, M); is = (K, M, N)."),
    "folds": "F = ceil(Sr/rows) * ceil(Sc/cols)",
    "os": "compute_cycles = F * (T + rows + cols - 2) - 1",
    "ws": "compute_cycles = F * (T + 2*rows + cols - 2) - 1",
    "is": "compute_cycles = F * (T + 2*rows + cols - 2) - 1",
    "report": ("SCALE-Sim 'Total Cycles' = compute_cycles + stall_cycles; stall_cycles = 0 "
               "in CALC (ideal bandwidth) mode. See benchmarks/scalesim_notes.md."),
}


USER_NOTE = ("user_bandwidth_cases: InterfaceBandwidth = USER with the row's sram_kb; SCALE-Sim "
             "3.0.0 takes the ifmap/filter DRAM bandwidth from [layout] IfmapSRAMBankBandwidth/"
             "FilterSRAMBankBandwidth and the ofmap one from Bandwidth; all three set to "
             "bandwidth_words_per_cycle. Stall cycles carry SCALE-Sim's read-buffer quirk "
             "(benchmarks/scalesim_notes.md); compute_cycles still equal the formula.")


def generate_user(nice: int = 10) -> tuple[list, list]:
    cases, runs = [], []
    rows, cols = USER_ARRAY
    for sram, bw in USER_SETTINGS:
        for df in DATAFLOWS:
            cfg = ArrayConfig(rows, cols, df, ifmap_sram_kb=sram[0], filter_sram_kb=sram[1],
                              ofmap_sram_kb=sram[2], bandwidth_mode="USER", bandwidth=bw)
            res = run_scalesim([USER_GEMM], cfg, nice=nice)
            runs.append({"array": f"{rows}x{cols}", "dataflow": df, "bandwidth_mode": "USER",
                         "bandwidth_words_per_cycle": bw, "sram_kb": list(sram),
                         "layers": [USER_GEMM.name], "wall_s": round(res.wall_s, 2)})
            cases.append(_row(USER_GEMM, rows, cols, df, "USER", bw, res.layers[0], sram))
            print(f"USER {sram} {bw} {df} {res.layers[0]['total_cycles']} "
                  f"stall {res.layers[0]['stall_cycles']}", flush=True)
    return cases, runs


def generate(nice: int = 10) -> dict:
    cases, user_cases, runs = [], [], []
    version = None
    for rows, cols in ARRAYS:
        for df in DATAFLOWS:
            for layers in (conv_layers_for(rows, cols), GEMMS):
                t0 = time.time()
                res = run_scalesim(layers, ArrayConfig(rows, cols, df), nice=nice)
                version = res.scalesim_version
                runs.append({"array": f"{rows}x{cols}", "dataflow": df, "bandwidth_mode": "CALC",
                             "layers": [layer.name for layer in layers], "wall_s": round(res.wall_s, 2)})
                for layer, rep in zip(layers, res.layers):
                    cases.append(_row(layer, rows, cols, df, "CALC", None, rep))
                print(f"{rows}x{cols} {df} {[layer.name for layer in layers]} {res.wall_s:.1f}s "
                      f"({time.time() - t0:.1f}s)", flush=True)
    user_cases, user_runs = generate_user(nice)
    runs += user_runs

    tmp = Path("/tmp/_scalesim_cfg_example.cfg")
    example = write_config(ArrayConfig(32, 32, "os"), tmp).read_text()
    doc = {
        "scalesim_version": version,
        "generated_by": "benchmarks/scalesim_golden.py generate (benchmarks/scalesim_runner.py)",
        "generated_utc": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%MZ"),
        "config": {
            "ifmap_sram_kb": 256, "filter_sram_kb": 256, "ofmap_sram_kb": 128,
            "word_size_bytes": 1, "bandwidth_mode": "CALC (ideal: sized so nothing stalls)",
            "user_bandwidth_note": USER_NOTE,
            "api": "scalesim(save_disk_space=True, verbose=False, ...).run_scale()",
            "example_cfg_32x32_os": example,
        },
        "fields": {
            "total_cycles": "COMPUTE_REPORT 'Total Cycles' (stalls included)",
            "stall_cycles": "COMPUTE_REPORT 'Stall Cycles'",
            "compute_cycles": "total_cycles - stall_cycles (what the formula gives)",
            "total_cycles_incl_prefetch": "COMPUTE_REPORT 'Total Cycles (incl. prefetch)': "
                                          "first DRAM read to last DRAM write",
            "formula_compute_cycles": "closed form, see 'formula'",
        },
        "formula": FORMULA,
        "cases": cases,
        "user_bandwidth_cases": user_cases,
        "runs": runs,
    }
    return doc


def verify(doc: dict) -> int:
    bad = 0
    n = 0
    for row in doc["cases"] + doc["user_bandwidth_cases"]:
        m, nn, k = row["layer"]["gemm_mnk"]
        f = formula_cycles(m, nn, k, row["array"]["rows"], row["array"]["cols"], row["dataflow"])
        n += 1
        ok = f == row["compute_cycles"]
        if row["bandwidth_mode"] == "CALC":
            ok = ok and row["stall_cycles"] == 0 and row["total_cycles"] == f
        if not ok:
            bad += 1
            print(f"MISMATCH {row['id']}: formula {f}, SCALE-Sim compute {row['compute_cycles']} "
                  f"(total {row['total_cycles']}, stall {row['stall_cycles']})")
    print(f"{n - bad}/{n} rows match the closed-form formula")
    return 1 if bad else 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    cmd = argv[0] if argv else "verify"
    if cmd == "generate":
        out = Path(argv[1]) if len(argv) > 1 else GOLDEN
        doc = generate()
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(doc, indent=1) + "\n")
        print(f"wrote {out}")
        return verify(doc)
    if cmd == "user":  # re-run only the USER-bandwidth rows of an existing file
        path = Path(argv[1]) if len(argv) > 1 else GOLDEN
        doc = json.loads(path.read_text())
        cases, runs = generate_user()
        doc["user_bandwidth_cases"] = cases
        doc["config"]["user_bandwidth_note"] = USER_NOTE
        doc["runs"] = [r for r in doc["runs"] if r["bandwidth_mode"] != "USER"] + runs
        path.write_text(json.dumps(doc, indent=1) + "\n")
        print(f"wrote {path}")
        return verify(doc)
    if cmd == "verify":
        path = Path(argv[1]) if len(argv) > 1 else GOLDEN
        return verify(json.loads(path.read_text()))
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())
