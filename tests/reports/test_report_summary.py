"""The generated summary sentences, on rows whose answers are known by hand."""

from attentionlite.reports.summary import (
    cpu_caveat,
    energy_phrase,
    head_to_head,
    milli,
    percent,
    ratio_phrase,
    speed_phrase,
    times,
    winners_by_array,
)


def _row(model: str, side: int, latency: float, energy: float) -> dict:
    return {"model": model, "array_rows": side, "array_cols": side, "dataflow": "os",
            "latency_s": latency, "energy_per_image_j": energy}


SWEEP = [_row("a", 8, 1.0, 3.0), _row("a", 16, 2.0, 3.0), _row("a", 32, 2.0, 1.0),
         _row("b", 8, 2.0, 1.0), _row("b", 16, 1.8, 1.5), _row("b", 32, 1.0, 2.0)]


def test_head_to_head_counts_wins_and_the_largest_margin():
    # latency b/a: 2.0, 0.9, 0.5 -> a wins once, by 100%; energy b/a: 1/3, 0.5, 2.0 -> a wins once, by 100%
    assert head_to_head(SWEEP, "a", "b") == (
        "`a` against `b`: faster at 1 of 3 design points (by up to 100.0%); "
        "cheaper in energy at 1 of 3 design points (by up to 100.0%).")


def test_winners_by_array_groups_runs_of_sizes():
    assert winners_by_array(SWEEP, "latency_s", "latency") == (
        "Lowest latency by array size (best dataflow each): 8x8: `a`; 16x16 to 32x32: `b`.")


def test_numbers_read_without_exponents():
    assert (times(1.984), times(37.44), times(2089.03)) == ("1.98x", "37.4x", "2,089x")
    assert ratio_phrase(0.5, "faster", "slower", "as fast") == "2x slower"
    assert ratio_phrase(1.001, "faster", "slower", "as fast") == "as fast (within 0.5%)"
    assert energy_phrase(0.999) == "as much energy (within 0.5%)" and speed_phrase(2.5) == "2.5x faster"
    assert (milli(0.00942), milli(3.4865)) == ("9.42", "3,486")
    assert (percent(0.257), percent(0.00043)) == ("26%", "0.043%")


def test_cpu_caveat_only_when_a_cache_is_slower_than_what_lies_beyond_it():
    assert cpu_caveat({"L1": 500e9, "L2": 100e9, "DRAM": 20e9}) == ""
    assert "L2 (0.14 GB/s) slower than L3 (3.99 GB/s)" in cpu_caveat({"L1": 5e11, "L2": 1.4e8, "L3": 3.99e9,
                                                                      "DRAM": 3.5e9})
