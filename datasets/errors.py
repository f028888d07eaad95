"""Errors raised for bad DROID data: every message names the episode and the problem."""

from __future__ import annotations


class DataError(ValueError):
    """A problem with one episode (or one dataset file) that makes it unusable.

    Attributes:
        episode: path (or RLDS id) of the offending episode.
        problem: short description of what is wrong and what was expected.
    """

    def __init__(self, episode: object, problem: str):
        self.episode = str(episode)
        self.problem = problem
        super().__init__(f"{self.episode}: {problem}")
