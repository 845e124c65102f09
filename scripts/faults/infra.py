"""Processes the fault suite starts and kills: its own nats-server (JetStream on its own store),
its own Postgres cluster (initdb / pg_ctl into a temporary directory), the sandbox, and the
services. Python 3 standard library only.

Nothing here touches the machine's shared Postgres (5432) or NATS (4222): every port is picked
free at start, every directory is under the run's temporary directory.
"""

import http.client
import json
import os
import signal
import socket
import subprocess
import time
import urllib.parse

PG_BIN = os.environ.get("FAULTS_PG_BIN", "/usr/lib/postgresql/15/bin")


def as_pg_owner(argv):
    """Postgres refuses to run as root: as root, run its programs as the `postgres` user."""
    if os.geteuid() == 0:
        return ["runuser", "-u", os.environ.get("FAULTS_PG_USER", "postgres"), "--", *argv]
    return argv


_taken = set()


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on now, below the kernel's ephemeral range
    (a port from that range can be taken by any outgoing connection before our process binds
    it), and not handed out before in this run."""
    import random
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    rng = random.Random()
    for _ in range(1000):
        port = rng.randint(20000, max(20001, min(low, 65536) - 1))
        if port in _taken:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _taken.add(port)
        return port
    raise RuntimeError("no free port below the ephemeral range")


def wait_for(what, predicate, timeout, interval=0.1, alive=None):
    """Polls `predicate` until it is true; raises on the deadline or when `alive()` is false."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except Exception:  # noqa: BLE001 - a probe that fails is a probe that says no
            pass
        if alive is not None and not alive():
            raise RuntimeError(f"process died while waiting for {what}")
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def http_request(method, url, body=None, headers=None, timeout=10.0):
    """One HTTP/1.1 request; returns (status, body bytes). Raises OSError on connection errors."""
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        path = u.path + (f"?{u.query}" if u.query else "")
        h = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        elif isinstance(body, str):
            body = body.encode()
        conn.request(method, path, body=body, headers=h)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def get_json(url, timeout=10.0):
    status, body = http_request("GET", url, timeout=timeout)
    if status != 200:
        raise RuntimeError(f"GET {url}: HTTP {status} {body[:200]!r}")
    value = json.loads(body)
    return [] if value is None else value  # the sandbox answers null for an unknown chat


class Proc:
    """A child process in its own process group, logging to a file."""

    def __init__(self, name, argv, env, log_path, cwd):
        self.name, self.argv, self.env, self.log_path, self.cwd = name, argv, env, log_path, cwd
        self.popen = None

    def start(self):
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        log.write(f"\n==== start {time.strftime('%H:%M:%S')} {' '.join(self.argv)}\n".encode())
        log.flush()
        self.popen = subprocess.Popen(
            self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=self.cwd, start_new_session=True,
        )
        log.close()
        return self

    def alive(self):
        return self.popen is not None and self.popen.poll() is None

    def kill9(self):
        if self.alive():
            os.kill(self.popen.pid, signal.SIGKILL)
            self.popen.wait()

    def stop(self, timeout=10):
        if not self.alive():
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill9()

    def tail(self, n=25):
        try:
            with open(self.log_path, "rb") as f:
                return b"".join(f.readlines()[-n:]).decode(errors="replace")
        except OSError:
            return ""


class Nats:
    """nats-server with JetStream on its own store directory; killed and restarted on it."""

    def __init__(self, workdir, binary="nats-server"):
        self.port = free_port()
        self.store = os.path.join(workdir, "nats-store")
        os.makedirs(self.store, exist_ok=True)
        self.url = f"nats://127.0.0.1:{self.port}"
        self.proc = Proc("nats-server", [binary, "-a", "127.0.0.1", "-p", str(self.port), "-js",
                                         "-sd", self.store], dict(os.environ),
                         os.path.join(workdir, "nats-server.log"), workdir)

    def start(self):
        self.proc.start()
        wait_for("nats-server", self.ping, 30, alive=self.proc.alive)

    def ping(self):
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
            s.recv(4096)
            s.sendall(b'CONNECT {"verbose":false}\r\nPING\r\n')
            return b"PONG" in s.recv(4096)

    def kill9(self):
        self.proc.kill9()

    def stop(self):
        self.proc.stop()


