"""The statuses of live migrations and of their validations, as the target API answers them.

A module of its own, with no dependencies, so that the CLI (which only shows them) loads nothing heavy.
"""

from __future__ import annotations

from enum import Enum


class MigrationStatus(str, Enum):
    NEW = "NEW"  # created; its migration host has not reported yet
    WORKING = "WORKING"
    COMPLETE = "COMPLETE"  # cut over and verified
    FAILED = "FAILED"
    EXPIRED = "EXPIRED"  # ready for cutover for longer than the cutover window, without one


RUNNING = frozenset({MigrationStatus.NEW, MigrationStatus.WORKING})
FINISHED = frozenset({MigrationStatus.COMPLETE, MigrationStatus.FAILED, MigrationStatus.EXPIRED})


class ValidationStatus(str, Enum):
    PENDING = "PENDING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
