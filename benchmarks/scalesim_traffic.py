"""Generate tests/simulator/accelerator/golden/scalesim_traffic.json (SCALE-Sim 3.0.0 DRAM traffic).

    python3 benchmarks/scalesim_traffic.py generate   # runs SCALE-Sim (18 runs, ~1 min here), writes the JSON
    python3 benchmarks/scalesim_traffic.py table      # prints the rows of an existing file
    python3 benchmarks/scalesim_traffic.py verify     # checks the traffic model below on every row
    python benchmarks/scalesim_traffic.py compare     # the simulator's bytes beside SCALE-Sim's (project venv)

Three GEMMs on a 32x32 array, dataflows os/ws/is, USER bandwidth mode at
16 words (bytes) per cycle, SRAM 16/16/16 and 64/64/64 KiB per buffer:
SCALE-Sim's per-operand DRAM reads/writes (DETAILED_ACCESS_REPORT.csv),
average DRAM bandwidths (BANDWIDTH_REPORT.csv) and cycles (COMPUTE_REPORT.csv).
A run over 15 minutes is dropped and listed under "dropped".

`verify` needs no SCALE-Sim (numpy only): ``model_reads`` rebuilds each read
buffer's fetch order (the prefetch matrix of scalesim/compute/systolic_compute_
{os,ws,is}.py) and demand order from M, N, K and applies the window rule of
scalesim/memory/read_buffer.py; ofmap writes are checked against
``outputs <= writes <= outputs + (bw - 1) * mid-run drains`` (write_buffer.py
counts the padding of partial lines it force-flushed). Exits 1 on a mismatch.
"""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.scalesim_runner import (  # noqa: E402
    DATAFLOWS,
    ArrayConfig,
    GemmLayer,
    run_scalesim,
)

GOLDEN = ROOT / "tests" / "simulator" / "accelerator" / "golden" / "scalesim_traffic.json"

LAYERS = [
    GemmLayer("gemm100x72x200", 100, 72, 200),
    GemmLayer("gemm64x64x1024", 64, 64, 1024),
    GemmLayer("gemm256x128x64", 256, 128, 64),
]
ARRAY = (32, 32)
BANDWIDTH = 16  # words/cycle = bytes/cycle (1-byte words)
SRAM_KIB = [(16, 16, 16), (64, 64, 64)]  # ifmap, filter, ofmap
TIMEOUT_S = 15 * 60

REPORT_KEYS = ("dram_ifmap_reads", "dram_filter_reads", "dram_ofmap_writes",
               "total_cycles", "stall_cycles", "compute_cycles", "total_cycles_incl_prefetch",
               "avg_ifmap_dram_bw", "avg_filter_dram_bw", "avg_ofmap_dram_bw")


