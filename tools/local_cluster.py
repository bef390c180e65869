"""A real single-node Slurm for the cluster test, started from Debian's packages without systemd.

    python tools/local_cluster.py start DIR   # prints: export SLURM_CONF=DIR/slurm.conf PATH=DIR/bin:$PATH
    python tools/local_cluster.py stop DIR

``start`` installs the Debian packages if missing (tools/install_system_deps.sh: apt-get as root),
writes a cgroup-free slurm.conf and every state, spool, log and socket file into DIR, starts munged
(as the munge user, on a socket of its own), slurmctld and slurmd in the foreground as children,
records their PIDs in DIR/pids, and waits until the node is idle. ``stop`` cancels whatever jobs are
left, then ends exactly those PIDs. Clients (sbatch, squeue, Snakemake's SLURM plugin) find the
cluster through ``SLURM_CONF`` (and, inside jobs, an srun shim first on ``PATH``: see
write_srun_shim); ports are picked free, so a real Slurm on the machine is not touched. Needs root
(slurmd, and munged run as the munge user).

Settings found to work here (Slurm 22.05, no cgroups, no slurmdbd):
``proctrack/linuxproc``, ``task/none``, ``select/cons_tres`` with ``CR_Core_Memory`` and a
``DefMemPerCPU`` (else a job without --mem takes the whole node), no accounting storage (so ``sacct``
fails: the SLURM plugin must poll with ``squeue``) and a ``MinJobAge`` well above the plugin's
status-check interval, so ``squeue`` still shows finished jobs when it polls.
"""

import dataclasses
import json
import os
import pwd
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
INSTALL_SCRIPT = REPO / "scripts" / "install_system_deps.sh"
BINARIES = (
    "/usr/sbin/munged",
    "/usr/sbin/slurmctld",
    "/usr/sbin/slurmd",
    "/usr/bin/sbatch",
    "/usr/bin/squeue",
    "/usr/bin/scontrol",
    "/usr/bin/sinfo",
    "/usr/bin/scancel",
)
MUNGE_KEY = Path("/etc/munge/munge.key")
NODE = "localhost"
PARTITION = "debug"
MIN_JOB_AGE_S = 600
DEF_MEM_PER_CPU_MB = 1000


class ClusterError(Exception):
    """The test cluster could not be started; the message is one line saying why and what to do."""


