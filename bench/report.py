"""Plain-text tables for the benchmarks' reports."""

from __future__ import annotations

from collections.abc import Collection, Sequence

__all__ = ["align"]


def align(lines: Sequence[Sequence[str]], left: Collection[int] = (0,)) -> str:
    """Cells padded to their column's width: columns in ``left`` (indexes, -1 = the last one)
    flush left, the others flush right; trailing spaces dropped."""
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    flush_left = {i % len(widths) for i in left}
    return "\n".join(
        "  ".join(
            cell.ljust(width) if i in flush_left else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(line, widths, strict=True))
        ).rstrip()
        for line in lines
    )


def print_failures(failures: Sequence[tuple[str, Sequence[str]]]) -> None:
    """Each failed run's label (e.g. "round 2") and its problems, as the benchmarks print them."""
    for label, problems in failures:
        print(f"\n{label} FAILED:")
        for problem in problems:
            print(f"  - {problem}")


def keep_workdir(keep: bool, failed: bool, workdir: object) -> bool:
    """Whether the work directory stays (asked for, or a run failed); says so when it does."""
    if keep or failed:
        print(f"\nwork directory kept: {workdir}")
        return True
    return False
