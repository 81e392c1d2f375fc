class BenchmarkFileError(ValueError):
    """A benchmark or split file exists but is unreadable, truncated or of the wrong format."""
