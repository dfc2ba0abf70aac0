"""Shared by the nightly commands: a tqdm progress bar only when stdout is a terminal."""

import sys
from collections.abc import Callable


def terminal_progress(stdout) -> tuple[Callable[[str, int, int], None] | None, Callable[[], None]]:
    if not (hasattr(sys.stdout, "isatty") and sys.stdout.isatty()):
        return None, lambda: None
    from tqdm import tqdm

    bars: dict[str, tqdm] = {}

    def progress(step: str, done: int, total: int) -> None:
        bar = bars.get(step)
        if bar is None:
            for other in bars.values():
                other.close()
            bar = bars[step] = tqdm(total=total, desc=step, unit="company", leave=False)
        bar.n = done
        bar.refresh()

    def close() -> None:
        for bar in bars.values():
            bar.close()

    return progress, close
