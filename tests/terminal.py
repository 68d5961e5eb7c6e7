"""A command run in a pseudo-terminal and read by a terminal emulator (pyte), screen by screen, as a
person at a terminal of that size would have seen it — what tmux's `capture-pane` gives, without tmux."""

from __future__ import annotations

import fcntl
import os
import struct
import subprocess
import termios
import threading
from pathlib import Path

import pyte


class TerminalCapture:
    def __init__(self, command: list[str], env: dict[str, str], *, columns: int = 140, rows: int = 50) -> None:
        self.screens: list[str] = []  # each distinct screen, in the order shown
        self._screen = pyte.Screen(columns, rows)
        self._stream = pyte.ByteStream(self._screen)
        controller, terminal = os.openpty()
        fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        self.process = subprocess.Popen(command, env={**env, "TERM": "xterm-256color"}, stdin=terminal,
                                        stdout=terminal, stderr=terminal, close_fds=True)
        os.close(terminal)
        self._controller = controller
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self._controller, 65536)
            except OSError:  # the command ended and its side of the terminal closed
                break
            if not chunk:
                break
            self._stream.feed(chunk)
            shown = "\n".join(line.rstrip() for line in self._screen.display).rstrip()
            if not self.screens or self.screens[-1] != shown:
                self.screens.append(shown)

    def wait(self, timeout: float) -> int:
        code = self.process.wait(timeout=timeout)
        self._reader.join(timeout=5)
        os.close(self._controller)
        return code

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.wait(timeout=10)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        for number, screen in enumerate(self.screens):
            (directory / f"screen-{number:03d}.txt").write_text(screen + "\n")
