"""Loom's exception tree. Every error a user can cause carries a fix hint.

    LoomError                 base: message + hint, exit code 2 on the CLI
    ├── InputError            a file or argument the user gave is missing, unreadable or malformed
    ├── ConfigError           a YAML/CLI config has unknown keys or out-of-range values
    ├── NotFoundError         a dataset, tokenizer, run or model name that does not exist
    ├── ExistsError           something would be overwritten (a run without --resume)
    ├── MismatchError         two artefacts that must agree do not (tokenizer vs model/dataset)
    └── StorageError          LOOM_HOME's disk is full or read-only (the write was undone; HTTP 507)

The CLI prints `error: <message>` and `hint: <hint>` and exits non-zero; it never shows a traceback
for a LoomError.
"""

from __future__ import annotations


class LoomError(Exception):
    """An error the user can fix; `hint` says how."""

    exit_code = 2

    def __init__(self, message: str, hint: str = "", param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.param = param  # the request field at fault, when it came over HTTP (OpenAI's error.param)

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


class InputError(LoomError):
    pass


class ConfigError(LoomError):
    pass


class NotFoundError(LoomError):
    pass


class ExistsError(LoomError):
    pass


class MismatchError(LoomError):
    pass


class StorageError(LoomError):
    pass
