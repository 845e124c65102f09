"""VK Callback API receiver in the style of the old deployments (FastAPI + uvicorn, 2 workers):
the peer that bench/run.sh measures vk-connector's callback ingest against.

Same work as `POST /vk/callback/{id}` of vk-connector: the body is read into a pydantic model of
the Callback API event, `secret` and `group_id` are checked, a `confirmation` is answered with the
confirmation string, and a `message_new` is normalised into an envelope, published to JetStream
(file storage) with `Nats-Msg-Id` = `event_id` (the duplicate window does the dedup), and the
request is answered `ok` only after JetStream acknowledged it (the durable hand-off).

Callback API format: https://dev.vk.com/en/api/callback/getting-started (message_new object:
https://dev.vk.com/en/reference/objects/message). nats-py JetStream publish:
https://nats-io.github.io/nats.py/modules.html#nats.js.client.JetStreamContext.publish

Environment: NATS_URL, PEER_STREAM, PEER_SUBJECT, VK_GROUP_ID, VK_SECRET, VK_CONFIRMATION,
VK_CALLBACK_ID. Run: uvicorn vk_peer:app --workers 2 (see bench/run.sh).
"""

import os
import time
import uuid
from typing import Any, Optional

import nats
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import PlainTextResponse
from nats.js.api import StorageType, StreamConfig
from pydantic import BaseModel, Field

NATS_URL = os.environ.get("NATS_URL", "nats://127.0.0.1:4222")
STREAM = os.environ["PEER_STREAM"]
SUBJECT = os.environ["PEER_SUBJECT"]
GROUP_ID = int(os.environ["VK_GROUP_ID"])
SECRET = os.environ["VK_SECRET"]
CONFIRMATION = os.environ.get("VK_CONFIRMATION", "")
CALLBACK_ID = os.environ["VK_CALLBACK_ID"]


class Message(BaseModel):
    """`object.message` of `message_new` (the fields the relay uses)."""

    id: int
    date: int
    peer_id: int
    from_id: int
    text: str = ""
    out: int = 0
    conversation_message_id: Optional[int] = None
    attachments: list[dict[str, Any]] = Field(default_factory=list)
    fwd_messages: list[dict[str, Any]] = Field(default_factory=list)


class MessageNewObject(BaseModel):
    message: Message
    client_info: Optional[dict[str, Any]] = None


class Callback(BaseModel):
    """A Callback API event: `{type, group_id, event_id, v, object, secret}`."""

    type: str
    group_id: int
    event_id: Optional[str] = None
    v: Optional[str] = None
    object: Optional[dict[str, Any]] = None
    secret: Optional[str] = None


class Envelope(BaseModel):
    """What is published: the normalised inbound message."""

    id: str
    idempotency_key: str
    source: str = "vk"
    conversation: str
    sender_id: int
    message_id: int
    text: str
    sent_at: int
    received_at: float
    attachments: list[dict[str, Any]]


app = FastAPI()
state: dict[str, Any] = {}


@app.on_event("startup")
async def startup() -> None:
    nc = await nats.connect(NATS_URL)
    js = nc.jetstream()
    try:
        await js.add_stream(StreamConfig(name=STREAM, subjects=[SUBJECT], storage=StorageType.FILE))
    except Exception:  # the other worker created it first
        await js.stream_info(STREAM)
    state["nc"], state["js"] = nc, js


@app.on_event("shutdown")
async def shutdown() -> None:
    await state["nc"].drain()


@app.get("/ready")
async def ready() -> PlainTextResponse:
    return PlainTextResponse("ok" if state["nc"].is_connected else "not ready",
                             status_code=200 if state["nc"].is_connected else 503)


@app.post("/vk/callback/{callback_id}")
async def callback(callback_id: str, request: Request) -> PlainTextResponse:
    if callback_id != CALLBACK_ID:
        raise HTTPException(404)
    event = Callback.model_validate_json(await request.body())
    if event.group_id != GROUP_ID or event.secret != SECRET:
        raise HTTPException(403)
    if event.type == "confirmation":
        return PlainTextResponse(CONFIRMATION)
    if event.type != "message_new" or event.object is None:
        return PlainTextResponse("ok")
    m = MessageNewObject.model_validate(event.object).message
    key = event.event_id or f"vk:{GROUP_ID}:{m.id}"
    env = Envelope(id=str(uuid.uuid4()), idempotency_key=key, conversation=f"vk:{m.peer_id}",
                   sender_id=m.from_id, message_id=m.id, text=m.text, sent_at=m.date,
                   received_at=time.time(), attachments=m.attachments)
    await state["js"].publish(SUBJECT, env.model_dump_json().encode(),
                              headers={"Nats-Msg-Id": key}, timeout=5)
    return PlainTextResponse("ok")
