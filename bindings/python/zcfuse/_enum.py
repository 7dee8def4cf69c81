"""The binding's enums: ints that print their names."""

from __future__ import annotations

import enum

# format() presentation types that ask for the number, as for an int.
_NUMERIC = frozenset("bcdoxXn%eEfFgG")


class NamedIntEnum(enum.IntEnum):
    """An :class:`enum.IntEnum` whose ``str()`` and plain ``format()`` give
    ``Class.NAME`` on every Python (3.11 made IntEnum print the bare
    number). It is still an int: comparisons, arithmetic, indexing and
    ctypes fields take it as one; ``f"{x:d}"`` gives the number."""

    def __str__(self) -> str:
        return f"{type(self).__name__}.{self.name}"

    def __format__(self, spec: str) -> str:
        if spec and spec[-1] in _NUMERIC:
            return int.__format__(int(self), spec)
        return format(str(self), spec)
