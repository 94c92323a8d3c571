"""The exec stream never signals a process group by the pid of a command already reaped (the pid may
name another process by then): a client that leaves after the command ended kills nothing."""

from __future__ import annotations

import asyncio
import os

import pytest

from localcluster.kubeletapi import channels


def test_client_leaving_after_the_command_was_reaped_signals_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    signalled: list[tuple[int, int]] = []
    real_killpg = os.killpg

    def recording_killpg(pgid: int, sig: int) -> None:
        signalled.append((pgid, sig))
        real_killpg(pgid, sig)

    async def scenario() -> int:
        proc = await asyncio.create_subprocess_exec("true", start_new_session=True)
        await proc.wait()  # reaped: its pid is free for the next process

        async def gone() -> bytes | None:
            return None

        monkeypatch.setattr(channels.os, "killpg", recording_killpg)
        await channels._feed(proc, -1, gone)
        return proc.pid

    pid = asyncio.run(scenario())
    assert (pid, 9) not in signalled and signalled == []
