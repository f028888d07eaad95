"""DROID data for V-JEPA 2-AC: raw and RLDS readers, time-based clips, token alignment, writers.

Public API (see ``docs/data.md``):

* :func:`write_raw_episode` — write an episode in the raw DROID layout (atomic).
* :class:`RawDroidDataset`, :class:`RLDSDroidDataset` — torch datasets of clips (``video``, ``states``,
  ``actions``, ``frame_indices``, ...), configured by :class:`ClipConfig`.
* :func:`write_rlds_dataset`, :func:`raw_to_rlds` — RLDS (TFRecord) writer, no TensorFlow needed.
* :func:`check_dataset` — validate a raw or RLDS directory (``vjepa2-ac data check``).
* :class:`DataError` — raised for bad episodes; names the episode and the problem.

Heavy optional modules (``tensorflow_datasets``) are imported only when RLDS is used.
"""

from vjepa2_ac.datasets.alignment import ALIGNMENTS, align_to_tokens, num_token_steps
from vjepa2_ac.datasets.dataset import ClipConfig, DroidClipDataset, RawDroidDataset, SkipReport
from vjepa2_ac.datasets.episode import Episode, EpisodeData
from vjepa2_ac.datasets.errors import DataError
from vjepa2_ac.datasets.raw import RawEpisode, list_raw_episodes
from vjepa2_ac.datasets.transforms import VideoTransform
from vjepa2_ac.datasets.video import VideoReader, write_mp4
from vjepa2_ac.datasets.writer import write_raw_episode

__all__ = [
    "ALIGNMENTS",
    "align_to_tokens",
    "num_token_steps",
    "ClipConfig",
    "DroidClipDataset",
    "RawDroidDataset",
    "SkipReport",
    "Episode",
    "EpisodeData",
    "DataError",
    "RawEpisode",
    "list_raw_episodes",
    "VideoTransform",
    "VideoReader",
    "write_mp4",
    "write_raw_episode",
    "RLDSDroidDataset",
    "RLDSEpisode",
    "write_rlds_dataset",
    "raw_to_rlds",
    "check_dataset",
]

_LAZY = {
    "RLDSDroidDataset": "vjepa2_ac.datasets.rlds",
    "RLDSEpisode": "vjepa2_ac.datasets.rlds",
    "write_rlds_dataset": "vjepa2_ac.datasets.rlds",
    "raw_to_rlds": "vjepa2_ac.datasets.rlds",
    "check_dataset": "vjepa2_ac.datasets.check",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'vjepa2_ac.datasets' has no attribute {name!r}")
