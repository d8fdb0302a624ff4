"""What a candidate is: an investigative lead, never an identification.

The notice and label below travel with every candidate on every output; the score is a display convenience.
"""

from __future__ import annotations

NOTICE = "INVESTIGATIVE LEAD ONLY — NOT A POSITIVE IDENTIFICATION"
LABEL = NOTICE

#: dlib's published operating point: same-person pairs on LFW fall under 0.6.
DEFAULT_THRESHOLD = 0.6
#: Distance at which the score reaches 0.
SCORE_ZERO_DISTANCE = 1.2
MIN_CANDIDATES, MAX_CANDIDATES, DEFAULT_CANDIDATES = 2, 50, 20


def score(distance: float) -> float:
    """Map a Euclidean distance to 0–100, linearly: 0 → 100, the 0.6 threshold → 50, 1.2 or more → 0.

    Monotone and easy to read back into a distance; it is NOT a probability that the candidate is the person.
    """
    return round(max(0.0, 100.0 * (1.0 - distance / SCORE_ZERO_DISTANCE)), 1)


def candidate_fields(distance: float, threshold: float) -> dict:
    """The fields every candidate carries: distance, score, within_threshold and the lead-only label."""
    return {
        "distance": round(float(distance), 4),
        "score": score(distance),
        "within_threshold": bool(distance < threshold),
        "lead_only": True,
        "label": LABEL,
    }
