"""Write blocking at cutover: the source refuses the application's writes while the drain runs, so that
no write made at the last moment can be lost.

MongoDB 6.0 offers it (`setUserWriteBlockMode`, the command mongosync uses): user writes are refused,
the migration's own reads go on. The cutover engages it when its drain begins; a cutover that fails
lifts it, so that the application can write to the source again; a cutover that completes leaves it
in place — the application writes to the destination from then on. A source that refuses the command
(older than 6.0, a server without it, a user without the privilege) is cut over as before: the person
must have stopped the writes, and any write that still reaches the source after the drain began is
counted and reported (`writes_after_drain`), and applied like the others until the drain ends.
"""

from __future__ import annotations

import logging
from typing import Any

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from livemigrate.engine.errors import EngineError
from livemigrate.engine.mongo.faults import retry

log = logging.getLogger("livemigrate.engine.write_block")


class WriteBlock:
    def __init__(self, source: MongoClient[Any], side: str = "source") -> None:
        """`side`: what the person calls the deployment blocked — the destination, in a reverse's cut back."""
        self._source = source
        self._side = side
        self.engaged = False
        self.refusal: str | None = None  # why the source did not block writes, when it did not

    def engage(self) -> bool:
        try:  # a fault that passes is tried again: a block lost to a reset would let writes through the drain
            retry(self._source, f"blocking the {self._side}'s writes for the cutover",
                  lambda: self._source.admin.command({"setUserWriteBlockMode": 1, "global": True}))
        except PyMongoError as error:
            self.refusal = str(error).split(", full error:")[0][:200]
            log.warning("the %s did not block writes (%s): the application's writes must have stopped; any "
                        "that reaches it from now on is counted and reported", self._side, self.refusal)
            return False
        self.engaged = True
        log.info("cutover: the %s blocks user writes (setUserWriteBlockMode) while the drain runs", self._side)
        return True

    def lift(self) -> None:
        if not self.engaged:
            return
        try:
            retry(self._source, f"allowing the {self._side}'s writes again",
                  lambda: self._source.admin.command({"setUserWriteBlockMode": 1, "global": False}))
            self.engaged = False
            log.info("the cutover did not complete: user writes to the %s are allowed again", self._side)
        except (PyMongoError, EngineError) as error:  # EngineError: the source stayed away past the fault limit
            log.error("the cutover did not complete and the %s's write block could not be lifted (%s): lift it "
                      "with db.adminCommand({setUserWriteBlockMode: 1, global: false})", self._side, error)
