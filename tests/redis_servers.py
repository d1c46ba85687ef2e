"""Throw-away Redis servers for the tests: plain, password, TLS, out of memory, a three-master cluster.

Each server runs from ``redis-server`` on loopback with its files in a temporary folder and is shut
down by the test that started it. Ports start at ``$FSSPARK_TEST_PORT_BASE`` (default 7100).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import psutil
import redis

PORT_BASE = int(os.environ.get("FSSPARK_TEST_PORT_BASE", "7100"))


def _wait(port: int, **kwargs) -> None:
    client = redis.Redis(port=port, socket_connect_timeout=1, **kwargs)
    for _ in range(100):
        try:
            client.ping()
            return
        except redis.AuthenticationError:
            return  # up, and asking for a password
        except redis.RedisError:
            time.sleep(0.05)
    raise RuntimeError(f"redis-server on port {port} did not start")


#: Pids of the servers the tests started, by port: a run killed before its clean-up (SIGKILL) leaves
#: its servers running, and the next run stops those, and only those.
STARTED = Path(__file__).resolve().parents[1] / ".cache" / "test-servers"


def _started(port: int, proc: subprocess.Popen) -> None:
    """Records the server's pid and this run's (the test process that owns it)."""
    STARTED.mkdir(parents=True, exist_ok=True)
    (STARTED / f"{port}.pid").write_text(f"{proc.pid} {os.getpid()}")


def _stopped(port: int) -> None:
    (STARTED / f"{port}.pid").unlink(missing_ok=True)


def _stop_left_over(port: int) -> None:
    """Stop the server a killed earlier run started on ``port``, if its pid is still that redis-server
    and the run that started it is gone (a run still going, e.g. a second checkout's, keeps its server)."""
    pidfile = STARTED / f"{port}.pid"
    if not pidfile.exists():
        return
    try:
        server, owner = (int(n) for n in pidfile.read_text().split())
        if psutil.pid_exists(owner):
            return
        proc = psutil.Process(server)
        command = proc.cmdline()  # redis-server names itself "redis-server 127.0.0.1:<port>"
        if proc.name() == "redis-server" and (f":{port}" in " ".join(command) or str(port) in command):
            proc.kill()
            proc.wait(timeout=10)
    except (psutil.Error, ValueError):
        pass
    pidfile.unlink(missing_ok=True)


def _refuse_taken(port: int) -> None:
    _stop_left_over(port)
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return
    raise RuntimeError(f"something already listens on 127.0.0.1:{port}; the tests start their own Redis servers "
                       "there: stop it, or move the tests' ports with FSSPARK_TEST_PORT_BASE")


def wait_for_keys(client: redis.Redis, count: int) -> None:
    """Wait (up to 10 s) until the server holds ``count`` keys."""
    for _ in range(1000):
        if client.dbsize() >= count:
            return
        time.sleep(0.01)
    raise RuntimeError(f"the server holds {client.dbsize()} keys, not {count}")


@contextmanager
def redis_server(port: int, folder: Path, *args: str, tls: bool = False, **ping):
    """A redis-server on 127.0.0.1:port; extra ``args`` are redis-server options. Refuses a port where
    a server already answers: a test never writes to (or flushes) a server it did not start."""
    _refuse_taken(port)
    folder.mkdir(parents=True, exist_ok=True)
    where = ["--port", "0", "--tls-port", str(port)] if tls else ["--port", str(port)]
    cmd = ["redis-server", *where, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(folder),
           "--logfile", str(folder / "redis.log"), *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    _started(port, proc)
    try:
        _wait(port, **ping)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        _stopped(port)


@contextmanager
def redis_cluster(first_port: int, folder: Path, masters: int = 3, replicas: int = 0):
    """A cluster of ``masters`` primaries with ``replicas`` replicas each, on consecutive ports; yields
    the ports. With replicas, a node missing for 1 s counts as failed, so that a replica takes over quickly."""
    ports = [first_port + i for i in range(masters * (1 + replicas))]
    for port in ports:  # the node's port and its cluster bus port
        _refuse_taken(port)
        _refuse_taken(port + 10000)
    procs = []
    try:
        for port in ports:
            node = folder / str(port)
            node.mkdir(parents=True, exist_ok=True)
            procs.append(subprocess.Popen(
                ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                 "--cluster-node-timeout", "1000" if replicas else "15000",
                 "--cluster-config-file", str(node / "nodes.conf"), "--save", "", "--appendonly", "no",
                 "--dir", str(node), "--logfile", str(node / "redis.log")], stdout=subprocess.DEVNULL))
            _started(port, procs[-1])
        for port in ports:
            _wait(port)
        subprocess.run(["redis-cli", "--cluster", "create", *[f"127.0.0.1:{p}" for p in ports],
                        "--cluster-replicas", str(replicas), "--cluster-yes"], check=True, capture_output=True)
        for _ in range(100):  # every node must see every slot before clients route by it
            states = [redis.Redis(port=p).cluster("info").get("cluster_state") for p in ports]
            if all(s == "ok" for s in states):
                break
            time.sleep(0.1)
        _wait_replicas_synced(ports, masters * replicas)
        yield ports
    finally:
        for proc in procs:
            proc.terminate()
        for port, proc in zip(ports, procs):
            proc.wait(timeout=10)
            _stopped(port)


def _wait_replicas_synced(ports: list[int], expected: int, timeout: float = 60.0) -> None:
    """Until every replica has finished its first sync: a replica that never synced cannot take over
    from its master (Redis refuses: "Disconnected from master for longer than allowed"), and a test
    killing a master right after the cluster was made would then see no failover at all."""
    deadline = time.monotonic() + timeout
    while True:
        infos = [redis.Redis(port=p).info("replication") for p in ports]
        synced = [i for i in infos if i.get("role") == "slave" and i.get("master_link_status") == "up"
                  and not i.get("master_sync_in_progress")]
        if len(synced) == expected:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(synced)} of {expected} replicas synced with their masters after {timeout:.0f} s")
        time.sleep(0.1)


