"""A session's result files: the one place that says which CSVs a session produces (served while it runs, stored
when it ends, listed for its profile)."""

from __future__ import annotations

from typing import Any

from stream.session import LiveSession


def session_files(session: LiveSession[Any]) -> dict[str, str]:
    """Each result file of `session` by its download name (`GET /api/sessions/{id}/{name}`), as CSV text."""
    return {
        "keypoints.csv": session.keypoints_csv(),
        "scores.csv": session.scores_csv(),
        "moves.csv": session.moves_csv(),
    }


def mean_score(session: LiveSession[Any]) -> float | None:
    """The mean of the session's tick scores; None when no tick was scored."""
    scores = [s.score for s in session.scores]
    return sum(scores) / len(scores) if scores else None
