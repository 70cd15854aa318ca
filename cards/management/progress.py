"""The terminal progress bar of the cards commands."""


class ProgressBar:
    """A one-line bar on a terminal; silent otherwise (logs and pipes get the summary only)."""

    def __init__(self, stream, width: int = 40):
        self.stream, self.width = stream, width
        self.enabled = hasattr(stream, "isatty") and stream.isatty()

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        filled = self.width * done // max(total, 1)
        self.stream.write(f"\r[{'#' * filled}{'.' * (self.width - filled)}] {done:,}/{total:,}")
        self.stream.flush()
        if done >= total:
            self.stream.write("\n")
