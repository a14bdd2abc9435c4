"""Error types shared by every front-end.

`UserError` is anything the user can fix (bad data, bad config, bad usage): front-ends show its
message as one line and exit with status 2. `TrainingError` is a failure while training or
exporting: exit status 1.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input, config or usage. The message is one line naming the problem and the fix."""

    exit_code = 2


class TrainingError(Exception):
    """Training, evaluation or export failed."""

    exit_code = 1
