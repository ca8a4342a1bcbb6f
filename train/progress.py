"""The rich progress bar of a training run, showing the latest loss terms (rank 0 only)."""

from __future__ import annotations


class TrainProgress:
    """A rich progress bar with the loss terms (no-op when disabled or off rank 0)."""

    def __init__(self, enabled: bool, total: int, start: int):
        self.enabled, self.total, self.start = enabled, total, start
        self._p = None

    def __enter__(self):
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self._p = Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                               TimeRemainingColumn(), TextColumn("{task.description}"), transient=False)
            self._p.__enter__()
            self._task = self._p.add_task("", total=self.total, completed=self.start)
        return self

    def update(self, step: int, terms: dict[str, float]) -> None:
        if self._p is not None:
            desc = " ".join(f"{k.split('/')[-1]}={v:.4g}" for k, v in terms.items() if k.startswith("loss/"))
            self._p.update(self._task, completed=step, description=desc)

    def __exit__(self, *exc):
        if self._p is not None:
            self._p.__exit__(*exc)
        return False