class NatsClient:
    """A tiny NATS text-protocol client: publish with headers, JetStream API requests."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.rd = self.sock.makefile("rb")
        self.rd.readline()  # INFO
        self.sock.sendall(b'CONNECT {"verbose":false,"pedantic":false,"headers":true,"name":"faults"}\r\n'
                          b"SUB _INBOX.faults 1\r\n")
        self.n = 0

    def close(self):
        self.sock.close()

    def request(self, subject, payload=b"", headers=None):
        """Publishes with reply subject _INBOX.faults and returns the reply payload."""
        self.n += 1
        if headers:
            hdr = "NATS/1.0\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
            hb = hdr.encode()
            self.sock.sendall(f"HPUB {subject} _INBOX.faults {len(hb)} {len(hb) + len(payload)}\r\n".encode()
                              + hb + payload + b"\r\n")
        else:
            self.sock.sendall(f"PUB {subject} _INBOX.faults {len(payload)}\r\n".encode() + payload + b"\r\n")
        while True:
            line = self.rd.readline()
            if not line:
                raise RuntimeError("NATS closed the connection")
            if line.startswith(b"PING"):
                self.sock.sendall(b"PONG\r\n")
            elif line.startswith(b"-ERR"):
                raise RuntimeError(line.decode().strip())
            elif line.startswith(b"MSG"):
                size = int(line.split()[-1])
                return self.rd.read(size + 2)[:size]
            elif line.startswith(b"HMSG"):
                size = int(line.split()[-1])
                data = self.rd.read(size + 2)[:size]
                hsize = int(line.split()[-2])
                return data[hsize:]

    def js(self, api, body=None):
        raw = self.request(f"$JS.API.{api}", json.dumps(body).encode() if body is not None else b"")
        return json.loads(raw) if raw else {}


class Postgres:
    """A Postgres cluster of our own: trust auth, a free port, its socket in the data directory."""

    def __init__(self, workdir):
        self.port = free_port()
        self.data = os.path.join(workdir, "pgdata")
        self.log = os.path.join(workdir, "pgdata", "postgres.log")
        self.server = f"postgres://postgres@127.0.0.1:{self.port}"

    def init(self):
        os.makedirs(self.data, mode=0o700)
        if os.geteuid() == 0:
            import pwd
            pw = pwd.getpwnam(os.environ.get("FAULTS_PG_USER", "postgres"))
            os.chown(self.data, pw.pw_uid, pw.pw_gid)
            os.chmod(os.path.dirname(self.data), 0o755)
        subprocess.run(as_pg_owner([f"{PG_BIN}/initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8",
                        "--no-sync", "--no-instructions"]), check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)
        conf = os.path.join(self.data, "postgresql.conf")
        with open(conf, "a") as f:
            f.write(f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                    f"unix_socket_directories = '{self.data}'\nfsync = off\nmax_connections = 300\n"
                    "shared_buffers = 32MB\n")
        self.start()

    def start(self):
        subprocess.run(as_pg_owner([f"{PG_BIN}/pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "60",
                                    "start"]),
                       check=True, stdout=subprocess.DEVNULL)

    def restart_immediate(self):
        """Stops at once (no shutdown checkpoint: like a crash), then starts on the same data."""
        subprocess.run(as_pg_owner([f"{PG_BIN}/pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop"]),
                       check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.start()

    def stop(self):
        subprocess.run(as_pg_owner([f"{PG_BIN}/pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop"]),
                       check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def psql(self, db, sql):
        """Runs SQL; returns rows as lists of strings (unaligned, tab-separated)."""
        out = subprocess.run(["psql", "-X", "-q", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1",
                              f"{self.server}/{db}", "-c", sql], check=True, capture_output=True,
                             text=True, timeout=30).stdout
        return [line.split("\t") for line in out.splitlines() if line]

    def create_db(self, db, schemas):
        self.psql("postgres", f"CREATE DATABASE {db}")
        for s in schemas:
            self.psql(db, f"CREATE SCHEMA IF NOT EXISTS {s}")
