"""Smoke test of the planning benchmark (tiny settings, subprocess, JSON records)."""

import json
import subprocess
import sys

import torch

from vjepa2_ac.planners.bench import SHAPES, cem_iteration_flops


def test_bench_planning_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    cli = [sys.executable, "-m", "vjepa2_ac.experiments.cli", "bench", "planning"]
    cmd = cli + ["--samples", "3", "--horizons", "2", "--iterations", "1", "--kvcat-ablation"]
    cmd += ["--matmul-size", "128", "--error-samples", "4", "--json", str(out)]
    # the paper preset on the shipped sim model's shapes (800 samples), one timed iteration scaled to 10
    cmd += ["--configs", "sim", "--paper", "--paper-iterations", "1"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "speed-up" in res.stdout and "GFLOP/s" in res.stdout and "s per planned action" in res.stdout
    records = json.loads(out.read_text())
    rows = [r for r in records if r["preset"] == "iteration"]
    assert [(r["config"], r["samples"], r["horizon"]) for r in rows] == [("sim", 3, 2)]
    for r in rows:
        assert r["ours_ms"] > 0 and r["naive_ms"] > 0 and r["ours_kvcat_ms"] > 0
        assert abs(r["speedup"] - r["naive_ms"] / r["ours_ms"]) < 1e-9
        assert r["matmul_fp32_gflops"] > 0 and r["matmul_bf16_gflops"] > 0
        assert 0 < r["ours_frac_bf16_peak"] and 0 < r["ours_frac_peak"] and r["naive_energy_rel_err"] < 1e-4
        peak = r["matmul_bf16_gflops"] if r["ours_dtype"] == "bf16" else r["matmul_fp32_gflops"]
        assert abs(r["ours_frac_peak"] - r["ours_gflops"] / peak) < 1e-9
        assert r["bf16_energy_rel_err"] < 0.05
    paper = [r for r in records if r["preset"] == "paper"]
    assert [r["config"] for r in paper] == ["sim"]
    for r in paper:
        assert (r["samples"], r["iterations"], r["topk"], r["horizon"]) == (800, 10, 10, 1)
        assert r["s_per_action"] > 0 and r["extrapolated"] and r["iterations_timed"] == 1


def test_bench_rejects_bad_arguments():
    cmd = [sys.executable, "-m", "vjepa2_ac.experiments.cli", "bench", "planning", "--configs", "huge"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode != 0 and "unknown config 'huge'" in res.stderr
    res = subprocess.run(cmd[:-2] + ["--device", "cuda"], capture_output=True, text=True, timeout=120)
    if not torch.cuda.is_available():
        assert res.returncode != 0 and "CUDA is not available" in res.stderr
    res = subprocess.run(cmd[:-2] + ["--paper-iterations", "11"], capture_output=True, text=True, timeout=120)
    assert res.returncode != 0 and "--paper-iterations must be in [1, 10]" in res.stderr


def test_flop_count_cached_vs_naive():
    small = SHAPES["small"]
    # one step: the same work; three steps: the naive path re-runs 1 + 2 + 3 steps
    assert cem_iteration_flops(small, 10, 1, True) == cem_iteration_flops(small, 10, 1, False)
    ratio = cem_iteration_flops(small, 10, 3, False) / cem_iteration_flops(small, 10, 3, True)
    assert 2.0 < ratio < 3.0
