#!/usr/bin/env python3
"""A recording TCP proxy, and a check of the XEP-0114 conversations it recorded.

    wiretap.py proxy LISTEN_HOST LISTEN_PORT UPSTREAM_HOST UPSTREAM_PORT RECORD_FILE
    wiretap.py check RECORD_FILE SECRET_FILE COMPONENT MIN_CONVERSATIONS

`proxy` forwards every connection to the upstream and appends each chunk to RECORD_FILE as a
JSON line {"conn": N, "dir": "c2s"|"s2c", "data": "..."} (and {"conn": N, "end": "c2s"|"s2c"}
when a side closes). Runs until killed.

`check` reads the record and verifies what the probe put on the wire, per connection: a
jabber:component:accept header to COMPONENT, a <handshake> whose content is exactly the
lowercase hex SHA-1 of the server's stream id + the secret (ejabberd compares exactly, so a
server that lowercases both sides, as Prosody does, cannot catch a wrong case), the server's
<handshake/>, then the probe's own </stream:stream> (a clean close). Exits 1 with a message
naming the first problem; 0 when at least MIN_CONVERSATIONS conversations passed.
"""
import asyncio
import hashlib
import json
import re
import sys


def proxy(listen_host, listen_port, up_host, up_port, record_path):
    record = open(record_path, "a", encoding="utf-8", buffering=1)
    counter = 0

    def write(entry):
        record.write(json.dumps(entry) + "\n")

    async def pump(conn, direction, reader, writer):
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                write({"conn": conn, "dir": direction, "data": data.decode("utf-8", "replace")})
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            write({"conn": conn, "end": direction})
            try:
                writer.write_eof()
            except (OSError, RuntimeError):
                writer.close()

    async def handle(client_reader, client_writer):
        nonlocal counter
        counter += 1
        conn = counter
        try:
            up_reader, up_writer = await asyncio.open_connection(up_host, up_port)
        except OSError as e:
            write({"conn": conn, "error": f"upstream: {e}"})
            client_writer.close()
            return
        await asyncio.gather(
            pump(conn, "c2s", client_reader, up_writer),
            pump(conn, "s2c", up_reader, client_writer),
        )
        client_writer.close()
        up_writer.close()

    async def main():
        server = await asyncio.start_server(handle, listen_host, listen_port)
        print(f"wiretap {listen_host}:{listen_port} -> {up_host}:{up_port}", flush=True)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def check(record_path, secret_path, component, minimum):
    with open(secret_path, encoding="utf-8") as f:
        secret = f.read().rstrip("\r\n")
    conns = {}
    with open(record_path, encoding="utf-8") as f:
        for line in f:
            entry = json.loads(line)
            c = conns.setdefault(entry["conn"], {"c2s": "", "s2c": "", "ends": [], "chunks": []})
            if "data" in entry:
                c[entry["dir"]] += entry["data"]
                c["chunks"].append((entry["dir"], entry["data"]))
            elif "end" in entry:
                c["ends"].append(entry["end"])
    passed = 0
    for n, c in sorted(conns.items()):
        if not ({"c2s", "s2c"} <= set(c["ends"])) or not c["c2s"]:
            continue  # still open (a probe in flight), or a readiness check: judge finished probes
        sent, got = c["c2s"], c["s2c"]
        where = f"connection {n}"
        fail = lambda message: failed(message, c["chunks"])  # noqa: E731
        header = re.search(r"<stream:stream\b[^>]*>", sent)
        if not header:
            return fail(f"{where}: the probe sent no <stream:stream> header: {sent[:200]!r}")
        if not re.search(r"""\sxmlns=(['"])jabber:component:accept\1""", header.group(0)):
            return fail(f"{where}: the header is not in jabber:component:accept: {header.group(0)!r}")
        if not re.search(rf"""\sto=(['"]){re.escape(component)}\1""", header.group(0)):
            return fail(f"{where}: the header does not name to='{component}': {header.group(0)!r}")
        m = re.search(r"""<stream:stream\b[^>]*\sid=(['"])([^'"]*)\1""", got)
        if not m:
            return fail(f"{where}: no stream id from the server: {got[:200]!r}")
        stream_id = m.group(2)
        hs = re.search(r"<handshake>(.*?)</handshake>", sent, re.S)
        if not hs:
            return fail(f"{where}: the probe sent no <handshake> after the server's header: {sent[:300]!r}")
        digest = hs.group(1)
        expected = hashlib.sha1((stream_id + secret).encode()).hexdigest()
        if digest != expected:
            if digest.lower() == expected:
                return fail(
                    f"{where}: the probe sent <handshake>{digest}</handshake>, which is not lowercase hex: "
                    f"XEP-0114 servers such as ejabberd compare exactly and would answer not-authorized "
                    f"(Prosody lowercases both sides, so it accepted it). Expected {expected}"
                )
            return fail(
                f"{where}: the probe sent <handshake>{digest}</handshake>, not the lowercase hex SHA-1 of "
                f"stream id {stream_id!r} + secret (expected {expected})"
            )
        if not re.search(r"<handshake\s*/>|<handshake>\s*</handshake>", got):
            return fail(f"{where}: the server did not accept the handshake: {got[-300:]!r}")
        after = sent[hs.end():]
        if "</stream:stream>" not in after:
            return fail(
                f"{where}: after <handshake/> the probe did not close its stream with </stream:stream> "
                f"(it sent {after[:100]!r} and then the connection ended)"
            )
        passed += 1
    if passed < minimum:
        return failed(f"only {passed} complete conversation(s) recorded, wanted {minimum}", [])
    print(f"{passed} conversations: header, lowercase digest, <handshake/>, </stream:stream>")
    return 0


def failed(message, chunks):
    """Prints the problem, then the conversation as recorded (probe: >, server: <)."""
    print(message)
    if chunks:
        print("the conversation as recorded (> probe, < server):")
    for direction, data in chunks:
        mark = ">" if direction == "c2s" else "<"
        print(f"  {mark} {data[:300]}")
    return 1


if __name__ == "__main__":
    if sys.argv[1] == "proxy":
        proxy(sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), sys.argv[6])
    elif sys.argv[1] == "check":
        sys.exit(check(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])))
    else:
        sys.exit(__doc__)
