"""A write that fails inside the store's transaction leaves the store usable (no transaction left open)."""

from __future__ import annotations

from pathlib import Path

import pytest

from apiserver.store import Change, Store


def test_a_value_sqlite_cannot_bind_rolls_back_and_later_writes_succeed(tmp_path: Path) -> None:
    store = Store(tmp_path / "c.db")
    try:
        bad = {"metadata": {"name": "bad", "namespace": "ns"}, "data": {"k": "\ud800"}}  # lone surrogate
        with pytest.raises(UnicodeEncodeError):
            store.commit([Change("ADDED", "configmaps", bad)])
        assert store.get("configmaps", "ns", "bad") is None
        good = {"metadata": {"name": "good", "namespace": "ns"}, "data": {"k": "v"}}
        events = store.commit([Change("ADDED", "configmaps", good)])
        assert [e.type for e in events] == ["ADDED"]
        stored = store.get("configmaps", "ns", "good")
        assert stored is not None and stored["data"] == {"k": "v"}
    finally:
        store.close()
    reopened = Store(tmp_path / "c.db")
    try:
        assert reopened.get("configmaps", "ns", "good") is not None
        assert reopened.get("configmaps", "ns", "bad") is None
    finally:
        reopened.close()
