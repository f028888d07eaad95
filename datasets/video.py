"""H.264 MP4 writing and frame-accurate random access with PyAV.

Reading never decodes a whole file to get a clip: :class:`VideoReader` seeks to the keyframe at or
before the first requested frame and decodes forward only until the last requested frame. A frame's
index is its position in presentation order, computed from its timestamp and the stream's constant
frame duration; this works for DROID files whose container reports the wrong fps (the index, not the
container's clock, is what matches the h5 rows). Variable-frame-rate files are detected and then read
through a table of frame timestamps (packets demuxed once, nothing decoded).
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vjepa2_ac.datasets.errors import DataError

__all__ = ["write_mp4", "VideoReader"]


def write_mp4(
    path: str | os.PathLike,
    frames: np.ndarray,
    fps: int = 15,
    *,
    crf: int = 18,
    gop: int = 15,
    preset: str = "veryfast",
    lossless: bool = False,
) -> None:
    """Encode ``frames`` (``uint8 [T, H, W, 3]`` RGB) as H.264 (yuv420p) into ``path``.

    ``lossless``: full-resolution chroma (yuv444p) at crf 0 instead, so decoded frames differ from the
    input only by the RGB/YUV rounding (at most a few levels): for small simulated frames, where 4:2:0
    chroma halves the colour resolution of objects a few pixels wide. ``H`` and ``W`` must be even.
    ``gop`` is the keyframe interval: random access decodes at
    most ``gop`` frames before the first wanted one. The file is written directly (callers that need
    atomicity write into a temporary directory, as :func:`~vjepa2_ac.datasets.writer.write_raw_episode`).
    """
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"{path}: frames must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
    t, h, w, _ = frames.shape
    if t == 0:
        raise ValueError(f"{path}: no frames to write")
    if h % 2 or w % 2:
        raise ValueError(f"{path}: H.264 yuv420p needs even frame sizes, got {h}x{w}")
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height = w, h
        stream.pix_fmt = "yuv444p" if lossless else "yuv420p"
        stream.options = {
            "crf": "0" if lossless else str(crf),
            "preset": preset,
            "g": str(gop),
            "keyint_min": str(gop),
        }
        for i in range(t):
            frame = av.VideoFrame.from_ndarray(frames[i], format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


class VideoReader:
    """Lazy random-access reader of one video file.

    The file is opened on first use (so a reader can be created in the parent process and used in a
    DataLoader worker) and closed by :meth:`close` or the context manager.

    Args:
        path: the video file.
        episode: episode path used in error messages (defaults to ``path``).
        threads: decoder threads (0 = FFmpeg's choice). DataLoader workers are already parallel, so
            the dataset uses 1 per worker.
    """

    def __init__(self, path: str | os.PathLike, *, episode: object | None = None, threads: int = 0):
        self.path = Path(path)
        self.episode = str(episode if episode is not None else path)
        self.threads = threads
        self._container = None
        self._stream = None
        self._pts = None  # frame timestamp table, only built for variable-frame-rate files

    # -- lifecycle -----------------------------------------------------------------------------
    def _open(self):
        if self._container is None:
            if not self.path.is_file():
                raise DataError(self.episode, f"missing video file {self.path}")
            try:
                self._container = av.open(str(self.path))
            except (av.FFmpegError, OSError, UnicodeDecodeError) as e:  # damaged metadata fails to decode
                raise DataError(self.episode, f"unreadable video {self.path}: {e}") from None
            if not self._container.streams.video:
                self.close()
                raise DataError(self.episode, f"no video stream in {self.path}")
            self._stream = self._container.streams.video[0]
            if self.threads != 1:
                self._stream.thread_type = "AUTO"
                self._stream.thread_count = self.threads
        return self._container, self._stream

    def close(self) -> None:
        """Close the file handle (safe to call twice)."""
        if self._container is not None:
            self._container.close()
        self._container = self._stream = None

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass

    def __getstate__(self):
        # Open handles do not cross process boundaries; workers reopen lazily.
        state = self.__dict__.copy()
        state["_container"] = state["_stream"] = None
        return state

    # -- metadata ------------------------------------------------------------------------------
    @property
    def frame_size(self) -> tuple[int, int]:
        """``(H, W)`` of the decoded frames."""
        _, stream = self._open()
        return int(stream.codec_context.height), int(stream.codec_context.width)

    @property
    def num_frames(self) -> int:
        """Number of frames, from the container's sample table (packets counted if it is absent)."""
        container, stream = self._open()
        if stream.frames:
            return int(stream.frames)
        # Containers without a frame count (rare for MP4): count packets; no decoding.
        count = sum(1 for p in container.demux(stream) if p.size)
        container.seek(0, stream=stream)
        return count

    def _frame_duration(self, stream) -> Fraction:
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not rate:
            raise DataError(self.episode, f"{self.path}: cannot determine the frame duration")
        return 1 / Fraction(rate) / stream.time_base  # in time-base ticks

    def _pts_table(self) -> np.ndarray:
        """Sorted presentation timestamps of all frames (demuxed once, nothing decoded)."""
        if self._pts is None:
            container, stream = self._open()
            container.seek(0, stream=stream, backward=True)
            pts = [p.pts for p in container.demux(stream) if p.size and p.pts is not None]
            self._pts = np.sort(np.asarray(pts, dtype=np.int64))
        return self._pts

    # -- decoding ------------------------------------------------------------------------------
    def read(self, indices) -> np.ndarray:
        """Decode the frames at ``indices`` (any order, repeats allowed).

        Frame ``k`` is the ``k``-th frame in presentation order. Constant-frame-rate files (the usual
        case) map timestamps to positions arithmetically; if a timestamp falls off that grid the file
        is variable-frame-rate and the reader switches, for this file, to a table of all frame
        timestamps built by demuxing the packets once (no decoding).

        Returns:
            ``uint8 [len(indices), H, W, 3]`` RGB frames in the order of ``indices``.
        """
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size == 0:
            raise ValueError("indices: expected at least one frame index")
        try:
            return self._read(idx)
        except (av.FFmpegError, UnicodeDecodeError) as e:  # damage surfaces while demuxing or decoding
            raise DataError(self.episode, f"damaged video {self.path}: {e}") from None

    def _read(self, idx: np.ndarray) -> np.ndarray:
        n = self.num_frames
        if idx.min() < 0 or idx.max() >= n:
            raise DataError(
                self.episode, f"frame index {int(idx.max())} out of range for {self.path} with {n} frames"
            )
        wanted = sorted(set(idx.tolist()))
        got = None
        if self._pts is None:
            got = self._decode_cfr(wanted)
        if got is None:
            got = self._decode_table(wanted)
        missing = [k for k in wanted if k not in got]
        if missing:
            raise DataError(
                self.episode, f"{self.path}: could not decode frames {missing[:5]} (file truncated?)"
            )
        return np.stack([got[int(k)] for k in idx])

    def _decode_cfr(self, wanted: list[int]) -> dict[int, np.ndarray] | None:
        """Decode assuming a constant frame duration; ``None`` if the file turns out not to be CFR."""
        container, stream = self._open()
        dur = self._frame_duration(stream)
        start = stream.start_time or 0
        first, last = wanted[0], wanted[-1]
        got: dict[int, np.ndarray] = {}
        # backward=True lands on the keyframe at or before the target timestamp.
        container.seek(int(start + first * dur), stream=stream, backward=True, any_frame=False)
        for frame in container.decode(stream):
            if frame.pts is None:
                raise DataError(self.episode, f"{self.path}: frame without a timestamp")
            pos = (frame.pts - start) / dur
            k = round(pos)
            if abs(pos - k) > 0.25:
                return None  # off the constant-rate grid: variable frame rate
            if k > first and first not in got:
                return None  # the seek overshot: timestamps do not follow the nominal rate
            if k in wanted and k not in got:
                got[k] = frame.to_ndarray(format="rgb24")
            if k >= last:
                break
        return got

    def _decode_table(self, wanted: list[int]) -> dict[int, np.ndarray]:
        table = self._pts_table()
        if len(table) < wanted[-1] + 1:
            raise DataError(self.episode, f"{self.path}: only {len(table)} frames have timestamps")
        container, stream = self._open()
        first_pts, last_pts = int(table[wanted[0]]), int(table[wanted[-1]])
        want_pts = {int(table[k]): k for k in wanted}
        got: dict[int, np.ndarray] = {}
        container.seek(first_pts, stream=stream, backward=True, any_frame=False)
        for frame in container.decode(stream):
            if frame.pts is None:
                raise DataError(self.episode, f"{self.path}: frame without a timestamp")
            if frame.pts > first_pts and want_pts[first_pts] not in got:
                raise DataError(self.episode, f"{self.path}: seek landed after frame {wanted[0]}")
            k = want_pts.get(int(frame.pts))
            if k is not None and k not in got:
                got[k] = frame.to_ndarray(format="rgb24")
            if frame.pts >= last_pts:
                break
        return got
