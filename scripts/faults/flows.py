"""The seven flows of the fault suite. Each flow knows which services it needs and how they are
configured, how to send its events in (as the platform would: a webhook, a Bot API update, a REST
call), what the platform does with a failed delivery (retries until accepted, or not at all),
and how to read what arrived at the other side (the sandbox's control API, Postgres, a hub client).

Every event's text carries its conversation and sequence number, `FT c<conv> s<seq>`, so the
deliveries can be reconciled one by one.
"""

import json
import os
import re
import secrets
import subprocess
import time
import urllib.parse

from infra import get_json, http_request, wait_for
from signalr import HubClient

FT = re.compile(r"FT c(\d+) s(\d+)")

VK_GROUP = 227000001
VK_SECRET = "faults-vk-secret"
VK_CONFIRMATION = "f4ults0k"
VK_CALLBACK_ID = "faults-vk-callback-0001"
CW_WEBHOOK_ID = "faults-chatwoot-hook-0001"
TG_TOKEN = "7000000001:AAF-sandbox-test-token"
TG_GROUP = -1001000000001
OKDESK_TOKEN = "okdesk-test-token"
OK_WEBHOOK_TOKEN = "faults-okdesk-hook-3b8e1f6a"
AMO_WEBHOOK_TOKEN = "faults-amo-hook-5c1e9a7f"


class Rejected(Exception):
    """The receiving side answered something else than success (the sender retries)."""


def text_of(conv, seq):
    return f"FT c{conv} s{seq}"


