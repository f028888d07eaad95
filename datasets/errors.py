"""Errors raised for bad DROID data: every message names the episode and the problem."""

from __future__ import annotations

_PREFIX = "DataError: "


class DataError(ValueError):
    """A problem with one episode (or one dataset file) that makes it unusable.

    Attributes:
        episode: path (or RLDS id) of the offending episode.
        problem: short description of what is wrong and what was expected.
    """

    def __init__(self, episode: object, problem: str | None = None):
        if problem is None:
            # One argument: a DataLoader worker's error re-raised in the main process, whose message is
            # the worker's traceback ending in "...DataError: <episode>: <problem>"; keep that line.
            text = str(episode).strip().splitlines()[-1] if str(episode).strip() else ""
            text = text.split(_PREFIX, 1)[-1]
            episode, _, problem = text.partition(": ")
        self.episode = str(episode)
        self.problem = problem
        super().__init__(f"{self.episode}: {problem}")
