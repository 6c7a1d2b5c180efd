"""Exceptions with one-line messages that the CLI prints as they are."""

from ablate.records.redact import redact_text  # standard library only: a URL's password never reaches a message


class ConfigError(ValueError):
    """A bad input: the message names the key, the value and what is allowed.

    The CLI prints ``str(err)`` on one line and exits with code 2, before any
    expensive work starts. A database URL's password in the message is shown as ``***``
    (:func:`ablate.records.redact.redact_text`).
    """

    def __init__(self, key: str, value, allowed: str):
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(redact_text(f"config error: {key}={value!r}: {allowed}"))


class ConfigFileError(ConfigError):
    """A config or sweep file that cannot be read (invalid YAML): the message names the file and line."""

    def __init__(self, message: str):
        self.key, self.value, self.allowed = "file", None, message
        ValueError.__init__(self, message)


class RunFailed(RuntimeError):
    """A run that cannot go on; the reason is stored in summary.json."""


class NonFiniteEnergy(RunFailed):
    """The local energy became NaN or Inf during training."""


class WriteFailed(RunFailed, OSError):
    """A file of the run could not be written (a full disk, a read-only folder). The message is
    one line naming the file; what was written before it (the previous checkpoint, the earlier
    summary.json) is kept, so the same command resumes once there is room. Also an OSError, so
    code that tolerates a failed write (a heartbeat file) still does."""

    def __init__(self, path, err: OSError):
        super().__init__(f"cannot write {path}: {err.strerror or err} (the earlier files are kept: free "
                         "space, then rerun the same command to resume from the previous checkpoint)")
        self.path, self.errno = str(path), err.errno