def generate(nice: int = 10) -> dict:
    rows, cols = ARRAY
    cases, runs, dropped, version = [], [], [], None
    for sram in SRAM_KIB:
        for layer in LAYERS:
            for df in DATAFLOWS:
                rid = f"{layer.name}/{rows}x{cols}/{df}/user{BANDWIDTH}/sram{sram[0]}-{sram[1]}-{sram[2]}KiB"
                cfg = ArrayConfig(rows, cols, df, ifmap_sram_kb=sram[0], filter_sram_kb=sram[1],
                                  ofmap_sram_kb=sram[2], bandwidth_mode="USER", bandwidth=BANDWIDTH)
                t0 = time.perf_counter()
                try:
                    res = run_scalesim([layer], cfg, nice=nice, timeout=TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    dropped.append({"id": rid, "reason": f"SCALE-Sim ran over {TIMEOUT_S} s"})
                    print(f"DROPPED {rid} (> {TIMEOUT_S} s)", flush=True)
                    continue
                version = res.scalesim_version
                rep = res.layers[0]
                cases.append({
                    "id": rid,
                    "layer": {"name": layer.name, "M": layer.m, "N": layer.n, "K": layer.k},
                    "array": {"rows": rows, "cols": cols},
                    "dataflow": df,
                    "sram_kib": {"ifmap": sram[0], "filter": sram[1], "ofmap": sram[2]},
                    "bandwidth_words_per_cycle": BANDWIDTH,
                    **{k: rep[k] for k in REPORT_KEYS},
                })
                runs.append({"id": rid, "wall_s": round(res.wall_s, 2)})
                print(f"{rid}: ifmap {rep['dram_ifmap_reads']} filter {rep['dram_filter_reads']} "
                      f"ofmap {rep['dram_ofmap_writes']} cycles {rep['total_cycles']} "
                      f"(stall {rep['stall_cycles']}) {res.wall_s:.1f}s "
                      f"({time.perf_counter() - t0:.1f}s)", flush=True)
    return {
        "scalesim_version": version,
        "generated_by": "python3 benchmarks/scalesim_traffic.py generate (benchmarks/scalesim_runner.py)",
        "generated_utc": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%MZ"),
        "config": {
            "word_size_bytes": 1,
            "bandwidth_mode": "USER",
            "bandwidth_note": ("ifmap/filter DRAM bandwidth from [layout] IfmapSRAMBankBandwidth/"
                               "FilterSRAMBankBandwidth, ofmap from Bandwidth; all three set to "
                               "bandwidth_words_per_cycle (see benchmarks/scalesim_runner.py)"),
            "sram_kib_note": "1 KiB = 1024 words; SCALE-Sim splits each buffer into active and prefetch halves",
            "api": "scalesim(save_disk_space=True, verbose=False, ...).run_scale()",
        },
        "fields": {
            "dram_*": "DETAILED_ACCESS_REPORT 'DRAM IFMAP Reads', 'DRAM Filter Reads', "
                      "'DRAM OFMAP Writes' (words = bytes)",
            "avg_*_dram_bw": "BANDWIDTH_REPORT average DRAM bandwidth, words/cycle",
            "total_cycles": "COMPUTE_REPORT 'Total Cycles' (stalls included)",
            "stall_cycles": "COMPUTE_REPORT 'Stall Cycles'",
            "compute_cycles": "total_cycles - stall_cycles",
            "total_cycles_incl_prefetch": "COMPUTE_REPORT 'Total Cycles (incl. prefetch)'",
        },
        "cases": cases,
        "dropped": dropped,
        "runs": runs,
    }


def _orders(m: int, n: int, k: int, rows: int, cols: int, df: str):
    """(fetch, demand) id sequences of the ifmap and filter read buffers; -1 = padding."""
    import numpy as np

    a = np.arange(m * k).reshape(m, k)                    # ifmap A[m, k]
    b = (m * k + np.arange(k * n)).reshape(k, n)          # filter B[k, n]

    def chunks(size, w):
        return [(i, min(i + w, size)) for i in range(0, size, w)]

    def pad(x, h, w):
        out = -np.ones((h, w), dtype=x.dtype)
        out[:x.shape[0], :x.shape[1]] = x
        return out

    def roll(x):  # diagonal order: diag d, row high to low (= skewed demand order)
        r, c = np.indices(x.shape)
        return x.ravel()[np.lexsort((-r.ravel(), (r + c).ravel()))]

    def cat(parts):
        s = np.concatenate(parts)
        return s[s != -1]

    if df == "os":        # ifmap blocks K x R per row fold; filter K x C per col fold
        rf, cf = chunks(m, rows), chunks(n, cols)
        ib = [pad(a[i:j].T, k, rows) for i, j in rf]
        fb = [pad(b[:, i:j], k, cols) for i, j in cf]
        ifm = (roll(np.concatenate(ib)), cat([roll(x) for _ in cf for x in ib]))
        fil = (roll(np.concatenate(fb)), cat([roll(x) for x in fb for _ in rf]))
    elif df == "ws":      # ifmap blocks M x R per K fold (rolled); filter row-major, flipped R x C
        rf, cf = chunks(k, rows), chunks(n, cols)
        ib = [pad(a[:, i:j], m, rows) for i, j in rf]
        ifm = (roll(np.concatenate(ib)), cat([roll(x) for _ in cf for x in ib]))
        fil = (np.concatenate([pad(b[:, i:j], k, cols) for i, j in cf]).ravel(),
               cat([pad(b[i:j, c:d], rows, cols)[::-1].ravel() for c, d in cf for i, j in rf]))
    else:                 # is: ifmap row-major, flipped R x C; filter blocks N x R per K fold
        rf, cf = chunks(k, rows), chunks(m, cols)
        fb = [pad(b[i:j].T, n, rows) for i, j in rf]
        ifm = (np.concatenate([pad(a[i:j].T, k, cols) for i, j in cf]).ravel(),
               cat([pad(a[c:d, i:j].T, rows, cols)[::-1].ravel() for c, d in cf for i, j in rf]))
        fil = (roll(np.concatenate(fb)), cat([roll(x) for _ in cf for x in fb]))
    return ifm, fil


def model_reads(fetch, demand, size_words: int, bw: int) -> dict:
    """SCALE-Sim 3.0.0 read_buffer DRAM words (USER mode, active fraction 0.5).

    The fetch order is cut into lines of eps = ceil(size/100) valid ids; the
    active window holds A lines, each refill slides it P lines round the ring
    of L lines and costs one prefetch block. A demand outside the window
    slides it until it is inside. ``laps`` counts the demands that only the
    next time round the ring could serve (restarts and short backward jumps).
    """
    import numpy as np

    valid = fetch[fetch != -1]
    eps = -(-size_words // 100)
    act = -(-size_words // 2)
    pre = size_words - act
    lines = int(valid.size // eps + 1)
    a_l = min(-(-act // eps), lines)
    p_l = min(-(-pre // eps), lines - a_l)
    pos = np.empty(int(valid.max()) + 1, dtype=np.int64)
    pos[valid] = np.arange(valid.size) // eps
    seq = pos[demand]
    seq = seq[np.concatenate(([True], seq[1:] != seq[:-1]))].tolist()
    u = adv = laps = 0
    x_max = 0
    for x in seq:
        lifted = u + (x - u) % lines          # next position of line x at or after u
        if lifted // lines > x_max // lines:
            laps += 1
        x_max = max(x_max, lifted)
        if lifted - u >= a_l:                 # outside the window: slide it P lines at a time
            step = -(-(lifted - u - a_l + 1) // p_l)
            u += step * p_l
            adv += step
    init = bw * min(-(-act // bw), -(-fetch.size // bw))
    block = bw * -(-pre // bw)
    return {"words": init + adv * block, "init": init, "block": block, "advances": adv,
            "lines": lines, "active_lines": a_l, "prefetch_lines": p_l, "laps": laps,
            "valid": int(valid.size), "entries": int(fetch.size)}


def model_ofmap(m: int, n: int, k: int, rows: int, df: str, size_words: int, bw: int):
    """(outputs written, upper bound): os writes M*N once; ws/is M*N per K fold."""
    outs = m * n * (1 if df == "os" else -(-k // rows))
    drain = size_words - (-(-size_words // 2))
    mid = 0 if outs <= size_words - drain else -(-outs // drain)
    return outs, outs + (bw - 1) * mid


def verify(doc: dict) -> int:
    bad = 0
    print(f"{'id':52s} {'op':6s} {'SCALE-Sim':>9s} {'model':>9s} laps")
    for r in doc["cases"]:
        lay, kib, bw = r["layer"], r["sram_kib"], r["bandwidth_words_per_cycle"]
        rows, cols = r["array"]["rows"], r["array"]["cols"]
        ifm, fil = _orders(lay["M"], lay["N"], lay["K"], rows, cols, r["dataflow"])
        for op, (fetch, demand), kb in (("ifmap", ifm, kib["ifmap"]), ("filter", fil, kib["filter"])):
            got = r[f"dram_{op}_reads"]
            mod = model_reads(fetch, demand, kb * 1024, bw)
            bad += got != mod["words"]
            print(f"{r['id']:52s} {op:6s} {got:9d} {mod['words']:9d} {mod['laps']:3d}"
                  f"{'' if got == mod['words'] else '  MISMATCH'}")
        lo, hi = model_ofmap(lay["M"], lay["N"], lay["K"], rows, r["dataflow"], kib["ofmap"] * 1024, bw)
        got = r["dram_ofmap_writes"]
        bad += not lo <= got <= hi
        print(f"{r['id']:52s} {'ofmap':6s} {got:9d} {lo:9d}..{hi}{'' if lo <= got <= hi else '  MISMATCH'}")
    print("all rows match the model" if not bad else f"{bad} mismatches")
    return 1 if bad else 0


def compare(doc: dict) -> None:
    """The simulator's DRAM bytes per operand beside SCALE-Sim's, per golden row (needs attentionlite)."""
    from attentionlite.simulator.accelerator.hardware import load_hardware
    from attentionlite.simulator.accelerator.simulation import simulate
    from attentionlite.simulator.graph.ops import Gemm, Op, OpKind

    print(f"{'id':50s} {'ifmap ours':>10s} {'SCALE-Sim':>9s} {'filter ours':>11s} {'SCALE-Sim':>9s} "
          f"{'ofmap ours':>10s} {'SCALE-Sim':>9s}")
    for r in doc["cases"]:
        lay, kib = r["layer"], r["sram_kib"]
        m, n, k = lay["M"], lay["N"], lay["K"]
        op = Op(lay["name"], OpKind.LINEAR, ((m, k),), (m, n), macs=m * n * k, gemm=Gemm(m=m, n=n, k=k),
                weight_params=k * n, weight_nonzero=k * n)
        config = load_hardware("paa-default", cores=1, array=(r["array"]["rows"], r["array"]["cols"]),
                               dataflow=r["dataflow"], clock_mhz=1000.0,
                               bandwidth_gb_s=float(r["bandwidth_words_per_cycle"]), latency_ns=0.0,
                               input_kib=kib["ifmap"], weight_kib=kib["filter"], output_kib=kib["ofmap"])
        traffic = simulate([op], config).rows[0].traffic
        print(f"{r['id']:50s} {traffic.dram_read_input:10.0f} {r['dram_ifmap_reads']:9d} "
              f"{traffic.dram_read_weight:11.0f} {r['dram_filter_reads']:9d} "
              f"{traffic.dram_write_output:10.0f} {r['dram_ofmap_writes']:9d}")


def table(doc: dict) -> None:
    print(f"{'id':58s} {'ifmap':>8s} {'filter':>8s} {'ofmap':>8s} {'cycles':>8s} {'stall':>8s}")
    for r in doc["cases"]:
        print(f"{r['id']:58s} {r['dram_ifmap_reads']:8d} {r['dram_filter_reads']:8d} "
              f"{r['dram_ofmap_writes']:8d} {r['total_cycles']:8d} {r['stall_cycles']:8d}")
    for d in doc.get("dropped", []):
        print(f"{d['id']:58s} dropped: {d['reason']}")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    cmd = argv[0] if argv else "table"
    path = Path(argv[1]) if len(argv) > 1 else GOLDEN
    if cmd == "generate":
        doc = generate()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc, indent=1) + "\n")
        print(f"wrote {path}")
        table(doc)
        return 0
    if cmd == "table":
        table(json.loads(path.read_text()))
        return 0
    if cmd == "verify":
        return verify(json.loads(path.read_text()))
    if cmd == "compare":
        compare(json.loads(path.read_text()))
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())
