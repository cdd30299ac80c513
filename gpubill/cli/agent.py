"""`gpubill agent exec|run|status`: the metering agent on a GPU node.

    gpubill agent exec [--job ID] --subscription S (--store DB | --endpoint URL --api-key K)
                       [--spool PATH] [--gpu-type T --gpu-count N --region R --class C] -- CMD...
    gpubill agent run [--jobs-dir DIR | --pod-resources FILE --pods FILE]
                      (--store DB | --endpoint URL --api-key K) [--spool PATH] [--until-idle]
    gpubill agent status [--spool PATH] [--format text|json]

``exec`` meters one command as a job (inside a Slurm job without ``--job``: that
Slurm job, from its environment) and exits with its status (128 + N when
signal N ended it); SIGTERM and SIGINT are passed on to it (SIGTERM: the job
ends preempted; SIGINT not while it is a terminal's foreground job, which the
terminal's Ctrl-C reached already). ``run`` is the daemon: it resumes what the
spool holds (a killed agent's jobs and undelivered events), meters the Slurm
allocations that prolog/epilog drop files describe, or the Kubernetes pods
that hold GPUs, and delivers. ``status`` reads the spool beside a running agent. Exit codes: a usage error 2, a spool or store that
cannot be opened 3.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from decimal import Decimal, InvalidOperation

from gpubill.cli import CliError, EXIT_IO, EXIT_OK, EXIT_USAGE

HELP = "the metering agent: meter a command (exec), run the node daemon (run), show its state (status)"
CLASSES = ("on_demand", "reserved", "spot")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from gpubill.cli import _args

    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    ex = sub.add_parser("exec", help="meter one command as a job")
    ex.add_argument("--job", metavar="ID", help="the job's id (default, inside a Slurm job: the Slurm job, "
                                                "its SLURM_JOB_ID, SLURM_RESTART_COUNT and SLURM_JOB_GPUS)")
    ex.add_argument("--subscription", required=True, metavar="S", help="external_subscription_id it bills")
    ex.add_argument("--attempt", type=_args.int_range(0, 1 << 31), default=None,
                    help="the job's attempt (a requeued job gets new transaction ids; default 0, "
                         "or Slurm's restart count)")
    ex.add_argument("--gpus", metavar="LIST", help="GPU UUIDs or indices it holds (default: all of the node's)")
    ex.add_argument("--gpu-type", metavar="T", help="gpu_type (default: from the devices)")
    ex.add_argument("--gpu-count", type=_decimal, metavar="N", help="gpu_count (default: from the devices)")
    ex.add_argument("--region", metavar="R")
    ex.add_argument("--class", dest="availability_class", choices=CLASSES, help="availability_class")
    ex.add_argument("--flush", type=_args.float_range(0, 3600), default=10.0, metavar="SECONDS",
                    help="how long to try delivering after the command ends (default 10; the rest "
                         "stays in the spool for `gpubill agent run`)")
    _common(ex, _args)
    ex.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- CMD...", help="the command to run")
    rn = sub.add_parser("run", help="the node daemon: Slurm drop files, spool recovery, delivery")
    rn.add_argument("--jobs-dir", metavar="DIR", help="folder of Slurm prolog/epilog drop files (<job>.json)")
    rn.add_argument("--pod-resources", metavar="FILE",
                    help="Kubernetes: the kubelet pod-resources List answer as JSON (with --pods)")
    rn.add_argument("--pods", metavar="FILE", help="Kubernetes: the kubelet's /pods answer as JSON (with --pod-resources)")
    rn.add_argument("--until-idle", action="store_true",
                    help="exit once no job is open and every event is delivered")
    _common(rn, _args)
    st = sub.add_parser("status", help="devices, open jobs, outbox depth, last delivery")
    st.add_argument("--spool", metavar="PATH", help="the spool (default: $GPUBILL_SPOOL, then "
                                                    "$XDG_STATE_HOME/gpubill/spool.db)")
    st.add_argument("--format", choices=("text", "json"), default="text")


def _common(p: argparse.ArgumentParser, _args) -> None:
    to = p.add_mutually_exclusive_group(required=True)
    to.add_argument("--store", metavar="DB", help="deliver into this local store file")
    to.add_argument("--endpoint", metavar="URL", help="deliver to this `gpubill serve`")
    p.add_argument("--api-key", metavar="K", help="the writer key for --endpoint (default: $GPUBILL_API_KEY)")
    p.add_argument("--spool", metavar="PATH", help="the spool (default: $GPUBILL_SPOOL, then "
                                                   "$XDG_STATE_HOME/gpubill/spool.db)")
    p.add_argument("--node", default=socket.gethostname(), help="this node's name (default: the host name)")
    p.add_argument("--segment", type=_args.int_range(1, 7 * 86400), default=300, metavar="SECONDS",
                   help="segment events on this grid from the job's start (default 300)")
    p.add_argument("--job-minimum", type=_args.int_range(0, 86400), default=60, metavar="SECONDS",
                   help="the metric's per-job minimum: a segment waits this long past its end (default 60)")


def _decimal(text: str) -> Decimal:
    try:
        d = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not d.is_finite() or d < 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text!r}")
    return d


def spool_path(args: argparse.Namespace) -> str:
    state = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return args.spool or os.environ.get("GPUBILL_SPOOL") or os.path.join(state, "gpubill", "spool.db")


def run(args: argparse.Namespace) -> int:
    return {"exec": _exec, "run": _run, "status": _status}[args.action](args)


def _agent(args: argparse.Namespace):
    from gpubill.agent.nvml import open_backend
    from gpubill.agent.run import Agent, Settings
    from gpubill.agent.spool import Spool, SpoolBusy

    try:
        spool = Spool(spool_path(args))
    except SpoolBusy as e:
        raise CliError(str(e), EXIT_IO) from None
    except Exception as e:  # sqlite3.Error, OSError: the spool cannot be opened
        raise CliError(f"spool {spool_path(args)}: {e}", EXIT_IO) from None
    settings = Settings(args.node, args.segment * 1000, args.job_minimum * 1000)
    return Agent(spool, _sink(args), open_backend(), settings)


def _sink(args: argparse.Namespace):
    from gpubill.agent.deliver import HttpSink, StoreSink

    if args.store:
        return StoreSink(args.store)
    key = args.api_key or os.environ.get("GPUBILL_API_KEY")
    if not key:
        raise CliError("--endpoint needs --api-key (or $GPUBILL_API_KEY): a writer key from `gpubill keys create`",
                       EXIT_USAGE)
    return HttpSink(args.endpoint, key)


def _exec(args: argparse.Namespace) -> int:
    import attrs

    from gpubill.agent.jobs import EXEC, Allocation, slurm_allocation
    from gpubill.agent.run import JobExists, run_exec

    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        raise CliError("no command to run: gpubill agent exec ... -- CMD...", EXIT_USAGE)
    gpus = tuple(g.strip() for g in (args.gpus or "").split(",") if g.strip())
    if args.job is None and not os.environ.get("SLURM_JOB_ID"):
        raise CliError("--job is needed outside a Slurm job (no SLURM_JOB_ID)", EXIT_USAGE)

    def allocation(start_ms: int) -> Allocation:
        base = (Allocation(EXEC, args.job, 0, args.subscription, start_ms) if args.job is not None
                else slurm_allocation(os.environ, args.subscription, start_ms))
        return attrs.evolve(base, attempt=base.attempt if args.attempt is None else args.attempt,
                            gpus=gpus or base.gpus, gpu_type=args.gpu_type, gpu_count=args.gpu_count,
                            region=args.region, availability_class=args.availability_class)

    agent = _agent(args)
    try:
        result = run_exec(agent, allocation, cmd, int(args.flush * 1000))
    except OSError as e:
        raise CliError(f"{cmd[0]}: {e.strerror or e}", 127) from None
    except JobExists as e:
        raise CliError(str(e), EXIT_USAGE) from None
    finally:
        agent.sink.close()
        agent.spool.close()
    if result.undelivered:
        print(f"gpubill: agent: {result.undelivered} events not delivered yet; they are in "
              f"{spool_path(args)} (`gpubill agent run` delivers them)", file=sys.stderr)
    return result.returncode


def _run(args: argparse.Namespace) -> int:
    if (args.pod_resources is None) != (args.pods is None):
        raise CliError("--pod-resources and --pods go together (the pods' GPUs, and who the pods are)", EXIT_USAGE)
    if args.pod_resources and args.jobs_dir:
        raise CliError("one job source at a time: --jobs-dir, or --pod-resources with --pods", EXIT_USAGE)
    agent = _agent(args)
    try:
        agent.run(_source(args, agent), until_idle=args.until_idle)
    finally:
        agent.sink.close()
        agent.spool.close()
    return EXIT_OK


def _source(args: argparse.Namespace, agent):
    from gpubill.agent.jobs import KUBERNETES, DropDirSource, JsonFile, KubernetesSource
    from gpubill.agent.spool import OPEN

    if args.jobs_dir:
        return DropDirSource(args.jobs_dir)
    if args.pod_resources:
        pods = [r.allocation for r in agent.spool.jobs(OPEN) if r.allocation.scheduler == KUBERNETES]
        files = JsonFile(args.pod_resources, args.pods)
        return KubernetesSource(files, files, agent.clock.wall_ms, pods)
    return None


def _status(args: argparse.Namespace) -> int:
    import orjson

    from gpubill.agent.emit import iso
    from gpubill.agent.nvml import open_backend
    from gpubill.agent.spool import OPEN, Spool

    path = spool_path(args)
    if not os.path.exists(path):
        raise CliError(f"no spool at {path} (the agent has not run here, or pass --spool)", EXIT_IO)
    backend = open_backend()
    devices = backend.devices() if backend is not None else []
    spool = Spool(path, readonly=True)
    try:
        doc = {"devices": [{"index": d.index, "uuid": d.uuid, "gpu_type": d.gpu_type, "name": d.name}
                           for d in devices],
               "nvml": backend is not None,
               "open_jobs": [{"job": r.allocation.key, "subscription": r.allocation.subscription,
                              "segments_emitted": r.emitted, "elapsed_seconds_at_checkpoint": r.elapsed_ms / 1000}
                             for r in spool.jobs(OPEN)],
               "outbox": spool.counts(),
               "last_delivery": spool.cursor("last_delivery"),
               "last_error": spool.cursor("last_error"),
               "unattributed": spool.cursor("unattributed", [])}
    finally:
        spool.close()
    if args.format == "json":
        sys.stdout.write(orjson.dumps(doc).decode() + "\n")
        return EXIT_OK
    print(f"devices: {len(devices)}" + ("" if doc["nvml"] else " (no NVML on this node)"))
    for d in doc["devices"]:
        print(f"  {d['index']}  {d['uuid']}  {d['gpu_type'] or d['name']}")
    print(f"open jobs: {len(doc['open_jobs'])}")
    for j in doc["open_jobs"]:
        print(f"  {j['job']}  {j['subscription']}  {j['segments_emitted']} segments emitted")
    counts = doc["outbox"]
    print(f"outbox: {counts.get('pending', 0)} pending, {counts.get('delivered', 0)} delivered, "
          f"{counts.get('refused', 0)} refused")
    last = doc["last_delivery"]
    print("last delivery: " + (f"{last['events']} events at {iso(last['at_ms'])}" if last else "never"))
    if doc["last_error"]:
        print(f"last error: {doc['last_error']['error']}")
    for u in doc["unattributed"]:
        print(f"unattributed: pid {u['pid']} on {u['uuid']}" + (f" (job {u['job']}, not holding it)" if u["job"] else ""))
    return EXIT_OK