def make_tls_files(folder: Path) -> dict[str, Path]:
    """A CA and a server certificate for 127.0.0.1 / localhost, made with openssl."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key, ca, key, csr, crt = (folder / n for n in ("ca.key", "ca.crt", "server.key", "server.csr", "server.crt"))
    ext = folder / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca), "-days", "2",
        "-subj", "/CN=fsspark-test-ca")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", "/CN=localhost")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial", "-out", str(crt),
        "-days", "2", "-extfile", str(ext))
    return {"ca": ca, "cert": crt, "key": key}


class RestartableServer:
    """A redis-server without persistence that a test can kill (SIGKILL), start again on the same port,
    pause (SIGSTOP) and resume: the faults a push must survive. Each start is a new process, with a
    new ``run_id`` and no keys."""

    def __init__(self, port: int, folder: Path, *args: str):
        folder.mkdir(parents=True, exist_ok=True)
        self.port = port
        self.cmd = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                    "--dir", str(folder), "--logfile", str(folder / "redis.log"), *args]
        self.proc: subprocess.Popen | None = None

    def start(self) -> RestartableServer:
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL)
        _wait(self.port)
        return self

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            self.proc.wait(timeout=10)


def when_keys(port: int, count: int, action, timeout: float = 120.0):
    """In a thread: once the server on ``port`` holds ``count`` keys, run ``action``. Returns the thread
    and a list that receives how many keys the server held just before the action (the proof that the
    fault came in the middle of the push)."""
    import threading

    seen: list[int] = []

    def run() -> None:
        client = redis.Redis(port=port, socket_timeout=1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                held = client.dbsize()
            except redis.RedisError:
                held = 0
            if held >= count:
                seen.append(held)
                action()
                return
            time.sleep(0.002)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, seen
