"""Reference figures from Lee et al. 2023 (RLAIF), Table 2: AI-labeler alignment of PaLM 2 L, in %.

Plain data, no Django. Keys: (preamble, chain_of_thought, shots).
"""
from __future__ import annotations

TABLE2_SOURCE = "Lee et al. 2023 (arXiv 2309.00267), Table 2, PaLM 2 L labeler"

# (preamble, cot, shots) -> (summarization, helpful, harmless); None where the paper has no figure.
TABLE2: dict[tuple[str, bool, int], tuple[float | None, float | None, float | None]] = {
    ("base", False, 0): (76.1, 67.8, 69.4),
    ("base", False, 1): (76.0, 67.1, 71.7),
    ("base", False, 2): (75.7, 66.8, 72.1),
    ("base", True, 0): (77.5, 69.1, 70.6),
    ("detailed", False, 0): (77.4, 67.6, 70.1),
    ("detailed", False, 1): (76.2, 67.6, 71.5),
    ("detailed", False, 2): (76.3, 67.3, 71.6),
    ("detailed", False, 8): (69.8, None, None),
    ("detailed", True, 0): (78.0, 67.8, 70.1),
    ("detailed", True, 1): (77.4, 67.4, 69.9),
    ("detailed", True, 2): (76.8, 67.4, 69.2),
}

HUMAN_AGREEMENT_RANGE = (73.0, 77.0)  # inter-annotator agreement on the TL;DR data, %


def table2_label(preamble: str, cot: bool, shots: int) -> str:
    return f"{preamble.capitalize()}{' + CoT' if cot else ''} {shots}-shot"


# Our task names onto Table 2's columns: a "dialogue" dataset is the paper's helpful dialogue
# task (HH-RLHF helpful); the harmlessness task has its own column.
TABLE2_COLUMN = {"summarization": 0, "helpful": 1, "dialogue": 1, "harmless": 2}


def table2_lookup(preamble: str, cot: bool, shots: int, task: str = "summarization") -> float | None:
    """The paper's figure for a prompt setting on a task ("summarization", "dialogue" = "helpful",
    "harmless"); None where the paper has none, or for a task it did not study."""
    row = TABLE2.get((preamble, bool(cot), int(shots)))
    column = TABLE2_COLUMN.get(task)
    if row is None or column is None:
        return None
    return row[column]
