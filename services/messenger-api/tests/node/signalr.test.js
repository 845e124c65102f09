// End-to-end: the real messenger-api binary and the official @microsoft/signalr client.
//
// Starts `messenger-api serve` on a free loopback port against a fresh database (created and
// dropped here with psql) and a unique NATS subject prefix, registers two users over REST,
// connects two SignalR clients — one with accessTokenFactory and the default transport
// negotiation (Node sends the token as Authorization: Bearer), one the way browsers send it
// (access_token in the query, WebSockets without negotiate) — and checks that a message sent
// by one arrives at the other as ReceiveMessage, and that UserConnected/UserDisconnected are
// seen. Every wait is bounded; any failure exits non-zero.
//
// Environment: MESSENGER_API_BIN (default: target/debug/messenger-api of the workspace),
// TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres), NATS_URL
// (default nats://127.0.0.1:4222).

"use strict";

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { spawn, execFileSync } = require("node:child_process");
const crypto = require("node:crypto");
const fs = require("node:fs");
const net = require("node:net");
const os = require("node:os");
const path = require("node:path");
const signalR = require("@microsoft/signalr");

const ROOT = path.resolve(__dirname, "../../../..");
const BIN = process.env.MESSENGER_API_BIN || path.join(ROOT, "target/debug/messenger-api");
const ADMIN_DB = process.env.TEST_DATABASE_URL || "postgres://postgres@127.0.0.1:5432/postgres";
const NATS_URL = process.env.NATS_URL || "nats://127.0.0.1:4222";
const WAIT_MS = 15000;

const suffix = crypto.randomBytes(6).toString("hex");
const dbName = `messenger_node_${suffix}`;
const dbUrl = (() => {
  const u = new URL(ADMIN_DB);
  u.pathname = `/${dbName}`;
  return u.toString();
})();
const prefix = `node${suffix}`;
const filesDir = fs.mkdtempSync(path.join(os.tmpdir(), "messenger-node-"));
const logFile = path.join(filesDir, "server.log");
let server;
let base;

