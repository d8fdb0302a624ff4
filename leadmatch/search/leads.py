"""What a candidate is: an investigative lead, never an identification.

The notice and label below travel with every candidate on every output. Beside its distance each candidate
carries the estimated false-alarm rate at that distance in its gallery (see `calibration`): how often a search
for someone who is not enrolled would show a rank-1 this close. It is not a probability that the candidate is
the person.
"""

from __future__ import annotations

NOTICE = "INVESTIGATIVE LEAD ONLY — NOT A POSITIVE IDENTIFICATION"
LABEL = NOTICE

#: dlib's published 1:1 operating point; used only where a gallery has no calibration yet.
DEFAULT_THRESHOLD = 0.6
MIN_CANDIDATES, MAX_CANDIDATES, DEFAULT_CANDIDATES = 2, 50, 20


def candidate_fields(distance: float, threshold: float, false_alarm_rate: float | None = None,
                     false_alarm_text: str | None = None) -> dict:
    """The fields every candidate carries: distance, within_threshold (under the gallery's calibrated
    threshold), the estimated false-alarm rate at this distance (a fraction, and as the sentence every output
    shows), and the lead-only label."""
    fields = {
        "distance": round(float(distance), 4),
        "within_threshold": bool(distance < threshold),
        "false_alarm_rate": None if false_alarm_rate is None else round(float(false_alarm_rate), 4),
        "false_alarm_text": None if false_alarm_text is None else
        f"estimated false-alarm rate at this distance: {false_alarm_text}",
        "lead_only": True,
        "label": LABEL,
    }
    return fields
