"""Expected failures of every command: one line ``vjepa2-ac CMD: message`` and a distinct exit code."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest
import torch

from vjepa2_ac.experiments.cli import EXIT_CODES, exit_code_for, main


def test_every_listed_exception_exists_and_codes_are_distinct_per_meaning():
    for name, (code, _) in EXIT_CODES.items():
        module, _, cls = name.rpartition(".")
        exc = getattr(importlib.import_module(module), cls)
        assert issubclass(exc, BaseException) and exit_code_for(exc.__new__(exc)) == code, name
    by_code: dict[int, set[str]] = {}
    for code, meaning in EXIT_CODES.values():
        by_code.setdefault(code, set()).add(meaning.split(" ")[0])
    assert 0 not in by_code and 1 not in by_code
    assert len(by_code) >= 9  # argument, config, data, checkpoint, missing, exists, lock, device, non-finite


def _err_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_train_config_errors(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--config", str(tmp_path / "none.yaml"), "--out", str(out)]) == 6
    line = _err_line(capsys)
    assert line.startswith("vjepa2-ac train: config ") and "none.yaml" in line
    assert main(["train", "--set", "optim.lr=[1,", "--out", str(out)]) == 3
    assert "vjepa2-ac train:" in _err_line(capsys)
    assert main(["train", "--set", "data.batch_size=2.5", "--out", str(out)]) == 3
    assert _err_line(capsys) == (
        "vjepa2-ac train: config key 'data.batch_size': expected an integer, got 2.5"
    )
    assert main(["pretrain", "--set", "optim.lr=.nan", "--out", str(out)]) == 3
    assert "config key 'optim.lr': expected a finite number, got nan" in _err_line(capsys)
    assert main(["train", "--set", "loss.rollout_weight=-.inf", "--out", str(out)]) == 3
    assert "config key 'loss.rollout_weight': expected a finite number, got -inf" in _err_line(capsys)
    assert not out.exists()


def test_device_cuda_without_cuda(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "run"
    assert main(["train", "--device", "cuda", "--data", str(tmp_path), "--out", str(out)]) == 9
    assert _err_line(capsys) == (
        "vjepa2-ac train: run.device=cuda (--device cuda) but no CUDA device is available"
    )
    assert not out.exists()


def test_unexpected_exceptions_keep_their_traceback(monkeypatch):
    import vjepa2_ac.datasets.check as check

    def boom(*a, **k):
        raise KeyError("a bug")

    monkeypatch.setattr(check, "check_dataset", boom)
    with pytest.raises(KeyError, match="a bug"):
        main(["data", "check", "anything"])


def test_subprocess_one_line_and_exit_code(tmp_path):
    res = subprocess.run(
        [sys.executable, "-m", "vjepa2_ac.experiments.cli", "data", "check", str(tmp_path / "nothing")],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 4, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vjepa2-ac data check: ") and "nothing" in lines[0]
