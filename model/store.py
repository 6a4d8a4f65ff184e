"""Columnar state: one numpy array per state variable, one entry per agent."""

from __future__ import annotations

import numpy as np


class Store:
    """Named arrays that grow together (amortised doubling) as agents are added.

    ``store.name`` is a view of the first ``len(store)`` entries, so in-place updates
    (``store.wellbeing[mask] += x``) write through, and ``store.name = values`` assigns
    into the array. The views are kept as plain instance attributes and renewed when
    entries are added, so reading a field costs one attribute lookup: the monthly
    processes read fields a few hundred times a month.
    """

    def __init__(self, fields: dict[str, tuple[type, object]], capacity: int = 16) -> None:
        """Create an empty store.

        Args:
            fields: name -> (dtype, fill value for new entries).
            capacity: initial capacity.
        """
        object.__setattr__(self, "_fields", fields)
        object.__setattr__(self, "_n", 0)
        object.__setattr__(self, "_data", {
            name: np.full(max(capacity, 1), fill, dtype) for name, (dtype, fill) in fields.items()
        })
        self._renew_views()

    def _renew_views(self) -> None:
        n = self._n
        self.__dict__.update({name: arr[:n] for name, arr in self._data.items()})

    def __len__(self) -> int:
        return self._n

    def __getattr__(self, name: str) -> np.ndarray:  # only reached for unknown names
        raise AttributeError(name)

    def __setattr__(self, name: str, value) -> None:
        if name not in self._data:
            raise AttributeError(f"{name} is not a field of this store")
        self._data[name][: self._n] = value

    def __getstate__(self) -> dict:
        return {"fields": self._fields, "n": self._n, "data": self._data}

    def __setstate__(self, state: dict) -> None:
        object.__setattr__(self, "_fields", state["fields"])
        object.__setattr__(self, "_n", state["n"])
        object.__setattr__(self, "_data", state["data"])
        self._renew_views()

    def append(self, n: int, **values) -> np.ndarray:
        """Add ``n`` entries with the given values (others take their fill value).

        Returns:
            The indices of the new entries.
        """
        start, end = self._n, self._n + n
        cap = len(next(iter(self._data.values())))
        if end > cap:
            new_cap = max(end, 2 * cap)
            for name, arr in self._data.items():
                dtype, fill = self._fields[name]
                grown = np.full(new_cap, fill, dtype)
                grown[:start] = arr[:start]
                self._data[name] = grown
        # Entries past the end still hold their fill value: write only the given fields.
        for name, value in values.items():
            self._data[name][start:end] = value
        object.__setattr__(self, "_n", end)
        self._renew_views()
        return np.arange(start, end)

    def columns(self) -> dict[str, np.ndarray]:
        """Copies of all arrays, by name."""
        return {name: arr[: self._n].copy() for name, arr in self._data.items()}

