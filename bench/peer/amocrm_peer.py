"""amoCRM webhook receiver in the style of the old deployments' seed scripts (FastAPI + uvicorn,
2 workers, asyncpg): the peer that bench/run.sh measures amocrm-sync's form webhook against.

amoCRM posts its webhooks as `application/x-www-form-urlencoded` with PHP-style nested keys
(`leads[add][0][id]=…&leads[add][0][custom_fields][0][values][0][value]=…&account[subdomain]=…`,
https://www.amocrm.ru/developers/content/crm_platform/webhooks-format). The peer checks the path
token, parses the form into nested dicts, and writes every lead of `leads[add|update|status]`
to Postgres (one upsert per lead, one transaction per webhook) before answering, as the seed
scripts did: the answer means "stored". asyncpg: https://magicstack.github.io/asyncpg/current/

Environment: DATABASE_URL, AMOCRM_WEBHOOK_TOKEN, AMOCRM_SUBDOMAIN.
Run: uvicorn amocrm_peer:app --workers 2 (see bench/run.sh).
"""

import json
import os
import re
import time
from typing import Any
from urllib.parse import parse_qsl

import asyncpg
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, PlainTextResponse

DATABASE_URL = os.environ["DATABASE_URL"]
TOKEN = os.environ["AMOCRM_WEBHOOK_TOKEN"]
SUBDOMAIN = os.environ.get("AMOCRM_SUBDOMAIN", "")
KEY = re.compile(r"\[([^\]]*)\]")

SCHEMA = """
CREATE TABLE IF NOT EXISTS peer_leads (
    id bigint PRIMARY KEY,
    name text NOT NULL,
    status_id bigint,
    pipeline_id bigint,
    price bigint,
    responsible_user_id bigint,
    custom_fields jsonb NOT NULL,
    event text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
)
"""
UPSERT = """
INSERT INTO peer_leads (id, name, status_id, pipeline_id, price, responsible_user_id,
                        custom_fields, event)
VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8)
ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, status_id = EXCLUDED.status_id,
    pipeline_id = EXCLUDED.pipeline_id, price = EXCLUDED.price,
    responsible_user_id = EXCLUDED.responsible_user_id, custom_fields = EXCLUDED.custom_fields,
    event = EXCLUDED.event, updated_at = now()
"""


def php_form(body: str) -> dict[str, Any]:
    """`a[b][0][c]=v` pairs into nested dicts (numeric keys stay dict keys, as PHP arrays)."""
    root: dict[str, Any] = {}
    for key, value in parse_qsl(body, keep_blank_values=True):
        head, _, rest = key.partition("[")
        parts = [head] + (KEY.findall("[" + rest) if rest else [])
        node = root
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ValueError(f"key {key!r} clashes with a scalar")
        node[parts[-1]] = value
    return root


def opt_int(v: Any) -> int | None:
    return int(v) if v not in (None, "") else None


app = FastAPI()
state: dict[str, Any] = {}


@app.on_event("startup")
async def startup() -> None:
    pool = await asyncpg.create_pool(DATABASE_URL, min_size=4, max_size=8)
    async with pool.acquire() as c, c.transaction():
        await c.execute("SELECT pg_advisory_xact_lock(7317)")
        await c.execute(SCHEMA)
    state["pool"] = pool


@app.get("/ready")
async def ready() -> PlainTextResponse:
    return PlainTextResponse("ok")


@app.post("/api/webhooks/amo/{token}")
async def webhook(token: str, request: Request) -> JSONResponse:
    if token != TOKEN:
        raise HTTPException(404)
    form = php_form((await request.body()).decode())
    account = form.get("account", {})
    if SUBDOMAIN and account.get("subdomain") != SUBDOMAIN:
        raise HTTPException(403)
    rows = []
    for event, items in form.get("leads", {}).items():
        for lead in items.values():
            fields = [
                {"id": int(f["id"]), "name": f.get("name"),
                 "values": [v.get("value") for v in f.get("values", {}).values()]}
                for f in lead.get("custom_fields", {}).values()
            ]
            rows.append((int(lead["id"]), lead.get("name", ""), opt_int(lead.get("status_id")),
                         opt_int(lead.get("pipeline_id")), opt_int(lead.get("price")),
                         opt_int(lead.get("responsible_user_id")), json.dumps(fields), event))
    async with state["pool"].acquire() as c, c.transaction():
        await c.executemany(UPSERT, rows)
    return JSONResponse({"status": "success", "message": f"Processed {len(rows)} events",
                         "events_processed": len(rows), "timestamp": time.time()})
