"""The PostgreSQL wire protocol as the load engine speaks it: connect, prepare, count replies.

One module for every byte the bench engine sends to or reads from PostgreSQL: the startup
and authentication (trust, cleartext, md5, SCRAM-SHA-256 through `scramp`), the pre-encoded
Parse/Bind/Execute/Sync messages `pgbench -M prepared` sends, and the ReadyForQuery counter
that measures them without decoding rows.
"""

from __future__ import annotations

import hashlib
import socket
import struct
from collections.abc import Sequence

from scramp import ScramClient, ScramException

CONNECT_TIMEOUT = 10.0
PROTOCOL_VERSION_3 = 196608
# Authentication request codes (the 'R' message).
AUTH_OK = 0
AUTH_CLEARTEXT = 3
AUTH_MD5 = 5
AUTH_SASL = 10
SCRAM_SHA_256 = "SCRAM-SHA-256"

_READY = b"Z\x00\x00\x00\x05"
_ERROR_HEADER = b"E\x00\x00"


def message(kind: bytes, body: bytes) -> bytes:
    """One frontend message: type byte, length (including itself), body."""
    return kind + struct.pack("!I", len(body) + 4) + body


def error_fields(body: bytes) -> dict[str, str]:
    """An ErrorResponse body as {field code: text} (C = SQLSTATE, M = message)."""
    return {chr(part[0]): part[1:].decode("utf-8", "replace") for part in body.split(b"\0") if part}


def _read_message(sock: socket.socket, buffer: bytearray) -> tuple[bytes, bytes]:
    while True:
        if len(buffer) >= 5:
            length = struct.unpack("!I", buffer[1:5])[0]
            if len(buffer) >= 1 + length:
                kind = bytes(buffer[:1])
                body = bytes(buffer[5 : 1 + length])
                del buffer[: 1 + length]
                return kind, body
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("PostgreSQL closed the connection during startup")
        buffer.extend(chunk)


def _expect_auth(sock: socket.socket, buffer: bytearray) -> bytes:
    """The next Authentication message's data after its code (SASL continue/final)."""
    kind, body = _read_message(sock, buffer)
    if kind == b"E":
        raise ConnectionError(error_fields(body).get("M", "error"))
    return body[4:]


def _scram(sock: socket.socket, buffer: bytearray, user: str, password: str) -> None:
    """SCRAM-SHA-256 (RFC 5802/7677) without channel binding: we speak plain TCP only."""
    client = ScramClient([SCRAM_SHA_256], user, password)
    first = client.get_client_first().encode()
    sock.sendall(
        message(b"p", SCRAM_SHA_256.encode() + b"\0" + struct.pack("!i", len(first)) + first)
    )
    try:
        client.set_server_first(_expect_auth(sock, buffer).decode())
        sock.sendall(message(b"p", client.get_client_final().encode()))
        client.set_server_final(_expect_auth(sock, buffer).decode())
    except ScramException as exc:  # a server nonce or signature that does not match
        raise ConnectionError(f"SCRAM: {exc}") from exc


def wire_connect(
    host: str, port: int, user: str, password: str | None, database: str
) -> socket.socket:
    """A plain-TCP PostgreSQL connection, authenticated and ready for queries.

    Supports trust, cleartext, md5 and SCRAM-SHA-256. TLS is not offered: when a server
    requires it, the suite measures these round trips with asyncpg instead (with a note).
    """
    sock = socket.create_connection((host, port), timeout=CONNECT_TIMEOUT)
    try:
        params = (
            b"user\0"
            + user.encode()
            + b"\0database\0"
            + database.encode()
            + b"\0application_name\0immichcheck-bench\0\0"
        )
        sock.sendall(struct.pack("!II", len(params) + 8, PROTOCOL_VERSION_3) + params)
        buffer = bytearray()
        while True:
            kind, body = _read_message(sock, buffer)
            if kind == b"E":
                raise ConnectionError(error_fields(body).get("M", "error"))
            if kind == b"R":
                code = struct.unpack("!I", body[:4])[0]
                if code == AUTH_OK:
                    continue
                if password is None:
                    raise ConnectionError("the server wants a password and none was given")
                if code == AUTH_CLEARTEXT:
                    sock.sendall(message(b"p", password.encode() + b"\0"))
                elif code == AUTH_MD5:
                    inner = hashlib.md5(password.encode() + user.encode()).hexdigest()
                    outer = hashlib.md5(inner.encode() + body[4:8]).hexdigest()
                    sock.sendall(message(b"p", b"md5" + outer.encode() + b"\0"))
                elif code == AUTH_SASL and SCRAM_SHA_256.encode() + b"\0" in body[4:]:
                    _scram(sock, buffer, user, password)
                else:
                    raise ConnectionError(f"unsupported authentication method {code}")
            elif kind == b"Z":
                return sock
    except BaseException:
        sock.close()
        raise


def prepared_statement(query: str, parameters: Sequence[bytes] = ()) -> tuple[bytes, bytes]:
    """(setup, request): Parse once + Sync; then Bind/Execute/Sync per request, as pgbench -M
    prepared sends them."""
    setup = message(b"P", b"s\0" + query.encode() + b"\0" + struct.pack("!h", 0)) + message(
        b"S", b""
    )
    bind_params = struct.pack("!h", len(parameters)) + b"".join(
        struct.pack("!i", len(value)) + value for value in parameters
    )
    bind = message(b"B", b"\0s\0" + struct.pack("!h", 0) + bind_params + struct.pack("!h", 0))
    execute = message(b"E", b"\0" + struct.pack("!i", 0))
    return setup, bind + execute + message(b"S", b"")


class PgReplyCounter:
    """Counts PostgreSQL ReadyForQuery ('Z') messages: one per Sync, i.e. per request."""

    def __init__(self) -> None:
        self._buffer = b""
        self.errors: list[str] = []

    def feed(self, data: bytes) -> int:
        """Consume backend messages; return the number of completed requests."""
        # Fast path: whole replies ending in ReadyForQuery and no ErrorResponse header
        # ('E' + a length below 16 MiB). The statements measured this way (SELECT 1, a
        # one-row INSERT) return no row data that could contain either pattern.
        if not self._buffer and data[-6:-1] == _READY and _ERROR_HEADER not in data:
            return data.count(_READY)
        buffer = self._buffer + data if self._buffer else data
        count = 0
        position = 0
        size = len(buffer)
        while position + 5 <= size:
            kind = buffer[position]
            length = int.from_bytes(buffer[position + 1 : position + 5], "big")
            end = position + 1 + length
            if end > size:
                break
            if kind == 0x5A:  # 'Z' ReadyForQuery
                count += 1
            elif kind == 0x45:  # 'E' ErrorResponse: fields of (code byte, text\0)
                fields = error_fields(buffer[position + 5 : end])
                self.errors.append(
                    f"{fields.get('C', '')} {fields.get('M', 'error')}".strip()[:200]
                )
            position = end
        self._buffer = buffer[position:]
        return count
