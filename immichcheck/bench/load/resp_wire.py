"""The Redis wire protocol (RESP2) as the load engine speaks it: commands encoded once and
sent many times, and replies counted without being decoded."""

from __future__ import annotations


def encode_command(*args: str | bytes | int) -> bytes:
    """One RESP2 command, encoded once and sent many times."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        raw = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(parts)


class RespReplyCounter:
    """Counts top-level RESP2 replies. Simple, error and integer replies are one line each;
    bulk strings and arrays are walked (GET returns bulk strings)."""

    def __init__(self) -> None:
        self._buffer = b""
        self.errors: list[str] = []

    def feed(self, data: bytes) -> int:
        """Consume bytes; return the number of complete replies."""
        buffer = self._buffer + data if self._buffer else data
        # Fast path: only one-line replies (+OK, :12) and the buffer ends on a reply boundary.
        if buffer.endswith(b"\r\n") and b"$" not in buffer and b"*" not in buffer:
            if b"-" in buffer:
                for line in buffer.split(b"\r\n"):
                    if line.startswith(b"-"):
                        self.errors.append(line[1:].decode("utf-8", "replace")[:200])
            self._buffer = b""
            return buffer.count(b"\r\n")
        count = 0
        position = 0
        while True:
            end = self._reply_end(buffer, position)
            if end < 0:
                break
            if buffer[position : position + 1] == b"-":
                self.errors.append(buffer[position + 1 : end - 2].decode("utf-8", "replace")[:200])
            count += 1
            position = end
        self._buffer = buffer[position:]
        return count

    def _reply_end(self, buffer: bytes, position: int) -> int:
        """Index just past the reply starting at `position`, or -1 when incomplete."""
        line_end = buffer.find(b"\r\n", position)
        if line_end < 0:
            return -1
        kind = buffer[position : position + 1]
        if kind in (b"+", b"-", b":"):
            return line_end + 2
        length = int(buffer[position + 1 : line_end])
        if kind == b"$":
            if length < 0:
                return line_end + 2
            end = line_end + 2 + length + 2
            return end if end <= len(buffer) else -1
        if kind == b"*":
            cursor = line_end + 2
            for _ in range(max(length, 0)):
                cursor = self._reply_end(buffer, cursor)
                if cursor < 0:
                    return -1
            return cursor
        raise ValueError(f"unexpected RESP reply type {kind!r}")
