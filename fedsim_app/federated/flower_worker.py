"""A long-lived ClientApp process for one SuperNode started with ``--isolation process``.

Flower's default (``--isolation subprocess``) starts a fresh ``flwr-clientapp`` process
for every message: each one imports torch and FedSim, installs the app, rereads and
resamples the site's volumes and rebuilds the networks before a step of well under a
second (``docs/benchmarks.md`` measured 38 s a round that way against 0.9 s in-process).
With ``--isolation process`` the SuperNode leaves the running of tasks to an outside
process; this is that process. It asks the SuperNode's runtime API for the next task,
pulls the message, runs FedSim's own :data:`~fedsim_app.federated.flower_app.client_app`
in this process (so the site, its data and networks stay loaded between rounds) and
pushes the reply, exactly the exchange ``flwr-clientapp`` makes once per process.

It runs only FedSim's federation app: a task of another app is answered with an error.
Started by :mod:`fedsim_app.federated.flower_launch` next to each SuperNode, or by hand on
a hospital's machine::

    python -m fedsim_app.federated.flower_worker --runtime-api-address 127.0.0.1:9094

It imports Flower's runtime client modules (pinned to Flower 1.42 by the ``[flower]``
extra).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time

from flwr.app import Message
from flwr.app.error import Error
from flwr.common.constant import ErrorCode, SubStatus
from flwr.common.serde import context_from_proto, run_from_proto
from flwr.proto.node_pb2 import Node
from flwr.proto.runtime_pb2 import (
    AcquireTaskRequest,
    PullAppMessagesRequest,
    PullTaskInputRequest,
    SendTaskHeartbeatRequest,
)
from flwr.supercore.constant import TaskType
from flwr.supercore.inflatable.inflatable_protobuf_utils import (
    make_confirm_message_received_fn_protobuf,
    make_pull_object_fn_protobuf,
)
from flwr.supercore.inflatable.inflatable_utils import pull_and_inflate_object_from_tree
from flwr.supercore.interceptors import RuntimeTokenHttpInterceptor, RuntimeVersionHttpInterceptor
from flwr.supercore.retry import make_simple_http_retry_invoker
from flwr.supercore.runtime import RuntimeHttpClient
from flwr.supercore.task_identity import TaskIdentity
from flwr.supernode.runtime.run_clientapp import push_message, push_task_output

from fedsim_app.federated.flower_app import APP_ID, client_app

log = logging.getLogger("fedsim.flower_worker")
#: seconds between asks for a task while idle (Flower's own SuperExec waits 1 s)
POLL_S = 0.02
HEARTBEAT_S = 5.0
#: first and longest wait for a part of a message the SuperNode is still fetching from the
#: SuperLink (``flwr-clientapp`` waits 1, 2, 4 … s: some 7 s of every round here)
PULL_BACKOFF_S = (0.02, 0.25)


def _client(address: str, component: str, token: str | None = None) -> RuntimeHttpClient:
    interceptors = [RuntimeVersionHttpInterceptor(component_name=component)]
    if token:
        interceptors.append(RuntimeTokenHttpInterceptor(token))
    return RuntimeHttpClient.from_server_address(
        server_address=address, insecure=True, root_certificates=None,
        interceptors=interceptors, retry_invoker=make_simple_http_retry_invoker())


def _heartbeat(client: RuntimeHttpClient, stop: threading.Event) -> None:
    # keeps the SuperNode from expiring a task while a long step runs
    while not stop.wait(HEARTBEAT_S):
        try:
            client.SendTaskHeartbeat(SendTaskHeartbeatRequest())
        except Exception:  # noqa: BLE001 (a missed beat is retried at the next)
            log.debug("task heartbeat failed", exc_info=True)


def pull_task_input(client: RuntimeHttpClient):
    """The task's message, context and run, as ``flwr-clientapp`` pulls them but with
    short waits for the parts the SuperNode does not hold yet."""
    res = client.PullTaskInput(PullTaskInputRequest())
    context, run = context_from_proto(res.context), run_from_proto(res.run)
    # what Flower stamps on messages this task creates
    TaskIdentity.task_id, TaskIdentity.run_id = res.task_id, res.run.run_id
    TaskIdentity.node_id = res.context.node_id
    msgs = client.PullMessages(PullAppMessagesRequest())
    if not msgs.messages_list:
        raise RuntimeError("the SuperNode handed out a task without a message")
    node = Node(node_id=context.node_id)
    tree = msgs.message_object_trees[0]
    message = pull_and_inflate_object_from_tree(
        tree, make_pull_object_fn_protobuf(client.PullObject, node, context.run_id),
        make_confirm_message_received_fn_protobuf(client.ConfirmMessageReceived, node,
                                                  context.run_id),
        return_type=Message, initial_backoff=PULL_BACKOFF_S[0],
        backoff_cap=PULL_BACKOFF_S[1])
    # the inflated message lacks its own id (the id of its tree's root)
    message.metadata.__dict__["_message_id"] = tree.object_id
    return message, context, run


def run_task(address: str, token: str) -> None:
    """Pull one task's message, run FedSim's ClientApp here, push the reply and status."""
    client = _client(address, "flwr-clientapp", token)
    stop = threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(client, stop), daemon=True)
    beat.start()
    context, status, details = None, SubStatus.FAILED, "ClientApp task failed"
    t0 = time.perf_counter()
    try:
        message, context, run = pull_task_input(client)
        t1 = time.perf_counter()
        if run.fab_id != APP_ID:
            reply = Message(Error(code=ErrorCode.LOAD_CLIENT_APP_EXCEPTION,
                                  reason=f"this FedSim worker runs {APP_ID} only, not "
                                  f"{run.fab_id}"), reply_to=message)
            details = reply.error.reason
        else:
            try:
                reply = client_app(message=message, context=context)
                status, details = SubStatus.COMPLETED, ""
            except Exception as exc:  # noqa: BLE001 (the server gets the reason)
                log.exception("the ClientApp raised")
                details = f"{type(exc).__name__}: {exc}"
                reply = Message(Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION,
                                      reason=details), reply_to=message)
        t2 = time.perf_counter()
        push_message(client, reply, context)
        log.info("task %s: pulled in %.2f s, ran in %.2f s, pushed in %.2f s",
                 message.metadata.message_type, t1 - t0, t2 - t1, time.perf_counter() - t2)
    finally:
        stop.set()
        push_task_output(client=client, context=context, sub_status=status, details=details)
        client.close()


def serve(address: str, *, parent_pid: int | None = None) -> None:
    """Run the SuperNode's tasks, one after another, until the SuperNode is gone."""
    runtime = _client(address, "SuperExec")
    request = AcquireTaskRequest(supported_task_types=[TaskType.CLIENT_APP])
    while parent_pid is None or _alive(parent_pid):
        res = runtime.AcquireTask(request)
        if res.HasField("task") and res.token:
            try:
                run_task(address, res.token)
            except Exception:  # noqa: BLE001 (the next task may well work)
                log.exception("task %s failed", res.task.task_id)
            continue
        time.sleep(POLL_S)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runtime-api-address", required=True,
                    help="the SuperNode's runtime API, HOST:PORT (its --host and --port)")
    ap.add_argument("--parent-pid", type=int,
                    help="stop when this process (the SuperNode) is gone")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request, else
    try:
        serve(args.runtime_api_address, parent_pid=args.parent_pid)
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
