"""What became of each key of a partition's push: written, skipped or failed, from the server's answers.

Nothing is derived by subtraction: the scripts count the keys they wrote, found holding the same
event time and found holding a newer one, and every key of a call that could not run is counted
failed with the reason. ``redis_push.push_batches`` checks at the end that the three add up to the
rows it was given.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from featurestore_spark.online.redis_calls import Call

#: Parts of the answers of a server that cannot or may not run RESTORE (an ACL without it, a renamed
#: command, a server before Redis 7.0 that cannot read the payload): the partition stops create calls.
REFUSED_RESTORE = ("can't run this command", "NOPERM", "no permissions", "nknown Redis command", "unknown command",
                   "DUMP payload version or checksum are wrong", "Bad data format")


class Created(Enum):
    """The outcome of a create call."""

    WRITTEN = "written"  # its keys were made (and counted)
    EXISTS = "exists"  # a key existed: nothing written, the call goes again as a newer-wins call
    REFUSED = "refused"  # the server cannot or may not RESTORE: the same, and no more create calls
    ERROR = "error"  # another error (out of memory, a read-only replica): the newer-wins call meets it too


def reason(exc: BaseException) -> str:
    """An error answer in one line: its type and the first line of its message."""
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


@dataclass
class Tally:
    written: int = 0
    created: int = 0  # of written: keys made by a create call
    skipped: int = 0
    failed: int = 0
    error: str | None = None  # the first reason keys failed

    def create_answer(self, answer: object) -> Created:
        """Count a create call's answer (the number of keys it made, or -1 when a key existed)."""
        if isinstance(answer, int) and answer >= 0:
            self.written += answer
            self.created += answer
            return Created.WRITTEN
        if isinstance(answer, Exception):
            return Created.REFUSED if any(m in reason(answer) for m in REFUSED_RESTORE) else Created.ERROR
        return Created.EXISTS

    def check_answer(self, answer: list, call: Call) -> bool:
        """Count a newer-wins call's answer (written, same event time, newer, none existed); True when
        none of its keys existed. Keys holding this very event time were written by a lost earlier
        attempt when the call was ``resent``."""
        written, same, newer, fresh = (int(a) for a in answer)
        self.written += written + same * call.resent
        self.skipped += newer + same * (not call.resent)
        return bool(fresh)

    def fail(self, keys: int, why: str) -> None:
        self.failed += keys
        self.error = self.error or why

    def mark(self) -> tuple[int, int, int]:
        """The counts so far, for ``unconfirmed``."""
        return self.written, self.created, self.skipped

    def unconfirmed(self, since: tuple[int, int, int], why: str) -> None:
        """The keys answered for since ``since`` (written or skipped) were not confirmed (too few
        replicas acknowledged them): they count as failed instead, the skipped ones too (a rerun finds
        keys it wrote before holding the same event time, and only WAIT tells whether the replicas
        have them now)."""
        self.failed += (self.written - since[0]) + (self.skipped - since[2])
        self.written, self.created, self.skipped = since
        self.error = self.error or why
