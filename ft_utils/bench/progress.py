"""Progress of a benchmark run, on stderr: a bar redrawn in place on a terminal, plain
lines (one per round) when stderr is not one (a CI log, a file), nothing when off."""

import os
import sys
import time


def _clock(seconds):
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60}:{seconds % 60:02d}"


class Progress:
    """``total`` is the weight of the whole run (the sum of the weights that sample()
    will be given); the time left is the time so far scaled by the weight left."""

    def __init__(self, total, stream=None, mode="auto"):
        self.stream = sys.stderr if stream is None else stream
        if mode == "auto":
            mode = "bar" if getattr(self.stream, "isatty", lambda: False)() else "lines"
        self.mode = mode
        self.total = max(total, 1e-9)
        self.done = 0.0
        self.start = time.monotonic()
        self.shown = False  # a bar is on the terminal's last line

    def left(self):
        """Seconds left, or None before anything is done."""
        if self.done <= 0:
            return None
        return (time.monotonic() - self.start) * (self.total - self.done) / self.done

    def _status(self, suite, where):
        left = self.left()
        eta = "time left: estimating" if left is None else f"{_clock(left)} left"
        return f"{100 * self.done / self.total:3.0f}% {eta} | {suite} | {where}"

    def _columns(self):
        try:
            return os.get_terminal_size(self.stream.fileno()).columns
        except (AttributeError, OSError, ValueError):  # not a real terminal (a test's stream)
            return 100

    def sample(self, weight, suite, where, variant, round_done):
        """One sample of ``weight`` is done: ``where`` says which group, thread count and
        round, ``variant`` what just ran; ``round_done`` is true when it closed a round
        (a plain line then)."""
        self.done += weight
        if self.mode == "bar":
            width = self._columns()
            filled = int(20 * min(self.done / self.total, 1.0))
            text = f"[{'#' * filled}{'.' * (20 - filled)}] {self._status(suite, f'{where}, {variant}')}"
            self.stream.write("\r\x1b[K" + text[: width - 1])
            self.stream.flush()
            self.shown = True
        elif self.mode == "lines" and round_done:
            self.line(self._status(suite, where))

    def line(self, text):
        """A line of its own (a stage without rounds, e.g. the queues' extras)."""
        if self.mode == "off":
            return
        self.clear()
        print(f"[bench] {text}", file=self.stream, flush=True)

    def clear(self):
        """Takes the bar off the terminal (before the report prints a table)."""
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.shown = False
