"""Columnar state: one numpy array per state variable, one entry per agent."""

from __future__ import annotations

import numpy as np


class Store:
    """Named arrays that grow together (amortised doubling) as agents are added.

    ``store.name`` is a view of the first ``len(store)`` entries, so in-place updates
    (``store.wellbeing[mask] += x``) write through.
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

    def __len__(self) -> int:
        return self._n

    def __getattr__(self, name: str) -> np.ndarray:
        if name.startswith("_"):  # not a field (also keeps pickle and copy working)
            raise AttributeError(name)
        try:
            return self._data[name][: self._n]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value) -> None:
        self._data[name][: self._n] = value

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
        return np.arange(start, end)

    def columns(self) -> dict[str, np.ndarray]:
        """Copies of all arrays, by name."""
        return {name: arr[: self._n].copy() for name, arr in self._data.items()}
