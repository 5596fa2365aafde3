"""CPU time of the ingest wire client reading one large PUBLISH split into 64 KiB socket reads.

Baseline, same run: ``b"".join`` of the same pieces (the least any reader must do). Linear
reassembly keeps ``ratio_vs_join`` flat as the message grows; re-joining the buffer on every
read (the reader before issue #17) grew quadratically: 13 CPU-s for 64 MiB here.

    .venv/bin/python benchmarks/wire_reassembly.py [--sizes-mib 1 8 64]
"""

import argparse
import asyncio
import json
import time
from datetime import datetime

from cloud.ingest.wire import packets as p
from cloud.ingest.wire.protocol import SubscriberProtocol

READ = 65_536


class _Sink(asyncio.Transport):
    def write(self, data: bytes | bytearray | memoryview) -> None:
        pass

    def abort(self) -> None:
        pass


def _size(_topic: str, payload: bytes, _qos: int, _mid: int, _at: datetime) -> int:
    return len(payload)


def _packet(mib: int) -> bytes:
    body = p.utf8("cityops/v1/dev-a/event") + b"\x00\x01\x00" + b"x" * (mib << 20)
    return bytes([0x32]) + p.varint(len(body)) + body


async def one(mib: int) -> dict[str, float]:
    packet = _packet(mib)
    pieces = [packet[i : i + READ] for i in range(0, len(packet), READ)]
    t0 = time.process_time()
    b"".join(pieces)
    join_s = time.process_time() - t0
    proto = SubscriberProtocol(_size, asyncio.get_running_loop(), max_packet_size=1 << 28)
    proto.connection_made(_Sink())
    t0 = time.process_time()
    for piece in pieces:
        proto.data_received(piece)
    read_s = time.process_time() - t0
    if list(proto.inbox) != [mib << 20]:
        raise RuntimeError("the message was not read back whole")
    return {
        "mib": mib,
        "reads": len(pieces),
        "reader_cpu_s": round(read_s, 4),
        "join_cpu_s": round(join_s, 4),
        "ratio_vs_join": round(read_s / max(join_s, 1e-6), 2),
        "reader_cpu_ms_per_mib": round(read_s * 1000 / mib, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes-mib", type=int, nargs="+", default=[1, 8, 64])
    args = parser.parse_args()
    rows = [asyncio.run(one(mib)) for mib in args.sizes_mib]
    print(json.dumps({"benchmark": "wire_reassembly", "read_bytes": READ, "sizes": rows}, indent=2))


if __name__ == "__main__":
    main()
