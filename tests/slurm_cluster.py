"""A throwaway one-node SLURM cluster (with accounting) for integration tests.

Everything lives in one temporary directory: munged, MariaDB, slurmdbd, slurmctld and slurmd run
in the foreground as children of the test process, on free loopback ports, with their own socket,
pid, state and log files. Client commands find the cluster through ``SLURM_CONF`` (see
``SlurmCluster.env``) and, because snakemake's SLURM jobstep strips every ``SLURM_*`` variable
before it calls ``srun`` inside a job, also through a symlink at the default path
/etc/slurm/slurm.conf, which ``stop`` removes again (restoring a file that was there before).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_CONF = Path("/etc/slurm/slurm.conf")
PACKAGES = ("slurm-wlm", "munge", "slurmdbd", "mariadb-server")
DAEMONS = ("/usr/sbin/munged", "/usr/sbin/slurmctld", "/usr/sbin/slurmd", "/usr/sbin/slurmdbd",
           "/usr/sbin/mariadbd")
CLUSTER_NAME = "nirtest"
PARTITION = "debug"
ACCOUNT = "nirlab"


def missing_prerequisite() -> str | None:
    """Why the cluster cannot be installed here (not root, no apt-get), or None if it can."""
    if all(Path(daemon).exists() for daemon in DAEMONS):
        return None if os.geteuid() == 0 else "SLURM daemons must be started as root"
    if shutil.which("apt-get") is None:
        return "apt-get is unavailable, cannot install slurm-wlm/munge/slurmdbd/mariadb-server"
    if os.geteuid() != 0:
        return "not root, cannot apt-get install slurm-wlm/munge/slurmdbd/mariadb-server"
    return None


def install() -> None:
    """Install the Debian packages (once: a no-op when the daemons are already present)."""
    if all(Path(daemon).exists() for daemon in DAEMONS):
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, capture_output=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES],
                   check=True, env=env, capture_output=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(check, what: str, timeout: float, logs: list[Path],
              process: subprocess.Popen | None = None) -> None:
    """Poll ``check`` until true; raise with the logs' tails on timeout or if ``process`` died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if process is not None and process.poll() is not None:
            problem = f"{what}: daemon exited with status {process.returncode}"
            break
        time.sleep(0.3)
    else:
        problem = f"timed out after {timeout:.0f} s waiting for {what}"
    tails = "\n".join(f"--- {log}\n{_tail(log)}" for log in logs)
    raise RuntimeError(f"{problem}\n{tails}")


def _tail(path: Path, lines: int = 20) -> str:
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    raise RuntimeError("MemTotal missing from /proc/meminfo")


@dataclass
class SlurmCluster:
    """A running cluster: its directory, config file and the daemons to stop."""

    root: Path
    conf: Path
    processes: list[subprocess.Popen] = field(default_factory=list)
    displaced_conf: Path | None = None
    linked_default_conf: bool = False

    @property
    def env(self) -> dict[str, str]:
        """The environment for SLURM client commands (sbatch, sacct, snakemake) to use it."""
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run a SLURM client command against this cluster; returns its captured output."""
        return subprocess.run(command, env=self.env, capture_output=True, text=True,
                              check=check, timeout=60)

    def _spawn(self, name: str, command: list[str], **kwargs) -> subprocess.Popen:
        log = open(self.root / f"{name}.out", "wb")  # noqa: SIM115 (kept by the child)
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                   env=self.env, start_new_session=True, **kwargs)
        log.close()
        self.processes.append(process)
        return process

    def stop(self) -> None:
        """Stop every daemon this cluster started (newest first), by PID, then remove its files.

        Jobs still queued or running are cancelled first: their slurmstepd would outlive slurmd.
        """
        if any(process.poll() is None for process in self.processes):
            self._cancel_jobs()
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=5)
        self.processes.clear()
        if self.linked_default_conf:
            DEFAULT_CONF.unlink(missing_ok=True)
            if self.displaced_conf is not None:
                self.displaced_conf.rename(DEFAULT_CONF)
            self.linked_default_conf = False
        shutil.rmtree(self.root, ignore_errors=True)

    def _cancel_jobs(self, timeout: float = 30) -> None:
        try:
            jobs = self.run("squeue", "-h", "-o", "%i", check=False).stdout.split()
            if not jobs:
                return
            self.run("scancel", *jobs, check=False)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.run(
                    "squeue", "-h", "-o", "%i", check=False).stdout.strip():
                time.sleep(0.5)
        except subprocess.TimeoutExpired:
            return

    def link_default_conf(self) -> None:
        """Point /etc/slurm/slurm.conf at this cluster's config (moving an existing one aside)."""
        DEFAULT_CONF.parent.mkdir(parents=True, exist_ok=True)
        if DEFAULT_CONF.exists() or DEFAULT_CONF.is_symlink():
            self.displaced_conf = DEFAULT_CONF.with_name(f"slurm.conf.before-{self.root.name}")
            DEFAULT_CONF.rename(self.displaced_conf)
        DEFAULT_CONF.symlink_to(self.conf)
        self.linked_default_conf = True