def parse(text):
    m = FT.search(text or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


def post_ok(url, body, headers=None, ok=(200,), expect=None):
    status, data = http_request("POST", url, body, headers, timeout=15)
    if status not in ok or (expect is not None and data.strip() != expect):
        raise Rejected(f"HTTP {status} {data[:120]!r}")
    return data


class Flow:
    """Base: `service` is the one killed / replicated; `services` are started in this order."""

    name = ""
    title = ""
    service = ""
    services = ()
    schema = ""  # the Postgres schema whose dead_letters table is checked
    upstream = None  # sandbox target of the upstream failures; None: the flow has none
    poison_subject = None  # where a poison message goes (with the run's prefix)
    conversations = 4

    def __init__(self, run):
        self.run = run

    def env(self, service, port):  # per-service environment
        return {}

    def setup(self):
        """After the services are ready, before the burst."""

    def send(self, conv, seq, replica):
        """Delivers one event; raises Rejected / OSError when it was not accepted."""
        raise NotImplementedError

    def resend(self, conv, seq, replica):
        """The platform delivers that event again (same ids)."""
        self.send(conv, seq, replica)

    def observe(self):
        """[(conv, seq)] in arrival order at the other side (other traffic filtered out)."""
        raise NotImplementedError

    def teardown(self):
        pass


# ------------------------------------------------------------------ VK -> Chatwoot
class VkToChatwoot(Flow):
    name = "vk-chatwoot"
    title = "VK → Chatwoot"
    service = "vk-connector"
    services = ("vk-connector",)
    schema = "vk"
    upstream = "chatwoot"
    poison_subject = "events.vk.message.received"

    def setup(self):
        for c in range(self.conversations):
            post_ok(f"{self.run.sandbox}/_sandbox/vk/users",
                    {"id": self.user(c), "first_name": f"User{c}", "last_name": "Faults"}, ok=(204,))
        self.event_ids = {}

    def user(self, conv):
        return 700000 + conv

    def payload(self, conv, seq):
        eid = self.event_ids.setdefault((conv, seq), secrets.token_hex(10))
        return {"type": "message_new", "event_id": eid, "v": "5.199", "group_id": VK_GROUP,
                "secret": VK_SECRET,
                "object": {"message": {"date": int(time.time()), "from_id": self.user(conv),
                                       "id": conv * 100000 + seq, "out": 0, "peer_id": self.user(conv),
                                       "text": text_of(conv, seq), "conversation_message_id": seq,
                                       "attachments": [], "important": False, "is_hidden": False,
                                       "fwd_messages": [], "random_id": 0},
                           "client_info": {"button_actions": ["text"], "keyboard": True,
                                           "inline_keyboard": True, "carousel": True, "lang_id": 0}}}

    def send(self, conv, seq, replica):
        url = f"{self.run.url(self.service, replica)}/vk/callback/{VK_CALLBACK_ID}"
        post_ok(url, self.payload(conv, seq), expect=b"ok")

    def observe(self):
        out = []
        for m in get_json(f"{self.run.sandbox}/_sandbox/chatwoot/received?after=0"):
            if m.get("message_type") in (0, "incoming"):
                k = parse(m.get("content"))
                if k:
                    out.append(k)
        return out


# ------------------------------------------------------------------ Chatwoot -> VK
class ChatwootToVk(VkToChatwoot):
    name = "chatwoot-vk"
    title = "Chatwoot → VK"
    upstream = "vk"
    poison_subject = "cmd.vk.message.send"
    # Chatwoot does not retry a webhook; the connector's sweep (every 2 s here) finds a missed reply

    def env(self, service, port):
        return {"RECONCILE_INTERVAL_SECS": "2"}

    def setup(self):
        super().setup()
        self.conv_ids = {}
        for c in range(self.conversations):
            VkToChatwoot.send(self, c, 0, 0)
        def found():
            convs = get_json(f"{self.run.sandbox}/_sandbox/chatwoot/conversations")
            for conv in convs:
                for c in range(self.conversations):
                    sender = (conv.get("meta") or {}).get("sender") or {}
                    if str(self.user(c)) in json.dumps(conv.get("contact_inbox") or {}) or \
                            sender.get("name") == f"User{c} Faults":
                        self.conv_ids[c] = conv["id"]
            return len(self.conv_ids) == self.conversations
        wait_for("a Chatwoot conversation per VK user", found, 60)
        self.reply_ids = {}

    def send(self, conv, seq, replica):
        data = post_ok(f"{self.run.sandbox}/_sandbox/chatwoot/conversations/{self.conv_ids[conv]}/agent_reply",
                       {"content": text_of(conv, seq), "private": False})
        self.reply_ids[(conv, seq)] = json.loads(data)["id"]

    def resend(self, conv, seq, replica):
        """Chatwoot posts the same message_created webhook again (the recorded body)."""
        mid = self.reply_ids.get((conv, seq))
        deliveries = get_json(f"{self.run.sandbox}/_sandbox/chatwoot/webhooks")
        body = next((d["body"] for d in deliveries if d.get("message_id") == mid), None)
        if body is None:
            return
        url = f"{self.run.url(self.service, replica)}/chatwoot/webhook/{CW_WEBHOOK_ID}"
        post_ok(url, body.encode(), {"Content-Type": "application/json"})

    def observe(self):
        out = []
        for m in get_json(f"{self.run.sandbox}/_sandbox/vk/sent"):
            k = parse(m.get("message"))
            if k:
                out.append(k)
        return out


# ------------------------------------------------------------------ Telegram
class TelegramBase(Flow):
    service = "telegram-bot"
    services = ("telegram-bot",)
    schema = "telegram"
    upstream = "telegram"

    def __init__(self, run):
        super().__init__(run)
        self.update_ids = {}
        self.next_update = 1000

    def customer(self, conv):
        return 5100000 + conv

    def push(self, update, key, again=False):
        """Queues an update at the fake Bot API (it numbers it); `again`: the same update once
        more, with its update_id (a redelivery)."""
        if again:
            uid = self.update_ids.get(key)
            if uid is None:
                return
            update = dict(update, update_id=uid)
        data = post_ok(f"{self.run.sandbox}/_sandbox/telegram/updates", update)
        if not again:
            self.update_ids[key] = json.loads(data)["update_id"]

    def env(self, service, port):
        if service == "telegram-bot" and self.run.scenario == "dup-reorder":
            # webhook mode: the fake posts every queued update, a redelivered one included
            # (with getUpdates, an update_id below the confirmed offset is never handed out)
            return {"WEBHOOK_ENABLED": "true",
                    "WEBHOOK_URL": f"http://127.0.0.1:{port}",
                    "WEBHOOK_SECRET": "faults-webhook-secret-0001"}
        return {}

    def customer_update(self, conv, text):
        u = self.customer(conv)
        return {"message": {"date": int(time.time()),
                            "chat": {"id": u, "type": "private", "first_name": f"C{conv}"},
                            "from": {"id": u, "is_bot": False, "first_name": f"C{conv}", "language_code": "ru"},
                            "text": text}}


class TelegramToTopic(TelegramBase):
    name = "tg-topic"
    title = "Telegram customer → topic"
    poison_subject = "events.telegram.message.received"

    def send(self, conv, seq, replica):
        self.push(self.customer_update(conv, text_of(conv, seq)), (conv, seq))

    def resend(self, conv, seq, replica):
        self.push(self.customer_update(conv, text_of(conv, seq)), (conv, seq), again=True)

    def observe(self):
        out = []
        for m in get_json(f"{self.run.sandbox}/_sandbox/telegram/chats/{TG_GROUP}/messages"):
            k = parse(m.get("text") or m.get("caption"))
            if k and (m.get("from") or {}).get("is_bot"):
                out.append(k)
        return out


class TopicToCustomer(TelegramBase):
    name = "topic-tg"
    title = "topic → Telegram customer"
    poison_subject = "events.telegram.topic_message.received"

    def setup(self):
        for c in range(self.conversations):
            self.push(self.customer_update(c, f"hello from customer {c}"), ("hello", c))
        self.threads = {}
        def found():
            for t in get_json(f"{self.run.sandbox}/_sandbox/telegram/topics"):
                name = json.dumps(t, ensure_ascii=False)
                for c in range(self.conversations):
                    if f"C{c}" in name and not t.get("deleted"):
                        self.threads[c] = t.get("message_thread_id") or t.get("thread_id") or t.get("id")
            return len(self.threads) == self.conversations
        wait_for("a forum topic per customer", found, 60)
        # the customer's first message is in the topic: the mapping is stored
        def relayed():
            msgs = get_json(f"{self.run.sandbox}/_sandbox/telegram/chats/{TG_GROUP}/messages")
            return sum(1 for m in msgs if "hello from customer" in (m.get("text") or "")) >= self.conversations
        wait_for("the customers' first messages in their topics", relayed, 60)

    def resend(self, conv, seq, replica):
        self.send(conv, seq, replica, again=True)

    def send(self, conv, seq, replica, again=False):
        self.push({"message": {"date": int(time.time()),
                               "chat": {"id": TG_GROUP, "type": "supergroup", "title": "Support", "is_forum": True},
                               "from": {"id": 6000001, "is_bot": False, "first_name": "Olga"},
                               "message_thread_id": self.threads[conv], "is_topic_message": True,
                               "text": text_of(conv, seq)}}, (conv, seq), again)

    def observe(self):
        out = []
        for c in range(self.conversations):
            for m in get_json(f"{self.run.sandbox}/_sandbox/telegram/chats/{self.customer(c)}/messages"):
                k = parse(m.get("text") or m.get("caption"))
                if k and (m.get("from") or {}).get("is_bot"):
                    out.append(k if k[0] == c else (k[0], -1))  # -1: landed in the wrong chat
        return out


# ------------------------------------------------------------------ Okdesk webhook -> Telegram
class OkdeskToTelegram(TelegramBase):
    name = "okdesk-tg"
    title = "Okdesk webhook → Telegram"
    service = "okdesk-bridge"
    services = ("okdesk-bridge", "telegram-bot")
    schema = "okdesk"
    upstream = "telegram"  # what the notification path calls: the Bot API
    poison_subject = "events.okdesk.issue.status_changed"
    dead_letter_schemas = ("okdesk", "telegram")

    def env(self, service, port):
        if service == "telegram-bot":
            return {"OKDESK_ENABLED": "true"}  # polling: the webhooks duplicated here are Okdesk's
        return {"OKDESK_POLL_INTERVAL_SECS": "0"}

    def setup(self):
        steps = ["/register", "👤 Частное лицо", None, None]
        for i, step in enumerate(steps):
            for c in range(self.conversations):
                text = step or (f"Фаултов Клиент {c + 1}" if i == 2 else f"+7 900 100-{c // 100:02d}-{c % 100:02d}")
                self.push(self.customer_update(c, text), ("reg", i, c))
        db = self.run.db
        def registered():
            rows = self.run.pg.psql(db, "SELECT user_id, contact_id FROM telegram.helpdesk_people "
                                        "WHERE contact_id IS NOT NULL")
            self.contacts = {int(u): int(cid) for u, cid in rows}
            return len(self.contacts) >= self.conversations
        wait_for("the people registered with Okdesk", registered, 90, interval=0.3)
        # the «registered» answer is sent after the contact is stored; wait for it per person
        def answered():
            for c in range(self.conversations):
                msgs = get_json(f"{self.run.sandbox}/_sandbox/telegram/chats/{self.customer(c)}/messages")
                if not any("зарегистрированы" in (m.get("text") or "") for m in msgs):
                    return False
            return True
        wait_for("the «registered» answers", answered, 60)

    def issue(self, conv):
        return 900000 + conv

    def send(self, conv, seq, replica):
        contact = self.contacts[self.customer(conv)]
        body = {"event": {"event_type": "new_ticket_status",
                          "new_status": {"code": f"ft{seq}", "name": text_of(conv, seq)},
                          "old_status": {"code": f"ft{seq - 1}" if seq > 1 else "opened",
                                         "name": "prev"}},
                "issue": {"id": str(self.issue(conv)), "title": f"issue {conv}", "contact_id": str(contact)}}
        url = f"{self.run.url(self.service, replica)}/okdesk/webhook/{OK_WEBHOOK_TOKEN}"
        post_ok(url, body)

    def observe(self):
        out = []
        for c in range(self.conversations):
            for m in get_json(f"{self.run.sandbox}/_sandbox/telegram/chats/{self.customer(c)}/messages"):
                text = m.get("text") or ""
                if (m.get("from") or {}).get("is_bot") and "Статус заявки" in text:
                    k = parse(text)
                    if k:
                        out.append(k if k[0] == c else (k[0], -1))
        return out


# ------------------------------------------------------------------ amoCRM webhook -> Postgres
class AmoToPostgres(Flow):
    name = "amocrm-pg"
    title = "amoCRM webhook → Postgres"
    service = "amocrm-sync"
    services = ("amocrm-sync",)
    schema = "amocrm"
    poison_subject = "events.amocrm.lead.status_changed"

    BASE_TIME = 1764000000

    def lead(self, conv):
        return 4100000 + conv

    def send(self, conv, seq, replica):
        p = "leads[status][0]"
        pairs = [(f"{p}[id]", self.lead(conv)), (f"{p}[name]", f"Lead {conv}"),
                 (f"{p}[status_id]", 10000 + seq), (f"{p}[old_status_id]", 10000 + seq - 1),
                 (f"{p}[pipeline_id]", 7331), (f"{p}[price]", 1000 + seq),
                 (f"{p}[responsible_user_id]", 504141), (f"{p}[date_create]", self.BASE_TIME),
                 (f"{p}[last_modified]", self.BASE_TIME + seq), (f"{p}[account_id]", 29085431),
                 ("account[subdomain]", "sandbox"), ("account[id]", "29085431")]
        url = f"{self.run.url(self.service, replica)}/api/webhooks/amo/{AMO_WEBHOOK_TOKEN}"
        post_ok(url, urllib.parse.urlencode(pairs).encode(),
                {"Content-Type": "application/x-www-form-urlencoded"})

    def observe(self):
        rows = self.run.pg.psql(self.run.db, "SELECT lead_id, status_id FROM amocrm.lead_status_history "
                                             "WHERE status_id >= 10001 ORDER BY id")
        return [(int(lead) - 4100000, int(st) - 10000) for lead, st in rows]


# ------------------------------------------------------------------ messenger REST -> hub
class MessengerToHub(Flow):
    name = "messenger-hub"
    title = "messenger REST → hub client"
    service = "messenger-api"
    services = ("messenger-api",)
    schema = "messenger"
    conversations = 3

    def env(self, service, port):
        return {"JWT_SECRET": self.run.jwt_secret, "MESSENGER_FILES_DIR": os.path.join(self.run.dir, "files"),
                "MESSENGER_SEND_BURST": "1000000", "MESSENGER_SEND_RATE_PER_MINUTE": "10000000"}

    def cli(self, *args):
        env = dict(os.environ, DATABASE_URL=f"{self.run.pg.server}/{self.run.db}", LOG_FORMAT="json",
                   LOG_LEVEL="warn")
        env.pop("Jwt__Secret", None)
        return subprocess.run([self.run.bins["messenger-api"], *args], env=env, check=True,
                              capture_output=True, text=True, timeout=60).stdout

    def api(self, method, path, token=None, body=None, replica=0):
        h = {"Authorization": f"Bearer {token}"} if token else {}
        status, data = http_request(method, f"{self.run.url(self.service, replica)}{path}", body, h, 15)
        if status >= 300:
            raise Rejected(f"{method} {path}: HTTP {status} {data[:200]!r}")
        return json.loads(data) if data else None

    def setup(self):
        self.cli("admin", "create", "--phone", "+79990000001", "--display-name", "Admin")
        codes = [c for c in self.cli("invite", "create", "--count", str(self.conversations + 1)).split() if c]
        users = []
        for i, code in enumerate(codes):
            r = self.api("POST", "/api/auth/register", body={
                "phone": f"+7999100{i:04d}", "password": "faults-password-1",
                "displayName": f"U{i}", "inviteCode": code})
            users.append((r["user"]["id"], r["accessToken"]))
        (self.receiver, self.receiver_token), self.senders = users[0], users[1:]
        self.chats = []
        for _, token in self.senders:
            chat = self.api("POST", "/api/chats", token, {"type": "private", "userId": self.receiver})
            self.chats.append(chat["id"])
        bases = [self.run.url(self.service, r) for r in range(self.run.replicas)]
        # the listener sits on the last replica, the senders post to the first: with two
        # replicas every push crosses between them
        self.client = HubClient(list(reversed(bases)), self.receiver_token, self.chats)
        self.client.start()
        if not self.client.connected.wait(30):
            raise TimeoutError("the hub client did not connect")

    def send(self, conv, seq, replica):
        token = self.senders[conv][1]
        self.api("POST", "/api/messages", token, {"chatId": self.chats[conv], "text": text_of(conv, seq),
                                                   "clientMessageId": f"ft-{conv}-{seq}"}, replica=0)

    def observe(self):
        out = []
        for m in self.client.snapshot():
            k = parse(m["text"])
            if k:
                out.append(k if m["chat"] == self.chats[k[0]] else (k[0], -1))
        return out

    def teardown(self):
        client = getattr(self, "client", None)
        if client:
            client.stop()


FLOWS = [VkToChatwoot, ChatwootToVk, TelegramToTopic, TopicToCustomer, OkdeskToTelegram, AmoToPostgres,
         MessengerToHub]