@dataclasses.dataclass
class Cluster:
    root: Path
    pids: dict[str, int]
    cpus: int
    memory_mb: int

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    def env(self, base: dict | None = None) -> dict:
        """An environment whose Slurm clients talk to this cluster (``SLURM_CONF``, and the srun shim
        first on ``PATH``)."""
        base = dict(os.environ if base is None else base)
        path = f"{self.root / 'bin'}{os.pathsep}{base['PATH']}" if base.get("PATH") else str(self.root / "bin")
        return {**base, "SLURM_CONF": str(self.conf), "PATH": path}

    def run(self, *cmd: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run(list(cmd), capture_output=True, text=True, env=self.env(), timeout=timeout)


def ensure_packages() -> None:
    """Install slurmctld, slurmd, slurm-client and munge if missing (apt-get, root only)."""
    if all(os.access(path, os.X_OK) for path in BINARIES):
        return
    result = subprocess.run(["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise ClusterError(f"Slurm packages missing and {INSTALL_SCRIPT.name} failed: {last}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def node_memory_mb() -> int:
    """Memory offered to jobs: 90 % of what the machine has."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(int(line.split()[1]) / 1024 * 0.9)
    raise ClusterError("cannot read MemTotal from /proc/meminfo")


def slurm_conf(root: Path, cpus: int, memory_mb: int, ctld_port: int, slurmd_port: int) -> str:
    return f"""# Written by tools/local_cluster.py: a single-node test cluster, no cgroups, no slurmdbd.
ClusterName=tsneatlas
SlurmctldHost={NODE}
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root}/munge/munge.socket
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/run/slurmctld.pid
SlurmdPidFile={root}/run/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU={DEF_MEM_PER_CPU_MB}
SlurmdParameters=config_overrides
MinJobAge={MIN_JOB_AGE_S}
ReturnToService=2
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
NodeName={NODE} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName={PARTITION} Nodes={NODE} Default=YES MaxTime=INFINITE State=UP
"""


def write_srun_shim(root: Path) -> Path:
    """``root/bin/srun``: Slurm's srun with ``SLURM_CONF`` put back.

    Inside a cluster job the SLURM jobstep plugin (0.6.1) starts the Snakemake job with ``srun`` in
    an environment stripped of every ``SLURM_*`` variable but the job's ids, ``SLURM_CONF`` included.
    A real cluster keeps its config where srun finds it without the variable (/etc/slurm, or
    configless); this test cluster lives in a temporary folder and is found only through it.
    """
    shim = root / "bin" / "srun"
    shim.parent.mkdir(parents=True, exist_ok=True)
    shim.write_text(f"""#!/bin/sh
# Written by tools/local_cluster.py (see write_srun_shim): srun of the test cluster.
SLURM_CONF="${{SLURM_CONF:-{root}/slurm.conf}}" exec /usr/bin/srun "$@"
""")
    shim.chmod(0o755)
    return shim


def _start(cmd: list[str], log: Path, **kwargs) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, **kwargs
        )


def _wait(check, what: str, timeout: float, cluster_root: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.25)
    raise ClusterError(f"{what} within {timeout:g} s; see the logs in {cluster_root}/log")


def start(root: str | os.PathLike, timeout: float = 60) -> Cluster:
    """Start munged, slurmctld and slurmd with everything under ``root``; wait until the node is idle."""
    if os.geteuid() != 0:
        raise ClusterError("the Slurm test cluster starts slurmd and munged and needs root; run the tests as root")
    ensure_packages()
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    closed = [str(parent) for parent in root.parents if not os.stat(parent).st_mode & 0o001]
    if closed:
        raise ClusterError(
            f"{closed[0]} is not reachable by other users (munged must reach its socket in {root}); "
            f"put the cluster folder elsewhere, e.g. under /tmp"
        )
    for sub in ("state", "spool", "log", "run", "munge"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    munge = pwd.getpwnam("munge")
    # munged wants its socket folder owned by its own user and reachable by all (clients connect).
    os.chown(root / "munge", munge.pw_uid, munge.pw_gid)
    os.chmod(root / "munge", 0o755)  # munged: "execute permissions for all required"
    os.chmod(root, 0o755)
    cpus = len(os.sched_getaffinity(0))
    memory_mb = node_memory_mb()
    (root / "slurm.conf").write_text(slurm_conf(root, cpus, memory_mb, free_port(), free_port()))
    write_srun_shim(root)
    cluster = Cluster(root=root, pids={}, cpus=cpus, memory_mb=memory_mb)
    try:
        munged = _start(
            [
                "/usr/sbin/munged",
                "--foreground",
                f"--socket={root}/munge/munge.socket",
                f"--key-file={MUNGE_KEY}",
                f"--pid-file={root}/munge/munged.pid",
                f"--log-file={root}/munge/munged.log",
                f"--seed-file={root}/munge/munged.seed",
            ],
            root / "log" / "munged.out",
            user=munge.pw_uid,
            group=munge.pw_gid,
            extra_groups=[],
        )
        cluster.pids["munged"] = munged.pid
        _save_pids(cluster)
        _wait(
            lambda: (root / "munge" / "munge.socket").exists() or munged.poll() is not None,
            "munged did not create its socket",
            20,
            root,
        )
        if munged.poll() is not None:
            raise ClusterError(f"munged exited at start ({_tail(root / 'log' / 'munged.out')})")
        env = cluster.env()
        ctld = _start(
            ["/usr/sbin/slurmctld", "-D", "-c", "-f", str(cluster.conf)], root / "log" / "slurmctld.out", env=env
        )
        cluster.pids["slurmctld"] = ctld.pid
        _save_pids(cluster)
        _wait(
            lambda: _succeeds(cluster, "scontrol", "ping") or ctld.poll() is not None,
            "slurmctld did not answer",
            timeout,
            root,
        )
        if ctld.poll() is not None:
            raise ClusterError(f"slurmctld exited at start ({_tail(root / 'log' / 'slurmctld.log')})")
        slurmd = _start(
            ["/usr/sbin/slurmd", "-D", "-N", NODE, "-f", str(cluster.conf)], root / "log" / "slurmd.out", env=env
        )
        cluster.pids["slurmd"] = slurmd.pid
        _save_pids(cluster)
        _wait(
            lambda: node_state(cluster) == "idle" or slurmd.poll() is not None,
            "the node did not become idle",
            timeout,
            root,
        )
        if slurmd.poll() is not None:
            raise ClusterError(f"slurmd exited at start ({_tail(root / 'log' / 'slurmd.log')})")
    except BaseException:
        stop(cluster)
        raise
    return cluster


def _succeeds(cluster: Cluster, *cmd: str) -> bool:
    try:
        return cluster.run(*cmd, timeout=15).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def node_state(cluster: Cluster) -> str:
    try:
        result = cluster.run("sinfo", "--noheader", "--Node", "--format=%T", timeout=15)
    except subprocess.TimeoutExpired:
        return ""
    return result.stdout.strip() if result.returncode == 0 else ""


def _tail(path: Path) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return f"no {path.name}"
    return lines[-1].strip() if lines else f"{path.name} is empty"


def _save_pids(cluster: Cluster) -> None:
    (cluster.root / "pids").write_text(
        json.dumps({"pids": cluster.pids, "cpus": cluster.cpus, "memory_mb": cluster.memory_mb}, indent=1)
    )


def load(root: str | os.PathLike) -> Cluster:
    data = json.loads((Path(root).resolve() / "pids").read_text())
    return Cluster(root=Path(root).resolve(), pids=data["pids"], cpus=data["cpus"], memory_mb=data["memory_mb"])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A child that exited but was not reaped is a zombie: gone for our purposes.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def stop(cluster: Cluster, timeout: float = 20) -> None:
    """Cancel leftover jobs, then end exactly the recorded daemons (TERM, then KILL)."""
    if "slurmctld" in cluster.pids and _alive(cluster.pids["slurmctld"]):
        try:
            cluster.run("scancel", "--full", f"--partition={PARTITION}", timeout=10)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                queue = cluster.run("squeue", "--noheader", "--states=RUNNING,COMPLETING,PENDING", timeout=10)
                if queue.returncode != 0 or not queue.stdout.strip():
                    break
                time.sleep(0.5)
        except subprocess.TimeoutExpired:
            pass
    for name in ("slurmd", "slurmctld", "munged"):
        pid = cluster.pids.get(name)
        if pid is None or not _alive(pid):
            continue
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.1)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
            while _alive(pid):
                _reap(pid)
                time.sleep(0.1)
        _reap(pid)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("start", "stop"):
        print("usage: python tools/local_cluster.py start|stop DIR", file=sys.stderr)
        return 2
    command, root = argv
    try:
        if command == "start":
            cluster = start(root)
            print(
                f"export SLURM_CONF={cluster.conf} PATH={cluster.root / 'bin'}:$PATH  "
                f"# {cluster.cpus} CPUs, {cluster.memory_mb} MB; PIDs {cluster.pids}"
            )
        else:
            stop(load(root))
    except ClusterError as err:
        print(f"tsne-atlas: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
