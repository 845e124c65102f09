// A small hub client for scripts/demo.sh, on the official @microsoft/signalr package:
//   node hub-client.js <base url> <access token> [seconds]
// connects to <base>/hubs/chat (negotiate, then WebSockets with the token as Bearer), prints
// "connected", then one JSON line per hub event it receives, and exits after the first
// ReceiveMessage (status 0) or after [seconds] (default 30; status 1).
"use strict";

const signalR = require("@microsoft/signalr");

const [base, token, seconds = "30"] = process.argv.slice(2);
if (!base || !token) {
  console.error("usage: node hub-client.js <base url> <access token> [seconds]");
  process.exit(2);
}

const conn = new signalR.HubConnectionBuilder()
  .withUrl(`${base}/hubs/chat`, { accessTokenFactory: () => token })
  .configureLogging(signalR.LogLevel.Warning)
  .build();

for (const event of ["UserConnected", "UserDisconnected", "Typing", "MessageRead", "MessageDeleted"]) {
  conn.on(event, (...args) => console.log(JSON.stringify({ event, args })));
}
conn.on("ReceiveMessage", async (message) => {
  console.log(JSON.stringify({ event: "ReceiveMessage", args: [message] }));
  await conn.stop();
  process.exit(0);
});

const timer = setTimeout(async () => {
  console.error(`no message within ${seconds} s`);
  await conn.stop();
  process.exit(1);
}, Number(seconds) * 1000);
timer.unref();

conn
  .start()
  .then(() => console.log(`connected (${conn.connection.transport.constructor.name})`))
  .catch((e) => {
    console.error(`could not connect: ${e.message}`);
    process.exit(1);
  });
// keep the process alive until a message or the timeout
setInterval(() => {}, 1 << 30);
