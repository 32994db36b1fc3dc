#!/usr/bin/env python3
"""One DNS query over UDP, for readiness checks: prints the rcode and the answer count.

    dnsq.py SERVER PORT NAME TYPE      (TYPE: A, AAAA, SRV, TXT)

Exits 0 when an answer (of any rcode) arrived, 1 on timeout or error.
"""
import random
import socket
import struct
import sys

TYPES = {"A": 1, "TXT": 16, "AAAA": 28, "SRV": 33}
RCODES = {0: "NOERROR", 2: "SERVFAIL", 3: "NXDOMAIN", 5: "REFUSED"}


def main() -> int:
    server, port, name, qtype = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    tid = random.randint(0, 0xFFFF)
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.strip(".").split(".")) + b"\0"
    packet = struct.pack(">HHHHHH", tid, 0x0100, 1, 0, 0, 0) + qname + struct.pack(">HH", TYPES[qtype], 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(1)
    try:
        sock.sendto(packet, (server, port))
        data, _ = sock.recvfrom(4096)
    except OSError as e:
        print(f"no answer: {e}")
        return 1
    flags, _, answers = struct.unpack(">HHH", data[2:8])
    print(f"{RCODES.get(flags & 15, flags & 15)} answers={answers}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
