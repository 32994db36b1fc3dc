#!/usr/bin/env python3
"""A TCP listener that accepts connections and never sends a byte (the "silent port").

    silent.py HOST PORT

Reads and discards whatever arrives, closes a connection when the peer does. Runs until
killed.
"""
import selectors
import socket
import sys


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((host, port))
    server.listen(64)
    sel = selectors.DefaultSelector()
    sel.register(server, selectors.EVENT_READ)
    print(f"silent listener on {host}:{port}", flush=True)
    while True:
        for key, _ in sel.select():
            sock = key.fileobj
            if sock is server:
                conn, peer = server.accept()
                print(f"accepted {peer[0]}:{peer[1]}, saying nothing", flush=True)
                sel.register(conn, selectors.EVENT_READ)
                continue
            try:
                data = sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                sel.unregister(sock)
                sock.close()


if __name__ == "__main__":
    main()
