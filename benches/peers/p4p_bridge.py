"""The peer: an MXAccess Gateway -> PVAccess bridge written in Python the way a user
would write one today, for the end-to-end benchmark (benches/e2e/main.rs).

- gRPC stubs generated from proto/ with grpc_tools.protoc (at start, into --stubs);
- the gateway client in asyncio (grpc.aio): OpenSession, Register, SubscribeBulk in
  chunks of 500, one StreamEvents stream (attached before subscribing), Write on a put, CloseSession at exit;
- p4p SharedPVs (asyncio flavour), one PV per tag, opened on the tag's first value;
  every OnDataChange is posted with the source time as timeStamp and the quality as
  alarm severity; a put is written to the gateway and completed on OnWriteComplete.

    python p4p_bridge.py --gateway 127.0.0.1:5000 --mapping FILE --stubs DIR

FILE holds one "PV_NAME TAG" per line. PVAccess settings come from EPICS_PVAS_*.
Prints "READY <unix ns>" once every tag is subscribed and the event stream is attached.
"""

import argparse
import asyncio
import collections
import os
import signal
import sys
import time


def generate_stubs(proto_root, out_dir):
    from grpc_tools import protoc
    import grpc_tools

    proto = "mxaccess_gateway/v1/mxaccess_gateway.proto"
    stamp = os.path.join(out_dir, "mxaccess_gateway", "v1", "mxaccess_gateway_pb2_grpc.py")
    if not os.path.exists(stamp):
        os.makedirs(out_dir, exist_ok=True)
        well_known = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
        rc = protoc.main(["protoc", f"-I{proto_root}", f"-I{well_known}",
                          f"--python_out={out_dir}", f"--grpc_python_out={out_dir}", proto])
        if rc != 0:
            sys.exit(f"protoc failed on {proto}")
    sys.path.insert(0, out_dir)


def severity(quality):
    """OPC quality -> alarm severity: good 0, uncertain 1 (MINOR), bad 3 (INVALID)."""
    q = quality & 0xC0
    return 0 if q == 0xC0 else 1 if q == 0x40 else 3


