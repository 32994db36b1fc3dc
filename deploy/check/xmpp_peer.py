#!/usr/bin/env python3
"""A minimal XEP-0114 component server on loopback, for the deployment checks.

It accepts `jabber:component:accept` streams, checks the handshake digest
(lowercase hex SHA-1 of stream id + secret) and answers `<handshake/>` or a
`not-authorized` stream error, then closes politely. Each `--plain PORT` is a
plaintext listener; `--tls PORT --cert FILE --key FILE` a direct-TLS one (as CMS
on 5223). It exits by itself after `--lifetime` seconds, so it never outlives a
check that forgot it.

Usage: xmpp_peer.py --secret-file F [--plain PORT]... [--tls PORT --cert C --key K]
                    [--lifetime SECONDS] [--ready-file F]
"""

import argparse
import hashlib
import re
import socket
import ssl
import sys
import threading
import time
import uuid

HEADER = re.compile(rb"<stream:stream\b[^>]*>")


def serve_connection(conn, secret):
    conn.settimeout(10)
    try:
        buffer = b""
        while not HEADER.search(buffer):
            chunk = conn.recv(4096)
            if not chunk:
                return
            buffer += chunk
            if len(buffer) > 65536:
                return
        stream_id = uuid.uuid4().hex
        conn.sendall(
            (
                "<?xml version='1.0'?><stream:stream "
                "xmlns:stream='http://etherx.jabber.org/streams' "
                f"xmlns='jabber:component:accept' id='{stream_id}' from='peer'>"
            ).encode()
        )
        buffer = b""
        while b"</handshake>" not in buffer:
            chunk = conn.recv(4096)
            if not chunk:
                return
            buffer += chunk
        digest = re.search(rb"<handshake>([^<]*)</handshake>", buffer).group(1).decode()
        expected = hashlib.sha1((stream_id + secret).encode()).hexdigest()
        if digest == expected:
            conn.sendall(b"<handshake/>")
        else:
            conn.sendall(
                b"<stream:error><not-authorized "
                b"xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"
                b"</stream:stream>"
            )
            return
        # The probe closes with </stream:stream>; answer in kind.
        buffer = b""
        while b"</stream:stream>" not in buffer:
            chunk = conn.recv(4096)
            if not chunk:
                return
            buffer += chunk
        conn.sendall(b"</stream:stream>")
    except (OSError, ssl.SSLError, AttributeError):
        pass
    finally:
        try:
            if isinstance(conn, ssl.SSLSocket):
                conn.unwrap()
        except (OSError, ssl.SSLError, ValueError):
            pass
        conn.close()


def listen(port, secret, context):
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(64)

    def accept_loop():
        while True:
            conn, _ = server.accept()
            if context is not None:
                try:
                    conn.settimeout(10)
                    conn = context.wrap_socket(conn, server_side=True)
                except (OSError, ssl.SSLError):
                    conn.close()
                    continue
            threading.Thread(target=serve_connection, args=(conn, secret), daemon=True).start()

    threading.Thread(target=accept_loop, daemon=True).start()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--secret-file", required=True)
    parser.add_argument("--plain", type=int, action="append", default=[])
    parser.add_argument("--tls", type=int, action="append", default=[])
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--lifetime", type=float, default=300)
    parser.add_argument("--ready-file")
    args = parser.parse_args()
    with open(args.secret_file, encoding="utf-8") as handle:
        secret = handle.read().rstrip("\r\n")  # as the exporter reads it
    for port in args.plain:
        listen(port, secret, None)
    if args.tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(args.cert, args.key)
        for port in args.tls:
            listen(port, secret, context)
    if args.ready_file:
        with open(args.ready_file, "w", encoding="utf-8") as handle:
            handle.write("ready\n")
    time.sleep(args.lifetime)
    return 0


if __name__ == "__main__":
    sys.exit(main())
