"""DROID (and other robots') data for V-JEPA 2-AC: raw, RLDS and LeRobot readers, time-based clips, writers.

Public API (see ``docs/data.md``):

* :func:`write_raw_episode` — write an episode in the raw DROID layout (atomic).
* :class:`RawDroidDataset`, :class:`RLDSDroidDataset` — torch datasets of clips (``video``, ``states``,
  ``actions``, ``frame_indices``, ...), configured by :class:`ClipConfig`.
* :func:`write_rlds_dataset`, :func:`raw_to_rlds` — RLDS (TFRecord) writer, no TensorFlow needed.
* :class:`LeRobotClipDataset`, :func:`list_lerobot_episodes`, :class:`LeRobotMapping` — LeRobot v3.0
  datasets (DROID's port via ``preset="droid"``, any robot via a mapping); :class:`LeRobotWriter`,
  :func:`raw_to_lerobot`.
* :class:`ShardedClipStream` — clips with episodes sharded across ranks and DataLoader workers.
* :func:`check_dataset` — validate a raw, RLDS or LeRobot directory (``vjepa2-ac data check``).
* :func:`read_sim_array`, :class:`SimLabelClips` — the simulator record ``sim.npz`` that ``vjepa2-ac
  collect`` writes beside an episode (evaluation and named ablations only; DROID has no such file).
* :class:`DataError` — raised for bad episodes; names the episode and the problem.

Heavy optional modules (``tensorflow_datasets``) are imported only when RLDS is used.
"""

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
    "LeRobotClipDataset",
    "LeRobotEpisode",
    "LeRobotMapping",
    "LeRobotWriter",
    "list_lerobot_episodes",
    "raw_to_lerobot",
    "ShardedClipStream",
    "SIM_FILE",
    "SimLabelClips",
    "read_sim_array",
    "sim_signal",
]

# Everything is imported on first use: `vjepa2-ac data check` and the writer then never import torch
# (seconds on a busy machine), and RLDS never imports tensorflow_datasets unless asked for.
_LAZY = {
    "ALIGNMENTS": "alignment",
    "align_to_tokens": "alignment",
    "num_token_steps": "alignment",
    "SIM_FILE": "sim_labels",
    "SimLabelClips": "sim_labels",
    "read_sim_array": "sim_labels",
    "sim_signal": "sim_labels",
    "ClipConfig": "dataset",
    "DroidClipDataset": "dataset",
    "RawDroidDataset": "dataset",
    "RLDSDroidDataset": "dataset",
    "SkipReport": "dataset",
    "Episode": "episode",
    "EpisodeData": "episode",
    "DataError": "errors",
    "RawEpisode": "raw",
    "list_raw_episodes": "raw",
    "VideoTransform": "transforms",
    "VideoReader": "video",
    "write_mp4": "video",
    "write_raw_episode": "writer",
    "RLDSEpisode": "rlds",
    "write_rlds_dataset": "rlds",
    "raw_to_rlds": "rlds",
    "check_dataset": "check",
    "LeRobotClipDataset": "lerobot",
    "LeRobotEpisode": "lerobot",
    "list_lerobot_episodes": "lerobot",
    "LeRobotMapping": "lerobot_mapping",
    "LeRobotWriter": "lerobot_writer",
    "raw_to_lerobot": "lerobot_convert",
    "ShardedClipStream": "sharding",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"vjepa2_ac.datasets.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'vjepa2_ac.datasets' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
