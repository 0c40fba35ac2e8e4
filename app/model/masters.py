"""The instrument masters the app names ticks with, and what the window says of them.

``MasterList`` keeps the masters in the order they were added (absolute paths, each once),
what each one holds once a worker has read it (``MasterInfo``) or why it cannot be read,
and the words the instrument card and its menu show. One unreadable master is marked as
such; it never hides the others.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from app.model.target_queries import MasterInfo

Info = MasterInfo | str  # a str: why the master cannot be read


@dataclass(frozen=True)
class MastersSummary:
    value: str  # "2 masters · 361 instruments"
    detail: str  # "2025-10-10, 2025-10-13" (the days they name), what is unreadable or loading
    tip: str  # one line per master: what it is, or why it is unreadable


@dataclass
class MasterList:
    paths: list[str] = field(default_factory=list)
    infos: dict[str, Info] = field(default_factory=dict)

    def add(self, raw_paths: Iterable[str]) -> list[str]:
        """Add masters not yet listed; returns the absolute paths added."""
        added = []
        for raw in raw_paths:
            path = str(Path(raw).absolute())
            if path not in self.paths:
                self.paths.append(path)
                added.append(path)
        return added

    def remove(self, path: str) -> bool:
        if path not in self.paths:
            return False
        self.paths.remove(path)
        self.infos.pop(path, None)
        return True

    def loaded(self, info: MasterInfo) -> None:
        self.infos[info.path] = info

    def unreadable(self, path: str, why: str) -> None:
        self.infos[path] = why

    def menu_label(self, path: str) -> str:
        info = self.infos.get(path)
        label = Path(path).name
        if isinstance(info, MasterInfo):
            label += f"  ({info.date.isoformat() if info.date else 'any day'}, {info.instruments:,})"
        elif info is not None:
            label += "  (unreadable)"
        return label

    def summary(self) -> MastersSummary:
        if not self.paths:
            return MastersSummary("None added", "Without a master, ticks keep their token but no symbol.", "")
        read = [self.infos[p] for p in self.paths if isinstance(self.infos.get(p), MasterInfo)]
        bad = [p for p in self.paths if isinstance(self.infos.get(p), str)]
        loading = len(self.paths) - len(read) - len(bad)
        days = sorted({i.date.isoformat() if i.date else "any day" for i in read})
        parts = [", ".join(days)] if read else []
        if bad:
            parts.append(f"{len(bad)} unreadable")
        if loading:
            parts.append(f"{loading} loading…")
        tips = []
        for path in self.paths:
            info = self.infos.get(path)
            if isinstance(info, MasterInfo):
                tips.append(info.description)
            elif info is None:
                tips.append(f"{path} (loading…)")
            else:
                tips.append(f"{path}: {info}")
        n = len(self.paths)
        value = f"{n} master{'s' if n != 1 else ''}"
        if read:
            value += f" · {sum(i.instruments for i in read):,} instruments"
        return MastersSummary(value, " · ".join(parts), "\n".join(tips))
