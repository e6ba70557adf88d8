"""A second process that renders serialised levels, so that a large render uses two cores.

procgen's ``set_state`` re-renders on the calling thread and holds the GIL while it does (measured: two threads
setting states take as long as one doing both), so only another process can render beside the Python work of
editing and serialising levels.  :class:`RenderWorker` starts ``python -m harness.heist.engine_worker`` and talks to it
through an unlinked shared memory file: the parent writes up to ``CHUNK`` serialised states into a slot and sends an
8-byte request down the worker's stdin; the worker renders them into the slot's frame area and answers with the
slot number on its stdout.  Messages are tiny, so neither side ever blocks on a full pipe; with two slots the
worker renders one chunk while the next waits.  Only trusted bytes (``HeistLevel.to_bytes``, validated
levels) reach the worker.  A worker that dies or stops answering raises :class:`RenderWorkerError` with its exit
status and the end of its stderr.  The process stops when the :class:`RenderWorker` is closed or collected, at
interpreter exit, or when its parent dies (its stdin closes).
"""

from __future__ import annotations

import mmap
import os
import select
import struct
import subprocess
import sys
import tempfile
import weakref
from pathlib import Path

import numpy as np

from harness.errors import RenderWorkerError
from harness.heist.procgen_env import OBS_SIZE, make_env

CHUNK = 32  # levels per request: small enough to balance the two processes well, large enough to amortise
SLOTS = 2  # one chunk rendering, one waiting
STATE_BYTES = 65536  # room per state (generated states are about 22 KB); larger chunks are rendered locally
FRAME_BYTES = OBS_SIZE * OBS_SIZE * 3
SLOT_IN = CHUNK * STATE_BYTES
SLOT_BYTES = SLOT_IN + CHUNK * FRAME_BYTES
REQUEST = struct.Struct("<II")  # slot, number of states; followed by that many uint32 lengths
ANSWER = struct.Struct("<I")  # slot
ANSWER_TIMEOUT_S = 60.0  # a chunk takes about 10 ms; a minute of silence means the worker is stuck


class RenderWorker:
    """Client side: one worker process for one distribution mode."""

    def __init__(self, mode: str):
        shm_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
        fd, path = tempfile.mkstemp(prefix="heist-render-", dir=shm_dir)
        os.unlink(path)  # nothing to clean up later, whatever happens to either process
        os.ftruncate(fd, SLOTS * SLOT_BYTES)
        self.shared = mmap.mmap(fd, SLOTS * SLOT_BYTES)
        self.stderr = tempfile.TemporaryFile()
        package_root = str(Path(__file__).resolve().parent.parent)  # the worker imports this very copy of harness
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
        self.proc = subprocess.Popen([sys.executable, "-m", "harness.heist.engine_worker", str(fd), mode], bufsize=0, env=env,
                                     pass_fds=(fd,), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr)
        os.close(fd)
        self._finalizer = weakref.finalize(self, _stop, self.proc, self.shared, self.stderr)

    def fits(self, states: list[bytes]) -> bool:
        return len(states) <= CHUNK and sum(map(len, states)) <= SLOT_IN

    def submit(self, slot: int, states: list[bytes]) -> None:
        """Send ``states`` (``fits``) to be rendered into ``slot``."""
        base, offset = slot * SLOT_BYTES, 0
        for state in states:
            self.shared[base + offset:base + offset + len(state)] = state
            offset += len(state)
        message = REQUEST.pack(slot, len(states)) + struct.pack(f"<{len(states)}I", *map(len, states))
        try:
            self.proc.stdin.write(message)
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise self._died() from None

    def ready(self) -> bool:
        """Whether an answer is waiting (never blocks)."""
        return bool(select.select([self.proc.stdout], [], [], 0)[0])

    def receive(self, slot: int, out: np.ndarray) -> None:
        """Wait for the answer for ``slot`` (answers come in request order) and copy its frames into ``out``."""
        if not select.select([self.proc.stdout], [], [], ANSWER_TIMEOUT_S)[0]:
            self.close()
            raise RenderWorkerError(f"the render worker sent nothing for {ANSWER_TIMEOUT_S:.0f} s; it was stopped")
        answer = self.proc.stdout.read(ANSWER.size)  # unbuffered, so that select sees every answer not yet read
        if answer is None or len(answer) < ANSWER.size:  # 4 bytes are written at once, so they arrive at once
            raise self._died()
        if ANSWER.unpack(answer)[0] != slot:
            raise RenderWorkerError(f"the render worker answered slot {ANSWER.unpack(answer)[0]}, expected {slot}")
        start = slot * SLOT_BYTES + SLOT_IN
        out[...] = np.frombuffer(self.shared, np.uint8, out.size, start).reshape(out.shape)

    def close(self) -> None:
        self._finalizer()

    def _died(self) -> RenderWorkerError:
        status = self.proc.wait(timeout=10)
        self.stderr.seek(0)
        tail = self.stderr.read().decode(errors="replace").strip().splitlines()[-5:]
        self.close()
        return RenderWorkerError(f"the render worker exited with status {status}; its stderr ends:\n" + "\n".join(tail))


def _stop(proc: subprocess.Popen, shared: mmap.mmap, stderr) -> None:
    if proc.poll() is None:
        proc.stdin.close()  # the worker exits at the end of its input
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for stream in (proc.stdin, proc.stdout, stderr):
        stream.close()
    shared.close()


def serve(fd: str, mode: str) -> None:
    """Worker side: render requests from stdin until it closes."""
    env = make_env(CHUNK, mode)
    shared = mmap.mmap(int(fd), SLOTS * SLOT_BYTES)
    requests, answers = sys.stdin.buffer, sys.stdout.buffer
    while header := requests.read(REQUEST.size):
        slot, n = REQUEST.unpack(header)
        lengths = struct.unpack(f"<{n}I", requests.read(4 * n))
        base, offset = slot * SLOT_BYTES, 0
        for i, length in enumerate(lengths):
            state = shared[base + offset:base + offset + length]
            env.call_c_func("set_state", i, state, length)
            offset += length
        start = base + SLOT_IN
        shared[start:start + n * FRAME_BYTES] = env.observe()[1]["rgb"][:n].tobytes()
        answers.write(ANSWER.pack(slot))
        answers.flush()


if __name__ == "__main__":
    serve(*sys.argv[1:])
