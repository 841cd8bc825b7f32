"""TLS through a way in: the chain and host name (dates judged apart), protocol, cipher, dates."""

from __future__ import annotations

import asyncio
import datetime
import ssl
from typing import Any

from immichcheck.clients import ProbeError
from immichcheck.clients.access_ways import WayIn

# OpenSSL's X509_V_FLAG_NO_CHECK_TIME: verify chain and host name apart from the dates, so
# the expiry is judged by its own check (an expired but otherwise valid chain is not "untrusted").
_NO_CHECK_TIME = 0x200000


def verifying_context(ca_file: str | None) -> ssl.SSLContext:
    """The trust a phone has: system CAs, or only --ca-file when given (a private CA)."""
    try:
        context = ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise ProbeError(f"cannot load --ca-file {ca_file}: {exc}") from exc
    return context


def unverified_context() -> ssl.SSLContext:
    """A context that checks nothing: for probes whose subject is not the certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def _handshake(
    address: tuple[str, int], server_name: str, context: ssl.SSLContext, timeout: float
) -> tuple[bytes, str, str]:
    """One TLS handshake: the leaf certificate (DER), protocol version and cipher."""
    async with asyncio.timeout(timeout):
        _reader, writer = await asyncio.open_connection(
            address[0], address[1], ssl=context, server_hostname=server_name
        )
    try:
        tls = writer.get_extra_info("ssl_object")
        der = tls.getpeercert(binary_form=True) or b""
        cipher = tls.cipher()
        return der, str(tls.version() or ""), str(cipher[0] if cipher else "")
    finally:
        writer.close()
        try:
            async with asyncio.timeout(timeout):
                await writer.wait_closed()
        except (OSError, TimeoutError, ssl.SSLError):
            pass  # the handshake is what we came for; a messy close changes nothing


def certificate_facts(der: bytes, now: datetime.datetime | None = None) -> dict[str, Any]:
    """Subject, issuer, names and validity dates of a DER certificate."""
    from cryptography import x509

    certificate = x509.load_der_x509_certificate(der)
    now = now or datetime.datetime.now(datetime.UTC)
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [str(v) for v in san.get_values_for_type(x509.DNSName)]
        names += [str(v) for v in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        names = []
    not_after = certificate.not_valid_after_utc
    not_before = certificate.not_valid_before_utc
    return {
        "subject": certificate.subject.rfc4514_string(),
        "issuer": certificate.issuer.rfc4514_string(),
        "names": names,
        "self_signed": certificate.subject == certificate.issuer,
        "not_before": not_before.isoformat(),
        "not_after": not_after.isoformat(),
        "seconds_left": (not_after - now).total_seconds(),
        "not_yet_valid": not_before > now,
    }


async def tls_facts(way: WayIn, ca_file: str | None, timeout: float) -> dict[str, Any]:
    """Chain and host name (dates aside), protocol, cipher and the certificate's dates."""
    address = way.connect_address()
    server_name = way.server_name or address[0]
    context = verifying_context(ca_file)
    context.verify_flags |= _NO_CHECK_TIME
    facts: dict[str, Any] = {"server_name": server_name, "verified": False, "error": ""}
    try:
        der, version, cipher = await _handshake(address, server_name, context, timeout)
        facts["verified"] = True
    except ssl.SSLCertVerificationError as exc:
        facts["error"] = str(exc.verify_message or exc.reason or exc)
        facts["error_code"] = exc.verify_code
        try:
            der, version, cipher = await _handshake(
                address, server_name, unverified_context(), timeout
            )
        except (OSError, TimeoutError, ssl.SSLError) as inner:
            raise ProbeError(f"TLS handshake with {way.display} failed: {inner}") from inner
    except TimeoutError as exc:
        raise ProbeError(f"no TLS handshake with {way.display} within {timeout:g} s") from exc
    except (OSError, ssl.SSLError) as exc:
        raise ProbeError(f"TLS handshake with {way.display} failed: {exc}") from exc
    facts.update(protocol=version, cipher=cipher)
    if der:
        facts["certificate"] = certificate_facts(der)
    return facts
