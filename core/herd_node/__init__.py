"""``herd-node``, the node agent, and the heartbeat format it shares with the router.

Importing this package pulls in msgspec only; the agent's own modules (httpx, psutil)
load when the agent runs, and the router (litestar) never loads here.
"""

from herd.protocol.heartbeat import (
    PAYLOAD_VERSION,
    DiskModel,
    GpuInfo,
    Heartbeat,
    HeartbeatReply,
    MachineInfo,
    RunningModel,
)

__all__ = [
    "PAYLOAD_VERSION",
    "DiskModel",
    "GpuInfo",
    "Heartbeat",
    "HeartbeatReply",
    "MachineInfo",
    "RunningModel",
]