def _write_configs(cluster: SlurmCluster, ports: dict[str, int], cpus: int) -> None:
    root = cluster.root
    for sub in ("state", "spool"):
        (root / sub).mkdir()
    memory = max(1024, _memory_mb() - 2048)
    munge_socket = root / "munge" / "munge.socket"
    cluster.conf.write_text(f"""\
ClusterName={CLUSTER_NAME}
SlurmctldHost=localhost
SlurmctldPort={ports["slurmctld"]}
SlurmdPort={ports["slurmd"]}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={munge_socket}
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MinJobAge=300
MpiDefault=none
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStoreFlags=job_comment
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort={ports["slurmdbd"]}
AccountingStoragePass={munge_socket}
NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory} State=UNKNOWN
PartitionName={PARTITION} Nodes=localhost Default=YES MaxTime=INFINITE State=UP
""")
    dbd_conf = root / "slurmdbd.conf"
    dbd_conf.write_text(f"""\
AuthType=auth/munge
AuthInfo=socket={munge_socket}
DbdHost=localhost
DbdPort={ports["slurmdbd"]}
SlurmUser=root
PidFile={root}/slurmdbd.pid
LogFile={root}/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort={ports["mariadb"]}
StorageUser=root
StorageLoc=slurm_acct_db
""")
    dbd_conf.chmod(0o600)


def _start_munge(cluster: SlurmCluster) -> None:
    munge_dir = cluster.root / "munge"
    munge_dir.mkdir()
    munge_dir.chmod(0o755)  # munged requires its socket directory to be world-executable
    shutil.chown(munge_dir, "munge", "munge")
    munged = cluster._spawn("munged", [
        "/usr/sbin/munged", "--foreground", f"--socket={munge_dir}/munge.socket",
        f"--pid-file={munge_dir}/munged.pid", f"--log-file={munge_dir}/munged.log",
        f"--seed-file={munge_dir}/munged.seed", "--num-threads=10",
    ], user="munge", group="munge")
    _wait_for(lambda: (munge_dir / "munge.socket").exists(), "munged", 20,
              [cluster.root / "munged.out", munge_dir / "munged.log"], munged)


def _start_mariadb(cluster: SlurmCluster, port: int) -> None:
    datadir = cluster.root / "mariadb"
    subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={datadir}", "--user=mysql",
                    "--auth-root-authentication-method=normal", "--skip-test-db"],
                   check=True, capture_output=True, timeout=120)
    mariadb = cluster._spawn("mariadb", [
        "/usr/sbin/mariadbd", "--no-defaults", f"--datadir={datadir}", "--user=mysql",
        "--bind-address=127.0.0.1", f"--port={port}", f"--socket={datadir}/mariadb.sock",
        f"--pid-file={datadir}/mariadb.pid", "--skip-grant-tables", "--skip-log-bin",
        "--innodb-buffer-pool-size=64M",
    ])
    _wait_for(lambda: _port_open(port), "MariaDB", 60, [cluster.root / "mariadb.out"], mariadb)


def _node_idle(cluster: SlurmCluster) -> bool:
    result = cluster.run("sinfo", "-h", "-N", "-o", "%T", check=False)
    return result.returncode == 0 and result.stdout.strip() in ("idle", "mixed")


def _add_association(cluster: SlurmCluster) -> None:
    cluster.run("sacctmgr", "-i", "add", "cluster", CLUSTER_NAME)
    cluster.run("sacctmgr", "-i", "add", "account", ACCOUNT, f"cluster={CLUSTER_NAME}")
    cluster.run("sacctmgr", "-i", "add", "user", "root", f"account={ACCOUNT}",
                f"cluster={CLUSTER_NAME}")


def start(cpus: int | None = None) -> SlurmCluster:
    """Start munged, MariaDB, slurmdbd, slurmctld and slurmd; returns once the node is idle.

    On any failure the daemons started so far are stopped before the error propagates.
    """
    root = Path(tempfile.mkdtemp(prefix="nir-slurm-"))
    root.chmod(0o755)  # munge and mysql users must reach their subdirectories
    cluster = SlurmCluster(root=root, conf=root / "slurm.conf")
    ports = {name: _free_port() for name in ("slurmctld", "slurmd", "slurmdbd", "mariadb")}
    try:
        _write_configs(cluster, ports, cpus or os.cpu_count() or 1)
        cluster.link_default_conf()
        _start_munge(cluster)
        _start_mariadb(cluster, ports["mariadb"])
        # slurmdbd reads slurmdbd.conf from the directory of $SLURM_CONF
        dbd = cluster._spawn("slurmdbd", ["/usr/sbin/slurmdbd", "-D"])
        _wait_for(lambda: _port_open(ports["slurmdbd"]), "slurmdbd", 60,
                  [root / "slurmdbd.out", root / "slurmdbd.log"], dbd)
        _wait_for(lambda: cluster.run("sacctmgr", "-n", "list", "cluster",
                                      check=False).returncode == 0,
                  "sacctmgr to reach slurmdbd", 30, [root / "slurmdbd.log"])
        _add_association(cluster)
        ctld = cluster._spawn("slurmctld", ["/usr/sbin/slurmctld", "-D", "-i", "-f",
                                            str(cluster.conf)])
        _wait_for(lambda: _port_open(ports["slurmctld"]), "slurmctld", 60,
                  [root / "slurmctld.out", root / "slurmctld.log"], ctld)
        slurmd = cluster._spawn("slurmd", ["/usr/sbin/slurmd", "-D", "-N", "localhost",
                                  "-f", str(cluster.conf)])
        _wait_for(lambda: _node_idle(cluster), "node localhost to become idle", 60,
                  [root / "slurmd.out", root / "slurmd.log", root / "slurmctld.log"], slurmd)
    except BaseException:
        cluster.stop()
        raise
    return cluster
