"""``plan`` faults: bad numbers, a run folder shared by two processes, junk episode files."""

from __future__ import annotations

import json

import pytest
from fault_helpers import locked_by_another_process
from test_plan import tiny_world_model

from vjepa2_ac.atomic import default_mode
from vjepa2_ac.datasets.errors import DataError
from vjepa2_ac.experiments.cli import main
from vjepa2_ac.experiments.results import write_summary
from vjepa2_ac.rundir import release_run_dir

PLAN_TINY = ["--samples", "6", "--topk", "2", "--iterations", "1", "--max-steps", "2", "--no-progress"]
PLAN_TINY += ["--save-frames", "0", "--landscapes", "0"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    tiny_world_model().save(path)
    return str(path)


def _plan(checkpoint: str, out, *extra: str) -> int:
    args = ["plan", "--checkpoint", checkpoint, "--task", "reach", "--episodes", "2", "--out", str(out)]
    return main([*args, *PLAN_TINY, *extra])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--stop-energy", "nan"], "--stop-energy must be a finite number > 0, got nan"),
        (["--stop-energy", "inf"], "--stop-energy must be a finite number > 0, got inf"),
        (["--save-frames", "-1"], "--save-frames must be >= 0, got -1"),
        (["--landscapes", "-2"], "--landscapes must be >= 0, got -2"),
    ],
)
def test_bad_numbers_fail_before_any_output(checkpoint, tmp_path, capsys, args, message):
    out = tmp_path / "out"
    assert _plan(checkpoint, out, *args) == 2
    assert capsys.readouterr().err.strip() == f"vjepa2-ac plan: {message}"
    assert not out.exists()


def test_one_process_per_run_folder_and_junk_episode_files(checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    assert _plan(checkpoint, out) == 0
    finished = {p.name: p.read_bytes() for p in (out / "episodes").iterdir()}
    assert sorted(finished) == ["ep_0000.json", "ep_0001.json"]
    for name in ("summary.json", "summary.md", "episodes.csv", "run_config.json"):
        assert (out / name).stat().st_mode & 0o777 == default_mode(), name
    assert (out / "episodes" / "ep_0000.json").stat().st_mode & 0o777 == default_mode()
    capsys.readouterr()

    release_run_dir(out)  # this test process held it since its own run; now another process takes it
    with locked_by_another_process(out) as pid:
        for extra in ((), ("--overwrite",)):  # another run, or one wiping the folder, while it works
            assert _plan(checkpoint, out, "--episodes", "4", *extra) == 8
            err = capsys.readouterr().err.strip().splitlines()
            assert err == [
                f"vjepa2-ac plan: --out {out} is in use by process {pid} (lock file {out}/.lock); "
                "wait for it to finish or use another folder"
            ]
            assert {p.name: p.read_bytes() for p in (out / "episodes").iterdir()} == finished

    # A damaged episode file is named, not counted and not a bare traceback.
    (out / "episodes" / "ep_0001.json").write_text("{")
    assert _plan(checkpoint, out) == 4
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"vjepa2-ac plan: {out}/episodes/ep_0001.json: not a valid episode record (")
    (out / "episodes" / "ep_0001.json").write_bytes(finished["ep_0001.json"])
    (out / "episodes" / "ep_old.json").write_text("{}")
    assert _plan(checkpoint, out) == 4
    assert capsys.readouterr().err.strip() == (
        f"vjepa2-ac plan: {out}/episodes/ep_old.json: stray file in episodes/: expected ep_<index>.json "
        "(e.g. ep_0003.json)"
    )


def test_summary_counts_this_runs_episodes_only(checkpoint, tmp_path):
    out = tmp_path / "out"
    assert _plan(checkpoint, out, "--episodes", "3") == 0
    settings = json.loads((out / "run_config.json").read_text())
    rows = write_summary(out, extra={"settings": settings}, episodes=2)
    assert rows[0]["n"] == 2 and json.loads((out / "summary.json").read_text())["rows"][0]["n"] == 2
    assert _plan(checkpoint, out, "--episodes", "2") == 0  # the command itself: --episodes 2 reports n = 2
    assert json.loads((out / "summary.json").read_text())["rows"][0]["n"] == 2
    rec = json.loads((out / "episodes" / "ep_0001.json").read_text())
    (out / "episodes" / "ep_0001.json").write_text(json.dumps({**rec, "episode": 2}))
    with pytest.raises(DataError, match=r"ep_0001.json: holds episode 2, its name says 1"):
        write_summary(out, extra={"settings": settings})
    (out / "episodes" / "ep_0001.json").write_text(json.dumps({**rec, "method": "random"}))
    with pytest.raises(DataError, match=r"ep_0001.json: belongs to another run \(method 'random'"):
        write_summary(out, extra={"settings": settings})


def test_shipped_checkpoint_is_hashed_and_a_flipped_byte_is_refused(tmp_path, capsys):
    from vjepa2_ac.checkpoint import load_checkpoint
    from vjepa2_ac.experiments.pretrained import pretrained_path

    shipped = pretrained_path()
    ckpt = load_checkpoint(shipped)  # verifies the stored hash
    assert len(ckpt["sha256"]) == 64
    data = bytearray(shipped.read_bytes())
    key = max(ckpt["state_dict"], key=lambda k: ckpt["state_dict"][k].numel())
    at = data.find(ckpt["state_dict"][key].reshape(-1)[100:104].numpy().tobytes())
    data[at + 3] ^= 0x10  # one exponent bit of one weight
    flipped = tmp_path / "flipped.pt"
    flipped.write_bytes(bytes(data))
    out = tmp_path / "out"
    args = ["plan", "--checkpoint", str(flipped), "--task", "reach", "--episodes", "1", "--out", str(out)]
    assert main(args) == 2
    assert "flipped.pt: content hash mismatch" in capsys.readouterr().err
    assert not out.exists()