function within(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** A promise for the next call of `method` on `conn` whose arguments satisfy `match`. */
function nextEvent(conn, method, match = () => true) {
  return new Promise((resolve) => {
    const handler = (...args) => {
      if (match(...args)) {
        conn.off(method, handler);
        resolve(args);
      }
    };
    conn.on(method, handler);
  });
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function psql(sql) {
  execFileSync("psql", ["-X", "-q", "-v", "ON_ERROR_STOP=1", ADMIN_DB, "-c", sql], {
    stdio: ["ignore", "ignore", "pipe"],
  });
}

async function api(method, p, { token, body } = {}) {
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await within(
    fetch(`${base}${p}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) }),
    WAIT_MS,
    `${method} ${p}`,
  );
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

/** Deletes this run's JetStream streams over the NATS text protocol (no client library). */
function deleteStreams() {
  const u = new URL(NATS_URL.split(",")[0]);
  const names = ["EVENTS", "COMMANDS"].map((s) => `${prefix.toUpperCase()}_${s}`);
  return new Promise((resolve) => {
    const sock = net.connect(Number(u.port || 4222), u.hostname);
    let pending = names.length;
    const done = () => {
      sock.destroy();
      resolve();
    };
    sock.setTimeout(5000, done);
    sock.on("error", done);
    sock.on("data", (d) => {
      const s = d.toString();
      if (s.includes("PING")) sock.write("PONG\r\n");
      pending -= (s.match(/^MSG /gm) || []).length;
      if (pending <= 0) done();
    });
    sock.write('CONNECT {"verbose":false,"pedantic":false,"name":"node-e2e-cleanup"}\r\n');
    sock.write("SUB _INBOX.node_e2e 1\r\n");
    for (const n of names) sock.write(`PUB $JS.API.STREAM.DELETE.${n} _INBOX.node_e2e 0\r\n\r\n`);
  });
}

before(async () => {
  assert.ok(fs.existsSync(BIN), `${BIN} not found: cargo build -p messenger-api first`);
  psql(`CREATE DATABASE ${dbName}`);
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  const env = {
    ...process.env,
    DATABASE_URL: dbUrl,
    NATS_URL,
    NATS_SUBJECT_PREFIX: prefix,
    HOST: "127.0.0.1",
    PORT: String(port),
    JWT_SECRET: crypto.randomBytes(32).toString("hex"),
    MESSENGER_FILES_DIR: path.join(filesDir, "files"),
    LOG_FORMAT: "json",
    LOG_LEVEL: "info",
    ARGON2_MEMORY_KIB: "4096",
    ARGON2_ITERATIONS: "1",
  };
  delete env.Jwt__Secret;
  const log = fs.openSync(logFile, "a");
  server = spawn(BIN, ["serve"], { env, cwd: filesDir, stdio: ["ignore", log, log] });
  const deadline = Date.now() + 60000;
  for (;;) {
    if (server.exitCode !== null) throw new Error(`messenger-api exited: ${fs.readFileSync(logFile, "utf8")}`);
    try {
      const r = await fetch(`${base}/ready`);
      if (r.status === 200) break;
    } catch (_) {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error("messenger-api not ready within 60 s");
    await new Promise((r) => setTimeout(r, 200));
  }
});

after(async () => {
  if (server && server.exitCode === null) {
    server.kill("SIGTERM");
    await within(new Promise((r) => server.once("exit", r)), 15000, "messenger-api to stop").catch(() =>
      server.kill("SIGKILL"),
    );
  }
  await deleteStreams();
  try {
    psql(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
  } catch (e) {
    console.error(`could not drop ${dbName}: ${e.message}`);
  }
  if (process.exitCode) console.error(fs.readFileSync(logFile, "utf8").split("\n").slice(-40).join("\n"));
  fs.rmSync(filesDir, { recursive: true, force: true });
});

test("two official SignalR clients: a message crosses, presence is seen", async () => {
  const codes = execFileSync(BIN, ["invite", "create", "--count", "2"], {
    env: { ...process.env, DATABASE_URL: dbUrl, LOG_FORMAT: "json", LOG_LEVEL: "warn" },
    cwd: filesDir,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
  })
    .trim()
    .split("\n");
  assert.equal(codes.length, 2);

  const users = [];
  for (const [i, name] of ["Алиса", "Борис"].entries()) {
    const phone = `+7999${String(crypto.randomInt(0, 1e7)).padStart(7, "0")}`;
    const r = await api("POST", "/api/auth/register", {
      body: { phone, password: "node-e2e-password", displayName: name, inviteCode: codes[i] },
    });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    users.push({ id: r.body.user.id, token: r.body.accessToken, name });
  }
  const [alice, bob] = users;
  const chat = await api("POST", "/api/chats", { token: alice.token, body: { type: "private", userId: bob.id } });
  assert.equal(chat.status, 201);
  const chatId = chat.body.id;

  // Alice: accessTokenFactory and the default transports (negotiate, then WebSockets with the
  // token as Authorization: Bearer, which is what Node and React Native clients do).
  const a = new signalR.HubConnectionBuilder()
    .withUrl(`${base}/hubs/chat`, { accessTokenFactory: () => alice.token })
    .configureLogging(signalR.LogLevel.Warning)
    .build();
  // Bob: the way a browser sends the token (access_token in the query), WebSockets directly.
  const b = new signalR.HubConnectionBuilder()
    .withUrl(`${base}/hubs/chat?access_token=${encodeURIComponent(bob.token)}`, {
      transport: signalR.HttpTransportType.WebSockets,
      skipNegotiation: true,
    })
    .configureLogging(signalR.LogLevel.Warning)
    .build();

  // Handlers for what each side receives without asserting on it (the client warns otherwise).
  a.on("ReceiveMessage", () => {});
  b.on("ReceiveMessage", () => {});
  b.on("MessageRead", () => {});

  try {
    await within(a.start(), WAIT_MS, "Alice to connect");
    assert.equal(a.state, signalR.HubConnectionState.Connected);
    assert.equal(a.connection.transport.constructor.name, "WebSocketTransport");

    const bobArrives = nextEvent(a, "UserConnected", (id) => id === bob.id);
    const bobReceives = nextEvent(b, "ReceiveMessage", (m) => m.text === "Привет, Борис!");
    await within(b.start(), WAIT_MS, "Bob to connect");
    await within(bobArrives, WAIT_MS, "UserConnected(Bob) at Alice");

    const sent = await within(a.invoke("SendMessage", chatId, "Привет, Борис!"), WAIT_MS, "SendMessage to complete");
    assert.equal(sent.chatId, chatId);
    assert.equal(sent.senderId, alice.id);
    const [got] = await within(bobReceives, WAIT_MS, "ReceiveMessage at Bob");
    assert.equal(got.id, sent.id);
    assert.equal(got.senderName, "Алиса");
    assert.equal(got.type, "text");

    // and back, over REST this time
    const aliceReceives = nextEvent(a, "ReceiveMessage", (m) => m.senderId === bob.id);
    const rest = await api("POST", "/api/messages", { token: bob.token, body: { chatId, text: "Привет!" } });
    assert.equal(rest.status, 201);
    const [back] = await within(aliceReceives, WAIT_MS, "ReceiveMessage at Alice");
    assert.equal(back.id, rest.body.id);

    // Typing and read receipts
    const typing = nextEvent(b, "Typing", (t) => t.userId === alice.id);
    await within(a.invoke("Typing", chatId), WAIT_MS, "Typing to complete");
    await within(typing, WAIT_MS, "Typing at Bob");
    const read = nextEvent(a, "MessageRead", (r) => r.userId === bob.id);
    await within(b.invoke("MarkRead", chatId, sent.id), WAIT_MS, "MarkRead to complete");
    assert.equal((await within(read, WAIT_MS, "MessageRead at Alice"))[0].messageId, sent.id);

    // a hub error comes back as a rejected invoke, the connection stays
    await assert.rejects(within(a.invoke("SendMessage", crypto.randomUUID(), "x"), WAIT_MS, "error"), /chat not found/);
    assert.equal(a.state, signalR.HubConnectionState.Connected);

    const bobLeaves = nextEvent(a, "UserDisconnected", (id) => id === bob.id);
    await within(b.stop(), WAIT_MS, "Bob to disconnect");
    await within(bobLeaves, WAIT_MS, "UserDisconnected(Bob) at Alice");
  } finally {
    await Promise.allSettled([a.stop(), b.stop()]);
  }
});
