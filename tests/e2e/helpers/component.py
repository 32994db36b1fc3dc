#!/usr/bin/env python3
"""A minimal XEP-0114 component client for the end-to-end suite.

    component.py HOST PORT NAME SECRET_FILE [--tls CA_FILE SNI]
                 [--hold [--answer result|error [--own-name]]] [--timeout S]

Opens a jabber:component:accept stream to NAME, sends the lowercase hex SHA-1 of stream id +
secret, and waits for <handshake/>. Without --hold it then closes the stream politely and
exits 0 (a readiness check: a real handshake). With --hold it prints "ready" and keeps the
registered connection open until killed, so that the name is taken (the conflict scenario).
With --answer it also answers every IQ get, as a Callbridge answers a monitoring user's ping:
with a result, or with an error of its own (service-unavailable). The answer comes from the
address that was pinged, or with --own-name from NAME: what a component that knows its own
name sends when its server hands it a stanza for another name (ejabberd does, for every host
of a listener).
Exits 1 with the server's answer on stderr when the handshake fails.
"""
import hashlib
import re
import socket
import ssl
import sys
import time


def main() -> int:
    args = sys.argv[1:]
    if len(args) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    host, port, name, secret_file = args[0], int(args[1]), args[2], args[3]
    rest = args[4:]
    hold = "--hold" in rest
    answer = rest[rest.index("--answer") + 1] if "--answer" in rest else None
    own_name = name if "--own-name" in rest else None
    timeout = 3.0
    tls = None
    if "--timeout" in rest:
        timeout = float(rest[rest.index("--timeout") + 1])
    if "--tls" in rest:
        i = rest.index("--tls")
        tls = (rest[i + 1], rest[i + 2])
    with open(secret_file, encoding="utf-8") as f:
        secret = f.read().rstrip("\r\n")

    def send(data: str) -> None:
        sock.sendall(data.encode())

    sock = None
    buf = ""

    def read_until(pattern: str) -> "re.Match[str]":
        nonlocal buf
        deadline = time.monotonic() + timeout
        while True:
            m = re.search(pattern, buf, re.S)
            if m:
                return m
            if "</stream:stream>" in buf or "<stream:error" in buf and "</stream:error>" in buf:
                raise RuntimeError(f"server refused: {buf!r}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"timeout; received so far: {buf!r}")
            chunk = sock.recv(4096)
            if not chunk:
                raise RuntimeError(f"server closed the connection; received: {buf!r}")
            buf += chunk.decode("utf-8", "replace")

    try:
        sock = socket.create_connection((host, port), timeout=timeout)
        if tls:
            ctx = ssl.create_default_context(cafile=tls[0])
            sock = ctx.wrap_socket(sock, server_hostname=tls[1])
        sock.settimeout(timeout)
        send(
            "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' "
            f"xmlns:stream='http://etherx.jabber.org/streams' to='{name}'>"
        )
        m = read_until(r"<stream:stream[^>]*\sid=(['\"])([^'\"]+)\1[^>]*>")
        stream_id = m.group(2)
        buf = buf[m.end():]
        digest = hashlib.sha1((stream_id + secret).encode()).hexdigest()
        send(f"<handshake>{digest}</handshake>")
        m = read_until(r"<handshake\s*/>|<handshake>\s*</handshake>")
        buf = buf[m.end():]
    except (RuntimeError, OSError) as e:
        print(f"component.py: {name} at {host}:{port}: {e}", file=sys.stderr)
        return 1

    if not hold:
        send("</stream:stream>")
        try:
            read_until(r"</stream:stream>")
        except (RuntimeError, OSError):
            pass
        sock.close()
        return 0

    print("ready", flush=True)
    sock.settimeout(None)
    while True:  # keep the name registered; discard keepalives and, unless told, stanzas
        if answer:
            for iq in IQ_GET.finditer(buf):
                send(reply(iq.group(0), answer, own_name))
            buf = buf[buf.rfind(">") + 1:] if IQ_GET.search(buf) else buf[-4096:]
        chunk = sock.recv(4096)
        if not chunk:
            print(f"component.py: the server closed the held connection for {name}", file=sys.stderr)
            return 1
        buf += chunk.decode("utf-8", "replace")


IQ_GET = re.compile(r"<iq\s[^>]*type=(['\"])get\1[^>]*>.*?</iq>", re.S)


def attribute(tag: str, name: str) -> str:
    m = re.search(rf"\s{name}=(['\"])([^'\"]*)\1", tag)
    return m.group(2) if m else ""


def reply(iq: str, answer: str, own_name: str | None) -> str:
    start = iq[: iq.index(">")]
    sender = own_name or attribute(start, "to")
    addressing = f"id='{attribute(start, 'id')}' from='{sender}' to='{attribute(start, 'from')}'"
    if answer == "result":
        return f"<iq type='result' {addressing}/>"
    return (
        f"<iq type='error' {addressing}><error type='cancel'>"
        "<service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
    )


if __name__ == "__main__":
    sys.exit(main())