class Bridge:
    def __init__(self, gw, pb, stub, mapping):
        self.gw = gw
        self.pb = pb
        self.stub = stub
        self.mapping = mapping
        self.session = None
        self.server_handle = None
        self.pvs = {}           # PV name -> SharedPV
        self.by_item = {}       # item handle -> SharedPV
        self.item_of = {}       # PV name -> item handle
        self.pending = collections.defaultdict(collections.deque)  # item -> futures
        self.early = {}         # item handle -> first event, before SubscribeBulk answered
        self.stream_task = None

    async def invoke(self, command):
        reply = await self.stub.Invoke(self.pb.MxCommandRequest(session_id=self.session, command=command))
        if reply.protocol_status.code != self.pb.PROTOCOL_STATUS_CODE_OK:
            raise RuntimeError(f"{reply.protocol_status.message} {reply.diagnostic_message}")
        return reply

    async def start(self):
        pb = self.pb
        reply = await self.stub.OpenSession(pb.OpenSessionRequest(client_session_name="p4p-peer"))
        self.session = reply.session_id
        reply = await self.invoke(pb.MxCommand(kind=pb.MX_COMMAND_KIND_REGISTER,
                                               register=pb.RegisterCommand(client_name="p4p-peer")))
        self.server_handle = reply.register.server_handle
        # The gateway queues every advised tag's first value at once, and its event
        # queue (10,000) faults the session when full: stream while subscribing.
        attached = asyncio.Event()
        self.stream_task = asyncio.create_task(self.events(attached))
        await attached.wait()
        names = [name for name, _ in self.mapping]
        tags = [tag for _, tag in self.mapping]
        for i in range(0, len(tags), 500):
            reply = await self.invoke(pb.MxCommand(
                kind=pb.MX_COMMAND_KIND_SUBSCRIBE_BULK,
                subscribe_bulk=pb.SubscribeBulkCommand(server_handle=self.server_handle,
                                                       tag_addresses=tags[i:i + 500])))
            for name, result in zip(names[i:i + 500], reply.bulk_subscribe.results):
                if not result.was_successful:
                    print(f"{name}: cannot subscribe: {result.error_message}", file=sys.stderr)
                    continue
                self.by_item[result.item_handle] = self.pvs[name]
                self.item_of[name] = result.item_handle
                early = self.early.pop(result.item_handle, None)
                if early is not None:
                    self.data_change(self.pvs[name], early)

    def data_change(self, pv, ev):
        kind = ev.value.WhichOneof("kind")
        if kind is None:
            return
        value = getattr(ev.value, kind)
        ts = ev.source_timestamp
        meta = dict(timestamp=(ts.seconds, ts.nanos), severity=severity(ev.quality))
        if pv.isOpen():
            pv.post(value, **meta)
        else:
            pv.open(value, **meta)

    async def events(self, attached):
        pb = self.pb
        stream = self.stub.StreamEvents(pb.StreamEventsRequest(session_id=self.session))
        await stream.wait_for_connection()
        attached.set()
        async for ev in stream:
            pv = self.by_item.get(ev.item_handle)
            if ev.family == pb.MX_EVENT_FAMILY_ON_DATA_CHANGE:
                if pv is None:
                    self.early[ev.item_handle] = ev  # its SubscribeBulk reply is on the way
                else:
                    self.data_change(pv, ev)
            elif ev.family == pb.MX_EVENT_FAMILY_ON_WRITE_COMPLETE:
                waiting = self.pending.get(ev.item_handle)
                if waiting:
                    failed = [s for s in ev.statuses if s.success == 0]
                    fut = waiting.popleft()
                    if not fut.done():
                        fut.set_result(failed[0].diagnostic_text if failed else None)

    async def write(self, name, value):
        pb = self.pb
        item = self.item_of[name]
        fut = asyncio.get_running_loop().create_future()
        self.pending[item].append(fut)
        try:
            await self.invoke(pb.MxCommand(
                kind=pb.MX_COMMAND_KIND_WRITE,
                write=pb.WriteCommand(server_handle=self.server_handle, item_handle=item,
                                      value=pb.MxValue(data_type=pb.MX_DATA_TYPE_DOUBLE,
                                                       double_value=float(value)))))
        except Exception:
            self.pending[item].remove(fut)
            raise
        error = await asyncio.wait_for(fut, 10.0)
        if error:
            raise RuntimeError(f"System Platform refused the write: {error}")

    async def close(self):
        if self.session:
            await self.stub.CloseSession(self.pb.CloseSessionRequest(session_id=self.session))


class PutHandler:
    def __init__(self, bridge, name):
        self.bridge = bridge
        self.name = name

    async def put(self, pv, op):
        try:
            await self.bridge.write(self.name, float(op.value()))
            op.done()
        except Exception as e:
            op.done(error=f"{self.name}: {e}")


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gateway", required=True)
    ap.add_argument("--mapping", required=True)
    ap.add_argument("--stubs", required=True)
    ap.add_argument("--proto", default=os.path.join(os.path.dirname(__file__), "..", "..", "proto"))
    args = ap.parse_args()
    generate_stubs(args.proto, args.stubs)

    import grpc
    from mxaccess_gateway.v1 import mxaccess_gateway_pb2 as pb
    from mxaccess_gateway.v1 import mxaccess_gateway_pb2_grpc as pb_grpc
    from p4p.nt import NTScalar
    from p4p.server import Server
    from p4p.server.asyncio import SharedPV

    with open(args.mapping) as f:
        mapping = [tuple(line.split()) for line in f if line.strip()]
    channel = grpc.aio.insecure_channel(args.gateway, options=[
        ("grpc.max_receive_message_length", 16 << 20)])
    bridge = Bridge(args.gateway, pb, pb_grpc.MxAccessGatewayStub(channel), mapping)
    for name, _ in mapping:
        bridge.pvs[name] = SharedPV(nt=NTScalar("d"), handler=PutHandler(bridge, name))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    with Server(providers=[bridge.pvs]):
        await bridge.start()
        print(f"READY {time.time_ns()}", flush=True)
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait([bridge.stream_task, stopped], return_when=asyncio.FIRST_COMPLETED)
        bridge.stream_task.cancel()
        await bridge.close()
    await channel.close()


if __name__ == "__main__":
    asyncio.run(main())
