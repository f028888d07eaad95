"""Smoke test of the planning benchmark (tiny settings, subprocess, JSON records)."""

import json
import subprocess
import sys

from vjepa2_ac.planners.bench import SHAPES, cem_iteration_flops


def test_bench_planning_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    cli = [sys.executable, "-m", "vjepa2_ac.experiments.cli", "bench", "planning"]
    cmd = cli + ["--samples", "3", "--horizons", "2"]
    cmd += ["--iterations", "1", "--no-fp32-ablation", "--matmul-size", "128", "--error-samples", "4"]
    cmd += ["--json", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "speed-up" in res.stdout and "GFLOP/s" in res.stdout
    records = json.loads(out.read_text())
    assert [(r["config"], r["samples"], r["horizon"]) for r in records] == [("small", 3, 2)]
    for r in records:
        assert r["ours_ms"] > 0 and r["naive_ms"] > 0
        assert abs(r["speedup"] - r["naive_ms"] / r["ours_ms"]) < 1e-9
        assert r["matmul_fp32_gflops"] > 0 and r["matmul_bf16_gflops"] > 0
        assert 0 < r["ours_frac_bf16_peak"] and r["naive_energy_rel_err"] < 1e-4
        assert r["bf16_energy_rel_err"] < 0.05


def test_bench_rejects_bad_arguments():
    cmd = [sys.executable, "-m", "vjepa2_ac.experiments.cli", "bench", "planning", "--configs", "huge"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode != 0 and "unknown config 'huge'" in res.stderr


def test_flop_count_cached_vs_naive():
    small = SHAPES["small"]
    # one step: the same work; three steps: the naive path re-runs 1 + 2 + 3 steps
    assert cem_iteration_flops(small, 10, 1, True) == cem_iteration_flops(small, 10, 1, False)
    ratio = cem_iteration_flops(small, 10, 3, False) / cem_iteration_flops(small, 10, 3, True)
    assert 2.0 < ratio < 3.0
