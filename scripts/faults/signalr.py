"""A minimal SignalR JSON-protocol client over WebSockets (RFC 6455), standard library only, for
the messenger hub flow of the fault suite.

It negotiates (`POST {base}/hubs/chat/negotiate?negotiateVersion=1`, see
https://github.com/dotnet/aspnetcore/blob/main/src/SignalR/docs/specs/TransportProtocols.md),
opens `GET /hubs/chat?id=<connectionToken>&access_token=<jwt>` as a WebSocket, sends the
handshake `{"protocol":"json","version":1}` + 0x1e (HubProtocol.md), answers pings and records
every `ReceiveMessage` invocation. When the connection drops (the service was killed), it
reconnects by itself and then reads each chat's history (`GET /api/messages/{chatId}`), as the
messenger's clients do after a reconnect, so a message stored while nobody could push it still
counts as delivered (by its message id; the same id pushed and read is one delivery).
"""

import base64
import json
import os
import socket
import struct
import threading
import time
import urllib.parse

from infra import http_request

RS = "\x1e"


class HubClient(threading.Thread):
    def __init__(self, bases, token, chats):
        super().__init__(daemon=True)
        self.bases = bases  # base URLs; connects to the first that answers
        self.token = token
        self.chats = chats
        self.lock = threading.Lock()
        self.seen = {}  # message id -> {"chat", "text", "how"}
        self.order = []  # message ids in the order first seen
        self.pushed = 0
        self.connects = 0
        self.connected = threading.Event()
        self.stopping = threading.Event()
        self.sock = None

    # ------------------------------------------------------------ recording
    def _record(self, m, how):
        with self.lock:
            if how == "push":
                self.pushed += 1
            mid = m.get("id")
            if mid in self.seen:
                return
            self.seen[mid] = {"chat": m.get("chatId"), "text": m.get("text") or "", "how": how}
            self.order.append(mid)

    def snapshot(self):
        with self.lock:
            return [dict(self.seen[i], id=i) for i in self.order]

    # ------------------------------------------------------------ websocket
    def _connect(self, base):
        u = urllib.parse.urlsplit(base)
        auth = {"Authorization": f"Bearer {self.token}"}
        status, body = http_request("POST", f"{base}/hubs/chat/negotiate?negotiateVersion=1", b"", auth, 5)
        if status != 200:
            raise OSError(f"negotiate: HTTP {status}")
        neg = json.loads(body)
        cid = neg.get("connectionToken") or neg.get("connectionId")
        q = urllib.parse.urlencode({"id": cid, "access_token": self.token})
        s = socket.create_connection((u.hostname, u.port), timeout=5)
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall((f"GET /hubs/chat?{q} HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\n"
                   "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                   f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(4096)
            if not chunk:
                raise OSError("closed during the upgrade")
            head += chunk
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise OSError(f"upgrade refused: {head[:100]!r}")
        self.buf = head.split(b"\r\n\r\n", 1)[1]
        self.sock = s
        self._send_text(json.dumps({"protocol": "json", "version": 1}) + RS)

    def _send_text(self, text):
        data = text.encode()
        mask = os.urandom(4)
        n = len(data)
        if n < 126:
            hdr = struct.pack("!BB", 0x81, 0x80 | n)
        elif n < 65536:
            hdr = struct.pack("!BBH", 0x81, 0x80 | 126, n)
        else:
            hdr = struct.pack("!BBQ", 0x81, 0x80 | 127, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        self.sock.sendall(hdr + mask + masked)

    def _read_exact(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise OSError("connection closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _read_frame(self):
        b1, b2 = self._read_exact(2)
        op, n = b1 & 0x0F, b2 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", self._read_exact(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", self._read_exact(8))
        mask = self._read_exact(4) if b2 & 0x80 else None
        data = self._read_exact(n)
        if mask:
            data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        return b1 & 0x80, op, data

    # ------------------------------------------------------------ catch-up
    def catch_up(self, base):
        for chat in self.chats:
            before = None
            for _ in range(50):
                q = "limit=100" + (f"&before={before}" if before else "")
                status, body = http_request("GET", f"{base}/api/messages/{chat}?{q}", None,
                                            {"Authorization": f"Bearer {self.token}"}, 10)
                if status != 200:
                    raise OSError(f"history: HTTP {status}")
                page = json.loads(body)
                for m in reversed(page.get("items", [])):
                    self._record(m, "history")
                before = page.get("nextBefore")
                if not before:
                    break

    # ------------------------------------------------------------ main loop
    def run(self):
        while not self.stopping.is_set():
            base = None
            for b in self.bases:
                try:
                    self._connect(b)
                    base = b
                    break
                except OSError:
                    continue
            if base is None:
                time.sleep(0.2)
                continue
            self.connects += 1
            try:
                self.sock.settimeout(1.0)
                text = ""
                last_ping = time.monotonic()
                handshake_done = False
                while not self.stopping.is_set():
                    if time.monotonic() - last_ping > 5:
                        self._send_text(json.dumps({"type": 6}) + RS)
                        last_ping = time.monotonic()
                    try:
                        fin, op, data = self._read_frame()
                    except socket.timeout:
                        continue
                    if op == 8:
                        raise OSError("closed by the server")
                    if op == 9:
                        continue  # pong not required by the hub
                    if op in (1, 0):
                        text += data.decode()
                        if not fin:
                            continue
                        *frames, text = text.split(RS)
                        for f in frames:
                            msg = json.loads(f) if f else {}
                            if not handshake_done:
                                if msg.get("error"):
                                    raise OSError(f"handshake: {msg['error']}")
                                handshake_done = True
                                # pushes from now on reach us; read what we may have missed
                                self.catch_up(base)
                                self.connected.set()
                                continue
                            if msg.get("type") == 1 and msg.get("target") == "ReceiveMessage":
                                self._record(msg["arguments"][0], "push")
                            elif msg.get("type") == 7:
                                raise OSError(f"hub closed: {msg.get('error')}")
            except (OSError, ValueError):
                self.connected.clear()
            finally:
                try:
                    self.sock.close()
                except OSError:
                    pass

    def stop(self):
        self.stopping.set()
