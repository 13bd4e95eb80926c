"""`LevelDBKV`: the on-disk `KVStore` (the only module in the project that imports plyvel)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType

import plyvel

from node.errors import NodeError


def _message(exc: BaseException) -> str:
    arg = exc.args[0] if exc.args else exc
    return arg.decode(errors="replace") if isinstance(arg, bytes) else str(arg)


def _prefix_end(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key starting with `prefix` (None: no bound)."""
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return None
    return trimmed[:-1] + bytes((trimmed[-1] + 1,))


class LevelDBKV:
    """A LevelDB database at `path`, as a `KVStore`."""

    def __init__(
        self, path: str | Path, *, create: bool = True, cache_bytes: int = 64 << 20
    ) -> None:
        self.path = Path(path)
        try:
            # bloom filters: a pruned store looks up every new trie node before writing it
            # (its reference count), and most are not there
            self._db = plyvel.DB(
                str(self.path),
                create_if_missing=create,
                lru_cache_size=cache_bytes,
                bloom_filter_bits=10,
            )
        except plyvel.IOError as exc:
            message = _message(exc)
            if "lock" in message.lower():
                raise NodeError(
                    f"database at {self.path} is in use by another process ({message})"
                ) from exc
            raise NodeError(f"cannot open database at {self.path}: {message}") from exc
        except plyvel.CorruptionError as exc:
            raise NodeError(f"database at {self.path} is corrupt: {_message(exc)}") from exc
        except plyvel.Error as exc:
            raise NodeError(f"cannot open database at {self.path}: {_message(exc)}") from exc

    def close(self) -> None:
        self._db.close()

    @property
    def closed(self) -> bool:
        return bool(self._db.closed)

    def __enter__(self) -> LevelDBKV:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def get(self, key: bytes) -> bytes | None:
        value: bytes | None = self._db.get(key)
        return value

    def put(self, key: bytes, value: bytes) -> None:
        self._db.put(key, value)

    def delete(self, key: bytes) -> None:
        self._db.delete(key)

    def iterate(
        self, prefix: bytes = b"", start: bytes | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        stop = _prefix_end(prefix)
        if start is None or start < prefix:
            it = self._db.iterator(start=prefix, include_start=True, stop=stop)
        else:
            it = self._db.iterator(start=start, include_start=False, stop=stop)
        with it:
            yield from it

    def compact(self) -> None:
        """Compact the whole key range now (LevelDB otherwise compacts in the background as it
        sees fit): what is on disk is then the live data in sorted tables."""
        self._db.compact_range()

    def write_batch(self, ops: Iterable[tuple[bytes, bytes | None]], *, sync: bool = False) -> None:
        with self._db.write_batch(transaction=True, sync=sync) as batch:
            for key, value in ops:
                if value is None:
                    batch.delete(key)
                else:
                    batch.put(key, value)
